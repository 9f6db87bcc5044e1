/* log.h: the VHDX metadata log (MS-VHDX 2.3).
 *
 * A ring buffer of entries, each a run of 4 KiB sectors: descriptor
 * sectors (a 64-byte entry header, then 32-byte descriptors) followed by
 * one data sector per data descriptor.  These functions work on the
 * whole log held in memory (len bytes, a multiple of 1 MiB): offsets
 * wrap at len.
 */
#ifndef LIBVHD_VHDX_LOG_H
#define LIBVHD_VHDX_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "guid.h"

enum {
  VHDX_LOG_SECTOR = 4096,
  /* Entry header. */
  VHDX_LOGE_SIGNATURE = 0,     /* u32 "loge" */
  VHDX_LOGE_CHECKSUM = 4,      /* u32 CRC-32C over the entry, this as 0 */
  VHDX_LOGE_LENGTH = 8,        /* u32, multiple of 4 KiB */
  VHDX_LOGE_TAIL = 12,         /* u32, log offset of the sequence's first */
  VHDX_LOGE_SEQUENCE = 16,     /* u64, > 0 */
  VHDX_LOGE_DESC_COUNT = 24,   /* u32 */
  VHDX_LOGE_LOG_GUID = 32,     /* GUID, the header's LogGuid */
  VHDX_LOGE_FLUSHED_END = 48,  /* u64 FlushedFileOffset */
  VHDX_LOGE_LAST_END = 56,     /* u64 LastFileOffset */
  VHDX_LOGE_HEADER_SIZE = 64,
  /* Descriptors, 32 bytes. */
  VHDX_LOGD_SIGNATURE = 0,     /* u32 "desc" or "zero" */
  VHDX_LOGD_TRAILING = 4,      /* desc: the sector's last 4 bytes */
  VHDX_LOGD_LEADING = 8,       /* desc: its first 8; zero: u64 length */
  VHDX_LOGD_FILE_OFFSET = 16,  /* u64, multiple of 4 KiB */
  VHDX_LOGD_SEQUENCE = 24,     /* u64, the entry's */
  VHDX_LOGD_SIZE = 32,
  /* Data sector. */
  VHDX_LOGS_SIGNATURE = 0,     /* u32 "data" */
  VHDX_LOGS_SEQ_HIGH = 4,      /* u32 */
  VHDX_LOGS_DATA = 8,          /* 4084 bytes: the sector's bytes 8..4091 */
  VHDX_LOGS_SEQ_LOW = 4092,    /* u32 */
};

#define VHDX_LOGE_MAGIC 0x65676f6cU /* "loge" */
#define VHDX_LOGD_DATA_MAGIC 0x63736564U /* "desc" */
#define VHDX_LOGD_ZERO_MAGIC 0x6f72657aU /* "zero" */
#define VHDX_LOGS_MAGIC 0x61746164U /* "data" */

/* The active sequence: count entries starting at log offset tail. */
struct vhdx_log_sequence {
  uint32_t tail, count;
  uint64_t sequence;            /* of the head (newest) entry */
  uint64_t flushed_file_offset; /* of the head entry */
  uint64_t last_file_offset;
};

/* Limits of a scan and a replay (log.c, LIMITS). */
/* Bytes checksummed while scanning: this many times the log's length
 * (a well-formed log needs about one pass, two with an entry torn). */
#define VHDX_LOG_SCAN_FACTOR 8U
/* Descriptors in the active sequence: one overlay patch each on a
 * read-only open.  A 128 MiB log (the driver's limit) holds at most
 * 32 Ki data descriptors; real logs (1 MiB) a few hundred. */
#define VHDX_LOG_MAX_UPDATES 65536U
/* Bytes a replay writes in all (data sectors plus zeroed ranges): the
 * data is at most the log (128 MiB); zero descriptors clear newly
 * allocated blocks, at most 256 MiB each per the spec. */
#define VHDX_LOG_MAX_REPLAY_BYTES (UINT64_C (1) << 30)
/* How far LastFileOffset may lie beyond the file's size.  A writer
 * flushes each entry, which makes earlier extensions durable, so only
 * the latest extension can be lost: one payload block of the largest
 * size the spec allows (256 MiB) plus the 1 MiB rounding of the field. */
#define VHDX_LOG_MAX_GROWTH (UINT64_C (257) << 20)

/* Find the active sequence per MS-VHDX 2.3.3; count = 0 when the log has
 * no valid sequence for log_guid.  -1 for ENOMEM, or EBADMSG when the
 * entries' lengths would make the scan checksum more than
 * VHDX_LOG_SCAN_FACTOR times the log. */
int vhdx_log_find_active (const uint8_t *log, uint32_t len,
                          const uint8_t log_guid[GUID_SIZE],
                          struct vhdx_log_sequence *seq);

/* Called per descriptor, in order: write length bytes of data (NULL:
 * zeros) at file offset. */
typedef int (*vhdx_log_apply_fn) (void *opaque, uint64_t offset,
                                  const uint8_t *data, uint64_t length);

/* Check, before replaying seq onto a file of file_size bytes, that the
 * file is not truncated (FlushedFileOffset), will not grow absurdly
 * (LastFileOffset), and that every update lies inside max (file_size,
 * LastFileOffset) and within the limits above.  0, or -1 after
 * set_error naming the field. */
int vhdx_log_check_replay (const uint8_t *log, uint32_t len,
                           const struct vhdx_log_sequence *seq,
                           uint64_t file_size);

/* Replay the sequence's descriptors through apply.  The limits that do
 * not need the file's size (ZeroLength > 0, no offset wrap, the update
 * count and byte total) are checked for the whole sequence first:
 * apply is not called at all when they fail. */
int vhdx_log_replay (const uint8_t *log, uint32_t len,
                     const struct vhdx_log_sequence *seq,
                     vhdx_log_apply_fn apply, void *opaque);

/* A 4 KiB update of the file, for writing an entry. */
struct vhdx_log_page {
  uint64_t file_offset;
  const uint8_t *data;
};

/* Bytes of an entry carrying n pages. */
uint64_t vhdx_log_entry_length (unsigned n);
/* Encode such an entry into out[0..vhdx_log_entry_length (n)). */
void vhdx_log_entry_encode (uint8_t *out, uint64_t sequence, uint32_t tail,
                            const uint8_t log_guid[GUID_SIZE],
                            uint64_t flushed_file_offset,
                            uint64_t last_file_offset,
                            const struct vhdx_log_page *pages, unsigned n);

#endif /* LIBVHD_VHDX_LOG_H */
