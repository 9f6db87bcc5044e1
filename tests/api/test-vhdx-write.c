/* test-vhdx-write.c: VHDX images created, written and reopened over the
 * memory byte source: dynamic, fixed and differencing, 512 and 4096-byte
 * sectors; the log replayed read-only (file untouched) and read-write
 * (in place); and the crash test: the write workload stopped at every
 * write (cleanly and torn), after which the image must open, replay its
 * log, and return every write that a flush had made durable. */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "vhdx/guid.h"
#include "vhdx/header.h"
#include "vhdx/vhdx.h"

#define MiB (UINT64_C (1) << 20)

struct image {
  uint8_t *data;
  size_t len;
};

static struct image
snapshot (struct io *io)
{
  struct image im;
  const uint8_t *p = io_mem_data (io, &im.len);

  im.data = malloc (im.len);
  cr_assert_not_null (im.data);
  memcpy (im.data, p, im.len);
  return im;
}

static struct image
make (enum vhd_type type, uint64_t size, uint32_t bs, uint32_t ls,
      struct vhd_disk *parent)
{
  struct create_params p = {
    .type = parent ? VHD_TYPE_DIFFERENCING : type,
    .size = parent ? parent->size : size,
    .block_size = bs, .logical_sector = ls, .physical_sector = 4096,
    .parent = parent, .parent_rel_path = parent ? "parent.vhdx" : NULL,
    .parent_abs_path = parent ? "/images/parent.vhdx" : NULL,
  };
  struct io *io = io_mem_new (NULL, 0);
  struct image im;

  cr_assert_not_null (io);
  cr_assert_eq (vhdx_format_ops.create (io, &p), 0, "%s", vhd_get_error ());
  im = snapshot (io);
  io->ops->close (io);
  return im;
}

static struct vhd_disk *
open_image (const struct image *im, unsigned flags, struct vhd_disk *parent)
{
  struct vhd_disk *d = disk_open_io (io_mem_new (im->data, im->len),
                                     "mem.vhdx", flags, parent);
  cr_assert_not_null (d, "open: %s", vhd_get_error ());
  return d;
}

static void
fill (struct vhd_disk *d, uint8_t seed, size_t len, uint64_t off)
{
  uint8_t *buf = malloc (len);
  for (size_t i = 0; i < len; i++)
    buf[i] = (uint8_t) (seed + i * 7 + (i >> 9));
  cr_assert_eq (vhd_pwrite (d, buf, len, off), 0, "%s", vhd_get_error ());
  free (buf);
}

/* 0 when [off, off + len) holds fill's pattern for seed as written from
 * offset start (seed 0: zeros). */
static int
check_from (struct vhd_disk *d, uint8_t seed, uint64_t start, size_t len,
            uint64_t off)
{
  uint8_t *buf = malloc (len ? len : 1);
  int bad = 0;

  cr_assert_eq (vhd_pread (d, buf, len, off), 0, "%s", vhd_get_error ());
  for (size_t k = 0; k < len && !bad; k++) {
    uint64_t i = off - start + k;
    if (buf[k] != (seed ? (uint8_t) (seed + i * 7 + (i >> 9)) : 0))
      bad = 1;
  }
  free (buf);
  return bad;
}

static int
check (struct vhd_disk *d, uint8_t seed, size_t len, uint64_t off)
{
  return check_from (d, seed, off, len, off);
}

static bool
header_log_guid_zero (const struct image *im)
{
  struct vhdx_header h;
  unsigned which;

  cr_assert_eq (vhdx_header_select (im->data + VHDX_HEADER1_OFFSET,
                                    im->data + VHDX_HEADER2_OFFSET, &h,
                                    &which), 0, "%s", vhd_get_error ());
  return guid_is_zero (h.log_guid);
}

static void
write_reopen (uint32_t ls, uint32_t bs)
{
  struct image im = make (VHD_TYPE_DYNAMIC, 64 * MiB + 3 * ls, bs, ls, NULL);
  struct vhd_disk *d = open_image (&im, 0, NULL);

  cr_expect_eq (vhd_get_size (d), (int64_t) (64 * MiB + 3 * ls));
  cr_expect_eq (vhd_get_logical_sector_size (d), (int) ls);
  cr_expect_eq (vhd_get_type (d), VHD_TYPE_DYNAMIC);
  cr_expect_eq (vhd_get_allocated_bytes (d), 0);
  bs = (uint32_t) vhd_get_block_size (d);
  fill (d, 1, 3000, 100);                       /* unaligned, new block */
  fill (d, 2, 2 * MiB, bs - MiB / 2);           /* across blocks */
  fill (d, 3, ls, 64 * MiB + 2 * ls);           /* the last sector */
  cr_assert_eq (vhd_flush (d), 0, "%s", vhd_get_error ());
  struct image after = snapshot (d->io);
  vhd_close (d);
  cr_expect (header_log_guid_zero (&after), "flush leaves the log active");
  d = open_image (&after, VHD_OPEN_RDONLY, NULL);
  cr_expect_eq (vhd_get_log_dirty (d), 0);
  cr_expect_eq (check (d, 0, 100, 0), 0);
  cr_expect_eq (check (d, 1, 3000, 100), 0);
  cr_expect_eq (check (d, 0, bs - MiB / 2 - 3100, 3100), 0);
  cr_expect_eq (check (d, 2, 2 * MiB, bs - MiB / 2), 0);
  cr_expect_eq (check (d, 3, ls, 64 * MiB + 2 * ls), 0);
  vhd_close (d);
  free (im.data), free (after.data);
}

Test (vhdx_write, dynamic_512) { write_reopen (512, 1 * MiB); }
Test (vhdx_write, dynamic_4096) { write_reopen (4096, 2 * MiB); }
Test (vhdx_write, dynamic_default_block) { write_reopen (512, 0); }

Test (vhdx_write, fixed_is_fully_allocated)
{
  struct image im = make (VHD_TYPE_FIXED, 10 * MiB, 2 * MiB, 512, NULL);
  struct vhd_disk *d;

  cr_expect_geq (im.len, 10 * MiB + 4 * MiB);
  d = open_image (&im, 0, NULL);
  cr_expect_eq (vhd_get_type (d), VHD_TYPE_FIXED);
  cr_expect_eq (vhd_get_allocated_bytes (d), (int64_t) (10 * MiB));
  fill (d, 9, 5000, 3 * MiB);
  cr_assert_eq (vhd_flush (d), 0);
  cr_expect_eq (check (d, 9, 5000, 3 * MiB), 0);
  cr_expect_eq (check (d, 0, MiB, 0), 0);
  vhd_close (d);
  free (im.data);
}

/* Parent: 0x.. pattern over its first 5 MiB; child of it. */
static struct image
make_parent (void)
{
  struct image p = make (VHD_TYPE_DYNAMIC, 32 * MiB, MiB, 512, NULL);
  struct vhd_disk *d = open_image (&p, 0, NULL);
  struct image out;

  fill (d, 5, 5 * MiB, 0);
  fill (d, 11, MiB, 6 * MiB);
  cr_assert_eq (vhd_flush (d), 0);
  out = snapshot (d->io);
  vhd_close (d);
  free (p.data);
  return out;
}

Test (vhdx_write, differencing_sectors_fall_through)
{
  struct image pim = make_parent ();
  struct vhd_disk *parent = open_image (&pim, VHD_OPEN_RDONLY, NULL);
  struct image cim = make (0, 0, MiB, 512, parent);
  struct vhd_disk *d;
  uint8_t a[512], b[512];

  vhd_close (parent);
  parent = open_image (&pim, VHD_OPEN_RDONLY, NULL);
  d = open_image (&cim, 0, parent);
  cr_expect_eq (vhd_get_type (d), VHD_TYPE_DIFFERENCING);
  cr_expect_eq (memcmp (d->parent_link_id, parent->link_id, 16), 0);
  cr_expect_str_eq (d->parent_candidates[0], ".\\parent.vhdx");
  cr_expect_str_eq (d->parent_candidates[1], "\\images\\parent.vhdx");
  cr_expect_eq (check (d, 5, 5 * MiB, 0), 0);
  memset (a, 0xee, sizeof a);
  cr_assert_eq (vhd_pwrite (d, a, 512, MiB + 512), 0, "%s", vhd_get_error ());
  cr_assert_eq (vhd_pwrite (d, a, 100, 3 * MiB + 7), 0);   /* unaligned */
  cr_assert_eq (vhd_pwrite (d, a, 512, 9 * MiB), 0); /* past parent data */
  cr_assert_eq (vhd_flush (d), 0);
  struct image after = snapshot (d->io);
  vhd_close (d);
  parent = open_image (&pim, VHD_OPEN_RDONLY, NULL);
  d = open_image (&after, VHD_OPEN_RDONLY, parent);
  cr_expect_eq (check (d, 5, MiB + 512, 0), 0);
  cr_assert_eq (vhd_pread (d, b, 512, MiB + 512), 0);
  cr_expect_eq (memcmp (a, b, 512), 0);
  cr_expect_eq (check_from (d, 5, 0, MiB - 1024, MiB + 1024), 0,
                "rest of block");
  cr_assert_eq (vhd_pread (d, b, 100, 3 * MiB + 7), 0);
  cr_expect_eq (memcmp (a, b, 100), 0);
  cr_expect_eq (check_from (d, 5, 0, 7, 3 * MiB), 0,
                "sector head from parent");
  cr_expect_eq (check (d, 0, 512, 9 * MiB + 512), 0);
  cr_expect_eq (vhd_get_allocated_bytes (d), 3 * 512);
  vhd_close (d);
  free (pim.data), free (cim.data), free (after.data);
}

/* --- crash safety --------------------------------------------------------- */

/* A byte source over a memory one that "loses power" at a chosen write:
 * that write (torn: its first half stored) and everything after fail. */
struct crash_io {
  struct io io;
  struct io *inner;
  long left;
  bool tear, crashed;
};

static bool
crash_now (struct crash_io *c, const void *buf, size_t count, uint64_t off)
{
  if (c->crashed)
    return true;
  if (c->left < 0 || c->left-- > 0)
    return false;
  c->crashed = true;
  if (c->tear && buf && count > 1)
    c->inner->ops->pwrite (c->inner, buf, count / 2, off);
  set_error (EIO, "simulated crash");
  return true;
}

static int
c_pread (struct io *io, void *buf, size_t count, uint64_t off)
{
  struct crash_io *c = (struct crash_io *) io;
  return c->inner->ops->pread (c->inner, buf, count, off);
}

static int
c_pwrite (struct io *io, const void *buf, size_t count, uint64_t off)
{
  struct crash_io *c = (struct crash_io *) io;
  if (crash_now (c, buf, count, off))
    return -1;
  return c->inner->ops->pwrite (c->inner, buf, count, off);
}

static int
c_flush (struct io *io)
{
  struct crash_io *c = (struct crash_io *) io;
  if (c->crashed) {
    set_error (EIO, "simulated crash");
    return -1;
  }
  return 0;
}

static int64_t
c_get_size (struct io *io)
{
  struct crash_io *c = (struct crash_io *) io;
  return c->inner->ops->get_size (c->inner);
}

static int
c_truncate (struct io *io, uint64_t size)
{
  struct crash_io *c = (struct crash_io *) io;
  if (crash_now (c, NULL, 0, 0))
    return -1;
  return c->inner->ops->truncate (c->inner, size);
}

static int
c_punch (struct io *io, uint64_t off, uint64_t count)
{
  struct crash_io *c = (struct crash_io *) io;
  if (crash_now (c, NULL, 0, 0))
    return -1;
  return c->inner->ops->punch_hole (c->inner, off, count);
}

static int64_t
c_allocated (struct io *io)
{
  return c_get_size (io);
}

static void
c_close (struct io *io)
{
  struct crash_io *c = (struct crash_io *) io;
  c->inner->ops->close (c->inner);
  free (c);
}

static const struct io_ops crash_ops = {
  .name = "crash", .pread = c_pread, .pwrite = c_pwrite, .flush = c_flush,
  .get_size = c_get_size, .truncate = c_truncate, .punch_hole = c_punch,
  .allocated = c_allocated, .close = c_close,
};

/* Open the image over a crash source that fails at write n (n < 0:
 * never); *counter then counts write points. */
static struct vhd_disk *
open_crashing (const struct image *im, long n, bool tear,
               struct vhd_disk *parent)
{
  struct crash_io *c = calloc (1, sizeof *c);
  struct vhd_disk *d;

  cr_assert_not_null (c);
  c->io.ops = &crash_ops;
  c->inner = io_mem_new (im->data, im->len);
  c->left = n;
  c->tear = tear;
  d = disk_open_io (&c->io, "crash.vhdx", 0, parent);
  cr_assert_not_null (d, "open: %s", vhd_get_error ());
  return d;
}

static struct io *
inner_of (struct vhd_disk *d)
{
  return ((struct crash_io *) d->io)->inner;
}

struct op {
  uint8_t seed;      /* 0: flush */
  size_t len;
  uint64_t off;
};

/* New blocks, a second write into an allocated block, writes that span
 * blocks, unaligned ones, and flushes between. */
static const struct op workload[] = {
  { 1, 4096, 0 }, { 2, 700, MiB + 300 }, { 0, 0, 0 },
  { 3, 2 * MiB, 3 * MiB - 4096 }, { 4, 512, 8192 }, { 0, 0, 0 },
  { 5, 1000, 10 * MiB + 5 }, { 6, 512, 15 * MiB + 512 }, { 0, 0, 0 },
  { 7, 4096, 12 * MiB }, { 0, 0, 0 },
};
#define N_OPS (sizeof workload / sizeof workload[0])

/* Run the workload until a write or flush fails; returns the number of
 * ops known durable (before the last successful flush). */
static size_t
run_workload (struct vhd_disk *d)
{
  size_t i, durable = 0;
  uint8_t *buf = malloc (4 * MiB);

  for (i = 0; i < N_OPS; i++) {
    const struct op *o = &workload[i];
    if (o->seed == 0) {
      if (vhd_flush (d) == -1)
        break;
      durable = i + 1;
      continue;
    }
    for (size_t k = 0; k < o->len; k++)
      buf[k] = (uint8_t) (o->seed + k * 7 + (k >> 9));
    if (vhd_pwrite (d, buf, o->len, o->off) == -1)
      break;
  }
  free (buf);
  return durable;
}

static void
verify_durable (struct vhd_disk *d, size_t durable, bool differencing)
{
  size_t i;

  for (i = 0; i < durable; i++)
    if (workload[i].seed)
      cr_assert_eq (check (d, workload[i].seed, workload[i].len,
                           workload[i].off), 0,
                    "flushed write %zu lost", i);
  /* untouched ranges: zeros, or the parent's pattern */
  if (differencing)
    cr_assert_eq (check (d, 11, MiB, 6 * MiB), 0, "parent data");
  else
    cr_assert_eq (check (d, 0, 4096, 20 * MiB), 0, "zeros");
}

static void
crash_test (bool differencing)
{
  struct image pim = { 0 }, im, crashed;
  struct vhd_disk *parent = NULL, *d;
  long total, n;
  int tear;

  if (differencing) {
    pim = make_parent ();
    parent = open_image (&pim, VHD_OPEN_RDONLY, NULL);
  }
  im = make (VHD_TYPE_DYNAMIC, 32 * MiB, MiB, 512, parent);
  vhd_close (parent);
#define PARENT (differencing ? open_image (&pim, VHD_OPEN_RDONLY, NULL) : NULL)
  d = open_crashing (&im, -1, false, PARENT);
  cr_assert_eq (run_workload (d), N_OPS, "clean run: %s", vhd_get_error ());
  total = io_mem_write_count (inner_of (d));
  vhd_close (d);
  cr_log_info ("%s: %ld write points, each cut cleanly and torn",
               differencing ? "differencing" : "dynamic", total);
  cr_assert_gt (total, 20);
  for (n = 0; n <= total; n++)
    for (tear = 0; tear < 2; tear++) {
      d = open_crashing (&im, n, tear, PARENT);
      size_t durable = run_workload (d);
      crashed = snapshot (inner_of (d));
      vhd_close (d);
      /* read-only first: the replay must leave the file as it is */
      struct vhd_disk *ro = disk_open_io (io_mem_new (crashed.data,
                                                      crashed.len),
                                          "crashed.vhdx", VHD_OPEN_RDONLY,
                                          PARENT);
      cr_assert_not_null (ro, "crash at write %ld%s: read-only open: %s", n,
                          tear ? " (torn)" : "", vhd_get_error ());
      verify_durable (ro, durable, differencing);
      vhd_close (ro);
      d = disk_open_io (io_mem_new (crashed.data, crashed.len),
                        "crashed.vhdx", 0, PARENT);
      cr_assert_not_null (d, "crash at write %ld%s: open: %s", n,
                          tear ? " (torn)" : "", vhd_get_error ());
      verify_durable (d, durable, differencing);
      /* and the recovered image takes writes again */
      fill (d, 8, 1024, 20 * MiB + 512);
      cr_assert_eq (vhd_flush (d), 0, "%s", vhd_get_error ());
      cr_assert_eq (check (d, 8, 1024, 20 * MiB + 512), 0);
      vhd_close (d);
      free (crashed.data);
    }
  free (im.data);
  free (pim.data);
}

Test (vhdx_crash, dynamic_every_write, .timeout = 300) { crash_test (false); }
Test (vhdx_crash, differencing_every_write, .timeout = 300)
{
  crash_test (true);
}

/* Writes that allocate wait for the flush: eight new blocks take no
 * log entry until it, then one; they read back before and after. */
Test (vhdx_write, allocations_share_one_log_entry_at_the_flush)
{
  struct image im = make (VHD_TYPE_DYNAMIC, 32 * MiB, MiB, 512, NULL);
  struct vhd_disk *d = open_image (&im, 0, NULL);
  struct vhdx *v = d->priv;
  uint64_t seq;
  uint8_t k;

  fill (d, 1, 4096, 0); /* the first write renews the headers */
  cr_assert_eq (vhd_flush (d), 0, "%s", vhd_get_error ());
  seq = v->log_sequence;
  for (k = 2; k < 10; k++)
    fill (d, k, 4096, (uint64_t) k * 3 * MiB / 2);
  cr_expect_eq (v->log_sequence, seq, "no log entry before the flush");
  for (k = 2; k < 10; k++)
    cr_expect_eq (check (d, k, 4096, (uint64_t) k * 3 * MiB / 2), 0,
                  "block %u reads back before the flush", k);
  cr_assert_eq (vhd_flush (d), 0, "%s", vhd_get_error ());
  cr_expect_eq (v->log_sequence, seq + 1, "one log entry for eight blocks");
  struct image after = snapshot (d->io);
  vhd_close (d);
  d = open_image (&after, VHD_OPEN_RDONLY, NULL);
  for (k = 1; k < 10; k++)
    cr_expect_eq (check (d, k, 4096, k == 1 ? 0 : (uint64_t) k * 3 * MiB / 2),
                  0, "block %u after reopening", k);
  vhd_close (d);
  free (after.data);
  free (im.data);
}

/* A write that fails after another one's allocation waits for the flush:
 * the flush reports that writes may be lost instead of claiming them. */
Test (vhdx_write, a_failed_write_makes_the_next_flush_fail)
{
  struct image im = make (VHD_TYPE_DYNAMIC, 32 * MiB, MiB, 512, NULL);
  uint8_t buf[4096] = { 0x5a };
  bool seen = false;

  for (long n = 0; n < 20 && !seen; n++) {
    struct vhd_disk *d = open_crashing (&im, n, false, NULL);
    if (vhd_pwrite (d, buf, sizeof buf, 0) == 0
        && vhd_pwrite (d, buf, sizeof buf, 4 * MiB) == -1) {
      seen = true;
      cr_expect_eq (vhd_flush (d), -1, "the flush claims the first write");
      cr_expect_eq (vhd_get_errno (), EIO);
      cr_expect (strstr (vhd_get_error (), "may be lost") != NULL, "%s",
                 vhd_get_error ());
    }
    vhd_close (d);
  }
  cr_expect (seen, "no write point failed the second write alone");
  free (im.data);
}

/* A crash that leaves a live log entry: found by crashing at each write
 * until an image opens with a dirty log.  Read-only: replayed in memory,
 * file bytes unchanged.  Read-write: replayed in place, log retired. */
Test (vhdx_log, replay_read_only_and_in_place)
{
  struct image im = make (VHD_TYPE_DYNAMIC, 32 * MiB, MiB, 512, NULL);
  long n;
  bool found = false;

  for (n = 0; n < 40 && !found; n++) {
    struct vhd_disk *d = open_crashing (&im, n, false, NULL);
    /* The write's BAT change goes through the log at the flush. */
    if (vhd_pwrite (d, (uint8_t[4096]) { 0x42 }, 4096, 5 * MiB) == 0
        && vhd_flush (d) == 0) {
      vhd_close (d);
      break;
    }
    struct image c = snapshot (inner_of (d));
    vhd_close (d);
    struct vhd_disk *ro = open_image (&c, VHD_OPEN_RDONLY, NULL);
    if (vhd_get_log_dirty (ro)) {
      uint8_t b[4096];
      size_t len;
      found = true;
      cr_assert_eq (vhd_pread (ro, b, 4096, 5 * MiB), 0);
      cr_expect_eq (b[0], 0x42, "the replayed block is visible");
      /* the overlay wraps the file: the file's bytes are unchanged */
      cr_expect_eq (ro->io->ops->pwrite (ro->io, b, 1, 0), -1);
      vhd_close (ro);
      (void) len;
      struct vhd_disk *rw = open_image (&c, 0, NULL);
      cr_expect_eq (vhd_get_log_dirty (rw), 1);
      cr_assert_eq (vhd_pread (rw, b, 4096, 5 * MiB), 0);
      cr_expect_eq (b[0], 0x42);
      struct image fixed = snapshot (rw->io);
      vhd_close (rw);
      cr_expect (header_log_guid_zero (&fixed), "log retired after replay");
      struct vhd_disk *again = open_image (&fixed, VHD_OPEN_RDONLY, NULL);
      cr_expect_eq (vhd_get_log_dirty (again), 0);
      cr_assert_eq (vhd_pread (again, b, 4096, 5 * MiB), 0);
      cr_expect_eq (b[0], 0x42);
      vhd_close (again);
      free (fixed.data);
    }
    else
      vhd_close (ro);
    free (c.data);
  }
  cr_expect (found, "no crash point left a live log entry");
  free (im.data);
}

/* 4096-byte logical sectors in a differencing chain: one bit of the
 * sector bitmap per 4 KiB, 2 MiB blocks. */
Test (vhdx_write, differencing_4096)
{
  struct image p = make (VHD_TYPE_DYNAMIC, 16 * MiB, 2 * MiB, 4096, NULL);
  struct vhd_disk *d = open_image (&p, 0, NULL), *parent;
  struct image pim, cim, after;

  fill (d, 3, 6 * MiB, 0);
  cr_assert_eq (vhd_flush (d), 0);
  pim = snapshot (d->io);
  vhd_close (d);
  parent = open_image (&pim, VHD_OPEN_RDONLY, NULL);
  cim = make (0, 0, 2 * MiB, 512, parent);
  vhd_close (parent);
  d = open_image (&cim, 0, open_image (&pim, VHD_OPEN_RDONLY, NULL));
  cr_expect_eq (vhd_get_logical_sector_size (d), 4096);
  fill (d, 4, 100, 2 * MiB + 4096 + 50);        /* one sector, unaligned */
  fill (d, 6, 8192, 7 * MiB);                   /* past the parent's data */
  cr_assert_eq (vhd_flush (d), 0);
  after = snapshot (d->io);
  vhd_close (d);
  d = open_image (&after, VHD_OPEN_RDONLY,
                  open_image (&pim, VHD_OPEN_RDONLY, NULL));
  cr_expect_eq (check_from (d, 3, 0, 2 * MiB + 4096 + 50, 0), 0);
  cr_expect_eq (check (d, 4, 100, 2 * MiB + 4096 + 50), 0);
  cr_expect_eq (check_from (d, 3, 0, 4096 - 150, 2 * MiB + 4096 + 150), 0);
  cr_expect_eq (check_from (d, 3, 0, 2 * MiB, 4 * MiB), 0);
  cr_expect_eq (check (d, 6, 8192, 7 * MiB), 0);
  cr_expect_eq (check (d, 0, 4096, 7 * MiB + 8192), 0);
  cr_expect_eq (vhd_get_allocated_bytes (d), 4096 + 8192);
  vhd_close (d);
  free (p.data), free (pim.data), free (cim.data), free (after.data);
}

/* Zeroing whole blocks marks them ZERO (file offset 0) through the log;
 * in a differencing disk that hides the parent's data. */
Test (vhdx_write, zero_blocks)
{
  struct image pim = make_parent ();
  struct vhd_disk *parent = open_image (&pim, VHD_OPEN_RDONLY, NULL);
  struct image cim = make (0, 0, MiB, 512, parent);
  struct vhd_disk *d;
  struct image after;

  vhd_close (parent);
  d = open_image (&cim, 0, open_image (&pim, VHD_OPEN_RDONLY, NULL));
  fill (d, 9, 4096, 3 * MiB);
  cr_assert_eq (vhd_write_zeroes (d, MiB, 3 * MiB, 0), 0, "%s",
                vhd_get_error ());
  cr_expect_eq (check (d, 0, 3 * MiB, MiB), 0);
  cr_expect_eq (check_from (d, 5, 0, MiB, 0), 0, "block 0 still the parent's");
  cr_expect_eq (check_from (d, 5, 0, MiB, 4 * MiB), 0);
  /* the allocated block was written as zero data (no MAY_UNMAP) ... */
  cr_expect_eq (vhd_get_allocated_bytes (d), (int64_t) MiB);
  /* ... and goes with a discard */
  cr_assert_eq (vhd_discard (d, 3 * MiB, MiB), 0, "%s", vhd_get_error ());
  cr_expect_eq (vhd_get_allocated_bytes (d), 0);
  cr_assert_eq (vhd_flush (d), 0);
  after = snapshot (d->io);
  vhd_close (d);
  d = open_image (&after, VHD_OPEN_RDONLY,
                  open_image (&pim, VHD_OPEN_RDONLY, NULL));
  cr_expect_eq (check (d, 0, 3 * MiB, MiB), 0);
  cr_expect_eq (check_from (d, 5, 0, MiB, 4 * MiB), 0);
  vhd_close (d);
  free (pim.data), free (cim.data), free (after.data);
}

Test (vhdx_write, discard_in_base_disk)
{
  struct image im = make (VHD_TYPE_DYNAMIC, 8 * MiB, MiB, 512, NULL);
  struct vhd_disk *d = open_image (&im, 0, NULL);

  fill (d, 2, 3 * MiB, MiB);
  cr_assert_eq (vhd_discard (d, MiB, 2 * MiB + 512), 0, "%s",
                vhd_get_error ());
  cr_expect_eq (check (d, 0, 2 * MiB + 512, MiB), 0);
  cr_expect_eq (check_from (d, 2, MiB, MiB - 512, 3 * MiB + 512), 0);
  cr_expect_eq (vhd_get_allocated_bytes (d), (int64_t) MiB);
  vhd_close (d);
  free (im.data);
}
