/* handle.c: the public entry points.
 *
 * Each wrapper names itself for error messages, validates its arguments
 * once, takes the handle's lock for the duration of the call and hands
 * over to the unlocked core (chain.c, open.c), which may then assume the
 * arguments are sound.  Reads, maps and writes of data already in place
 * share the lock, so they run side by side; a write that must allocate
 * (or change metadata) takes it alone.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "internal.h"

bool
valid_range (struct vhd_disk *d, uint64_t count, uint64_t offset)
{
  if (offset > d->size || count > d->size - offset) {
    set_error (ERANGE, "offset %" PRIu64 " + count %" PRIu64 " beyond disk "
               "size %" PRIu64, offset, count, d->size);
    return false;
  }
  return true;
}

bool
valid_disk (struct vhd_disk *d)
{
  if (d == NULL) {
    set_error (EFAULT, "disk cannot be NULL");
    return false;
  }
  return true;
}

bool
valid_buffer (const void *buf)
{
  if (buf == NULL) {
    set_error (EFAULT, "buf cannot be NULL");
    return false;
  }
  return true;
}

bool
valid_writable (struct vhd_disk *d)
{
  if (d->readonly) {
    set_error (EROFS, "%s is open read-only", d->filename);
    return false;
  }
  return true;
}

struct vhd_disk *
vhd_open (const char *path, unsigned flags)
{
  set_error_context ("vhd_open");
  if (path == NULL) {
    set_error (EFAULT, "path cannot be NULL");
    return NULL;
  }
  if (flags & ~VHD_OPEN_MASK) {
    set_error (EINVAL, "unknown flags 0x%x", flags & ~VHD_OPEN_MASK);
    return NULL;
  }
  return disk_open_path (path, flags, NULL);
}

void
vhd_close (struct vhd_disk *d)
{
  if (d == NULL)
    return;
  set_error_context ("vhd_close");
  disk_close (d);
}

int64_t
vhd_get_size (struct vhd_disk *d)
{
  set_error_context ("vhd_get_size");
  if (!valid_disk (d))
    return -1;
  return (int64_t) d->size;
}

int
vhd_pread (struct vhd_disk *d, void *buf, size_t count, uint64_t offset)
{
  set_error_context ("vhd_pread");
  if (!valid_disk (d) || !valid_buffer (buf))
    return -1;
  SHARED_LOCK_FOR_CURRENT_SCOPE (&d->lock);
  if (!valid_range (d, count, offset))
    return -1;
  return chain_pread (d, buf, count, offset);
}

int
vhd_pwrite (struct vhd_disk *d, const void *buf, size_t count,
            uint64_t offset)
{
  set_error_context ("vhd_pwrite");
  if (!valid_disk (d) || !valid_buffer (buf))
    return -1;
  if (!valid_writable (d))
    return -1;
  for (;;) {
    {
      SHARED_LOCK_FOR_CURRENT_SCOPE (&d->lock);
      if (!valid_range (d, count, offset))
        return -1;
      int r = chain_write_in_place (d, buf, count, offset);
      if (r <= 0)
        return r;
    }
    EXCLUSIVE_LOCK_FOR_CURRENT_SCOPE (&d->lock);
    if (!valid_range (d, count, offset))
      return -1;
    /* Writes into a new block queue here together; once the first has
     * allocated it, the others go back to writing side by side. */
    int r = chain_can_write_in_place (d, count, offset);
    if (r == -1)
      return -1;
    if (r == 0)
      return chain_pwrite (d, buf, count, offset);
  }
}

int
vhd_flush (struct vhd_disk *d)
{
  set_error_context ("vhd_flush");
  if (!valid_disk (d))
    return -1;
  if (d->readonly)
    return 0;
  {
    /* Most flushes only wait for the data: reads and writes in place go
     * on beside them instead of stalling for the whole fdatasync. */
    SHARED_LOCK_FOR_CURRENT_SCOPE (&d->lock);
    int r = chain_flush_data (d);
    if (r != 0)
      return r == 1 ? 0 : -1;
  }
  EXCLUSIVE_LOCK_FOR_CURRENT_SCOPE (&d->lock);
  return chain_flush (d);
}

static int
write_zeroes (struct vhd_disk *d, uint64_t offset, uint64_t count,
              unsigned flags)
{
  if (!valid_disk (d))
    return -1;
  if (flags & ~VHD_ZERO_MASK) {
    set_error (EINVAL, "unknown flags 0x%x", flags & ~VHD_ZERO_MASK);
    return -1;
  }
  if (!valid_writable (d))
    return -1;
  EXCLUSIVE_LOCK_FOR_CURRENT_SCOPE (&d->lock);
  if (!valid_range (d, count, offset))
    return -1;
  int r = chain_write_zeroes (d, offset, count, flags);
  if (r == -1)
    d->writes_in_place = false; /* the driver decides again */
  return r;
}

int
vhd_write_zeroes (struct vhd_disk *d, uint64_t offset, uint64_t count,
                  unsigned flags)
{
  set_error_context ("vhd_write_zeroes");
  return write_zeroes (d, offset, count, flags);
}

int
vhd_discard (struct vhd_disk *d, uint64_t offset, uint64_t count)
{
  set_error_context ("vhd_discard");
  return write_zeroes (d, offset, count, VHD_ZERO_MAY_UNMAP);
}

static int
block_status (struct vhd_disk *d, uint64_t offset, uint64_t count,
              unsigned flags, vhd_extent_fn fn, void *opaque)
{
  if (!valid_disk (d))
    return -1;
  if (fn == NULL) {
    set_error (EFAULT, "fn cannot be NULL");
    return -1;
  }
  if (flags & ~VHD_STATUS_MASK) {
    set_error (EINVAL, "unknown flags 0x%x", flags & ~VHD_STATUS_MASK);
    return -1;
  }
  SHARED_LOCK_FOR_CURRENT_SCOPE (&d->lock);
  if (!valid_range (d, count, offset))
    return -1;
  return chain_block_status (d, offset, count, flags, fn, opaque);
}

int
vhd_block_status (struct vhd_disk *d, uint64_t offset, uint64_t count,
                  vhd_extent_fn fn, void *opaque)
{
  set_error_context ("vhd_block_status");
  return block_status (d, offset, count, 0, fn, opaque);
}

int
vhd_block_status_ex (struct vhd_disk *d, uint64_t offset, uint64_t count,
                     unsigned flags, vhd_extent_fn fn, void *opaque)
{
  set_error_context ("vhd_block_status_ex");
  return block_status (d, offset, count, flags, fn, opaque);
}

const char *
vhd_get_version (void)
{
  return VHD_LIB_VERSION;
}
