/* vhdx-space.c: where things are in a VHDX file, and the space between
 * them (MS-VHDX 2.1: every object 1 MiB aligned).
 *
 * Objects are the header section, the log, every region (BAT, metadata,
 * unknown ones) and every block the BAT points at: payload blocks (the
 * block size, also for the disk's last block, however much of it the
 * disk uses: writers allocate it whole) and sector bitmap blocks
 * (1 MiB).  Anything else is unreferenced.
 *
 * Free space.  A change that drops a block from the BAT (unmap, zero
 * with MAY_UNMAP, shrink, a move) records the block's space as pending
 * while the change is staged.  vhdx_commit settles it: once the log
 * entry is applied and flushed no durable structure points at the space,
 * so it is punched out of the host file and kept in v->free; when the
 * commit fails it is forgotten (a leak, which check reports and compact
 * reclaims).  New blocks come from v->free before the end of the file:
 * punched space reads as zeros, as the extended end of the file does,
 * which a partly written new block relies on.  Space the host cannot
 * punch is not reused.
 *
 * Moving objects (defragment, resize).  An object is copied into free
 * space and flushed before anything points at it; a block's BAT entry is
 * switched through the log, the BAT region through both region tables
 * (copy 1, flush, copy 2, flush: a reader takes copy 1 when it is valid,
 * else copy 2, so a crash leaves the old or the new table).  The log is
 * retired before a region switch, so that no entry written for the old
 * BAT location can be replayed over space that is reused later.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "byteorder.h"
#include "log.h"
#include "minmax.h"
#include "vhdx.h"
#include "zero.h"

#define COPY_CHUNK (1U << 20)
#define ZERO_PIECE (64U << 10)

/* --- extent lists --------------------------------------------------------- */

static int
extents_grow (struct vhdx_extent **e, size_t n, size_t *cap)
{
  struct vhdx_extent *p;
  size_t want;

  if (n < *cap)
    return 0;
  want = *cap ? *cap * 2 : 16;
  p = realloc (*e, want * sizeof *p);
  if (p == NULL)
    return -1;
  *e = p;
  *cap = want;
  return 0;
}

void
vhdx_free_add (struct vhdx *v, uint64_t start, uint64_t end)
{
  size_t i = 0, j;

  if (start >= end)
    return;
  while (i < v->n_free && v->free[i].end < start)
    i++;
  /* ranges i..j-1 touch or overlap [start, end): merge them */
  for (j = i; j < v->n_free && v->free[j].start <= end; j++) {
    start = MIN (start, v->free[j].start);
    end = MAX (end, v->free[j].end);
  }
  if (j > i) {
    v->free[i] = (struct vhdx_extent) { start, end };
    memmove (&v->free[i + 1], &v->free[j],
             (v->n_free - j) * sizeof *v->free);
    v->n_free -= j - i - 1;
    return;
  }
  if (extents_grow (&v->free, v->n_free, &v->free_cap) == -1)
    return; /* not reused: defragment reclaims it */
  memmove (&v->free[i + 1], &v->free[i], (v->n_free - i) * sizeof *v->free);
  v->free[i] = (struct vhdx_extent) { start, end };
  v->n_free++;
}

void
vhdx_free_remove (struct vhdx *v, uint64_t start, uint64_t end)
{
  size_t i;

  for (i = 0; i < v->n_free; i++) {
    struct vhdx_extent e = v->free[i];
    if (e.end <= start || e.start >= end)
      continue;
    if (e.start < start && e.end > end) {
      /* split in two: the tail is added back */
      v->free[i].end = start;
      vhdx_free_add (v, end, e.end);
      return;
    }
    if (e.start < start)
      v->free[i].end = start;
    else if (e.end > end)
      v->free[i].start = end;
    else {
      memmove (&v->free[i], &v->free[i + 1],
               (v->n_free - i - 1) * sizeof *v->free);
      v->n_free--;
      i--;
    }
  }
}

bool
vhdx_free_take (struct vhdx *v, uint64_t size, uint64_t *offset)
{
  size_t i;

  for (i = 0; i < v->n_free; i++)
    if (v->free[i].end - v->free[i].start >= size) {
      *offset = v->free[i].start;
      vhdx_free_remove (v, *offset, *offset + size);
      return true;
    }
  return false;
}

void
vhdx_free_cut (struct vhdx *v, uint64_t end)
{
  vhdx_free_remove (v, end, UINT64_MAX);
}

void
vhdx_pending_add (struct vhdx *v, uint64_t start, uint64_t end)
{
  if (extents_grow (&v->pending, v->n_pending, &v->pending_cap) == -1)
    return; /* a leak, not an error */
  v->pending[v->n_pending++] = (struct vhdx_extent) { start, end };
}

/* [offset, offset + length) cut to whole MiB inside the file (a reused
 * block must lie inside it); false when nothing is left. */
static bool
reusable_part (struct vhd_disk *d, uint64_t *offset, uint64_t length,
               uint64_t *end)
{
  int64_t size = io_get_size (d->io);

  if (size < 0)
    return false;
  *end = MIN (*offset + length, (uint64_t) size) / VHDX_MiB * VHDX_MiB;
  *offset = ROUND_UP (*offset, VHDX_MiB);
  return *offset < *end;
}

void
vhdx_release (struct vhd_disk *d, uint64_t offset, uint64_t length)
{
  uint64_t end;

  if (!reusable_part (d, &offset, length, &end))
    return;
  if (d->io->ops->punch_hole (d->io, offset, end - offset) == -1)
    return; /* cannot read as zeros: not reused (defragment reclaims it) */
  vhdx_free_add (d->priv, offset, end);
}

void
vhdx_free_gaps (struct vhd_disk *d, const struct vhdx_object *o, size_t n)
{
  struct vhdx *v = d->priv;
  uint64_t at = 0, start, end;
  size_t i;

  v->n_free = 0;
  v->free_stale = true;
  for (i = 0; i < n; i++) {
    start = at;
    if (o[i].start > at && reusable_part (d, &start, o[i].start - at, &end))
      vhdx_free_add (v, start, end);
    at = MAX (at, o[i].end);
  }
}

void
vhdx_punch_free (struct vhd_disk *d)
{
  struct vhdx *v = d->priv;
  size_t i = 0;

  if (!v->free_stale)
    return;
  while (i < v->n_free) {
    struct vhdx_extent e = v->free[i];
    if (d->io->ops->punch_hole (d->io, e.start, e.end - e.start) == 0)
      i++;
    else
      vhdx_free_remove (v, e.start, e.end); /* old bytes: not reusable */
  }
  v->free_stale = false;
}

/* Once the change that stops referencing it is durable, pending space is
 * released -- unless compact defers that to its defragment, which then
 * finds it as a gap between objects. */
void
vhdx_pending_settle (struct vhd_disk *d, bool durable)
{
  struct vhdx *v = d->priv;
  size_t i;

  for (i = 0; durable && !d->defer_release && i < v->n_pending; i++)
    vhdx_release (d, v->pending[i].start,
                  v->pending[i].end - v->pending[i].start);
  v->n_pending = 0;
}

/* --- objects -------------------------------------------------------------- */

struct object_list {
  struct vhdx_object *o;
  size_t n, cap;
};

static int
add_object (struct object_list *l, uint64_t start, uint64_t len,
            enum vhdx_object_kind kind, uint64_t index)
{
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 64;
    struct vhdx_object *p = realloc (l->o, cap * sizeof *p);
    if (p == NULL) {
      set_error (ENOMEM, "out of memory listing the VHDX file's objects");
      return -1;
    }
    l->o = p;
    l->cap = cap;
  }
  l->o[l->n++] = (struct vhdx_object) { start, start + len, kind, index };
  return 0;
}

static int
add_fixed (struct object_list *l, const struct vhdx *v)
{
  uint32_t i;

  if (add_object (l, 0, VHDX_HEADER_SECTION_SIZE, VHDX_OBJ_FIXED, 0) == -1)
    return -1;
  if (v->hdr.log_length
      && add_object (l, v->hdr.log_offset, v->hdr.log_length,
                     VHDX_OBJ_FIXED, 0) == -1)
    return -1;
  for (i = 0; i < v->regions.count; i++) {
    const struct vhdx_region *e = &v->regions.e[i];
    if (add_object (l, e->offset, e->length,
                    e == v->regions.bat ? VHDX_OBJ_BAT : VHDX_OBJ_FIXED,
                    i) == -1)
      return -1;
  }
  return 0;
}

/* One pass over the table in file order (the BAT is paged in). */
static int
add_blocks (struct object_list *l, struct vhdx *v)
{
  uint64_t i, e;

  for (i = 0; i < v->geo.entries; i++) {
    bool bitmap = vhdx_bat_is_bitmap (&v->geo, i);
    unsigned s;
    if (!bitmap && vhdx_bat_block_of (&v->geo, i) >= v->geo.data_blocks)
      continue;
    if (vhdx_get_entry (v, i, &e) == -1)
      return -1;
    s = vhdx_bat_state (e);
    if (bitmap && s == VHDX_SB_PRESENT
        && add_object (l, vhdx_bat_offset (e), VHDX_BITMAP_BLOCK_SIZE,
                       VHDX_OBJ_BITMAP, i) == -1)
      return -1;
    if (!bitmap && (s == VHDX_PAYLOAD_FULLY_PRESENT
                    || s == VHDX_PAYLOAD_PARTIALLY_PRESENT)
        && add_object (l, vhdx_bat_offset (e), v->md.block_size,
                       VHDX_OBJ_PAYLOAD, i) == -1)
      return -1;
  }
  return 0;
}

static int
by_start (const void *a, const void *b)
{
  const struct vhdx_object *x = a, *y = b;

  if (x->start != y->start)
    return x->start < y->start ? -1 : 1;
  return 0;
}

int
vhdx_list_objects (struct vhdx *v, struct vhdx_object **out,
                   size_t *n)
{
  struct object_list l = { NULL, 0, 0 };

  if (add_fixed (&l, v) == -1 || add_blocks (&l, v) == -1) {
    free (l.o);
    return -1;
  }
  qsort (l.o, l.n, sizeof *l.o, by_start);
  *out = l.o;
  *n = l.n;
  return 0;
}

int
vhdx_objects (struct vhd_disk *d, struct vhdx_object **out, size_t *n)
{
  struct vhdx_object *o;
  size_t i;

  if (vhdx_list_objects (d->priv, &o, n) == -1)
    return -1;
  for (i = 1; i < *n; i++)
    if (o[i].start < o[i - 1].end) {
      set_error (EBADMSG, "VHDX objects at %" PRIu64 " and %" PRIu64
                 " overlap (run a check)", o[i - 1].start, o[i].start);
      free (o);
      return -1;
    }
  *out = o;
  return 0;
}

int
vhdx_used_end (struct vhd_disk *d, uint64_t *end)
{
  struct vhdx_object *o;
  size_t n, i;

  if (vhdx_list_objects (d->priv, &o, &n) == -1)
    return -1;
  *end = 0;
  for (i = 0; i < n; i++)
    *end = MAX (*end, o[i].end);
  *end = ROUND_UP (*end, VHDX_MiB);
  free (o);
  return 0;
}

int
vhdx_trim (struct vhd_disk *d)
{
  struct vhdx *v = d->priv;
  int64_t size = io_get_size (d->io);
  uint64_t end;

  if (size < 0 || vhdx_used_end (d, &end) == -1)
    return -1;
  v->file_end = end;
  if ((uint64_t) size <= end)
    return 0;
  /* Log entries record the file's size (FlushedFileOffset): a replay
   * refuses a file shorter than that, so retire the log first. */
  if (vhdx_flush (d) == -1)
    return -1;
  if (d->io->ops->truncate (d->io, end) == -1 || io_flush (d->io) == -1) {
    prefix_error ("shortening the VHDX file to %" PRIu64 " bytes", end);
    return -1;
  }
  vhdx_free_cut (v, end);
  return 0;
}

/* --- moving --------------------------------------------------------------- */

/* Zero bytes at [offset, offset + n) of a destination that may hold old
 * bytes: a hole where the host can punch one (buf holds the zeros). */
static int
clear_run (struct io *io, const uint8_t *buf, size_t n, uint64_t offset)
{
  if (n == 0 || io->ops->punch_hole (io, offset, n) == 0)
    return 0;
  return io_pwrite (io, buf, n, offset);
}

/* Write the non-zero 64 KiB pieces of buf[0..n) at offset, and clear the
 * zero ones unless the destination reads as zeros already (punched or
 * new).  Buffered: in compact the destination is mostly space of dropped
 * blocks, still in the page cache from the scan, and overwriting cached
 * pages is cheaper than writing past them (measured: 0.8 s against
 * 1.0 s for docs/performance.md's image). */
static int
write_nonzero (struct io *io, const uint8_t *buf, size_t n, uint64_t offset,
               bool dest_zero)
{
  size_t i = 0;

  while (i < n) {
    size_t run = 0, piece, from = i;
    while (i < n && buffer_is_zero (buf + i, MIN (n - i, (size_t) ZERO_PIECE)))
      i += MIN (n - i, (size_t) ZERO_PIECE);
    if (!dest_zero && clear_run (io, buf + from, i - from, offset + from) == -1)
      return -1;
    while (i + run < n) {
      piece = MIN (n - i - run, (size_t) ZERO_PIECE);
      if (buffer_is_zero (buf + i + run, piece))
        break;
      run += piece;
    }
    if (run && io_pwrite (io, buf + i, run, offset + i) == -1)
      return -1;
    i += run;
  }
  return 0;
}

int
vhdx_copy_data (struct vhd_disk *d, uint64_t src, uint64_t dest,
                uint64_t len)
{
  int64_t size = io_get_size (d->io);
  uint8_t *buf;
  uint64_t done = 0;
  int r = 0;

  if (size < 0)
    return -1;
  if ((uint64_t) size < dest + len
      && d->io->ops->truncate (d->io, dest + len) == -1)
    return -1;
  buf = malloc (COPY_CHUNK);
  if (buf == NULL) {
    set_error (ENOMEM, "out of memory");
    return -1;
  }
  while (r == 0 && done < len) {
    size_t n = (size_t) MIN ((uint64_t) COPY_CHUNK, len - done);
    uint64_t at = src + done;
    size_t avail = at < (uint64_t) size
                     ? (size_t) MIN ((uint64_t) n, (uint64_t) size - at) : 0;
    memset (buf + avail, 0, n - avail);
    if (avail)
      r = io_pread (d->io, buf, avail, at);
    if (r == 0)
      r = write_nonzero (d->io, buf, n, dest + done,
                         !((struct vhdx *) d->priv)->free_stale);
    done += n;
  }
  free (buf);
  if (r == -1)
    prefix_error ("copying %" PRIu64 " bytes from %" PRIu64 " to %" PRIu64,
                  len, src, dest);
  return r;
}

int
vhdx_copy_object (struct vhd_disk *d, uint64_t src, uint64_t dest,
                  uint64_t len)
{
  return vhdx_copy_data (d, src, dest, len) == 0 ? io_flush (d->io) : -1;
}

int
vhdx_switch_entries (struct vhd_disk *d, const struct vhdx_move *m, size_t n)
{
  struct vhdx *v = d->priv;
  struct vhdx_stage *st = calloc (1, sizeof *st);
  size_t i;
  int r;

  if (st == NULL) {
    set_error (ENOMEM, "out of memory");
    return -1;
  }
  for (i = 0; i < n; i++) {
    uint64_t e;
    if (vhdx_get_entry (v, m[i].index, &e) == -1
        || vhdx_put_entry (v, st, m[i].index,
                           vhdx_bat_entry (vhdx_bat_state (e), m[i].dest))
           == -1) {
      vhdx_abandon (d, st);
      free (st);
      return -1;
    }
  }
  r = vhdx_commit (d, st);
  free (st);
  return r;
}

int
vhdx_switch_entry (struct vhd_disk *d, uint64_t idx, uint64_t dest)
{
  return vhdx_switch_entries (d, &(struct vhdx_move) { idx, dest }, 1);
}

/* The in-memory BAT, then zeros, written over [dest, dest + length). */
static int
write_bat_copy (struct vhd_disk *d, uint64_t dest, uint32_t length)
{
  struct vhdx *v = d->priv;
  uint8_t *buf = malloc (COPY_CHUNK);
  uint64_t per = COPY_CHUNK / VHDX_LOG_SECTOR, piece, i;
  int r = 0;

  if (buf == NULL) {
    set_error (ENOMEM, "out of memory");
    return -1;
  }
  for (piece = 0; r == 0 && piece * COPY_CHUNK < length; piece++) {
    for (i = 0; r == 0 && i < per; i++)
      r = vhdx_bat_cache_encode (&v->bat, piece * per + i,
                                 buf + i * VHDX_LOG_SECTOR);
    if (r == 0)
      r = io_pwrite (d->io, buf, COPY_CHUNK, dest + piece * COPY_CHUNK);
  }
  free (buf);
  return r == 0 ? io_flush (d->io) : -1;
}

/* Both region tables, copy 1 first (see the file-top note). */
static int
write_regions (struct vhd_disk *d, const struct vhdx_region *e,
               uint32_t count)
{
  uint8_t *raw = malloc (VHDX_RGN_SIZE);
  int r;

  if (raw == NULL) {
    set_error (ENOMEM, "out of memory");
    return -1;
  }
  vhdx_region_encode (e, count, raw);
  r = io_pwrite (d->io, raw, VHDX_RGN_SIZE, VHDX_REGION1_OFFSET);
  if (r == 0)
    r = io_flush (d->io);
  if (r == 0)
    r = io_pwrite (d->io, raw, VHDX_RGN_SIZE, VHDX_REGION2_OFFSET);
  if (r == 0)
    r = io_flush (d->io);
  free (raw);
  if (r == -1)
    prefix_error ("updating the VHDX region tables");
  return r;
}

int
vhdx_move_bat (struct vhd_disk *d, uint64_t dest, uint32_t length)
{
  struct vhdx *v = d->priv;
  size_t k = (size_t) (v->regions.bat - v->regions.e);
  struct vhdx_region *e;
  int r;

  if (vhdx_flush (d) == -1 || write_bat_copy (d, dest, length) == -1)
    return -1;
  e = malloc (v->regions.count * sizeof *e);
  if (e == NULL) {
    set_error (ENOMEM, "out of memory");
    return -1;
  }
  memcpy (e, v->regions.e, v->regions.count * sizeof *e);
  e[k].offset = dest;
  e[k].length = length;
  r = write_regions (d, e, v->regions.count);
  free (e);
  if (r == -1) {
    v->failed = true; /* which table a reader takes is unknown now */
    return -1;
  }
  v->regions.e[k].offset = dest;
  v->regions.e[k].length = length;
  v->bat.offset = dest;
  vhdx_bat_cache_clean (&v->bat, UINT64_MAX); /* written out whole */
  return 0;
}
