/* vhd-resize.c: the resize hook of the VHD driver.
 *
 * The virtual size is the footer's current size (and the CHS geometry
 * computed from it); a dynamic or differencing disk also needs a BAT with
 * an entry per block.  Sizes are rounded up to whole sectors and capped
 * at the format's 2040 GiB.
 *
 * CRASH SAFETY
 *
 * Fixed disk, growing from S to N (footer at F, new footer at
 * P = max (N, F + 512)):
 *   1. write two copies of the old footer at P (1024 bytes), io_flush:
 *      the file ends in the old footer whether or not the write tore in
 *      half (a fixed disk has no other copy);
 *   2. write zeros over [S, N) (a fixed disk stays fully allocated; the
 *      old footer among them), invisible past the old size;
 *   3. write the new footer at P (inside the file: the last 512 bytes are
 *      still the old footer), io_flush;
 *   4. truncate after P + 512: the new footer becomes the last (atomic).
 * Fixed disk, shrinking: the new footer at N (over bytes past the new
 * end, which the caller gives up), io_flush, truncate.
 *
 * Dynamic and differencing disks, growing:
 *   1. zeros over the part of an allocated last block past the old end
 *      (invisible until the size changes);
 *   2. when the BAT must hold more entries than it has room for: if only
 *      blocks (or the trailing footer) lie after it, they move to the end
 *      of the file (copy, io_flush, BAT switch, io_flush: vhd-space.c)
 *      and the BAT grows in place; if metadata lies after it (the
 *      locators of a differencing disk), the whole BAT is written anew at
 *      the end of the file;
 *   3. the BAT's entries for the new blocks are written unused, io_flush;
 *   4. the dynamic header's first sector (table offset, max table
 *      entries, checksum) is rewritten, io_flush: one sector, atomic; the
 *      old size with a larger BAT is a valid image;
 *   5. the trailing footer with the new size, io_flush, then the copy at
 *      offset 0, io_flush.  Until 5 the old size holds; a torn trailing
 *      footer falls back to the copy (old size, BAT large enough), a torn
 *      copy leaves the trailing one (new size).
 * Shrinking: blocks wholly past the new end (which hold no data of this
 * layer: the core checked) are unmapped and flushed, then step 5.  The
 * BAT keeps its entries, so growing back later is cheap.
 *
 * Left out: a differencing child grown over a larger parent shows the
 * parent's data in the new space, like any range the child does not hold.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "minmax.h"
#include "vhd/vhd.h"

static void
set_size (struct vhd_footer *f, uint64_t size)
{
  f->current_size = size;
  vhd_geometry (size, &f->cylinders, &f->heads, &f->sectors_per_track);
}

static int
truncate_file (struct io *io, uint64_t size)
{
  if (io->ops->truncate (io, size) == -1) {
    prefix_error ("setting the file size to %" PRIu64, size);
    return -1;
  }
  return io_flush (io);
}

/* --- fixed disks ---------------------------------------------------------- */

static int
grow_fixed (struct vhd_disk *d, struct vhd_state *s, uint64_t new_size)
{
  uint64_t old_size = d->size, p = MAX (new_size, s->footer_pos + 512);
  struct vhd_footer f = s->footer;
  uint8_t two[2 * VHD_FTR_SIZE];

  vhd_footer_encode (&s->footer, two);
  memcpy (two + VHD_FTR_SIZE, two, VHD_FTR_SIZE);
  set_size (&f, new_size);
  if (io_pwrite (d->io, two, sizeof two, p) == -1 || io_flush (d->io) == -1
      || io_write_zeros (d->io, old_size, new_size - old_size) == -1
      || vhd_write_footer (d->io, &f, p) == -1 || io_flush (d->io) == -1
      || truncate_file (d->io, p + VHD_FTR_SIZE) == -1)
    return -1;
  s->footer = f;
  s->footer_pos = p;
  s->file_size = p + VHD_FTR_SIZE;
  return 0;
}

static int
shrink_fixed (struct vhd_disk *d, struct vhd_state *s, uint64_t new_size)
{
  struct vhd_footer f = s->footer;

  set_size (&f, new_size);
  if (vhd_write_footer (d->io, &f, new_size) == -1 || io_flush (d->io) == -1
      || truncate_file (d->io, new_size + VHD_FTR_SIZE) == -1)
    return -1;
  s->footer = f;
  s->footer_pos = new_size;
  s->file_size = new_size + VHD_FTR_SIZE;
  return 0;
}

/* --- the BAT -------------------------------------------------------------- */

static uint64_t
bat_bytes (uint32_t entries)
{
  return ROUND_UP ((uint64_t) entries * 4, (uint64_t) SECTOR_SIZE);
}

/* Does metadata other than the BAT lie in [start, end)? */
static bool
metadata_in (const struct vhd_state *s, uint64_t start, uint64_t end)
{
  struct vhd_region r[VHD_MAX_REGIONS];
  unsigned n = vhd_meta_regions (s, r), i;

  for (i = 0; i < n; i++)
    if (r[i].start != s->header.table_offset && r[i].start < end
        && start < r[i].end)
      return true;
  return false;
}

/* Move the blocks lying in [start, end) to the end of the file, and make
 * the file reach past end. */
static int
clear_range (struct vhd_disk *d, struct vhd_state *s, uint64_t start,
             uint64_t end)
{
  uint64_t bb = vhd_block_bytes (s);
  uint64_t at = ROUND_UP (MAX (s->next_free, end), (uint64_t) SECTOR_SIZE);
  struct vhd_move *m = malloc (MAX ((size_t) s->n_blocks, (size_t) 1)
                               * sizeof *m);
  size_t n = 0;
  uint32_t i;
  int r;

  if (m == NULL) {
    set_error (ENOMEM, "out of memory");
    return -1;
  }
  for (i = 0; i < s->n_blocks; i++) {
    uint32_t sector = vhd_bat_get (&s->bat, i);
    uint64_t host = (uint64_t) sector * SECTOR_SIZE;
    if (sector != VHD_BAT_UNUSED && host < end && start < host + bb) {
      m[n++] = (struct vhd_move) { i, at };
      at += bb;
    }
  }
  r = vhd_extend (d, n ? at : end);
  if (r == 0)
    r = vhd_move_blocks (d, m, n);
  free (m);
  return r;
}

/* Entries [n_blocks, n_new) unused in memory, their sectors dirty, and
 * the table at offset with max_entries: what step 3 writes. */
static int
prepare_entries (struct vhd_state *s, uint32_t n_new, uint64_t offset,
                 uint32_t max_entries)
{
  uint32_t i;

  if (vhd_bat_grow (&s->bat, n_new) == -1)
    return -1;
  /* Whatever the file holds past the old entries (the rest of the last
   * BAT sector may be junk that memory never loaded) becomes unused:
   * set and written even where memory says so already. */
  for (i = s->n_blocks; i < n_new; i++)
    vhd_bat_set (&s->bat, i, VHD_BAT_UNUSED);
  if (offset != s->bat.offset)
    vhd_bat_mark_all_dirty (&s->bat);
  s->bat.offset = offset;
  s->bat.max_entries = max_entries;
  return 0;
}

/* Steps 2-4 of CRASH SAFETY: a BAT for n_new blocks. */
static int
grow_bat (struct vhd_disk *d, struct vhd_state *s, uint32_t n_new)
{
  struct vhd_dynheader *h = &s->header;
  uint64_t start = h->table_offset, offset = start;
  uint64_t old_end = start + bat_bytes (h->max_table_entries);
  uint64_t new_end = start + bat_bytes (n_new);
  uint32_t max = MAX (n_new, h->max_table_entries);

  if (n_new > h->max_table_entries) {
    if (metadata_in (s, old_end, new_end)) {
      offset = ROUND_UP (s->next_free, (uint64_t) SECTOR_SIZE);
      if (vhd_extend (d, offset + bat_bytes (n_new)) == -1)
        return -1;
    }
    else if (clear_range (d, s, old_end, new_end) == -1)
      return -1;
  }
  if (prepare_entries (s, n_new, offset, max) == -1
      || vhd_bat_write_dirty (&s->bat, d->io) == -1
      || io_flush (d->io) == -1)
    return -1;
  if (max == h->max_table_entries && offset == start)
    return 0;
  h->table_offset = offset;
  h->max_table_entries = max;
  if (vhd_write_header_sector0 (d) == -1 || io_flush (d->io) == -1)
    return -1;
  return 0;
}

/* --- dynamic and differencing disks -------------------------------------- */

/* Step 1: zeros over an allocated last block's bytes past the old end. */
static int
zero_tail (struct vhd_disk *d, struct vhd_state *s, uint64_t new_size)
{
  uint32_t bs = s->header.block_size, block = (uint32_t) (d->size / bs);
  uint64_t in_block = d->size % bs, host;
  uint32_t sector;

  if (in_block == 0)
    return 0;
  sector = vhd_bat_get (&s->bat, block);
  if (sector == VHD_BAT_UNUSED)
    return 0;
  host = (uint64_t) sector * SECTOR_SIZE + s->bitmap_size;
  return io_zero_or_write (d->io, host + in_block,
                           MIN ((uint64_t) bs, new_size - block *
                                (uint64_t) bs) - in_block);
}

/* After a failed step 2-4: the BAT and header in memory as on disk, so
 * that later flushes write only sectors of the old table (blocks moved
 * meanwhile keep their dirty entries there). */
static void
restore_bat (struct vhd_state *s, const struct vhd_dynheader *h)
{
  uint32_t k = DIV_ROUND_UP (h->max_table_entries, VHD_BAT_PER_SECTOR);

  s->header.table_offset = h->table_offset;
  s->header.max_table_entries = h->max_table_entries;
  s->bat.offset = h->table_offset;
  s->bat.max_entries = h->max_table_entries;
  for (; k < s->bat.n_sectors; k++)
    s->bat.dirty[k / 8] &= (uint8_t) ~(1U << (k % 8));
}

static int
grow_sparse (struct vhd_disk *d, struct vhd_state *s, uint64_t new_size)
{
  struct vhd_dynheader old_header = s->header;
  struct vhd_footer old_footer = s->footer;
  uint64_t n_new = DIV_ROUND_UP (new_size, (uint64_t) s->header.block_size);

  if (n_new > VHD_MAX_BAT_ENTRIES) {
    set_error (EFBIG, "%" PRIu64 " bytes in blocks of %" PRIu32 " bytes "
               "need %" PRIu64 " BAT entries, more than the %u supported",
               new_size, s->header.block_size, n_new, VHD_MAX_BAT_ENTRIES);
    return -1;
  }
  if (zero_tail (d, s, new_size) == -1)
    return -1;
  if (grow_bat (d, s, (uint32_t) n_new) == -1) {
    restore_bat (s, &old_header);
    return -1;
  }
  set_size (&s->footer, new_size);
  if (vhd_write_footers (d) == -1) {
    s->footer = old_footer;
    return -1;
  }
  s->n_blocks = (uint32_t) n_new;
  return 0;
}

static int
shrink_sparse (struct vhd_disk *d, struct vhd_state *s, uint64_t new_size)
{
  struct vhd_footer old_footer = s->footer;
  uint32_t n_new = (uint32_t) DIV_ROUND_UP (new_size,
                                            (uint64_t) s->header.block_size);
  uint32_t i;

  for (i = n_new; i < s->n_blocks; i++)
    if (vhd_free_block (d, i) == -1)
      return -1;
  if (d->ops->flush (d) == -1)
    return -1;
  set_size (&s->footer, new_size);
  if (vhd_write_footers (d) == -1) {
    s->footer = old_footer;
    return -1;
  }
  s->n_blocks = n_new;
  return 0;
}

int
vhd_op_resize (struct vhd_disk *d, uint64_t new_size)
{
  struct vhd_state *s = d->priv;
  bool fixed = s->footer.disk_type == VHD_DISK_FIXED;
  int r;

  new_size = ROUND_UP (new_size, (uint64_t) SECTOR_SIZE);
  if (new_size > VHD_MAX_CREATE_SIZE) {
    set_error (ERANGE, "VHD size %" PRIu64 " is larger than the format's "
               "limit of 2040 GiB", new_size);
    return -1;
  }
  if (new_size == d->size)
    return 0;
  if (d->ops->flush (d) == -1)
    return -1;
  if (fixed)
    r = new_size > d->size ? grow_fixed (d, s, new_size)
                           : shrink_fixed (d, s, new_size);
  else
    r = new_size > d->size ? grow_sparse (d, s, new_size)
                           : shrink_sparse (d, s, new_size);
  if (r == -1)
    return -1;
  d->size = new_size;
  return 0;
}
