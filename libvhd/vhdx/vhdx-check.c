/* vhdx-check.c: check (and repair) a VHDX file's structures without
 * trusting them (MS-VHDX 2.2 to 2.6).
 *
 * Each step reads what the previous ones established and reports every
 * finding through check_report; a step whose structure is unusable ends
 * the check (what follows depends on it):
 *   headers       each copy's signature, checksum and version, equal
 *                 sequence numbers, the log's placement (1 MiB aligned,
 *                 past the header section, inside the file);
 *   region tables each copy, both copies the same, each region 1 MiB
 *                 aligned, inside the file and clear of the log;
 *   log           a LogGuid whose entries are not applied yet: pending
 *                 updates (corrupt until replayed); without repair the
 *                 rest is checked on the replayed view, in memory;
 *   metadata      the table and the system items (metadata.c);
 *   BAT           its size, every entry's state, blocks inside the file
 *                 and past the header section, partially present blocks
 *                 with a sector bitmap;
 *   layout        header section, log, regions and blocks sorted by
 *                 offset: any two that overlap are reported; space after
 *                 the last object is a leak unless it is a hole of the
 *                 host file, gaps between objects are reported for
 *                 information (compact reclaims them).
 *
 * Repairs (VHD_CHECK_REPAIR), each reported with VHD_CHECK_REPAIRED:
 *   a damaged header is rewritten from the good one (both copies are
 *   written, sequence + 1 and + 2, the damaged slot first); a damaged or
 *   differing region table copy is rewritten from the one readers use;
 *   a pending log is replayed in place and retired; BAT entries that
 *   point past the end of the file (and partially present blocks whose
 *   sector bitmap was one of them) become NOT_PRESENT through the log,
 *   after their virtual ranges are reported; space after the last object
 *   is cut off (after the log is retired).  Overlapping objects, bad
 *   metadata and unknown states are left alone: no fix is known safe.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "byteorder.h"
#include "checked-overflow.h"
#include "log.h"
#include "minmax.h"
#include "overlay.h"
#include "vhdx.h"

#define MAX_LOG (UINT32_C (128) << 20)
#define MAX_METADATA (UINT32_C (16) << 20)
/* Findings about single blocks shown before the rest are only counted. */
#define MAX_BLOCK_REPORTS 20U

struct checker {
  struct io *io;          /* the file */
  struct io *view;        /* the file, or an overlay with the log replayed */
  struct check_ctx *c;
  struct vhd_disk disk;   /* io and priv only: repairs through the log */
  struct vhdx *v;         /* what has been decoded so far */
  int64_t size;
  uint64_t replay_end;     /* log updates must end before this */
  unsigned block_reports;
  uint64_t more;          /* block findings not shown */
};

static void block_report (struct checker *ck, int severity, const char *fs,
                          ...) __attribute__ ((format (printf, 3, 4)));

/* check_report for findings that a damaged BAT repeats per entry. */
static void
block_report (struct checker *ck, int severity, const char *fs, ...)
{
  char msg[512];
  va_list args;

  if (ck->block_reports == MAX_BLOCK_REPORTS) {
    ck->more++;
    if (severity == VHD_CHECK_CORRUPT || severity == VHD_CHECK_LEAKS)
      ck->c->found |= severity;
    return;
  }
  va_start (args, fs);
  vsnprintf (msg, sizeof msg, fs, args);
  va_end (args);
  ck->block_reports++;
  check_report (ck->c, severity, "%s", msg);
}

/* --- headers -------------------------------------------------------------- */

static const char *
slot_name (unsigned slot)
{
  return slot ? "header 2" : "header 1";
}

/* Report each copy that does not decode; *ok[i] says which do. */
static void
decode_both_headers (struct checker *ck, const uint8_t *raw, bool ok[2])
{
  struct vhdx_header h;
  unsigned i;

  for (i = 0; i < 2; i++) {
    ok[i] = vhdx_header_decode (raw + (i ? VHDX_HEADER2_OFFSET
                                         : VHDX_HEADER1_OFFSET), &h) == 0;
    if (!ok[i])
      check_report (ck->c, ck->c->repair ? VHD_CHECK_INFO
                                         : VHD_CHECK_CORRUPT,
                    "%s is invalid (%s)", slot_name (i), error_message ());
  }
}

static int
check_log_placement (struct checker *ck)
{
  const struct vhdx_header *h = &ck->v->hdr;

  if (h->log_length % VHDX_MiB || h->log_offset % VHDX_MiB
      || (h->log_length && h->log_offset < VHDX_HEADER_SECTION_SIZE)
      || h->log_offset > (uint64_t) ck->size
      || h->log_length > (uint64_t) ck->size - h->log_offset) {
    check_report (ck->c, VHD_CHECK_CORRUPT, "log of %" PRIu32 " bytes at %"
                  PRIu64 " is not 1 MiB aligned past the header section "
                  "and inside the file (%" PRId64 " bytes)", h->log_length,
                  h->log_offset, ck->size);
    return -1;
  }
  return 0;
}

/* Returns 0 to go on, 1 when the check cannot go further, -1 on error. */
static int
check_headers (struct checker *ck)
{
  struct vhdx *v = ck->v;
  uint8_t *raw = malloc (VHDX_HEADER2_OFFSET + VHDX_HDR_SIZE);
  bool ok[2];
  int r;

  if (raw == NULL) {
    set_error (ENOMEM, "out of memory");
    return -1;
  }
  if (io_pread (ck->io, raw, VHDX_HEADER2_OFFSET + VHDX_HDR_SIZE, 0) == -1) {
    free (raw);
    return -1;
  }
  decode_both_headers (ck, raw, ok);
  r = vhdx_header_select (raw + VHDX_HEADER1_OFFSET,
                          raw + VHDX_HEADER2_OFFSET, &v->hdr, &v->current);
  free (raw);
  if (r == -1) {
    check_report (ck->c, VHD_CHECK_CORRUPT, "%s", error_message ());
    return 1;
  }
  if ((!ok[0] || !ok[1]) && ck->c->repair) {
    if (vhdx_update_headers (&ck->disk, false) == -1)
      return -1;
    check_report (ck->c, VHD_CHECK_REPAIRED, "%s was invalid; rewritten "
                  "from %s", slot_name (ok[0] ? 1 : 0),
                  slot_name (ok[0] ? 0 : 1));
  }
  return check_log_placement (ck) == 0 ? 0 : 1;
}

/* --- region tables -------------------------------------------------------- */

static int
restore_region_copy (struct checker *ck, const uint8_t *good, unsigned bad)
{
  if (io_pwrite (ck->io, good, VHDX_RGN_SIZE,
                 bad ? VHDX_REGION2_OFFSET : VHDX_REGION1_OFFSET) == -1
      || io_flush (ck->io) == -1)
    return -1;
  check_report (ck->c, VHD_CHECK_REPAIRED, "region table %u rewritten from "
                "region table %u", bad + 1, 2 - bad);
  return 0;
}

/* Both copies decoded; the one readers use (1 if valid) in v->regions. */
static int
compare_region_copies (struct checker *ck, const uint8_t *raw, bool ok[2])
{
  struct vhdx_regions *tmp = malloc (sizeof *tmp);
  unsigned i;

  if (tmp == NULL) {
    set_error (ENOMEM, "out of memory");
    return -1;
  }
  for (i = 0; i < 2; i++) {
    ok[i] = vhdx_region_decode (raw + i * VHDX_RGN_SIZE, tmp) == 0;
    if (!ok[i])
      check_report (ck->c, ck->c->repair ? VHD_CHECK_INFO
                                         : VHD_CHECK_CORRUPT,
                    "region table %u is invalid: %s", i + 1,
                    error_message ());
  }
  free (tmp);
  /* Both valid but different: a region switch stopped between its two
   * writes (vhdx-space.c); readers take table 1. */
  if (ok[0] && ok[1] && memcmp (raw, raw + VHDX_RGN_SIZE, VHDX_RGN_SIZE)) {
    if (!ck->c->repair)
      check_report (ck->c, VHD_CHECK_INFO, "region table 2 differs from "
                    "region table 1, which is used (an interrupted "
                    "update)");
    ok[1] = false;
  }
  return 0;
}

static int
check_region_placement (struct checker *ck)
{
  const struct vhdx *v = ck->v;
  const struct vhdx_header *h = &v->hdr;
  uint32_t i;
  int r = 0;

  for (i = 0; i < v->regions.count; i++) {
    const struct vhdx_region *e = &v->regions.e[i];
    char g[GUID_STR_SIZE];
    guid_format (e->guid, false, g);
    if (e->offset + e->length > (uint64_t) ck->size) {
      check_report (ck->c, VHD_CHECK_CORRUPT, "region %s (%" PRIu32
                    " bytes at %" PRIu64 ") runs past the end of the file",
                    g, e->length, e->offset);
      r = 1;
    }
    if (e->offset < h->log_offset + h->log_length
        && h->log_offset < e->offset + e->length) {
      check_report (ck->c, VHD_CHECK_CORRUPT, "region %s overlaps the log",
                    g);
      r = 1;
    }
  }
  return r;
}

static int
check_regions (struct checker *ck)
{
  uint8_t *raw = malloc (2 * VHDX_RGN_SIZE);
  bool ok[2];
  unsigned use;
  int r = -1;

  if (raw == NULL) {
    set_error (ENOMEM, "out of memory");
    return -1;
  }
  if (io_pread (ck->io, raw, 2 * VHDX_RGN_SIZE, VHDX_REGION1_OFFSET) == -1
      || compare_region_copies (ck, raw, ok) == -1)
    goto out;
  r = 1;
  use = ok[0] ? 0 : 1;
  if (vhdx_region_decode (raw + use * VHDX_RGN_SIZE, &ck->v->regions) == -1) {
    check_report (ck->c, VHD_CHECK_CORRUPT, "no usable region table");
    goto out;
  }
  r = 0;
  if (ck->c->repair && !(ok[0] && ok[1]))
    r = restore_region_copy (ck, raw + use * VHDX_RGN_SIZE, 1 - use);
  if (r == 0)
    r = check_region_placement (ck);
out:
  free (raw);
  return r;
}

/* --- log ------------------------------------------------------------------ */

/* An update must stay clear of the headers and inside the file as the
 * log says it was (a zero descriptor of any length is not trusted). */
static int
check_update (const struct checker *ck, uint64_t offset, uint64_t length)
{
  uint64_t end;

  if (offset < VHDX_REGION1_OFFSET) {
    set_error (EBADMSG, "VHDX log: update at %" PRIu64 " would overwrite "
               "the headers", offset);
    return -1;
  }
  if (ADD_OVERFLOW (offset, length, &end) || end > ck->replay_end) {
    set_error (EBADMSG, "VHDX log: update of %" PRIu64 " bytes at %" PRIu64
               " runs past the end of the file", length, offset);
    return -1;
  }
  return 0;
}

static int
apply_file (void *opaque, uint64_t offset, const uint8_t *data,
            uint64_t length)
{
  struct checker *ck = opaque;

  if (check_update (ck, offset, length) == -1)
    return -1;
  if (data)
    return io_pwrite (ck->io, data, (size_t) length, offset);
  return io_write_zeros (ck->io, offset, length);
}

static int
apply_view (void *opaque, uint64_t offset, const uint8_t *data,
            uint64_t length)
{
  struct checker *ck = opaque;

  if (check_update (ck, offset, length) == -1)
    return -1;
  return vhdx_overlay_add (ck->view, offset, data, length);
}

static int
replay_in_place (struct checker *ck, const uint8_t *log,
                 const struct vhdx_log_sequence *seq)
{
  struct vhdx *v = ck->v;

  if (vhdx_log_replay (log, v->hdr.log_length, seq, apply_file, ck) == -1
      || ((uint64_t) ck->size < seq->last_file_offset
          && ck->io->ops->truncate (ck->io, seq->last_file_offset) == -1)
      || io_flush (ck->io) == -1)
    return -1;
  memset (v->hdr.log_guid, 0, GUID_SIZE);
  if (vhdx_update_headers (&ck->disk, false) == -1)
    return -1;
  ck->size = io_get_size (ck->io);
  check_report (ck->c, VHD_CHECK_REPAIRED, "replayed %" PRIu32 " pending "
                "log entr%s", seq->count, seq->count == 1 ? "y" : "ies");
  return ck->size < 0 ? -1 : 0;
}

static int
replay_in_view (struct checker *ck, const uint8_t *log,
                const struct vhdx_log_sequence *seq)
{
  ck->view = vhdx_overlay_borrow (ck->io);
  if (ck->view == NULL) {
    ck->view = ck->io;
    return -1;
  }
  if (vhdx_log_replay (log, ck->v->hdr.log_length, seq, apply_view, ck)
      == -1)
    return -1;
  vhdx_overlay_extend (ck->view, seq->last_file_offset);
  check_report (ck->c, VHD_CHECK_CORRUPT, "the log holds %" PRIu32
                " update%s not yet applied (left by a crash; repair replays "
                "them); checking the replayed view", seq->count,
                seq->count == 1 ? "" : "s");
  ck->size = io_get_size (ck->view);
  return 0;
}

static int
process_log (struct checker *ck, const uint8_t *log)
{
  struct vhdx_log_sequence seq;

  if (vhdx_log_find_active (log, ck->v->hdr.log_length, ck->v->hdr.log_guid,
                            &seq) == -1) {
    if (vhd_get_errno () != EBADMSG)
      return -1;
    check_report (ck->c, VHD_CHECK_CORRUPT, "%s", error_message ());
    return 1;
  }
  if (seq.count == 0) {
    check_report (ck->c, VHD_CHECK_INFO, "LogGuid is set but no log entry "
                  "carries it: nothing to replay");
    return 0;
  }
  if ((uint64_t) ck->size < seq.flushed_file_offset) {
    check_report (ck->c, VHD_CHECK_CORRUPT, "the file (%" PRId64 " bytes) "
                  "is shorter than its pending log says it was (%" PRIu64
                  "): truncated", ck->size, seq.flushed_file_offset);
    return 1;
  }
  if (vhdx_log_check_replay (log, ck->v->hdr.log_length, &seq,
                             (uint64_t) ck->size) == -1) {
    check_report (ck->c, VHD_CHECK_CORRUPT, "%s", error_message ());
    return 1;
  }
  ck->replay_end = MAX ((uint64_t) ck->size,
                        ROUND_UP (seq.last_file_offset, VHDX_MiB));
  return ck->c->repair ? replay_in_place (ck, log, &seq)
                       : replay_in_view (ck, log, &seq);
}

static int
check_log (struct checker *ck)
{
  const struct vhdx_header *h = &ck->v->hdr;
  uint8_t *log;
  int r;

  if (guid_is_zero (h->log_guid))
    return 0;
  if (h->log_length == 0 || h->log_length > MAX_LOG) {
    check_report (ck->c, VHD_CHECK_CORRUPT, "a log of %" PRIu32 " bytes "
                  "must be replayed (1 MiB to %" PRIu32 " MiB supported)",
                  h->log_length, MAX_LOG >> 20);
    return 1;
  }
  log = malloc (h->log_length);
  if (log == NULL) {
    set_error (ENOMEM, "out of memory");
    return -1;
  }
  r = io_pread (ck->io, log, h->log_length, h->log_offset);
  if (r == 0)
    r = process_log (ck, log);
  free (log);
  return r;
}

/* --- metadata and BAT ----------------------------------------------------- */

static int
check_metadata (struct checker *ck)
{
  const struct vhdx_region *m = ck->v->regions.metadata;
  uint32_t len = MIN (m->length, MAX_METADATA);
  uint8_t *buf = malloc (len);
  int r;

  if (buf == NULL) {
    set_error (ENOMEM, "out of memory");
    return -1;
  }
  r = io_pread (ck->view, buf, len, m->offset);
  if (r == 0 && vhdx_metadata_decode (buf, len, &ck->v->md) == -1) {
    check_report (ck->c, VHD_CHECK_CORRUPT, "%s", error_message ());
    r = 1;
  }
  free (buf);
  return r;
}

static int
read_bat (struct checker *ck)
{
  struct vhdx *v = ck->v;
  const struct vhdx_metadata *md = &v->md;

  vhdx_bat_geometry (md->disk_size, md->block_size, md->logical_sector,
                     md->has_parent, &v->geo);
  if (v->geo.entries * 8 > v->regions.bat->length) {
    check_report (ck->c, VHD_CHECK_CORRUPT, "BAT region of %" PRIu32
                  " bytes is too small for the %" PRIu64 " entries the disk "
                  "needs", v->regions.bat->length, v->geo.entries);
    return 1;
  }
  /* Entries are taken as they are: judging them is this file's job. */
  return vhdx_bat_cache_init (&v->bat, ck->view, v->regions.bat->offset,
                              v->geo.entries, NULL, NULL);
}

/* The entries to drop (past the end of the file): a bit each, 8 MiB for
 * the largest table (64 TiB of 1 MiB blocks, 64 Mi + 16 Ki entries; the
 * metadata check bounds the disk size). */
struct drop_set {
  uint64_t *bits;
  bool any;
};

static bool
drop_has (const struct drop_set *ds, uint64_t idx)
{
  return ds->bits[idx / 64] >> (idx % 64) & 1;
}

static void
drop_add (struct drop_set *ds, uint64_t idx)
{
  ds->bits[idx / 64] |= UINT64_C (1) << (idx % 64);
  ds->any = true;
}

/* Take a bad entry out of the in-memory BAT (not the file's). */
static int
forget_entry (struct vhdx *v, uint64_t idx)
{
  return vhdx_bat_cache_set (&v->bat, idx, 0);
}

/* The virtual bytes a payload block covers, for messages. */
static void
block_range (const struct vhdx *v, uint64_t block, uint64_t *start,
             uint64_t *end)
{
  *start = block * v->md.block_size;
  *end = MIN (*start + v->md.block_size, v->md.disk_size);
}

/* One payload entry; bad ones are taken out of the in-memory BAT (so
 * the layout step ignores them) and, when past the end of the file,
 * marked in drop for repair. */
static int
check_payload (struct checker *ck, uint64_t block, struct drop_set *drop)
{
  struct vhdx *v = ck->v;
  uint64_t idx = vhdx_bat_payload_index (&v->geo, block), s, e, entry;
  uint64_t bi = vhdx_bat_bitmap_index (&v->geo, block / v->geo.chunk_ratio);
  uint64_t off, bitmap = 0;
  unsigned state;
  bool lost_bitmap;

  if (vhdx_get_entry (v, idx, &entry) == -1
      || (bi < v->geo.entries && vhdx_get_entry (v, bi, &bitmap) == -1))
    return -1;
  off = vhdx_bat_offset (entry);
  state = vhdx_bat_state (entry);
  lost_bitmap = state == VHDX_PAYLOAD_PARTIALLY_PRESENT
                && bi < v->geo.entries && drop_has (drop, bi);
  block_range (v, block, &s, &e);
  if (state == VHDX_PAYLOAD_NOT_PRESENT || state == VHDX_PAYLOAD_UNDEFINED
      || state == VHDX_PAYLOAD_ZERO || state == VHDX_PAYLOAD_UNMAPPED)
    return 0;
  if (state != VHDX_PAYLOAD_FULLY_PRESENT
      && state != VHDX_PAYLOAD_PARTIALLY_PRESENT)
    block_report (ck, VHD_CHECK_CORRUPT, "BAT entry %" PRIu64 " (bytes %"
                  PRIu64 "..%" PRIu64 "): reserved state %u", idx, s, e,
                  state);
  else if (off < VHDX_HEADER_SECTION_SIZE)
    block_report (ck, VHD_CHECK_CORRUPT, "BAT entry %" PRIu64 " (bytes %"
                  PRIu64 "..%" PRIu64 "): block in the header section", idx,
                  s, e);
  else if (off > (uint64_t) ck->size || e - s > (uint64_t) ck->size - off
           || lost_bitmap) {
    block_report (ck, ck->c->repair ? VHD_CHECK_INFO : VHD_CHECK_CORRUPT,
                  "BAT entry %" PRIu64 ": the block of bytes %" PRIu64 "..%"
                  PRIu64 " %s", idx, s, e,
                  lost_bitmap ? "has its sector bitmap past the end of the "
                                "file"
                              : "lies past the end of the file");
    drop_add (drop, idx);
  }
  else if (state == VHDX_PAYLOAD_PARTIALLY_PRESENT
           && (bi >= v->geo.entries
               || vhdx_bat_state (bitmap) != VHDX_SB_PRESENT))
    block_report (ck, VHD_CHECK_CORRUPT, "BAT entry %" PRIu64 " (bytes %"
                  PRIu64 "..%" PRIu64 "): partially present without a "
                  "sector bitmap", idx, s, e);
  else
    return 0;
  return drop_has (drop, idx) ? 0 : forget_entry (v, idx);
}

static int
check_bitmap (struct checker *ck, uint64_t chunk, struct drop_set *drop)
{
  struct vhdx *v = ck->v;
  uint64_t idx = vhdx_bat_bitmap_index (&v->geo, chunk), entry, off;
  unsigned state;

  if (idx >= v->geo.entries)
    return 0;
  if (vhdx_get_entry (v, idx, &entry) == -1)
    return -1;
  state = vhdx_bat_state (entry);
  off = vhdx_bat_offset (entry);
  if (state == VHDX_SB_NOT_PRESENT)
    return 0;
  if (state != VHDX_SB_PRESENT)
    block_report (ck, VHD_CHECK_CORRUPT, "BAT entry %" PRIu64 ": sector "
                  "bitmap in reserved state %u", idx, state);
  else if (off < VHDX_HEADER_SECTION_SIZE)
    block_report (ck, VHD_CHECK_CORRUPT, "BAT entry %" PRIu64 ": sector "
                  "bitmap in the header section", idx);
  else if (off > (uint64_t) ck->size
           || VHDX_BITMAP_BLOCK_SIZE > (uint64_t) ck->size - off) {
    block_report (ck, ck->c->repair ? VHD_CHECK_INFO : VHD_CHECK_CORRUPT,
                  "BAT entry %" PRIu64 ": the sector bitmap of chunk %"
                  PRIu64 " lies past the end of the file", idx, chunk);
    drop_add (drop, idx);
    return 0;
  }
  else
    return 0;
  return forget_entry (v, idx);
}

/* Out-of-file entries become NOT_PRESENT through the log. */
static int
drop_entries (struct checker *ck, const struct drop_set *drop)
{
  struct vhdx *v = ck->v;
  struct vhdx_stage *st;
  uint64_t i, n = 0;
  int r = 0;

  st = calloc (1, sizeof *st);
  if (st == NULL) {
    set_error (ENOMEM, "out of memory");
    return -1;
  }
  r = vhdx_begin_update (&ck->disk, false);
  for (i = 0; r == 0 && i < v->geo.entries; i++) {
    if (!drop_has (drop, i))
      continue;
    if (st->n == VHDX_MAX_STAGED && vhdx_commit (&ck->disk, st) == -1)
      r = -1;
    else if ((r = vhdx_put_entry (v, st, i, 0)) == 0)
      n++;
  }
  if (r == 0)
    r = vhdx_commit (&ck->disk, st);
  if (r == 0)
    r = vhdx_flush (&ck->disk);
  vhdx_stage_free (st);
  free (st);
  if (r == 0)
    check_report (ck->c, VHD_CHECK_REPAIRED, "%" PRIu64 " BAT entr%s past "
                  "the end of the file dropped: those bytes now read as "
                  "%s", n, n == 1 ? "y" : "ies",
                  v->md.has_parent ? "the parent's" : "zeros");
  return r;
}

static int
check_bat (struct checker *ck)
{
  struct vhdx *v = ck->v;
  uint64_t b, c, i;
  struct drop_set drop = { NULL, false };
  int r = read_bat (ck);

  if (r != 0)
    return r;
  drop.bits = calloc (v->geo.entries / 64 + 1, sizeof *drop.bits);
  if (drop.bits == NULL) {
    set_error (ENOMEM, "out of memory");
    return -1;
  }
  for (c = 0; r == 0 && c < v->geo.bitmap_blocks; c++)
    r = check_bitmap (ck, c, &drop);
  for (b = 0; r == 0 && b < v->geo.data_blocks; b++)
    r = check_payload (ck, b, &drop);
  if (r == 0 && drop.any && ck->c->repair)
    r = drop_entries (ck, &drop);
  for (i = 0; r == 0 && drop.any && i < v->geo.entries; i++)
    if (drop_has (&drop, i))
      r = forget_entry (v, i);
  free (drop.bits);
  return r;
}

/* --- layout --------------------------------------------------------------- */

static void
describe (const struct vhdx *v, const struct vhdx_object *o, char *buf,
          size_t len)
{
  char g[GUID_STR_SIZE];

  switch (o->kind) {
  case VHDX_OBJ_PAYLOAD:
    snprintf (buf, len, "payload block (BAT entry %" PRIu64 ") at %" PRIu64,
              o->index, o->start);
    return;
  case VHDX_OBJ_BITMAP:
    snprintf (buf, len, "sector bitmap (BAT entry %" PRIu64 ") at %" PRIu64,
              o->index, o->start);
    return;
  case VHDX_OBJ_BAT:
    snprintf (buf, len, "BAT region at %" PRIu64, o->start);
    return;
  case VHDX_OBJ_FIXED:
    break;
  }
  if (o->start == 0)
    snprintf (buf, len, "header section");
  else if (v->hdr.log_length && o->start == v->hdr.log_offset)
    snprintf (buf, len, "log at %" PRIu64, o->start);
  else if (&v->regions.e[o->index] == v->regions.metadata)
    snprintf (buf, len, "metadata region at %" PRIu64, o->start);
  else {
    guid_format (v->regions.e[o->index].guid, false, g);
    snprintf (buf, len, "region %s at %" PRIu64, g, o->start);
  }
}

static int
truncate_leak (struct checker *ck, uint64_t end)
{
  if (ck->io->ops->truncate (ck->io, end) == -1 || io_flush (ck->io) == -1)
    return -1;
  check_report (ck->c, VHD_CHECK_REPAIRED, "%" PRIu64 " unused bytes after "
                "the last object cut off", (uint64_t) ck->size - end);
  ck->size = (int64_t) end;
  return 0;
}

static int
check_layout (struct checker *ck)
{
  struct vhdx_object *o;
  uint64_t end = 0, gaps = 0;
  char a[128], b[128];
  size_t n, i;
  int r = 0;

  if (vhdx_list_objects (ck->v, &o, &n) == -1)
    return -1;
  for (i = 0; i < n; i++) {
    if (i > 0 && o[i].start < end) {
      describe (ck->v, &o[i - 1], a, sizeof a);
      describe (ck->v, &o[i], b, sizeof b);
      block_report (ck, VHD_CHECK_CORRUPT, "%s overlaps %s", a, b);
    }
    else if (o[i].start > end)
      gaps += o[i].start - end;
    end = MAX (end, o[i].end);
  }
  free (o);
  end = ROUND_UP (end, VHDX_MiB);
  if (gaps)
    check_report (ck->c, VHD_CHECK_INFO, "%" PRIu64 " bytes between objects "
                  "are unused (compact gives them back)", gaps);
  if ((uint64_t) ck->size > end) {
    uint64_t tail = (uint64_t) ck->size - end;
    if (ck->c->repair && ck->view == ck->io)
      r = truncate_leak (ck, end);
    else if (io_is_hole (ck->io, end, tail))
      check_report (ck->c, VHD_CHECK_INFO, "%" PRIu64 " bytes after the "
                    "last object (at %" PRIu64 ") are unused, a hole of the "
                    "host file (no space used)", tail, end);
    else
      check_report (ck->c, VHD_CHECK_LEAKS, "%" PRIu64 " bytes after the "
                    "last object (at %" PRIu64 ") are unused", tail, end);
  }
  return r;
}

/* --- driver --------------------------------------------------------------- */

static int
run (struct checker *ck)
{
  int r = check_headers (ck);

  if (r == 0)
    r = check_regions (ck);
  if (r == 0)
    r = check_log (ck);
  if (r == 0)
    r = check_metadata (ck);
  if (r == 0)
    r = check_bat (ck);
  if (r == 0)
    r = check_layout (ck);
  if (ck->more)
    check_report (ck->c, VHD_CHECK_INFO, "%" PRIu64 " more findings about "
                  "single blocks not shown", ck->more);
  return r == -1 ? -1 : 0;
}

int
vhdx_check (struct io *io, struct check_ctx *c)
{
  struct checker ck = { .io = io, .view = io, .c = c };
  int r;

  ck.size = io_get_size (io);
  if (ck.size < 0)
    return -1;
  if ((uint64_t) ck.size < VHDX_HEADER_SECTION_SIZE) {
    check_report (c, VHD_CHECK_CORRUPT, "file of %" PRId64 " bytes is "
                  "shorter than the VHDX header section", ck.size);
    return 0;
  }
  ck.v = calloc (1, sizeof *ck.v);
  if (ck.v == NULL) {
    set_error (ENOMEM, "out of memory");
    return -1;
  }
  ck.disk.io = io;
  ck.disk.priv = ck.v;
  r = run (&ck);
  if (ck.view != io)
    ck.view->ops->close (ck.view);
  vhdx_bat_cache_free (&ck.v->bat);
  free (ck.v->free);
  free (ck.v->pending);
  vhdx_metadata_free (&ck.v->md);
  free (ck.v);
  return r;
}
