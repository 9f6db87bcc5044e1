/* open-opts.c: vhd_open_opts and vhd_open_with_opts, the open call for
 * callers that need more than flags (a VMM naming a parent itself). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct vhd_open_opts {
  unsigned flags;
  char *parent;
};

struct vhd_open_opts *
vhd_open_opts_new (void)
{
  struct vhd_open_opts *o;

  set_error_context ("vhd_open_opts_new");
  o = calloc (1, sizeof *o);
  if (o == NULL)
    set_error (ENOMEM, "out of memory");
  return o;
}

void
vhd_open_opts_free (struct vhd_open_opts *o)
{
  if (o == NULL)
    return;
  free (o->parent);
  free (o);
}

int
vhd_open_opts_set_flags (struct vhd_open_opts *o, unsigned flags)
{
  set_error_context ("vhd_open_opts_set_flags");
  if (o == NULL) {
    set_error (EFAULT, "opts cannot be NULL");
    return -1;
  }
  if (flags & ~VHD_OPEN_MASK) {
    set_error (EINVAL, "unknown flags 0x%x", flags & ~VHD_OPEN_MASK);
    return -1;
  }
  o->flags = flags;
  return 0;
}

int
vhd_open_opts_set_parent (struct vhd_open_opts *o, const char *path)
{
  char *copy;

  set_error_context ("vhd_open_opts_set_parent");
  if (o == NULL) {
    set_error (EFAULT, "opts cannot be NULL");
    return -1;
  }
  copy = path ? strdup (path) : NULL;
  if (path && copy == NULL) {
    set_error (ENOMEM, "out of memory");
    return -1;
  }
  free (o->parent);
  o->parent = copy;
  return 0;
}

struct vhd_disk *
vhd_open_with_opts (const char *path, const struct vhd_open_opts *o)
{
  set_error_context ("vhd_open_with_opts");
  if (path == NULL || o == NULL) {
    set_error (EFAULT, "path and opts cannot be NULL");
    return NULL;
  }
  if (o->parent && (o->flags & VHD_OPEN_NO_PARENT)) {
    set_error (EINVAL, "a parent was given together with VHD_OPEN_NO_PARENT");
    return NULL;
  }
  return disk_open_path (path, o->flags, o->parent);
}
