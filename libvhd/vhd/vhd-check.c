/* vhd-check.c: the check hook of the VHD driver (vhd_check).
 *
 * It reads the file without trusting anything in it (the image need not
 * open) and reports each finding through check_report:
 *   - the footers: the trailing one and, for dynamic and differencing
 *     disks, the copy at offset 0: checksums, and whether they agree;
 *   - a fixed disk's size against the file's;
 *   - the dynamic header's place and checksum, the BAT's place and size,
 *     each parent locator's data (inside the file, a path);
 *   - every block the BAT maps: inside the file, clear of the metadata,
 *     clear of the other blocks (sorted by offset);
 *   - leaked space: bytes that no structure uses.  Not leaks (reported as
 *     information): gaps that are holes of the host file, taking no space
 *     (compact --no-move leaves those).  Not reported: gaps shorter
 *     than MAX_PADDING (other tools align the BAT, blocks and footer to
 *     4 KiB: Hyper-V, Virtual PC and node-vhd images of the corpus have
 *     such gaps), and gaps shorter than a block before the first block
 *     (where a rebase leaves the old locator data, and a resize the rest
 *     of a block moved out of the BAT's way; compact packs those).
 * Findings are capped per kind (MAX_REPORTS) with a count of the rest.
 *
 * Repairs (with VHD_CHECK_REPAIR), each reported as VHD_CHECK_REPAIRED
 * instead of the corruption it fixes:
 *   - a damaged trailing footer is rewritten from the copy at offset 0 (at
 *     the end of what the file uses, which also cuts off anything after),
 *     a damaged or disagreeing copy from the trailing footer; identical
 *     copies with stale checksums (a hand-edited image) get checksums;
 *   - BAT entries whose block lies past the end of the file are dropped
 *     (the message names the virtual range that now reads as zeros or as
 *     the parent): each BAT sector is rewritten whole, one at a time;
 *   - unused space at the end of the file is cut off: the footer is
 *     written at the new end, io_flush, then the file is truncated (both
 *     steps atomic); a fixed disk's gap before its footer likewise.
 * Overlapping blocks and metadata are reported, never "repaired": which
 * of two claimants is right cannot be told from the file.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "byteorder.h"
#include "checked-overflow.h"
#include "minmax.h"
#include "vhd/vhd.h"

#define MAX_REPORTS 16U
#define MAX_PADDING (64U << 10)
#define BAT_CHUNK (64U << 10) /* entries read at once */
#define HOST_PAGE 4096U /* the granularity of holes in a host file */

struct named {
  uint64_t start, end;
  char what[40];
};

/* Findings that may repeat once per block. */
enum { K_PAST_END, K_OVER_META, K_OVERLAP, N_KINDS };

struct checker {
  struct io *io;
  struct check_ctx *c;
  uint64_t file_size;
  uint8_t tail[VHD_FTR_SIZE], head[VHD_FTR_SIZE];
  struct vhd_footer footer;   /* the one in use */
  bool tail_ok;               /* the file ends with a good footer */
  bool head_ok;               /* the copy at offset 0 is good */
  bool fix_tail, fix_head;    /* to repair, when asked to */
  bool stale;                 /* identical copies, stale checksums */
  char tail_err[512];         /* what is wrong with the trailing footer */
  uint64_t limit;             /* where block data must end */
  struct vhd_dynheader header;
  uint32_t n_blocks;
  uint64_t bb;                /* bitmap + data bytes of a block */
  uint32_t *bat;
  struct named meta[VHD_MAX_REGIONS];
  unsigned n_meta;
  unsigned reported[N_KINDS]; /* findings reported, per kind */
  uint64_t more[N_KINDS];     /* ... and left out */
};

/* A finding that a repair may have fixed: REPAIRED or CORRUPT. */
static void
corrupt (struct checker *k, bool repaired, const char *fs, ...)
  __attribute__ ((format (printf, 3, 4)));

static void
corrupt (struct checker *k, bool repaired, const char *fs, ...)
{
  char msg[1024];
  va_list args;

  va_start (args, fs);
  vsnprintf (msg, sizeof msg, fs, args);
  va_end (args);
  check_report (k->c, repaired ? VHD_CHECK_REPAIRED : VHD_CHECK_CORRUPT, "%s",
                msg);
}

/* Whether to report one more finding of this kind (else count it). */
static bool
report_more (struct checker *k, unsigned kind)
{
  if (k->reported[kind] < MAX_REPORTS) {
    k->reported[kind]++;
    return true;
  }
  k->more[kind]++;
  return false;
}

/* --- footers ------------------------------------------------------------ */

static bool
same_substance (const struct vhd_footer *a, const struct vhd_footer *b)
{
  return a->disk_type == b->disk_type && a->data_offset == b->data_offset
         && a->current_size == b->current_size
         && memcmp (a->unique_id, b->unique_id, 16) == 0;
}

/* Both copies good: do they agree? */
static void
compare_copies (struct checker *k, const struct vhd_footer *head)
{
  if (memcmp (k->head, k->tail, VHD_FTR_SIZE) == 0)
    return;
  if (same_substance (head, &k->footer)) {
    check_report (k->c, VHD_CHECK_INFO, "the footer copy at offset 0 "
                  "differs from the trailing footer in minor fields");
    return;
  }
  k->fix_head = k->c->repair;
  corrupt (k, k->fix_head, "the footer copy at offset 0 disagrees with the "
           "trailing footer (current size %" PRIu64 " vs %" PRIu64 ", data "
           "offset %" PRIu64 " vs %" PRIu64 ")%s", head->current_size,
           k->footer.current_size, head->data_offset, k->footer.data_offset,
           k->fix_head ? ": rewritten from the trailing footer" : "");
}

/* A fixed disk whose footer Virtual PC wrote with 511 bytes. */
static bool
short_footer (struct checker *k)
{
  uint8_t raw[VHD_FTR_SIZE] = { 0 };

  if (!vhd_footer_has_cookie (k->tail + 1))
    return false;
  memcpy (raw, k->tail + 1, VHD_FTR_SIZE - 1);
  if (vhd_footer_decode (raw, &k->footer) == -1
      || k->footer.disk_type != VHD_DISK_FIXED)
    return false;
  check_report (k->c, VHD_CHECK_INFO, "fixed disk with the 511-byte footer "
                "of Virtual PC before 2004");
  k->tail_ok = true;
  k->limit = k->file_size - (VHD_FTR_SIZE - 1);
  return true;
}

/* The trailing footer is bad: use the copy, or stop (returns 1). */
static int
without_tail (struct checker *k)
{
  struct vhd_footer head;

  if (vhd_footer_has_cookie (k->head) && vhd_footer_decode (k->head, &head)
      == 0 && head.disk_type != VHD_DISK_FIXED) {
    k->footer = head;
    k->head_ok = true;
    k->fix_tail = k->c->repair;
    k->limit = k->file_size;
    return 0; /* reported once the end of the data is known */
  }
  if (memcmp (k->head, k->tail, VHD_FTR_SIZE) == 0
      && vhd_footer_decode_unverified (k->tail, &k->footer) == 0
      && k->footer.disk_type != VHD_DISK_FIXED) {
    k->stale = k->tail_ok = k->head_ok = true;
    k->fix_tail = k->fix_head = k->c->repair;
    corrupt (k, k->c->repair, "both footer copies fail their checksum but "
             "are identical (a hand-edited image)%s",
             k->c->repair ? ": checksums rewritten" : "");
    return 0;
  }
  check_report (k->c, VHD_CHECK_CORRUPT, "no usable footer: at the end: "
                "%s; at offset 0: %s", k->tail_err,
                vhd_footer_has_cookie (k->head) ? "damaged" : "none");
  return 1;
}

/* 0: go on with k->footer, 1: nothing more to check. */
static int
check_footers (struct checker *k)
{
  struct vhd_footer head;

  k->limit = k->file_size - VHD_FTR_SIZE;
  if (vhd_footer_decode (k->tail, &k->footer) == 0) {
    k->tail_ok = true;
    if (k->footer.disk_type == VHD_DISK_FIXED)
      return 0;
    if (vhd_footer_has_cookie (k->head)
        && vhd_footer_decode (k->head, &head) == 0) {
      k->head_ok = true;
      compare_copies (k, &head);
      return 0;
    }
    k->fix_head = k->c->repair;
    corrupt (k, k->fix_head, "the footer copy at offset 0 is damaged (%s)%s",
             vhd_footer_has_cookie (k->head) ? error_message () : "no cookie",
             k->fix_head ? ": rewritten from the trailing footer" : "");
    return 0;
  }
  snprintf (k->tail_err, sizeof k->tail_err, "%s", error_message ());
  if (short_footer (k))
    return 0;
  return without_tail (k);
}

/* --- fixed disks ---------------------------------------------------------- */

static int
check_fixed (struct checker *k)
{
  uint64_t size = k->footer.current_size, gap;

  if (size > k->limit) {
    check_report (k->c, VHD_CHECK_CORRUPT, "fixed disk: current size %"
                  PRIu64 " is larger than the data before the footer (%"
                  PRIu64 " bytes)", size, k->limit);
    return 0;
  }
  check_report (k->c, VHD_CHECK_INFO, "fixed disk of %" PRIu64 " bytes",
                size);
  gap = k->limit - size;
  if (gap == 0)
    return 0;
  if (!k->c->repair) {
    check_report (k->c, VHD_CHECK_LEAKS, "%" PRIu64 " bytes between the "
                  "data and the footer are unused", gap);
    return 0;
  }
  if (vhd_write_footer (k->io, &k->footer, size) == -1
      || io_flush (k->io) == -1
      || k->io->ops->truncate (k->io, size + VHD_FTR_SIZE) == -1
      || io_flush (k->io) == -1)
    return -1;
  check_report (k->c, VHD_CHECK_REPAIRED, "%" PRIu64 " unused bytes between "
                "the data and the footer cut off", gap);
  return 0;
}

/* --- the dynamic header and the BAT -------------------------------------- */

static void
add_meta (struct checker *k, uint64_t start, uint64_t len, const char *what)
{
  struct named *r = &k->meta[k->n_meta++];

  r->start = start;
  r->end = start + len;
  snprintf (r->what, sizeof r->what, "%s", what);
}

/* 0: go on, 1: stop. */
static int
check_header (struct checker *k)
{
  uint8_t raw[VHD_DYN_SIZE];
  uint64_t off = k->footer.data_offset, end;

  if (off < VHD_FTR_SIZE || ADD_OVERFLOW (off, (uint64_t) VHD_DYN_SIZE, &end)
      || end > k->file_size) {
    check_report (k->c, VHD_CHECK_CORRUPT, "footer data offset %" PRIu64
                  ": the dynamic disk header does not lie inside the file "
                  "(%" PRIu64 " bytes)", off, k->file_size);
    return 1;
  }
  if (io_pread (k->io, raw, sizeof raw, off) == -1)
    return -1;
  if (vhd_dynheader_decode (raw, &k->header) == 0) {
    add_meta (k, off, VHD_DYN_SIZE, "the dynamic disk header");
    return 0;
  }
  check_report (k->c, k->stale ? VHD_CHECK_INFO : VHD_CHECK_CORRUPT,
                "dynamic disk header at offset %" PRIu64 ": %s", off,
                error_message ());
  if (vhd_dynheader_decode_unverified (raw, &k->header) == -1) {
    /* Unusable whatever its checksum: with stale footer checksums the
     * report above was only INFO, so count the corruption here. */
    check_report (k->c, VHD_CHECK_CORRUPT, "dynamic disk header at offset %"
                  PRIu64 " is unusable (%s)%s", off, error_message (),
                  k->c->repair ? ": cannot be repaired" : "");
    return 1;
  }
  if (k->stale && k->c->repair) {
    put_be32 (raw + VHD_DYN_CHECKSUM, vhd_dynheader_checksum (raw));
    if (io_pwrite (k->io, raw, SECTOR_SIZE, off) == -1)
      return -1;
    check_report (k->c, VHD_CHECK_REPAIRED, "dynamic disk header checksum "
                  "rewritten");
  }
  add_meta (k, off, VHD_DYN_SIZE, "the dynamic disk header");
  return 0;
}

/* 0: go on with k->n_blocks entries to read, 1: stop. */
static int
check_bat_place (struct checker *k)
{
  const struct vhd_dynheader *h = &k->header;
  uint64_t n = k->footer.current_size / h->block_size
               + (k->footer.current_size % h->block_size != 0);
  uint64_t end;

  if (n > VHD_MAX_BAT_ENTRIES) {
    check_report (k->c, VHD_CHECK_CORRUPT, "current size %" PRIu64 " needs %"
                  PRIu64 " BAT entries, more than the %u supported",
                  k->footer.current_size, n, VHD_MAX_BAT_ENTRIES);
    return 1;
  }
  if (h->max_table_entries < n) {
    check_report (k->c, VHD_CHECK_CORRUPT, "max table entries %" PRIu32
                  " cannot map the current size %" PRIu64 " (%" PRIu64
                  " blocks)", h->max_table_entries, k->footer.current_size,
                  n);
    n = h->max_table_entries;
  }
  if (h->table_offset < VHD_FTR_SIZE
      || ADD_OVERFLOW (h->table_offset, (uint64_t) h->max_table_entries * 4,
                       &end)
      || end > k->file_size) {
    check_report (k->c, VHD_CHECK_CORRUPT, "BAT at offset %" PRIu64 " with %"
                  PRIu32 " entries does not lie inside the file (%" PRIu64
                  " bytes)", h->table_offset, h->max_table_entries,
                  k->file_size);
    return 1;
  }
  add_meta (k, h->table_offset, MIN (ROUND_UP (end, (uint64_t) SECTOR_SIZE),
                                     k->file_size) - h->table_offset,
            "the BAT");
  k->n_blocks = (uint32_t) n;
  k->bb = (uint64_t) vhd_bitmap_size (h->block_size) + h->block_size;
  return 0;
}

static int
read_bat (struct checker *k)
{
  uint32_t done = 0;
  uint8_t *buf;

  k->bat = malloc (MAX ((size_t) k->n_blocks, (size_t) 1) * sizeof *k->bat);
  buf = malloc ((size_t) BAT_CHUNK * 4);
  if (k->bat == NULL || buf == NULL) {
    free (buf);
    set_error (ENOMEM, "out of memory for a BAT of %" PRIu32 " entries",
               k->n_blocks);
    return -1;
  }
  while (done < k->n_blocks) {
    uint32_t n = MIN (k->n_blocks - done, BAT_CHUNK);
    if (io_pread (k->io, buf, (size_t) n * 4,
                  k->header.table_offset + (uint64_t) done * 4) == -1) {
      free (buf);
      return -1;
    }
    vhd_bat_decode (buf, n, k->bat + done);
    done += n;
  }
  free (buf);
  return 0;
}

/* --- parent locators ------------------------------------------------------ */

static int
check_locator (struct checker *k, unsigned i)
{
  const struct vhd_locator *l = &k->header.locators[i];
  char name[5], what[40];
  uint8_t *data;
  char *path;
  uint64_t end;

  vhd_platform_name (l->platform_code, name);
  if (l->data_length > VHD_LOCATOR_MAX_DATA || l->data_offset < VHD_FTR_SIZE
      || ADD_OVERFLOW (l->data_offset, (uint64_t) l->data_length, &end)
      || end > k->file_size) {
    check_report (k->c, VHD_CHECK_CORRUPT, "parent locator %u (%s): %" PRIu32
                  " bytes at offset %" PRIu64 " do not lie inside the file",
                  i, name, l->data_length, l->data_offset);
    return 0;
  }
  data = malloc (MAX ((size_t) l->data_length, (size_t) 1));
  if (data == NULL) {
    set_error (ENOMEM, "out of memory");
    return -1;
  }
  if (io_pread (k->io, data, l->data_length, l->data_offset) == -1) {
    free (data);
    return -1;
  }
  path = vhd_locator_path (l->platform_code, data, l->data_length);
  free (data);
  if (path == NULL)
    check_report (k->c, VHD_CHECK_CORRUPT, "parent locator %u (%s): %s", i,
                  name, error_message ());
  else
    check_report (k->c, VHD_CHECK_INFO, "parent locator %u (%s): %s", i,
                  name, path);
  free (path);
  snprintf (what, sizeof what, "parent locator %u's data", i);
  add_meta (k, l->data_offset,
            MIN (ROUND_UP (end, (uint64_t) SECTOR_SIZE), k->file_size)
              - l->data_offset, what);
  return 0;
}

static int
check_locators (struct checker *k)
{
  unsigned i, n = 0;

  if (k->footer.disk_type != VHD_DISK_DIFFERENCING)
    return 0;
  for (i = 0; i < VHD_LOCATOR_COUNT; i++) {
    uint32_t code = k->header.locators[i].platform_code;
    if ((code != VHD_PLATFORM_W2KU && code != VHD_PLATFORM_W2RU
         && code != VHD_PLATFORM_MACX)
        || k->header.locators[i].data_length == 0)
      continue;
    n++;
    if (check_locator (k, i) == -1)
      return -1;
  }
  if (n == 0)
    check_report (k->c, VHD_CHECK_INFO, "no parent locator: the parent is "
                  "found by its name only");
  return 0;
}

/* Metadata regions overlapping each other. */
static bool
check_meta_overlaps (struct checker *k)
{
  unsigned i, j;
  bool found = false;

  for (i = 0; i < k->n_meta; i++)
    for (j = i + 1; j < k->n_meta; j++)
      if (k->meta[i].start < k->meta[j].end
          && k->meta[j].start < k->meta[i].end) {
        check_report (k->c, VHD_CHECK_CORRUPT, "%s (offset %" PRIu64
                      ") overlaps %s (offset %" PRIu64 ")", k->meta[i].what,
                      k->meta[i].start, k->meta[j].what, k->meta[j].start);
        found = true;
      }
  return found;
}

/* --- blocks --------------------------------------------------------------- */

struct span {
  uint64_t start, end;
  uint32_t block;
};

static int
cmp_span (const void *x, const void *y)
{
  const struct span *a = x, *b = y;

  return a->start < b->start ? -1 : a->start > b->start;
}

/* Write BAT entry i as unused: its sector, read, patched, written whole. */
static int
drop_entry (struct checker *k, uint32_t i)
{
  uint8_t raw[SECTOR_SIZE];
  uint64_t off = k->header.table_offset
                 + (uint64_t) (i / VHD_BAT_PER_SECTOR) * SECTOR_SIZE;
  size_t len = (size_t) MIN ((uint64_t) SECTOR_SIZE, k->file_size - off);

  if (io_pread (k->io, raw, len, off) == -1)
    return -1;
  put_be32 (raw + (i % VHD_BAT_PER_SECTOR) * 4, VHD_BAT_UNUSED);
  if (io_pwrite (k->io, raw, len, off) == -1 || io_flush (k->io) == -1)
    return -1;
  k->bat[i] = VHD_BAT_UNUSED;
  return 0;
}

/* Entry i maps a block that runs past the end of the data. */
static int
past_end (struct checker *k, uint32_t i, uint64_t start)
{
  uint64_t first = (uint64_t) i * k->header.block_size;
  uint64_t last = MIN (first + k->header.block_size, k->footer.current_size);
  bool fix = k->c->repair;

  if (fix && drop_entry (k, i) == -1)
    return -1;
  if (report_more (k, K_PAST_END))
    corrupt (k, fix, "BAT entry %" PRIu32 ": block at offset %" PRIu64
             " runs past the end of the data (%" PRIu64 ")%s%" PRIu64 "-%"
             PRIu64 "%s", i, start, k->limit,
             fix ? ": dropped; virtual bytes " : " (virtual bytes ", first,
             last - 1, !fix ? ")"
             : k->footer.disk_type == VHD_DISK_DIFFERENCING
               ? " now read from the parent" : " now read as zeros");
  return 0;
}

static void
over_meta (struct checker *k, uint32_t i, uint64_t start, uint64_t end)
{
  unsigned m;

  for (m = 0; m < k->n_meta; m++)
    if (start < k->meta[m].end && k->meta[m].start < end
        && report_more (k, K_OVER_META))
      check_report (k->c, VHD_CHECK_CORRUPT, "BAT entry %" PRIu32 ": block "
                    "at offset %" PRIu64 " overlaps %s", i, start,
                    k->meta[m].what);
}

static void
overlapping (struct checker *k, const struct span *sp, size_t n)
{
  size_t j, widest = 0;

  for (j = 1; j < n; j++) {
    if (sp[j].start < sp[widest].end && report_more (k, K_OVERLAP))
      check_report (k->c, VHD_CHECK_CORRUPT, "BAT entries %" PRIu32 " and %"
                    PRIu32 ": their blocks (offsets %" PRIu64 " and %" PRIu64
                    ") overlap", sp[widest].block, sp[j].block,
                    sp[widest].start, sp[j].start);
    if (sp[j].end > sp[widest].end)
      widest = j;
  }
}

static void
report_the_rest (struct checker *k)
{
  static const char *const what[] = {
    [K_PAST_END] = "blocks past the end of the data",
    [K_OVER_META] = "blocks overlapping metadata",
    [K_OVERLAP] = "overlapping blocks",
  };
  unsigned i;

  for (i = 0; i < N_KINDS; i++)
    if (k->more[i])
      check_report (k->c, i == K_PAST_END && k->c->repair
                            ? VHD_CHECK_REPAIRED : VHD_CHECK_CORRUPT,
                    "... and %" PRIu64 " more %s", k->more[i], what[i]);
}

/* --- leaks and the end of the file ---------------------------------------- */

/* Cut the file after end (the end of what it uses) with raw as footer. */
static int
cut_after (struct checker *k, const uint8_t *raw, uint64_t end)
{
  if (io_pwrite (k->io, raw, VHD_FTR_SIZE, end) == -1
      || io_flush (k->io) == -1
      || k->io->ops->truncate (k->io, end + VHD_FTR_SIZE) == -1
      || io_flush (k->io) == -1) {
    prefix_error ("cutting the file after offset %" PRIu64, end);
    return -1;
  }
  return 0;
}

/* The trailing footer, or the gap before it; end: what the file uses. */
static int
check_end (struct checker *k, uint64_t end)
{
  uint8_t raw[VHD_FTR_SIZE];
  uint64_t gap = k->limit > end ? k->limit - end : 0;

  if (!k->tail_ok) {
    if (k->fix_tail && cut_after (k, k->head, end) == -1)
      return -1;
    corrupt (k, k->fix_tail, "the footer at the end of the file is damaged "
             "(%s)%s", k->tail_err, k->fix_tail
             ? "; rewritten from the copy at offset 0" : "; the copy at "
             "offset 0 is good");
    return 0;
  }
  if (gap < MAX_PADDING)
    return 0;
  if (!k->c->repair) {
    check_report (k->c, VHD_CHECK_LEAKS, "%" PRIu64 " unused bytes at the "
                  "end of the file, before the footer", gap);
    return 0;
  }
  memcpy (raw, k->tail, sizeof raw);
  if (k->stale)
    put_be32 (raw + VHD_FTR_CHECKSUM, vhd_footer_checksum (raw));
  if (cut_after (k, raw, end) == -1)
    return -1;
  check_report (k->c, VHD_CHECK_REPAIRED, "%" PRIu64 " unused bytes at the "
                "end of the file cut off", gap);
  return 0;
}

/* Whether the host pages inside [start, end) are all holes: a VHD
 * block's bitmap and data are sector aligned, so the pages at the edges
 * of a punched block keep bytes of their neighbours. */
static bool
host_hole (struct io *io, uint64_t start, uint64_t end)
{
  uint64_t from = ROUND_UP (start, (uint64_t) HOST_PAGE);
  uint64_t to = end / HOST_PAGE * HOST_PAGE;

  return to > from && io_is_hole (io, from, to - from);
}

/* Gaps among the metadata and blocks; returns the end of the last. */
static uint64_t
check_gaps (struct checker *k, struct span *all, size_t n,
            uint64_t first_block)
{
  uint64_t cursor = 0, leaked = 0, first_leak = 0, punched = 0;
  size_t i, gaps = 0, holes = 0;

  qsort (all, n, sizeof *all, cmp_span);
  for (i = 0; i < n; i++) {
    uint64_t gap = all[i].start > cursor ? all[i].start - cursor : 0;
    if (gap >= MAX_PADDING
        && !(all[i].start <= first_block && gap < k->bb)) {
      if (host_hole (k->io, cursor, all[i].start)) {
        holes++;
        punched += gap;
      }
      else {
        if (gaps++ == 0)
          first_leak = cursor;
        leaked += gap;
      }
    }
    cursor = MAX (cursor, all[i].end);
  }
  if (gaps)
    check_report (k->c, VHD_CHECK_LEAKS, "%" PRIu64 " bytes in %zu unused "
                  "region%s among the blocks (the first at offset %" PRIu64
                  "); compacting gives them back", leaked, gaps,
                  gaps == 1 ? "" : "s", first_leak);
  if (holes)
    check_report (k->c, VHD_CHECK_INFO, "%" PRIu64 " bytes in %zu unused "
                  "region%s among the blocks are holes of the host file "
                  "(no space used; compact moves blocks into them)", punched,
                  holes, holes == 1 ? "" : "s");
  return ROUND_UP (cursor, (uint64_t) SECTOR_SIZE);
}

static int
check_blocks (struct checker *k)
{
  struct span *sp = malloc ((k->n_blocks + (size_t) VHD_MAX_REGIONS)
                            * sizeof *sp);
  size_t n = 0, allocated = 0;
  uint64_t end;
  uint32_t i;
  unsigned m;
  int r = 0;

  if (sp == NULL) {
    set_error (ENOMEM, "out of memory");
    return -1;
  }
  for (i = 0; i < k->n_blocks && r == 0; i++) {
    uint64_t start = (uint64_t) k->bat[i] * SECTOR_SIZE;
    if (k->bat[i] == VHD_BAT_UNUSED)
      continue;
    allocated++;
    if (start + k->bb > k->limit) {
      r = past_end (k, i, start);
      continue;
    }
    over_meta (k, i, start, start + k->bb);
    sp[n++] = (struct span) { start, start + k->bb, i };
  }
  if (r == 0) {
    qsort (sp, n, sizeof *sp, cmp_span);
    overlapping (k, sp, n);
    report_the_rest (k);
    check_report (k->c, VHD_CHECK_INFO, "%s disk: %zu of %" PRIu32
                  " blocks of %" PRIu32 " bytes allocated",
                  k->footer.disk_type == VHD_DISK_DIFFERENCING
                    ? "differencing" : "dynamic", allocated, k->n_blocks,
                  k->header.block_size);
    for (m = 0; m < k->n_meta; m++)
      sp[n + m] = (struct span) { k->meta[m].start, k->meta[m].end, 0 };
    end = check_gaps (k, sp, n + k->n_meta, n ? sp[0].start : UINT64_MAX);
    r = check_end (k, end);
  }
  free (sp);
  return r;
}

/* --- the driver hook ------------------------------------------------------ */

static int
repair_footers (struct checker *k)
{
  uint8_t raw[VHD_FTR_SIZE];

  if (k->stale && k->fix_tail) {
    memcpy (raw, k->tail, sizeof raw);
    put_be32 (raw + VHD_FTR_CHECKSUM, vhd_footer_checksum (raw));
    if (io_pwrite (k->io, raw, sizeof raw, k->file_size - VHD_FTR_SIZE) == -1
        || io_flush (k->io) == -1 || io_pwrite (k->io, raw, sizeof raw, 0)
                                       == -1)
      return -1;
    return io_flush (k->io);
  }
  if (k->fix_head && (io_pwrite (k->io, k->tail, VHD_FTR_SIZE, 0) == -1
                      || io_flush (k->io) == -1))
    return -1;
  return 0;
}

/* The BAT (written in whole sectors) reaching a good trailing footer. */
static bool
bat_over_footer (struct checker *k)
{
  uint64_t end = k->header.table_offset
                 + (uint64_t) k->header.max_table_entries * 4;

  if (k->tail_err[0] != '\0'
      || ROUND_UP (end, (uint64_t) SECTOR_SIZE)
         <= k->file_size - VHD_FTR_SIZE)
    return false;
  check_report (k->c, VHD_CHECK_CORRUPT, "the BAT (offset %" PRIu64 ") "
                "overlaps the trailing footer (offset %" PRIu64 ")",
                k->header.table_offset, k->file_size - VHD_FTR_SIZE);
  return true;
}

static int
check_sparse (struct checker *k)
{
  int r;

  /* The footers were reported repaired: do it now, before any check
   * below can stop early (they stand apart from everything else). */
  if (repair_footers (k) == -1)
    return -1;
  add_meta (k, 0, VHD_FTR_SIZE, "the footer copy");
  r = check_header (k);
  if (r == 0)
    r = check_bat_place (k);
  if (r != 0)
    return r == 1 ? 0 : -1;
  if (read_bat (k) == -1 || check_locators (k) == -1)
    return -1;
  /* Metadata on top of metadata: any repair could write over the other
   * structure, so nothing more is touched. */
  if (check_meta_overlaps (k) || bat_over_footer (k))
    return 0;
  return check_blocks (k);
}

int
vhd_op_check (struct io *io, struct check_ctx *c)
{
  struct checker k = { .io = io, .c = c };
  int64_t size = io_get_size (io);
  int r;

  if (size < 0)
    return -1;
  k.file_size = (uint64_t) size;
  if (k.file_size < VHD_FTR_SIZE) {
    check_report (c, VHD_CHECK_CORRUPT, "file of %" PRIu64 " bytes is too "
                  "small for a VHD", k.file_size);
    return 0;
  }
  if (io_pread (io, k.tail, VHD_FTR_SIZE, k.file_size - VHD_FTR_SIZE) == -1
      || io_pread (io, k.head, VHD_FTR_SIZE, 0) == -1)
    return -1;
  r = check_footers (&k);
  if (r != 0)
    return r == 1 ? 0 : -1;
  if (k.footer.disk_type == VHD_DISK_FIXED)
    return check_fixed (&k);
  r = check_sparse (&k);
  free (k.bat);
  return r;
}
