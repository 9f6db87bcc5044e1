/* vhdx-ops.c: unmap for VHDX: whole blocks leave this layer.
 *
 * A block becomes PAYLOAD_BLOCK_NOT_PRESENT (file offset 0): a
 * differencing disk then shows its parent there, a base disk zeros.
 * The BAT pages change through the log (vhdx-write.c), at most
 * VHDX_MAX_STAGED pages (32768 blocks) per entry; the space of the
 * blocks that held data is released once their entry is durable
 * (vhdx-space.c: punched, then reused by later allocations).  The block's
 * bits in its chunk's sector bitmap are left as they are: they mean
 * nothing for a block that is not present, and a block that becomes
 * partially present again starts from a cleared slice.
 *
 * Unmap only runs for operations that keep the disk's view (compact,
 * commit): the headers get a new FileWriteGuid but keep DataWriteGuid,
 * so children of this disk stay valid.
 *
 * Inside a write batch (vhd_compact's scan) the pages wait in the batch
 * and many unmaps share one entry.
 *
 * CRASH SAFETY: each log entry switches its blocks atomically; a crash
 * leaves every block either as it was or not present, and space is
 * reused only after the entry that frees it is applied and flushed.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include "checked-overflow.h"
#include "minmax.h"
#include "vhdx.h"

/* Whether this is a fixed image, whose blocks stay allocated. */
static bool
keeps_blocks (const struct vhdx *v)
{
  return v->md.leave_blocks_allocated && !v->md.has_parent;
}

static int
drop_block (struct vhdx *v, struct vhdx_stage *st, uint64_t block)
{
  uint64_t idx = vhdx_bat_payload_index (&v->geo, block), e;
  unsigned s;

  if (vhdx_get_entry (v, idx, &e) == -1)
    return -1;
  s = vhdx_bat_state (e);
  if (s == VHDX_PAYLOAD_NOT_PRESENT)
    return 0;
  if (s == VHDX_PAYLOAD_FULLY_PRESENT || s == VHDX_PAYLOAD_PARTIALLY_PRESENT)
    vhdx_pending_add (v, vhdx_bat_offset (e),
                      vhdx_bat_offset (e) + v->md.block_size);
  return vhdx_put_entry (v, st, idx,
                         vhdx_bat_entry (VHDX_PAYLOAD_NOT_PRESENT, 0));
}

int
vhdx_unmap (struct vhd_disk *d, uint64_t offset, uint64_t count)
{
  struct vhdx *v = d->priv;
  uint64_t bs = v->md.block_size, block, last, end;
  struct vhdx_stage *st, *own = NULL;
  int r = 0;

  if (keeps_blocks (v)) {
    set_error (ENOTSUP, "a fixed VHDX image keeps its blocks allocated");
    return -1;
  }
  if (offset % bs || ADD_OVERFLOW (offset, count, &end)) {
    set_error (EINVAL, "unmap of %" PRIu64 "+%" PRIu64 " is not block "
               "aligned", offset, count);
    return -1;
  }
  if (vhdx_begin_update (d, false) == -1)
    return -1;
  st = vhdx_batch_of (d);
  if (st == NULL && (st = own = calloc (1, sizeof *st)) == NULL) {
    set_error (ENOMEM, "out of memory");
    return -1;
  }
  last = MIN (DIV_ROUND_UP (end, bs), v->geo.data_blocks);
  for (block = offset / bs; r == 0 && block < last; block++) {
    if (st->n == VHDX_MAX_STAGED && (r = vhdx_commit (d, st)) == -1)
      break;
    if ((r = drop_block (v, st, block)) == -1)
      vhdx_abandon (d, st);
  }
  if (r == 0 && own)
    r = vhdx_commit (d, st);
  if (r == -1 || own)
    vhdx_stage_free (st);
  free (own);
  return r;
}
