/* io-zero.c: make a range of a byte source read as zeros.
 *
 * io_write_zeros writes them: creating fixed images, replaying a log's
 * zero descriptors, growing a disk, where the bytes must be there.
 * io_zero_or_write gives the range back to the host where it can
 * (punch) and writes zeros where it cannot.
 */
#include <errno.h>
#include <stdlib.h>

#include "internal.h"
#include "minmax.h"

#define ZERO_WRITE_CHUNK (1U << 20)

int
io_write_zeros (struct io *io, uint64_t offset, uint64_t len)
{
  uint8_t *zeros;
  int r = 0;

  if (len == 0)
    return 0;
  zeros = calloc (1, ZERO_WRITE_CHUNK);
  if (zeros == NULL) {
    set_error (ENOMEM, "out of memory");
    return -1;
  }
  while (r == 0 && len > 0) {
    size_t n = (size_t) MIN (len, (uint64_t) ZERO_WRITE_CHUNK);
    r = io_pwrite (io, zeros, n, offset);
    offset += n, len -= n;
  }
  free (zeros);
  return r;
}

int
io_zero_or_write (struct io *io, uint64_t offset, uint64_t len)
{
  int r = io_try_punch (io, offset, len);

  if (r != 0)
    return r == 1 ? 0 : -1;
  return io_write_zeros (io, offset, len);
}
