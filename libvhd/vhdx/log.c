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
 *
 * LIMITS.  A log is hostile input that tells us where to write, so the
 * scan and the replay are bounded (each refusal names the field):
 *   - the scan validates each candidate entry once (a memo per 4 KiB
 *     sector) and checksums at most VHDX_LOG_SCAN_FACTOR times the log's
 *     length: headers that claim long entries at every sector would
 *     otherwise cost len^2 / 4 KiB of CRC-32C;
 *   - before anything is applied, the whole active sequence is checked
 *     (vhdx_log_check_replay): ZeroLength > 0, FileOffset + length does
 *     not wrap, at most VHDX_LOG_MAX_UPDATES descriptors (the overlay of
 *     a read-only open holds one patch each) and VHDX_LOG_MAX_REPLAY_BYTES
 *     written in all; and, given the file's size, FlushedFileOffset
 *     within the file, LastFileOffset at most VHDX_LOG_MAX_GROWTH beyond
 *     it, every update inside max (file size, LastFileOffset).
 * Nothing is applied when any check fails, so a refused log leaves the
 * file as it was.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "byteorder.h"
#include "checked-overflow.h"
#include "crc32c.h"
#include "internal.h"
#include "log.h"
#include "minmax.h"

struct entry_info {
  uint32_t length, tail;
  uint64_t sequence, flushed, last;
  uint32_t desc_count, desc_sectors;
};

/* What the scan knows of the entry starting at each 4 KiB sector. */
enum memo_state { MEMO_UNKNOWN, MEMO_INVALID, MEMO_VALID };

struct scan {
  const uint8_t *log;
  uint32_t len;
  const uint8_t *guid;
  uint8_t *state;              /* enum memo_state per sector */
  struct entry_info *info;     /* for MEMO_VALID sectors */
  uint64_t crc_budget;         /* bytes left to checksum */
  bool over_budget;
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
entry_valid_uncached (struct scan *sc, uint32_t off, struct entry_info *e)
{
  const uint8_t *h = sector_at (sc->log, sc->len, off);

  if (!header_valid (h, sc->len, sc->guid, e)
      || !descriptors_valid (sc->log, sc->len, off, e))
    return false;
  if (e->length > sc->crc_budget) {
    sc->over_budget = true;
    return false;
  }
  sc->crc_budget -= e->length;
  return entry_checksum (sc->log, sc->len, off, e->length)
         == get_le32 (h + VHDX_LOGE_CHECKSUM);
}

/* Whether the entry at off (a multiple of 4 KiB) is valid, validating
 * it at most once. */
static bool
entry_valid (struct scan *sc, uint32_t off, struct entry_info *e)
{
  uint32_t i = off / VHDX_LOG_SECTOR;

  if (sc->state[i] == MEMO_UNKNOWN) {
    bool ok = entry_valid_uncached (sc, off, &sc->info[i]);
    if (sc->over_budget)
      return false; /* not memoised: the scan stops */
    sc->state[i] = ok ? MEMO_VALID : MEMO_INVALID;
  }
  *e = sc->info[i];
  return sc->state[i] == MEMO_VALID;
}

/* A run of consecutive valid entries from start.  offsets[] gets each
 * entry's log offset; returns the count, *head the newest entry. */
static uint32_t
scan_run (struct scan *sc, uint32_t start, uint32_t *offsets,
          struct entry_info *head, uint32_t *next)
{
  uint32_t count = 0, max = sc->len / VHDX_LOG_SECTOR, off = start;
  uint32_t len = sc->len;
  struct entry_info e;

  while (count < max && entry_valid (sc, off, &e)
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
  uint32_t n = len / VHDX_LOG_SECTOR;
  uint32_t *offsets = malloc (n * sizeof *offsets);
  struct scan sc = {
    .log = log, .len = len, .guid = log_guid,
    .state = calloc (n, 1), .info = calloc (n, sizeof *sc.info),
    .crc_budget = (uint64_t) VHDX_LOG_SCAN_FACTOR * len,
  };
  uint32_t cur_tail = 0, old_tail = 0, next, count;
  struct entry_info head;
  int r = 0;

  memset (seq, 0, sizeof *seq);
  if (offsets == NULL || sc.state == NULL || sc.info == NULL) {
    set_error (ENOMEM, "out of memory");
    r = -1;
    goto out;
  }
  for (;;) {
    count = scan_run (&sc, cur_tail, offsets, &head, &next);
    if (sc.over_budget) {
      set_error (EBADMSG, "VHDX log: entries claim more than %u times the "
                 "log's %" PRIu32 " bytes (EntryLength of overlapping "
                 "entries): refusing to scan", VHDX_LOG_SCAN_FACTOR, len);
      memset (seq, 0, sizeof *seq);
      r = -1;
      break;
    }
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
out:
  free (offsets);
  free (sc.state);
  free (sc.info);
  return r;
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

/* The entry at log offset off of an active sequence (already valid). */
static void
sequence_entry (const uint8_t *log, uint32_t len, uint64_t off,
                struct entry_info *e)
{
  const uint8_t *h = sector_at (log, len, off);

  header_valid (h, len, h + VHDX_LOGE_LOG_GUID, e);
}

/* What one descriptor asks for: length bytes at offset. */
static uint64_t
descriptor_length (const uint8_t *d)
{
  if (get_le32 (d + VHDX_LOGD_SIGNATURE) == VHDX_LOGD_ZERO_MAGIC)
    return get_le64 (d + VHDX_LOGD_LEADING);
  return VHDX_LOG_SECTOR;
}

/* One descriptor against the limits; end_limit is UINT64_MAX when the
 * file's size is not known. */
static int
check_descriptor (const uint8_t *d, const struct entry_info *e, uint32_t k,
                  uint64_t end_limit, uint64_t *total)
{
  bool zero = get_le32 (d + VHDX_LOGD_SIGNATURE) == VHDX_LOGD_ZERO_MAGIC;
  uint64_t offset = get_le64 (d + VHDX_LOGD_FILE_OFFSET);
  uint64_t length = descriptor_length (d), end;

  if (zero && length == 0) {
    set_error (EBADMSG, "VHDX log: entry %" PRIu64 ", zero descriptor %"
               PRIu32 ": ZeroLength is 0", e->sequence, k);
    return -1;
  }
  if (ADD_OVERFLOW (offset, length, &end)) {
    set_error (EFBIG, "VHDX log: entry %" PRIu64 ", descriptor %" PRIu32
               ": FileOffset %" PRIu64 " + %s%" PRIu64 " overflows",
               e->sequence, k, offset, zero ? "ZeroLength " : "",
               length);
    return -1;
  }
  if (end > end_limit) {
    set_error (EBADMSG, "VHDX log: entry %" PRIu64 ", descriptor %" PRIu32
               ": FileOffset %" PRIu64 " + %s%" PRIu64 " runs past the "
               "file's end and LastFileOffset (%" PRIu64 ")", e->sequence,
               k, offset, zero ? "ZeroLength " : "", length, end_limit);
    return -1;
  }
  if (ADD_OVERFLOW (*total, length, total)
      || *total > VHDX_LOG_MAX_REPLAY_BYTES) {
    set_error (EFBIG, "VHDX log: entry %" PRIu64 ", descriptor %" PRIu32
               ": the sequence would write more than %" PRIu64 " MiB "
               "(ZeroLength %" PRIu64 ")", e->sequence, k,
               VHDX_LOG_MAX_REPLAY_BYTES >> 20, zero ? length : 0);
    return -1;
  }
  return 0;
}

/* Check every descriptor of the sequence before anything is applied. */
static int
check_descriptors (const uint8_t *log, uint32_t len,
                   const struct vhdx_log_sequence *seq, uint64_t end_limit)
{
  uint64_t off = seq->tail, total = 0, updates = 0;
  uint32_t i, k;

  for (i = 0; i < seq->count; i++) {
    struct entry_info e;
    sequence_entry (log, len, off, &e);
    updates += e.desc_count;
    if (updates > VHDX_LOG_MAX_UPDATES) {
      set_error (EFBIG, "VHDX log: entry %" PRIu64 ": DescriptorCount %"
                 PRIu32 " brings the sequence above %u updates",
                 e.sequence, e.desc_count, VHDX_LOG_MAX_UPDATES);
      return -1;
    }
    for (k = 0; k < e.desc_count; k++)
      if (check_descriptor (descriptor_at (log, len, off, k), &e, k,
                            end_limit, &total) == -1)
        return -1;
    off = (off + e.length) % len;
  }
  return 0;
}

int
vhdx_log_check_replay (const uint8_t *log, uint32_t len,
                       const struct vhdx_log_sequence *seq,
                       uint64_t file_size)
{
  if (file_size < seq->flushed_file_offset) {
    set_error (EBADMSG, "VHDX log: the file (%" PRIu64 " bytes) is shorter "
               "than the log's FlushedFileOffset (%" PRIu64 "): truncated",
               file_size, seq->flushed_file_offset);
    return -1;
  }
  if (seq->last_file_offset > file_size
      && seq->last_file_offset - file_size > VHDX_LOG_MAX_GROWTH) {
    set_error (EFBIG, "VHDX log: LastFileOffset %" PRIu64 " is more than %"
               PRIu64 " MiB beyond the file's %" PRIu64 " bytes",
               seq->last_file_offset, VHDX_LOG_MAX_GROWTH >> 20, file_size);
    return -1;
  }
  return check_descriptors (log, len, seq,
                            MAX (file_size, seq->last_file_offset));
}

int
vhdx_log_replay (const uint8_t *log, uint32_t len,
                 const struct vhdx_log_sequence *seq,
                 vhdx_log_apply_fn apply, void *opaque)
{
  uint64_t off = seq->tail;
  uint32_t i;

  if (check_descriptors (log, len, seq, UINT64_MAX) == -1)
    return -1;
  for (i = 0; i < seq->count; i++) {
    struct entry_info e;
    sequence_entry (log, len, off, &e);
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
