/* vhdx-defrag.c: defragment for VHDX: move every movable object down
 * into free space and cut the file after the last one.
 *
 * Movable objects are payload blocks, sector bitmap blocks and the BAT
 * region; the header section, the log, the metadata region and unknown
 * regions stay where they are.  First the file is cut after its last
 * object and every gap between objects is punched and made free (no
 * durable structure points into a gap: the core flushed before calling
 * us, so the in-memory BAT is the one on disk).  Then, lowest object
 * first, each goes to the lowest free space below it that holds it.
 * When the only free space below is the gap right under the object,
 * too short to take it without overlapping its old place, it moves in
 * two steps: to the end of the file, then down into the gap.  Last, the
 * file is cut again.  With the fixed structures at the start of the file
 * (as we and Hyper-V lay them out) the result is the header section,
 * log, metadata, BAT and the blocks, with no space between.
 *
 * CRASH SAFETY.  Each move is copy -> flush -> switch -> release:
 *   copy     the object into free space, then flush: nothing points at
 *            the copy yet, a crash leaves an unreferenced copy;
 *   switch   a block's BAT entry through the log (one entry, flushed
 *            and applied), or the BAT through both region tables (the
 *            log retired first, copy 1, flush, copy 2, flush);
 *   release  the old place, only now that nothing durable points at it
 *            (punched, and free for the next move).
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

/* Every gap between objects becomes free space (punched). */
static void
free_gaps (struct vhd_disk *d, const struct vhdx_object *o, size_t n)
{
  struct vhdx *v = d->priv;
  uint64_t at = 0;
  size_t i;

  v->n_free = 0;
  for (i = 0; i < n; i++) {
    if (o[i].start > at)
      vhdx_release (d, at, o[i].start - at);
    at = MAX (at, o[i].end);
  }
}

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

  if (!find_spot (d->priv, ob->start, len, &dest, &shift))
    return 0;
  if (shift) {
    /* Out of the way first; its old place then joins the gap. */
    if (vhdx_allocate_end (d, len, &tmp) == -1 || move_to (d, ob, tmp) == -1)
      return -1;
  }
  return move_to (d, ob, dest);
}

int
vhdx_defragment (struct vhd_disk *d, vhd_progress_fn progress, void *opaque)
{
  struct vhdx_object *o;
  size_t n, i;
  int r = 0;

  if (vhdx_begin_update (d, false) == -1 || vhdx_trim (d) == -1
      || vhdx_objects (d, &o, &n) == -1) {
    prefix_error ("defragmenting");
    return -1;
  }
  free_gaps (d, o, n);
  for (i = 0; r == 0 && i < n; i++) {
    if (o[i].kind != VHDX_OBJ_FIXED)
      r = place (d, &o[i]);
    if (progress)
      progress (opaque, d->size / 2
                          + (uint64_t) ((double) (d->size / 2)
                                        * (double) (i + 1) / (double) n),
                d->size);
  }
  free (o);
  if (r == 0)
    r = vhdx_trim (d);
  if (r == -1)
    prefix_error ("defragmenting");
  return r;
}
