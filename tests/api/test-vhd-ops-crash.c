/* test-vhd-ops-crash.c: crash safety of the VHD operations (see "CRASH
 * SAFETY" in libvhd/vhd/vhd-space.c, vhd-zero.c, vhd-defrag.c and
 * vhd-resize.c).
 *
 * Each scenario starts from a flushed image in memory and runs one
 * operation: compact (unmap + defragment), defragment of blocks off the
 * sector grid, resize (grow with blocks in the BAT's way, grow moving the
 * BAT, grow a fixed disk, shrink), discard and write zeroes.  It is run
 * once to count the writes it makes (punches and truncations count), then
 * again from scratch for every N from 0 to that count, the byte source
 * crashing after N writes, whole and tearing the failing write in half.
 * What is left must open; its size and every sector must be the old or
 * the new content (resize, compact: the whole disk one or the other;
 * zeroing: each sector one or the other).  Then check --repair must leave
 * no corruption and the same view, and a read-write open and flush must
 * keep the view too.
 */
#undef NDEBUG /* Keep test strong */
#include "api/vhd-ops-helpers.h"

#define BLOCK (2 * MiB)

typedef int (*op_fn) (struct vhd_disk *d);

struct scenario {
  const char *name;
  struct image img, base;   /* the start (and its parent) */
  op_fn op;
  uint8_t *old_view, *new_view;
  uint64_t old_size, new_size;
  bool per_sector;          /* zeroing: each sector old or new */
};

/* --- verifying what a crash left ----------------------------------------- */

static bool
view_is (const uint8_t *got, uint64_t size, const uint8_t *want,
         uint64_t want_size)
{
  return size == want_size && memcmp (got, want, size) == 0;
}

static void
check_view (const struct scenario *sc, struct vhd_disk *d, const char *when,
            long n, bool tear)
{
  uint8_t *got = read_all (d);
  uint64_t s;

  if (!sc->per_sector) {
    cr_assert (view_is (got, d->size, sc->old_view, sc->old_size)
               || view_is (got, d->size, sc->new_view, sc->new_size),
               "%s, crash after %ld writes%s, %s: the disk (%" PRIu64
               " bytes) is neither the old nor the new one", sc->name, n,
               tear ? " (torn)" : "", when, d->size);
    free (got);
    return;
  }
  cr_assert_eq (d->size, sc->old_size);
  for (s = 0; s < d->size / SECTOR_SIZE; s++) {
    const uint8_t *g = got + s * SECTOR_SIZE;
    cr_assert (memcmp (g, sc->old_view + s * SECTOR_SIZE, SECTOR_SIZE) == 0
               || memcmp (g, sc->new_view + s * SECTOR_SIZE, SECTOR_SIZE)
                    == 0,
               "%s, crash after %ld writes%s, %s: sector %" PRIu64
               " is neither old nor new", sc->name, n, tear ? " (torn)" : "",
               when, s);
  }
  free (got);
}

static void
on_finding (void *opaque, int severity, const char *message)
{
  char *text = opaque;
  size_t len = strlen (text);

  if (severity == VHD_CHECK_CORRUPT)
    snprintf (text + len, 2048 - len, "%s\n", message);
}

/* check --repair over the bytes: no corruption may be left. */
static void
repair (struct image *left, const char *name, long n, bool tear)
{
  struct io *io = io_mem_new (left->bytes, left->len);
  char text[2048] = "";
  struct check_ctx c = { true, 0, on_finding, text };
  size_t len;
  const uint8_t *p;

  cr_assert_eq (vhd_format_ops.check (io, &c), 0, "%s", vhd_get_error ());
  cr_assert_eq (c.found & VHD_CHECK_CORRUPT, 0, "%s, crash after %ld "
                "writes%s: check --repair leaves: %s", name, n,
                tear ? " (torn)" : "", text);
  p = io_mem_data (io, &len);
  free (left->bytes);
  left->bytes = copy_of (p, len);
  left->len = len;
  io->ops->close (io);
}

static void
verify (const struct scenario *sc, struct image *left, long n, bool tear)
{
  struct vhd_disk *d = open_image (left, VHD_OPEN_RDONLY);

  cr_assert_not_null (d, "%s, crash after %ld writes%s: reopen: %s",
                      sc->name, n, tear ? " (torn)" : "", vhd_get_error ());
  check_view (sc, d, "reopened", n, tear);
  vhd_close (d);
  repair (left, sc->name, n, tear);
  d = open_image (left, 0);
  cr_assert_not_null (d, "%s, crash %ld: after repair: %s", sc->name, n,
                      vhd_get_error ());
  check_view (sc, d, "after check --repair", n, tear);
  cr_assert_eq (vhd_flush (d), 0, "%s", vhd_get_error ());
  snapshot (d, left);
  vhd_close (d);
  d = must_open (left, VHD_OPEN_RDONLY);
  check_view (sc, d, "after a read-write open", n, tear);
  vhd_close (d);
}

/* Run the operation, crashing after n writes (< 0: never); the number of
 * writes it made goes to *writes. */
static void
run (const struct scenario *sc, long n, bool tear, struct image *left,
     long *writes)
{
  struct vhd_disk *d = must_open (&sc->img, 0);
  long start = io_mem_write_count (d->io);
  int r;

  io_mem_fail_after (d->io, n, tear);
  r = sc->op (d);
  if (n < 0)
    cr_assert_eq (r, 0, "%s: %s", sc->name, vhd_get_error ());
  *writes = io_mem_write_count (d->io) - start;
  memset (left, 0, sizeof *left);
  left->parent = sc->img.parent;
  snapshot (d, left);
  vhd_close (d); /* after a crash its flush fails like every write */
}

static void
crash_everywhere (struct scenario *sc)
{
  struct image left;
  long total, n, w, points = 0;
  int tear;

  run (sc, -1, false, &left, &total);
  verify (sc, &left, -1, false);
  free_image (&left);
  cr_assert_gt (total, 0);
  for (tear = 0; tear <= 1; tear++)
    for (n = 0; n <= total; n++) {
      run (sc, n, tear, &left, &w);
      verify (sc, &left, n, tear);
      free_image (&left);
      points++;
    }
  cr_log_info ("%s: %ld writes, %ld crash points tested (whole and torn)",
               sc->name, total, points);
  free_image (&sc->img);
  free_image (&sc->base);
  free (sc->old_view);
  free (sc->new_view);
}

/* --- scenarios ------------------------------------------------------------ */

/* A dynamic image of size bytes, written with the pattern over the given
 * blocks; its view in *view. */
static void
written_image (struct image *img, uint64_t size, uint32_t bs,
               const unsigned *blocks, unsigned n, uint8_t **view)
{
  struct vhd_disk *d;
  unsigned i;

  make_image (img, VHD_TYPE_DYNAMIC, size, bs, NULL);
  *view = calloc (1, size);
  cr_assert_not_null (*view);
  d = must_open (img, 0);
  for (i = 0; i < n; i++)
    fill (d, *view, (uint64_t) blocks[i] * bs, bs, 30 + i);
  cr_assert_eq (vhd_flush (d), 0);
  snapshot (d, img);
  vhd_close (d);
}

static void
same_view (struct scenario *sc, uint8_t *view, uint64_t size)
{
  sc->old_view = view;
  sc->new_view = copy_of (view, size);
  sc->old_size = sc->new_size = size;
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

/* Six written 2 MiB blocks, then blocks 0, 2 and 3 zeroed. */
static void
compact_dynamic (op_fn op, const char *name)
{
  static const unsigned blocks[] = { 0, 1, 2, 3, 4, 5 };
  struct scenario sc = { .name = name, .op = op };
  struct vhd_disk *d;
  uint8_t *view;

  written_image (&sc.img, 12 * MiB, BLOCK, blocks, 6, &view);
  d = must_open (&sc.img, 0);
  cr_assert_eq (vhd_write_zeroes (d, 0, BLOCK, 0), 0);
  cr_assert_eq (vhd_write_zeroes (d, 2 * BLOCK, 2 * BLOCK, 0), 0);
  memset (view, 0, BLOCK);
  memset (view + 2 * BLOCK, 0, 2 * BLOCK);
  cr_assert_eq (vhd_flush (d), 0);
  snapshot (d, &sc.img);
  vhd_close (d);
  same_view (&sc, view, 12 * MiB);
  crash_everywhere (&sc);
}

/* Over a parent of four blocks: block 0 the parent's bytes again, block
 * 1 its own data, block 2 zeros over parent data, block 3 one page. */
static void
compact_differencing (op_fn op, const char *name)
{
  static const unsigned blocks[] = { 0, 1, 2, 3 };
  struct scenario sc = { .name = name, .op = op };
  struct vhd_disk *d;
  uint8_t *view, *under;

  written_image (&sc.base, 8 * MiB, BLOCK, blocks, 4, &under);
  make_image (&sc.img, VHD_TYPE_DIFFERENCING, 0, 0, &sc.base);
  view = copy_of (under, 8 * MiB);
  d = must_open (&sc.img, 0);
  fill (d, view, 0, BLOCK, 30);             /* the parent's bytes again */
  fill (d, view, BLOCK + 4096, 8192, 40);   /* its own data */
  cr_assert_eq (vhd_write_zeroes (d, 2 * BLOCK, BLOCK, 0), 0);
  memset (view + 2 * BLOCK, 0, BLOCK);
  fill (d, view, 3 * BLOCK, 4096, 41);
  cr_assert_eq (vhd_flush (d), 0);
  snapshot (d, &sc.img);
  vhd_close (d);
  free (under);
  same_view (&sc, view, 8 * MiB);
  crash_everywhere (&sc);
}

Test (ops_crash, compact_dynamic, .timeout = 600)
{
  compact_dynamic (op_compact, "compact (dynamic)");
}

Test (ops_crash, compact_no_move_dynamic, .timeout = 600)
{
  compact_dynamic (op_compact_no_move, "compact --no-move (dynamic)");
}

Test (ops_crash, compact_differencing, .timeout = 600)
{
  compact_differencing (op_compact, "compact (differencing)");
}

Test (ops_crash, compact_no_move_differencing, .timeout = 600)
{
  compact_differencing (op_compact_no_move,
                        "compact --no-move (differencing)");
}

static int
op_defragment (struct vhd_disk *d)
{
  return d->ops->defragment (d, NULL, NULL);
}

Test (ops_crash, defragment_blocks_off_the_grid, .timeout = 600)
{
  static const unsigned blocks[] = { 0, 1, 2, 3 };
  const uint64_t bb = BLOCK + 512;
  const uint64_t at[] = { 2048 + 512, 2048 + 512 + bb + 1024,
                          2048 + 1536 + 2 * bb + 512,
                          2048 + 2560 + 3 * bb + 512 };
  struct scenario sc = { .name = "defragment (phase A and B)",
                         .op = op_defragment };
  uint8_t *view;

  written_image (&sc.img, 8 * MiB, BLOCK, blocks, 4, &view);
  relayout (&sc.img, at, 4);
  same_view (&sc, view, 8 * MiB);
  crash_everywhere (&sc);
}

static uint64_t grow_to;

static int
op_resize (struct vhd_disk *d)
{
  return vhd_resize (d, grow_to, VHD_RESIZE_SHRINK);
}

static void
resized_view (struct scenario *sc, uint8_t *view, uint64_t old_size,
              uint64_t new_size)
{
  sc->old_view = view;
  sc->old_size = old_size;
  sc->new_view = calloc (1, new_size);
  cr_assert_not_null (sc->new_view);
  memcpy (sc->new_view, view, MIN (old_size, new_size));
  sc->new_size = new_size;
  grow_to = new_size;
}

/* 512 KiB blocks: 66 MiB needs a second BAT sector, where block 0 is. */
Test (ops_crash, resize_grow_moves_blocks, .timeout = 600)
{
  static const unsigned blocks[] = { 0, 1, 2, 3, 4, 5, 6, 7 };
  struct scenario sc = { .name = "resize (grow over a moved block)",
                         .op = op_resize };
  uint8_t *view;

  written_image (&sc.img, 4 * MiB, 512 * KiB, blocks, 8, &view);
  resized_view (&sc, view, 4 * MiB, 66 * MiB);
  crash_everywhere (&sc);
}

Test (ops_crash, resize_grow_moves_the_bat, .timeout = 600)
{
  static const unsigned blocks[] = { 0, 1, 2, 3, 4, 5, 6, 7 };
  struct scenario sc = { .name = "resize (differencing: the BAT moves)",
                         .op = op_resize };
  struct vhd_disk *d;
  uint8_t *view;

  written_image (&sc.base, 4 * MiB, 512 * KiB, blocks, 8, &view);
  make_image (&sc.img, VHD_TYPE_DIFFERENCING, 0, 512 * KiB, &sc.base);
  d = must_open (&sc.img, 0);
  fill (d, view, 700 * KiB, 900 * KiB, 50);
  cr_assert_eq (vhd_flush (d), 0);
  snapshot (d, &sc.img);
  vhd_close (d);
  resized_view (&sc, view, 4 * MiB, 66 * MiB);
  crash_everywhere (&sc);
}

Test (ops_crash, resize_grow_fixed, .timeout = 600)
{
  struct scenario sc = { .name = "resize (fixed grow)", .op = op_resize };
  struct vhd_disk *d;
  uint8_t *view = malloc (2 * MiB);

  make_image (&sc.img, VHD_TYPE_FIXED, 2 * MiB, 0, NULL);
  d = must_open (&sc.img, 0);
  fill (d, view, 0, 2 * MiB, 51);
  cr_assert_eq (vhd_flush (d), 0);
  snapshot (d, &sc.img);
  vhd_close (d);
  resized_view (&sc, view, 2 * MiB, 5 * MiB + 512);
  crash_everywhere (&sc);
}

Test (ops_crash, resize_shrink_dynamic, .timeout = 600)
{
  static const unsigned blocks[] = { 0, 1 };
  struct scenario sc = { .name = "resize (dynamic shrink)", .op = op_resize };
  uint8_t *view;

  written_image (&sc.img, 8 * MiB, BLOCK, blocks, 2, &view);
  resized_view (&sc, view, 8 * MiB, 5 * MiB);
  crash_everywhere (&sc);
}

/* --- zeroing -------------------------------------------------------------- */

static int
op_zero_dynamic (struct vhd_disk *d)
{
  if (vhd_discard (d, BLOCK, BLOCK) == -1                 /* freed */
      || vhd_write_zeroes (d, 2 * BLOCK + 4096, 64 * KiB, 0) == -1
      || vhd_discard (d, 3 * BLOCK, BLOCK) == -1          /* cut off */
      || vhd_discard (d, 0, 8192) == -1)                  /* punched */
    return -1;
  return vhd_flush (d);
}

Test (ops_crash, zero_and_discard_dynamic, .timeout = 600)
{
  static const unsigned blocks[] = { 0, 1, 2, 3 };
  struct scenario sc = { .name = "discard and write zeroes (dynamic)",
                         .op = op_zero_dynamic, .per_sector = true };
  uint8_t *view;

  written_image (&sc.img, 8 * MiB, BLOCK, blocks, 4, &view);
  same_view (&sc, view, 8 * MiB);
  memset (sc.new_view + BLOCK, 0, BLOCK);
  memset (sc.new_view + 2 * BLOCK + 4096, 0, 64 * KiB);
  memset (sc.new_view + 3 * BLOCK, 0, BLOCK);
  memset (sc.new_view, 0, 8192);
  crash_everywhere (&sc);
}

static int
op_zero_differencing (struct vhd_disk *d)
{
  if (d->ops->unmap (d, 0, BLOCK) == -1                   /* parent again */
      || vhd_write_zeroes (d, BLOCK, 128 * KiB, 0) == -1  /* allocated */
      || vhd_discard (d, 2 * BLOCK + 8192, 16384) == -1)  /* a zero block */
    return -1;
  return vhd_flush (d);
}

Test (ops_crash, zero_and_unmap_differencing, .timeout = 600)
{
  static const unsigned blocks[] = { 0, 1, 2, 3 };
  struct scenario sc = { .name = "unmap and zero (differencing)",
                         .op = op_zero_differencing, .per_sector = true };
  struct vhd_disk *d;
  uint8_t *under, *view;

  written_image (&sc.base, 8 * MiB, BLOCK, blocks, 4, &under);
  make_image (&sc.img, VHD_TYPE_DIFFERENCING, 0, 0, &sc.base);
  view = copy_of (under, 8 * MiB);
  d = must_open (&sc.img, 0);
  fill (d, view, 4096, 64 * KiB, 60);
  fill (d, view, BLOCK + 64 * KiB, 4096, 61);
  cr_assert_eq (vhd_flush (d), 0);
  snapshot (d, &sc.img);
  vhd_close (d);
  same_view (&sc, view, 8 * MiB);
  memcpy (sc.new_view, under, BLOCK);
  memset (sc.new_view + BLOCK, 0, 128 * KiB);
  memset (sc.new_view + 2 * BLOCK + 8192, 0, 16384);
  free (under);
  crash_everywhere (&sc);
}
