/* test-vhd-crash.c: crash safety of VHD block allocation (see "CRASH
 * SAFETY" in libvhd/vhd/vhd.c).
 *
 * A workload of writes (allocating blocks, filling parts of blocks,
 * unaligned) and flushes runs on a dynamic and on a differencing image in
 * memory.  For every N from 0 to the number of writes the workload does,
 * it is run again from scratch with the byte source crashing after N
 * writes (whole, and tearing the failing write in half).  The bytes left
 * behind must open; every sector flushed before the crash must read back
 * exactly; every other sector must read as one of its versions since the
 * last flush that completed (old or new, never anything else).  Then a
 * read-write open and flush (which repairs the trailing footer) must keep
 * the same content.
 */
#undef NDEBUG /* Keep test strong */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define MiB (UINT64_C (1) << 20)
#define DISK_SIZE (8 * MiB)
#define SECTORS (DISK_SIZE / SECTOR_SIZE)
#define PARENT_BYTE 0xaa

struct op {
  bool flush;
  uint64_t offset;
  size_t length;
  uint8_t byte;
};

/* Blocks are 2 MiB: block 0 [0, 2M), 1 [2M, 4M), 2 [4M, 6M), 3 [6M, 8M). */
static const struct op workload[] = {
  { false, 0, 4096, 0x01 },                    /* allocates block 0 */
  { false, 2 * MiB + 512, 1024, 0x02 },        /* allocates block 1 */
  { false, 100 * 512, 512, 0x03 },             /* into block 0 (dirty) */
  { true, 0, 0, 0 },
  { false, 4 * MiB + 1024, 3 * MiB, 0x04 },    /* allocates blocks 2, 3 */
  { false, 0, 512, 0x05 },                     /* rewrites a flushed sector */
  { false, 2 * MiB + 8192, 1536, 0x06 },       /* flushed block, new sectors */
  { true, 0, 0, 0 },
  { false, 6 * MiB, 512, 0x07 },
  { false, MiB + 10, 100, 0x08 },              /* unaligned */
  { false, 2 * MiB - 512, 1024, 0x09 },        /* across blocks 0 and 1 */
  { true, 0, 0, 0 },
  { false, 3 * MiB, 4096, 0x0a },
  { false, 4 * MiB + 1024, 512, 0x0b },
};
#define N_OPS (sizeof workload / sizeof workload[0])

/* What the disk may hold: per sector, the content at the last completed
 * flush and the versions written since. */
struct model {
  uint8_t *current;   /* the disk as the workload has written it */
  uint8_t *flushed;   /* ... as of the last completed flush */
  uint8_t **versions; /* per sector: n_versions[s] images of 512 bytes */
  unsigned *n_versions;
};

static void
model_init (struct model *m, uint8_t initial)
{
  m->current = malloc (DISK_SIZE);
  m->flushed = malloc (DISK_SIZE);
  m->versions = calloc (SECTORS, sizeof *m->versions);
  m->n_versions = calloc (SECTORS, sizeof *m->n_versions);
  cr_assert (m->current && m->flushed && m->versions && m->n_versions);
  memset (m->current, initial, DISK_SIZE);
  memset (m->flushed, initial, DISK_SIZE);
}

static void
model_free (struct model *m)
{
  uint64_t s;

  for (s = 0; s < SECTORS; s++)
    free (m->versions[s]);
  free (m->versions);
  free (m->n_versions);
  free (m->current);
  free (m->flushed);
}

/* A write was issued (whether or not it completed). */
static void
model_write (struct model *m, const struct op *op)
{
  uint64_t s;

  memset (m->current + op->offset, op->byte, op->length);
  for (s = op->offset / SECTOR_SIZE;
       s <= (op->offset + op->length - 1) / SECTOR_SIZE; s++) {
    unsigned n = m->n_versions[s]++;
    m->versions[s] = realloc (m->versions[s], (n + 1) * SECTOR_SIZE);
    cr_assert_not_null (m->versions[s]);
    memcpy (m->versions[s] + n * SECTOR_SIZE,
            m->current + s * SECTOR_SIZE, SECTOR_SIZE);
  }
}

static void
model_flushed (struct model *m)
{
  uint64_t s;

  memcpy (m->flushed, m->current, DISK_SIZE);
  for (s = 0; s < SECTORS; s++) {
    free (m->versions[s]);
    m->versions[s] = NULL;
    m->n_versions[s] = 0;
  }
}

/* Version v of sector s: 0 is the flushed one, then those since. */
static const uint8_t *
version (const struct model *m, uint64_t s, unsigned v)
{
  return v == 0 ? m->flushed + s * SECTOR_SIZE
                : m->versions[s] + (v - 1) * SECTOR_SIZE;
}

/* Does sector s of what we read fit the model?  A torn crash may also
 * leave a sector whose head is one version and whose tail another (the
 * failing write stored only its first half: no format can make a torn
 * sector atomic). */
static bool
sector_ok (const struct model *m, uint64_t s, const uint8_t *got, bool tear)
{
  unsigned a, b, n = m->n_versions[s] + 1;
  size_t k;

  for (a = 0; a < n; a++)
    if (memcmp (got, version (m, s, a), SECTOR_SIZE) == 0)
      return true;
  for (a = 0; tear && a < n; a++)
    for (b = 0; b < n; b++) {
      const uint8_t *head = version (m, s, a), *tail = version (m, s, b);
      for (k = 0; k < SECTOR_SIZE && got[k] == head[k]; k++)
        ;
      if (memcmp (got + k, tail + k, SECTOR_SIZE - k) == 0)
        return true;
    }
  return false;
}

/* --- images ------------------------------------------------------------- */

struct scenario {
  const char *name;
  uint8_t *child;  /* the empty image to crash */
  size_t child_len;
  uint8_t *parent; /* differencing: the parent's bytes */
  size_t parent_len;
  uint8_t initial; /* what the disk reads before the workload */
};

static uint8_t *
copy_bytes (struct io *io, size_t *len)
{
  const uint8_t *data = io_mem_data (io, len);
  uint8_t *copy = malloc (*len);

  cr_assert_not_null (copy);
  memcpy (copy, data, *len);
  return copy;
}

static struct vhd_disk *
open_parent (const struct scenario *sc)
{
  struct vhd_disk *p;

  if (sc->parent == NULL)
    return NULL;
  p = disk_open_io (io_mem_new (sc->parent, sc->parent_len), "base.vhd",
                    VHD_OPEN_RDONLY, NULL);
  cr_assert_not_null (p, "parent: %s", vhd_get_error ());
  return p;
}

static struct vhd_disk *
open_bytes (const struct scenario *sc, const uint8_t *data, size_t len,
            unsigned flags)
{
  return disk_open_io (io_mem_new (data, len), "crash.vhd", flags,
                       open_parent (sc));
}

static uint8_t *
create_bytes (struct create_params *p, size_t *len)
{
  struct io *io = io_mem_new (NULL, 0);
  uint8_t *bytes;

  cr_assert_eq (vhd_format_ops.create (io, p), 0, "%s", vhd_get_error ());
  bytes = copy_bytes (io, len);
  io->ops->close (io);
  return bytes;
}

static void
make_dynamic (struct scenario *sc)
{
  struct create_params p = { .type = VHD_TYPE_DYNAMIC, .size = DISK_SIZE };

  memset (sc, 0, sizeof *sc);
  sc->name = "dynamic";
  sc->child = create_bytes (&p, &sc->child_len);
}

static void
make_differencing (struct scenario *sc)
{
  struct create_params p = { .type = VHD_TYPE_DYNAMIC, .size = DISK_SIZE };
  struct vhd_disk *parent;
  uint8_t *buf = malloc (DISK_SIZE);
  struct io *io;

  memset (sc, 0, sizeof *sc);
  sc->name = "differencing";
  sc->initial = PARENT_BYTE;
  sc->parent = create_bytes (&p, &sc->parent_len);
  parent = disk_open_io (io_mem_new (sc->parent, sc->parent_len), "base.vhd",
                         0, NULL);
  cr_assert_not_null (parent);
  memset (buf, PARENT_BYTE, DISK_SIZE);
  cr_assert_eq (vhd_pwrite (parent, buf, DISK_SIZE, 0), 0);
  cr_assert_eq (vhd_flush (parent), 0);
  free (sc->parent);
  sc->parent = copy_bytes (parent->io, &sc->parent_len);
  free (buf);
  p = (struct create_params){ .type = VHD_TYPE_DIFFERENCING,
                              .size = DISK_SIZE, .parent = parent,
                              .parent_path = "base.vhd",
                              .parent_rel_path = "base.vhd",
                              .parent_abs_path = "/x/base.vhd" };
  io = io_mem_new (NULL, 0);
  cr_assert_eq (vhd_format_ops.create (io, &p), 0, "%s", vhd_get_error ());
  sc->child = copy_bytes (io, &sc->child_len);
  io->ops->close (io);
  vhd_close (parent);
}

/* --- one run -------------------------------------------------------------- */

/* Run the workload, crashing after crash_after writes (< 0: never).  The
 * model learns what was issued and flushed; returns the bytes left. */
static uint8_t *
run (const struct scenario *sc, long crash_after, bool tear,
     struct model *m, size_t *len, long *writes)
{
  struct vhd_disk *d = open_bytes (sc, sc->child, sc->child_len, 0);
  long start;
  uint8_t *buf = malloc (3 * MiB), *left;
  size_t i;

  cr_assert_not_null (d, "open: %s", vhd_get_error ());
  start = io_mem_write_count (d->io);
  io_mem_fail_after (d->io, crash_after, tear);
  for (i = 0; i < N_OPS; i++) {
    const struct op *op = &workload[i];
    if (op->flush) {
      if (vhd_flush (d) == -1)
        break;
      model_flushed (m);
      continue;
    }
    memset (buf, op->byte, op->length);
    model_write (m, op);
    if (vhd_pwrite (d, buf, op->length, op->offset) == -1)
      break;
  }
  *writes = io_mem_write_count (d->io) - start;
  left = copy_bytes (d->io, len);
  vhd_close (d); /* after a crash, its flush fails like every write */
  free (buf);
  return left;
}

static void
check_content (const struct scenario *sc, const struct model *m,
               struct vhd_disk *d, long n, bool tear)
{
  uint8_t *got = malloc (DISK_SIZE);
  uint64_t s;

  cr_assert_eq (vhd_pread (d, got, DISK_SIZE, 0), 0, "%s crash %ld%s: %s",
                sc->name, n, tear ? " torn" : "", vhd_get_error ());
  for (s = 0; s < SECTORS; s++)
    cr_assert (sector_ok (m, s, got + s * SECTOR_SIZE, tear),
               "%s, crash after %ld writes%s: sector %llu reads 0x%02x..., "
               "neither flushed nor written since", sc->name, n,
               tear ? " (torn)" : "", (unsigned long long) s,
               got[s * SECTOR_SIZE]);
  free (got);
}

static void
crash_at (const struct scenario *sc, long n, bool tear)
{
  struct model m;
  size_t len;
  long writes;
  uint8_t *left;
  struct vhd_disk *d;

  model_init (&m, sc->initial);
  left = run (sc, n, tear, &m, &len, &writes);
  d = open_bytes (sc, left, len, VHD_OPEN_RDONLY);
  cr_assert_not_null (d, "%s, crash after %ld writes%s: reopen: %s",
                      sc->name, n, tear ? " (torn)" : "", vhd_get_error ());
  check_content (sc, &m, d, n, tear);
  vhd_close (d);

  /* Read-write: the flush at close repairs; the content stays. */
  d = open_bytes (sc, left, len, 0);
  cr_assert_not_null (d, "%s crash %ld: rw reopen: %s", sc->name, n,
                      vhd_get_error ());
  cr_assert_eq (vhd_flush (d), 0, "%s", vhd_get_error ());
  free (left);
  left = copy_bytes (d->io, &len);
  vhd_close (d);
  d = open_bytes (sc, left, len, VHD_OPEN_RDONLY);
  cr_assert_not_null (d, "%s crash %ld: reopen after repair: %s", sc->name,
                      n, vhd_get_error ());
  check_content (sc, &m, d, n, tear);
  vhd_close (d);
  free (left);
  model_free (&m);
}

static void
crash_everywhere (struct scenario *sc)
{
  struct model m;
  size_t len;
  long total, n, points = 0;
  uint8_t *left;
  int tear;

  model_init (&m, sc->initial);
  left = run (sc, -1, false, &m, &len, &total);
  free (left);
  model_free (&m);
  cr_assert_gt (total, 10, "the workload writes %ld times", total);
  for (tear = 0; tear <= 1; tear++)
    for (n = 0; n <= total; n++) {
      crash_at (sc, n, tear);
      points++;
    }
  cr_log_info ("%s: %ld writes in the workload, %ld crash points tested "
               "(whole and torn)", sc->name, total, points);
  free (sc->child);
  free (sc->parent);
}

Test (vhd_crash, dynamic, .timeout = 300)
{
  struct scenario sc;

  make_dynamic (&sc);
  crash_everywhere (&sc);
}

Test (vhd_crash, differencing, .timeout = 300)
{
  struct scenario sc;

  make_differencing (&sc);
  crash_everywhere (&sc);
}
