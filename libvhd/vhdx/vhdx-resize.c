/* vhdx-resize.c: changing a VHDX disk's virtual size (MS-VHDX 2.5, 2.6.2.2).
 *
 * The size lives in the VirtualDiskSize metadata item; the BAT has one
 * entry per block plus, per chunk, one for its sector bitmap, and an
 * entry keeps its index when the disk grows (entries are only added at
 * the end).  New space is NOT_PRESENT: zeros in a base disk, the
 * parent's in a differencing one.  A fixed disk gets new blocks,
 * allocated and written as zeros, FULLY_PRESENT.
 *
 * Growing, step by step; everything before the last step touches only
 * what the old size does not use, so a crash there leaves the old disk:
 *   1. the old last block, when the old size cut it short, reads zeros
 *      after the old end (punched, or written), and the file covers it
 *      whole (a writer may have left it short at the end of the file);
 *   2. a BAT region too small for the new entries is rewritten larger:
 *      in place when the space after it is free, else in free space or
 *      at the end of the file -- the log retired, the copy written and
 *      flushed, then the region tables switched (copy 1, flush, copy 2,
 *      flush: a crash leaves the old table or the new one), and only
 *      then the old space released;
 *   3. BAT entries past the old ones that are not zero on disk (a
 *      previous shrink leaves them) are cleared through the log; a
 *      fixed disk's new blocks are written and entered;
 *   4. the VirtualDiskSize page goes through the log: the new size.
 * Shrinking (the core checked that no data lies past the new end):
 *   1. blocks wholly past the new end that still hold space (partially
 *      present without sectors of ours) and, in a differencing disk,
 *      the sector bitmaps of chunks wholly past it become NOT_PRESENT
 *      through the log (payload entries first), their space released;
 *   2. the VirtualDiskSize page through the log;
 *   3. the log retired and the file cut after its last object.
 * The BAT region keeps its length.  DataWriteGuid is renewed: the
 * disk's size is part of what a child sees.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "byteorder.h"
#include "log.h"
#include "minmax.h"
#include "vhdx.h"

/* Whether [start, end) is clear of every object but the one at self;
 * EBADMSG when objects overlap already. */
static int
space_free (struct vhd_disk *d, uint64_t start, uint64_t end, uint64_t self,
            bool *is_free)
{
  struct vhdx_object *o;
  size_t n, i;

  if (vhdx_objects (d, &o, &n) == -1)
    return -1;
  *is_free = true;
  for (i = 0; i < n; i++)
    if (o[i].start != self && o[i].start < end && start < o[i].end)
      *is_free = false;
  free (o);
  return 0;
}

static int
ensure_file_size (struct vhd_disk *d, uint64_t end)
{
  int64_t size = io_get_size (d->io);

  if (size < 0)
    return -1;
  if ((uint64_t) size < end)
    return d->io->ops->truncate (d->io, end);
  return 0;
}

/* Grow step 1: the old last block's bytes past the old end read as
 * zeros (they become part of the disk), inside the file.  The objects
 * are listed first: overlapping ones (corruption) are refused rather
 * than written over. */
static int
extend_last_block (struct vhd_disk *d)
{
  struct vhdx *v = d->priv;
  uint64_t bs = v->md.block_size, b = v->geo.data_blocks - 1;
  uint64_t idx = vhdx_bat_payload_index (&v->geo, b);
  uint64_t valid = d->size - b * bs, off, e;
  unsigned s;
  struct vhdx_object *o;
  size_t n;

  if (vhdx_get_entry (v, idx, &e) == -1)
    return -1;
  off = vhdx_bat_offset (e);
  s = vhdx_bat_state (e);
  if (valid == bs || (s != VHDX_PAYLOAD_FULLY_PRESENT
                      && s != VHDX_PAYLOAD_PARTIALLY_PRESENT))
    return 0;
  if (vhdx_objects (d, &o, &n) == -1)
    return -1;
  free (o);
  if (ensure_file_size (d, off + bs) == -1
      || io_zero_or_write (d->io, off + valid, bs - valid) == -1
      || io_flush (d->io) == -1) {
    prefix_error ("clearing the end of the last block");
    return -1;
  }
  return 0;
}

/* Grow step 2: true in *moved when the region was rewritten. */
static int
grow_bat_region (struct vhd_disk *d, uint64_t entries, bool *moved)
{
  struct vhdx *v = d->priv;
  uint64_t old = v->regions.bat->offset, old_len = v->regions.bat->length;
  uint64_t len = ROUND_UP (entries * 8, VHDX_MiB), dest;
  bool is_free;

  *moved = false;
  if (entries * 8 <= old_len)
    return 0;
  if (len > UINT32_MAX) {
    set_error (EFBIG, "a BAT of %" PRIu64 " bytes does not fit a region",
               len);
    return -1;
  }
  if (space_free (d, old + old_len, old + len, old, &is_free) == -1)
    return -1;
  if (is_free) {
    vhdx_free_remove (v, old + old_len, old + len);
    dest = old;
  }
  else if (vhdx_allocate (d, len, &dest) == -1)
    return -1;
  if (vhdx_move_bat (d, dest, (uint32_t) len) == -1)
    return -1;
  if (dest != old)
    vhdx_release (d, old, old_len);
  *moved = true;
  return 0;
}

/* Commit when the stage cannot take another page. */
static int
make_room (struct vhd_disk *d, struct vhdx_stage *st)
{
  return st->n < VHDX_MAX_STAGED ? 0 : vhdx_commit (d, st);
}

/* Grow step 3: the entries the table gains, [v->geo.entries, entries),
 * are cleared in the file through the log where they are not zero
 * already, before the table grows (what the cache reads back of them
 * must be zeros).  The page the old table ends in is encoded from
 * memory (zeros past the old end); pages past it are zeroed whole. */
static int
clear_new_entries (struct vhd_disk *d, struct vhdx_stage *st,
                   uint64_t entries)
{
  struct vhdx *v = d->priv;
  uint64_t per = VHDX_LOG_SECTOR / 8, from = v->geo.entries, page;
  uint8_t buf[VHDX_LOG_SECTOR];

  for (page = from / per; page * per < entries; page++) {
    uint64_t first = MAX (from, page * per), i;
    uint64_t last = MIN (entries, (page + 1) * per);
    uint64_t at = v->bat.offset + page * VHDX_LOG_SECTOR;
    uint8_t *p;
    bool dirty = false;
    if (io_pread (d->io, buf, VHDX_LOG_SECTOR, at) == -1)
      return -1;
    for (i = first; i < last; i++)
      dirty |= get_le64 (buf + (i % per) * 8) != 0;
    if (!dirty)
      continue;
    if (make_room (d, st) == -1)
      return -1;
    if (page * per < from) {
      if (vhdx_stage_bat (v, st, first - 1) == -1)
        return -1;
    }
    else if ((p = vhdx_stage_page (d, st, at)) == NULL)
      return -1;
    else
      memset (p, 0, VHDX_LOG_SECTOR);
  }
  return vhdx_commit (d, st);
}

/* Grow step 3 for a fixed disk: new blocks, zeroed, FULLY_PRESENT. */
static int
allocate_new_blocks (struct vhd_disk *d, struct vhdx_stage *st,
                     uint64_t first_block)
{
  struct vhdx *v = d->priv;
  uint64_t b, off;

  for (b = first_block; b < v->geo.data_blocks; b++) {
    uint64_t idx = vhdx_bat_payload_index (&v->geo, b);
    if (make_room (d, st) == -1
        || vhdx_allocate (d, v->md.block_size, &off) == -1
        || io_write_zeros (d->io, off, v->md.block_size) == -1
        || vhdx_put_entry (v, st, idx,
                           vhdx_bat_entry (VHDX_PAYLOAD_FULLY_PRESENT, off))
           == -1)
      return -1;
  }
  return 0;
}

/* The last step either way: the new VirtualDiskSize. */
static int
write_size (struct vhd_disk *d, uint64_t new_size)
{
  struct vhdx *v = d->priv;
  struct vhdx_md_entry e;
  struct vhdx_stage *st;
  uint8_t *table, raw[8];
  int r;

  if (vhdx_md_find (d, VHDX_MD_ITEM_DISK_SIZE, &table, &e) == -1)
    return -1;
  free (table);
  st = calloc (1, sizeof *st);
  if (st == NULL) {
    set_error (ENOMEM, "out of memory");
    return -1;
  }
  put_le64 (raw, new_size);
  r = vhdx_stage_bytes (d, st, v->regions.metadata->offset + e.offset, raw,
                        sizeof raw);
  if (r == 0)
    r = vhdx_commit (d, st);
  vhdx_stage_free (st);
  free (st);
  return r;
}

static int
grow (struct vhd_disk *d, uint64_t new_size,
      const struct vhdx_bat_geometry *g)
{
  struct vhdx *v = d->priv;
  uint64_t old_blocks = v->geo.data_blocks;
  struct vhdx_stage *st;
  bool moved;
  int r;

  if (extend_last_block (d) == -1
      || grow_bat_region (d, g->entries, &moved) == -1)
    return -1;
  st = calloc (1, sizeof *st);
  if (st == NULL) {
    set_error (ENOMEM, "out of memory");
    return -1;
  }
  /* A moved table was written with zeros past its entries. */
  r = moved ? 0 : clear_new_entries (d, st, g->entries);
  if (r == 0)
    r = vhdx_bat_cache_resize (&v->bat, g->entries);
  if (r == 0) {
    /* From here the BAT describes the new size. */
    v->geo = *g;
    v->md.disk_size = new_size;
  }
  if (r == 0 && v->md.leave_blocks_allocated && !v->md.has_parent)
    r = allocate_new_blocks (d, st, old_blocks);
  if (r == 0)
    r = vhdx_commit (d, st);
  if (r == -1)
    vhdx_abandon (d, st);
  free (st);
  return r;
}

/* Shrink step 1 for one entry. */
static int
drop_entry (struct vhdx *v, struct vhdx_stage *st, uint64_t idx,
            uint64_t len)
{
  uint64_t e;
  unsigned s;

  if (vhdx_get_entry (v, idx, &e) == -1)
    return -1;
  s = vhdx_bat_state (e);
  if (s != VHDX_PAYLOAD_FULLY_PRESENT && s != VHDX_PAYLOAD_PARTIALLY_PRESENT)
    return 0; /* VHDX_SB_PRESENT is FULLY_PRESENT's value */
  vhdx_pending_add (v, vhdx_bat_offset (e), vhdx_bat_offset (e) + len);
  return vhdx_put_entry (v, st, idx,
                         vhdx_bat_entry (VHDX_PAYLOAD_NOT_PRESENT, 0));
}

static int
shrink (struct vhd_disk *d, uint64_t new_size,
        const struct vhdx_bat_geometry *g)
{
  struct vhdx *v = d->priv;
  struct vhdx_stage *st = calloc (1, sizeof *st);
  uint64_t b, c;
  int r = 0;

  if (st == NULL) {
    set_error (ENOMEM, "out of memory");
    return -1;
  }
  for (b = g->data_blocks; r == 0 && b < v->geo.data_blocks; b++)
    if ((r = make_room (d, st)) == 0)
      r = drop_entry (v, st, vhdx_bat_payload_index (&v->geo, b),
                      v->md.block_size);
  for (c = g->bitmap_blocks; v->md.has_parent && r == 0
                             && c < v->geo.bitmap_blocks; c++)
    if ((r = make_room (d, st)) == 0)
      r = drop_entry (v, st, vhdx_bat_bitmap_index (&v->geo, c),
                      VHDX_BITMAP_BLOCK_SIZE);
  if (r == 0)
    r = vhdx_commit (d, st);
  if (r == -1)
    vhdx_abandon (d, st);
  free (st);
  return r;
}

int
vhdx_resize (struct vhd_disk *d, uint64_t new_size)
{
  struct vhdx *v = d->priv;
  struct vhdx_bat_geometry g;
  bool shrinking;
  int r;

  if (new_size > VHDX_MAX_DISK_SIZE || new_size % d->logical_sector) {
    set_error (ERANGE, "VHDX virtual size %" PRIu64 " is not a multiple "
               "of %" PRIu32 " bytes up to 64 TiB", new_size,
               d->logical_sector);
    return -1;
  }
  vhdx_bat_geometry (new_size, v->md.block_size, v->md.logical_sector,
                     v->md.has_parent, &g);
  if (vhdx_begin_update (d, true) == -1)
    return -1;
  shrinking = new_size < d->size;
  r = shrinking ? shrink (d, new_size, &g) : grow (d, new_size, &g);
  if (r == 0)
    r = write_size (d, new_size);
  if (r == 0 && shrinking) {
    v->geo = g;
    v->md.disk_size = new_size;
    r = vhdx_bat_cache_resize (&v->bat, g.entries);
  }
  if (r == -1) {
    v->failed = true;
    prefix_error ("resizing to %" PRIu64 " bytes", new_size);
    return -1;
  }
  d->size = new_size;
  return shrinking ? vhdx_trim (d) : 0;
}
