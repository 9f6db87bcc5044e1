/* chain-zero.c: write zeroes and discard through the chain.
 *
 * Ranges that already read as zeros (a hole at every layer, or a layer's
 * zero state) are left alone.  Whole units go to the driver's zero op,
 * which marks or frees blocks without writing data; what it declines is
 * written as zero sectors, one block at a time, unless the caller asked
 * for a fast zero.  Partial units at either end are read, patched and
 * written like any unaligned write.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "minmax.h"

#define ZERO_BUF (1U << 20)

struct first_extent {
  uint64_t length;
  unsigned state;
};

static int
take_first (void *opaque, uint64_t offset, uint64_t length, unsigned state,
            unsigned depth)
{
  struct first_extent *f = opaque;

  f->length = length;
  f->state = state;
  return 1; /* stop after the first */
}

/* Length of the run at offset that already reads as zeros (0 if none). */
static int64_t
zero_run (struct vhd_disk *d, uint64_t offset, uint64_t count)
{
  struct first_extent f = { 0, 0 };
  int r;

  /* Without its parent, a differencing disk cannot tell what reads as
   * zeros: the parent's ranges only look like holes. */
  if (d->type == VHD_TYPE_DIFFERENCING && d->parent == NULL)
    return 0;
  r = chain_block_status (d, offset, count, 0, take_first, &f);

  if (r == -1)
    return -1;
  return (f.state & VHD_STATE_ZERO) ? (int64_t) f.length : 0;
}

/* Write zero sectors over [offset, offset+count). */
static int
write_zero_data (struct vhd_disk *d, uint64_t offset, uint64_t count)
{
  uint8_t *zeros = calloc (1, ZERO_BUF);
  int r = 0;

  if (zeros == NULL) {
    set_error (ENOMEM, "out of memory");
    return -1;
  }
  while (r == 0 && count > 0) {
    size_t n = (size_t) MIN (count, (uint64_t) ZERO_BUF);
    r = d->ops->pwrite (d, zeros, n, offset);
    offset += n, count -= n;
  }
  free (zeros);
  return r;
}

/* One step over aligned units: returns the bytes made zero, or -1. */
static int64_t
zero_step (struct vhd_disk *d, uint64_t offset, uint64_t count,
           unsigned flags)
{
  int64_t n = zero_run (d, offset, count);
  uint64_t end;

  if (n != 0)
    return n;
  if (d->ops->zero) {
    n = d->ops->zero (d, offset, count, flags);
    if (n != 0)
      return n;
  }
  if (flags & VHD_ZERO_FAST) {
    set_error (ENOTSUP, "cannot zero %" PRIu64 "+%" PRIu64 " without "
               "writing zeros", offset, count);
    return -1;
  }
  end = d->block_size ? (offset / d->block_size + 1) * d->block_size
                      : offset + count;
  count = MIN (count, end - offset);
  return write_zero_data (d, offset, count) == -1 ? -1 : (int64_t) count;
}

int
chain_write_zeroes (struct vhd_disk *d, uint64_t offset, uint64_t count,
                    unsigned flags)
{
  static const uint8_t zeros[4096];
  uint32_t align = disk_write_align (d);

  if (count == 0)
    return 0;
  aio_drain (d); /* blocks may be freed under asynchronous transfers */
  if (offset % align || count < align) {
    size_t n = (size_t) MIN (count, (uint64_t) (align - offset % align));
    if (flags & VHD_ZERO_FAST) {
      set_error (ENOTSUP, "cannot zero part of a sector without writing");
      return -1;
    }
    if (chain_write_partial (d, zeros, n, offset) == -1)
      return -1;
    offset += n, count -= n;
  }
  while (count >= align) {
    int64_t n = zero_step (d, offset, count / align * align, flags);
    if (n < 0)
      return -1;
    offset += (uint64_t) n, count -= (uint64_t) n;
  }
  if (count > 0) {
    if (flags & VHD_ZERO_FAST) {
      set_error (ENOTSUP, "cannot zero part of a sector without writing");
      return -1;
    }
    return chain_write_partial (d, zeros, (size_t) count, offset);
  }
  return 0;
}
