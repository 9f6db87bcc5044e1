/* copy.c: vhd_copy, the engine of convert: checks, locks, and the
 * destination's batched metadata around the pipeline of copy-pipeline.c.
 *
 * The source's allocation map drives the copy: ranges that read as zeros
 * in the whole chain are skipped without reading, and data is read in
 * large chunks and checked for zeros a piece at a time, so that all-zero
 * pieces stay unallocated in a dynamic destination and sparse in raw.
 * The new blocks of a VHDX destination share log entries (one metadata
 * transaction for many allocations, write_batch_begin); the final flush
 * makes everything durable.
 */
#include <errno.h>
#include <inttypes.h>

#include "copy-internal.h"

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
  bool batch;
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
  lock_pair (src, dst);
  batch = write_batch_begin (dst);
  r = copy_pipeline (src, dst, progress, opaque);
  if (batch)
    r = write_batch_finish (dst, r);
  if (r == 0)
    r = chain_flush (dst);
  if (src != dst)
    pthread_rwlock_unlock (&src->lock);
  pthread_rwlock_unlock (&dst->lock);
  if (progress && r == 0)
    progress (opaque, src->size, src->size);
  return r == 0 ? 0 : -1;
}
