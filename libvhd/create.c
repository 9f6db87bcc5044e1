/* create.c: vhd_create and its options.
 *
 * The options object is validated field by field as it is set; vhd_create
 * then checks the combination, works out the parent's paths (absolute, and
 * relative to the new file's directory, which differencing formats record
 * both of), lets the driver write the empty image into a new file, and
 * reopens it through the normal path, so a created image is exactly as
 * trustworthy as any other.  A failed create removes the file.
 */
#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "minmax.h"

struct vhd_create_opts {
  enum vhd_format format;
  enum vhd_type type;
  uint64_t size;
  uint32_t block_size;
  uint32_t logical_sector, physical_sector;
  bool sector_size_set;       /* given by the caller, not the default */
  char *parent;
  unsigned open_flags;        /* for the returned handle */
};

struct vhd_create_opts *
vhd_create_opts_new (void)
{
  struct vhd_create_opts *o;

  set_error_context ("vhd_create_opts_new");
  o = calloc (1, sizeof *o);
  if (o == NULL) {
    set_error (ENOMEM, "out of memory");
    return NULL;
  }
  o->format = VHD_FORMAT_VHD;
  o->type = VHD_TYPE_DYNAMIC;
  o->logical_sector = o->physical_sector = 512;
  return o;
}

void
vhd_create_opts_free (struct vhd_create_opts *o)
{
  if (o == NULL)
    return;
  free (o->parent);
  free (o);
}

#define CHECK_OPTS(o)                                                         \
  do {                                                                        \
    set_error_context (__func__);                                             \
    if ((o) == NULL) {                                                        \
      set_error (EFAULT, "opts cannot be NULL");                              \
      return -1;                                                              \
    }                                                                         \
  } while (0)

int
vhd_create_opts_set_format (struct vhd_create_opts *o, int format)
{
  CHECK_OPTS (o);
  if (format != VHD_FORMAT_RAW && format != VHD_FORMAT_VHD
      && format != VHD_FORMAT_VHDX) {
    set_error (EINVAL, "unknown format %d", format);
    return -1;
  }
  o->format = (enum vhd_format) format;
  return 0;
}

int
vhd_create_opts_set_type (struct vhd_create_opts *o, int type)
{
  CHECK_OPTS (o);
  if (type != VHD_TYPE_FIXED && type != VHD_TYPE_DYNAMIC) {
    set_error (EINVAL, "type must be fixed or dynamic (a differencing disk "
               "is made by setting a parent)");
    return -1;
  }
  o->type = (enum vhd_type) type;
  return 0;
}

int
vhd_create_opts_set_size (struct vhd_create_opts *o, uint64_t size)
{
  CHECK_OPTS (o);
  if (size == 0 || size > INT64_MAX) {
    set_error (ERANGE, "size %" PRIu64 " out of range", size);
    return -1;
  }
  o->size = size;
  return 0;
}

int
vhd_create_opts_set_block_size (struct vhd_create_opts *o, uint32_t bs)
{
  CHECK_OPTS (o);
  if (!IS_POWER_OF_2 (bs) || bs < 512) {
    set_error (EINVAL, "block size %" PRIu32 " is not a power of two of "
               "at least 512", bs);
    return -1;
  }
  o->block_size = bs;
  return 0;
}

int
vhd_create_opts_set_sector_size (struct vhd_create_opts *o, uint32_t logical,
                                 uint32_t physical)
{
  CHECK_OPTS (o);
  if ((logical != 512 && logical != 4096)
      || (physical != 512 && physical != 4096)) {
    set_error (EINVAL, "sector sizes must be 512 or 4096 (got %" PRIu32
               "/%" PRIu32 ")", logical, physical);
    return -1;
  }
  o->logical_sector = logical;
  o->physical_sector = physical;
  o->sector_size_set = true;
  return 0;
}

int
vhd_create_opts_set_open_flags (struct vhd_create_opts *o, unsigned flags)
{
  CHECK_OPTS (o);
  if (flags & ~VHD_OPEN_DIRECT) {
    set_error (EINVAL, "flags 0x%x cannot open a new image (only "
               "VHD_OPEN_DIRECT)", flags & ~VHD_OPEN_DIRECT);
    return -1;
  }
  o->open_flags = flags;
  return 0;
}

int
vhd_create_opts_set_parent (struct vhd_create_opts *o, const char *parent)
{
  char *copy;

  CHECK_OPTS (o);
  copy = parent ? strdup (parent) : NULL;
  if (parent && copy == NULL) {
    set_error (ENOMEM, "out of memory");
    return -1;
  }
  free (o->parent);
  o->parent = copy;
  return 0;
}

/* PATH relative to DIR (both absolute, without "." or ".." parts). */
static char *
relative_path (const char *path, const char *dir)
{
  size_t common = 0, i, dir_len = strlen (dir);
  const char *rest;
  unsigned ups = 0;
  char *out;

  for (i = 0; path[i] && path[i] == dir[i]; i++)
    if (path[i] == '/')
      common = i + 1;
  if (dir[i] == '\0' && path[i] == '/') /* DIR is a whole prefix */
    common = i + 1;
  /* Each component of DIR past the common part is one level up. */
  rest = dir + MIN (common, dir_len);
  for (i = 0; rest[i]; i++)
    if (rest[i] != '/' && (i == 0 || rest[i - 1] == '/'))
      ups++;
  out = malloc (ups * 3 + strlen (path + common) + 1);
  if (out == NULL)
    return NULL;
  out[0] = '\0';
  while (ups--)
    strcat (out, "../");
  strcat (out, path + common);
  return out;
}

int
resolve_parent_paths (const char *child, const char *parent,
                      struct parent_paths *pp)
{
  char child_dir[PATH_MAX], *copy = strdup (child);

  if (copy == NULL) {
    set_error (ENOMEM, "out of memory");
    return -1;
  }
  if (realpath (parent, pp->abs) == NULL
      || realpath (dirname (copy), child_dir) == NULL) {
    set_error (errno, "%s: %s", parent, strerror (errno));
    free (copy);
    return -1;
  }
  free (copy);
  pp->rel = relative_path (pp->abs, child_dir);
  if (pp->rel == NULL) {
    set_error (ENOMEM, "out of memory");
    return -1;
  }
  return 0;
}

/* Fill the driver's parameters from the options and the parent. */
static int
plan_create (const char *path, const struct vhd_create_opts *o,
             struct create_params *p, struct parent_paths *pp)
{
  memset (p, 0, sizeof *p);
  p->type = o->type;
  p->size = o->size;
  p->block_size = o->block_size;
  p->logical_sector = o->logical_sector;
  p->physical_sector = o->physical_sector;
  if (o->parent) {
    p->parent = disk_open_path (o->parent, VHD_OPEN_RDONLY, NULL);
    if (p->parent == NULL || resolve_parent_paths (path, o->parent, pp) == -1)
      return -1;
    /* A child shows its parent's sectors: it cannot have others. */
    if (o->sector_size_set
        && o->logical_sector != p->parent->logical_sector) {
      set_error (EINVAL, "a differencing disk has its parent's logical "
                 "sector size (%" PRIu32 " bytes), not %" PRIu32,
                 p->parent->logical_sector, o->logical_sector);
      return -1;
    }
    p->type = VHD_TYPE_DIFFERENCING;
    p->size = p->parent->size;
    p->parent_path = o->parent;
    p->parent_abs_path = pp->abs;
    p->parent_rel_path = pp->rel;
  }
  if (p->size == 0) {
    set_error (EINVAL, "no size given");
    return -1;
  }
  if (o->format != VHD_FORMAT_RAW)
    p->size = ROUND_UP (p->size, (uint64_t) p->logical_sector);
  return 0;
}

static int
write_new_image (const char *path, const struct format_ops *ops,
                 const struct create_params *p)
{
  struct io *io = io_file_open (path, false, true);
  int r;

  if (io == NULL)
    return -1;
  r = ops->create (io, p);
  if (r == 0)
    r = io_flush (io);
  io->ops->close (io);
  if (r == -1)
    unlink (path);
  return r;
}

struct vhd_disk *
vhd_create (const char *path, const struct vhd_create_opts *o)
{
  const struct format_ops *ops;
  struct create_params p;
  struct parent_paths pp = { .rel = NULL };
  struct vhd_disk *d = NULL;

  set_error_context ("vhd_create");
  if (path == NULL || o == NULL) {
    set_error (EFAULT, "path and opts cannot be NULL");
    return NULL;
  }
  ops = format_by_id (o->format);
  if (ops != NULL && plan_create (path, o, &p, &pp) == 0
      && write_new_image (path, ops, &p) == 0) {
    d = disk_open_path (path, o->open_flags, NULL);
    if (d == NULL)
      unlink (path); /* the open's error names the file */
  }
  else
    prefix_error ("%s", path);
  if (o->parent)
    disk_close (p.parent);
  free (pp.rel);
  return d;
}
