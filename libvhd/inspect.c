/* inspect.c: the public getters.  They read fields fixed at open, so
 * they need no lock; only allocated bytes walks the map under it. */
#include <errno.h>
#include <string.h>

#include "cleanup.h"
#include "internal.h"

#define CHECK_DISK(d, fail)                                                   \
  do {                                                                        \
    set_error_context (__func__);                                             \
    if ((d) == NULL) {                                                        \
      set_error (EFAULT, "disk cannot be NULL");                              \
      return fail;                                                            \
    }                                                                         \
  } while (0)

int
vhd_get_format (struct vhd_disk *d)
{
  CHECK_DISK (d, -1);
  return (int) d->ops->format;
}

const char *
vhd_get_format_name (struct vhd_disk *d)
{
  CHECK_DISK (d, NULL);
  return d->ops->name;
}

int
vhd_get_type (struct vhd_disk *d)
{
  CHECK_DISK (d, -1);
  return (int) d->type;
}

const char *
vhd_get_filename (struct vhd_disk *d)
{
  CHECK_DISK (d, NULL);
  return d->filename;
}

int64_t
vhd_get_block_size (struct vhd_disk *d)
{
  CHECK_DISK (d, -1);
  return d->block_size;
}

int
vhd_get_logical_sector_size (struct vhd_disk *d)
{
  CHECK_DISK (d, -1);
  return (int) d->logical_sector;
}

int
vhd_get_physical_sector_size (struct vhd_disk *d)
{
  CHECK_DISK (d, -1);
  return (int) d->physical_sector;
}

int64_t
vhd_get_file_size (struct vhd_disk *d)
{
  CHECK_DISK (d, -1);
  return io_get_size (d->io);
}

int64_t
vhd_get_allocated_bytes (struct vhd_disk *d)
{
  CHECK_DISK (d, -1);
  SHARED_LOCK_FOR_CURRENT_SCOPE (&d->lock);
  return disk_allocated_bytes (d);
}

int
vhd_get_id (struct vhd_disk *d, char *out)
{
  CHECK_DISK (d, -1);
  if (out == NULL) {
    set_error (EFAULT, "out cannot be NULL");
    return -1;
  }
  uuid_to_string (d->id, out);
  return 0;
}

struct vhd_disk *
vhd_get_parent (struct vhd_disk *d)
{
  CHECK_DISK (d, NULL);
  return d->parent;
}

const char *
vhd_get_parent_hint (struct vhd_disk *d)
{
  CHECK_DISK (d, NULL);
  return d->parent_hint;
}

const char *
vhd_get_creator (struct vhd_disk *d)
{
  CHECK_DISK (d, NULL);
  return d->creator;
}

int
vhd_get_log_dirty (struct vhd_disk *d)
{
  CHECK_DISK (d, -1);
  return d->log_dirty ? 1 : 0;
}
