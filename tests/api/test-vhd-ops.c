/* test-vhd-ops.c: the VHD driver's operation hooks (libvhd/vhd/vhd-zero.c,
 * vhd-defrag.c, vhd-resize.c, vhd-parent.c, vhd-check.c) through the
 * public calls: write zeroes and discard, compact, resize, commit and
 * rebase.  Each compares the whole disk before and after; the file based
 * ones also ask qemu-img, an independent reader.  Check is tested in
 * test-vhd-check.c, crash safety in test-vhd-ops-crash.c.
 */
#undef NDEBUG /* Keep test strong */
#include "api/host-bytes.h"
#include "api/vhd-ops-helpers.h"

#define DISK (8 * MiB)
#define BLOCK (2 * MiB)

/* --- write zeroes and discard ------------------------------------------- */

/* A dynamic 8 MiB disk with its four blocks written. */
static struct vhd_disk *
full_dynamic (struct image *img, uint8_t *view)
{
  struct vhd_disk *d;

  make_image (img, VHD_TYPE_DYNAMIC, DISK, BLOCK, NULL);
  d = must_open (img, 0);
  fill (d, view, 0, DISK, 1);
  cr_assert_eq (vhd_flush (d), 0);
  return d;
}

Test (zero, discard_frees_whole_blocks)
{
  struct image img;
  uint8_t *view = malloc (DISK);
  struct vhd_disk *d = full_dynamic (&img, view);
  struct vhd_state *s = d->priv;
  uint64_t bb = vhd_block_bytes (s), host1, size_before;
  size_t len;

  host1 = (uint64_t) vhd_bat_get (&s->bat, 1) * SECTOR_SIZE;
  cr_assert_eq (vhd_discard (d, BLOCK, BLOCK), 0, "%s", vhd_get_error ());
  memset (view + BLOCK, 0, BLOCK);
  cr_expect_eq (vhd_bat_get (&s->bat, 1), VHD_BAT_UNUSED);
  cr_expect_eq (state_at (d, BLOCK), LAYER_ABSENT);
  expect_view (d, view, DISK, "after discarding block 1");
  /* Not given back before the BAT is durable. */
  cr_expect_neq (io_mem_data (d->io, &len)[host1 + bb - 1], 0);
  cr_assert_eq (vhd_flush (d), 0, "%s", vhd_get_error ());
  const uint8_t *p = io_mem_data (d->io, &len);
  for (uint64_t i = host1; i < host1 + bb; i++)
    cr_assert_eq (p[i], 0, "freed block byte %" PRIu64 " not punched", i);

  /* The last block in the file: the file gets shorter. */
  size_before = len;
  cr_assert_eq (vhd_discard (d, 3 * BLOCK, BLOCK), 0);
  memset (view + 3 * BLOCK, 0, BLOCK);
  cr_assert_eq (vhd_flush (d), 0, "%s", vhd_get_error ());
  io_mem_data (d->io, &len);
  cr_expect_eq (len, size_before - bb, "file %zu bytes, want %" PRIu64, len,
                size_before - bb);
  cr_expect_eq (len, vhd_live_end (s) + VHD_FTR_SIZE);
  snapshot (d, &img);
  vhd_close (d);
  d = must_open (&img, VHD_OPEN_RDONLY);
  expect_view (d, view, DISK, "reopened after discards");
  vhd_close (d);
  free (view);
  free_image (&img);
}

Test (zero, write_zeroes_without_writing_data)
{
  struct image img;
  uint8_t *view = malloc (DISK);
  struct vhd_disk *d = full_dynamic (&img, view);
  long before = io_mem_write_count (d->io);

  /* Fast (no zero data written), and the block stays allocated. */
  cr_assert_eq (vhd_write_zeroes (d, BLOCK + 64 * KiB, 128 * KiB,
                                  VHD_ZERO_FAST), 0, "%s", vhd_get_error ());
  memset (view + BLOCK + 64 * KiB, 0, 128 * KiB);
  cr_expect_eq (io_mem_write_count (d->io) - before, 1, "one zeroing");
  cr_expect_eq (state_at (d, BLOCK), LAYER_DATA);
  /* A whole block without MAY_UNMAP is zeroed in place too, and stays
   * mapped. */
  cr_assert_eq (vhd_write_zeroes (d, 0, BLOCK, VHD_ZERO_FAST), 0);
  memset (view, 0, BLOCK);
  cr_expect_eq (state_at (d, 0), LAYER_DATA);
  expect_view (d, view, DISK, "after write zeroes");
  cr_assert_eq (vhd_flush (d), 0);
  snapshot (d, &img);
  vhd_close (d);
  d = must_open (&img, VHD_OPEN_RDONLY);
  expect_view (d, view, DISK, "reopened");
  vhd_close (d);
  free (view);
  free_image (&img);
}

Test (zero, fixed_disk_is_zeroed_without_writing_data)
{
  struct image img;
  uint8_t *view = malloc (4 * MiB);
  struct vhd_disk *d;
  size_t len;

  make_image (&img, VHD_TYPE_FIXED, 4 * MiB, 0, NULL);
  d = must_open (&img, 0);
  fill (d, view, 0, 4 * MiB, 2);
  cr_assert_eq (vhd_write_zeroes (d, MiB + 1000, MiB + 7, VHD_ZERO_FAST), 0,
                "%s", vhd_get_error ());
  memset (view + MiB + 1000, 0, MiB + 7);
  expect_view (d, view, 4 * MiB, "fixed disk after write zeroes");
  cr_assert_eq (vhd_flush (d), 0);
  io_mem_data (d->io, &len);
  cr_expect_eq (len, 4 * MiB + VHD_FTR_SIZE);
  vhd_close (d);
  free (view);
  free_image (&img);
}

/* A parent full of its pattern and a child holding part of block 0. */
static void
make_chain (struct image *base, struct image *child, uint8_t *view)
{
  struct vhd_disk *d;

  make_image (base, VHD_TYPE_DYNAMIC, DISK, BLOCK, NULL);
  d = must_open (base, 0);
  fill (d, view, 0, DISK, 3);
  cr_assert_eq (vhd_flush (d), 0);
  snapshot (d, base);
  vhd_close (d);
  make_image (child, VHD_TYPE_DIFFERENCING, DISK, BLOCK, base);
  d = must_open (child, 0);
  fill (d, view, 256 * KiB, 512 * KiB, 4);
  cr_assert_eq (vhd_flush (d), 0);
  snapshot (d, child);
  vhd_close (d);
}

Test (zero, differencing_zeros_hide_the_parent)
{
  struct image base, child;
  uint8_t *view = malloc (DISK);
  struct vhd_disk *d;

  make_chain (&base, &child, view);
  d = must_open (&child, 0);
  /* Allocated block: punched, bits set (also where the parent showed). */
  cr_assert_eq (vhd_write_zeroes (d, 128 * KiB, 256 * KiB, VHD_ZERO_FAST), 0,
                "%s", vhd_get_error ());
  memset (view + 128 * KiB, 0, 256 * KiB);
  /* Unallocated block: without MAY_UNMAP only by writing zeros ... */
  cr_assert_eq (vhd_write_zeroes (d, 2 * BLOCK, 4096, VHD_ZERO_FAST), -1);
  cr_expect_eq (vhd_get_errno (), ENOTSUP);
  /* ... with it, a block of no data and the bits set. */
  cr_assert_eq (vhd_discard (d, 2 * BLOCK + 4096, BLOCK - 8192), 0, "%s",
                vhd_get_error ());
  memset (view + 2 * BLOCK + 4096, 0, BLOCK - 8192);
  cr_expect_eq (state_at (d, 2 * BLOCK + 4096), LAYER_DATA);
  cr_expect_eq (state_at (d, 2 * BLOCK), LAYER_ABSENT);
  expect_view (d, view, DISK, "child after zeroing");
  cr_assert_eq (vhd_flush (d), 0);
  snapshot (d, &child);
  vhd_close (d);
  d = must_open (&child, VHD_OPEN_RDONLY);
  expect_view (d, view, DISK, "child reopened");
  vhd_close (d);
  free (view);
  free_image (&child);
  free_image (&base);
}

Test (zero, unmap_shows_the_parent_again)
{
  struct image base, child;
  uint8_t *view = malloc (DISK);
  struct vhd_disk *d;
  size_t len_before, len;

  make_chain (&base, &child, view);
  len_before = child.len;
  d = must_open (&child, 0);
  cr_assert_eq (d->ops->unmap (d, 512, BLOCK), -1, "unaligned unmap");
  cr_expect_eq (vhd_get_errno (), EINVAL);
  cr_assert_eq (d->ops->unmap (d, 0, BLOCK), 0, "%s", vhd_get_error ());
  /* The child's sectors in block 0 now read the parent's bytes. */
  for (uint64_t i = 256 * KiB; i < 768 * KiB; i++)
    view[i] = pattern (i, 3);
  expect_view (d, view, DISK, "after unmap");
  cr_assert_eq (vhd_flush (d), 0);
  io_mem_data (d->io, &len);
  cr_expect_lt (len, len_before, "the block was cut off the end");
  snapshot (d, &child);
  vhd_close (d);
  d = must_open (&child, VHD_OPEN_RDONLY);
  expect_view (d, view, DISK, "reopened after unmap");
  cr_expect_eq (disk_allocated_bytes (d), 0);
  vhd_close (d);
  free (view);
  free_image (&child);
  free_image (&base);
}

/* On a file: a zero without MAY_UNMAP (NBD's NO_HOLE) keeps the space
 * allocated, a discard gives it back; both read as zeros, and neither
 * writes zero data (a fast zero succeeds).  A raw file is checked by
 * reading it, a VHD by qemu-img. */
static void
zero_keeps_discard_frees (enum vhd_format format, int type)
{
  const char *name = format == VHD_FORMAT_RAW ? "z.raw" : "z.vhd";
  uint8_t *view = malloc (DISK), *raw;
  struct vhd_disk *d;
  uint64_t full, zeroed, discarded;
  size_t len;

  if (format == VHD_FORMAT_RAW) {
    struct vhd_create_opts *o = vhd_create_opts_new ();

    cr_assert_eq (vhd_create_opts_set_format (o, VHD_FORMAT_RAW), 0);
    cr_assert_eq (vhd_create_opts_set_size (o, DISK), 0);
    d = vhd_create (path_of (name), o);
    cr_assert_not_null (d, "%s", vhd_get_error ());
    vhd_create_opts_free (o);
  } else
    d = create_file (name, type, DISK, type == VHD_TYPE_FIXED ? 0 : BLOCK,
                     NULL);
  fill (d, view, 0, DISK, 6);
  cr_assert_eq (vhd_flush (d), 0);
  full = host_bytes (path_of (name));
  cr_assert_eq (vhd_write_zeroes (d, MiB, 2 * MiB, VHD_ZERO_FAST), 0, "%s",
                vhd_get_error ());
  memset (view + MiB, 0, 2 * MiB);
  cr_assert_eq (vhd_flush (d), 0);
  zeroed = host_bytes (path_of (name));
  cr_assert_eq (vhd_write_zeroes (d, 5 * MiB, 2 * MiB,
                                  VHD_ZERO_FAST | VHD_ZERO_MAY_UNMAP), 0,
                "%s", vhd_get_error ());
  memset (view + 5 * MiB, 0, 2 * MiB);
  expect_view (d, view, DISK, "after zero and discard");
  cr_assert_eq (vhd_flush (d), 0);
  discarded = host_bytes (path_of (name));
  cr_log_info ("host bytes: %" PRIu64 " full, %" PRIu64 " after the zero, %"
               PRIu64 " after the discard", full, zeroed, discarded);
  cr_expect_geq (zeroed, full, "the zero without MAY_UNMAP freed space");
  cr_expect_leq (discarded + 2 * MiB - 8 * KiB, zeroed,
                 "the discard did not free its range");
  vhd_close (d);
  if (format == VHD_FORMAT_RAW) {
    raw = file_bytes (name, &len);
    cr_assert_eq (len, DISK);
    cr_expect_eq (first_diff (raw, view, DISK), -1, "the file differs");
    free (raw);
  } else
    qemu_compare (name, view, DISK);
  free (view);
}

TestSuite (zero_files, .init = dir_setup, .fini = dir_teardown);

Test (zero_files, dynamic_zero_keeps_space_discard_frees_it)
{
  zero_keeps_discard_frees (VHD_FORMAT_VHD, VHD_TYPE_DYNAMIC);
}

Test (zero_files, fixed_zero_keeps_space_discard_frees_it)
{
  zero_keeps_discard_frees (VHD_FORMAT_VHD, VHD_TYPE_FIXED);
}

Test (zero_files, raw_zero_keeps_space_discard_frees_it)
{
  zero_keeps_discard_frees (VHD_FORMAT_RAW, VHD_TYPE_FIXED);
}

/* --- compact (unmap + defragment) ---------------------------------------- */

TestSuite (compact, .init = dir_setup, .fini = dir_teardown);

/* 16 MiB in 2 MiB blocks, all written, then blocks 1, 3, 4, 6 zeroed. */
Test (compact, half_the_blocks_zero_gives_half_the_file_back)
{
  uint8_t *view = malloc (16 * MiB);
  struct vhd_disk *d = create_file ("half.vhd", VHD_TYPE_DYNAMIC, 16 * MiB,
                                    BLOCK, NULL);
  static const unsigned zeroed[] = { 1, 3, 4, 6 };
  uint64_t before, after, bb = BLOCK + 512, want;
  unsigned i;

  fill (d, view, 0, 16 * MiB, 5);
  for (i = 0; i < 4; i++) {
    cr_assert_eq (vhd_write_zeroes (d, zeroed[i] * BLOCK, BLOCK, 0), 0);
    memset (view + zeroed[i] * BLOCK, 0, BLOCK);
  }
  vhd_close (d);
  before = file_size_of ("half.vhd");
  d = vhd_open (path_of ("half.vhd"), 0);
  cr_assert_not_null (d);
  cr_assert_eq (vhd_compact (d, NULL, NULL), 0, "%s", vhd_get_error ());
  expect_view (d, view, 16 * MiB, "after compact");
  vhd_close (d);
  after = file_size_of ("half.vhd");
  /* footer copy + header + one BAT sector, four blocks, the footer */
  want = 512 + 1024 + 512 + 4 * bb + 512;
  cr_log_info ("compact of a 16 MiB dynamic VHD with 4 of 8 blocks zero: "
               "file %" PRIu64 " -> %" PRIu64 " bytes", before, after);
  cr_expect_eq (before, 2048 + 8 * bb + 512);
  cr_expect_eq (after, want, "after compact %" PRIu64 " bytes, want %" PRIu64,
                after, want);
  qemu_compare ("half.vhd", view, 16 * MiB);
  cr_expect_eq (vhd_check (path_of ("half.vhd"), 0, NULL, NULL), 0);
  free (view);
}

Test (compact, differencing_keeps_what_differs)
{
  uint8_t *view = malloc (DISK), *under = malloc (DISK);
  struct vhd_disk *base = create_file ("base.vhd", VHD_TYPE_DYNAMIC, DISK,
                                       BLOCK, NULL), *d;
  int64_t a1, a2;

  fill (base, view, 0, DISK, 6);
  memcpy (under, view, DISK);
  vhd_close (base);
  d = create_file ("child.vhd", 0, 0, 0, "base.vhd");
  /* Block 0: the parent's bytes again; block 1: new data; block 2: zeros
   * (the parent has data there); block 3 untouched. */
  fill (d, view, 0, BLOCK, 6);
  fill (d, view, BLOCK + 4096, 64 * KiB, 7);
  cr_assert_eq (vhd_write_zeroes (d, 2 * BLOCK, BLOCK, 0), 0);
  memset (view + 2 * BLOCK, 0, BLOCK);
  expect_view (d, view, DISK, "child before compact");
  a1 = vhd_get_allocated_bytes (d);
  cr_assert_eq (vhd_compact (d, NULL, NULL), 0, "%s", vhd_get_error ());
  a2 = vhd_get_allocated_bytes (d);
  cr_expect_lt (a2, a1, "allocated %" PRId64 " -> %" PRId64, a1, a2);
  cr_expect_eq (state_at (d, 0), LAYER_ABSENT, "block 0 equal: unmapped");
  expect_view (d, view, DISK, "child after compact");
  vhd_close (d);
  cr_log_info ("compact of a differencing VHD: allocated %" PRId64 " -> %"
               PRId64 " bytes, file %" PRIu64 " bytes", a1, a2,
               file_size_of ("child.vhd"));
  cr_expect_eq (vhd_check (path_of ("child.vhd"), 0, NULL, NULL), 0);
  d = vhd_open (path_of ("base.vhd"), VHD_OPEN_RDONLY);
  expect_view (d, under, DISK, "the parent is untouched");
  vhd_close (d);
  free (view);
  free (under);
}

/* Six blocks, three discarded: the others move down, lowest slot first. */
Test (compact, blocks_move_into_the_holes)
{
  struct image img;
  uint8_t *view = malloc (12 * MiB);
  struct vhd_disk *d;
  struct vhd_state *s;
  uint64_t bb = BLOCK + 512;
  size_t len;

  make_image (&img, VHD_TYPE_DYNAMIC, 12 * MiB, BLOCK, NULL);
  d = must_open (&img, 0);
  fill (d, view, 0, 12 * MiB, 8);
  cr_assert_eq (vhd_flush (d), 0);
  cr_assert_eq (vhd_discard (d, 0, BLOCK), 0);
  cr_assert_eq (vhd_discard (d, 2 * BLOCK, 2 * BLOCK), 0);
  memset (view, 0, BLOCK);
  memset (view + 2 * BLOCK, 0, 2 * BLOCK);
  cr_assert_eq (vhd_compact (d, NULL, NULL), 0, "%s", vhd_get_error ());
  s = d->priv;
  /* Block 1 stayed in slot 1; 5 went to slot 0, 4 to slot 2. */
  cr_expect_eq ((uint64_t) vhd_bat_get (&s->bat, 5) * 512, 2048);
  cr_expect_eq ((uint64_t) vhd_bat_get (&s->bat, 1) * 512, 2048 + bb);
  cr_expect_eq ((uint64_t) vhd_bat_get (&s->bat, 4) * 512, 2048 + 2 * bb);
  io_mem_data (d->io, &len);
  cr_expect_eq (len, 2048 + 3 * bb + 512);
  expect_view (d, view, 12 * MiB, "after compact");
  snapshot (d, &img);
  vhd_close (d);
  d = must_open (&img, VHD_OPEN_RDONLY);
  expect_view (d, view, 12 * MiB, "reopened");
  vhd_close (d);
  free (view);
  free_image (&img);
}

Test (compact, keeps_another_tools_4k_alignment)
{
  struct image img;
  uint8_t *view = malloc (DISK);
  uint64_t bb = BLOCK + 512, stride = BLOCK + 4096;
  /* As dissect-dynamic.vhd of the corpus: data 4 KiB aligned, 3584 bytes
   * between blocks; then block 2 is discarded. */
  const uint64_t at[] = { 7680, 7680 + stride, 7680 + 2 * stride,
                          7680 + 3 * stride };
  struct vhd_disk *d;
  size_t len;

  make_image (&img, VHD_TYPE_DYNAMIC, DISK, BLOCK, NULL);
  d = must_open (&img, 0);
  fill (d, view, 0, DISK, 9);
  cr_assert_eq (vhd_flush (d), 0);
  snapshot (d, &img);
  vhd_close (d);
  relayout (&img, at, 4);
  d = must_open (&img, 0);
  expect_view (d, view, DISK, "relaid out");
  cr_assert_eq (vhd_discard (d, 2 * BLOCK, BLOCK), 0);
  memset (view + 2 * BLOCK, 0, BLOCK);
  cr_assert_eq (vhd_compact (d, NULL, NULL), 0, "%s", vhd_get_error ());
  expect_view (d, view, DISK, "compacted");
  io_mem_data (d->io, &len);
  cr_expect_eq (len, 7680 + 2 * stride + bb + 512, "file %zu bytes", len);
  vhd_close (d);
  free (view);
  free_image (&img);
}

Test (compact, packs_blocks_off_the_sector_grid)
{
  struct image img;
  uint8_t *view = malloc (DISK);
  uint64_t bb = BLOCK + 512;
  /* Blocks a sector or two apart: each overlaps the slot it should go
   * to, so they go to the end first (phase A), then back. */
  const uint64_t at[] = { 2048 + 512, 2048 + 512 + bb + 1024,
                          2048 + 1536 + 2 * bb + 512,
                          2048 + 2560 + 3 * bb + 512 };
  struct vhd_disk *d;
  size_t len;

  make_image (&img, VHD_TYPE_DYNAMIC, DISK, BLOCK, NULL);
  d = must_open (&img, 0);
  fill (d, view, 0, DISK, 10);
  cr_assert_eq (vhd_flush (d), 0);
  snapshot (d, &img);
  vhd_close (d);
  relayout (&img, at, 4);
  d = must_open (&img, 0);
  expect_view (d, view, DISK, "relaid out");
  cr_assert_eq (d->ops->defragment (d, NULL, NULL), 0, "%s",
                vhd_get_error ());
  expect_view (d, view, DISK, "defragmented");
  io_mem_data (d->io, &len);
  cr_expect_eq (len, 2048 + 4 * bb + 512, "file %zu bytes", len);
  vhd_close (d);
  free (view);
  free_image (&img);
}

/* --- resize --------------------------------------------------------------- */

TestSuite (resize, .init = dir_setup, .fini = dir_teardown);

/* Grow d to new_size; the view gains zeros. */
static uint8_t *
grow (struct vhd_disk *d, uint8_t *view, uint64_t new_size)
{
  uint64_t old = d->size;

  cr_assert_eq (vhd_resize (d, new_size, 0), 0, "%s", vhd_get_error ());
  view = realloc (view, new_size);
  cr_assert_not_null (view);
  memset (view + old, 0, new_size - old);
  expect_view (d, view, new_size, "grown");
  return view;
}

Test (resize, dynamic_grows_within_its_bat_sector)
{
  struct image img;
  uint8_t *view = malloc (DISK);
  struct vhd_disk *d = full_dynamic (&img, view);
  struct vhd_state *s = d->priv;

  view = grow (d, view, 16 * MiB);
  cr_expect_eq (s->header.max_table_entries, 8);
  cr_expect_eq (s->header.table_offset, 1536);
  fill (d, view, 15 * MiB, 4096, 11);
  cr_assert_eq (vhd_flush (d), 0);
  snapshot (d, &img);
  vhd_close (d);
  d = must_open (&img, VHD_OPEN_RDONLY);
  expect_view (d, view, 16 * MiB, "reopened");
  vhd_close (d);
  free (view);
  free_image (&img);
}

/* The rest of the last BAT sector past the table's entries may hold
 * anything (open ignores it): a grow into that sector makes the new
 * entries unused on disk too, not only in memory (found by
 * fuzz-open-write: the image no longer opened after the grow). */
Test (resize, dynamic_grows_over_junk_past_its_entries)
{
  struct image img;
  uint8_t *view = malloc (DISK);
  struct vhd_disk *d = full_dynamic (&img, view);
  struct vhd_state *s = d->priv;
  uint64_t past = s->header.table_offset
                  + 4 * (uint64_t) s->header.max_table_entries;

  snapshot (d, &img);
  vhd_close (d);
  memset (img.bytes + past, 0x5a, 16); /* four junk entries */
  d = must_open (&img, 0);
  view = grow (d, view, DISK + 4 * BLOCK);
  cr_assert_eq (vhd_flush (d), 0);
  snapshot (d, &img);
  vhd_close (d);
  d = must_open (&img, VHD_OPEN_RDONLY);
  expect_view (d, view, DISK + 4 * BLOCK, "reopened");
  vhd_close (d);
  free (view);
  free_image (&img);
}

/* 512 KiB blocks: 128 MiB needs 256 entries, two BAT sectors: the first
 * block, right after the BAT, moves to the end. */
Test (resize, dynamic_bat_grows_over_moved_blocks)
{
  struct vhd_disk *d = create_file ("grow.vhd", VHD_TYPE_DYNAMIC, 4 * MiB,
                                    512 * KiB, NULL);
  uint8_t *view = malloc (4 * MiB);
  struct vhd_state *s = d->priv;

  fill (d, view, 0, 4 * MiB, 12);
  cr_assert_eq (vhd_flush (d), 0);
  cr_expect_eq ((uint64_t) vhd_bat_get (&s->bat, 0) * 512, 2048);
  view = grow (d, view, 128 * MiB);
  cr_expect_eq (s->header.table_offset, 1536);
  cr_expect_eq (s->header.max_table_entries, 256);
  cr_expect_gt ((uint64_t) vhd_bat_get (&s->bat, 0) * 512, 2560,
                "block 0 moved out of the BAT's way");
  fill (d, view, 127 * MiB, 8192, 13);
  vhd_close (d);
  d = vhd_open (path_of ("grow.vhd"), VHD_OPEN_RDONLY);
  cr_assert_not_null (d, "%s", vhd_get_error ());
  expect_view (d, view, 128 * MiB, "reopened");
  vhd_close (d);
  qemu_compare ("grow.vhd", view, 128 * MiB);
  cr_expect_eq (vhd_check (path_of ("grow.vhd"), 0, NULL, NULL), 0);
  /* Compact fills the hole the moved block left. */
  d = vhd_open (path_of ("grow.vhd"), 0);
  cr_assert_eq (vhd_compact (d, NULL, NULL), 0, "%s", vhd_get_error ());
  vhd_close (d);
  cr_expect_eq (file_size_of ("grow.vhd"),
                1536 + 1024 + 9 * (512 * KiB + 512) + 512);
  qemu_compare ("grow.vhd", view, 128 * MiB);
  free (view);
}

/* A differencing disk's locators follow its BAT: the BAT moves whole. */
Test (resize, differencing_bat_moves_to_the_end)
{
  struct vhd_disk *base = create_file ("base.vhd", VHD_TYPE_DYNAMIC, 4 * MiB,
                                       512 * KiB, NULL), *d;
  uint8_t *view = malloc (4 * MiB);
  struct vhd_state *s;
  uint64_t old_table;

  fill (base, view, 0, 4 * MiB, 14);
  vhd_close (base);
  d = create_file ("child.vhd", 0, 0, 512 * KiB, "base.vhd");
  fill (d, view, MiB, 600 * KiB, 15);
  s = d->priv;
  old_table = s->header.table_offset;
  view = grow (d, view, 100 * MiB);
  cr_expect_neq (s->header.table_offset, old_table);
  cr_expect_eq (s->header.max_table_entries, 200);
  fill (d, view, 99 * MiB, 4096, 16);
  vhd_close (d);
  d = vhd_open (path_of ("child.vhd"), VHD_OPEN_RDONLY);
  cr_assert_not_null (d, "%s", vhd_get_error ());
  expect_view (d, view, 100 * MiB, "reopened");
  vhd_close (d);
  cr_expect_eq (vhd_check (path_of ("child.vhd"), 0, NULL, NULL), 0);
  free (view);
}

Test (resize, fixed_grows_and_stays_fully_allocated)
{
  struct vhd_disk *d = create_file ("fixed.vhd", VHD_TYPE_FIXED, 4 * MiB, 0,
                                    NULL);
  uint8_t *view = malloc (4 * MiB);

  fill (d, view, 0, 4 * MiB, 17);
  view = grow (d, view, 6 * MiB + 512);
  vhd_close (d);
  cr_expect_eq (file_size_of ("fixed.vhd"), 6 * MiB + 1024);
  d = vhd_open (path_of ("fixed.vhd"), VHD_OPEN_RDONLY);
  cr_assert_not_null (d, "%s", vhd_get_error ());
  expect_view (d, view, 6 * MiB + 512, "reopened");
  vhd_close (d);
  qemu_compare ("fixed.vhd", view, 6 * MiB + 512);
  cr_expect_eq (vhd_check (path_of ("fixed.vhd"), 0, NULL, NULL), 0);
  free (view);
}

Test (resize, shrink_with_data_past_the_end_changes_nothing)
{
  struct vhd_disk *d = create_file ("s.vhd", VHD_TYPE_DYNAMIC, DISK, BLOCK,
                                    NULL);
  uint8_t *before, *after;
  size_t n1, n2;

  fill (d, NULL, 7 * MiB, 4096, 18);
  vhd_close (d);
  before = file_bytes ("s.vhd", &n1);
  d = vhd_open (path_of ("s.vhd"), 0);
  cr_assert_eq (vhd_resize (d, 4 * MiB, VHD_RESIZE_SHRINK), -1);
  cr_expect_eq (vhd_get_errno (), ENOTEMPTY);
  cr_assert_eq (vhd_resize (d, 4 * MiB, 0), -1);
  cr_expect_eq (vhd_get_errno (), EINVAL);
  vhd_close (d);
  after = file_bytes ("s.vhd", &n2);
  cr_assert_eq (n1, n2);
  cr_assert_eq (memcmp (before, after, n1), 0, "a refused shrink wrote");
  free (before);
  free (after);
}

Test (resize, dynamic_shrinks_and_grows_back)
{
  struct vhd_disk *d = create_file ("sg.vhd", VHD_TYPE_DYNAMIC, 16 * MiB,
                                    BLOCK, NULL);
  uint8_t *view = calloc (1, 16 * MiB);

  fill (d, view, 0, 3 * MiB, 19);
  cr_assert_eq (vhd_resize (d, 5 * MiB, VHD_RESIZE_SHRINK), 0, "%s",
                vhd_get_error ());
  expect_view (d, view, 5 * MiB, "shrunk");
  vhd_close (d);
  qemu_compare ("sg.vhd", view, 5 * MiB);
  cr_expect_eq (vhd_check (path_of ("sg.vhd"), 0, NULL, NULL), 0);
  d = vhd_open (path_of ("sg.vhd"), 0);
  cr_assert_not_null (d);
  view = grow (d, view, 9 * MiB);
  vhd_close (d);
  qemu_compare ("sg.vhd", view, 9 * MiB);
  free (view);
}

Test (resize, differencing_shrinks_where_it_holds_nothing)
{
  struct image base, child;
  uint8_t *view = malloc (DISK);
  struct vhd_disk *d;

  make_chain (&base, &child, view); /* the child holds part of block 0 */
  d = must_open (&child, 0);
  fill (d, view, 3 * BLOCK + 4096, 4096, 21);
  cr_assert_eq (vhd_resize (d, 5 * MiB, VHD_RESIZE_SHRINK), -1,
                "the child has data in block 3");
  cr_expect_eq (vhd_get_errno (), ENOTEMPTY);
  cr_assert_eq (vhd_resize (d, 3 * BLOCK + 4096, VHD_RESIZE_SHRINK), -1,
                "the child has data right after");
  cr_assert_eq (vhd_resize (d, 3 * BLOCK + 8192, VHD_RESIZE_SHRINK), 0,
                "%s", vhd_get_error ());
  expect_view (d, view, 3 * BLOCK + 8192, "shrunk");
  snapshot (d, &child);
  vhd_close (d);
  d = must_open (&child, VHD_OPEN_RDONLY);
  expect_view (d, view, 3 * BLOCK + 8192, "reopened");
  vhd_close (d);
  free (view);
  free_image (&child);
  free_image (&base);
}

Test (resize, limits_and_the_fixed_shrink)
{
  struct image img;
  uint8_t *view = malloc (4 * MiB);
  struct vhd_disk *d;
  size_t len;

  make_image (&img, VHD_TYPE_FIXED, 4 * MiB, 0, NULL);
  d = must_open (&img, 0);
  fill (d, view, 0, 2 * MiB, 20);
  cr_assert_eq (vhd_resize (d, (UINT64_C (2040) << 30) + 512, 0), -1);
  cr_expect_eq (vhd_get_errno (), ERANGE);
  /* A fixed disk stores every byte: a shrink may cut off zeros only. */
  cr_assert_eq (vhd_resize (d, 1 * MiB, VHD_RESIZE_SHRINK), -1);
  cr_expect_eq (vhd_get_errno (), ENOTEMPTY);
  cr_expect (strstr (vhd_get_error (), "offset 1048576") != NULL, "%s",
             vhd_get_error ());
  cr_assert_eq (vhd_resize (d, 3 * MiB, VHD_RESIZE_SHRINK), 0, "%s",
                vhd_get_error ());
  io_mem_data (d->io, &len);
  cr_expect_eq (len, 3 * MiB + 512);
  memset (view + 2 * MiB, 0, MiB);
  expect_view (d, view, 3 * MiB, "fixed, shrunk");
  /* Sizes are whole sectors. */
  cr_assert_eq (vhd_resize (d, 3 * MiB + 1, 0), 0, "%s", vhd_get_error ());
  cr_expect_eq (d->size, 3 * MiB + 512);
  snapshot (d, &img);
  vhd_close (d);
  d = must_open (&img, VHD_OPEN_RDONLY);
  cr_expect_eq (d->size, 3 * MiB + 512);
  vhd_close (d);
  free (view);
  free_image (&img);
}

/* --- commit and rebase ---------------------------------------------------- */

TestSuite (chainops, .init = dir_setup, .fini = dir_teardown);

/* base.vhd: data over [0, 3 MiB); child.vhd: its own data and zeros. */
static uint8_t *
make_files_chain (uint8_t **base_view)
{
  uint8_t *view = calloc (1, DISK);
  struct vhd_disk *d = create_file ("base.vhd", VHD_TYPE_DYNAMIC, DISK,
                                    BLOCK, NULL);

  fill (d, view, 0, 3 * MiB, 22);
  vhd_close (d);
  *base_view = copy_of (view, DISK);
  d = create_file ("child.vhd", 0, 0, 0, "base.vhd");
  fill (d, view, 512 * KiB, MiB, 23);
  cr_assert_eq (vhd_write_zeroes (d, 2 * MiB, 64 * KiB, 0), 0);
  memset (view + 2 * MiB, 0, 64 * KiB);
  fill (d, view, 7 * MiB, 4096, 24);
  vhd_close (d);
  return view;
}

Test (chainops, commit_moves_the_child_into_the_parent)
{
  uint8_t *base_view, *view = make_files_chain (&base_view);
  struct vhd_disk *d = vhd_open (path_of ("child.vhd"), 0);

  cr_assert_not_null (d, "%s", vhd_get_error ());
  cr_assert_eq (vhd_commit (d, NULL, NULL), 0, "%s", vhd_get_error ());
  expect_view (d, view, DISK, "the chain after commit");
  cr_expect_eq (vhd_get_allocated_bytes (d), 0, "the child is empty");
  vhd_close (d);
  cr_expect_eq (file_size_of ("child.vhd"), 512 + 1024 + 512 + 1024 + 512,
                "the child's file holds its metadata only");
  d = vhd_open (path_of ("base.vhd"), VHD_OPEN_RDONLY);
  expect_view (d, view, DISK, "the parent after commit");
  vhd_close (d);
  d = vhd_open (path_of ("child.vhd"), VHD_OPEN_RDONLY);
  cr_assert_not_null (d, "%s", vhd_get_error ());
  expect_view (d, view, DISK, "the child reopened");
  vhd_close (d);
  qemu_compare ("base.vhd", view, DISK);
  cr_expect_eq (vhd_check (path_of ("base.vhd"), 0, NULL, NULL), 0);
  cr_expect_eq (vhd_check (path_of ("child.vhd"), 0, NULL, NULL), 0);
  free (view);
  free (base_view);
}

Test (chainops, rebase_onto_the_moved_parent)
{
  uint8_t *base_view, *view = make_files_chain (&base_view);
  uint8_t *before, *after, *alone;
  struct vhd_disk *d;
  size_t n1, n2;
  char cmd[600];

  snprintf (cmd, sizeof cmd, "mkdir %s && mv %s %s", path_of ("sub"),
            path_of ("base.vhd"), path_of ("sub/moved.vhd"));
  cr_assert_eq (system (cmd), 0);
  vhd_close (create_file ("stranger.vhd", VHD_TYPE_DYNAMIC, DISK, 0, NULL));
  cr_assert_null (vhd_open (path_of ("child.vhd"), 0));
  before = file_bytes ("child.vhd", &n1);
  d = vhd_open (path_of ("child.vhd"), VHD_OPEN_NO_PARENT);
  cr_assert_not_null (d, "%s", vhd_get_error ());
  cr_assert_eq (vhd_rebase (d, path_of ("stranger.vhd"), 0), -1);
  cr_expect_eq (vhd_get_errno (), EBADMSG, "%s", vhd_get_error ());
  cr_assert_eq (vhd_rebase (d, path_of ("nothere.vhd"), 0), -1);
  vhd_close (d);
  after = file_bytes ("child.vhd", &n2);
  cr_assert (n1 == n2 && memcmp (before, after, n1) == 0,
             "a refused rebase changed the child");
  free (after);

  d = vhd_open (path_of ("child.vhd"), VHD_OPEN_NO_PARENT);
  cr_assert_eq (vhd_rebase (d, path_of ("sub/moved.vhd"), 0), 0, "%s",
                vhd_get_error ());
  expect_view (d, view, DISK, "after rebase");
  vhd_close (d);
  d = vhd_open (path_of ("child.vhd"), VHD_OPEN_RDONLY);
  cr_assert_not_null (d, "reopen after rebase: %s", vhd_get_error ());
  expect_view (d, view, DISK, "reopened after rebase");
  cr_expect (strstr (vhd_get_parent_hint (d), "moved.vhd") != NULL);
  vhd_close (d);
  cr_expect_eq (vhd_check (path_of ("child.vhd"), 0, NULL, NULL), 0);

  /* Unsafe: any parent, its identity recorded. */
  d = vhd_open (path_of ("child.vhd"), 0);
  cr_assert_eq (vhd_rebase (d, path_of ("stranger.vhd"), VHD_REBASE_UNSAFE),
                0, "%s", vhd_get_error ());
  vhd_close (d);
  alone = calloc (1, DISK);
  for (uint64_t i = 0; i < DISK; i++)
    if (view[i] != base_view[i])
      alone[i] = view[i];
  memcpy (alone + 512 * KiB, view + 512 * KiB, MiB);
  memset (alone + 2 * MiB, 0, 64 * KiB);
  d = vhd_open (path_of ("child.vhd"), VHD_OPEN_RDONLY);
  cr_assert_not_null (d, "%s", vhd_get_error ());
  expect_view (d, alone, DISK, "over the stranger");
  vhd_close (d);
  free (alone);
  free (before);
  free (view);
  free (base_view);
}
