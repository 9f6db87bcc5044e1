/* io-file.c: the file byte source (pread/pwrite on a descriptor).
 *
 * Reads and writes loop over short transfers and EINTR; a read that meets
 * the end of file is an error, because every structure a driver reads is
 * supposed to lie inside the file.
 */
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "minmax.h"

#ifndef FALLOC_FL_PUNCH_HOLE
#include <linux/falloc.h>
#endif

static const struct io_ops file_ops;

struct io_file {
  struct io io;
  int fd;
  /* O_DIRECT twin for the asynchronous API (file_direct_fd), and for
   * every aligned transfer once io_file_use_direct has been called. */
  bool direct_tried;
  bool use_direct;
  int direct_fd;
  uint32_t dio_mem_align, dio_offset_align;
};

/* The descriptor for one transfer: the direct one when the file uses it
 * and buf, offset and count sit on its grid -- whole host pages, so no
 * page is ever shared with a buffered transfer (metadata, or a VHD's
 * data beside its sector bitmap), which could write back stale data. */
static int
transfer_fd (const struct io_file *f, const void *buf, size_t count,
             uint64_t offset)
{
  if (f->use_direct) {
    uint64_t align = MAX ((uint64_t) f->dio_offset_align,
                          (uint64_t) sysconf (_SC_PAGESIZE));
    if ((uintptr_t) buf % f->dio_mem_align == 0 && offset % align == 0
        && count % align == 0)
      return f->direct_fd;
  }
  return f->fd;
}

static int
file_pread (struct io *io, void *buf, size_t count, uint64_t offset)
{
  struct io_file *f = (struct io_file *) io;
  uint8_t *p = buf;
  int fd = transfer_fd (f, buf, count, offset);

  while (count > 0) {
    ssize_t r = pread (fd, p, count, (off_t) offset);
    if (r == -1 && errno == EINTR)
      continue;
    if (r == -1) {
      set_error (errno, "read at offset %" PRIu64 ": %s", offset,
                 strerror (errno));
      return -1;
    }
    if (r == 0) {
      set_error (EIO, "unexpected end of file at offset %" PRIu64, offset);
      return -1;
    }
    p += r;
    count -= (size_t) r;
    offset += (uint64_t) r;
  }
  return 0;
}

static int
file_pwrite (struct io *io, const void *buf, size_t count, uint64_t offset)
{
  struct io_file *f = (struct io_file *) io;
  const uint8_t *p = buf;
  int fd = transfer_fd (f, buf, count, offset);

  while (count > 0) {
    ssize_t r = pwrite (fd, p, count, (off_t) offset);
    if (r == -1 && errno == EINTR)
      continue;
    if (r == -1) {
      set_error (errno, "write at offset %" PRIu64 ": %s", offset,
                 strerror (errno));
      return -1;
    }
    p += r;
    count -= (size_t) r;
    offset += (uint64_t) r;
  }
  return 0;
}

static int
file_flush (struct io *io)
{
  struct io_file *f = (struct io_file *) io;

  if (fdatasync (f->fd) == -1) {
    set_error (errno, "flush: %s", strerror (errno));
    return -1;
  }
  return 0;
}

static int64_t
file_get_size (struct io *io)
{
  struct io_file *f = (struct io_file *) io;
  struct stat st;

  if (fstat (f->fd, &st) == -1) {
    set_error (errno, "stat: %s", strerror (errno));
    return -1;
  }
  if (S_ISBLK (st.st_mode)) {
    off_t end = lseek (f->fd, 0, SEEK_END);
    if (end == -1) {
      set_error (errno, "seek: %s", strerror (errno));
      return -1;
    }
    return end;
  }
  return st.st_size;
}

static int
file_truncate (struct io *io, uint64_t size)
{
  struct io_file *f = (struct io_file *) io;

  if (ftruncate (f->fd, (off_t) size) == -1) {
    set_error (errno, "truncate to %" PRIu64 ": %s", size, strerror (errno));
    return -1;
  }
  return 0;
}

/* fallocate with KEEP_SIZE: the size stays, only the range changes. */
static int
file_fallocate (struct io *io, int mode, const char *what, uint64_t offset,
                uint64_t count)
{
  struct io_file *f = (struct io_file *) io;

  if (fallocate (f->fd, mode | FALLOC_FL_KEEP_SIZE, (off_t) offset,
                 (off_t) count) == -1) {
    set_error (errno, "%s: %s", what, strerror (errno));
    return -1;
  }
  return 0;
}

static int
file_punch_hole (struct io *io, uint64_t offset, uint64_t count)
{
  return file_fallocate (io, FALLOC_FL_PUNCH_HOLE, "punch hole", offset,
                         count);
}

static int
file_zero_range (struct io *io, uint64_t offset, uint64_t count)
{
  return file_fallocate (io, FALLOC_FL_ZERO_RANGE, "zero range", offset,
                         count);
}

/* SEEK_DATA/SEEK_HOLE; a file system without them is all data.  The
 * size is asked for only when it matters (ENXIO: a hole to the end, or
 * past the end): NBD block status calls this for every read. */
static int
file_run_at (struct io *io, uint64_t offset, bool *data, uint64_t *length)
{
  struct io_file *f = (struct io_file *) io;
  int64_t size;
  off_t next = lseek (f->fd, (off_t) offset, SEEK_DATA);

  if (next == -1) {
    /* ENXIO: nothing but a hole to the end (or past it); any other
     * error: no SEEK_DATA here, all data */
    bool all_data = errno != ENXIO;
    if ((size = file_get_size (io)) < 0)
      return -1;
    if ((uint64_t) size <= offset)
      goto past_end;
    *data = all_data;
    *length = (uint64_t) size - offset;
    return 0;
  }
  if ((uint64_t) next > offset) {
    *data = false;
    *length = (uint64_t) next - offset;
    return 0;
  }
  next = lseek (f->fd, (off_t) offset, SEEK_HOLE);
  if (next == -1) {
    if ((size = file_get_size (io)) < 0)
      return -1;
    next = size;
  }
  *data = true;
  *length = (uint64_t) next - offset;
  return 0;

past_end:
  set_error (EIO, "offset %" PRIu64 " past the end of file", offset);
  return -1;
}

static int64_t
file_allocated (struct io *io)
{
  struct io_file *f = (struct io_file *) io;
  struct stat st;

  if (fstat (f->fd, &st) == -1) {
    set_error (errno, "stat: %s", strerror (errno));
    return -1;
  }
  return (int64_t) st.st_blocks * 512;
}

static int
file_fd (struct io *io)
{
  return ((struct io_file *) io)->fd;
}

/* Reopen f->fd with O_DIRECT (through /proc: the file may have been
 * renamed); the alignment comes from statx (Linux 6.1), and without it
 * there is no direct descriptor.  The new open file description carries
 * no flock, which is fine: f->fd holds the image's lock. */
static int
open_direct (struct io_file *f)
{
  char path[64];
  struct statx st;
  int flags = fcntl (f->fd, F_GETFL), fd;

  if (flags == -1)
    return -1;
  snprintf (path, sizeof path, "/proc/self/fd/%d", f->fd);
  fd = open (path, (flags & O_ACCMODE) | O_DIRECT | O_CLOEXEC);
  if (fd == -1)
    return -1;
  if (statx (fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &st) == -1
      || !(st.stx_mask & STATX_DIOALIGN) || st.stx_dio_mem_align == 0
      || st.stx_dio_offset_align == 0) {
    close (fd);
    return -1;
  }
  f->dio_mem_align = st.stx_dio_mem_align;
  f->dio_offset_align = st.stx_dio_offset_align;
  return fd;
}

static int
file_direct_fd (struct io *io, uint32_t *mem_align, uint32_t *offset_align)
{
  struct io_file *f = (struct io_file *) io;

  if (!f->direct_tried) {
    f->direct_tried = true;
    f->direct_fd = open_direct (f);
  }
  *mem_align = f->dio_mem_align;
  *offset_align = f->dio_offset_align;
  return f->direct_fd;
}

int
io_file_use_direct (struct io *io)
{
  struct io_file *f = (struct io_file *) io;
  uint32_t mem_align, offset_align;

  if (io->ops != &file_ops) {
    set_error (ENOTSUP, "direct I/O needs a file");
    return -1;
  }
  if (file_direct_fd (io, &mem_align, &offset_align) == -1) {
    set_error (ENOTSUP, "the file system offers no direct I/O (O_DIRECT) "
               "or does not report its alignment");
    return -1;
  }
  f->use_direct = true;
  return 0;
}

static void
file_close (struct io *io)
{
  struct io_file *f = (struct io_file *) io;

  if (f->direct_fd >= 0)
    close (f->direct_fd);
  close (f->fd);
  free (f);
}

static const struct io_ops file_ops = {
  .name = "file",
  .pread = file_pread,
  .pwrite = file_pwrite,
  .flush = file_flush,
  .get_size = file_get_size,
  .truncate = file_truncate,
  .punch_hole = file_punch_hole,
  .zero_range = file_zero_range,
  .run_at = file_run_at,
  .allocated = file_allocated,
  .close = file_close,
  .fd = file_fd,
  .direct_fd = file_direct_fd,
};

struct io *
io_file_open (const char *path, bool readonly, bool create)
{
  struct io_file *f;
  int flags = readonly ? O_RDONLY : O_RDWR;

  if (create)
    flags |= O_CREAT | O_EXCL;
  f = calloc (1, sizeof *f);
  if (f == NULL) {
    set_error (errno, "calloc: %s", strerror (errno));
    return NULL;
  }
  f->fd = open (path, flags | O_CLOEXEC, 0644);
  if (f->fd == -1) {
    set_error (errno, "%s: %s", path, strerror (errno));
    free (f);
    return NULL;
  }
  /* One writer per image: a second read-write open (another vhdfuse,
   * server or vhdtool) would corrupt it.  flock, not fcntl: the lock
   * must survive a daemon's fork.  Readers take no lock. */
  if (!readonly && flock (f->fd, LOCK_EX | LOCK_NB) == -1) {
    int err = errno == EWOULDBLOCK ? EBUSY : errno;
    set_error (err, "%s: %s", path, err == EBUSY
               ? "opened read-write by another program" : strerror (err));
    close (f->fd);
    free (f);
    return NULL;
  }
  f->io.ops = &file_ops;
  f->io.readonly = readonly;
  f->direct_fd = -1;
  return &f->io;
}

int
io_file_identity (struct io *io, uint64_t *dev, uint64_t *ino)
{
  struct io_file *f = (struct io_file *) io;
  struct stat st;

  if (io->ops != &file_ops || fstat (f->fd, &st) == -1)
    return -1;
  *dev = st.st_dev;
  *ino = st.st_ino;
  return 0;
}
