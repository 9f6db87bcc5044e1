/* overlay.c: the in-memory result of a log replay on a read-only open.
 *
 * Reads go to the base source, then every patch that overlaps the range
 * is copied over it in the order the patches were added (the order of
 * the log's descriptors), so the newest update wins, as it does when the
 * log is replayed in place.  Past the base's end (a replay may extend the
 * file to LastFileOffset) reads see zeros.  Writes are refused: the file
 * stays byte-identical.
 *
 * Patches are few (they come from one log, whose length the driver caps,
 * and log.c caps a sequence at VHDX_LOG_MAX_UPDATES descriptors, each at
 * most 4 KiB of data), so a list scanned per read is enough; the same
 * cap is enforced here, so no caller can make the list grow unbounded.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "minmax.h"
#include "overlay.h"

struct patch {
  uint64_t offset, length;
  uint8_t *data; /* NULL: zeros */
};

struct overlay {
  struct io io;
  struct io *base;
  struct patch *p;
  size_t n, cap;
  uint64_t size; /* at least the base's size */
  bool borrowed; /* base is not ours to close */
};

static int
ov_pread (struct io *io, void *buf, size_t count, uint64_t offset)
{
  struct overlay *o = (struct overlay *) io;
  int64_t base_size = io_get_size (o->base);
  uint64_t end = offset + count, in_base = 0;
  size_t i;

  if (base_size < 0)
    return -1;
  if (offset > o->size || count > o->size - offset) {
    set_error (EIO, "unexpected end of file at offset %" PRIu64, offset);
    return -1;
  }
  if (offset < (uint64_t) base_size)
    in_base = MIN ((uint64_t) count, (uint64_t) base_size - offset);
  if (in_base && io_pread (o->base, buf, (size_t) in_base, offset) == -1)
    return -1;
  memset ((uint8_t *) buf + in_base, 0, count - (size_t) in_base);
  for (i = 0; i < o->n; i++) {
    const struct patch *p = &o->p[i];
    uint64_t s = MAX (offset, p->offset), e = MIN (end, p->offset
                                                           + p->length);
    if (s >= e)
      continue;
    if (p->data)
      memcpy ((uint8_t *) buf + (s - offset), p->data + (s - p->offset),
              (size_t) (e - s));
    else
      memset ((uint8_t *) buf + (s - offset), 0, (size_t) (e - s));
  }
  return 0;
}

static int
ov_refuse (struct overlay *o)
{
  set_error (EROFS, "read-only view of a replayed log");
  return -1;
}

static int
ov_pwrite (struct io *io, const void *buf, size_t count, uint64_t offset)
{
  return ov_refuse ((struct overlay *) io);
}

static int
ov_flush (struct io *io)
{
  return 0;
}

static int64_t
ov_get_size (struct io *io)
{
  return (int64_t) ((struct overlay *) io)->size;
}

static int
ov_truncate (struct io *io, uint64_t size)
{
  return ov_refuse ((struct overlay *) io);
}

static int
ov_punch_hole (struct io *io, uint64_t offset, uint64_t count)
{
  return ov_refuse ((struct overlay *) io);
}

static int64_t
ov_allocated (struct io *io)
{
  struct overlay *o = (struct overlay *) io;

  return o->base->ops->allocated (o->base);
}

static void
ov_close (struct io *io)
{
  struct overlay *o = (struct overlay *) io;
  size_t i;

  for (i = 0; i < o->n; i++)
    free (o->p[i].data);
  free (o->p);
  if (!o->borrowed)
    o->base->ops->close (o->base);
  free (o);
}

static const struct io_ops overlay_ops = {
  .name = "vhdx-log-overlay",
  .pread = ov_pread,
  .pwrite = ov_pwrite,
  .flush = ov_flush,
  .get_size = ov_get_size,
  .truncate = ov_truncate,
  .punch_hole = ov_punch_hole,
  .allocated = ov_allocated,
  .close = ov_close,
};

static struct io *
make_overlay (struct io *base, bool borrowed)
{
  struct overlay *o = calloc (1, sizeof *o);
  int64_t size = io_get_size (base);

  if (o == NULL || size < 0) {
    free (o);
    if (size >= 0)
      set_error (ENOMEM, "out of memory");
    return NULL;
  }
  o->io.ops = &overlay_ops;
  o->io.readonly = true;
  o->base = base;
  o->size = (uint64_t) size;
  o->borrowed = borrowed;
  return &o->io;
}

struct io *
vhdx_overlay_new (struct io *base)
{
  struct io *o = make_overlay (base, false);

  if (o == NULL)
    base->ops->close (base);
  return o;
}

struct io *
vhdx_overlay_borrow (struct io *base)
{
  return make_overlay (base, true);
}

int
vhdx_overlay_add (struct io *io, uint64_t offset, const uint8_t *data,
                  uint64_t length)
{
  struct overlay *o = (struct overlay *) io;
  uint8_t *copy = NULL;

  if (o->n >= VHDX_LOG_MAX_UPDATES || (data && length > VHDX_LOG_SECTOR)) {
    set_error (EFBIG, "VHDX log overlay: more than %u updates, or a data "
               "update of more than %u bytes", VHDX_LOG_MAX_UPDATES,
               VHDX_LOG_SECTOR);
    return -1;
  }
  if (o->n == o->cap) {
    size_t cap = o->cap ? o->cap * 2 : 16;
    struct patch *p = realloc (o->p, cap * sizeof *p);
    if (p == NULL) {
      set_error (ENOMEM, "out of memory");
      return -1;
    }
    o->p = p, o->cap = cap;
  }
  if (data) {
    copy = malloc ((size_t) length);
    if (copy == NULL) {
      set_error (ENOMEM, "out of memory");
      return -1;
    }
    memcpy (copy, data, (size_t) length);
  }
  o->p[o->n++] = (struct patch) { offset, length, copy };
  vhdx_overlay_extend (io, offset + length);
  return 0;
}

void
vhdx_overlay_extend (struct io *io, uint64_t size)
{
  struct overlay *o = (struct overlay *) io;

  if (size > o->size)
    o->size = size;
}
