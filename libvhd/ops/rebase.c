/* rebase.c: vhd_rebase, pointing a differencing disk at a moved parent.
 *
 * The new parent must carry the identity the child recorded (VHD: its
 * unique ID; VHDX: the DataWriteGuid in parent_linkage), so that a rebase
 * cannot silently change what the child's unwritten sectors read.  With
 * VHD_REBASE_UNSAFE any parent is accepted and its identity recorded.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "internal.h"

static int
rebase_unlocked (struct vhd_disk *d, const char *new_parent, unsigned flags)
{
  struct create_params p = { .type = VHD_TYPE_DIFFERENCING, .size = d->size };
  struct parent_paths pp = { .rel = NULL };
  struct vhd_disk *np;
  char want[37], got[37];
  int r;

  if (d->type != VHD_TYPE_DIFFERENCING || d->ops->set_parent == NULL) {
    set_error (d->type != VHD_TYPE_DIFFERENCING ? EINVAL : ENOTSUP,
               "%s is not a differencing disk that can be rebased",
               d->filename);
    return -1;
  }
  np = disk_open_path (new_parent, VHD_OPEN_RDONLY, NULL);
  if (np == NULL)
    return -1;
  if (!(flags & VHD_REBASE_UNSAFE)
      && memcmp (np->link_id, d->parent_link_id, 16) != 0) {
    uuid_to_string (d->parent_link_id, want);
    uuid_to_string (np->link_id, got);
    set_error (EBADMSG, "%s has ID %s but %s expects %s (use unsafe mode to "
               "accept it anyway)", new_parent, got, d->filename, want);
    disk_close (np);
    return -1;
  }
  r = resolve_parent_paths (d->filename, new_parent, &pp);
  p.parent = np;
  p.parent_path = new_parent;
  p.parent_abs_path = pp.abs;
  p.parent_rel_path = pp.rel;
  if (r == 0 && chain_flush (d) == 0 && d->ops->set_parent (d, &p) == 0
      && chain_flush (d) == 0) {
    disk_close (d->parent);
    d->parent = np;
    memcpy (d->parent_link_id, np->link_id, 16);
    free (d->parent_hint);
    d->parent_hint = strdup (new_parent);
    free (pp.rel);
    return 0;
  }
  free (pp.rel);
  disk_close (np);
  return -1;
}

int
vhd_rebase (struct vhd_disk *d, const char *new_parent, unsigned flags)
{
  set_error_context ("vhd_rebase");
  if (d == NULL || new_parent == NULL) {
    set_error (EFAULT, "disk and new_parent cannot be NULL");
    return -1;
  }
  if (flags & ~VHD_REBASE_UNSAFE) {
    set_error (EINVAL, "unknown flags 0x%x", flags & ~VHD_REBASE_UNSAFE);
    return -1;
  }
  if (d->readonly) {
    set_error (EROFS, "%s is open read-only", d->filename);
    return -1;
  }
  EXCLUSIVE_LOCK_FOR_CURRENT_SCOPE (&d->lock);
  return rebase_unlocked (d, new_parent, flags);
}
