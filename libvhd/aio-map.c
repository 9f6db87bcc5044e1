/* aio-map.c: turning an asynchronous request into file transfers.
 *
 * A read follows the chain exactly as chain_pread does (the driver's map
 * says data, zero or absent; absent falls through to the parent, or to
 * zeros past a smaller parent's end or at the base), but instead of
 * reading the data it records a segment: descriptor, file offset,
 * length and destination.  Zeros are filled in at once, and data held
 * by a byte source without a descriptor (memory, a replayed log's
 * overlay) is read at once.
 *
 * A write is planned only when nothing but the data changes: every
 * sector already belongs to the top layer's file.  Everything else goes
 * through the driver (aio.c).
 *
 * With pl->direct, a transfer goes through the file's O_DIRECT
 * descriptor when its buffer, offset and length suit it -- offset and
 * length in whole host pages: a page that a direct write shared with a
 * concurrent buffered write (metadata, or a neighbour's allocation)
 * could be written back stale over it.  VHDX blocks are 1 MiB aligned in
 * the file, fixed VHD and raw data starts at 0; a dynamic VHD's data
 * follows its sector bitmap, off the page grid, and stays buffered.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aio-internal.h"
#include "minmax.h"

/* Append a segment, merging it into the previous one when both the file
 * range and the buffer continue it. */
static int
plan_add (struct aio_plan *pl, int fd, uint64_t offset, size_t len,
          uint8_t *buf, const char *file)
{
  struct aio_seg *last = pl->n ? &pl->seg[pl->n - 1] : NULL;

  if (last && last->fd == fd && last->offset + last->len == offset
      && last->buf + last->len == buf) {
    last->len += len;
    return 0;
  }
  if (pl->n == pl->cap) {
    size_t cap = pl->cap ? pl->cap * 2 : 8;
    struct aio_seg *s = realloc (pl->seg, cap * sizeof *s);
    if (s == NULL) {
      set_error (ENOMEM, "out of memory");
      return -1;
    }
    pl->seg = s;
    pl->cap = cap;
  }
  pl->seg[pl->n++] = (struct aio_seg) { fd, offset, len, buf, file };
  return 0;
}

void
aio_plan_free (struct aio_plan *pl)
{
  free (pl->seg);
  pl->seg = NULL;
  pl->n = pl->cap = 0;
}

/* The descriptor for a transfer (see the top), -1 when there is none. */
static int
pick_fd (struct io *io, bool direct, const uint8_t *buf, uint64_t offset,
         size_t len)
{
  uint32_t mem_align, offset_align;
  int fd = direct ? io_direct_fd (io, &mem_align, &offset_align) : -1;

  if (fd >= 0) {
    uint64_t page = (uint64_t) sysconf (_SC_PAGESIZE);
    uint64_t align = MAX ((uint64_t) offset_align, page);
    if ((uintptr_t) buf % mem_align == 0 && offset % align == 0
        && len % align == 0)
      return fd;
  }
  return io_fd (io);
}

static int
plan_data (struct vhd_disk *d, uint8_t *buf, size_t n, uint64_t host,
           struct aio_plan *pl)
{
  int fd = pick_fd (d->io, pl->direct, buf, host, n);

  if (fd < 0)
    return io_pread (d->io, buf, n, host);
  return plan_add (pl, fd, host, n, buf, d->filename);
}

/* The parent's part of a range this layer does not hold (read_parent in
 * chain.c). */
static int
plan_parent (struct vhd_disk *d, uint8_t *buf, uint64_t count,
             uint64_t offset, struct aio_plan *pl)
{
  struct vhd_disk *p = d->parent;
  uint64_t n = 0;

  if (p == NULL) {
    if (d->type == VHD_TYPE_DIFFERENCING) {
      set_error (ENOENT, "%s: range at %" PRIu64 " is in the parent, "
                 "which was not opened", d->filename, offset);
      return -1;
    }
    memset (buf, 0, count);
    return 0;
  }
  if (offset < p->size) {
    n = MIN (count, p->size - offset);
    if (aio_plan_read (p, buf, n, offset, pl) == -1)
      return -1;
  }
  memset (buf + n, 0, count - n);
  return 0;
}

int
aio_plan_read (struct vhd_disk *d, uint8_t *buf, uint64_t count,
               uint64_t offset, struct aio_plan *pl)
{
  while (count > 0) {
    struct extent e;
    int r = 0;

    if (disk_map (d, offset, count, &e) == -1)
      return -1;
    size_t n = (size_t) MIN (count, e.length);
    switch (e.state) {
    case LAYER_DATA:
      r = plan_data (d, buf, n, e.host_offset, pl);
      break;
    case LAYER_ZERO:
      memset (buf, 0, n);
      break;
    case LAYER_ABSENT:
      r = plan_parent (d, buf, n, offset, pl);
      break;
    }
    if (r == -1)
      return -1;
    buf += n, count -= n, offset += n;
  }
  return 0;
}

bool
aio_plan_write (struct vhd_disk *d, const uint8_t *buf, uint64_t count,
                uint64_t offset, struct aio_plan *pl)
{
  uint32_t align = disk_write_align (d);

  if (io_fd (d->io) < 0 || offset % align || count % align)
    return false;
  while (count > 0) {
    struct extent e;
    if (disk_map (d, offset, count, &e) == -1 || e.state != LAYER_DATA)
      goto no;
    size_t n = (size_t) MIN (count, e.length);
    /* The buffer is only ever read for a write. */
    uint8_t *p = (uint8_t *) buf;
    int fd = pick_fd (d->io, pl->direct, p, e.host_offset, n);
    if (plan_add (pl, fd, e.host_offset, n, p, d->filename) == -1)
      goto no;
    buf += n, count -= n, offset += n;
  }
  return true;

no:
  pl->n = 0;
  return false;
}
