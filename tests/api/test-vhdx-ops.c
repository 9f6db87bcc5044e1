/* test-vhdx-ops.c: the VHDX driver's operation hooks (libvhd/vhdx/
 * vhdx-ops.c, vhdx-defrag.c, vhdx-resize.c, vhdx-parent.c, vhdx-check.c,
 * vhdx-space.c) through the public calls: discard and write zeroes,
 * compact, resize, commit, rebase and check.  Each compares the disk
 * before and after; the file based ones also ask qemu-img, an
 * independent reader (512-byte sectors: qemu 7.2 does not open 4096-byte
 * sector VHDX).  The crash tests stop an operation at every write, cleanly
 * and torn, and then the image must open and every sector must read its
 * old or its new content.
 */
#undef NDEBUG /* Keep test strong */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/host-bytes.h"
#include "byteorder.h"
#include "internal.h"
#include "minmax.h"
#include "vhdx/log.h"
#include "vhdx/vhdx.h"

#define MiB (UINT64_C (1) << 20)
#define GiB (UINT64_C (1) << 30)

/* --- images in memory ----------------------------------------------------- */

struct image {
  uint8_t *bytes;
  size_t len;
  struct image *parent; /* not owned */
};

static uint8_t *
copy_of (const uint8_t *p, size_t len)
{
  uint8_t *c = malloc (len ? len : 1);

  cr_assert_not_null (c);
  memcpy (c, p, len);
  return c;
}

static void
snapshot (struct vhd_disk *d, struct image *img)
{
  size_t len;
  const uint8_t *p = io_mem_data (d->io, &len);

  free (img->bytes);
  img->bytes = copy_of (p, len);
  img->len = len;
}

static struct vhd_disk *
open_image (const struct image *img, unsigned flags)
{
  struct vhd_disk *parent = NULL;

  if (img->parent) {
    parent = open_image (img->parent, VHD_OPEN_RDONLY);
    if (parent == NULL)
      return NULL;
  }
  return disk_open_io (io_mem_new (img->bytes, img->len), "mem.vhdx", flags,
                       parent);
}

static struct vhd_disk *
must_open (const struct image *img, unsigned flags)
{
  struct vhd_disk *d = open_image (img, flags);

  cr_assert_not_null (d, "open: %s", vhd_get_error ());
  return d;
}

static void
make_image (struct image *img, enum vhd_type type, uint64_t size,
            uint32_t block_size, struct image *parent)
{
  struct create_params p = { .type = type, .size = size,
                             .block_size = block_size, .logical_sector = 512,
                             .physical_sector = 4096 };
  struct io *io = io_mem_new (NULL, 0);
  struct vhd_disk *pd = NULL;
  size_t len;

  memset (img, 0, sizeof *img);
  if (parent) {
    pd = must_open (parent, VHD_OPEN_RDONLY);
    p.type = VHD_TYPE_DIFFERENCING;
    p.size = pd->size;
    p.parent = pd;
    p.parent_path = "/images/base.vhdx";
    p.parent_abs_path = "/images/base.vhdx";
    p.parent_rel_path = "base.vhdx";
    img->parent = parent;
  }
  cr_assert_eq (vhdx_format_ops.create (io, &p), 0, "%s", vhd_get_error ());
  const uint8_t *data = io_mem_data (io, &len);
  img->bytes = copy_of (data, len);
  img->len = len;
  io->ops->close (io);
  vhd_close (pd);
}

/* A byte that depends on the offset and a seed, never zero. */
static uint8_t
pattern (uint64_t offset, unsigned seed)
{
  return (uint8_t) (((offset / 512) * 31 + offset % 512 * 7 + seed * 13)
                    % 255 + 1);
}

/* Write the pattern (seed 0: zeros) over [offset, offset + len) of d and
 * of view (when given). */
static void
fill (struct vhd_disk *d, uint8_t *view, uint64_t offset, size_t len,
      unsigned seed)
{
  uint8_t *buf = malloc (len);
  size_t i;

  cr_assert_not_null (buf);
  for (i = 0; i < len; i++)
    buf[i] = seed ? pattern (offset + i, seed) : 0;
  cr_assert_eq (vhd_pwrite (d, buf, len, offset), 0, "%s", vhd_get_error ());
  if (view)
    memcpy (view + offset, buf, len);
  free (buf);
}

static uint8_t *
read_range (struct vhd_disk *d, uint64_t offset, size_t len)
{
  uint8_t *buf = malloc (len ? len : 1);

  cr_assert_not_null (buf);
  cr_assert_eq (vhd_pread (d, buf, len, offset), 0, "%s", vhd_get_error ());
  return buf;
}

static void
expect_view (struct vhd_disk *d, const uint8_t *want, uint64_t size,
             const char *what)
{
  uint8_t *got;
  size_t i;

  cr_assert_eq (d->size, size, "%s: size %" PRIu64 ", want %" PRIu64, what,
                d->size, size);
  got = read_range (d, 0, size);
  if (memcmp (got, want, size) != 0) {
    for (i = 0; got[i] == want[i]; i++)
      ;
    cr_assert_fail ("%s: byte %zu is 0x%02x, want 0x%02x", what, i, got[i],
                    want[i]);
  }
  free (got);
}

static enum layer_state
state_at (struct vhd_disk *d, uint64_t offset)
{
  struct extent e;

  cr_assert_eq (d->ops->map (d, offset, d->size - offset, &e), 0);
  return e.state;
}

static uint64_t
bat_entry (struct vhd_disk *d, uint64_t block)
{
  struct vhdx *v = d->priv;
  uint64_t e;

  cr_assert_eq (vhdx_get_entry (v, vhdx_bat_payload_index (&v->geo, block),
                                &e), 0);
  return e;
}

static unsigned
bat_state (struct vhd_disk *d, uint64_t block)
{
  return vhdx_bat_state (bat_entry (d, block));
}

static uint64_t
bat_offset (struct vhd_disk *d, uint64_t block)
{
  return vhdx_bat_offset (bat_entry (d, block));
}

static size_t
mem_len (struct vhd_disk *d)
{
  size_t len;

  io_mem_data (d->io, &len);
  return len;
}

/* The driver's check over a memory copy: the severities it reported. */
static void
on_finding (void *opaque, int severity, const char *msg)
{
  int *seen = opaque;

  *seen |= severity;
  if (severity != VHD_CHECK_INFO)
    cr_log_info ("check: %d %s", severity, msg);
}

static int
mem_check (const uint8_t *bytes, size_t len, bool repair, int *seen)
{
  struct check_ctx c = { repair, 0, on_finding, seen };
  struct io *io = io_mem_new (bytes, len);
  int r;

  cr_assert_not_null (io);
  r = vhdx_format_ops.check (io, &c);
  io->ops->close (io);
  cr_assert_eq (r, 0, "check: %s", vhd_get_error ());
  return c.found;
}

/* --- unmap and zero ------------------------------------------------------- */

/* An 8 MiB base disk of 1 MiB blocks, all written. */
static struct vhd_disk *
full_base (struct image *img, uint8_t *view)
{
  struct vhd_disk *d;

  make_image (img, VHD_TYPE_DYNAMIC, 8 * MiB, MiB, NULL);
  d = must_open (img, 0);
  fill (d, view, 0, 8 * MiB, 1);
  cr_assert_eq (vhd_flush (d), 0);
  snapshot (d, img);
  return d;
}

Test (unmap, discard_frees_and_space_is_reused)
{
  struct image img;
  uint8_t *view = malloc (8 * MiB);
  struct vhd_disk *d = full_base (&img, view);
  uint64_t host = bat_offset (d, 2), size = mem_len (d);
  size_t len;

  cr_assert_eq (vhd_discard (d, 2 * MiB, MiB), 0, "%s", vhd_get_error ());
  memset (view + 2 * MiB, 0, MiB);
  cr_expect_eq (bat_state (d, 2), VHDX_PAYLOAD_ZERO);
  cr_expect_eq (bat_offset (d, 2), 0);
  expect_view (d, view, 8 * MiB, "after discard");
  /* punched once the BAT change was durable */
  const uint8_t *p = io_mem_data (d->io, &len);
  for (uint64_t i = host; i < host + MiB; i++)
    cr_assert_eq (p[i], 0, "freed byte %" PRIu64 " not punched", i);
  /* the next new block takes the freed space: the file does not grow */
  cr_assert_eq (vhd_discard (d, 5 * MiB, MiB), 0);
  fill (d, view, 2 * MiB + 4096, 512, 2);
  memset (view + 5 * MiB, 0, MiB);
  cr_expect_eq (bat_state (d, 2), VHDX_PAYLOAD_FULLY_PRESENT);
  cr_expect_eq (bat_offset (d, 2), host, "reused %" PRIu64 ", freed %"
                PRIu64, bat_offset (d, 2), host);
  cr_expect_eq (mem_len (d), size);
  expect_view (d, view, 8 * MiB, "after reuse");
  cr_assert_eq (vhd_flush (d), 0);
  snapshot (d, &img);
  vhd_close (d);
  d = must_open (&img, VHD_OPEN_RDONLY);
  expect_view (d, view, 8 * MiB, "reopened");
  vhd_close (d);
  free (view);
  free (img.bytes);
}

/* Parent: pattern 1 over its 8 MiB; child: pattern 2 over blocks 1-4. */
static struct vhd_disk *
child_with_blocks (struct image *pimg, struct image *cimg, uint8_t *view)
{
  struct vhd_disk *d;

  d = full_base (pimg, view);
  vhd_close (d);
  make_image (cimg, 0, 0, MiB, pimg);
  d = must_open (cimg, 0);
  fill (d, view, MiB, 4 * MiB, 2);
  cr_assert_eq (vhd_flush (d), 0);
  return d;
}

Test (unmap, differencing_zero_hides_the_parent)
{
  struct image pimg, cimg;
  uint8_t *view = malloc (8 * MiB);
  struct vhd_disk *d = child_with_blocks (&pimg, &cimg, view);
  uint64_t host = bat_offset (d, 2);
  size_t len;

  cr_assert_eq (vhd_discard (d, 2 * MiB, 2 * MiB), 0, "%s",
                vhd_get_error ());
  memset (view + 2 * MiB, 0, 2 * MiB);
  cr_expect_eq (bat_state (d, 2), VHDX_PAYLOAD_ZERO);
  cr_expect_eq (bat_state (d, 3), VHDX_PAYLOAD_ZERO);
  expect_view (d, view, 8 * MiB, "zeros over the parent");
  const uint8_t *p = io_mem_data (d->io, &len);
  cr_expect_eq (p[host + 100], 0, "freed block punched");
  vhd_close (d);
  free (view), free (pimg.bytes), free (cimg.bytes);
}

Test (unmap, differencing_shows_the_parent_again)
{
  struct image pimg, cimg;
  uint8_t *view = malloc (8 * MiB), *pview = malloc (8 * MiB);
  struct vhd_disk *d = child_with_blocks (&pimg, &cimg, view);

  for (uint64_t i = 0; i < 8 * MiB; i++)
    pview[i] = pattern (i, 1);
  cr_assert_eq (d->ops->unmap (d, MiB, 2 * MiB), 0, "%s", vhd_get_error ());
  memcpy (view + MiB, pview + MiB, 2 * MiB);
  cr_expect_eq (state_at (d, MiB), LAYER_ABSENT);
  cr_expect_eq (bat_state (d, 1), VHDX_PAYLOAD_NOT_PRESENT);
  expect_view (d, view, 8 * MiB, "after unmap");
  /* A block that becomes partially present again starts with a clear
   * slice of the sector bitmap: only the new sector is ours. */
  fill (d, view, MiB + 8192, 512, 3);
  cr_expect_eq (bat_state (d, 1), VHDX_PAYLOAD_PARTIALLY_PRESENT);
  expect_view (d, view, 8 * MiB, "block partially present again");
  cr_assert_eq (vhd_flush (d), 0);
  snapshot (d, &cimg);
  vhd_close (d);
  d = must_open (&cimg, VHD_OPEN_RDONLY);
  expect_view (d, view, 8 * MiB, "reopened");
  vhd_close (d);
  free (view), free (pview), free (pimg.bytes), free (cimg.bytes);
}

Test (unmap, base_disk_reads_zeros_and_fixed_refuses)
{
  struct image img, fimg;
  uint8_t *view = malloc (8 * MiB);
  struct vhd_disk *d = full_base (&img, view);

  cr_assert_eq (d->ops->unmap (d, 0, 3 * MiB), 0, "%s", vhd_get_error ());
  memset (view, 0, 3 * MiB);
  expect_view (d, view, 8 * MiB, "after unmap");
  cr_expect_eq (vhd_get_allocated_bytes (d), (int64_t) (5 * MiB));
  vhd_close (d);
  make_image (&fimg, VHD_TYPE_FIXED, 4 * MiB, MiB, NULL);
  d = must_open (&fimg, 0);
  cr_expect_eq (d->ops->unmap (d, 0, MiB), -1);
  cr_expect_eq (vhd_get_errno (), ENOTSUP);
  vhd_close (d);
  free (view), free (img.bytes), free (fimg.bytes);
}

/* --- compact and defragment (memory) -------------------------------------- */

/* Close d into img; the driver's check finds nothing in it, and it
 * reopens read-only showing view. */
static void
close_check_reopen (struct vhd_disk *d, struct image *img,
                    const uint8_t *view, uint64_t len)
{
  int seen = 0;

  snapshot (d, img);
  vhd_close (d);
  cr_expect_eq (mem_check (img->bytes, img->len, false, &seen), 0);
  d = must_open (img, VHD_OPEN_RDONLY);
  expect_view (d, view, len, "reopened");
  vhd_close (d);
}

Test (defragment, blocks_move_into_the_holes)
{
  struct image img;
  uint8_t *view = malloc (8 * MiB);
  struct vhd_disk *d = full_base (&img, view);

  /* blocks 0, 2, 4 hold zeros: compact unmaps them, then the blocks
   * above move down and the file ends after headers, log, metadata, BAT
   * and 5 blocks */
  fill (d, view, 0, MiB, 0);
  fill (d, view, 2 * MiB, MiB, 0);
  fill (d, view, 4 * MiB, MiB, 0);
  cr_assert_eq (vhd_compact (d, NULL, NULL), 0, "%s", vhd_get_error ());
  expect_view (d, view, 8 * MiB, "after compact");
  cr_expect_eq (mem_len (d), 4 * MiB + 5 * MiB, "file is %zu bytes",
                mem_len (d));
  for (uint64_t b = 0; b < 8; b++)
    if (bat_state (d, b) == VHDX_PAYLOAD_FULLY_PRESENT)
      cr_expect_lt (bat_offset (d, b), 9 * MiB);
  close_check_reopen (d, &img, view, 8 * MiB);
  free (view), free (img.bytes);
}

/* Blocks 0, 2 and 4 hold zeros: they leave the BAT and nothing else
 * moves; the file keeps its length. */
Test (defragment, no_move_only_drops_blocks)
{
  struct image img;
  uint8_t *view = malloc (8 * MiB);
  struct vhd_disk *d = full_base (&img, view);
  uint64_t where[8];
  size_t len = mem_len (d);

  fill (d, view, 0, MiB, 0);
  fill (d, view, 2 * MiB, MiB, 0);
  fill (d, view, 4 * MiB, MiB, 0);
  for (uint64_t b = 0; b < 8; b++)
    where[b] = bat_offset (d, b);
  cr_assert_eq (vhd_compact_ex (d, VHD_COMPACT_NO_MOVE, NULL, NULL), 0, "%s",
                vhd_get_error ());
  expect_view (d, view, 8 * MiB, "after compact");
  for (uint64_t b = 0; b < 8; b++)
    if (b == 0 || b == 2 || b == 4)
      cr_expect_eq (bat_state (d, b), VHDX_PAYLOAD_NOT_PRESENT, "block %"
                    PRIu64, b);
    else
      cr_expect_eq (bat_offset (d, b), where[b], "block %" PRIu64 " moved",
                    b);
  cr_expect_eq (mem_len (d), len, "file is %zu bytes", mem_len (d));
  close_check_reopen (d, &img, view, 8 * MiB);
  free (view), free (img.bytes);
}

Test (defragment, differencing_keeps_what_differs)
{
  struct image pimg, cimg;
  uint8_t *view = malloc (8 * MiB);
  struct vhd_disk *d = child_with_blocks (&pimg, &cimg, view);
  uint8_t *same = malloc (MiB);

  /* block 1: the parent's bytes again; block 2: zeros (over parent
   * data, so it stays as a ZERO block); block 6: one sector (partial) */
  for (uint64_t i = 0; i < MiB; i++)
    same[i] = pattern (MiB + i, 1);
  cr_assert_eq (vhd_pwrite (d, same, MiB, MiB), 0);
  memcpy (view + MiB, same, MiB);
  fill (d, view, 2 * MiB, MiB, 0);
  fill (d, view, 6 * MiB + 512, 512, 4);
  cr_assert_eq (vhd_compact (d, NULL, NULL), 0, "%s", vhd_get_error ());
  expect_view (d, view, 8 * MiB, "after compact");
  cr_expect_eq (bat_state (d, 1), VHDX_PAYLOAD_NOT_PRESENT);
  cr_expect_eq (bat_state (d, 2), VHDX_PAYLOAD_ZERO);
  cr_expect_eq (bat_state (d, 6), VHDX_PAYLOAD_PARTIALLY_PRESENT);
  /* header, log, metadata, BAT, one sector bitmap, blocks 3, 4, 6 */
  cr_expect_eq (mem_len (d), 4 * MiB + MiB + 3 * MiB, "file is %zu bytes",
                mem_len (d));
  snapshot (d, &cimg);
  vhd_close (d);
  d = must_open (&cimg, VHD_OPEN_RDONLY);
  expect_view (d, view, 8 * MiB, "reopened");
  vhd_close (d);
  free (same), free (view), free (pimg.bytes), free (cimg.bytes);
}

/* Compact leaves the space of the blocks it drops unpunched for its
 * moves to overwrite: block 1 holds the parent's bytes again (dropped),
 * block 7 data then zeros over parent data.  *old: block 1's place. */
static void
stale_destination (struct image *pimg, struct image *cimg, uint8_t *view,
                   uint64_t *old)
{
  struct vhd_disk *d = child_with_blocks (pimg, cimg, view);
  uint8_t *same = malloc (MiB);

  *old = bat_offset (d, 1);
  for (uint64_t i = 0; i < MiB; i++)
    same[i] = pattern (MiB + i, 1);
  cr_assert_eq (vhd_pwrite (d, same, MiB, MiB), 0);
  memcpy (view + MiB, same, MiB);
  fill (d, view, 7 * MiB, MiB / 2, 5);
  fill (d, view, 7 * MiB + MiB / 2, MiB / 2, 0);
  cr_assert_eq (vhd_flush (d), 0);
  snapshot (d, cimg);
  vhd_close (d);
  free (same);
}

/* Block 7 moves into block 1's place and must read zeros in its second
 * half there, not the parent's bytes block 1 left. */
Test (defragment, a_move_clears_the_old_bytes_it_does_not_overwrite)
{
  struct image pimg, cimg;
  uint8_t *view = malloc (8 * MiB);
  struct vhd_disk *d;
  uint64_t old;

  stale_destination (&pimg, &cimg, view, &old);
  d = must_open (&cimg, 0);
  cr_assert_eq (vhd_compact (d, NULL, NULL), 0, "%s", vhd_get_error ());
  cr_expect_eq (bat_state (d, 1), VHDX_PAYLOAD_NOT_PRESENT);
  cr_expect_eq (bat_offset (d, 7), old, "block 7 took block 1's place");
  expect_view (d, view, 8 * MiB, "after compact");
  snapshot (d, &cimg);
  vhd_close (d);
  d = must_open (&cimg, VHD_OPEN_RDONLY);
  expect_view (d, view, 8 * MiB, "reopened");
  vhd_close (d);
  free (view), free (pimg.bytes), free (cimg.bytes);
}

/* A BAT moved to the end by a resize, and a 2 MiB hole below it: the
 * blocks shift down (two-step when the hole is shorter than the object)
 * and the BAT comes back down too. */
Test (defragment, packs_a_moved_bat)
{
  struct image img;
  uint8_t *view = calloc (1, 16 * MiB);
  struct vhd_disk *d;
  struct vhdx *v;
  uint64_t big = 130 * GiB;

  make_image (&img, VHD_TYPE_DYNAMIC, 16 * MiB, MiB, NULL);
  d = must_open (&img, 0);
  for (uint64_t b = 0; b < 5; b++)
    fill (d, view, b * 3 * MiB, MiB, (unsigned) b + 1);
  cr_assert_eq (vhd_resize (d, big, 0), 0, "%s", vhd_get_error ());
  v = d->priv;
  cr_expect_gt (v->regions.bat->offset, 4 * MiB, "BAT moved to the end");
  cr_expect_eq (v->regions.bat->length, 2 * MiB);
  uint8_t *tail = read_range (d, big - MiB, MiB);
  for (uint64_t i = 0; i < MiB; i++)
    cr_assert_eq (tail[i], 0);
  free (tail);
  cr_assert_eq (vhd_compact (d, NULL, NULL), 0, "%s", vhd_get_error ());
  /* header section, log, metadata, BAT (2 MiB), five blocks */
  cr_expect_eq (mem_len (d), 3 * MiB + 2 * MiB + 5 * MiB, "file is %zu",
                mem_len (d));
  uint8_t *got = read_range (d, 0, 16 * MiB);
  cr_expect_eq (memcmp (got, view, 16 * MiB), 0);
  free (got);
  snapshot (d, &img);
  vhd_close (d);
  int seen = 0;
  cr_expect_eq (mem_check (img.bytes, img.len, false, &seen), 0);
  d = must_open (&img, VHD_OPEN_RDONLY);
  cr_expect_eq (d->size, big);
  got = read_range (d, 0, 16 * MiB);
  cr_expect_eq (memcmp (got, view, 16 * MiB), 0);
  free (got);
  vhd_close (d);
  free (view), free (img.bytes);
}

/* --- resize (memory) ------------------------------------------------------ */

Test (resize, grows_and_new_space_reads_zeros)
{
  struct image img;
  uint8_t *view = calloc (1, 24 * MiB);
  struct vhd_disk *d = full_base (&img, view);

  cr_assert_eq (vhd_resize (d, 24 * MiB, 0), 0, "%s", vhd_get_error ());
  expect_view (d, view, 24 * MiB, "grown");
  fill (d, view, 20 * MiB, 4096, 5);
  cr_assert_eq (vhd_flush (d), 0);
  snapshot (d, &img);
  vhd_close (d);
  d = must_open (&img, VHD_OPEN_RDONLY);
  expect_view (d, view, 24 * MiB, "reopened");
  vhd_close (d);
  free (view), free (img.bytes);
}

/* A writer that left the disk's last block short at the end of the
 * file (the disk ends inside it), with stale bytes after the disk's end:
 * 10 MiB + 512 of 4 MiB blocks, block 2 at 8 MiB, the file cut at
 * 11 MiB. */
static void
short_last_block (struct image *img, uint8_t *view)
{
  uint64_t old = 10 * MiB + 512;
  struct vhd_disk *d;

  make_image (img, VHD_TYPE_DYNAMIC, old, 4 * MiB, NULL);
  d = must_open (img, 0);
  fill (d, view, 0, MiB, 2);
  fill (d, view, 8 * MiB, 2 * MiB + 512, 1);
  cr_assert_eq (vhd_flush (d), 0);
  cr_assert_eq (bat_offset (d, 2), 8 * MiB);
  snapshot (d, img);
  vhd_close (d);
  memset (img->bytes + 8 * MiB + (old - 8 * MiB), 0xee,
          3 * MiB - (old - 8 * MiB));
  img->len = 11 * MiB;
}

/* Growing gives the last block its whole space: the stale bytes after
 * the old end read as zeros and the file covers the block. */
Test (resize, grows_a_short_last_block)
{
  struct image img;
  uint8_t *view = calloc (1, 16 * MiB);
  struct vhd_disk *d;

  short_last_block (&img, view);
  d = must_open (&img, 0);
  expect_view (d, view, 10 * MiB + 512, "as written");
  cr_assert_eq (vhd_resize (d, 16 * MiB, 0), 0, "%s", vhd_get_error ());
  expect_view (d, view, 16 * MiB, "grown");
  cr_expect_geq (mem_len (d), 12 * MiB);
  cr_assert_eq (vhd_flush (d), 0);
  snapshot (d, &img);
  vhd_close (d);
  int seen = 0;
  cr_expect_eq (mem_check (img.bytes, img.len, false, &seen), 0);
  d = must_open (&img, VHD_OPEN_RDONLY);
  expect_view (d, view, 16 * MiB, "reopened");
  vhd_close (d);
  free (view), free (img.bytes);
}

Test (resize, shrink_refused_with_data_past_the_end)
{
  struct image img;
  uint8_t *view = malloc (8 * MiB);
  struct vhd_disk *d = full_base (&img, view);

  snapshot (d, &img);
  cr_expect_eq (vhd_resize (d, 4 * MiB, 0), -1);
  cr_expect_eq (vhd_get_errno (), EINVAL);
  cr_expect_eq (vhd_resize (d, 4 * MiB, VHD_RESIZE_SHRINK), -1);
  cr_expect_eq (vhd_get_errno (), ENOTEMPTY);
  size_t len;
  const uint8_t *p = io_mem_data (d->io, &len);
  cr_expect_eq (len, img.len);
  cr_expect_eq (memcmp (p, img.bytes, len), 0, "refused shrink wrote");
  vhd_close (d);
  free (view), free (img.bytes);
}

Test (resize, shrinks_and_grows_back_with_zeros)
{
  struct image img;
  uint8_t *view = calloc (1, 16 * MiB);
  struct vhd_disk *d;

  make_image (&img, VHD_TYPE_DYNAMIC, 16 * MiB, MiB, NULL);
  d = must_open (&img, 0);
  fill (d, view, 0, 3 * MiB, 1);
  fill (d, view, 10 * MiB, 4096, 2);
  cr_assert_eq (vhd_discard (d, 10 * MiB, MiB), 0);  /* ZERO past the end */
  memset (view + 10 * MiB, 0, MiB);
  cr_assert_eq (vhd_resize (d, 5 * MiB - 1024, VHD_RESIZE_SHRINK), 0, "%s",
                vhd_get_error ());
  expect_view (d, view, 5 * MiB - 1024, "shrunk");
  cr_expect_eq (mem_len (d), 4 * MiB + 3 * MiB, "file is %zu", mem_len (d));
  cr_assert_eq (vhd_resize (d, 16 * MiB, 0), 0, "%s", vhd_get_error ());
  expect_view (d, view, 16 * MiB, "grown back");
  cr_assert_eq (vhd_flush (d), 0);
  snapshot (d, &img);
  vhd_close (d);
  d = must_open (&img, VHD_OPEN_RDONLY);
  expect_view (d, view, 16 * MiB, "reopened");
  vhd_close (d);
  free (view), free (img.bytes);
}

Test (resize, differencing_and_fixed)
{
  struct image pimg, cimg, fimg;
  uint8_t *view = calloc (1, 12 * MiB);
  struct vhd_disk *d = child_with_blocks (&pimg, &cimg, view);

  cr_assert_eq (vhd_resize (d, 12 * MiB, 0), 0, "%s", vhd_get_error ());
  expect_view (d, view, 12 * MiB, "differencing grown past its parent");
  vhd_close (d);
  make_image (&fimg, VHD_TYPE_FIXED, 4 * MiB, MiB, NULL);
  d = must_open (&fimg, 0);
  memset (view, 0, 12 * MiB);
  fill (d, view, 0, 4096, 1);
  cr_assert_eq (vhd_resize (d, 6 * MiB, 0), 0, "%s", vhd_get_error ());
  expect_view (d, view, 6 * MiB, "fixed grown");
  cr_expect_eq (vhd_get_allocated_bytes (d), (int64_t) (6 * MiB));
  cr_expect_eq (bat_state (d, 5), VHDX_PAYLOAD_FULLY_PRESENT);
  vhd_close (d);
  free (view), free (pimg.bytes), free (cimg.bytes), free (fimg.bytes);
}

/* --- files: compact, resize, commit, rebase, discard, with qemu-img ------ */

static char test_dir[] = "/tmp/libvhd-vhdx-ops-XXXXXX";

static void
dir_setup (void)
{
  cr_assert_not_null (mkdtemp (test_dir));
}

static void
dir_teardown (void)
{
  char cmd[256];

  snprintf (cmd, sizeof cmd, "rm -rf %s", test_dir);
  cr_expect_eq (system (cmd), 0);
}

static char *
path_of (const char *name)
{
  static char buf[8][256];
  static unsigned n;
  char *p = buf[n++ % 8];

  snprintf (p, 256, "%s/%s", test_dir, name);
  return p;
}

static struct vhd_disk *
create_file (const char *name, uint64_t size, uint32_t block_size,
             const char *parent)
{
  struct vhd_create_opts *o = vhd_create_opts_new ();
  struct vhd_disk *d;

  cr_assert_not_null (o);
  cr_assert_eq (vhd_create_opts_set_format (o, VHD_FORMAT_VHDX), 0);
  if (parent)
    cr_assert_eq (vhd_create_opts_set_parent (o, path_of (parent)), 0);
  else
    cr_assert_eq (vhd_create_opts_set_size (o, size), 0);
  if (block_size)
    cr_assert_eq (vhd_create_opts_set_block_size (o, block_size), 0);
  d = vhd_create (path_of (name), o);
  cr_assert_not_null (d, "create %s: %s", name, vhd_get_error ());
  vhd_create_opts_free (o);
  return d;
}

static uint64_t
file_size (const char *name)
{
  struct stat st;

  cr_assert_eq (stat (path_of (name), &st), 0, "%s", name);
  return (uint64_t) st.st_size;
}

static uint64_t
file_blocks (const char *name)
{
  return host_bytes (path_of (name));
}

static uint8_t *
file_bytes (const char *name, size_t *len)
{
  FILE *f = fopen (path_of (name), "rb");
  uint8_t *buf;
  long n;

  cr_assert_not_null (f, "%s", name);
  fseek (f, 0, SEEK_END);
  n = ftell (f);
  rewind (f);
  buf = malloc (n ? (size_t) n : 1);
  cr_assert_not_null (buf);
  cr_assert_eq (fread (buf, 1, (size_t) n, f), (size_t) n);
  fclose (f);
  *len = (size_t) n;
  return buf;
}

static void
write_file (const char *name, const uint8_t *p, size_t len)
{
  FILE *f = fopen (path_of (name), "wb");

  cr_assert_not_null (f, "%s", name);
  cr_assert_eq (fwrite (p, 1, len, f), len);
  cr_assert_eq (fclose (f), 0);
}

static bool
have_qemu (void)
{
  static int have = -1;

  if (have < 0)
    have = system ("command -v qemu-img > /dev/null 2>&1") == 0;
  if (!have)
    cr_log_warn ("qemu-img not installed: not compared");
  return have;
}

/* qemu-img check accepts image, and qemu-img compare sees the raw bytes
 * of view in it. */
static void
qemu_verify (const char *image, const uint8_t *view, uint64_t size)
{
  char cmd[1024];
  int r;

  if (!have_qemu ())
    return;
  snprintf (cmd, sizeof cmd, "qemu-img check -q -f vhdx %s",
            path_of (image));
  r = system (cmd);
  cr_assert_eq (r, 0, "qemu-img check %s: status %d", image, r);
  if (view == NULL)
    return;
  write_file ("qemu-view.raw", view, size);
  snprintf (cmd, sizeof cmd, "qemu-img compare -q -f vhdx -F raw %s %s",
            path_of (image), path_of ("qemu-view.raw"));
  r = system (cmd);
  cr_assert_eq (r, 0, "qemu-img compare %s: differs (status %d)", image, r);
}

static void
expect_file_view (const char *name, const uint8_t *view, uint64_t size)
{
  struct vhd_disk *d = vhd_open (path_of (name), VHD_OPEN_RDONLY);

  cr_assert_not_null (d, "%s: %s", name, vhd_get_error ());
  expect_view (d, view, size, name);
  vhd_close (d);
}

/* Discard [off, off + len) of d and of view. */
static void
discard_range (struct vhd_disk *d, uint8_t *view, uint64_t off, uint64_t len)
{
  cr_assert_eq (vhd_discard (d, off, len), 0, "%s", vhd_get_error ());
  memset (view + off, 0, len);
}

/* The host bytes of name once d is flushed (before: for the log). */
static uint64_t
flushed_blocks (struct vhd_disk *d, const char *name, const char *what,
                uint64_t before)
{
  uint64_t after;

  cr_assert_eq (vhd_flush (d), 0, "%s", vhd_get_error ());
  after = file_blocks (name);
  cr_log_info ("%s: host allocation %" PRIu64 " -> %" PRIu64 " bytes", what,
               before, after);
  return after;
}

/* Close d; the file reads view through us and through qemu-img. */
static void
close_and_verify (struct vhd_disk *d, const char *name, const uint8_t *view,
                  uint64_t size)
{
  vhd_close (d);
  expect_file_view (name, view, size);
  qemu_verify (name, view, size);
}

TestSuite (files, .init = dir_setup, .fini = dir_teardown);

/* Half of the blocks hold zeros: compact gives their space back. */
static void
compact_half (uint64_t size, uint32_t bs)
{
  uint8_t *view = malloc (size);
  struct vhd_disk *d = create_file ("half.vhdx", size, bs, NULL);
  uint64_t before, after, b, blocks;

  bs = (uint32_t) vhd_get_block_size (d);
  blocks = size / bs;
  fill (d, view, 0, size, 1);
  for (b = 0; b < blocks; b += 2)
    fill (d, view, b * bs, bs, 0);
  vhd_close (d);
  before = file_size ("half.vhdx");
  d = vhd_open (path_of ("half.vhdx"), 0);
  cr_assert_not_null (d, "%s", vhd_get_error ());
  cr_assert_eq (vhd_compact (d, NULL, NULL), 0, "%s", vhd_get_error ());
  vhd_close (d);
  after = file_size ("half.vhdx");
  cr_log_info ("compact, %" PRIu64 " MiB disk, %" PRIu32 " MiB blocks, half "
               "zero: file %" PRIu64 " -> %" PRIu64 " bytes (%" PRIu64
               " -> %" PRIu64 " MiB)", size >> 20, bs >> 20, before, after,
               before >> 20, after >> 20);
  cr_expect_eq (after, 4 * MiB + blocks / 2 * bs);
  cr_expect_lt (after, before);
  expect_file_view ("half.vhdx", view, size);
  qemu_verify ("half.vhdx", view, size);
  free (view);
}

Test (files, compact_half_zero_2mib_blocks, .timeout = 120)
{
  compact_half (64 * MiB, 2 * MiB);
}

Test (files, compact_half_zero_default_blocks, .timeout = 120)
{
  compact_half (128 * MiB, 0);
}

Test (files, resize_grow_and_shrink, .timeout = 120)
{
  uint8_t *view = calloc (1, 96 * MiB);
  struct vhd_disk *d = create_file ("r.vhdx", 64 * MiB, MiB, NULL);
  size_t len1, len2;

  fill (d, view, 0, 8 * MiB, 1);
  fill (d, view, 60 * MiB, MiB, 2);
  cr_assert_eq (vhd_resize (d, 96 * MiB, 0), 0, "%s", vhd_get_error ());
  fill (d, view, 90 * MiB, MiB, 3);
  vhd_close (d);
  expect_file_view ("r.vhdx", view, 96 * MiB);
  qemu_verify ("r.vhdx", view, 96 * MiB);
  /* refused: data at 90 MiB; the file stays byte-identical */
  uint8_t *a = file_bytes ("r.vhdx", &len1);
  d = vhd_open (path_of ("r.vhdx"), 0);
  cr_assert_not_null (d);
  cr_expect_eq (vhd_resize (d, 40 * MiB, VHD_RESIZE_SHRINK), -1);
  cr_expect_eq (vhd_get_errno (), ENOTEMPTY);
  vhd_close (d);
  uint8_t *b = file_bytes ("r.vhdx", &len2);
  cr_expect (len1 == len2 && memcmp (a, b, len1) == 0,
             "refused shrink changed the file");
  free (a), free (b);
  d = vhd_open (path_of ("r.vhdx"), 0);
  cr_assert_not_null (d);
  cr_assert_eq (vhd_discard (d, 60 * MiB, 36 * MiB), 0);
  cr_assert_eq (vhd_resize (d, 40 * MiB, VHD_RESIZE_SHRINK), 0, "%s",
                vhd_get_error ());
  vhd_close (d);
  expect_file_view ("r.vhdx", view, 40 * MiB);
  qemu_verify ("r.vhdx", view, 40 * MiB);
  free (view);
}

/* A differencing child committed into its VHDX parent: the child is
 * empty, the view unchanged, and the child records the parent's new
 * DataWriteGuid (it opens against it). */
/* The first data change renews the DataWriteGuid, also when it is an
 * overwrite of stored data (which later goes past the driver, in place)
 * and a zero-length write came first. */
Test (files, first_overwrite_renews_the_data_guid, .timeout = 120)
{
  uint8_t *view = malloc (4 * MiB), buf[4096];
  struct vhd_disk *d = create_file ("guid.vhdx", 4 * MiB, MiB, NULL);
  char before[40], after[40];

  fill (d, view, 0, 4 * MiB, 1);
  vhd_close (d);
  d = vhd_open (path_of ("guid.vhdx"), 0);
  cr_assert_not_null (d, "%s", vhd_get_error ());
  uuid_to_string (d->link_id, before);
  cr_assert_eq (vhd_pwrite (d, buf, 0, 0), 0, "%s", vhd_get_error ());
  memset (buf, 0x5c, sizeof buf);
  cr_assert_eq (vhd_pwrite (d, buf, sizeof buf, MiB), 0, "%s",
                vhd_get_error ());
  memcpy (view + MiB, buf, sizeof buf);
  vhd_close (d);
  d = vhd_open (path_of ("guid.vhdx"), VHD_OPEN_RDONLY);
  cr_assert_not_null (d, "%s", vhd_get_error ());
  uuid_to_string (d->link_id, after);
  cr_expect_str_neq (before, after, "the DataWriteGuid was renewed");
  expect_view (d, view, 4 * MiB, "after the overwrite");
  vhd_close (d);
  free (view);
}

/* Compacting a differencing VHDX whose block of zeros hides parent data
 * makes it a ZERO block: the view is the same, so its DataWriteGuid
 * stays and its own children still open. */
Test (files, compact_keeps_grandchildren_valid, .timeout = 120)
{
  uint8_t *view = malloc (8 * MiB);
  struct vhd_disk *d = create_file ("base.vhdx", 8 * MiB, MiB, NULL), *c;
  char before[40], after[40];

  fill (d, view, 0, 8 * MiB, 1);
  vhd_close (d);
  c = create_file ("mid.vhdx", 0, MiB, "base.vhdx");
  fill (c, view, 2 * MiB, MiB, 0);      /* zeros over the parent's data */
  fill (c, view, 5 * MiB, MiB, 2);
  uuid_to_string (c->link_id, before);
  vhd_close (c);
  c = create_file ("top.vhdx", 0, MiB, "mid.vhdx");
  vhd_close (c);
  c = vhd_open (path_of ("mid.vhdx"), 0);
  cr_assert_not_null (c, "%s", vhd_get_error ());
  cr_assert_eq (vhd_compact (c, NULL, NULL), 0, "%s", vhd_get_error ());
  uuid_to_string (c->link_id, after);
  expect_view (c, view, 8 * MiB, "mid after compact");
  vhd_close (c);
  cr_expect_str_eq (before, after, "compact kept the DataWriteGuid");
  expect_file_view ("top.vhdx", view, 8 * MiB);
  free (view);
}

Test (files, commit_into_a_vhdx_parent, .timeout = 120)
{
  uint8_t *view = malloc (16 * MiB);
  struct vhd_disk *d = create_file ("base.vhdx", 16 * MiB, MiB, NULL), *c;
  char before[40], after[40];

  fill (d, view, 0, 16 * MiB, 1);
  vhd_close (d);
  c = create_file ("child.vhdx", 0, MiB, "base.vhdx");
  fill (c, view, 3 * MiB + 512, 5000, 2);
  fill (c, view, 8 * MiB, 2 * MiB, 0);
  fill (c, view, 12 * MiB, MiB, 3);
  vhd_close (c);
  d = vhd_open (path_of ("base.vhdx"), VHD_OPEN_RDONLY);
  cr_assert_not_null (d);
  uuid_to_string (d->link_id, before);
  vhd_close (d);
  c = vhd_open (path_of ("child.vhdx"), 0);
  cr_assert_not_null (c, "%s", vhd_get_error ());
  cr_assert_eq (vhd_commit (c, NULL, NULL), 0, "%s", vhd_get_error ());
  cr_expect_eq (vhd_get_allocated_bytes (c), 0);
  expect_view (c, view, 16 * MiB, "child after commit");
  vhd_close (c);
  d = vhd_open (path_of ("base.vhdx"), VHD_OPEN_RDONLY);
  cr_assert_not_null (d);
  uuid_to_string (d->link_id, after);
  cr_expect_str_neq (before, after, "the parent's DataWriteGuid changed");
  vhd_close (d);
  c = vhd_open (path_of ("child.vhdx"), VHD_OPEN_RDONLY);
  cr_assert_not_null (c, "child opens against the parent: %s",
                      vhd_get_error ());
  uuid_to_string (c->parent_link_id, before);
  cr_expect_str_eq (before, after);
  expect_view (c, view, 16 * MiB, "child reopened");
  vhd_close (c);
  expect_file_view ("base.vhdx", view, 16 * MiB);
  qemu_verify ("base.vhdx", view, 16 * MiB);
  free (view);
}

Test (files, rebase_moved_wrong_and_unsafe, .timeout = 120)
{
  uint8_t *view = malloc (8 * MiB);
  struct vhd_disk *d = create_file ("p.vhdx", 8 * MiB, MiB, NULL), *c;
  char moved[300];

  fill (d, view, 0, 8 * MiB, 1);
  vhd_close (d);
  c = create_file ("c.vhdx", 0, MiB, "p.vhdx");
  fill (c, view, MiB, 4096, 2);
  vhd_close (c);
  d = create_file ("other.vhdx", 8 * MiB, MiB, NULL);
  vhd_close (d);
  cr_assert_eq (mkdir (path_of ("sub"), 0755), 0);
  snprintf (moved, sizeof moved, "%s", path_of ("sub/p.vhdx"));
  cr_assert_eq (rename (path_of ("p.vhdx"), moved), 0);
  cr_expect_null (vhd_open (path_of ("c.vhdx"), VHD_OPEN_RDONLY));
  c = vhd_open (path_of ("c.vhdx"), VHD_OPEN_NO_PARENT);
  cr_assert_not_null (c, "%s", vhd_get_error ());
  cr_expect_eq (vhd_rebase (c, path_of ("other.vhdx"), 0), -1);
  cr_expect_eq (vhd_get_errno (), EBADMSG);
  cr_assert_eq (vhd_rebase (c, moved, 0), 0, "%s", vhd_get_error ());
  vhd_close (c);
  expect_file_view ("c.vhdx", view, 8 * MiB);
  /* unsafe: any parent is accepted and recorded */
  c = vhd_open (path_of ("c.vhdx"), 0);
  cr_assert_not_null (c, "%s", vhd_get_error ());
  cr_assert_eq (vhd_rebase (c, path_of ("other.vhdx"), VHD_REBASE_UNSAFE),
                0, "%s", vhd_get_error ());
  vhd_close (c);
  memset (view, 0, 8 * MiB);
  for (uint64_t i = 0; i < 4096; i++)
    view[MiB + i] = pattern (MiB + i, 2);
  expect_file_view ("c.vhdx", view, 8 * MiB);
  free (view);
}

Test (files, discard_gives_host_space_back, .timeout = 120)
{
  struct vhd_disk *d = create_file ("sparse.vhdx", 32 * MiB, MiB, NULL);
  uint8_t *view = calloc (1, 32 * MiB);
  uint64_t before, after;

  fill (d, view, 0, 16 * MiB, 1);
  cr_assert_eq (vhd_flush (d), 0);
  before = file_blocks ("sparse.vhdx");
  discard_range (d, view, 2 * MiB, 8 * MiB);
  after = flushed_blocks (d, "sparse.vhdx", "discard of 8 MiB", before);
  /* Up to 1 MiB of slack: the log entry may land in a part of the log
   * not yet allocated, and punching splits extents (tree blocks). */
  cr_expect_leq (after + 7 * MiB, before);
  close_and_verify (d, "sparse.vhdx", view, 32 * MiB);
  free (view);
}

/* A discard of part of a block leaves the block allocated and punches
 * its bytes in the file; a zero without MAY_UNMAP, of part of a block or
 * of a whole one, keeps them allocated. */
Test (files, discard_of_part_of_a_block_gives_host_space_back,
      .timeout = 120)
{
  struct vhd_disk *d = create_file ("part.vhdx", 16 * MiB, 4 * MiB, NULL);
  uint8_t *view = calloc (1, 16 * MiB);
  uint64_t before, after, kept;

  fill (d, view, 0, 16 * MiB, 1);
  cr_assert_eq (vhd_flush (d), 0);
  before = file_blocks ("part.vhdx");
  /* 2 MiB inside block 1, and a piece across blocks 2 and 3 */
  discard_range (d, view, 5 * MiB, 2 * MiB);
  discard_range (d, view, 11 * MiB + 512, 2 * MiB);
  for (uint64_t b = 1; b < 4; b++)
    cr_expect_eq (bat_state (d, b), VHDX_PAYLOAD_FULLY_PRESENT,
                  "block %" PRIu64, b);
  expect_view (d, view, 16 * MiB, "after the discards");
  after = flushed_blocks (d, "part.vhdx", "partial discards of 4 MiB",
                          before);
  cr_expect_leq (after + 3 * MiB, before);
  cr_assert_eq (vhd_write_zeroes (d, 14 * MiB, MiB, 0), 0, "%s",
                vhd_get_error ());
  memset (view + 14 * MiB, 0, MiB);
  /* a whole block that holds data, without MAY_UNMAP: zeroed in place,
   * so even a fast zero succeeds, and the block stays */
  cr_assert_eq (vhd_write_zeroes (d, 8 * MiB, 4 * MiB, VHD_ZERO_FAST), 0,
                "%s", vhd_get_error ());
  memset (view + 8 * MiB, 0, 4 * MiB);
  cr_expect_eq (bat_state (d, 2), VHDX_PAYLOAD_FULLY_PRESENT);
  kept = flushed_blocks (d, "part.vhdx", "zeros without MAY_UNMAP", after);
  cr_expect_geq (kept, after, "a zero without MAY_UNMAP gave space back");
  close_and_verify (d, "part.vhdx", view, 16 * MiB);
  free (view);
}

/* A fixed VHDX keeps its space: zeros, even with MAY_UNMAP, are made in
 * place without writing data (so a fast zero succeeds). */
Test (files, fixed_zeroes_in_place_and_keeps_its_space, .timeout = 120)
{
  struct vhd_create_opts *o = vhd_create_opts_new ();
  uint8_t *view = calloc (1, 8 * MiB);
  struct vhd_disk *d;
  uint64_t before, after;

  cr_assert_not_null (o);
  cr_assert_eq (vhd_create_opts_set_format (o, VHD_FORMAT_VHDX), 0);
  cr_assert_eq (vhd_create_opts_set_type (o, VHD_TYPE_FIXED), 0);
  cr_assert_eq (vhd_create_opts_set_size (o, 8 * MiB), 0);
  d = vhd_create (path_of ("fixed.vhdx"), o);
  vhd_create_opts_free (o);
  cr_assert_not_null (d, "%s", vhd_get_error ());
  fill (d, view, 0, 8 * MiB, 3);
  cr_assert_eq (vhd_flush (d), 0);
  before = file_blocks ("fixed.vhdx");
  cr_assert_eq (vhd_write_zeroes (d, MiB + 512, 3 * MiB,
                                  VHD_ZERO_FAST | VHD_ZERO_MAY_UNMAP), 0,
                "%s", vhd_get_error ());
  memset (view + MiB + 512, 0, 3 * MiB);
  after = flushed_blocks (d, "fixed.vhdx", "zeros in a fixed VHDX", before);
  cr_expect_geq (after, before, "a fixed VHDX gave space back");
  close_and_verify (d, "fixed.vhdx", view, 8 * MiB);
  free (view);
}

/* In a differencing disk, present sectors are punched and still hide
 * the parent; a discard that also covers sectors the child does not
 * hold is written as zeros (the bitmap then marks them present). */
Test (files, differencing_partial_discard_still_hides_the_parent,
      .timeout = 120)
{
  struct vhd_disk *d = create_file ("pbase.vhdx", 8 * MiB, MiB, NULL);
  uint8_t *view = calloc (1, 8 * MiB);

  fill (d, view, 0, 8 * MiB, 1);
  vhd_close (d);
  d = create_file ("pchild.vhdx", 0, MiB, "pbase.vhdx");
  fill (d, view, 2 * MiB + 64 * 1024, 256 * 1024, 2);
  cr_assert_eq (bat_state (d, 2), VHDX_PAYLOAD_PARTIALLY_PRESENT);
  discard_range (d, view, 2 * MiB + 128 * 1024, 64 * 1024); /* punched */
  /* over the edge of what the child holds: zeros over the parent too */
  discard_range (d, view, 2 * MiB + 256 * 1024, 256 * 1024);
  expect_view (d, view, 8 * MiB, "child after the discards");
  cr_assert_eq (vhd_flush (d), 0);
  vhd_close (d);
  expect_file_view ("pchild.vhdx", view, 8 * MiB); /* qemu: no VHDX chains */
  free (view);
}

/* qemu-io reads 0x77 over [129 GiB, +1 MiB) and zeros after it. */
static void
qemu_reads_77 (const char *name)
{
  char cmd[1024];

  if (!have_qemu ())
    return;
  snprintf (cmd, sizeof cmd, "qemu-io -r -f vhdx -c 'read -P 0x77 %" PRIu64
            " 1048576' -c 'read -P 0 %" PRIu64 " 1048576' -c 'read -P 0 %"
            PRIu64 " 1048576' %s > %s 2>&1", 129 * GiB, 129 * GiB + MiB,
            8 * MiB, path_of (name), path_of ("qemu-io.out"));
  cr_assert_eq (system (cmd), 0);
  snprintf (cmd, sizeof cmd, "test $(grep -c '^read 1048576/1048576' %s) "
            "-eq 3 && ! grep -q 'verification failed' %s",
            path_of ("qemu-io.out"), path_of ("qemu-io.out"));
  cr_expect_eq (system (cmd), 0, "qemu-io reads other data in %s", name);
}

/* A BAT too small for the new size moves; qemu-img reads the result. */
Test (files, resize_moves_the_bat, .timeout = 120)
{
  struct vhd_disk *d = create_file ("bigger.vhdx", 8 * MiB, MiB, NULL);
  uint8_t *view = calloc (1, 8 * MiB);

  fill (d, view, 0, 8 * MiB, 1);
  cr_assert_eq (vhd_resize (d, 130 * GiB, 0), 0, "%s", vhd_get_error ());
  uint8_t *b77 = malloc (MiB);
  memset (b77, 0x77, MiB);
  cr_assert_eq (vhd_pwrite (d, b77, MiB, 129 * GiB), 0);
  free (b77);
  vhd_close (d);
  qemu_verify ("bigger.vhdx", NULL, 0);
  qemu_reads_77 ("bigger.vhdx");
  d = vhd_open (path_of ("bigger.vhdx"), 0);
  cr_assert_not_null (d);
  uint8_t *got = read_range (d, 0, 8 * MiB);
  cr_expect_eq (memcmp (got, view, 8 * MiB), 0);
  free (got);
  cr_assert_eq (vhd_compact (d, NULL, NULL), 0, "%s", vhd_get_error ());
  vhd_close (d);
  cr_expect_eq (file_size ("bigger.vhdx"), 3 * MiB + 2 * MiB + 9 * MiB);
  qemu_verify ("bigger.vhdx", NULL, 0);
  qemu_reads_77 ("bigger.vhdx");
  free (view);
}

/* --- check ---------------------------------------------------------------- */

struct findings {
  int seen;
  unsigned n;
  char last[512];
  char all[8192];
};

static void
collect (void *opaque, int severity, const char *msg)
{
  struct findings *f = opaque;
  size_t used = strlen (f->all);

  f->seen |= severity;
  f->n++;
  snprintf (f->last, sizeof f->last, "%s", msg);
  snprintf (f->all + used, sizeof f->all - used, "[%d] %s\n", severity,
            msg);
  cr_log_info ("check [%d]: %s", severity, msg);
}

static int
check_file (const char *name, unsigned flags, struct findings *f)
{
  memset (f, 0, sizeof *f);
  return vhd_check (path_of (name), flags, collect, f);
}

/* A dynamic image with blocks 0..3 written, as bytes. */
static uint8_t *
checked_image (size_t *len, uint8_t *view)
{
  struct vhd_disk *d = create_file ("chk.vhdx", 8 * MiB, MiB, NULL);
  uint8_t *bytes;

  fill (d, view, 0, 4 * MiB, 1);
  vhd_close (d);
  bytes = file_bytes ("chk.vhdx", len);
  return bytes;
}

/* File offset of BAT entry i in our layout (BAT at 3 MiB). */
#define BAT_ENTRY(i) (3 * MiB + (i) * 8)

Test (files, check_clean_and_damaged_header)
{
  struct findings f;
  size_t len;
  uint8_t *view = calloc (1, 8 * MiB), *bytes = checked_image (&len, view);

  cr_expect_eq (check_file ("chk.vhdx", 0, &f), 0, "clean: %s", f.last);
  bytes[64 * 1024 + 100] ^= 0x55; /* header 1 */
  write_file ("chk.vhdx", bytes, len);
  cr_expect_eq (check_file ("chk.vhdx", 0, &f), VHD_CHECK_CORRUPT);
  cr_expect_eq (check_file ("chk.vhdx", VHD_CHECK_REPAIR, &f), 0);
  cr_expect (f.seen & VHD_CHECK_REPAIRED, "repair reported");
  cr_expect_eq (check_file ("chk.vhdx", 0, &f), 0, "repaired: %s", f.last);
  /* region table 1 */
  free (bytes);
  bytes = file_bytes ("chk.vhdx", &len);
  bytes[192 * 1024 + 20] ^= 1;
  write_file ("chk.vhdx", bytes, len);
  cr_expect_eq (check_file ("chk.vhdx", 0, &f), VHD_CHECK_CORRUPT);
  cr_expect_eq (check_file ("chk.vhdx", VHD_CHECK_REPAIR, &f), 0);
  cr_expect_eq (check_file ("chk.vhdx", 0, &f), 0, "repaired: %s", f.last);
  expect_file_view ("chk.vhdx", view, 8 * MiB);
  qemu_verify ("chk.vhdx", view, 8 * MiB);
  free (bytes), free (view);
}

Test (files, check_bat_entry_past_the_end)
{
  struct findings f;
  size_t len;
  uint8_t *view = calloc (1, 8 * MiB), *bytes = checked_image (&len, view);

  put_le64 (bytes + BAT_ENTRY (2),
            (64 * MiB) | VHDX_PAYLOAD_FULLY_PRESENT);
  write_file ("chk.vhdx", bytes, len);
  cr_expect_eq (check_file ("chk.vhdx", 0, &f), VHD_CHECK_CORRUPT);
  cr_expect (strstr (f.all, "bytes 2097152..3145728") != NULL, "%s",
             f.all);
  cr_expect_eq (check_file ("chk.vhdx", VHD_CHECK_REPAIR, &f), 0, "%s",
                f.all);
  cr_expect (f.seen & VHD_CHECK_REPAIRED);
  cr_expect_eq (check_file ("chk.vhdx", 0, &f), 0, "%s", f.all);
  memset (view + 2 * MiB, 0, MiB);
  expect_file_view ("chk.vhdx", view, 8 * MiB);
  qemu_verify ("chk.vhdx", view, 8 * MiB);
  free (bytes), free (view);
}

Test (files, check_overlapping_blocks)
{
  struct findings f;
  size_t len;
  uint8_t *view = calloc (1, 8 * MiB), *bytes = checked_image (&len, view);

  put_le64 (bytes + BAT_ENTRY (3), get_le64 (bytes + BAT_ENTRY (1)));
  write_file ("chk.vhdx", bytes, len);
  cr_expect_eq (check_file ("chk.vhdx", 0, &f) & VHD_CHECK_CORRUPT,
                VHD_CHECK_CORRUPT);
  cr_expect (strstr (f.all, "overlaps") != NULL, "%s", f.all);
  cr_expect_eq (check_file ("chk.vhdx", VHD_CHECK_REPAIR, &f)
                  & VHD_CHECK_CORRUPT, VHD_CHECK_CORRUPT,
                "overlaps are not repaired");
  free (bytes), free (view);
}

Test (files, check_leaked_tail)
{
  struct findings f;
  size_t len;
  uint8_t *view = calloc (1, 8 * MiB), *bytes = checked_image (&len, view);
  uint8_t *longer = calloc (1, len + 3 * MiB);

  memcpy (longer, bytes, len);
  write_file ("chk.vhdx", longer, len + 3 * MiB);
  cr_expect_eq (check_file ("chk.vhdx", 0, &f), VHD_CHECK_LEAKS);
  cr_expect_eq (check_file ("chk.vhdx", VHD_CHECK_REPAIR, &f), 0);
  cr_expect_eq (file_size ("chk.vhdx"), len);
  cr_expect_eq (check_file ("chk.vhdx", 0, &f), 0);
  expect_file_view ("chk.vhdx", view, 8 * MiB);
  free (longer), free (bytes), free (view);
}

/* A crash right after a log entry became live: found by crashing a
 * write at each point until the image has a pending log. */
static bool
pending_log_image (struct image *out, uint8_t *view)
{
  struct image img;
  struct vhd_disk *d;

  make_image (&img, VHD_TYPE_DYNAMIC, 8 * MiB, MiB, NULL);
  d = must_open (&img, 0);
  fill (d, view, 0, MiB, 1);
  cr_assert_eq (vhd_flush (d), 0);
  snapshot (d, &img);
  vhd_close (d);
  for (long n = 0; n < 40; n++) {
    d = must_open (&img, 0);
    io_mem_fail_after (d->io, n, false);
    uint8_t buf[4096];
    memset (buf, 0x42, sizeof buf);
    /* The write's BAT change goes through the log at the flush. */
    int r = vhd_pwrite (d, buf, sizeof buf, 5 * MiB);
    if (r == 0)
      r = vhd_flush (d);
    memset (out, 0, sizeof *out);
    snapshot (d, out);
    vhd_close (d);
    if (r == 0)
      break;
    d = must_open (out, VHD_OPEN_RDONLY);
    bool dirty = vhd_get_log_dirty (d);
    vhd_close (d);
    if (dirty) {
      memset (view + 5 * MiB, 0x42, 4096);
      free (img.bytes);
      return true;
    }
    free (out->bytes);
  }
  free (img.bytes);
  return false;
}

Test (files, check_pending_log_replayed_by_repair)
{
  struct findings f;
  struct image img;
  uint8_t *view = calloc (1, 8 * MiB);

  cr_assert (pending_log_image (&img, view), "no crash left a live log");
  write_file ("log.vhdx", img.bytes, img.len);
  cr_expect_eq (check_file ("log.vhdx", 0, &f) & VHD_CHECK_CORRUPT,
                VHD_CHECK_CORRUPT);
  size_t len;
  uint8_t *same = file_bytes ("log.vhdx", &len);
  cr_expect (len == img.len && memcmp (same, img.bytes, len) == 0,
             "a check without repair wrote");
  cr_expect_eq (check_file ("log.vhdx", VHD_CHECK_REPAIR, &f)
                  & VHD_CHECK_CORRUPT, 0);
  cr_expect (f.seen & VHD_CHECK_REPAIRED);
  check_file ("log.vhdx", VHD_CHECK_REPAIR, &f); /* a leak may be left */
  cr_expect_eq (check_file ("log.vhdx", 0, &f), 0, "%s", f.last);
  expect_file_view ("log.vhdx", view, 8 * MiB);
  qemu_verify ("log.vhdx", view, 8 * MiB);
  free (same), free (img.bytes), free (view);
}

/* --- crash safety --------------------------------------------------------- */

typedef int (*op_fn) (struct vhd_disk *d);

/* What the disk may read after a crash: its old or its new size, and
 * per sector the old or the new view (view_len bytes each); past the
 * views (a large grow) only zeros, checked over 4 MiB and the last MiB. */
struct outcome {
  const uint8_t *old_view, *new_view;
  uint64_t view_len, old_size, new_size;
};

static void
check_sectors (struct vhd_disk *d, const struct outcome *o, long n,
               bool tear, const char *how)
{
  uint64_t size = d->size, common = MIN (size, o->view_len);
  uint8_t *got;

  cr_assert (size == o->old_size || size == o->new_size,
             "crash at %ld%s, %s: size %" PRIu64, n, tear ? " (torn)" : "",
             how, size);
  got = read_range (d, 0, common);
  for (uint64_t s = 0; s < common; s += 512)
    if (memcmp (got + s, o->old_view + s, 512) != 0
        && memcmp (got + s, o->new_view + s, 512) != 0)
      cr_assert_fail ("crash at write %ld%s, %s: sector at %" PRIu64
                      " is neither old nor new", n, tear ? " (torn)" : "",
                      how, s);
  free (got);
  if (size > common) {
    uint64_t len = MIN (size - common, 4 * MiB);
    got = read_range (d, common, len);
    for (uint64_t i = 0; i < len; i++)
      cr_assert_eq (got[i], 0, "crash at %ld, %s: new space not zero", n,
                    how);
    free (got);
    got = read_range (d, size - MiB, MiB);
    for (uint64_t i = 0; i < MiB; i++)
      cr_assert_eq (got[i], 0, "crash at %ld, %s: tail not zero", n, how);
    free (got);
  }
}

/* After a crash: opens read-only and read-write (replaying the log),
 * reads old or new, checks clean, and the operation then completes. */
static void
verify_crashed (struct image *crashed, op_fn op, const struct outcome *o,
                long n, bool tear)
{
  struct vhd_disk *d = open_image (crashed, VHD_OPEN_RDONLY);
  int seen = 0;

  cr_assert_not_null (d, "crash at write %ld%s: read-only open: %s", n,
                      tear ? " (torn)" : "", vhd_get_error ());
  check_sectors (d, o, n, tear, "read-only");
  vhd_close (d);
  d = open_image (crashed, 0);
  cr_assert_not_null (d, "crash at write %ld%s: open: %s", n,
                      tear ? " (torn)" : "", vhd_get_error ());
  check_sectors (d, o, n, tear, "read-write");
  cr_assert_eq (vhd_flush (d), 0);
  size_t len;
  const uint8_t *p = io_mem_data (d->io, &len);
  int found = mem_check (p, len, false, &seen);
  cr_assert_eq (found & VHD_CHECK_CORRUPT, 0, "crash at write %ld%s: check "
                "finds corruption", n, tear ? " (torn)" : "");
  cr_assert_eq (op (d), 0, "crash at write %ld%s: redo: %s", n,
                tear ? " (torn)" : "", vhd_get_error ());
  check_sectors (d, &(struct outcome) { o->new_view, o->new_view,
                                        o->view_len, o->new_size,
                                        o->new_size },
                 n, tear, "redone");
  cr_assert_eq (d->size, o->new_size);
  vhd_close (d);
}

static void
crash_test (const char *name, struct image *img, op_fn op,
            const struct outcome *o)
{
  struct vhd_disk *d = must_open (img, 0);
  struct image crashed = { NULL, 0, img->parent };
  long total, n, base;
  int tear;

  base = io_mem_write_count (d->io);
  cr_assert_eq (op (d), 0, "clean run: %s", vhd_get_error ());
  cr_assert_eq (vhd_flush (d), 0);
  total = io_mem_write_count (d->io) - base;
  check_sectors (d, &(struct outcome) { o->new_view, o->new_view,
                                        o->view_len, o->new_size,
                                        o->new_size },
                 -1, false, "clean run");
  vhd_close (d);
  cr_log_info ("%s: %ld write points, each cut cleanly and torn", name,
               total);
  for (n = 0; n <= total; n++)
    for (tear = 0; tear < 2; tear++) {
      d = must_open (img, 0);
      io_mem_fail_after (d->io, n, tear);
      if (op (d) == 0 && vhd_flush (d) == -1)
        cr_log_info ("crash at %ld: in the final flush", n);
      snapshot (d, &crashed);
      vhd_close (d);
      verify_crashed (&crashed, op, o, n, tear);
    }
  free (crashed.bytes);
}

static int
op_compact (struct vhd_disk *d)
{
  return vhd_compact (d, NULL, NULL);
}

static int
op_compact_no_move (struct vhd_disk *d)
{
  return vhd_compact_ex (d, VHD_COMPACT_NO_MOVE, NULL, NULL);
}

/* The 8 MiB base with blocks 0, 3 and `last` zeroed, compacted by op. */
static void
crash_compact_base (const char *name, op_fn op, uint64_t last)
{
  struct image img;
  uint8_t *view = malloc (8 * MiB);
  struct vhd_disk *d = full_base (&img, view);

  fill (d, view, 0, MiB, 0);
  fill (d, view, 3 * MiB, MiB, 0);
  fill (d, view, last * MiB, MiB, 0);
  cr_assert_eq (vhd_flush (d), 0);
  snapshot (d, &img);
  vhd_close (d);
  crash_test (name, &img, op,
              &(struct outcome) { view, view, 8 * MiB, 8 * MiB, 8 * MiB });
  free (view), free (img.bytes);
}

Test (crash, compact_base, .timeout = 600)
{
  crash_compact_base ("compact (base)", op_compact, 4);
}

Test (crash, compact_no_move, .timeout = 600)
{
  crash_compact_base ("compact --no-move (base)", op_compact_no_move, 7);
}

Test (crash, compact_into_unpunched_space, .timeout = 600)
{
  struct image pimg, cimg;
  uint8_t *view = malloc (8 * MiB);
  uint64_t old;

  stale_destination (&pimg, &cimg, view, &old);
  crash_test ("compact moving into a dropped block's place", &cimg,
              op_compact, &(struct outcome) { view, view, 8 * MiB, 8 * MiB,
                                              8 * MiB });
  free (view), free (pimg.bytes), free (cimg.bytes);
}

Test (crash, compact_differencing, .timeout = 600)
{
  struct image pimg, cimg;
  uint8_t *view = malloc (8 * MiB), *same = malloc (MiB);
  struct vhd_disk *d = child_with_blocks (&pimg, &cimg, view);

  for (uint64_t i = 0; i < MiB; i++)
    same[i] = pattern (MiB + i, 1);
  cr_assert_eq (vhd_pwrite (d, same, MiB, MiB), 0);
  memcpy (view + MiB, same, MiB);
  fill (d, view, 3 * MiB, MiB, 0);
  fill (d, view, 6 * MiB + 512, 1024, 4);
  cr_assert_eq (vhd_flush (d), 0);
  snapshot (d, &cimg);
  vhd_close (d);
  crash_test ("compact (differencing)", &cimg, op_compact,
              &(struct outcome) { view, view, 8 * MiB, 8 * MiB, 8 * MiB });
  free (same), free (view), free (pimg.bytes), free (cimg.bytes);
}

static int
op_discard (struct vhd_disk *d)
{
  return vhd_discard (d, 2 * MiB, 5 * MiB);
}

static int
op_unmap (struct vhd_disk *d)
{
  return d->ops->unmap (d, 2 * MiB, 5 * MiB);
}

Test (crash, discard_and_unmap, .timeout = 600)
{
  struct image img;
  uint8_t *old = malloc (8 * MiB), *new;
  struct vhd_disk *d = full_base (&img, old);

  snapshot (d, &img);
  vhd_close (d);
  new = copy_of (old, 8 * MiB);
  memset (new + 2 * MiB, 0, 5 * MiB);
  crash_test ("discard", &img, op_discard,
              &(struct outcome) { old, new, 8 * MiB, 8 * MiB, 8 * MiB });
  crash_test ("unmap", &img, op_unmap,
              &(struct outcome) { old, new, 8 * MiB, 8 * MiB, 8 * MiB });
  free (old), free (new), free (img.bytes);
}

static int
op_grow_short_block (struct vhd_disk *d)
{
  return vhd_resize (d, 16 * MiB, 0);
}

Test (crash, resize_grow_with_a_short_last_block, .timeout = 600)
{
  struct image img;
  uint8_t *view = calloc (1, 16 * MiB);

  short_last_block (&img, view);
  crash_test ("grow with a short last block", &img, op_grow_short_block,
              &(struct outcome) { view, view, 16 * MiB, 10 * MiB + 512,
                                  16 * MiB });
  free (view), free (img.bytes);
}

/* 2 MiB blocks after a 1 MiB hole (where the BAT was before a grow moved
 * it), the BAT after them. */
static void
hole_under_2mib_blocks (struct image *img, uint8_t *view)
{
  struct vhd_disk *d;

  make_image (img, VHD_TYPE_DYNAMIC, 16 * MiB, 2 * MiB, NULL);
  d = must_open (img, 0);
  for (uint64_t b = 0; b < 3; b++)
    fill (d, view, b * 4 * MiB, 2 * MiB, (unsigned) b + 1);
  cr_assert_eq (vhd_resize (d, 300 * GiB, 0), 0, "%s", vhd_get_error ());
  cr_assert_eq (vhd_flush (d), 0);
  snapshot (d, img);
  vhd_close (d);
}

/* Closing a hole shorter than a block would move every block above it
 * twice (through the end of the file) to save less than a block of a
 * file whose hole is punched anyway: blocks stay, and so does the BAT,
 * which the hole cannot hold either. */
Test (defragment, blocks_do_not_shift_into_a_smaller_hole)
{
  struct image img;
  uint8_t *view = calloc (1, 16 * MiB);
  struct vhd_disk *d;
  size_t before;

  hole_under_2mib_blocks (&img, view);
  d = must_open (&img, 0);
  before = mem_len (d);
  cr_assert_eq (vhd_compact (d, NULL, NULL), 0, "%s", vhd_get_error ());
  cr_expect_eq (bat_offset (d, 0), 4 * MiB);
  cr_expect_eq (((struct vhdx *) d->priv)->regions.bat->offset, 10 * MiB);
  cr_expect_eq (mem_len (d), before, "file is %zu", mem_len (d));
  cr_expect_eq (mem_len (d), 4 * MiB + 6 * MiB + 2 * MiB);
  uint8_t *got = read_range (d, 0, 16 * MiB);
  cr_expect_eq (memcmp (got, view, 16 * MiB), 0);
  free (got);
  vhd_close (d);
  free (view), free (img.bytes);
}

/* 12 blocks (one sector of data each) above a 12-block hole that a
 * discard left: every block moves down, in three batches of switches
 * (the batch lowered to 4 moves), and the file is cut. */
static void
blocks_over_a_long_hole (struct image *img, uint8_t *view)
{
  struct vhd_disk *d;

  make_image (img, VHD_TYPE_DYNAMIC, 24 * MiB, MiB, NULL);
  d = must_open (img, 0);
  for (uint64_t b = 0; b < 24; b++)
    fill (d, view, b * MiB + 512, 512, (unsigned) b + 1);
  cr_assert_eq (vhd_discard (d, 0, 12 * MiB), 0, "%s", vhd_get_error ());
  memset (view, 0, 12 * MiB);
  cr_assert_eq (vhd_flush (d), 0);
  snapshot (d, img);
  vhd_close (d);
  vhdx_move_batch = 4;
}

Test (defragment, moves_blocks_in_batches)
{
  struct image img;
  uint8_t *view = calloc (1, 24 * MiB);
  struct vhd_disk *d;

  blocks_over_a_long_hole (&img, view);
  d = must_open (&img, 0);
  cr_assert_eq (vhd_compact (d, NULL, NULL), 0, "%s", vhd_get_error ());
  /* header section, log, metadata, BAT, 12 blocks */
  cr_expect_eq (mem_len (d), 4 * MiB + 12 * MiB, "file is %zu",
                mem_len (d));
  for (uint64_t b = 12; b < 24; b++)
    cr_expect_lt (bat_offset (d, b), 16 * MiB, "block %" PRIu64, b);
  uint8_t *got = read_range (d, 0, 24 * MiB);
  cr_expect_eq (memcmp (got, view, 24 * MiB), 0);
  free (got);
  snapshot (d, &img);
  vhd_close (d);
  int seen = 0;
  cr_expect_eq (mem_check (img.bytes, img.len, false, &seen), 0);
  free (view), free (img.bytes);
}

Test (crash, compact_moves_blocks_in_batches, .timeout = 600)
{
  struct image img;
  uint8_t *view = calloc (1, 24 * MiB);

  blocks_over_a_long_hole (&img, view);
  crash_test ("compact moving 12 blocks in three batches", &img, op_compact,
              &(struct outcome) { view, view, 24 * MiB, 24 * MiB,
                                  24 * MiB });
  free (view), free (img.bytes);
}

static int
op_grow_big (struct vhd_disk *d)
{
  return vhd_resize (d, 130 * GiB, 0);
}

Test (crash, resize_grow_moves_the_bat, .timeout = 600)
{
  struct image img;
  uint8_t *view = calloc (1, 8 * MiB);
  struct vhd_disk *d = full_base (&img, view);

  snapshot (d, &img);
  vhd_close (d);
  crash_test ("grow with the BAT moved", &img, op_grow_big,
              &(struct outcome) { view, view, 8 * MiB, 8 * MiB,
                                  130 * GiB });
  free (view), free (img.bytes);
}

static int
op_shrink (struct vhd_disk *d)
{
  return vhd_resize (d, 3 * MiB, VHD_RESIZE_SHRINK);
}

Test (crash, resize_shrink, .timeout = 600)
{
  struct image pimg, cimg;
  uint8_t *view = malloc (8 * MiB);
  struct vhd_disk *d;

  d = full_base (&pimg, view);
  vhd_close (d);
  make_image (&cimg, 0, 0, MiB, &pimg);
  d = must_open (&cimg, 0);
  fill (d, view, 512, 1024, 2);
  fill (d, view, 2 * MiB, 4096, 3);
  /* a block written and unmapped, and a zero block, past the new end */
  fill (d, NULL, 5 * MiB, 512, 4);
  cr_assert_eq (d->ops->unmap (d, 5 * MiB, MiB), 0);
  cr_assert_eq (vhd_discard (d, 6 * MiB, MiB), 0);
  memset (view + 6 * MiB, 0, MiB);
  cr_assert_eq (vhd_flush (d), 0);
  snapshot (d, &cimg);
  vhd_close (d);
  crash_test ("shrink (differencing)", &cimg, op_shrink,
              &(struct outcome) { view, view, 8 * MiB, 8 * MiB,
                                  3 * MiB });
  free (view), free (pimg.bytes), free (cimg.bytes);
}

static int
op_compact_big (struct vhd_disk *d)
{
  return vhd_compact (d, NULL, NULL);
}

/* The BAT at the end of the file after a grow, a hole where it was:
 * compact moves blocks down (one by one) and the BAT in two steps. */
Test (crash, compact_moves_the_bat, .timeout = 600)
{
  struct image img;
  uint8_t *view = calloc (1, 16 * MiB);
  struct vhd_disk *d;

  make_image (&img, VHD_TYPE_DYNAMIC, 16 * MiB, MiB, NULL);
  d = must_open (&img, 0);
  for (uint64_t b = 0; b < 3; b++)
    fill (d, view, b * 5 * MiB, MiB, (unsigned) b + 1);
  cr_assert_eq (vhd_resize (d, 130 * GiB, 0), 0, "%s", vhd_get_error ());
  cr_assert_eq (vhd_flush (d), 0);
  snapshot (d, &img);
  vhd_close (d);
  crash_test ("compact moving the BAT", &img, op_compact_big,
              &(struct outcome) { view, view, 16 * MiB, 130 * GiB,
                                  130 * GiB });
  free (view), free (img.bytes);
}

static int
op_set_parent (struct vhd_disk *d)
{
  static char rel[600], abs_path[700];
  struct create_params p = { .type = VHD_TYPE_DIFFERENCING, .size = d->size,
                             .parent = d->parent };

  memset (rel, 'x', 500);
  memcpy (rel + 500, "/base.vhdx", 11);
  snprintf (abs_path, sizeof abs_path, "/somewhere/else/%s", rel);
  p.parent_rel_path = rel;
  p.parent_abs_path = abs_path;
  p.parent_path = abs_path;
  return d->ops->set_parent (d, &p);
}

/* A user metadata item right after the parent locator (our layout puts
 * the metadata region at 2 MiB, the locator as entry 5): returns the
 * locator's offset. */
static uint32_t
add_user_item (struct image *img)
{
  uint8_t *md = img->bytes + 2 * MiB, *e = md + VHDX_MD_ENTRIES;
  uint32_t off = get_le32 (e + 5 * VHDX_MDE_SIZE + VHDX_MDE_OFFSET);
  uint32_t end = off + get_le32 (e + 5 * VHDX_MDE_SIZE + VHDX_MDE_LENGTH);

  cr_assert_eq (get_le16 (md + VHDX_MD_COUNT), 6);
  memset (e + 6 * VHDX_MDE_SIZE, 0x5a, 16);             /* its GUID */
  put_le32 (e + 6 * VHDX_MDE_SIZE + VHDX_MDE_OFFSET, end);
  put_le32 (e + 6 * VHDX_MDE_SIZE + VHDX_MDE_LENGTH, 16);
  put_le32 (e + 6 * VHDX_MDE_SIZE + VHDX_MDE_FLAGS, VHDX_MD_FLAG_USER);
  put_le16 (md + VHDX_MD_COUNT, 7);
  memset (md + end, 0xab, 16);
  return off;
}

/* A locator that no longer fits where the old one was (a user item
 * after it is in the way) moves within the metadata region, in one log
 * entry with its table entry. */
Test (crash, set_parent, .timeout = 600)
{
  struct image pimg, cimg;
  uint8_t *view = malloc (8 * MiB);
  struct vhd_disk *d = child_with_blocks (&pimg, &cimg, view);

  snapshot (d, &cimg);
  vhd_close (d);
  uint32_t loc_off = add_user_item (&cimg);
  crash_test ("set_parent", &cimg, op_set_parent,
              &(struct outcome) { view, view, 8 * MiB, 8 * MiB, 8 * MiB });
  d = must_open (&cimg, 0);
  cr_assert_eq (op_set_parent (d), 0, "%s", vhd_get_error ());
  cr_assert_eq (vhd_flush (d), 0);
  snapshot (d, &cimg);
  vhd_close (d);
  const uint8_t *md = cimg.bytes + 2 * MiB, *e = md + VHDX_MD_ENTRIES;
  cr_expect_neq (get_le32 (e + 5 * VHDX_MDE_SIZE + VHDX_MDE_OFFSET), loc_off,
                 "the locator moved");
  for (unsigned i = 0; i < 16; i++)
    cr_expect_eq (md[get_le32 (e + 6 * VHDX_MDE_SIZE + VHDX_MDE_OFFSET) + i],
                  0xab, "the user item is intact");
  d = must_open (&cimg, VHD_OPEN_RDONLY);
  cr_expect_eq (strncmp (d->parent_candidates[0], ".\\xxxx", 6), 0, "%s",
                d->parent_candidates[0]);
  cr_expect_eq (strncmp (d->parent_candidates[1], "\\somewhere\\else\\", 16),
                0, "%s", d->parent_candidates[1]);
  expect_view (d, view, 8 * MiB, "after set_parent");
  vhd_close (d);
  free (view), free (pimg.bytes), free (cimg.bytes);
}

/* An image qemu-img made (its own layout, a 1 MiB log), written by
 * qemu-io: our compact gives the zero blocks back and qemu reads the
 * result the same. */
Test (files, compact_a_qemu_image, .timeout = 120)
{
  char cmd[1024];
  uint8_t *view = calloc (1, 32 * MiB);
  struct vhd_disk *d;
  uint64_t before, after;

  if (!have_qemu ())
    return;
  snprintf (cmd, sizeof cmd, "qemu-img create -q -f vhdx -o subformat="
            "dynamic,block_size=1M,log_size=1M %s 32M && qemu-io -f vhdx "
            "-c 'write -P 0x11 0 8M' -c 'write -P 0 2M 3M' "
            "-c 'write -P 0x22 20M 1M' %s > /dev/null", path_of ("q.vhdx"),
            path_of ("q.vhdx"));
  cr_assert_eq (system (cmd), 0);
  memset (view, 0x11, 8 * MiB);
  memset (view + 2 * MiB, 0, 3 * MiB);
  memset (view + 20 * MiB, 0x22, MiB);
  before = file_size ("q.vhdx");
  d = vhd_open (path_of ("q.vhdx"), 0);
  cr_assert_not_null (d, "%s", vhd_get_error ());
  cr_assert_eq (vhd_compact (d, NULL, NULL), 0, "%s", vhd_get_error ());
  vhd_close (d);
  after = file_size ("q.vhdx");
  cr_log_info ("compact of a qemu-img image: %" PRIu64 " -> %" PRIu64
               " bytes", before, after);
  cr_expect_leq (after + 3 * MiB, before);
  expect_file_view ("q.vhdx", view, 32 * MiB);
  qemu_verify ("q.vhdx", view, 32 * MiB);
  struct findings f;
  cr_expect_eq (check_file ("q.vhdx", 0, &f) & VHD_CHECK_CORRUPT, 0, "%s",
                f.all);
  free (view);
}

/* The check reads structures it does not trust: random damage to the
 * header section, log, metadata and BAT of a written image never stops
 * it (it reports instead), with or without repair, and what repair
 * leaves without corruption opens. */
Test (check, survives_random_damage, .timeout = 300)
{
  struct image img;
  uint8_t *view = malloc (8 * MiB);
  struct vhd_disk *d = full_base (&img, view);
  uint64_t seed = 0x9e3779b97f4a7c15U;

  vhd_close (d);
  for (unsigned round = 0; round < 400; round++) {
    uint8_t *bytes = copy_of (img.bytes, img.len);
    unsigned flips = 1 + round % 8;
    int seen = 0, found;
    for (unsigned k = 0; k < flips; k++) {
      seed = seed * 6364136223846793005U + 1442695040888963407U;
      uint64_t at = (seed >> 16) % (4 * MiB);
      if (round % 3 == 0)
        at = at % (320 * 1024);                /* the header section */
      bytes[at] ^= (uint8_t) (1U << (seed >> 61));
    }
    mem_check (bytes, img.len, false, &seen);
    struct check_ctx c = { true, 0, NULL, NULL };
    struct io *io = io_mem_new (bytes, img.len);
    cr_assert_eq (vhdx_format_ops.check (io, &c), 0, "round %u: %s", round,
                  vhd_get_error ());
    found = c.found;
    size_t len;
    const uint8_t *p = io_mem_data (io, &len);
    if (!(found & VHD_CHECK_CORRUPT)) {
      struct vhd_disk *r = disk_open_io (io_mem_new (p, len), "rep.vhdx",
                                         VHD_OPEN_RDONLY, NULL);
      cr_expect_not_null (r, "round %u: repaired image does not open: %s",
                          round, vhd_get_error ());
      vhd_close (r);
    }
    io->ops->close (io);
    free (bytes);
  }
  free (view), free (img.bytes);
}
