/* resize.c: vhd_resize.
 *
 * The core decides whether a resize is allowed (a shrink must be asked
 * for, and must not cut off non-zero data this layer holds); the driver
 * changes its metadata (VHD: BAT and footer; VHDX: BAT region and size
 * through the log).  A differencing disk grown over a larger parent gets
 * zeros in its new space.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include "cleanup.h"
#include "internal.h"
#include "minmax.h"

#define SCAN_CHUNK (1U << 20)

/* The first non-zero byte at or past `from` that this layer stores (a
 * fixed disk stores everything; zeros it stores may be cut off). */
static int
data_past (struct vhd_disk *d, uint64_t from, uint64_t *where)
{
  uint8_t *buf = malloc (SCAN_CHUNK);
  uint64_t offset = from;
  int r = 0;

  if (buf == NULL) {
    set_error (ENOMEM, "out of memory");
    return -1;
  }
  while (r == 0 && offset < d->size) {
    struct extent e;
    size_t n, i;
    if (d->ops->map (d, offset, MIN (d->size - offset,
                                     (uint64_t) SCAN_CHUNK), &e) == -1) {
      r = -1;
      break;
    }
    n = (size_t) e.length;
    if (e.state == LAYER_DATA) {
      if (io_pread (d->io, buf, n, e.host_offset) == -1) {
        r = -1;
        break;
      }
      for (i = 0; i < n && buf[i] == 0; i++)
        ;
      if (i < n) {
        *where = offset + i;
        r = 1;
      }
    }
    offset += n;
  }
  free (buf);
  return r;
}

/* A grown differencing disk over a larger parent: the new space must read
 * as zeros, not as the parent's data (as qemu does). */
static int
hide_parent_tail (struct vhd_disk *d, uint64_t old_size)
{
  uint64_t end;

  if (d->parent == NULL || d->parent->size <= old_size)
    return 0;
  end = MIN (d->size, d->parent->size);
  return chain_write_zeroes (d, old_size, end - old_size,
                             VHD_ZERO_MAY_UNMAP);
}

static int
resize_unlocked (struct vhd_disk *d, uint64_t new_size, unsigned flags)
{
  uint64_t where, old_size = d->size;
  int r;

  if (d->ops->resize == NULL) {
    set_error (ENOTSUP, "%s images cannot be resized", d->ops->name);
    return -1;
  }
  if (d->ops->format != VHD_FORMAT_RAW)
    new_size = ROUND_UP (new_size, (uint64_t) disk_write_align (d));
  if (new_size == d->size)
    return 0;
  if (new_size < d->size) {
    if (!(flags & VHD_RESIZE_SHRINK)) {
      set_error (EINVAL, "%" PRIu64 " is smaller than the disk (%" PRIu64
                 " bytes): shrinking must be asked for", new_size, d->size);
      return -1;
    }
    r = data_past (d, new_size, &where);
    if (r == -1)
      return -1;
    if (r == 1) {
      set_error (ENOTEMPTY, "data at offset %" PRIu64 " lies past the new "
                 "end (%" PRIu64 "); nothing was changed", where, new_size);
      return -1;
    }
  }
  if (chain_flush (d) == -1 || d->ops->resize (d, new_size) == -1)
    return -1;
  if (new_size > old_size && hide_parent_tail (d, old_size) == -1)
    return -1;
  return chain_flush (d);
}

int
vhd_resize (struct vhd_disk *d, uint64_t new_size, unsigned flags)
{
  set_error_context ("vhd_resize");
  if (d == NULL) {
    set_error (EFAULT, "disk cannot be NULL");
    return -1;
  }
  if (flags & ~VHD_RESIZE_SHRINK) {
    set_error (EINVAL, "unknown flags 0x%x", flags & ~VHD_RESIZE_SHRINK);
    return -1;
  }
  if (new_size == 0 || new_size > INT64_MAX) {
    set_error (ERANGE, "size %" PRIu64 " out of range", new_size);
    return -1;
  }
  if (d->readonly) {
    set_error (EROFS, "%s is open read-only", d->filename);
    return -1;
  }
  EXCLUSIVE_LOCK_FOR_CURRENT_SCOPE (&d->lock);
  return resize_unlocked (d, new_size, flags);
}
