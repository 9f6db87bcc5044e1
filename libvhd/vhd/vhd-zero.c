/* vhd-zero.c: the zero and unmap hooks of the VHD driver.
 *
 * VHD has no "zero" block state: a range reads as zeros when its block is
 * unallocated in a base disk, or when this file stores zeros there.  So:
 *
 *   fixed disk        punch the range out of the host file;
 *   dynamic disk      a whole block with VHD_ZERO_MAY_UNMAP is unmapped
 *                     (BAT entry unused); any other range of an
 *                     allocated block is punched (the block stays);
 *   differencing      an allocated block: punch the range, then set its
 *                     sectors' bits (they now read our zeros, hiding the
 *                     parent); an unallocated block with MAY_UNMAP: a new
 *                     block with no data (the hole before the new footer
 *                     reads as zeros) and the range's bits set; without
 *                     MAY_UNMAP, 0: the core writes zeros.
 * A host that cannot punch makes us return 0, and the core writes zeros.
 * Punching keeps the block allocated in the VHD but gives its storage
 * back to the host (the file becomes sparse).
 *
 * CRASH SAFETY
 *
 * A punch changes the view of a range the caller is zeroing: each sector
 * reads its old bytes or zeros.  In a differencing disk the punch comes
 * first and the bitmap after it, at flush (vhd.c), so a sector whose bit
 * was clear keeps showing the parent until its bit is durable.  Unmapped
 * blocks change only the in-memory BAT; flush writes it, and only then is
 * their space punched or cut off the end of the file (vhd-space.c), so no
 * crash leaves a BAT entry on disk pointing at given-back space.  A zero
 * block is allocated like a written one (vhd.c steps 2-3, without data).
 */
#include <errno.h>
#include <inttypes.h>

#include "minmax.h"
#include "vhd/vhd.h"

static bool
is_differencing (const struct vhd_state *s)
{
  return s->footer.disk_type == VHD_DISK_DIFFERENCING;
}

/* A differencing disk's block with no data, its bits set over
 * [first, first + n) sectors. */
static int
allocate_zero_block (struct vhd_disk *d, struct vhd_state *s, uint32_t block,
                     uint32_t first, uint32_t n)
{
  uint64_t start = s->next_free;
  struct vhd_bitmap *bm;

  if (vhd_extend (d, start + vhd_block_bytes (s)) == -1) {
    prefix_error ("no room for block %" PRIu32, block);
    return -1;
  }
  bm = vhd_bmcache_new (&s->bitmaps, block, 0);
  if (bm == NULL)
    return -1;
  vhd_bitmap_set_range (bm->bits, first, n);
  vhd_bat_set (&s->bat, block, (uint32_t) (start / SECTOR_SIZE));
  return 0;
}

/* Set the bits of [first, first + n) in an allocated block. */
static int
mark_sectors (struct vhd_disk *d, struct vhd_state *s, uint32_t block,
              uint64_t host, uint32_t first, uint32_t n)
{
  struct vhd_bitmap *bm = vhd_bmcache_get (&s->bitmaps, d->io, block, host);

  if (bm == NULL)
    return -1;
  if (vhd_bitmap_run (bm->bits, first, n) < n
      || !vhd_bitmap_test (bm->bits, first)) {
    vhd_bitmap_set_range (bm->bits, first, n);
    vhd_bmcache_mark_dirty (&s->bitmaps, bm);
  }
  return 0;
}

/* Zero [in_block, in_block + len) of block: len, 0 (declined) or -1. */
static int64_t
zero_in_block (struct vhd_disk *d, struct vhd_state *s, uint32_t block,
               uint32_t in_block, uint32_t len, unsigned flags)
{
  uint32_t sector = vhd_bat_get (&s->bat, block);
  uint32_t first = in_block / SECTOR_SIZE, n = len / SECTOR_SIZE;
  uint64_t host, virt = (uint64_t) block * s->header.block_size;
  bool whole = in_block == 0
               && (len == s->header.block_size || virt + len == d->size);
  int r;

  if (sector == VHD_BAT_UNUSED) {
    if (!is_differencing (s))
      return len; /* reads as zeros already */
    if (!(flags & VHD_ZERO_MAY_UNMAP))
      return 0;
    r = allocate_zero_block (d, s, block, first, n);
    return r == -1 ? -1 : (int64_t) len;
  }
  if (!is_differencing (s) && whole && (flags & VHD_ZERO_MAY_UNMAP)) {
    r = vhd_free_block (d, block);
    return r == -1 ? -1 : (int64_t) len;
  }
  host = (uint64_t) sector * SECTOR_SIZE;
  r = io_try_zero (d->io, host + s->bitmap_size + in_block, len,
                   flags & VHD_ZERO_MAY_UNMAP);
  if (r <= 0)
    return r;
  if (is_differencing (s) && mark_sectors (d, s, block, host, first, n) == -1)
    return -1;
  return len;
}

int64_t
vhd_op_zero (struct vhd_disk *d, uint64_t offset, uint64_t count,
             unsigned flags)
{
  struct vhd_state *s = d->priv;
  uint32_t bs = s->header.block_size, block, in_block, len;
  int r;

  if (s->footer.disk_type == VHD_DISK_FIXED) {
    r = io_try_zero (d->io, offset, count, flags & VHD_ZERO_MAY_UNMAP);
    return r == 1 ? (int64_t) count : r;
  }
  block = (uint32_t) (offset / bs);
  in_block = (uint32_t) (offset % bs);
  len = (uint32_t) MIN (count, (uint64_t) (bs - in_block));
  return zero_in_block (d, s, block, in_block, len, flags);
}

int
vhd_op_unmap (struct vhd_disk *d, uint64_t offset, uint64_t count)
{
  struct vhd_state *s = d->priv;
  uint32_t bs = s->header.block_size;
  uint64_t block, last;

  if (s->footer.disk_type == VHD_DISK_FIXED) {
    set_error (ENOTSUP, "a fixed VHD has no blocks to unmap");
    return -1;
  }
  if (offset % bs != 0 || count % bs != 0) {
    set_error (EINVAL, "unmap of %" PRIu64 "+%" PRIu64 " is not aligned "
               "to the block size %" PRIu32, offset, count, bs);
    return -1;
  }
  last = MIN ((offset + count) / bs, (uint64_t) s->n_blocks);
  for (block = offset / bs; block < last; block++)
    if (vhd_free_block (d, (uint32_t) block) == -1)
      return -1;
  return 0;
}
