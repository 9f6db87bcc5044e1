/* commit.c: vhd_commit, merging a differencing disk into its parent.
 *
 * Order, and what a crash leaves:
 *   0. when the child can record a second link ID for its parent (VHDX
 *      parent_linkage2), choose the link ID the parent will take when its
 *      data changes (a VHDX parent's new DataWriteGuid) and record it in
 *      the child, flushed: from then on the child accepts the parent
 *      before and after its change;
 *   1. copy every range the child holds (data, and zero ranges as zeros)
 *      into the parent, opened read-write for the purpose with that link
 *      ID preset, and flush it: the child still overrides those ranges
 *      with the same bytes, so the chain's view has not changed;
 *   2. unmap all of the child's blocks and record the parent as it is now
 *      (the second link ID goes) and flush: the child is empty and shows
 *      the parent, which holds the data.
 * A crash during 0 or 1 leaves the old chain, which still opens; during
 * 2, a child that is partly emptied over a parent that already holds
 * everything.  (A VHD child has no room for a second link ID: over a VHDX
 * parent, a crash during 1 leaves a child that needs rebase --unsafe.)
 * Other children of the same parent see its new content: the caller
 * warns about those.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "internal.h"
#include "minmax.h"

#define COMMIT_CHUNK (4U << 20)

static int
copy_range (struct vhd_disk *d, struct vhd_disk *parent, uint8_t *buf,
            uint64_t offset, uint64_t len)
{
  while (len > 0) {
    size_t n = (size_t) MIN (len, (uint64_t) COMMIT_CHUNK);
    if (chain_pread (d, buf, n, offset) == -1
        || chain_pwrite (parent, buf, n, offset) == -1)
      return -1;
    offset += n, len -= n;
  }
  return 0;
}

/* Step 1: everything this layer holds goes into the parent. */
static int
copy_layer (struct vhd_disk *d, struct vhd_disk *parent,
            vhd_progress_fn progress, void *opaque)
{
  uint8_t *buf = malloc (COMMIT_CHUNK);
  uint64_t offset = 0;
  int r = buf ? 0 : -1;

  if (buf == NULL)
    set_error (ENOMEM, "out of memory");
  while (r == 0 && offset < d->size) {
    struct extent e;
    r = d->ops->map (d, offset, d->size - offset, &e);
    if (r == 0 && e.state == LAYER_DATA)
      r = copy_range (d, parent, buf, offset, e.length);
    else if (r == 0 && e.state == LAYER_ZERO)
      r = chain_write_zeroes (parent, offset, e.length, 0);
    offset += r == 0 ? e.length : 0;
    if (progress)
      progress (opaque, offset, d->size);
  }
  free (buf);
  return r == 0 ? chain_flush (parent) : -1;
}

/* The parent's paths as the child records them, for set_parent. */
static int
plan_relink (struct vhd_disk *d, struct vhd_disk *parent,
             struct create_params *p, struct parent_paths *pp)
{
  *p = (struct create_params) { .type = VHD_TYPE_DIFFERENCING,
                                .size = d->size, .parent = parent };
  if (resolve_parent_paths (d->filename, parent->filename, pp) == -1)
    return -1;
  p->parent_path = parent->filename;
  p->parent_abs_path = pp->abs;
  p->parent_rel_path = pp->rel;
  return 0;
}

/* Step 0: the child learns the parent's coming link ID (next). */
static int
announce_link (struct vhd_disk *d, const uint8_t next[16])
{
  struct create_params p;
  struct parent_paths pp = { .rel = NULL };
  int r;

  if (!d->ops->records_link_id2)
    return 0;
  r = plan_relink (d, d->parent, &p, &pp);
  p.parent_link_id2 = next;
  if (r == 0)
    r = d->ops->set_parent (d, &p);
  free (pp.rel);
  return r == 0 ? chain_flush (d) : -1;
}

/* Step 2: empty the child and link it to the parent as it is now. */
static int
empty_child (struct vhd_disk *d, struct vhd_disk *parent)
{
  struct create_params p;
  struct parent_paths pp = { .rel = NULL };
  uint64_t span = ROUND_UP (d->size, (uint64_t) d->block_size);
  int r = plan_relink (d, parent, &p, &pp);

  if (r == 0)
    r = d->ops->unmap (d, 0, span);
  if (r == 0)
    r = d->ops->set_parent (d, &p);
  free (pp.rel);
  if (r == 0)
    memcpy (d->parent_link_id, parent->link_id, 16);
  return r == 0 ? chain_flush (d) : -1;
}

static int
commit_unlocked (struct vhd_disk *d, vhd_progress_fn progress, void *opaque)
{
  struct vhd_disk *rw, *ro;
  uint8_t next[16];

  if (d->type != VHD_TYPE_DIFFERENCING || d->parent == NULL) {
    set_error (EINVAL, "%s is not a differencing disk with its parent open",
               d->filename);
    return -1;
  }
  if (d->ops->unmap == NULL || d->ops->set_parent == NULL) {
    set_error (ENOTSUP, "commit is not supported for %s images",
               d->ops->name);
    return -1;
  }
  if (d->parent->size < d->size) {
    set_error (ENOTSUP, "the parent (%" PRIu64 " bytes) is smaller than "
               "the child (%" PRIu64 "); resize it first", d->parent->size,
               d->size);
    return -1;
  }
  uuid_generate_bytes (next);
  if (chain_flush (d) == -1 || announce_link (d, next) == -1)
    return -1;
  rw = disk_open_path (d->parent->filename, 0, NULL);
  if (rw == NULL)
    return -1;
  memcpy (rw->next_link_id, next, 16);
  if (copy_layer (d, rw, progress, opaque) == -1
      || empty_child (d, rw) == -1) {
    disk_close (rw);
    return -1;
  }
  disk_close (rw);
  /* Our read-only view of the parent predates its new content. */
  ro = disk_open_path (d->parent->filename, VHD_OPEN_RDONLY, NULL);
  if (ro == NULL)
    return -1;
  disk_close (d->parent);
  d->parent = ro;
  return 0;
}

int
vhd_commit (struct vhd_disk *d, vhd_progress_fn progress, void *opaque)
{
  set_error_context ("vhd_commit");
  if (d == NULL) {
    set_error (EFAULT, "disk cannot be NULL");
    return -1;
  }
  if (d->readonly) {
    set_error (EROFS, "%s is open read-only", d->filename);
    return -1;
  }
  EXCLUSIVE_LOCK_FOR_CURRENT_SCOPE (&d->lock);
  return commit_unlocked (d, progress, opaque);
}
