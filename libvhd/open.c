/* open.c: building a handle, and resolving a differencing disk's parent.
 *
 * A handle is its byte source, its driver's state and, for a differencing
 * disk, the parent handle it owns.  Parents are always opened read-only:
 * only the top of a chain is ever written.
 *
 * Parent resolution tries the paths the image records, most trusted first
 * (the driver orders them: relative locator, absolute locator, ...), each
 * taken relative to the child's directory when relative, with Windows
 * backslashes turned into slashes; then the bare file name of each in the
 * child's directory (a chain copied elsewhere keeps working).  A candidate
 * whose identity does not match the child's record is skipped; when none
 * matches, the first mismatch is the error.  Loops are caught by file
 * identity (device, inode), and depth is capped.  A parent path given
 * by the caller (vhd_open_opts_set_parent) replaces the search for the
 * top image's parent; its identity is checked all the same.
 */
#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

/* The files already open below us in this chain (for loop detection). */
struct visit {
  uint64_t dev, ino;
  const struct visit *next;
};

static struct vhd_disk *open_path_chain (const char *path, unsigned flags,
                                         const char *parent_path,
                                         const struct visit *above,
                                         unsigned depth);

int
disk_add_parent_candidate (struct vhd_disk *d, const char *path)
{
  char *copy;

  if (path == NULL || path[0] == '\0'
      || d->n_parent_candidates >= MAX_PARENT_CANDIDATES)
    return 0;
  copy = strdup (path);
  if (copy == NULL) {
    set_error (ENOMEM, "out of memory");
    return -1;
  }
  d->parent_candidates[d->n_parent_candidates++] = copy;
  return 0;
}

void
disk_close (struct vhd_disk *d)
{
  if (d == NULL)
    return;
  if (!d->readonly)
    chain_flush (d); /* the error stays readable; closing cannot fail */
  disk_free (d);
}

void
disk_free (struct vhd_disk *d)
{
  unsigned i;

  if (d == NULL)
    return;
  aio_close (d);
  disk_close (d->parent);
  if (d->ops)
    d->ops->close (d);
  free (d->priv);
  if (d->io)
    d->io->ops->close (d->io);
  for (i = 0; i < d->n_parent_candidates; i++)
    free (d->parent_candidates[i]);
  free (d->parent_hint);
  free (d->filename);
  pthread_mutex_destroy (&d->map_lock);
  pthread_rwlock_destroy (&d->lock);
  free (d);
}

/* Writers first: a stream of readers must not starve an allocation. */
static void
init_rwlock (pthread_rwlock_t *lock)
{
  pthread_rwlockattr_t attr;

  pthread_rwlockattr_init (&attr);
  pthread_rwlockattr_setkind_np (&attr,
                                 PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init (lock, &attr);
  pthread_rwlockattr_destroy (&attr);
}

static struct vhd_disk *
disk_new (struct io *io, const char *name, unsigned flags)
{
  struct vhd_disk *d = calloc (1, sizeof *d);

  if (d == NULL || (d->filename = strdup (name)) == NULL) {
    free (d);
    io->ops->close (io);
    set_error (ENOMEM, "out of memory");
    return NULL;
  }
  init_rwlock (&d->lock);
  pthread_mutex_init (&d->map_lock, NULL);
  d->io = io;
  d->flags = flags;
  d->readonly = (flags & VHD_OPEN_RDONLY) != 0;
  return d;
}

/* Probe, then let the driver read its metadata. */
static int
disk_open_driver (struct vhd_disk *d)
{
  d->ops = format_probe (d->io);
  if (d->ops == NULL)
    return -1;
  if (d->ops->instance_size) {
    d->priv = calloc (1, d->ops->instance_size);
    if (d->priv == NULL) {
      set_error (ENOMEM, "out of memory");
      return -1;
    }
  }
  return d->ops->open (d);
}

struct vhd_disk *
disk_open_io (struct io *io, const char *name, unsigned flags,
              struct vhd_disk *parent)
{
  struct vhd_disk *d = disk_new (io, name, flags);

  if (d == NULL) {
    disk_close (parent);
    return NULL;
  }
  d->parent = parent;
  if (disk_open_driver (d) == -1) {
    prefix_error ("%s", name);
    disk_free (d);
    return NULL;
  }
  if (parent)
    d->depth_below = parent->depth_below + 1;
  return d;
}

/* The candidate as a path on this system: backslashes become slashes, a
 * leading ".\" goes, relative paths are taken from dir.  NULL for paths
 * that cannot name a file here (a Windows drive or UNC path). */
static char *
candidate_path (const char *recorded, const char *dir)
{
  char *p = strdup (recorded), *out = NULL, *c;

  if (p == NULL)
    return NULL;
  for (c = p; *c; c++)
    if (*c == '\\')
      *c = '/';
  c = p;
  while (c[0] == '.' && c[1] == '/')
    c += 2;
  if ((c[0] && c[1] == ':') || (c[0] == '/' && c[1] == '/'))
    out = NULL;
  else if (c[0] == '/')
    out = strdup (c);
  else if (asprintf (&out, "%s/%s", dir, c) == -1)
    out = NULL;
  free (p);
  return out;
}

/* The candidate's file name alone, in dir. */
static char *
candidate_in_dir (const char *recorded, const char *dir)
{
  const char *base = recorded, *c;
  char *out;

  for (c = recorded; *c; c++)
    if (*c == '/' || *c == '\\')
      base = c + 1;
  if (*base == '\0' || asprintf (&out, "%s/%s", dir, base) == -1)
    return NULL;
  return out;
}

bool
disk_parent_matches (const struct vhd_disk *d, const struct vhd_disk *p)
{
  return memcmp (p->link_id, d->parent_link_id, 16) == 0
         || (!uuid_is_null_bytes (d->parent_link_id2)
             && memcmp (p->link_id, d->parent_link_id2, 16) == 0);
}

/* Try one path as d's parent.  1 = opened and linked, 0 = not there,
 * -1 = there but unusable (error recorded). */
static int
try_parent (struct vhd_disk *d, const char *path, const struct visit *chain,
            unsigned depth)
{
  struct vhd_disk *p;
  char want[37], got[37];

  if (access (path, F_OK) == -1)
    return 0;
  p = open_path_chain (path, VHD_OPEN_RDONLY | (d->flags & ~VHD_OPEN_MASK)
                                 | (d->flags & (VHD_OPEN_IGNORE_PARENT_ID
                                                | VHD_OPEN_DIRECT)),
                       NULL, chain, depth + 1);
  if (p == NULL)
    return -1;
  if (!disk_parent_matches (d, p)
      && !(d->flags & VHD_OPEN_IGNORE_PARENT_ID)) {
    uuid_to_string (d->parent_link_id, want);
    uuid_to_string (p->link_id, got);
    set_error (EBADMSG,
               "parent %s has ID %s but the image expects %s (a different "
               "or modified parent)", path, got, want);
    disk_close (p);
    return -1;
  }
  d->parent = p;
  d->depth_below = p->depth_below + 1;
  free (d->parent_hint);
  d->parent_hint = strdup (path);
  return 1;
}

/* Record the first failure; later ones are usually just "not found". */
static void
save_first_error (char *buf, size_t len, int *err)
{
  if (*err == 0 && vhd_get_error ()) {
    snprintf (buf, len, "%s", error_message ());
    *err = vhd_get_errno ();
  }
}

/* The parent the caller named. */
static int
open_given_parent (struct vhd_disk *d, const char *path,
                   const struct visit *chain, unsigned depth)
{
  int r = try_parent (d, path, chain, depth);

  if (r == 0)
    set_error (ENOENT, "parent %s: %s", path, strerror (ENOENT));
  return r == 1 ? 0 : -1;
}

static int
open_parent (struct vhd_disk *d, const struct visit *chain, unsigned depth)
{
  char *dir_copy = strdup (d->filename), *dir, first_err[1024] = "";
  int first_errno = 0, r = 0;
  unsigned i, pass;

  if (dir_copy == NULL) {
    set_error (ENOMEM, "out of memory");
    return -1;
  }
  dir = dirname (dir_copy);
  for (pass = 0; pass < 2 && r != 1; pass++)
    for (i = 0; i < d->n_parent_candidates && r != 1; i++) {
      const char *rec = d->parent_candidates[i];
      char *path = pass == 0 ? candidate_path (rec, dir)
                             : candidate_in_dir (rec, dir);
      if (path == NULL)
        continue;
      r = try_parent (d, path, chain, depth);
      if (r == -1)
        save_first_error (first_err, sizeof first_err, &first_errno);
      free (path);
    }
  free (dir_copy);
  if (r == 1)
    return 0;
  if (first_errno) {
    set_error (first_errno, "%s", first_err);
    return -1;
  }
  set_error (ENOENT, "parent not found: %s",
             d->n_parent_candidates ? d->parent_candidates[0]
                                    : "(no parent path recorded)");
  return -1;
}

static struct vhd_disk *
open_path_chain (const char *path, unsigned flags, const char *parent_path,
                 const struct visit *above, unsigned depth)
{
  struct visit self = { 0, 0, above };
  const struct visit *v;
  struct vhd_disk *d;
  struct io *io;

  if (depth > MAX_CHAIN_DEPTH) {
    set_error (ELOOP, "%s: chain deeper than %u images", path,
               MAX_CHAIN_DEPTH);
    return NULL;
  }
  io = io_file_open (path, (flags & VHD_OPEN_RDONLY) != 0, false);
  if (io == NULL)
    return NULL;
  if ((flags & VHD_OPEN_DIRECT) && io_file_use_direct (io) == -1) {
    prefix_error ("%s", path);
    io->ops->close (io);
    return NULL;
  }
  if (io_file_identity (io, &self.dev, &self.ino) == 0)
    for (v = above; v; v = v->next)
      if (v->dev == self.dev && v->ino == self.ino) {
        io->ops->close (io);
        set_error (ELOOP, "%s: parent loop: the image is its own ancestor",
                   path);
        return NULL;
      }
  d = disk_open_io (io, path, flags, NULL);
  if (d == NULL)
    return NULL;
  if (d->type == VHD_TYPE_DIFFERENCING && !(flags & VHD_OPEN_NO_PARENT)) {
    if ((parent_path ? open_given_parent (d, parent_path, &self, depth)
                     : open_parent (d, &self, depth)) == -1) {
      prefix_error ("%s", path);
      disk_free (d);
      return NULL;
    }
  }
  else if (parent_path && d->type != VHD_TYPE_DIFFERENCING) {
    set_error (EINVAL, "%s: a parent was given but the image is not a "
               "differencing disk", path);
    disk_free (d);
    return NULL;
  }
  else if (d->n_parent_candidates && d->parent_hint == NULL)
    d->parent_hint = strdup (d->parent_candidates[0]);
  return d;
}

struct vhd_disk *
disk_open_path (const char *path, unsigned flags, const char *parent_path)
{
  return open_path_chain (path, flags, parent_path, NULL, 0);
}
