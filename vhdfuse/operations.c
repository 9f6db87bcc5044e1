/* operations.c: the FUSE operations.
 *
 * Every regular file of the mount is a window onto the one disk handle
 * (files.c); an open file carries a copy of its window in fi->fh, so I/O
 * never looks at paths (nullpath_ok) and a partition file keeps working
 * when the table is rescanned.  The copies are also on a list: a file
 * still open when the session ends never gets its release, and destroy
 * frees it.  Reads and writes are clipped to the window: a read at or
 * past its end is end of file, a write there fails with ENOSPC and a
 * write across it is short, as with a block device.
 *
 * Threads: fuse3's multi-threaded loop calls these from several threads
 * at once.  The libvhd handle takes its own lock per call; the rest of
 * the state here is read-only after mount, or atomic (dirty).
 *
 * Caching.  The disk is an ordinary, page-cached file, not direct_io:
 * loop devices (mount -o loop), mmap and exec need the page cache, and it
 * turns small or unaligned reads into large, aligned ones.  Writes are
 * write-through (no writeback_cache): each write(2) reaches the library
 * before it returns, so its errors (ENOSPC, EIO) are reported to the
 * writer, and close and fsync cover everything written.  The cache of a
 * file is dropped when it is opened (no kernel_cache) and not on attribute
 * changes (auto_inval_data off: only we change the image), so a file
 * opened after a write through another name (disk vs disk-partN) sees it.
 * Two names open at once are not coherent with each other, like a disk
 * device and its partition devices.  Requests go up to MAX_IO bytes.
 * `-o direct_io' bypasses the page cache for callers that cache
 * themselves; mmap then fails.
 *
 * Durability.  A write marks the disk dirty.  close(2) (the flush
 * operation, which the kernel waits for), fsync and release flush the
 * library when it is dirty, so a file written and closed is on disk
 * before close returns, and `fusermount3 -u' finds nothing unflushed.
 * destroy, at unmount or SIGTERM, flushes and closes the image.
 *
 * Errors: fuse_error () is the one place a library error becomes an
 * errno, and is printed (to stderr: visible with -f).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#ifndef FALLOC_FL_PUNCH_HOLE
#include <linux/falloc.h>
#endif

#include "vhdfuse.h"

#define MAX_IO (1U << 20)            /* largest read/write request */
#define SEEK_STEP (UINT64_C (1) << 32) /* bytes mapped per block_status call */

struct vhdfuse_state vf;

static atomic_bool dirty;            /* written since the last flush */

/* An open file: its window, on the list of open files.  The kernel sends
 * a release after close(2) without waiting for it, so an unmount can end
 * the session with releases never delivered; destroy frees what is left. */
struct open_file {
  struct window w;
  struct open_file *prev, *next;
};

static pthread_mutex_t open_lock = PTHREAD_MUTEX_INITIALIZER;
static struct open_file open_files = { .prev = &open_files,
                                       .next = &open_files };

/* ---------------------------------------------------------------- errors */

const char *
lib_message (void)
{
  const char *msg = vhd_get_error ();
  const char *colon;
  size_t n = vf.name ? strlen (vf.name) : 0;

  if (msg == NULL || *msg == '\0')
    return strerror (vhd_get_errno () ? vhd_get_errno () : EIO);
  colon = strstr (msg, ": ");
  if (strncmp (msg, "vhd_", 4) == 0 && colon != NULL
      && strspn (msg, "abcdefghijklmnopqrstuvwxyz_") == (size_t) (colon - msg))
    msg = colon + 2;
  if (n && strncmp (msg, vf.name, n) == 0 && strncmp (msg + n, ": ", 2) == 0)
    msg += n + 2;
  return msg;
}

/* The calling thread's library error as a negative errno for FUSE.  What
 * the caller can act on passes through; damage in the image (EBADMSG,
 * EFBIG from on-disk values, ERANGE) and anything unknown is EIO. */
static int
fuse_error (void)
{
  static const int passed[] = {
    EROFS, ENOSPC, EDQUOT, ENOMEM, EINVAL, EOPNOTSUPP, /* = ENOTSUP */
    EACCES, EPERM, EIO,
  };
  int err = vhd_get_errno ();
  size_t i;

  fprintf (stderr, "%s: %s: %s\n", PROGRAM_NAME, vf.name, lib_message ());
  for (i = 0; i < sizeof passed / sizeof passed[0]; i++)
    if (err == passed[i])
      return -err;
  return -EIO;
}

/* ---------------------------------------------------------------- helpers */

static const struct window *
file_window (const struct fuse_file_info *fi)
{
  return &((const struct open_file *) (uintptr_t) fi->fh)->w;
}

static struct open_file *
open_file_new (const struct window *w)
{
  struct open_file *f = malloc (sizeof *f);

  if (f == NULL)
    return NULL;
  f->w = *w;
  pthread_mutex_lock (&open_lock);
  f->next = &open_files;
  f->prev = open_files.prev;
  open_files.prev->next = f;
  open_files.prev = f;
  pthread_mutex_unlock (&open_lock);
  return f;
}

static void
open_file_free (struct open_file *f)
{
  pthread_mutex_lock (&open_lock);
  f->prev->next = f->next;
  f->next->prev = f->prev;
  pthread_mutex_unlock (&open_lock);
  free (f);
}

static void
wrote (uint64_t offset, uint64_t length)
{
  atomic_store (&dirty, true);
  files_note_write (offset, length);
}

static int
flush_if_dirty (void)
{
  if (!atomic_exchange (&dirty, false))
    return 0;
  if (vhd_flush (vf.disk) == -1) {
    atomic_store (&dirty, true);
    return fuse_error ();
  }
  return 0;
}

/* Attributes of the root or of a file showing window w.  Times and the
 * space used come from the top image file. */
static void
fill_stat (struct stat *st, enum file_kind kind, const struct window *w)
{
  struct stat host;
  mode_t write_bits = vf.readonly ? 0 : S_IWUSR;
  uint64_t used = 0;

  memset (st, 0, sizeof *st);
  if (stat (vf.image, &host) == 0) {
    st->st_atim = host.st_atim;
    st->st_mtim = host.st_mtim;
    st->st_ctim = host.st_ctim;
    used = (uint64_t) host.st_blocks;
  }
  st->st_uid = vf.uid;
  st->st_gid = vf.gid;
  if (kind == FILE_ROOT) {
    st->st_mode = S_IFDIR | 0555 | write_bits;
    st->st_nlink = 2;
    return;
  }
  st->st_mode = S_IFREG | 0444 | write_bits;
  st->st_nlink = 1;
  st->st_size = (off_t) w->size;
  st->st_blksize = 4096;
  /* The image file's space, never more than the window: st_blocks below
   * st_size is what tells cp and tar to look for holes. */
  if (used > (w->size + 511) / 512)
    used = (w->size + 511) / 512;
  st->st_blocks = (blkcnt_t) used;
}

/* ---------------------------------------------------------------- ops */

static void *
vf_init (struct fuse_conn_info *conn, struct fuse_config *cfg)
{
  cfg->nullpath_ok = 1;
  conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
  conn->max_write = MAX_IO;      /* libfuse lowers it to what it can do */
  conn->max_readahead = MAX_IO;  /* and the kernel to what it offers */
  return NULL;
}

static void
vf_destroy (void *private_data)
{
  struct vhd_disk *disk = vf.disk;

  while (open_files.next != &open_files)
    open_file_free (open_files.next);
  if (disk == NULL)
    return;
  if (vhd_flush (disk) == -1) {
    fuse_error ();
    vf.close_failed = true;
  }
  vhd_close (disk);
  vf.disk = NULL;
}

static int
vf_getattr (const char *path, struct stat *st, struct fuse_file_info *fi)
{
  struct window w;
  enum file_kind kind;

  if (fi != NULL && fi->fh != 0) {
    fill_stat (st, FILE_DISK, file_window (fi));
    return 0;
  }
  kind = path ? files_lookup (path, &w) : FILE_ROOT;
  if (kind == FILE_NONE)
    return -ENOENT;
  fill_stat (st, kind, &w);
  return 0;
}

static int
vf_readdir (const char *path, void *buf, fuse_fill_dir_t filler,
            off_t offset, struct fuse_file_info *fi,
            enum fuse_readdir_flags flags)
{
  return files_list (buf, filler);
}

static int
vf_open (const char *path, struct fuse_file_info *fi)
{
  struct window w;
  struct open_file *f;
  enum file_kind kind = files_lookup (path, &w);

  if (kind == FILE_NONE)
    return -ENOENT;
  if (kind == FILE_ROOT)
    return -EISDIR;
  if (vf.readonly && (fi->flags & O_ACCMODE) != O_RDONLY)
    return -EROFS;
  f = open_file_new (&w);
  if (f == NULL)
    return -ENOMEM;
  fi->fh = (uintptr_t) f;
  fi->direct_io = vf.direct_io;
  return 0;
}

static int
vf_read (const char *path, char *buf, size_t count, off_t offset,
         struct fuse_file_info *fi)
{
  const struct window *w = file_window (fi);

  if (offset < 0)
    return -EINVAL;
  if ((uint64_t) offset >= w->size)
    return 0;
  if (count > w->size - (uint64_t) offset)
    count = (size_t) (w->size - (uint64_t) offset);
  if (count > MAX_IO)
    count = MAX_IO;
  if (vhd_pread (vf.disk, buf, count, w->start + (uint64_t) offset) == -1)
    return fuse_error ();
  return (int) count;
}

static int
vf_write (const char *path, const char *buf, size_t count, off_t offset,
          struct fuse_file_info *fi)
{
  const struct window *w = file_window (fi);
  uint64_t at;

  if (vf.readonly)
    return -EROFS;
  if (offset < 0)
    return -EINVAL;
  if (count == 0)
    return 0;
  if ((uint64_t) offset >= w->size)
    return -ENOSPC;
  if (count > w->size - (uint64_t) offset)
    count = (size_t) (w->size - (uint64_t) offset);
  if (count > MAX_IO)
    count = MAX_IO;
  at = w->start + (uint64_t) offset;
  if (vhd_pwrite (vf.disk, buf, count, at) == -1)
    return fuse_error ();
  wrote (at, count);
  return (int) count;
}

/* The size of a disk is fixed: only "truncating" to the same size works
 * (vhdtool resize changes it). */
static int
vf_truncate (const char *path, off_t size, struct fuse_file_info *fi)
{
  struct window w;

  if (fi != NULL && fi->fh != 0)
    w = *file_window (fi);
  else if (files_lookup (path, &w) == FILE_NONE)
    return -ENOENT;
  if (vf.readonly)
    return -EROFS;
  return size >= 0 && (uint64_t) size == w.size ? 0 : -EINVAL;
}

static int
vf_flush (const char *path, struct fuse_file_info *fi)
{
  return flush_if_dirty ();
}

static int
vf_fsync (const char *path, int datasync, struct fuse_file_info *fi)
{
  return flush_if_dirty ();
}

static int
vf_release (const char *path, struct fuse_file_info *fi)
{
  open_file_free ((struct open_file *) (uintptr_t) fi->fh);
  fi->fh = 0;
  return flush_if_dirty ();
}

static int
vf_statfs (const char *path, struct statvfs *st)
{
  struct statvfs host;
  uint64_t bsize = vf.sector_size, avail = 0;

  memset (st, 0, sizeof *st);
  if (statvfs (vf.image, &host) == 0)
    avail = (uint64_t) host.f_bavail * host.f_frsize;
  if (avail > vf.size)
    avail = vf.size;
  st->f_bsize = st->f_frsize = bsize;
  st->f_blocks = vf.size / bsize;
  st->f_bfree = st->f_bavail = vf.readonly ? 0 : avail / bsize;
  st->f_files = files_count () + 1;
  st->f_namemax = 255;
  return 0;
}

/* Map [offset, end) of the disk until the first extent of the wanted
 * kind (data: some layer stores it; hole: reads as zeros, the "zero" of
 * vhdtool map).  Returns its disk offset, end if there is none, or a
 * negative errno. */
struct seek_state {
  bool want_data;
  bool found;
  uint64_t at;
};

static int
seek_extent (void *opaque, uint64_t offset, uint64_t length, unsigned state,
             unsigned depth)
{
  struct seek_state *s = opaque;
  bool data = (state & (VHD_STATE_HOLE | VHD_STATE_ZERO)) == 0;

  if (data != s->want_data)
    return 0;
  s->found = true;
  s->at = offset;
  return 1;
}

static int64_t
find_extent (uint64_t offset, uint64_t end, bool want_data)
{
  struct seek_state s = { want_data, false, 0 };

  /* In steps, so a walk over a huge disk does not hold the handle's
   * lock from start to end. */
  while (offset < end) {
    uint64_t n = end - offset < SEEK_STEP ? end - offset : SEEK_STEP;
    if (vhd_block_status (vf.disk, offset, n, seek_extent, &s) == -1)
      return fuse_error ();
    if (s.found)
      return (int64_t) (s.at > offset ? s.at : offset);
    offset += n;
  }
  return (int64_t) end;
}

static off_t
vf_lseek (const char *path, off_t off, int whence, struct fuse_file_info *fi)
{
  const struct window *w = file_window (fi);
  int64_t r;

  if (whence != SEEK_DATA && whence != SEEK_HOLE)
    return -EINVAL;
  if (off < 0 || (uint64_t) off >= w->size)
    return -ENXIO;
  r = find_extent (w->start + (uint64_t) off, w->start + w->size,
                   whence == SEEK_DATA);
  if (r < 0)
    return (off_t) r;
  if (whence == SEEK_DATA && (uint64_t) r == w->start + w->size)
    return -ENXIO;                 /* only holes after off */
  return (off_t) ((uint64_t) r - w->start);
}

/* PUNCH_HOLE frees the blocks (vhd_discard); ZERO_RANGE makes the range
 * read as zeros and leaves the storage (vhd_write_zeroes).  The disk
 * cannot grow: a range past its end needs KEEP_SIZE, and is cut. */
static int
vf_fallocate (const char *path, int mode, off_t offset, off_t length,
              struct fuse_file_info *fi)
{
  const struct window *w = file_window (fi);
  int op = mode & ~FALLOC_FL_KEEP_SIZE;
  uint64_t at, n;
  int r;

  if (op != FALLOC_FL_PUNCH_HOLE && op != FALLOC_FL_ZERO_RANGE)
    return -EOPNOTSUPP;
  if (vf.readonly)
    return -EROFS;
  if (offset < 0 || length <= 0)
    return -EINVAL;
  if ((uint64_t) length > w->size
      || (uint64_t) offset > w->size - (uint64_t) length) {
    if (!(mode & FALLOC_FL_KEEP_SIZE))
      return -EFBIG;
    if ((uint64_t) offset >= w->size)
      return 0;
    length = (off_t) (w->size - (uint64_t) offset);
  }
  at = w->start + (uint64_t) offset;
  n = (uint64_t) length;
  if (op == FALLOC_FL_PUNCH_HOLE)
    r = vhd_discard (vf.disk, at, n);
  else
    r = vhd_write_zeroes (vf.disk, at, n, 0);
  if (r == -1)
    return fuse_error ();
  wrote (at, n);
  return 0;
}

const struct fuse_operations vhdfuse_operations = {
  .init = vf_init,
  .destroy = vf_destroy,
  .getattr = vf_getattr,
  .readdir = vf_readdir,
  .open = vf_open,
  .read = vf_read,
  .write = vf_write,
  .truncate = vf_truncate,
  .flush = vf_flush,
  .fsync = vf_fsync,
  .release = vf_release,
  .statfs = vf_statfs,
  .lseek = vf_lseek,
  .fallocate = vf_fallocate,
};
