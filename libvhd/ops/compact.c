/* compact.c: vhd_compact and vhd_compact_ex, written once for every
 * format.
 *
 * Pass 1 looks at each block this layer stores.  A block whose view (the
 * whole chain's) is all zeros is unmapped in a base disk; in a
 * differencing disk it must keep hiding the parent, so it becomes a zero
 * block where the format has them (VHDX) or stays (VHD) -- unless the
 * parent shows zeros there too, when it is simply unmapped.  A block of a
 * differencing disk identical to the parent's view is unmapped.  Pass 2
 * is the driver's defragment: move the remaining blocks down and shorten
 * the file.  The unmaps of pass 1 share log entries (a write batch),
 * and the space they free is left for the defragment to overwrite or cut
 * off (vhd_disk.defer_release) rather than punched first.
 * VHD_COMPACT_NO_MOVE stops after pass 1: the dropped blocks' space is
 * punched out of the host file (or cut off its end) as they are
 * unmapped, and nothing is copied.  There the data of all-zero blocks is
 * punched by a second thread while the scan reads on (punch-behind.h),
 * each block's update done once its punch is.  The view of the disk is
 * the same after every step, so a crash anywhere leaves the old content.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "copy-internal.h"
#include "internal.h"
#include "minmax.h"
#include "punch-behind.h"
#include "zero.h"

#define COMPACT_CHUNK (1U << 20)

/* What pass 1 does with a block, decided before it is done. */
enum action { KEEP, UNMAP, ZERO };

struct decision {
  enum action action;
  bool zero;                 /* the block's view is all zeros */
  uint64_t offset, len;
  uint64_t ticket;           /* of its data's punch; 0: none */
};

/* Blocks decided but not yet updated (--no-move). */
#define WINDOW 16U

struct compactor {
  struct vhd_disk *d;
  uint8_t *view, *under;
  /* --no-move: the data of all-zero blocks is punched by a thread while
   * the scan goes on; a block's update waits for its punch, up to WINDOW
   * blocks behind the scan (punch-behind.h). */
  struct punch_behind *punch;
  struct decision window[WINDOW];
  unsigned first, n;
};

/* Whether this layer stores any data in [offset, offset+len). */
static int
layer_has_data (struct vhd_disk *d, uint64_t offset, uint64_t len)
{
  while (len > 0) {
    struct extent e;
    if (d->ops->map (d, offset, len, &e) == -1)
      return -1;
    if (e.state == LAYER_DATA)
      return 1;
    offset += MIN (e.length, len);
    len -= MIN (e.length, len);
  }
  return 0;
}

/* The parent's view of the block (zeros past its end). */
static int
read_under (struct vhd_disk *d, uint8_t *buf, size_t len, uint64_t offset)
{
  struct vhd_disk *p = d->parent;
  size_t n = 0;

  if (offset < p->size) {
    n = (size_t) MIN ((uint64_t) len, p->size - offset);
    if (chain_pread (p, buf, n, offset) == -1)
      return -1;
  }
  memset (buf + n, 0, len - n);
  return 0;
}

/* Compare the block's view with the parent's, a chunk at a time (blocks
 * may be up to 256 MiB, or more in a hostile image). */
static int
examine_block (struct compactor *c, uint64_t offset, uint64_t len,
               bool *zero, bool *same)
{
  struct vhd_disk *d = c->d;

  *zero = true;
  *same = d->parent != NULL;
  for (uint64_t done = 0; done < len && (*zero || *same);) {
    size_t n = (size_t) MIN (len - done, (uint64_t) COMPACT_CHUNK);
    if (chain_pread (d, c->view, n, offset + done) == -1)
      return -1;
    *zero = *zero && buffer_is_zero (c->view, n);
    if (*same) {
      if (read_under (d, c->under, n, offset + done) == -1)
        return -1;
      *same = memcmp (c->view, c->under, n) == 0;
    }
    done += n;
  }
  return 0;
}

static int
decide (struct compactor *c, uint64_t offset, uint64_t len,
        struct decision *out)
{
  struct vhd_disk *d = c->d;
  int r = layer_has_data (d, offset, len);
  bool zero, same;

  *out = (struct decision) { KEEP, false, offset, len, 0 };
  if (r <= 0)
    return r;
  if (examine_block (c, offset, len, &zero, &same) == -1)
    return -1;
  out->zero = zero;
  if (d->parent == NULL ? zero : same)
    out->action = UNMAP;
  else if (zero && d->ops->zero)
    out->action = ZERO;
  return 0;
}

static int
apply (struct compactor *c, const struct decision *k)
{
  struct vhd_disk *d = c->d;
  uint64_t span = ROUND_UP (k->len, (uint64_t) disk_write_align (d));

  switch (k->action) {
  case UNMAP:
    return d->ops->unmap (d, k->offset, d->block_size);
  case ZERO:
    return d->ops->zero (d, k->offset, span,
                         VHD_ZERO_MAY_UNMAP | ZERO_VIEW_UNCHANGED) < 0 ? -1
                                                                       : 0;
  default:
    return 0;
  }
}

/* Queue the host ranges holding an all-zero block's data for punching
 * (its bytes read as zeros, so this changes nothing that can be seen). */
static int
punch_zero_data (struct compactor *c, struct decision *k)
{
  uint64_t offset = k->offset, len = k->len;

  while (len > 0) {
    struct extent e;
    if (c->d->ops->map (c->d, offset, len, &e) == -1)
      return -1;
    if (e.state == LAYER_DATA)
      k->ticket = punch_behind_add (c->punch, e.host_offset,
                                    MIN (e.length, len));
    offset += MIN (e.length, len);
    len -= MIN (e.length, len);
  }
  return 0;
}

/* Update the oldest block of the window once its punch is done. */
static int
apply_oldest (struct compactor *c)
{
  struct decision *k = &c->window[c->first];

  punch_behind_wait (c->punch, k->ticket);
  c->first = (c->first + 1) % WINDOW;
  c->n--;
  return apply (c, k);
}

static int
compact_block (struct compactor *c, uint64_t offset, uint64_t len)
{
  struct decision k;

  if (decide (c, offset, len, &k) == -1)
    return -1;
  if (c->punch == NULL)
    return apply (c, &k);
  if (k.zero && punch_zero_data (c, &k) == -1)
    return -1;
  c->window[(c->first + c->n++) % WINDOW] = k;
  return c->n == WINDOW ? apply_oldest (c) : 0;
}

static int
compact_unlocked (struct vhd_disk *d, unsigned flags,
                  vhd_progress_fn progress, void *opaque)
{
  bool move = !(flags & VHD_COMPACT_NO_MOVE);
  struct compactor c = { .d = d };
  uint64_t offset;
  bool batch;
  int r = 0;

  if (d->block_size == 0 || d->ops->unmap == NULL
      || d->ops->defragment == NULL) {
    set_error (ENOTSUP, "only dynamic and differencing images can be "
               "compacted (%s %s)", d->ops->name,
               d->type == VHD_TYPE_FIXED ? "fixed" : "image");
    return -1;
  }
  if (d->type == VHD_TYPE_DIFFERENCING && d->parent == NULL) {
    set_error (EINVAL, "%s: a differencing disk is compacted against its "
               "parent, which was not opened", d->filename);
    return -1;
  }
  if (chain_flush (d) == -1)
    return -1;
  c.view = malloc (COMPACT_CHUNK);
  c.under = malloc (COMPACT_CHUNK);
  if (c.view == NULL || c.under == NULL) {
    set_error (ENOMEM, "out of memory");
    r = -1;
  }
  batch = write_batch_begin (d);
  d->defer_release = move;
  if (!move)
    c.punch = punch_behind_start (io_fd (d->io));
  for (offset = 0; r == 0 && offset < d->size; offset += d->block_size) {
    r = compact_block (&c, offset, MIN ((uint64_t) d->block_size,
                                        d->size - offset));
    if (progress)
      progress (opaque, move ? offset / 2 : offset, d->size);
  }
  while (r == 0 && c.n > 0)
    r = apply_oldest (&c);
  punch_behind_finish (c.punch);
  if (batch)
    r = write_batch_finish (d, r);
  free (c.view);
  free (c.under);
  if (r == 0)
    r = chain_flush (d);
  d->defer_release = false;
  if (r == 0 && move)
    r = d->ops->defragment (d, progress, opaque);
  return r == 0 ? chain_flush (d) : -1;
}

static int
compact (struct vhd_disk *d, unsigned flags, vhd_progress_fn progress,
         void *opaque)
{
  if (d == NULL) {
    set_error (EFAULT, "disk cannot be NULL");
    return -1;
  }
  if (flags & ~VHD_COMPACT_NO_MOVE) {
    set_error (EINVAL, "unknown flags 0x%x", flags & ~VHD_COMPACT_NO_MOVE);
    return -1;
  }
  if (d->readonly) {
    set_error (EROFS, "%s is open read-only", d->filename);
    return -1;
  }
  EXCLUSIVE_LOCK_FOR_CURRENT_SCOPE (&d->lock);
  return compact_unlocked (d, flags, progress, opaque);
}

int
vhd_compact (struct vhd_disk *d, vhd_progress_fn progress, void *opaque)
{
  set_error_context ("vhd_compact");
  return compact (d, 0, progress, opaque);
}

int
vhd_compact_ex (struct vhd_disk *d, unsigned flags, vhd_progress_fn progress,
                void *opaque)
{
  set_error_context ("vhd_compact_ex");
  return compact (d, flags, progress, opaque);
}
