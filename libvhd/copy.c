/* copy.c: vhd_copy, the engine of convert.
 *
 * The source's allocation map drives the copy: ranges that read as zeros
 * in the whole chain are skipped without reading, and data is read in
 * large chunks and checked for zeros a piece at a time, so that all-zero
 * pieces stay unallocated in a dynamic destination and sparse in raw.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "minmax.h"

#define COPY_CHUNK (4U << 20)
#define ZERO_PIECE (64U << 10)

struct copy {
  struct vhd_disk *src, *dst;
  uint8_t *buf;
  vhd_progress_fn progress;
  void *opaque;
};

static bool
is_zero (const uint8_t *p, size_t n)
{
  const uint64_t *w = (const uint64_t *) p;
  size_t i;

  for (i = 0; i < n / 8; i++)
    if (w[i])
      return false;
  for (i = n / 8 * 8; i < n; i++)
    if (p[i])
      return false;
  return true;
}

/* Write the non-zero pieces of buf, which holds [offset, offset+n). */
static int
write_nonzero (struct copy *c, size_t n, uint64_t offset)
{
  size_t done = 0;

  while (done < n) {
    size_t piece = MIN ((size_t) ZERO_PIECE, n - done);
    size_t run = 0;
    while (done + run < n && !is_zero (c->buf + done + run, piece)) {
      run += piece;
      piece = MIN ((size_t) ZERO_PIECE, n - done - run);
    }
    if (run && chain_pwrite (c->dst, c->buf + done, run, offset + done) == -1)
      return -1;
    done += run ? run : piece;
  }
  return 0;
}

static int
copy_extent (void *opaque, uint64_t offset, uint64_t length, unsigned state,
             unsigned depth)
{
  struct copy *c = opaque;

  if (!(state & VHD_STATE_ZERO))
    while (length > 0) {
      size_t n = (size_t) MIN (length, (uint64_t) COPY_CHUNK);
      if (chain_pread (c->src, c->buf, n, offset) == -1
          || write_nonzero (c, n, offset) == -1)
        return -1;
      offset += n, length -= n;
      if (c->progress)
        c->progress (c->opaque, offset, c->src->size);
    }
  else if (c->progress)
    c->progress (c->opaque, offset + length, c->src->size);
  return 0;
}

/* The destination exclusive, the source shared, always in address order
 * so that two copies between the same handles in opposite directions
 * cannot wait for each other. */
static void
lock_pair (struct vhd_disk *src, struct vhd_disk *dst)
{
  if (src == dst)
    pthread_rwlock_wrlock (&dst->lock);
  else if ((uintptr_t) src < (uintptr_t) dst) {
    pthread_rwlock_rdlock (&src->lock);
    pthread_rwlock_wrlock (&dst->lock);
  } else {
    pthread_rwlock_wrlock (&dst->lock);
    pthread_rwlock_rdlock (&src->lock);
  }
}

int
vhd_copy (struct vhd_disk *src, struct vhd_disk *dst,
          vhd_progress_fn progress, void *opaque)
{
  struct copy c = { src, dst, NULL, progress, opaque };
  int r;

  set_error_context ("vhd_copy");
  if (src == NULL || dst == NULL) {
    set_error (EFAULT, "src and dst cannot be NULL");
    return -1;
  }
  if (dst->readonly) {
    set_error (EROFS, "%s is open read-only", dst->filename);
    return -1;
  }
  if (dst->size < src->size) {
    set_error (ERANGE, "destination (%" PRIu64 " bytes) is smaller than "
               "the source (%" PRIu64 " bytes)", dst->size, src->size);
    return -1;
  }
  c.buf = malloc (COPY_CHUNK);
  if (c.buf == NULL) {
    set_error (ENOMEM, "out of memory");
    return -1;
  }
  lock_pair (src, dst);
  r = src->size ? chain_block_status (src, 0, src->size,
                                      VHD_STATUS_HOST_HOLES, copy_extent, &c) : 0;
  if (r == 0)
    r = chain_flush (dst);
  if (src != dst)
    pthread_rwlock_unlock (&src->lock);
  pthread_rwlock_unlock (&dst->lock);
  free (c.buf);
  if (c.progress && r == 0)
    c.progress (c.opaque, src->size, src->size);
  return r == 0 ? 0 : -1;
}
