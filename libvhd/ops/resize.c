/* resize.c: vhd_resize.
 *
 * The core decides whether a resize is allowed (a shrink must be asked
 * for, and must not cut off data this layer holds); the driver changes
 * its metadata (VHD: BAT and footer; VHDX: BAT region and size through
 * the log).
 */
#include <errno.h>
#include <inttypes.h>

#include "cleanup.h"
#include "internal.h"
#include "minmax.h"

/* The first offset at or past `from` where this layer holds data. */
static int
data_past (struct vhd_disk *d, uint64_t from, uint64_t *where)
{
  uint64_t offset = from;

  while (offset < d->size) {
    struct extent e;
    if (d->ops->map (d, offset, d->size - offset, &e) == -1)
      return -1;
    if (e.state == LAYER_DATA) {
      *where = offset;
      return 1;
    }
    offset += e.length;
  }
  return 0;
}

static int
resize_unlocked (struct vhd_disk *d, uint64_t new_size, unsigned flags)
{
  uint64_t where;
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
  if (chain_flush (d) == -1)
    return -1;
  return d->ops->resize (d, new_size);
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
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&d->lock);
  return resize_unlocked (d, new_size, flags);
}
