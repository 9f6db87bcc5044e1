/* vhdx-defrag.c: defragment for VHDX: move every movable object down
 * into free space and cut the file after the last one.
 *
 * Movable objects are payload blocks, sector bitmap blocks and the BAT
 * region; the header section, the log, the metadata region and unknown
 * regions stay where they are.  First the file is cut after its last
 * object and every gap between objects is made free as it is (no
 * durable structure points into a gap: the core flushed before calling
 * us, so the in-memory BAT is the one on disk).  The gaps are not
 * punched: a move overwrites its destination and punches (clears) the
 * zero pieces it does not write, and compact leaves the blocks it drops
 * unpunched for this (vhd_disk.defer_release), so space that is filled
 * again is never punched first, and space past the new end is only cut
 * off.  Then:
 *   1. blocks, from the top of the file down, each into the lowest free
 *      space below it that holds it.  Only the blocks above the final
 *      end of the file move: a quarter of the blocks of an image with
 *      every other block dropped, where sliding every block down in
 *      order would move nearly all.  The moves are batched: up to
 *      vhdx_move_batch copies (256 MiB), one flush, one log entry
 *      switching them all;
 *   2. every movable object, lowest first, into the lowest free space
 *      below it that holds it (the BAT region; blocks that can use the
 *      space the BAT left).  The BAT alone may also close the gap right
 *      under it when that is too short for it, in two steps: to the end
 *      of the file, then down.  Blocks never do that: closing a gap
 *      shorter than a block would move every block above it twice, and
 *      the gap is punched, so it costs no space on the host;
 *   3. the file is cut after its last object, and free space left
 *      below it is punched.
 * With the fixed structures at the start of the file (as we, qemu and
 * Hyper-V lay them out) the result is the header section, log, metadata,
 * BAT and the blocks, with no space between them that a block would fit.
 *
 * CRASH SAFETY.  Each move (or batch of block moves) is copy -> flush ->
 * switch -> release:
 *   copy     the objects into free space, then flush: nothing points at
 *            the copies yet, a crash leaves unreferenced copies;
 *   switch   the blocks' BAT entries through the log (one entry, flushed
 *            and applied), or the BAT through both region tables (the
 *            log retired first, copy 1, flush, copy 2, flush);
 *   release  the old places, only now that nothing durable points at
 *            them.  Blocks' old places wait for the end of step 1: those
 *            below the last object become free space then (step 2 may
 *            use them; what stays free is punched at the end), and the
 *            rest is cut off with the file, never punched.
 * The file is cut only after the log is retired (its entries record the
 * file's size).  A crash anywhere leaves every object at its old or its
 * new place, so the disk reads the same.
 *
 * The view of the disk does not change: FileWriteGuid is renewed,
 * DataWriteGuid kept (children stay valid).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include "minmax.h"
#include "vhdx.h"

/* Block moves copied but not yet switched: at most one BAT page each,
 * so a batch fits one log entry. */
#define MOVE_BATCH 64U
#define MOVE_BATCH_BYTES (UINT64_C (256) << 20)

unsigned vhdx_move_batch = MOVE_BATCH;

struct move_batch {
  struct vhdx_move m[MOVE_BATCH];
  size_t n;
  uint64_t bytes;
};

/* The lowest free space below p for an object of size s: *shift when it
 * is the gap right under the object and too short for a direct move. */
static bool
find_spot (const struct vhdx *v, uint64_t p, uint64_t s, uint64_t *dest,
           bool *shift)
{
  size_t k;

  for (k = 0; k < v->n_free && v->free[k].start < p; k++) {
    const struct vhdx_extent *f = &v->free[k];
    if (f->end - f->start >= s || f->end == p) {
      *dest = f->start;
      *shift = f->end - f->start < s;
      return true;
    }
  }
  return false;
}

/* Copy, switch, release (see the file-top note). */
static int
move_to (struct vhd_disk *d, struct vhdx_object *ob, uint64_t dest)
{
  struct vhdx *v = d->priv;
  uint64_t len = ob->end - ob->start;

  vhdx_free_remove (v, dest, dest + len);
  if (ob->kind == VHDX_OBJ_BAT) {
    if (vhdx_move_bat (d, dest, (uint32_t) len) == -1)
      return -1;
    vhdx_release (d, ob->start, len);
  }
  else {
    if (vhdx_copy_object (d, ob->start, dest, len) == -1)
      return -1;
    vhdx_pending_add (v, ob->start, ob->end);
    if (vhdx_switch_entry (d, ob->index, dest) == -1)
      return -1;
  }
  ob->start = dest;
  ob->end = dest + len;
  return 0;
}

static int
place (struct vhd_disk *d, struct vhdx_object *ob)
{
  uint64_t dest, tmp, len = ob->end - ob->start;
  bool shift;

  if (!find_spot (d->priv, ob->start, len, &dest, &shift)
      || (shift && ob->kind != VHDX_OBJ_BAT))
    return 0;
  if (shift) {
    /* Out of the way first; its old place then joins the gap. */
    if (vhdx_allocate_end (d, len, &tmp) == -1 || move_to (d, ob, tmp) == -1)
      return -1;
  }
  return move_to (d, ob, dest);
}

/* The switch of a batch (the old places are released after step 1). */
static int
switch_batch (struct vhd_disk *d, struct move_batch *b)
{
  int r = b->n ? vhdx_switch_entries (d, b->m, b->n) : 0;

  b->n = 0;
  b->bytes = 0;
  return r;
}

/* Copy ob into the lowest free space below it that holds it, if any. */
static int
move_down (struct vhd_disk *d, const struct vhdx_object *ob,
           struct move_batch *b)
{
  struct vhdx *v = d->priv;
  uint64_t len = ob->end - ob->start, dest;
  bool shift;

  if (!find_spot (v, ob->start, len, &dest, &shift) || shift)
    return 0;
  vhdx_free_remove (v, dest, dest + len);
  if (vhdx_copy_data (d, ob->start, dest, len) == -1)
    return -1;
  b->m[b->n++] = (struct vhdx_move) { ob->index, dest };
  b->bytes += len;
  return b->n >= MIN (vhdx_move_batch, MOVE_BATCH)
             || b->bytes >= MOVE_BATCH_BYTES
           ? switch_batch (d, b) : 0;
}

static void
report (vhd_progress_fn progress, void *opaque, uint64_t size, double part)
{
  if (progress)
    progress (opaque, size / 2 + (uint64_t) ((double) (size / 2) * part),
              size);
}

/* Blocks from the top down into the lowest holes (see the file-top
 * note); o is sorted by start. */
static int
fill_from_top (struct vhd_disk *d, const struct vhdx_object *o, size_t n,
               vhd_progress_fn progress, void *opaque)
{
  struct vhdx *v = d->priv;
  struct move_batch b = { .n = 0 };
  size_t i;
  int r = 0;

  for (i = n; r == 0 && i-- > 0;) {
    if (v->n_free == 0 || v->free[0].start >= o[i].start)
      break; /* no space below this block, nor below any lower one */
    if (o[i].kind == VHDX_OBJ_PAYLOAD || o[i].kind == VHDX_OBJ_BITMAP)
      r = move_down (d, &o[i], &b);
    report (progress, opaque, d->size, 0.5 * (double) (n - i) / (double) n);
  }
  return r == 0 ? switch_batch (d, &b) : -1;
}

/* Every movable object, lowest first, into the lowest free space below
 * it (two steps when only the gap under it is left). */
static int
place_in_order (struct vhd_disk *d, vhd_progress_fn progress, void *opaque)
{
  struct vhdx_object *o;
  size_t n, i;
  int r = 0;

  if (vhdx_objects (d, &o, &n) == -1)
    return -1;
  vhdx_free_gaps (d, o, n); /* and the places blocks left below the last */
  for (i = 0; r == 0 && i < n; i++) {
    if (o[i].kind != VHDX_OBJ_FIXED)
      r = place (d, &o[i]);
    report (progress, opaque, d->size,
            0.5 + 0.5 * (double) (i + 1) / (double) n);
  }
  free (o);
  return r;
}

int
vhdx_defragment (struct vhd_disk *d, vhd_progress_fn progress, void *opaque)
{
  struct vhdx_object *o;
  size_t n;
  int r;

  if (vhdx_begin_update (d, false) == -1 || vhdx_trim (d) == -1
      || vhdx_objects (d, &o, &n) == -1) {
    prefix_error ("defragmenting");
    return -1;
  }
  vhdx_free_gaps (d, o, n);
  r = fill_from_top (d, o, n, progress, opaque);
  free (o);
  if (r == 0)
    r = place_in_order (d, progress, opaque);
  if (r == 0)
    r = vhdx_trim (d);
  vhdx_punch_free (d);
  if (r == -1)
    prefix_error ("defragmenting");
  return r;
}
