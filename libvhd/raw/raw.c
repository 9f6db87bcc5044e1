/* raw.c: the raw format: the file is the disk, byte for byte.
 *
 * Used for convert and as a parent where a format allows it.  Holes in the
 * host file (SEEK_DATA/SEEK_HOLE) are reported as absent, so the allocation
 * map of a sparse raw file is exact and convert skips its holes unread;
 * a discard punches new ones.
 * Sizes need not be sector multiples.
 */
#include <errno.h>
#include <string.h>

#include "internal.h"
#include "minmax.h"

static int
raw_probe (const uint8_t *head, size_t head_len, const uint8_t *tail,
           size_t tail_len)
{
  return 1; /* anything is raw, but anyone else wins */
}

static int
raw_open (struct vhd_disk *d)
{
  int64_t size = io_get_size (d->io);

  if (size < 0)
    return -1;
  d->size = (uint64_t) size;
  d->type = VHD_TYPE_FIXED;
  d->logical_sector = d->physical_sector = SECTOR_SIZE;
  d->write_align = 1;
  return 0;
}

static void
raw_close (struct vhd_disk *d)
{
}

static int
raw_map (struct vhd_disk *d, uint64_t offset, uint64_t count,
         struct extent *e)
{
  bool data;
  uint64_t run;

  if (d->io->ops->run_at (d->io, offset, &data, &run) == -1)
    return -1;
  e->length = MIN (run, count);
  e->state = data ? LAYER_DATA : LAYER_ABSENT;
  e->host_offset = offset;
  return 0;
}

static int
raw_pwrite (struct vhd_disk *d, const void *buf, size_t count,
            uint64_t offset)
{
  return io_pwrite (d->io, buf, count, offset);
}

/* Zeroes are given back to the host when the caller allows (a sparse
 * file, as convert makes), else zeroed in place keeping their space. */
static int64_t
raw_zero (struct vhd_disk *d, uint64_t offset, uint64_t count,
          unsigned flags)
{
  int r = io_try_zero (d->io, offset, count, flags & VHD_ZERO_MAY_UNMAP);

  return r == 1 ? (int64_t) count : r;
}

static int
raw_flush (struct vhd_disk *d)
{
  return io_flush (d->io);
}

static bool
raw_flush_needs_metadata (struct vhd_disk *d)
{
  return false;
}

/* A raw image is a sparse file of the virtual size: convert writes only
 * the data and leaves the rest as holes. */
static int
raw_create (struct io *io, const struct create_params *p)
{
  if (p->parent) {
    set_error (ENOTSUP, "raw images cannot have a parent");
    return -1;
  }
  return io->ops->truncate (io, p->size);
}

static int
raw_resize (struct vhd_disk *d, uint64_t new_size)
{
  if (d->io->ops->truncate (d->io, new_size) == -1)
    return -1;
  d->size = new_size;
  return 0;
}

const struct format_ops raw_format_ops = {
  .name = "raw",
  .format = VHD_FORMAT_RAW,
  .instance_size = 0,
  .probe = raw_probe,
  .open = raw_open,
  .close = raw_close,
  .map = raw_map,
  .pwrite = raw_pwrite,
  .zero = raw_zero,
  .flush = raw_flush,
  .flush_needs_metadata = raw_flush_needs_metadata,
  .create = raw_create,
  .resize = raw_resize,
};
