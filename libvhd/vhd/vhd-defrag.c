/* vhd-defrag.c: the defragment hook of the VHD driver (the second pass of
 * vhd_compact): move the blocks down into the holes that unmapped blocks
 * left, then cut the file after the last one.
 *
 * The target layout is a list of n slots, one per allocated block, packed
 * into the free space between the metadata regions from the front of the
 * file.  Slots keep the alignment the blocks' data has now (the largest
 * power of two up to 1 MiB dividing every block's data offset: 512 for
 * the images we write, 4 KiB for some other tools'), one block apart
 * rounded up to it.  With an alignment above a sector the first slot of
 * an interval starts at the block lying there when that block is less
 * than a slot in (another tool's padding is kept, and its blocks stay);
 * otherwise at the first aligned offset of the interval.
 * Then:
 *   A. a block that is not exactly on a slot but overlaps one moves to
 *      the end of the file (rare: only images with padding between
 *      blocks);
 *   B. every free slot, lowest first, receives the block lying highest
 *      outside the slots;
 *   C. the file is cut after the last slot (vhd_shrink_to).
 * In A and B no destination overlaps a block or metadata the BAT on disk
 * refers to, so each batch of moves is crash-safe as vhd_move_blocks
 * describes: the view of the disk never changes, and a crash leaves every
 * BAT entry pointing at one of two identical copies.  The space a moved
 * block left is reused only after the batch's BAT switch is durable.
 *
 * Result: file size = metadata + blocks + footer (plus the padding of an
 * alignment above a sector, when another tool put it there).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include "minmax.h"
#include "vhd/vhd.h"

#define MOVE_BATCH 64U
#define MiB_ALIGN (UINT64_C (1) << 20)

struct blk {
  uint64_t host;
  uint32_t block;
};

struct plan {
  struct blk *b;       /* allocated blocks, by host offset */
  size_t n;
  uint64_t *slots;     /* n slot offsets, ascending */
  uint64_t bb;         /* bytes of a block: bitmap and data */
  uint32_t bitmap;     /* bytes of its bitmap */
  uint64_t align;      /* of the data offsets */
  uint64_t stride;     /* from one slot to the next */
  struct vhd_move *moves;
  size_t n_moves;
  size_t done, total;  /* progress, in moves */
};

static int
cmp_blk (const void *x, const void *y)
{
  const struct blk *a = x, *b = y;

  return a->host < b->host ? -1 : a->host > b->host;
}

static int
collect_blocks (const struct vhd_state *s, struct plan *p)
{
  uint32_t i;

  p->b = malloc (MAX ((size_t) s->n_blocks, (size_t) 1) * sizeof *p->b);
  p->slots = malloc (MAX ((size_t) s->n_blocks, (size_t) 1)
                     * sizeof *p->slots);
  p->moves = malloc (MAX ((size_t) s->n_blocks, (size_t) 1)
                     * sizeof *p->moves);
  if (p->b == NULL || p->slots == NULL || p->moves == NULL) {
    set_error (ENOMEM, "out of memory");
    return -1;
  }
  p->n = 0;
  for (i = 0; i < s->n_blocks; i++) {
    uint32_t sector = vhd_bat_get (&s->bat, i);
    if (sector != VHD_BAT_UNUSED)
      p->b[p->n++] = (struct blk) { (uint64_t) sector * SECTOR_SIZE, i };
  }
  qsort (p->b, p->n, sizeof *p->b, cmp_blk);
  return 0;
}

/* The alignment of the blocks' data in the file. */
static void
find_alignment (struct plan *p)
{
  size_t i;

  p->align = MiB_ALIGN;
  for (i = 0; i < p->n; i++)
    while ((p->b[i].host + p->bitmap) % p->align != 0)
      p->align /= 2;
  p->align = MAX (p->align, (uint64_t) SECTOR_SIZE);
  p->stride = ROUND_UP (p->bb, p->align);
}

/* Slots in the free interval [a, b) (b = UINT64_MAX: the open end). */
static size_t
slots_in (struct plan *p, size_t k, size_t *j, uint64_t a, uint64_t b)
{
  uint64_t base = ROUND_UP (a + p->bitmap, p->align) - p->bitmap;

  while (*j < p->n && p->b[*j].host < base)
    (*j)++;
  if (p->align > SECTOR_SIZE && *j < p->n
      && p->b[*j].host < base + p->stride && p->b[*j].host + p->bb <= b)
    base = p->b[*j].host;
  while (k < p->n && base + p->bb <= b) {
    p->slots[k++] = base;
    base += p->stride;
  }
  return k;
}

static void
plan_slots (const struct vhd_state *s, struct plan *p)
{
  struct vhd_region r[VHD_MAX_REGIONS];
  unsigned nr = vhd_meta_regions (s, r), i;
  uint64_t cursor = 0;
  size_t k = 0, j = 0;

  for (i = 0; i < nr && k < p->n; i++) {
    if (r[i].start > cursor)
      k = slots_in (p, k, &j, cursor, r[i].start);
    cursor = MAX (cursor, r[i].end);
  }
  if (k < p->n)
    slots_in (p, k, &j, cursor, UINT64_MAX);
}

static bool
on_slot (const struct plan *p, uint64_t host)
{
  size_t lo = 0, hi = p->n;

  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (p->slots[mid] == host)
      return true;
    if (p->slots[mid] < host)
      lo = mid + 1;
    else
      hi = mid;
  }
  return false;
}

/* Does [host, host + bb) overlap any slot? */
static bool
overlaps_slot (const struct plan *p, uint64_t host)
{
  size_t lo = 0, hi = p->n;

  while (lo < hi) { /* the first slot ending after host */
    size_t mid = lo + (hi - lo) / 2;
    if (p->slots[mid] + p->bb <= host)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < p->n && p->slots[lo] < host + p->bb;
}

/* Moves to come: one per block off the slots, two if it is in the way. */
static void
count_moves (struct plan *p)
{
  size_t i;

  p->total = p->done = 0;
  for (i = 0; i < p->n; i++)
    if (!on_slot (p, p->b[i].host))
      p->total += overlaps_slot (p, p->b[i].host) ? 2 : 1;
}

/* Run p->moves in batches, reporting progress. */
static int
run_moves (struct vhd_disk *d, struct plan *p, vhd_progress_fn progress,
           void *opaque)
{
  size_t i;

  for (i = 0; i < p->n_moves; i += MOVE_BATCH) {
    size_t n = MIN ((size_t) MOVE_BATCH, p->n_moves - i);
    if (vhd_move_blocks (d, p->moves + i, n) == -1)
      return -1;
    p->done += n;
    if (progress && p->total)
      progress (opaque, d->size / 2 + (uint64_t) ((double) (d->size / 2)
                                                  * p->done / p->total),
                d->size);
  }
  return 0;
}

/* A: blocks that are off the slots but in their way go to the end. */
static int
clear_slots (struct vhd_disk *d, struct plan *p, vhd_progress_fn progress,
             void *opaque)
{
  struct vhd_state *s = d->priv;
  uint64_t end = p->n ? p->slots[p->n - 1] + p->bb : 0;
  uint64_t at = ROUND_UP (MAX (s->next_free, end) + p->bitmap, p->align)
                - p->bitmap;
  size_t i;

  p->n_moves = 0;
  for (i = 0; i < p->n; i++)
    if (!on_slot (p, p->b[i].host) && overlaps_slot (p, p->b[i].host)) {
      p->moves[p->n_moves++] = (struct vhd_move) { p->b[i].block, at };
      p->b[i].host = at;
      at += p->stride;
    }
  if (p->n_moves == 0)
    return 0;
  if (vhd_extend (d, at) == -1)
    return -1;
  return run_moves (d, p, progress, opaque);
}

/* Is slot k taken by the block lying exactly on it?  (p->b sorted.) */
static bool
slot_taken (const struct plan *p, uint64_t slot)
{
  struct blk key = { slot, 0 };

  return bsearch (&key, p->b, p->n, sizeof *p->b, cmp_blk) != NULL;
}

/* B: fill the free slots, lowest first, with the highest blocks. */
static int
fill_slots (struct vhd_disk *d, struct plan *p, vhd_progress_fn progress,
            void *opaque)
{
  size_t k, i = p->n;

  qsort (p->b, p->n, sizeof *p->b, cmp_blk);
  p->n_moves = 0;
  for (k = 0; k < p->n; k++) {
    if (slot_taken (p, p->slots[k]))
      continue;
    while (i > 0 && on_slot (p, p->b[i - 1].host))
      i--;
    if (i == 0)
      break; /* cannot happen: as many free slots as blocks off them */
    i--;
    p->moves[p->n_moves++] = (struct vhd_move) { p->b[i].block,
                                                 p->slots[k] };
  }
  if (p->n_moves == 0)
    return 0;
  if (vhd_extend (d, p->slots[p->n - 1] + p->bb) == -1)
    return -1;
  return run_moves (d, p, progress, opaque);
}

int
vhd_op_defragment (struct vhd_disk *d, vhd_progress_fn progress,
                   void *opaque)
{
  struct vhd_state *s = d->priv;
  struct plan p = { .bb = vhd_block_bytes (s), .bitmap = s->bitmap_size };
  uint64_t end;
  int r = -1;

  if (s->footer.disk_type == VHD_DISK_FIXED) {
    set_error (ENOTSUP, "a fixed VHD has no blocks to defragment");
    return -1;
  }
  if (d->ops->flush (d) == -1)
    return -1;
  if (collect_blocks (s, &p) == 0) {
    find_alignment (&p);
    plan_slots (s, &p);
    count_moves (&p);
    r = clear_slots (d, &p, progress, opaque);
    if (r == 0)
      r = fill_slots (d, &p, progress, opaque);
  }
  free (p.b);
  free (p.slots);
  free (p.moves);
  if (r == -1)
    return -1;
  end = vhd_live_end (s);
  if (s->footer_pos > end && vhd_shrink_to (d, end) == -1)
    return -1;
  if (progress)
    progress (opaque, d->size, d->size);
  return 0;
}
