/* log.c: finding, checking and replaying VHDX log entries, and encoding
 * new ones (MS-VHDX 2.3).
 *
 * An entry is valid when its header is sane (signature, 4 KiB multiples,
 * fits the log, sequence > 0, the header's LogGuid), every descriptor
 * carries its signature and the entry's sequence number, every data
 * sector carries "data" and the sequence number split high/low, there
 * are as many data sectors as data descriptors, and the CRC-32C over the
 * whole entry matches.  Entries may wrap at the end of the log.
 *
 * The active sequence is found with the spec's scan (2.3.3): from each
 * candidate tail, extend a run of valid entries with consecutive sequence
 * numbers; the run counts when its newest entry's Tail points at one of
 * its entries; the run with the highest sequence number wins, and the
 * entries from that Tail to the newest are replayed, in order.
 *
 * Everything here works on the log in memory; the driver reads it (the
 * log length is capped there) and applies the updates in place or into
 * an overlay.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "byteorder.h"
#include "crc32c.h"
#include "internal.h"
#include "log.h"
#include "minmax.h"

struct entry_info {
  uint32_t length, tail;
  uint64_t sequence, flushed, last;
  uint32_t desc_count, desc_sectors;
};

static const uint8_t *
sector_at (const uint8_t *log, uint32_t len, uint64_t off)
{
  return log + off % len;
}

/* Descriptor k of the entry at off (descriptors never straddle sectors:
 * 64 + 32 k is a multiple of 32). */
static const uint8_t *
descriptor_at (const uint8_t *log, uint32_t len, uint64_t off, uint32_t k)
{
  uint64_t pos = VHDX_LOGE_HEADER_SIZE + (uint64_t) k * VHDX_LOGD_SIZE;

  return sector_at (log, len, off + pos / VHDX_LOG_SECTOR * VHDX_LOG_SECTOR)
         + pos % VHDX_LOG_SECTOR;
}

static uint32_t
entry_checksum (const uint8_t *log, uint32_t len, uint64_t off,
                uint32_t length)
{
  static const uint8_t zero[4];
  const uint8_t *s = sector_at (log, len, off);
  uint32_t crc, i;

  crc = crc32c (0, s, VHDX_LOGE_CHECKSUM);
  crc = crc32c (crc, zero, sizeof zero);
  crc = crc32c (crc, s + VHDX_LOGE_CHECKSUM + 4,
                VHDX_LOG_SECTOR - VHDX_LOGE_CHECKSUM - 4);
  for (i = 1; i < length / VHDX_LOG_SECTOR; i++)
    crc = crc32c (crc, sector_at (log, len, off + (uint64_t) i
                                                    * VHDX_LOG_SECTOR),
                  VHDX_LOG_SECTOR);
  return crc;
}

static bool
header_valid (const uint8_t *h, uint32_t len, const uint8_t *guid,
              struct entry_info *e)
{
  uint8_t g[GUID_SIZE];
  uint64_t desc_bytes;

  if (get_le32 (h + VHDX_LOGE_SIGNATURE) != VHDX_LOGE_MAGIC)
    return false;
  e->length = get_le32 (h + VHDX_LOGE_LENGTH);
  e->tail = get_le32 (h + VHDX_LOGE_TAIL);
  e->sequence = get_le64 (h + VHDX_LOGE_SEQUENCE);
  e->desc_count = get_le32 (h + VHDX_LOGE_DESC_COUNT);
  e->flushed = get_le64 (h + VHDX_LOGE_FLUSHED_END);
  e->last = get_le64 (h + VHDX_LOGE_LAST_END);
  guid_decode (h + VHDX_LOGE_LOG_GUID, g);
  desc_bytes = VHDX_LOGE_HEADER_SIZE
               + (uint64_t) e->desc_count * VHDX_LOGD_SIZE;
  e->desc_sectors = (uint32_t) MIN (DIV_ROUND_UP (desc_bytes,
                                                  VHDX_LOG_SECTOR),
                                    (uint64_t) UINT32_MAX);
  return e->length && e->length % VHDX_LOG_SECTOR == 0 && e->length <= len
         && e->tail % VHDX_LOG_SECTOR == 0 && e->tail < len
         && e->sequence > 0 && guid_eq (g, guid)
         && (uint64_t) e->desc_sectors * VHDX_LOG_SECTOR <= e->length;
}

static bool
data_sector_valid (const uint8_t *s, uint64_t sequence)
{
  return get_le32 (s + VHDX_LOGS_SIGNATURE) == VHDX_LOGS_MAGIC
         && get_le32 (s + VHDX_LOGS_SEQ_HIGH) == (uint32_t) (sequence >> 32)
         && get_le32 (s + VHDX_LOGS_SEQ_LOW) == (uint32_t) sequence;
}

static bool
descriptors_valid (const uint8_t *log, uint32_t len, uint64_t off,
                   const struct entry_info *e)
{
  uint32_t k, n_data = 0;

  for (k = 0; k < e->desc_count; k++) {
    const uint8_t *d = descriptor_at (log, len, off, k);
    uint32_t sig = get_le32 (d + VHDX_LOGD_SIGNATURE);
    if (get_le64 (d + VHDX_LOGD_SEQUENCE) != e->sequence
        || get_le64 (d + VHDX_LOGD_FILE_OFFSET) % VHDX_LOG_SECTOR)
      return false;
    if (sig == VHDX_LOGD_ZERO_MAGIC) {
      if (get_le64 (d + VHDX_LOGD_LEADING) % VHDX_LOG_SECTOR)
        return false;
      continue;
    }
    if (sig != VHDX_LOGD_DATA_MAGIC)
      return false;
    if ((uint64_t) e->desc_sectors + n_data + 1
        > e->length / VHDX_LOG_SECTOR)
      return false;
    if (!data_sector_valid (sector_at (log, len,
                                       off + (uint64_t) (e->desc_sectors
                                                         + n_data)
                                                 * VHDX_LOG_SECTOR),
                            e->sequence))
      return false;
    n_data++;
  }
  return true;
}

static bool
entry_valid (const uint8_t *log, uint32_t len, uint64_t off,
             const uint8_t *guid, struct entry_info *e)
{
  const uint8_t *h = sector_at (log, len, off);

  return header_valid (h, len, guid, e)
         && descriptors_valid (log, len, off, e)
         && entry_checksum (log, len, off, e->length)
              == get_le32 (h + VHDX_LOGE_CHECKSUM);
}

/* A run of consecutive valid entries from start.  offsets[] gets each
 * entry's log offset; returns the count, *head the newest entry. */
static uint32_t
scan_run (const uint8_t *log, uint32_t len, const uint8_t *guid,
          uint32_t start, uint32_t *offsets, struct entry_info *head,
          uint32_t *next)
{
  uint32_t count = 0, max = len / VHDX_LOG_SECTOR, off = start;
  struct entry_info e;

  while (count < max && entry_valid (log, len, off, guid, &e)
         && (count == 0 || e.sequence == head->sequence + 1)) {
    offsets[count++] = off;
    *head = e;
    off = (uint32_t) (((uint64_t) off + e.length) % len);
  }
  *next = off;
  return count;
}

/* Index in offsets[0..count) of the head's tail, or -1. */
static long
tail_index (const uint32_t *offsets, uint32_t count, uint32_t tail)
{
  uint32_t i;

  for (i = 0; i < count; i++)
    if (offsets[i] == tail)
      return (long) i;
  return -1;
}

int
vhdx_log_find_active (const uint8_t *log, uint32_t len,
                      const uint8_t log_guid[GUID_SIZE],
                      struct vhdx_log_sequence *seq)
{
  uint32_t *offsets = malloc ((len / VHDX_LOG_SECTOR) * sizeof *offsets);
  uint32_t cur_tail = 0, old_tail = 0, next, count;
  struct entry_info head;

  if (offsets == NULL) {
    set_error (ENOMEM, "out of memory");
    return -1;
  }
  memset (seq, 0, sizeof *seq);
  for (;;) {
    count = scan_run (log, len, log_guid, cur_tail, offsets, &head, &next);
    long t = count ? tail_index (offsets, count, head.tail) : -1;
    if (t >= 0 && head.sequence > seq->sequence) {
      seq->tail = offsets[t];
      seq->count = count - (uint32_t) t;
      seq->sequence = head.sequence;
      seq->flushed_file_offset = head.flushed;
      seq->last_file_offset = head.last;
    }
    if (t < 0)
      cur_tail = (cur_tail + VHDX_LOG_SECTOR) % len;
    else
      cur_tail = next;
    if (cur_tail <= old_tail)
      break; /* wrapped: the whole log has been scanned */
    old_tail = cur_tail;
  }
  free (offsets);
  return 0;
}

/* Rebuild a data descriptor's 4 KiB sector. */
static void
rebuild_sector (const uint8_t *d, const uint8_t *s, uint8_t *out)
{
  memcpy (out, d + VHDX_LOGD_LEADING, 8);
  memcpy (out + 8, s + VHDX_LOGS_DATA, VHDX_LOG_SECTOR - 12);
  memcpy (out + VHDX_LOG_SECTOR - 4, d + VHDX_LOGD_TRAILING, 4);
}

static int
replay_entry (const uint8_t *log, uint32_t len, uint64_t off,
              const struct entry_info *e, vhdx_log_apply_fn apply,
              void *opaque)
{
  uint8_t buf[VHDX_LOG_SECTOR];
  uint32_t k, n_data = 0;

  for (k = 0; k < e->desc_count; k++) {
    const uint8_t *d = descriptor_at (log, len, off, k);
    uint64_t target = get_le64 (d + VHDX_LOGD_FILE_OFFSET);
    int r;
    if (get_le32 (d + VHDX_LOGD_SIGNATURE) == VHDX_LOGD_ZERO_MAGIC)
      r = apply (opaque, target, NULL, get_le64 (d + VHDX_LOGD_LEADING));
    else {
      rebuild_sector (d,
                      sector_at (log, len,
                                 off + (uint64_t) (e->desc_sectors + n_data++)
                                         * VHDX_LOG_SECTOR),
                      buf);
      r = apply (opaque, target, buf, VHDX_LOG_SECTOR);
    }
    if (r == -1)
      return -1;
  }
  return 0;
}

int
vhdx_log_replay (const uint8_t *log, uint32_t len,
                 const struct vhdx_log_sequence *seq,
                 vhdx_log_apply_fn apply, void *opaque)
{
  uint64_t off = seq->tail;
  uint32_t i;

  for (i = 0; i < seq->count; i++) {
    struct entry_info e;
    header_valid (sector_at (log, len, off), len,
                  sector_at (log, len, off) + VHDX_LOGE_LOG_GUID, &e);
    if (replay_entry (log, len, off, &e, apply, opaque) == -1)
      return -1;
    off = (off + e.length) % len;
  }
  return 0;
}

uint64_t
vhdx_log_entry_length (unsigned n)
{
  uint64_t desc = VHDX_LOGE_HEADER_SIZE + (uint64_t) n * VHDX_LOGD_SIZE;

  return (DIV_ROUND_UP (desc, VHDX_LOG_SECTOR) + n) * VHDX_LOG_SECTOR;
}

void
vhdx_log_entry_encode (uint8_t *out, uint64_t sequence, uint32_t tail,
                       const uint8_t log_guid[GUID_SIZE],
                       uint64_t flushed_file_offset,
                       uint64_t last_file_offset,
                       const struct vhdx_log_page *pages, unsigned n)
{
  uint64_t length = vhdx_log_entry_length (n);
  uint64_t data_start = length - (uint64_t) n * VHDX_LOG_SECTOR;
  unsigned k;

  memset (out, 0, (size_t) data_start);
  put_le32 (out + VHDX_LOGE_SIGNATURE, VHDX_LOGE_MAGIC);
  put_le32 (out + VHDX_LOGE_LENGTH, (uint32_t) length);
  put_le32 (out + VHDX_LOGE_TAIL, tail);
  put_le64 (out + VHDX_LOGE_SEQUENCE, sequence);
  put_le32 (out + VHDX_LOGE_DESC_COUNT, n);
  guid_encode (log_guid, out + VHDX_LOGE_LOG_GUID);
  put_le64 (out + VHDX_LOGE_FLUSHED_END, flushed_file_offset);
  put_le64 (out + VHDX_LOGE_LAST_END, last_file_offset);
  for (k = 0; k < n; k++) {
    uint8_t *d = out + VHDX_LOGE_HEADER_SIZE + (size_t) k * VHDX_LOGD_SIZE;
    uint8_t *s = out + data_start + (size_t) k * VHDX_LOG_SECTOR;
    put_le32 (d + VHDX_LOGD_SIGNATURE, VHDX_LOGD_DATA_MAGIC);
    memcpy (d + VHDX_LOGD_TRAILING, pages[k].data + VHDX_LOG_SECTOR - 4, 4);
    memcpy (d + VHDX_LOGD_LEADING, pages[k].data, 8);
    put_le64 (d + VHDX_LOGD_FILE_OFFSET, pages[k].file_offset);
    put_le64 (d + VHDX_LOGD_SEQUENCE, sequence);
    put_le32 (s + VHDX_LOGS_SIGNATURE, VHDX_LOGS_MAGIC);
    put_le32 (s + VHDX_LOGS_SEQ_HIGH, (uint32_t) (sequence >> 32));
    memcpy (s + VHDX_LOGS_DATA, pages[k].data + 8, VHDX_LOG_SECTOR - 12);
    put_le32 (s + VHDX_LOGS_SEQ_LOW, (uint32_t) sequence);
  }
  put_le32 (out + VHDX_LOGE_CHECKSUM,
            vhdx_checksum (out, (size_t) length, VHDX_LOGE_CHECKSUM));
}
