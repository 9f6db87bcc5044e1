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
 * Called with the top handle's lock held; parents belong to their child
 * and are only reached from here.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "minmax.h"

/* The driver's map, with its contract checked: a run is never empty. */
static int
layer_map (struct vhd_disk *d, uint64_t offset, uint64_t count,
           struct extent *e)
{
  if (d->ops->map (d, offset, count, e) == -1)
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
    if (layer_map (d, offset, count, &e) == -1)
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

int
chain_pwrite (struct vhd_disk *d, const void *buf, size_t count,
              uint64_t offset)
{
  const uint8_t *p = buf;
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
chain_flush (struct vhd_disk *d)
{
  aio_drain (d); /* asynchronous writes in flight are covered too */
  return d->ops->flush (d);
}

/* Extents are merged while state and depth stay the same, so callers see
 * one call per run, not one per block. */
struct emitter {
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

static int
layer_status (struct vhd_disk *d, uint64_t offset, uint64_t count,
              unsigned depth, struct emitter *em)
{
  const unsigned hole = VHD_STATE_HOLE | VHD_STATE_ZERO;
  int r;

  while (count > 0) {
    struct extent e;
    if (layer_map (d, offset, count, &e) == -1)
      return -1;
    uint64_t n = MIN (count, e.length);
    if (e.state == LAYER_DATA)
      r = emit (em, offset, n, 0, depth);
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
                    vhd_extent_fn fn, void *opaque)
{
  struct emitter em = { .fn = fn, .opaque = opaque };
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
    if (layer_map (d, offset, d->size - offset, &e) == -1)
      return -1;
    if (e.state == LAYER_DATA)
      total += e.length;
    offset += e.length;
  }
  return (int64_t) total;
}
