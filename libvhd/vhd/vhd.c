/* vhd.c: the VHD format driver (Microsoft "Virtual Hard Disk Image Format
 * Specification" 1.0): fixed, dynamic and differencing disks.
 *
 *   fixed:          [ data (current_size) ][ footer ]
 *   dynamic/diff:   [ footer copy ][ dynamic header ][ BAT ][ locators ]
 *                   [ bitmap | block ] ... [ footer ]
 *
 * Open reads the trailing footer, falling back to the copy at offset 0
 * (dynamic and differencing disks), checks every offset and size the
 * image gives before using it, and keeps the BAT in memory.  The virtual
 * size is the footer's current size, as Hyper-V, libvhdi and VirtualBox
 * read it (never the CHS geometry).  Reads of a dynamic disk ignore the
 * sector bitmaps (as qemu and libvhdi do); reads of a differencing disk
 * follow them.  Creation is in vhd-create.c.
 *
 * CRASH SAFETY
 *
 * Allocating a block (pwrite into a block the BAT does not map):
 *   1. write the user's data into the new block's data area at next_free
 *      (past the end of the file: the rest of the block stays a hole and
 *      reads as zeros);
 *   2. write the footer at the new end of the file;
 *   3. record the BAT entry and the block's sector bitmap (dynamic: all
 *      ones; differencing: the written sectors) in memory, dirty.
 * Writing into an allocated block writes the data in place; in a
 * differencing disk it also sets the sectors' bits in the cached bitmap
 * (dirty).  Flush then does:
 *   4. io_flush: the data is durable;
 *   5. write the dirty bitmaps;
 *   6. write the dirty BAT sectors, whole 512-byte sectors;
 *   7. io_flush;
 *   8. give back the space of blocks unmapped since the last flush
 *      (vhd-space.c: punched, or cut off the end of the file).
 * So the BAT and the bitmaps on disk never point at data that is not
 * durable.  A crash before 6 loses only the writes since the last flush
 * (those blocks are leaked space, not corruption).  Step 1 overwrites
 * nothing; the old trailing footer is overwritten only by the new block's
 * bitmap in step 5, after step 2 wrote the new one; should a crash leave
 * the file ending in data rather than a footer, open uses the copy at
 * offset 0, places new blocks after the end of the file, and the next
 * read-write flush writes a fresh trailing footer.  A torn BAT sector
 * holds old and new entries, each of them valid.  tests/api/
 * test-vhd-crash.c crashes a workload at every write and checks this.
 *
 * The operations have their own notes: vhd-space.c (freeing, moving and
 * adding space: the invariants they all keep), vhd-zero.c, vhd-defrag.c,
 * vhd-resize.c, vhd-parent.c and vhd-check.c; tests/api/
 * test-vhd-ops-crash.c crashes each of them at every write.
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "byteorder.h"
#include "checked-overflow.h"
#include "minmax.h"
#include "vhd/vhd.h"

/* Flush on our own once this many bitmaps are dirty (or this many bytes). */
#define MAX_DIRTY_BITMAPS 4096U
#define MAX_DIRTY_BYTES (32U << 20)

static int
drv_probe (const uint8_t *head, size_t head_len, const uint8_t *tail,
           size_t tail_len)
{
  if (tail_len >= 8 && vhd_footer_has_cookie (tail))
    return 100;
  if (head_len >= 8 && vhd_footer_has_cookie (head))
    return 100;
  /* Virtual PC before 2004 wrote 511-byte footers on fixed disks. */
  if (tail_len == SECTOR_SIZE && vhd_footer_has_cookie (tail + 1))
    return 100;
  return 0;
}

uint32_t
vhd_disk_timestamp (const struct vhd_disk *d)
{
  const struct vhd_state *s = d->priv;

  if (d->ops != &vhd_format_ops || s == NULL)
    return 0;
  return s->footer.timestamp;
}

/* --- open: the footer ------------------------------------------------- */

/* The footer of a fixed disk written by Virtual PC before 2004: 511 bytes
 * (the last reserved byte missing), at the very end of the file. */
static bool
try_short_footer (struct vhd_state *s, const uint8_t *tail)
{
  uint8_t raw[VHD_FTR_SIZE] = { 0 };

  if (s->file_size < VHD_FTR_SIZE || !vhd_footer_has_cookie (tail + 1))
    return false;
  memcpy (raw, tail + 1, VHD_FTR_SIZE - 1);
  if (vhd_footer_decode (raw, &s->footer) == -1
      || s->footer.disk_type != VHD_DISK_FIXED)
    return false;
  s->trailer_ok = true;
  s->footer_pos = s->file_size - (VHD_FTR_SIZE - 1);
  return true;
}

/* The copy at offset 0 says what tail says, but with a stale checksum. */
static bool
stale_copy_of (const uint8_t *head, const uint8_t *tail)
{
  return vhd_footer_has_cookie (head)
         && get_be32 (head + VHD_FTR_CHECKSUM) != vhd_footer_checksum (head)
         && memcmp (head, tail, VHD_FTR_CHECKSUM) == 0
         && memcmp (head + VHD_FTR_CHECKSUM + 4, tail + VHD_FTR_CHECKSUM + 4,
                    VHD_FTR_SIZE - VHD_FTR_CHECKSUM - 4) == 0;
}

/* Pick the footer: the trailing one, else the copy at offset 0 (dynamic
 * and differencing disks only: at offset 0 of a fixed disk is its data).
 *
 * Quirk: the dfvfs test chain (corpus dfvfs-image-chain/) was hand-edited
 * without updating checksums: both footer copies are identical and both
 * fail only the checksum (libvhdi and dissect read it).  Two byte-identical
 * copies cannot come from a torn write, so such a footer is accepted, and
 * so is the dynamic header's checksum of an image whose copy at offset 0
 * has a stale checksum over the same content as the footer in use (which
 * stays true once we have written a correct trailing footer: we never
 * write the copy at offset 0). */
static int
select_footer (struct vhd_state *s, const uint8_t *tail, const uint8_t *head)
{
  s->footer_pos = s->file_size - VHD_FTR_SIZE;
  if (vhd_footer_decode (tail, &s->footer) == 0) {
    s->trailer_ok = true;
    s->stale_checksums = stale_copy_of (head, tail);
    return 0;
  }
  if (vhd_footer_has_cookie (head) && vhd_footer_decode (head, &s->footer) == 0
      && s->footer.disk_type != VHD_DISK_FIXED)
    return 0;
  if (try_short_footer (s, tail))
    return 0;
  if (memcmp (tail, head, VHD_FTR_SIZE) == 0
      && vhd_footer_decode_unverified (tail, &s->footer) == 0
      && s->footer.disk_type != VHD_DISK_FIXED) {
    s->trailer_ok = true;
    s->stale_checksums = true;
    return 0;
  }
  /* Report the copy that looked like a footer, the trailing one first. */
  if (vhd_footer_has_cookie (tail) || !vhd_footer_has_cookie (head)) {
    vhd_footer_decode (tail, &s->footer);
    prefix_error ("footer at offset %" PRIu64, s->footer_pos);
  }
  else {
    vhd_footer_decode (head, &s->footer);
    prefix_error ("no footer at the end; footer copy at offset 0");
  }
  return -1;
}

static int
read_footer (struct vhd_disk *d, struct vhd_state *s)
{
  uint8_t tail[VHD_FTR_SIZE], head[VHD_FTR_SIZE];
  int64_t size = io_get_size (d->io);

  if (size < 0)
    return -1;
  if (size < VHD_FTR_SIZE) {
    set_error (EBADMSG, "file of %" PRId64 " bytes is too small for a VHD",
               size);
    return -1;
  }
  s->file_size = (uint64_t) size;
  if (io_pread (d->io, tail, sizeof tail, s->file_size - VHD_FTR_SIZE) == -1
      || io_pread (d->io, head, sizeof head, 0) == -1)
    return -1;
  return select_footer (s, tail, head);
}

/* --- open: dynamic header and BAT --------------------------------------- */

static int
read_dynheader (struct vhd_disk *d, struct vhd_state *s)
{
  uint8_t raw[VHD_DYN_SIZE];
  uint64_t off = s->footer.data_offset, end;
  int r;

  if (off < VHD_FTR_SIZE || ADD_OVERFLOW (off, (uint64_t) VHD_DYN_SIZE, &end)
      || end > s->file_size) {
    set_error (EBADMSG, "footer data offset %" PRIu64 ": the dynamic disk "
               "header does not lie inside the file (%" PRIu64 " bytes)",
               off, s->file_size);
    return -1;
  }
  if (io_pread (d->io, raw, sizeof raw, off) == -1)
    return -1;
  if (s->stale_checksums)
    r = vhd_dynheader_decode_unverified (raw, &s->header);
  else
    r = vhd_dynheader_decode (raw, &s->header);
  if (r == -1)
    prefix_error ("at offset %" PRIu64, off);
  return r;
}

/* Table offset, entry count and block count against the file and caps. */
static int
check_bat_geometry (struct vhd_state *s)
{
  const struct vhd_dynheader *h = &s->header;
  uint64_t n_blocks, end;

  n_blocks = s->footer.current_size / h->block_size
             + (s->footer.current_size % h->block_size != 0);
  if (n_blocks > VHD_MAX_BAT_ENTRIES) {
    set_error (EFBIG, "current size %" PRIu64 " in blocks of %" PRIu32
               " bytes needs %" PRIu64 " BAT entries, more than the %u "
               "supported", s->footer.current_size, h->block_size,
               n_blocks, VHD_MAX_BAT_ENTRIES);
    return -1;
  }
  if (h->max_table_entries < n_blocks) {
    set_error (EBADMSG, "max table entries %" PRIu32 " cannot map the "
               "current size %" PRIu64 " (%" PRIu64 " blocks of %" PRIu32
               " bytes)", h->max_table_entries, s->footer.current_size,
               n_blocks, h->block_size);
    return -1;
  }
  if (h->table_offset < VHD_FTR_SIZE
      || ADD_OVERFLOW (h->table_offset, (uint64_t) h->max_table_entries * 4,
                       &end)
      || end > s->file_size) {
    set_error (EBADMSG, "table offset %" PRIu64 " with %" PRIu32
               " max table entries: the BAT does not lie inside the file "
               "(%" PRIu64 " bytes)", h->table_offset, h->max_table_entries,
               s->file_size);
    return -1;
  }
  if (h->table_offset < s->footer.data_offset + VHD_DYN_SIZE
      && s->footer.data_offset < end) {
    set_error (EBADMSG, "table offset %" PRIu64 ": the BAT overlaps the "
               "dynamic disk header", h->table_offset);
    return -1;
  }
  /* BAT sectors are written whole: none may reach the trailing footer. */
  if (s->trailer_ok && ROUND_UP (end, (uint64_t) SECTOR_SIZE) > s->footer_pos) {
    set_error (EBADMSG, "table offset %" PRIu64 ": the BAT overlaps the "
               "footer at offset %" PRIu64, h->table_offset, s->footer_pos);
    return -1;
  }
  s->n_blocks = (uint32_t) n_blocks;
  s->bitmap_size = vhd_bitmap_size (h->block_size);
  return 0;
}

/* --- open: where everything lies --------------------------------------- */

/* The metadata areas blocks must not overlap. */
struct region {
  uint64_t start, end;
  char what[48];
};
#define MAX_REGIONS (4 + VHD_LOCATOR_COUNT)

static unsigned
add_region (struct region *r, unsigned n, uint64_t start, uint64_t len,
            const char *what)
{
  r[n].start = start;
  r[n].end = start + len; /* callers checked that it fits the file */
  snprintf (r[n].what, sizeof r[n].what, "%s", what);
  return n + 1;
}

static bool
is_differencing (const struct vhd_state *s)
{
  return s->footer.disk_type == VHD_DISK_DIFFERENCING;
}

/* Check locator i of a differencing disk; true if it holds a path we
 * read (W2ku, W2ru, MacX) with data inside the file. */
static int
check_locator (const struct vhd_state *s, unsigned i, bool *usable)
{
  const struct vhd_locator *l = &s->header.locators[i];
  uint64_t end;
  char name[5];

  *usable = false;
  if (l->platform_code != VHD_PLATFORM_W2KU
      && l->platform_code != VHD_PLATFORM_W2RU
      && l->platform_code != VHD_PLATFORM_MACX)
    return 0; /* empty, or deprecated: ignored */
  vhd_platform_name (l->platform_code, name);
  if (l->data_length > VHD_LOCATOR_MAX_DATA) {
    set_error (EBADMSG, "parent locator %u (%s): data length %" PRIu32
               " is more than %u bytes", i, name, l->data_length,
               VHD_LOCATOR_MAX_DATA);
    return -1;
  }
  if (l->data_offset < VHD_FTR_SIZE
      || ADD_OVERFLOW (l->data_offset, (uint64_t) l->data_length, &end)
      || end > s->file_size) {
    set_error (EBADMSG, "parent locator %u (%s): data at offset %" PRIu64
               " (%" PRIu32 " bytes) does not lie inside the file",
               i, name, l->data_offset, l->data_length);
    return -1;
  }
  *usable = l->data_length > 0;
  return 0;
}

static int
collect_regions (const struct vhd_state *s, struct region *r, unsigned *n)
{
  const struct vhd_dynheader *h = &s->header;
  uint64_t bat_len = ROUND_UP ((uint64_t) h->max_table_entries * 4,
                               (uint64_t) SECTOR_SIZE);
  unsigned i, k = 0;

  k = add_region (r, k, 0, VHD_FTR_SIZE, "the footer copy");
  k = add_region (r, k, s->footer.data_offset, VHD_DYN_SIZE,
                  "the dynamic disk header");
  k = add_region (r, k, h->table_offset, bat_len, "the BAT");
  if (s->trailer_ok)
    k = add_region (r, k, s->footer_pos, s->file_size - s->footer_pos,
                    "the footer");
  for (i = 0; is_differencing (s) && i < VHD_LOCATOR_COUNT; i++) {
    const struct vhd_locator *l = &h->locators[i];
    char what[48];
    bool usable;
    if (check_locator (s, i, &usable) == -1)
      return -1;
    if (!usable)
      continue;
    snprintf (what, sizeof what, "parent locator %u's data", i);
    k = add_region (r, k, l->data_offset,
                    ROUND_UP ((uint64_t) l->data_length,
                              (uint64_t) SECTOR_SIZE), what);
  }
  *n = k;
  return 0;
}

static int
cmp_u64 (const void *a, const void *b)
{
  uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;

  return x < y ? -1 : x > y;
}

/* Block i (at sector) against the file's end and the metadata. */
static int
check_block (const struct vhd_state *s, uint32_t i, uint32_t sector,
             const struct region *r, unsigned n_regions)
{
  uint64_t start = (uint64_t) sector * SECTOR_SIZE; /* < 2^41 */
  uint64_t end = start + s->bitmap_size + s->header.block_size;
  uint64_t limit = s->trailer_ok ? s->footer_pos : s->file_size;
  unsigned k;

  if (end > limit) {
    set_error (EBADMSG, "BAT entry %" PRIu32 ": block at offset %" PRIu64
               " runs past the end of the data (%" PRIu64 ")", i, start,
               limit);
    return -1;
  }
  for (k = 0; k < n_regions; k++)
    if (start < r[k].end && r[k].start < end) {
      set_error (EBADMSG, "BAT entry %" PRIu32 ": block at offset %" PRIu64
                 " overlaps %s", i, start, r[k].what);
      return -1;
    }
  return 0;
}

/* Every allocated block inside the file, clear of the metadata and of
 * each other; then the first free offset. */
static int
check_blocks (struct vhd_state *s)
{
  struct region r[MAX_REGIONS];
  uint64_t *sorted, block_bytes = s->bitmap_size + s->header.block_size;
  uint64_t end = 0;
  unsigned n_regions, k;
  uint32_t i, n = 0;

  if (collect_regions (s, r, &n_regions) == -1)
    return -1;
  sorted = malloc (MAX (s->n_blocks, 1U) * sizeof *sorted);
  if (sorted == NULL) {
    set_error (ENOMEM, "out of memory");
    return -1;
  }
  for (i = 0; i < s->n_blocks; i++) {
    uint32_t sector = vhd_bat_get (&s->bat, i);
    if (sector == VHD_BAT_UNUSED)
      continue;
    if (check_block (s, i, sector, r, n_regions) == -1) {
      free (sorted);
      return -1;
    }
    sorted[n++] = (uint64_t) sector << 32 | i;
  }
  qsort (sorted, n, sizeof *sorted, cmp_u64);
  for (i = 0; i + 1 < n; i++)
    if ((sorted[i] >> 32) * SECTOR_SIZE + block_bytes
        > (sorted[i + 1] >> 32) * SECTOR_SIZE) {
      set_error (EBADMSG, "BAT entries %" PRIu32 " and %" PRIu32
                 ": their blocks overlap", (uint32_t) sorted[i],
                 (uint32_t) sorted[i + 1]);
      free (sorted);
      return -1;
    }
  if (n > 0)
    end = (sorted[n - 1] >> 32) * SECTOR_SIZE + block_bytes;
  free (sorted);
  for (k = 0; k < n_regions; k++)
    if (strcmp (r[k].what, "the footer") != 0)
      end = MAX (end, r[k].end);
  /* New blocks go over the trailing footer of a clean file, else past
   * whatever a crash left at the end. */
  end = MAX (end, s->trailer_ok ? s->footer_pos : s->file_size);
  s->next_free = ROUND_UP (end, (uint64_t) SECTOR_SIZE);
  return 0;
}

/* --- open: identity and parent ---------------------------------------- */

static int
read_locator_path (struct vhd_disk *d, const struct vhd_locator *l,
                   unsigned i)
{
  uint8_t *data = malloc (l->data_length);
  char *path;
  int r;

  if (data == NULL) {
    set_error (ENOMEM, "out of memory");
    return -1;
  }
  if (io_pread (d->io, data, l->data_length, l->data_offset) == -1) {
    free (data);
    return -1;
  }
  path = vhd_locator_path (l->platform_code, data, l->data_length);
  free (data);
  if (path == NULL) {
    prefix_error ("parent locator %u", i);
    return -1;
  }
  r = disk_add_parent_candidate (d, path);
  free (path);
  return r;
}

/* Candidates in the order the core should try them: W2ru, W2ku, MacX,
 * then the parent's name from the header. */
static int
add_parent_candidates (struct vhd_disk *d, struct vhd_state *s)
{
  static const uint32_t order[] = {
    VHD_PLATFORM_W2RU, VHD_PLATFORM_W2KU, VHD_PLATFORM_MACX,
  };
  unsigned o, i;
  char *name;
  int r;

  for (o = 0; o < sizeof order / sizeof order[0]; o++)
    for (i = 0; i < VHD_LOCATOR_COUNT; i++) {
      const struct vhd_locator *l = &s->header.locators[i];
      bool usable;
      if (l->platform_code != order[o])
        continue;
      if (check_locator (s, i, &usable) == -1
          || (usable && read_locator_path (d, l, i) == -1))
        return -1;
    }
  name = vhd_dynheader_parent_name (&s->header);
  if (name == NULL) {
    prefix_error ("parent unicode name");
    return -1;
  }
  r = disk_add_parent_candidate (d, name);
  free (name);
  return r;
}

static void
set_creator (struct vhd_disk *d, const char app[4])
{
  size_t n = 4, i;

  while (n > 0 && app[n - 1] == '\0')
    n--;
  for (i = 0; i < n; i++)
    d->creator[i] = app[i] >= 0x20 && app[i] < 0x7f ? app[i] : '?';
  d->creator[n] = '\0';
}

static void
fill_disk (struct vhd_disk *d, const struct vhd_state *s)
{
  static const enum vhd_type types[] = {
    [VHD_DISK_FIXED] = VHD_TYPE_FIXED,
    [VHD_DISK_DYNAMIC] = VHD_TYPE_DYNAMIC,
    [VHD_DISK_DIFFERENCING] = VHD_TYPE_DIFFERENCING,
  };

  d->size = s->footer.current_size;
  d->type = types[s->footer.disk_type];
  d->logical_sector = d->physical_sector = SECTOR_SIZE;
  memcpy (d->id, s->footer.unique_id, 16);
  memcpy (d->link_id, s->footer.unique_id, 16);
  set_creator (d, s->footer.creator_app);
  if (s->footer.disk_type == VHD_DISK_FIXED) {
    d->block_size = 0;
    d->write_align = 1; /* written in place: any byte range will do */
    return;
  }
  d->block_size = s->header.block_size;
  if (is_differencing (s))
    memcpy (d->parent_link_id, s->header.parent_unique_id, 16);
}

/* --- open ----------------------------------------------------------------- */

static int
open_fixed (struct vhd_state *s)
{
  if (s->footer.current_size > s->footer_pos) {
    set_error (EBADMSG, "fixed disk: current size %" PRIu64 " is larger "
               "than the data before the footer (%" PRIu64 " bytes)",
               s->footer.current_size, s->footer_pos);
    return -1;
  }
  return 0;
}

static int
open_sparse (struct vhd_disk *d, struct vhd_state *s)
{
  if (read_dynheader (d, s) == -1 || check_bat_geometry (s) == -1)
    return -1;
  if (vhd_bat_load (&s->bat, d->io, s->header.table_offset,
                    s->header.max_table_entries, s->n_blocks) == -1
      || vhd_bmcache_init (&s->bitmaps, s->bitmap_size) == -1)
    return -1;
  if (check_blocks (s) == -1)
    return -1;
  if (is_differencing (s))
    return add_parent_candidates (d, s);
  return 0;
}

static int
drv_open (struct vhd_disk *d)
{
  struct vhd_state *s = d->priv;
  int r;

  if (read_footer (d, s) == -1)
    return -1;
  if (s->footer.disk_type == VHD_DISK_FIXED)
    r = open_fixed (s);
  else
    r = open_sparse (d, s);
  if (r == -1)
    return -1;
  fill_disk (d, s);
  return 0;
}

static void
drv_close (struct vhd_disk *d)
{
  struct vhd_state *s = d->priv;

  if (s == NULL)
    return;
  vhd_bat_free (&s->bat);
  vhd_bmcache_free (&s->bitmaps);
  free (s->freed.sectors);
}

/* --- map ------------------------------------------------------------------ */

static int
map_bitmap (struct vhd_disk *d, struct vhd_state *s, uint32_t block,
            uint64_t in_block, uint64_t len, struct extent *e)
{
  uint64_t host = (uint64_t) vhd_bat_get (&s->bat, block) * SECTOR_SIZE;
  uint32_t first = (uint32_t) (in_block / SECTOR_SIZE);
  uint32_t max = (uint32_t) DIV_ROUND_UP (in_block % SECTOR_SIZE + len,
                                          (uint64_t) SECTOR_SIZE);
  struct vhd_bitmap *bm = vhd_bmcache_get (&s->bitmaps, d->io, block, host);
  uint32_t run;

  if (bm == NULL)
    return -1;
  run = vhd_bitmap_run (bm->bits, first, max);
  e->length = MIN (len, (uint64_t) (first + run) * SECTOR_SIZE - in_block);
  if (vhd_bitmap_test (bm->bits, first)) {
    e->state = LAYER_DATA;
    e->host_offset = host + s->bitmap_size + in_block;
  }
  else
    e->state = LAYER_ABSENT;
  return 0;
}

static int
drv_map (struct vhd_disk *d, uint64_t offset, uint64_t count,
         struct extent *e)
{
  struct vhd_state *s = d->priv;
  uint32_t bs = s->header.block_size, block, sector;
  uint64_t in_block, len;

  count = MIN (count, d->size - offset);
  if (s->footer.disk_type == VHD_DISK_FIXED) {
    e->length = count;
    e->state = LAYER_DATA;
    e->host_offset = offset;
    return 0;
  }
  block = (uint32_t) (offset / bs);
  in_block = offset % bs;
  len = MIN (count, bs - in_block);
  sector = vhd_bat_get (&s->bat, block);
  if (sector == VHD_BAT_UNUSED) {
    e->length = len;
    e->state = LAYER_ABSENT;
    return 0;
  }
  if (is_differencing (s))
    return map_bitmap (d, s, block, in_block, len, e);
  e->length = len;
  e->state = LAYER_DATA;
  e->host_offset = (uint64_t) sector * SECTOR_SIZE + s->bitmap_size + in_block;
  return 0;
}

/* --- write ---------------------------------------------------------------- */

static int
write_footer_at (struct vhd_disk *d, struct vhd_state *s, uint64_t offset)
{
  uint8_t raw[VHD_FTR_SIZE];

  vhd_footer_encode (&s->footer, raw);
  if (io_pwrite (d->io, raw, sizeof raw, offset) == -1) {
    prefix_error ("writing the footer at offset %" PRIu64, offset);
    return -1;
  }
  return 0;
}

/* Steps 1-3 of CRASH SAFETY for a block the BAT does not map. */
static int
allocate_block (struct vhd_disk *d, struct vhd_state *s, uint32_t block,
                const uint8_t *buf, uint32_t in_block, uint32_t len)
{
  uint64_t start = s->next_free, end;
  uint32_t sector;
  struct vhd_bitmap *bm;

  if (start / SECTOR_SIZE >= VHD_BAT_UNUSED
      || ADD_OVERFLOW (start, (uint64_t) s->bitmap_size + s->header.block_size,
                       &end)) {
    set_error (EFBIG, "no room for block %" PRIu32 ": the file has reached "
               "the largest offset a BAT entry can hold", block);
    return -1;
  }
  sector = (uint32_t) (start / SECTOR_SIZE);
  if (io_pwrite (d->io, buf, len, start + s->bitmap_size + in_block) == -1
      || write_footer_at (d, s, end) == -1)
    return -1;
  bm = vhd_bmcache_new (&s->bitmaps, block, is_differencing (s) ? 0 : 0xff);
  if (bm == NULL)
    return -1;
  if (is_differencing (s))
    vhd_bitmap_set_range (bm->bits, in_block / SECTOR_SIZE, len / SECTOR_SIZE);
  vhd_bat_set (&s->bat, block, sector);
  s->next_free = end;
  s->footer_pos = end;
  s->trailer_ok = true;
  return 0;
}

static int
write_in_block (struct vhd_disk *d, struct vhd_state *s, uint32_t block,
                const uint8_t *buf, uint32_t in_block, uint32_t len)
{
  uint32_t sector = vhd_bat_get (&s->bat, block);
  uint64_t host = (uint64_t) sector * SECTOR_SIZE;
  uint32_t first = in_block / SECTOR_SIZE, n = len / SECTOR_SIZE;
  struct vhd_bitmap *bm;

  if (sector == VHD_BAT_UNUSED)
    return allocate_block (d, s, block, buf, in_block, len);
  if (io_pwrite (d->io, buf, len, host + s->bitmap_size + in_block) == -1)
    return -1;
  if (!is_differencing (s))
    return 0;
  bm = vhd_bmcache_get (&s->bitmaps, d->io, block, host);
  if (bm == NULL)
    return -1;
  if (vhd_bitmap_run (bm->bits, first, n) < n
      || !vhd_bitmap_test (bm->bits, first)) {
    vhd_bitmap_set_range (bm->bits, first, n);
    vhd_bmcache_mark_dirty (&s->bitmaps, bm);
  }
  return 0;
}

static int drv_flush (struct vhd_disk *d);

static int
drv_pwrite (struct vhd_disk *d, const void *buf, size_t count,
            uint64_t offset)
{
  struct vhd_state *s = d->priv;
  const uint8_t *p = buf;
  uint32_t bs = s->header.block_size;

  assert (!d->readonly);
  if (s->footer.disk_type == VHD_DISK_FIXED)
    return io_pwrite (d->io, buf, count, offset);
  assert (offset % SECTOR_SIZE == 0 && count % SECTOR_SIZE == 0);
  assert (offset <= d->size && count <= d->size - offset);
  while (count > 0) {
    uint32_t block = (uint32_t) (offset / bs);
    uint32_t in_block = (uint32_t) (offset % bs);
    uint32_t len = (uint32_t) MIN ((uint64_t) count, (uint64_t) bs - in_block);
    if (write_in_block (d, s, block, p, in_block, len) == -1)
      return -1;
    p += len;
    offset += len;
    count -= len;
  }
  if (s->bitmaps.n_dirty >= MAX_DIRTY_BITMAPS
      || s->bitmaps.n_dirty * s->bitmap_size >= MAX_DIRTY_BYTES)
    return drv_flush (d);
  return 0;
}

/* Steps 4-7 of CRASH SAFETY; a damaged trailing footer is rewritten. */
static int
drv_flush (struct vhd_disk *d)
{
  struct vhd_state *s = d->priv;

  if (d->readonly)
    return 0;
  if (s->footer.disk_type == VHD_DISK_FIXED)
    return io_flush (d->io);
  if (!s->trailer_ok) {
    if (write_footer_at (d, s, s->next_free) == -1)
      return -1;
    s->footer_pos = s->next_free;
    s->trailer_ok = true;
  }
  if (io_flush (d->io) == -1)
    return -1;
  if (s->bitmaps.n_dirty == 0 && !s->bat.any_dirty)
    return vhd_release_freed (d);
  if (vhd_bmcache_write_dirty (&s->bitmaps, d->io, &s->bat) == -1
      || vhd_bat_write_dirty (&s->bat, d->io) == -1
      || io_flush (d->io) == -1)
    return -1;
  return vhd_release_freed (d); /* 8. unmapped blocks: see vhd-space.c */
}

static bool
drv_flush_needs_metadata (struct vhd_disk *d)
{
  const struct vhd_state *s = d->priv;

  if (s->footer.disk_type == VHD_DISK_FIXED)
    return false;
  return !s->trailer_ok || s->bitmaps.n_dirty || s->bat.any_dirty
         || s->freed.n;
}

const struct format_ops vhd_format_ops = {
  .name = "vhd",
  .format = VHD_FORMAT_VHD,
  .instance_size = sizeof (struct vhd_state),
  .probe = drv_probe,
  .open = drv_open,
  .close = drv_close,
  .map = drv_map,
  .pwrite = drv_pwrite,
  .flush = drv_flush,
  .flush_needs_metadata = drv_flush_needs_metadata,
  .zero = vhd_op_zero,
  .create = vhd_driver_create,
  .unmap = vhd_op_unmap,
  .defragment = vhd_op_defragment,
  .resize = vhd_op_resize,
  .set_parent = vhd_op_set_parent,
  .check = vhd_op_check,
};
