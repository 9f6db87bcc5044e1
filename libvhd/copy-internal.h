/* copy-internal.h: between vhd_copy (copy.c), its engine
 * (copy-pipeline.c) and the drivers' batched writes (vhdx-write.c).
 */
#ifndef LIBVHD_COPY_INTERNAL_H
#define LIBVHD_COPY_INTERNAL_H

#include <stdbool.h>

#include "internal.h"

/* copy-pipeline.c: copy every range of src that does not read as zeros
 * into dst, src's lock held shared and dst's exclusive by the calling
 * thread.  A helper thread reads ahead while the calling thread writes;
 * progress is called from the calling thread, in order, and an error of
 * either side is the calling thread's when it returns -1. */
int copy_pipeline (struct vhd_disk *src, struct vhd_disk *dst,
                   vhd_progress_fn progress, void *opaque);

/* vhdx-write.c: while the calling thread holds d's lock exclusive, let
 * its unmaps of d share log entries (one transaction for many) with the
 * block allocations of writes, which always wait for a flush.  The BAT
 * changes are committed when the stage fills, by a flush, a zero, and by
 * write_batch_end, which returns whether that worked.  Until then a
 * crash loses the batched writes (not yet flushed, like any write) and
 * leaks their space at the end of the file.  begin returns false when it
 * did nothing (not VHDX, or a batch is open already); call
 * write_batch_end only after a true begin. */
bool write_batch_begin (struct vhd_disk *d);
int write_batch_end (struct vhd_disk *d);
/* write_batch_end after the batched work returned r: the batch is
 * committed also after a failure (what was written stays written), and
 * the work's error is the one kept.  Returns r, or -1 when the commit
 * fails. */
int write_batch_finish (struct vhd_disk *d, int r);

#endif /* LIBVHD_COPY_INTERNAL_H */
