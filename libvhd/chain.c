/* chain.c: reads, writes and allocation maps through a differencing chain.
 *
 * Differencing is handled here once, for every format: a driver's map op
 * says, per range, whether its file holds the data, holds zeros, or
 * defers to the parent.  Reads follow that down the chain; a range no
 * layer holds, or that lies past a smaller parent's end, reads as zeros.
 *
 * Writes reach a driver in whole units of its write alignment (the
 * logical sector): an unaligned head or tail is read through the chain,
 * patched and written whole, so a partly written sector of a child never
 * loses the parent's bytes around it.
 *
 * Called with the top handle's lock held (shared for reads and maps,
 * exclusive for writes); parents belong to their child and are only
 * reached from here.  Each layer's map runs under its own map_lock, so
 * concurrent readers may share the driver's caches.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "minmax.h"

int
disk_map (struct vhd_disk *d, uint64_t offset, uint64_t count,
          struct extent *e)
{
  int r;

  pthread_mutex_lock (&d->map_lock);
  r = d->ops->map (d, offset, count, e);
  pthread_mutex_unlock (&d->map_lock);
  if (r == -1)
    return -1;
  if (e->length == 0) {
    set_error (EIO, "%s: empty extent at %" PRIu64 " (driver bug)",
               d->filename, offset);
    return -1;
  }
  return 0;
}

static int
read_parent (struct vhd_disk *d, uint8_t *buf, uint64_t count,
             uint64_t offset)
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
    if (chain_pread (p, buf, n, offset) == -1)
      return -1;
  }
  memset (buf + n, 0, count - n);
  return 0;
}

int
chain_pread (struct vhd_disk *d, void *buf, size_t count, uint64_t offset)
{
  uint8_t *p = buf;

  while (count > 0) {
    struct extent e;
    if (disk_map (d, offset, count, &e) == -1)
      return -1;
    size_t n = (size_t) MIN ((uint64_t) count, e.length);
    switch (e.state) {
    case LAYER_DATA:
      if (io_pread (d->io, p, n, e.host_offset) == -1)
        return -1;
      break;
    case LAYER_ZERO:
      memset (p, 0, n);
      break;
    case LAYER_ABSENT:
      if (read_parent (d, p, n, offset) == -1)
        return -1;
      break;
    }
    p += n;
    count -= n;
    offset += n;
  }
  return 0;
}

/* Write part of one alignment unit: read it whole, patch, write it. */
int
chain_write_partial (struct vhd_disk *d, const void *src, size_t len,
                     uint64_t offset)
{
  uint32_t align = disk_write_align (d);
  uint64_t start = offset / align * align;
  size_t unit = (size_t) MIN ((uint64_t) align, d->size - start);
  uint8_t *tmp;
  int r = -1;

  /* An image whose size is not a whole number of sectors (a malformed
   * VHD) has a short last sector that no driver can write. */
  if (unit < align) {
    set_error (ENOTSUP, "%s: the last %zu bytes are less than a sector "
               "(disk size %" PRIu64 " is not a multiple of %" PRIu32 ")",
               d->filename, unit, d->size, align);
    return -1;
  }
  tmp = malloc (unit);

  if (tmp == NULL) {
    set_error (ENOMEM, "out of memory");
    return -1;
  }
  if (chain_pread (d, tmp, unit, start) == 0) {
    memcpy (tmp + (offset - start), src, len);
    r = d->ops->pwrite (d, tmp, unit, start);
  }
  free (tmp);
  return r;
}

/* Stored runs a write in place may span; more (a fragmented range) go
 * through the driver. */
#define IN_PLACE_RUNS 8

/* Where a write in place goes: 0 with the runs in run[0..*n), 1 when
 * it is not possible, -1 on error. */
static int
map_in_place (struct vhd_disk *d, size_t count, uint64_t offset,
              struct extent *run, unsigned *n)
{
  uint32_t align = disk_write_align (d);
  uint64_t off = offset, left = count;

  *n = 0;
  if (!d->writes_in_place || io_fd (d->io) < 0 || offset % align
      || count % align || count == 0)
    return 1;
  /* Everything must be in place before anything is written. */
  while (left > 0) {
    if (*n == IN_PLACE_RUNS)
      return 1;
    if (disk_map (d, off, left, &run[*n]) == -1)
      return -1;
    if (run[*n].state != LAYER_DATA)
      return 1;
    run[*n].length = MIN (left, run[*n].length);
    off += run[*n].length, left -= run[*n].length;
    (*n)++;
  }
  return 0;
}

int
chain_write_in_place (struct vhd_disk *d, const void *buf, size_t count,
                      uint64_t offset)
{
  struct extent run[IN_PLACE_RUNS];
  const uint8_t *p = buf;
  unsigned n, i;
  int r = map_in_place (d, count, offset, run, &n);

  if (r != 0)
    return r;
  for (i = 0; i < n; i++) {
    if (io_pwrite (d->io, p, (size_t) run[i].length, run[i].host_offset) == -1)
      return -1;
    p += run[i].length;
  }
  return 0;
}

int
chain_can_write_in_place (struct vhd_disk *d, size_t count, uint64_t offset)
{
  struct extent run[IN_PLACE_RUNS];
  unsigned n;
  int r = map_in_place (d, count, offset, run, &n);

  return r == -1 ? -1 : r == 0;
}

static int
write_units (struct vhd_disk *d, const uint8_t *p, size_t count,
             uint64_t offset)
{
  uint32_t align = disk_write_align (d);

  /* Unaligned head (or a write inside one unit). */
  if (offset % align) {
    size_t n = (size_t) MIN ((uint64_t) count, align - offset % align);
    if (chain_write_partial (d, p, n, offset) == -1)
      return -1;
    p += n, count -= n, offset += n;
  }
  /* Aligned body. */
  if (count >= align) {
    size_t n = count / align * align;
    if (d->ops->pwrite (d, p, n, offset) == -1)
      return -1;
    p += n, count -= n, offset += n;
  }
  /* Unaligned tail. */
  if (count > 0 && chain_write_partial (d, p, count, offset) == -1)
    return -1;
  return 0;
}

int
chain_pwrite (struct vhd_disk *d, const void *buf, size_t count,
              uint64_t offset)
{
  int r = write_units (d, buf, count, offset);

  /* Only a write that reached the driver prepared the file; after a
   * failure the driver decides again whether the image may take writes
   * (it refuses them when its metadata is in doubt). */
  if (count > 0)
    d->writes_in_place = r == 0;
  return r;
}

int
chain_flush (struct vhd_disk *d)
{
  aio_drain (d); /* asynchronous writes in flight are covered too */
  return d->ops->flush (d);
}

/* The flush under the shared lock, when only data is to be made durable:
 * 1 when done, 0 when the driver has metadata to write (the caller takes
 * the exclusive lock and runs chain_flush), -1 on error.  Writes that
 * finish during the fdatasync were not acknowledged before the flush, so
 * they need not be covered. */
int
chain_flush_data (struct vhd_disk *d)
{
  aio_drain (d);
  if (d->ops->flush_needs_metadata (d))
    return 0;
  return io_flush (d->io) == -1 ? -1 : 1;
}

/* Extents are merged while state and depth stay the same, so callers see
 * one call per run, not one per block. */
struct emitter {
  unsigned flags;
  vhd_extent_fn fn;
  void *opaque;
  uint64_t offset, length;
  unsigned state, depth;
};

static int
emit (struct emitter *em, uint64_t offset, uint64_t length, unsigned state,
      unsigned depth)
{
  if (em->length && em->state == state && em->depth == depth
      && em->offset + em->length == offset) {
    em->length += length;
    return 0;
  }
  if (em->length) {
    int r = em->fn (em->opaque, em->offset, em->length, em->state, em->depth);
    if (r)
      return r;
  }
  em->offset = offset, em->length = length;
  em->state = state, em->depth = depth;
  return 0;
}

/* With VHD_STATUS_HOST_HOLES: data of a layer whose host range is a hole
 * in the image file reads as zeros; report it stored but zero, so that
 * copies and NBD clients skip it unread (a raw layer's map already says
 * so). */
static int
data_status (struct vhd_disk *d, uint64_t offset, uint64_t count,
             uint64_t host, unsigned depth, struct emitter *em)
{
  if (!(em->flags & VHD_STATUS_HOST_HOLES) || d->ops == &raw_format_ops
      || d->io->ops->run_at == NULL)
    return emit (em, offset, count, 0, depth);
  while (count > 0) {
    bool data;
    uint64_t run;
    int r;
    if (d->io->ops->run_at (d->io, host, &data, &run) == -1 || run == 0)
      data = true, run = count; /* past the end: let the read report it */
    run = MIN (run, count);
    r = emit (em, offset, run, data ? 0 : VHD_STATE_ZERO, depth);
    if (r)
      return r;
    offset += run, host += run, count -= run;
  }
  return 0;
}

static int
layer_status (struct vhd_disk *d, uint64_t offset, uint64_t count,
              unsigned depth, struct emitter *em)
{
  const unsigned hole = VHD_STATE_HOLE | VHD_STATE_ZERO;
  int r;

  while (count > 0) {
    struct extent e;
    if (disk_map (d, offset, count, &e) == -1)
      return -1;
    uint64_t n = MIN (count, e.length);
    if (e.state == LAYER_DATA)
      r = data_status (d, offset, n, e.host_offset, depth, em);
    else if (e.state == LAYER_ZERO)
      r = emit (em, offset, n, hole, depth);
    else if (d->parent == NULL && d->type == VHD_TYPE_DIFFERENCING)
      r = emit (em, offset, n, VHD_STATE_HOLE, depth + 1); /* unknown */
    else if (d->parent == NULL) /* absent from every layer */
      r = emit (em, offset, n, hole, depth + 1);
    else {
      struct vhd_disk *p = d->parent;
      uint64_t in_parent = offset < p->size ? MIN (n, p->size - offset) : 0;
      r = in_parent ? layer_status (p, offset, in_parent, depth + 1, em) : 0;
      if (r == 0 && n > in_parent)
        r = emit (em, offset + in_parent, n - in_parent, hole,
                  depth + p->depth_below + 2);
    }
    if (r)
      return r;
    offset += n, count -= n;
  }
  return 0;
}

int
chain_block_status (struct vhd_disk *d, uint64_t offset, uint64_t count,
                    unsigned flags, vhd_extent_fn fn, void *opaque)
{
  struct emitter em = { .flags = flags, .fn = fn, .opaque = opaque };
  int r = layer_status (d, offset, count, 0, &em);

  if (r == 0 && em.length)
    r = fn (opaque, em.offset, em.length, em.state, em.depth);
  return r;
}

int64_t
disk_allocated_bytes (struct vhd_disk *d)
{
  uint64_t offset = 0, total = 0;

  while (offset < d->size) {
    struct extent e;
    if (disk_map (d, offset, d->size - offset, &e) == -1)
      return -1;
    if (e.state == LAYER_DATA)
      total += e.length;
    offset += e.length;
  }
  return (int64_t) total;
}
