/* test-ops-crash-copy-commit.c: crash safety of two write paths, convert
 * into a new image (vhd_copy, libvhd/copy.c) and commit (libvhd/ops/
 * commit.c), for VHD and VHDX.
 *
 * Each scenario runs the whole write path once to count its writes
 * (pwrite, truncate and punch of every byte source it writes, the final
 * close included), then again from scratch for every N from 0 to that
 * count, crashing after N writes, whole and with the failing write torn
 * in half.  The crash is global: a byte-source wrapper counts the writes
 * to all the files of the path (commit writes the parent, then the child)
 * and, at the N-th, arms io_mem_fail_after on every memory source, so the
 * failing write tears as io-mem.c tears it and every later write or flush
 * of any file fails.  What is left must then:
 *
 *   convert  open; every sector of the destination reads as zeros (its
 *            content before) or the source's (after), never anything
 *            else; once the final flush is done, exactly the source; check
 *            --repair leaves no corruption and the same content, and a
 *            read-write open and flush keep it;
 *   commit   open as a chain that reads exactly as before (commit never
 *            changes the view), with the child linked to the parent's
 *            current identity (what a path-based open checks); the parent
 *            alone reads, per sector, its old content or the chain's;
 *            check --repair leaves neither file corrupt; committing again
 *            then completes: the parent alone reads as the chain and the
 *            child holds nothing.
 *
 * vhd_commit opens the parent by path (disk_open_path), which a memory
 * image cannot be, so this file includes commit.c and runs its steps in
 * the order commit_unlocked does (run_commit_steps below; keep the two in
 * step).  The test program then defines vhd_commit itself and the
 * archive's commit.o is not linked.
 */
#undef NDEBUG /* Keep test strong */
#include "ops/commit.c"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "vhd-ops-helpers.h"

#define DISK (8 * MiB)
#define SECTORS (DISK / SECTOR_SIZE)

/* --- a byte source that crashes with the others ------------------------- */

#define MAX_FILES 4

struct crash {
  long left;          /* writes still allowed; < 0: never crash */
  bool tear, crashed;
  long writes;        /* writes that went through */
  long step1;         /* writes when step 1 of commit had flushed */
  struct io *mem[MAX_FILES]; /* the memory sources, owned here */
  unsigned n;
};

struct cio {
  struct io io;
  struct io *mem;
  struct crash *k;
};

/* Called before each write of c: at the crash point, every memory source
 * is armed to fail its next write (this one's tearing when asked). */
static void
before_write (struct cio *c)
{
  struct crash *k = c->k;
  unsigned i;

  if (k->crashed || k->left < 0)
    return;
  if (k->left > 0) {
    k->left--;
    return;
  }
  k->crashed = true;
  for (i = 0; i < k->n; i++)
    io_mem_fail_after (k->mem[i], 0, k->tear && k->mem[i] == c->mem);
}

static int
cio_pread (struct io *io, void *buf, size_t count, uint64_t offset)
{
  struct cio *c = (struct cio *) io;

  return io_pread (c->mem, buf, count, offset);
}

static int
cio_pwrite (struct io *io, const void *buf, size_t count, uint64_t offset)
{
  struct cio *c = (struct cio *) io;
  int r;

  if (count == 0)
    return io_pwrite (c->mem, buf, count, offset);
  before_write (c);
  r = io_pwrite (c->mem, buf, count, offset);
  c->k->writes += r == 0;
  return r;
}

static int
cio_flush (struct io *io)
{
  struct cio *c = (struct cio *) io;

  if (c->k->crashed) {
    set_error (EIO, "simulated crash");
    return -1;
  }
  return io_flush (c->mem);
}

static int64_t
cio_get_size (struct io *io)
{
  return io_get_size (((struct cio *) io)->mem);
}

static int
cio_truncate (struct io *io, uint64_t size)
{
  struct cio *c = (struct cio *) io;
  int r;

  before_write (c);
  r = c->mem->ops->truncate (c->mem, size);
  c->k->writes += r == 0;
  return r;
}

static int
cio_punch_hole (struct io *io, uint64_t offset, uint64_t count)
{
  struct cio *c = (struct cio *) io;
  int r;

  before_write (c);
  r = c->mem->ops->punch_hole (c->mem, offset, count);
  c->k->writes += r == 0;
  return r;
}

static int
cio_run_at (struct io *io, uint64_t offset, bool *data, uint64_t *length)
{
  struct cio *c = (struct cio *) io;

  return c->mem->ops->run_at (c->mem, offset, data, length);
}

static int64_t
cio_allocated (struct io *io)
{
  struct cio *c = (struct cio *) io;

  return c->mem->ops->allocated (c->mem);
}

/* The memory source stays with the crash, for its bytes afterwards. */
static void
cio_close (struct io *io)
{
  free (io);
}

static const struct io_ops cio_ops = {
  .name = "crash",
  .pread = cio_pread,
  .pwrite = cio_pwrite,
  .flush = cio_flush,
  .get_size = cio_get_size,
  .truncate = cio_truncate,
  .punch_hole = cio_punch_hole,
  .run_at = cio_run_at,
  .allocated = cio_allocated,
  .close = cio_close,
};

static void
crash_init (struct crash *k, long n, bool tear)
{
  memset (k, 0, sizeof *k);
  k->left = n;
  k->tear = tear;
}

/* A crashing source over a copy of bytes; returns its index in k. */
static struct io *
crash_io (struct crash *k, const uint8_t *bytes, size_t len, unsigned *index)
{
  struct cio *c = calloc (1, sizeof *c);

  cr_assert_not_null (c);
  cr_assert_lt (k->n, MAX_FILES);
  c->mem = io_mem_new (bytes, len);
  cr_assert_not_null (c->mem);
  c->io.ops = &cio_ops;
  c->k = k;
  *index = k->n;
  k->mem[k->n++] = c->mem;
  return &c->io;
}

static void
crash_free (struct crash *k)
{
  unsigned i;

  for (i = 0; i < k->n; i++)
    k->mem[i]->ops->close (k->mem[i]);
  k->n = 0;
}

/* --- images in memory ----------------------------------------------------- */

static void
take_bytes (struct io *mem, struct image *img)
{
  size_t len;
  const uint8_t *p = io_mem_data (mem, &len);

  free (img->bytes);
  img->bytes = copy_of (p, len);
  img->len = len;
}

static struct vhd_disk *
open_mem (const struct image *img, const char *name, unsigned flags,
          struct vhd_disk *parent)
{
  return disk_open_io (io_mem_new (img->bytes, img->len), name, flags,
                       parent);
}

static struct vhd_disk *
must_open_mem (const struct image *img, const char *name, unsigned flags,
               struct vhd_disk *parent)
{
  struct vhd_disk *d = open_mem (img, name, flags, parent);

  cr_assert_not_null (d, "open %s: %s", name, vhd_get_error ());
  return d;
}

/* A new empty image of the format; parent (open) for a differencing one. */
static void
make_format_image (struct image *img, const struct format_ops *fmt,
            enum vhd_type type, uint32_t block_size, struct vhd_disk *parent,
            const char *parent_path)
{
  struct create_params p = { .type = type, .size = DISK,
                             .block_size = block_size };
  struct io *io = io_mem_new (NULL, 0);

  if (fmt == &vhdx_format_ops)
    p.logical_sector = 512, p.physical_sector = 4096;
  if (parent) {
    p.type = VHD_TYPE_DIFFERENCING;
    p.size = parent->size;
    p.parent = parent;
    p.parent_path = parent_path;
    p.parent_abs_path = parent_path;
    p.parent_rel_path = strrchr (parent_path, '/') + 1;
  }
  cr_assert_eq (fmt->create (io, &p), 0, "%s", vhd_get_error ());
  memset (img, 0, sizeof *img);
  take_bytes (io, img);
  io->ops->close (io);
}

static void
zero (struct vhd_disk *d, uint8_t *view, uint64_t offset, size_t len)
{
  cr_assert_eq (vhd_write_zeroes (d, offset, len, 0), 0, "%s",
                vhd_get_error ());
  memset (view + offset, 0, len);
}

/* --- what a crash may leave ------------------------------------------------ */

/* Sector got is version a or b, or (torn) a's head and b's tail or the
 * reverse: no format makes a torn sector atomic. */
static bool
sector_ok (const uint8_t *got, const uint8_t *a, const uint8_t *b, bool tear)
{
  const uint8_t *v[2] = { a, b };
  unsigned i;
  size_t k;

  if (memcmp (got, a, SECTOR_SIZE) == 0 || memcmp (got, b, SECTOR_SIZE) == 0)
    return true;
  for (i = 0; tear && i < 2; i++) {
    for (k = 0; k < SECTOR_SIZE && got[k] == v[i][k]; k++)
      ;
    if (memcmp (got + k, v[1 - i] + k, SECTOR_SIZE - k) == 0)
      return true;
  }
  return false;
}

/* Every sector of d is old's or new's; the first one that is not, or -1. */
static int64_t
bad_sector (struct vhd_disk *d, const uint8_t *old, const uint8_t *new,
            bool tear)
{
  uint8_t *got = read_all (d);
  uint64_t s;
  int64_t bad = -1;

  for (s = 0; s < d->size / SECTOR_SIZE && bad < 0; s++)
    if (!sector_ok (got + s * SECTOR_SIZE, old + s * SECTOR_SIZE,
                    new + s * SECTOR_SIZE, tear))
      bad = (int64_t) s;
  free (got);
  return bad;
}

/* First byte where d differs from want, or -1. */
static int64_t
differs (struct vhd_disk *d, const uint8_t *want)
{
  uint8_t *got = read_all (d);
  int64_t at = -1;
  uint64_t i;

  if (memcmp (got, want, d->size) != 0)
    for (i = 0; at < 0; i++)
      if (got[i] != want[i])
        at = (int64_t) i;
  free (got);
  return at;
}

static void
on_finding (void *opaque, int severity, const char *message)
{
  char *text = opaque;
  size_t len = strlen (text);

  if (severity == VHD_CHECK_CORRUPT && len < 2000)
    snprintf (text + len, 2048 - len, "%s; ", message);
}

/* check --repair over the bytes: no corruption may be left. */
static void
repair (const struct format_ops *fmt, struct image *img, const char *what)
{
  struct io *io = io_mem_new (img->bytes, img->len);
  char text[2048] = "";
  struct check_ctx c = { true, 0, on_finding, text };

  cr_assert_eq (fmt->check (io, &c), 0, "%s: check: %s", what,
                vhd_get_error ());
  cr_assert_eq (c.found & VHD_CHECK_CORRUPT, 0,
                "%s: check --repair leaves corruption: %s", what, text);
  take_bytes (io, img);
  io->ops->close (io);
}

/* --- convert --------------------------------------------------------------- */

struct copy_case {
  const char *name;
  const struct format_ops *fmt; /* of the destination */
  uint32_t block_size;
  struct image src, dst;        /* the source; the new, empty destination */
  uint8_t *view, *zeros;        /* the source's content; all zeros */
};

/* Convert crashing after n writes (< 0: never): open the destination,
 * copy, close, as vhdtool convert does.  The bytes left go to *left. */
static long
run_copy (const struct copy_case *cc, long n, bool tear, struct image *left)
{
  struct crash k;
  struct vhd_disk *src, *dst;
  unsigned i;
  long writes;
  int r;

  crash_init (&k, n, tear);
  src = must_open_mem (&cc->src, "src.vhd", VHD_OPEN_RDONLY, NULL);
  dst = disk_open_io (crash_io (&k, cc->dst.bytes, cc->dst.len, &i),
                      "dst", 0, NULL);
  cr_assert_not_null (dst, "%s: open: %s", cc->name, vhd_get_error ());
  r = vhd_copy (src, dst, NULL, NULL);
  if (n < 0)
    cr_assert_eq (r, 0, "%s: %s", cc->name, vhd_get_error ());
  vhd_close (dst);
  vhd_close (src);
  writes = k.writes;
  memset (left, 0, sizeof *left);
  take_bytes (k.mem[i], left);
  crash_free (&k);
  return writes;
}

static void
verify_copy (const struct copy_case *cc, struct image *left, long n,
             bool tear, bool done)
{
  const char *how = tear ? " (torn)" : "";
  struct vhd_disk *d = open_mem (left, "dst", VHD_OPEN_RDONLY, NULL);
  uint8_t *before;
  int64_t bad;
  char what[128];

  cr_assert_not_null (d, "%s, crash after %ld writes%s: reopen: %s",
                      cc->name, n, how, vhd_get_error ());
  cr_assert_eq (d->size, DISK, "%s, crash after %ld writes%s: size %"
                PRIu64, cc->name, n, how, d->size);
  bad = bad_sector (d, cc->zeros, cc->view, tear);
  cr_assert_eq (bad, -1, "%s, crash after %ld writes%s: sector %" PRId64
                " is neither zeros nor the source's", cc->name, n, how, bad);
  if (done)
    cr_assert_eq (differs (d, cc->view), -1, "%s, after the final flush "
                  "(%ld writes): byte %" PRId64 " is not the source's",
                  cc->name, n, differs (d, cc->view));
  before = read_all (d);
  vhd_close (d);

  snprintf (what, sizeof what, "%s, crash after %ld writes%s", cc->name, n,
            how);
  repair (cc->fmt, left, what);
  d = must_open_mem (left, "dst", 0, NULL);
  cr_assert_eq (differs (d, before), -1, "%s: check --repair changed byte %"
                PRId64, what, differs (d, before));
  cr_assert_eq (vhd_flush (d), 0, "%s", vhd_get_error ());
  take_bytes (d->io, left);
  vhd_close (d);
  d = must_open_mem (left, "dst", VHD_OPEN_RDONLY, NULL);
  cr_assert_eq (differs (d, before), -1, "%s: a read-write open changed "
                "byte %" PRId64, what, differs (d, before));
  vhd_close (d);
  free (before);
}

/* The source: a VHD with data in three of its four 2 MiB blocks, partly,
 * with zero pieces (left out of a dynamic destination) among the data. */
static void
copy_case_init (struct copy_case *cc, const char *name,
                const struct format_ops *fmt, uint32_t block_size)
{
  struct vhd_disk *d;

  memset (cc, 0, sizeof *cc);
  cc->name = name;
  cc->fmt = fmt;
  cc->block_size = block_size;
  cc->view = calloc (1, DISK);
  cc->zeros = calloc (1, DISK);
  cr_assert (cc->view && cc->zeros);
  make_format_image (&cc->src, &vhd_format_ops, VHD_TYPE_DYNAMIC, 0, NULL, NULL);
  d = must_open_mem (&cc->src, "src.vhd", 0, NULL);
  fill (d, cc->view, 0, 1536 * KiB, 1);
  zero (d, cc->view, 256 * KiB, 128 * KiB);     /* a zero piece inside */
  fill (d, cc->view, 2 * MiB + 4096, 1536, 2);  /* a few sectors */
  fill (d, cc->view, 3 * MiB + 512 * KiB, 4 * MiB, 3); /* across blocks */
  fill (d, cc->view, DISK - 512, 512, 4);       /* the last sector */
  cr_assert_eq (vhd_flush (d), 0);
  take_bytes (d->io, &cc->src);
  vhd_close (d);
  make_format_image (&cc->dst, fmt, VHD_TYPE_DYNAMIC, block_size, NULL, NULL);
}

static void
copy_case_free (struct copy_case *cc)
{
  free (cc->src.bytes);
  free (cc->dst.bytes);
  free (cc->view);
  free (cc->zeros);
}

static void
copy_everywhere (struct copy_case *cc)
{
  struct image left = { NULL, 0, NULL };
  long total, n, points = 0;
  int tear;

  total = run_copy (cc, -1, false, &left);
  verify_copy (cc, &left, total, false, true);
  cr_assert_gt (total, 0);
  for (tear = 0; tear <= 1; tear++)
    for (n = 0; n <= total; n++) {
      free (left.bytes);
      run_copy (cc, n, tear, &left);
      verify_copy (cc, &left, n, tear, n >= total);
      points++;
    }
  cr_log_info ("%s: %ld writes, %ld crash points tested (whole and torn)",
               cc->name, total, points);
  free (left.bytes);
  copy_case_free (cc);
}

Test (copy_crash, into_vhd_dynamic, .timeout = 600)
{
  struct copy_case cc;

  copy_case_init (&cc, "convert into VHD dynamic", &vhd_format_ops,
                  2 * MiB);
  copy_everywhere (&cc);
}

Test (copy_crash, into_vhdx_dynamic, .timeout = 600)
{
  struct copy_case cc;

  copy_case_init (&cc, "convert into VHDX dynamic", &vhdx_format_ops, MiB);
  copy_everywhere (&cc);
}

/* A source whose reads fail from the n-th on, for every n: the copy
 * fails with the source's error, raised in the calling thread, and
 * never hangs (every thread of the pipeline stops). */
/* Copy cc's source into a fresh destination, the source's reads failing
 * from the n-th on (n < 0: never); returns vhd_copy's result and sets
 * *reads to the reads the copy made. */
static int
copy_failing_reads (const struct copy_case *cc, long n, long *reads)
{
  struct vhd_disk *src = must_open_mem (&cc->src, "src.vhd",
                                        VHD_OPEN_RDONLY, NULL);
  struct vhd_disk *dst = must_open_mem (&cc->dst, "dst", 0, NULL);
  long before = io_mem_read_count (src->io);
  int r;

  if (n >= 0)
    io_mem_fail_reads_after (src->io, n);
  r = vhd_copy (src, dst, NULL, NULL);
  *reads = io_mem_read_count (src->io) - before;
  vhd_close (dst);
  vhd_close (src);
  return r;
}

/* A source whose reads fail from the n-th on, for every n: the copy
 * fails with the source's error, raised in the calling thread, and
 * never hangs (every thread of the pipeline stops). */
static void
read_error_everywhere (struct copy_case *cc)
{
  long total, reads, n;

  cr_assert_eq (copy_failing_reads (cc, -1, &total), 0, "%s: %s", cc->name,
                vhd_get_error ());
  cr_assert_gt (total, 0);
  for (n = 0; n < total; n++) {
    cr_assert_eq (copy_failing_reads (cc, n, &reads), -1,
                  "%s: read %ld failed, the copy did not", cc->name, n);
    cr_assert_eq (vhd_get_errno (), EIO, "%s, read %ld: %s", cc->name, n,
                  vhd_get_error ());
    cr_assert (strstr (vhd_get_error (), "vhd_copy: ") == vhd_get_error ()
               && strstr (vhd_get_error (), "injected read error"),
               "%s, read %ld: %s", cc->name, n, vhd_get_error ());
  }
  cr_log_info ("%s: a read error at each of %ld reads", cc->name, total);
  copy_case_free (cc);
}

Test (copy_errors, source_read_fails_anywhere, .timeout = 300)
{
  struct copy_case cc;

  copy_case_init (&cc, "convert into VHDX from a failing source",
                  &vhdx_format_ops, MiB);
  read_error_everywhere (&cc);
}

/* --- commit ---------------------------------------------------------------- */

/* resolve_parent_paths (in empty_child) wants the files to exist: they
 * live in test_dir (dir_setup, vhd-ops-helpers.h). */

struct commit_case {
  const char *name;
  const struct format_ops *fmt;
  char parent_path[256], child_path[256];
  struct image parent, child;
  uint8_t *old_parent;   /* the parent alone, before */
  uint8_t *view;         /* the chain, before and after */
  long step1;            /* writes until step 1 has flushed */
};

static void
touch (const char *path)
{
  int fd = open (path, O_CREAT | O_WRONLY, 0644);

  cr_assert_geq (fd, 0, "%s", path);
  close (fd);
}

/* A parent with data in blocks 0, 1 and 3, and a child over it that holds
 * whole blocks, parts of blocks, zeros and a block the parent lacks. */
static void
commit_case_init (struct commit_case *cc, const char *name,
                  const struct format_ops *fmt, uint32_t block_size)
{
  const char *ext = fmt == &vhdx_format_ops ? "vhdx" : "vhd";
  struct vhd_disk *p, *c;

  memset (cc, 0, sizeof *cc);
  cc->name = name;
  cc->fmt = fmt;
  snprintf (cc->parent_path, sizeof cc->parent_path, "%s/base.%s", test_dir, ext);
  snprintf (cc->child_path, sizeof cc->child_path, "%s/child.%s", test_dir, ext);
  touch (cc->parent_path);
  touch (cc->child_path);
  cc->view = calloc (1, DISK);
  cr_assert_not_null (cc->view);

  make_format_image (&cc->parent, fmt, VHD_TYPE_DYNAMIC, block_size, NULL, NULL);
  p = must_open_mem (&cc->parent, cc->parent_path, 0, NULL);
  fill (p, cc->view, 0, 2 * MiB, 10);
  fill (p, cc->view, 2 * MiB + 64 * KiB, 256 * KiB, 11);
  fill (p, cc->view, 6 * MiB, 2 * MiB, 12);
  cr_assert_eq (vhd_flush (p), 0);
  take_bytes (p->io, &cc->parent);
  vhd_close (p);
  cc->old_parent = copy_of (cc->view, DISK);

  p = must_open_mem (&cc->parent, cc->parent_path, VHD_OPEN_RDONLY, NULL);
  make_format_image (&cc->child, fmt, VHD_TYPE_DIFFERENCING, block_size, p,
              cc->parent_path);
  c = must_open_mem (&cc->child, cc->child_path, 0, p);
  fill (c, cc->view, 0, MiB, 20);                   /* a whole block */
  fill (c, cc->view, MiB + 4096, 1024, 21);         /* a few sectors */
  fill (c, cc->view, 2 * MiB + 128 * KiB, 512, 22); /* in parent data */
  fill (c, cc->view, 4 * MiB + 512 * KiB, MiB, 23); /* parent lacks it */
  zero (c, cc->view, 6 * MiB + 4096, 64 * KiB);     /* zeros over data */
  fill (c, cc->view, DISK - 1024, 1024, 24);
  cr_assert_eq (vhd_flush (c), 0);
  take_bytes (c->io, &cc->child);
  vhd_close (c); /* and p */
}

static void
commit_case_free (struct commit_case *cc)
{
  free (cc->parent.bytes);
  free (cc->child.bytes);
  free (cc->old_parent);
  free (cc->view);
}

/* commit_unlocked's steps, on d (open read-write over its parent) with
 * the parent opened read-write from parent's bytes in k. */
static int
run_commit_steps (struct vhd_disk *d, struct crash *k,
                  const struct image *parent, unsigned *pi)
{
  struct vhd_disk *rw;
  uint8_t next[16];
  int r;

  uuid_generate_bytes (next);
  if (chain_flush (d) == -1 || announce_link (d, next) == -1)
    return -1;
  rw = disk_open_io (crash_io (k, parent->bytes, parent->len, pi),
                     d->parent->filename, 0, NULL);
  if (rw == NULL)
    return -1;
  memcpy (rw->next_link_id, next, 16);
  r = copy_layer (d, rw, NULL, NULL);
  if (r == 0)
    k->step1 = k->writes;
  if (r == 0)
    r = empty_child (d, rw);
  disk_close (rw);
  return r;
}

/* Commit crashing after n writes (< 0: never), the child closed after it
 * as vhdtool commit does; the bytes left go to *lp and *lc. */
static long
run_commit (const struct commit_case *cc, const struct image *parent,
            const struct image *child, long n, bool tear, struct image *lp,
            struct image *lc, long *step1)
{
  struct crash k;
  struct vhd_disk *p, *d;
  unsigned ci, pi = MAX_FILES;
  long writes;
  int r;

  crash_init (&k, n, tear);
  p = must_open_mem (parent, cc->parent_path, VHD_OPEN_RDONLY, NULL);
  d = disk_open_io (crash_io (&k, child->bytes, child->len, &ci),
                    cc->child_path, 0, p);
  cr_assert_not_null (d, "%s: open: %s", cc->name, vhd_get_error ());
  r = run_commit_steps (d, &k, parent, &pi);
  if (n < 0)
    cr_assert_eq (r, 0, "%s: %s", cc->name, vhd_get_error ());
  vhd_close (d);
  writes = k.writes;
  if (step1)
    *step1 = k.step1;
  memset (lc, 0, sizeof *lc);
  memset (lp, 0, sizeof *lp);
  take_bytes (k.mem[ci], lc);
  if (pi < MAX_FILES)
    take_bytes (k.mem[pi], lp);
  else /* crashed before the parent was opened */
    *lp = (struct image) { copy_of (parent->bytes, parent->len),
                           parent->len, NULL };
  crash_free (&k);
  return writes;
}

/* Does the child hold anything of its own? */
static bool
child_is_empty (struct vhd_disk *c)
{
  uint64_t off = 0;
  struct extent e;

  while (off < c->size) {
    cr_assert_eq (c->ops->map (c, off, c->size - off, &e), 0);
    if (e.state != LAYER_ABSENT)
      return false;
    off += e.length;
  }
  return true;
}

/* The files after a complete commit: parent alone = view, child empty. */
static void
expect_committed (const struct commit_case *cc, const struct image *lp,
                  const struct image *lc, const char *what)
{
  struct vhd_disk *p, *c;

  p = must_open_mem (lp, cc->parent_path, VHD_OPEN_RDONLY, NULL);
  cr_assert_eq (differs (p, cc->view), -1, "%s: the parent alone differs "
                "from the chain at byte %" PRId64, what,
                differs (p, cc->view));
  c = must_open_mem (lc, cc->child_path, VHD_OPEN_RDONLY, p);
  cr_assert (child_is_empty (c), "%s: the child still holds data", what);
  cr_assert_eq (differs (c, cc->view), -1, "%s: the chain differs at byte %"
                PRId64, what, differs (c, cc->view));
  vhd_close (c);
}

static void
verify_commit (struct commit_case *cc, struct image *lp,
               struct image *lc, long n, bool tear, bool done)
{
  const char *how = tear ? " (torn)" : "";
  struct vhd_disk *p, *c;
  struct image rp = { NULL, 0, NULL }, rc = { NULL, 0, NULL };
  int64_t bad;
  char what[160];
  bool linked;

  snprintf (what, sizeof what, "%s, crash after %ld writes%s", cc->name, n,
            how);
  p = open_mem (lp, cc->parent_path, VHD_OPEN_RDONLY, NULL);
  cr_assert_not_null (p, "%s: the parent does not open: %s", what,
                      vhd_get_error ());
  bad = bad_sector (p, cc->old_parent, cc->view, tear);
  cr_assert_eq (bad, -1, "%s: parent sector %" PRId64 " is neither its old "
                "content nor the chain's", what, bad);
  /* Step 1 ended with a flush of the parent: all of it is there. */
  if (n >= cc->step1)
    cr_assert_eq (differs (p, cc->view), -1, "%s, after step 1 flushed "
                  "(%ld writes): the parent alone differs from the chain "
                  "at byte %" PRId64, what, cc->step1,
                  differs (p, cc->view));
  c = open_mem (lc, cc->child_path, VHD_OPEN_RDONLY, p);
  cr_assert_not_null (c, "%s: the child does not open: %s", what,
                      vhd_get_error ());
  cr_assert_eq (differs (c, cc->view), -1, "%s: the chain changed at byte %"
                PRId64, what, differs (c, cc->view));
  /* What try_parent (open.c) requires of a parent found by path. */
  linked = disk_parent_matches (c, p);
  vhd_close (c);
  cr_assert (linked, "%s: the child no longer matches its parent's ID: "
             "opened by path, the chain is refused", what);

  rp = (struct image) { copy_of (lp->bytes, lp->len), lp->len, NULL };
  rc = (struct image) { copy_of (lc->bytes, lc->len), lc->len, NULL };
  repair (cc->fmt, &rp, what);
  repair (cc->fmt, &rc, what);
  p = must_open_mem (&rp, cc->parent_path, VHD_OPEN_RDONLY, NULL);
  c = must_open_mem (&rc, cc->child_path, VHD_OPEN_RDONLY, p);
  cr_assert_eq (differs (c, cc->view), -1, "%s: after check --repair the "
                "chain differs at byte %" PRId64, what,
                differs (c, cc->view));
  vhd_close (c);
  if (done)
    expect_committed (cc, lp, lc, what);
  else {
    /* Committing again completes the merge. */
    struct image fp, fc;
    run_commit (cc, &rp, &rc, -1, false, &fp, &fc, NULL);
    snprintf (what + strlen (what), sizeof what - strlen (what),
              ", committed again");
    expect_committed (cc, &fp, &fc, what);
    free (fp.bytes), free (fc.bytes);
  }
  free (rp.bytes), free (rc.bytes);
}

static void
commit_everywhere (struct commit_case *cc)
{
  struct image lp, lc;
  long total, n, points = 0;
  int tear;

  total = run_commit (cc, &cc->parent, &cc->child, -1, false, &lp, &lc,
                      &cc->step1);
  cr_assert_gt (cc->step1, 0);
  verify_commit (cc, &lp, &lc, total, false, true);
  free (lp.bytes), free (lc.bytes);
  cr_assert_gt (total, 0);
  for (tear = 0; tear <= 1; tear++)
    for (n = 0; n <= total; n++) {
      run_commit (cc, &cc->parent, &cc->child, n, tear, &lp, &lc, NULL);
      verify_commit (cc, &lp, &lc, n, tear, n >= total);
      free (lp.bytes), free (lc.bytes);
      points++;
    }
  cr_log_info ("%s: %ld writes (%ld into the parent up to its flush), %ld "
               "crash points tested (whole and torn)", cc->name, total,
               cc->step1, points);
  commit_case_free (cc);
}

TestSuite (commit_crash, .init = dir_setup, .fini = dir_teardown);

Test (commit_crash, vhd_differencing, .timeout = 600)
{
  struct commit_case cc;

  commit_case_init (&cc, "commit (VHD)", &vhd_format_ops, 2 * MiB);
  commit_everywhere (&cc);
}

/* Also the parent's identity: the child records the DataWriteGuid the
 * parent will take (parent_linkage2) before the parent first changes. */
Test (commit_crash, vhdx_differencing, .timeout = 600)
{
  struct commit_case cc;

  commit_case_init (&cc, "commit (VHDX)", &vhdx_format_ops, MiB);
  commit_everywhere (&cc);
}
