/* io-mem.c: a byte source in memory, for tests and fuzzing.
 *
 * It can simulate a crash: io_mem_fail_after (io, N, tear) lets N more
 * writes through, then fails every write, flush and truncate with EIO; a
 * torn crash stores the first half of the failing write.  What the buffer
 * holds then is what a disk would hold after power loss with writes that
 * reached the medium in order (the model the crash tests use).
 * io_mem_fail_reads_after (io, N) lets N more reads through, then fails
 * every read with EIO (reads may come from several threads: the copy
 * pipeline's fetchers).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "checked-overflow.h"
#include "internal.h"
#include "minmax.h"

struct io_mem {
  struct io io;
  uint8_t *data;
  size_t len, cap;
  long writes_left; /* < 0: no fault injection */
  bool tear;
  bool crashed;
  long write_count;
  bool fail_reads;
  long reads_left, read_count; /* atomic: reads come from many threads */
};

static int
mem_pread (struct io *io, void *buf, size_t count, uint64_t offset)
{
  struct io_mem *m = (struct io_mem *) io;

  if (count == 0)
    return 0;
  __atomic_add_fetch (&m->read_count, 1, __ATOMIC_RELAXED);
  if (m->fail_reads
      && __atomic_sub_fetch (&m->reads_left, 1, __ATOMIC_RELAXED) < 0) {
    set_error (EIO, "injected read error at offset %" PRIu64, offset);
    return -1;
  }
  if (offset > m->len || count > m->len - offset) {
    set_error (EIO, "unexpected end of file at offset %" PRIu64, offset);
    return -1;
  }
  memcpy (buf, m->data + offset, count);
  return 0;
}

static int
mem_resize (struct io_mem *m, uint64_t size)
{
  if (size > SIZE_MAX / 2) {
    set_error (ENOSPC, "memory image too large");
    return -1;
  }
  if (size > m->cap) {
    size_t cap = m->cap ? m->cap : 4096;
    while (cap < size)
      cap *= 2;
    uint8_t *p = realloc (m->data, cap);
    if (p == NULL) {
      set_error (ENOMEM, "memory image of %zu bytes", cap);
      return -1;
    }
    m->data = p;
    m->cap = cap;
  }
  if (size > m->len)
    memset (m->data + m->len, 0, (size_t) size - m->len);
  m->len = (size_t) size;
  return 0;
}

/* Fault injection: true when this write must fail (after tearing it
 * when asked to). */
static bool
crash_here (struct io_mem *m, const void *buf, size_t count, uint64_t offset)
{
  if (m->crashed)
    return true;
  if (m->writes_left < 0)
    return false;
  if (m->writes_left > 0) {
    m->writes_left--;
    return false;
  }
  m->crashed = true;
  if (m->tear && count > 1
      && mem_resize (m, MAX ((uint64_t) m->len, offset + count / 2)) == 0)
    memcpy (m->data + offset, buf, count / 2);
  return true;
}

static int
mem_pwrite (struct io *io, const void *buf, size_t count, uint64_t offset)
{
  struct io_mem *m = (struct io_mem *) io;
  uint64_t end;

  if (ADD_OVERFLOW (offset, (uint64_t) count, &end)) {
    set_error (EFBIG, "write past the largest offset");
    return -1;
  }
  if (count == 0)
    return 0;
  if (crash_here (m, buf, count, offset)) {
    set_error (EIO, "simulated crash");
    return -1;
  }
  if (end > m->len && mem_resize (m, end) == -1)
    return -1;
  memcpy (m->data + offset, buf, count);
  m->write_count++;
  return 0;
}

static int
mem_flush (struct io *io)
{
  struct io_mem *m = (struct io_mem *) io;

  if (m->crashed) {
    set_error (EIO, "simulated crash");
    return -1;
  }
  return 0;
}

static int64_t
mem_get_size (struct io *io)
{
  return (int64_t) ((struct io_mem *) io)->len;
}

static int
mem_truncate (struct io *io, uint64_t size)
{
  struct io_mem *m = (struct io_mem *) io;

  if (crash_here (m, NULL, 0, 0)) {
    set_error (EIO, "simulated crash");
    return -1;
  }
  m->write_count++;
  return mem_resize (m, size);
}

static int
mem_punch_hole (struct io *io, uint64_t offset, uint64_t count)
{
  struct io_mem *m = (struct io_mem *) io;

  if (crash_here (m, NULL, 0, 0)) {
    set_error (EIO, "simulated crash");
    return -1;
  }
  m->write_count++;
  if (offset < m->len)
    memset (m->data + offset, 0, (size_t) MIN (count, m->len - offset));
  return 0;
}

static int
mem_run_at (struct io *io, uint64_t offset, bool *data, uint64_t *length)
{
  struct io_mem *m = (struct io_mem *) io;

  if (offset >= m->len) {
    set_error (EIO, "offset %" PRIu64 " past the end of file", offset);
    return -1;
  }
  *data = true;
  *length = m->len - offset;
  return 0;
}

static int64_t
mem_allocated (struct io *io)
{
  return mem_get_size (io);
}

/* No descriptor: the asynchronous API runs everything synchronously. */
static int
mem_fd (struct io *io)
{
  return -1;
}

static void
mem_close (struct io *io)
{
  struct io_mem *m = (struct io_mem *) io;

  free (m->data);
  free (m);
}

static const struct io_ops mem_ops = {
  .name = "memory",
  .pread = mem_pread,
  .pwrite = mem_pwrite,
  .flush = mem_flush,
  .get_size = mem_get_size,
  .truncate = mem_truncate,
  .punch_hole = mem_punch_hole,
  .zero_range = mem_punch_hole, /* memory: both just zero */
  .run_at = mem_run_at,
  .allocated = mem_allocated,
  .close = mem_close,
  .fd = mem_fd,
};

struct io *
io_mem_new (const void *data, size_t len)
{
  struct io_mem *m = calloc (1, sizeof *m);

  if (m == NULL) {
    set_error (ENOMEM, "calloc: out of memory");
    return NULL;
  }
  m->io.ops = &mem_ops;
  m->writes_left = -1;
  if (len > 0 && mem_resize (m, len) == -1) {
    free (m);
    return NULL;
  }
  if (len > 0)
    memcpy (m->data, data, len);
  return &m->io;
}

const uint8_t *
io_mem_data (struct io *io, size_t *len)
{
  struct io_mem *m = (struct io_mem *) io;

  *len = m->len;
  return m->data;
}

void
io_mem_fail_after (struct io *io, long writes, bool tear)
{
  struct io_mem *m = (struct io_mem *) io;

  m->writes_left = writes;
  m->tear = tear;
  m->crashed = false;
}

void
io_mem_fail_reads_after (struct io *io, long reads)
{
  struct io_mem *m = (struct io_mem *) io;

  m->reads_left = reads;
  m->fail_reads = true;
}

long
io_mem_read_count (struct io *io)
{
  return __atomic_load_n (&((struct io_mem *) io)->read_count,
                          __ATOMIC_RELAXED);
}

long
io_mem_write_count (struct io *io)
{
  return ((struct io_mem *) io)->write_count;
}
