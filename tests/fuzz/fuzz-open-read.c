/* fuzz-open-read.c: the whole read path over an image in memory.
 *
 * The input is an image file (VHD, VHDX, or anything: raw takes what no
 * driver claims).  It is opened read-only without its parent, and when it
 * opens, its allocation map is walked (the whole disk when small, else
 * the first and last few MiB and a window in the middle) and a few ranges
 * are read: the start, the middle (unaligned, and again split in two),
 * the end, across a block boundary, and the start of each extent said to
 * read as zeros.  Reads may fail (a differencing disk's parent ranges
 * fail with ENOENT), but every failure must set an error, the map must
 * keep its contract, zero extents must read as zeros, and the input must
 * come out byte-identical: a write through a read-only handle aborts.
 *
 * The format driver's structure check (vhd_check's first step) runs over
 * it too, without repair: it must not write either.
 *
 * Each input runs as it is, then again with the checksums of its VHD or
 * VHDX structures recomputed (when that changes anything), so mutations
 * reach the code behind the checksum checks.  Set FUZZ_DUMP_FIXED=FILE
 * when replaying a crash to get that second image as a file.
 */
#include "fuzz-common.h"

#define WALK_EDGE (4 * FUZZ_MiB)   /* walked at each end of a large disk */
#define MAX_EXTENTS 200000U
#define MAX_ZERO_CHECKS 16U
#define READ_MAX (256U * 1024)

struct walk {
  uint64_t next, end;
  unsigned n;
  struct { uint64_t offset, length; } zeros[MAX_ZERO_CHECKS];
  unsigned n_zeros;
};

static int
on_extent (void *opaque, uint64_t offset, uint64_t length, unsigned state,
           unsigned depth)
{
  struct walk *w = opaque;

  FUZZ_ASSERT (length > 0, "empty extent at %" PRIu64, offset);
  FUZZ_ASSERT (offset == w->next, "extent at %" PRIu64 ", expected %"
               PRIu64, offset, w->next);
  FUZZ_ASSERT (length <= w->end - offset, "extent %" PRIu64 "+%" PRIu64
               " runs past %" PRIu64, offset, length, w->end);
  FUZZ_ASSERT ((state & ~(VHD_STATE_HOLE | VHD_STATE_ZERO)) == 0,
               "unknown state bits 0x%x", state);
  /* One layer: its own extents at depth 0, ranges it does not hold at
   * depth 1 (the chain's length). */
  FUZZ_ASSERT (depth <= 1, "depth %u (state 0x%x) without a parent", depth,
               state);
  w->next = offset + length;
  if ((state & VHD_STATE_ZERO) && w->n_zeros < MAX_ZERO_CHECKS) {
    w->zeros[w->n_zeros].offset = offset;
    w->zeros[w->n_zeros].length = length;
    w->n_zeros++;
  }
  if (++w->n >= MAX_EXTENTS)
    return 1; /* enough: stop the walk */
  return 0;
}

static void
walk (struct vhd_disk *d, uint64_t offset, uint64_t count, struct walk *w)
{
  int r;

  if (count == 0)
    return;
  w->next = offset;
  w->end = offset + count;
  w->n = 0;
  clear_error ();
  r = chain_block_status (d, offset, count, 0, on_extent, w);
  if (r == -1)
    check_failure ("chain_block_status");
  else if (r == 0)
    FUZZ_ASSERT (w->next == w->end, "the map of %" PRIu64 "+%" PRIu64
                 " stops at %" PRIu64, offset, count, w->next);
  else
    FUZZ_ASSERT (r == 1, "block status returned %d", r);
}

/* Read [offset, offset+count) (clipped to the disk); 0 or -1. */
static int
read_range (struct vhd_disk *d, uint8_t *buf, uint64_t offset,
            uint64_t count)
{
  if (offset >= d->size)
    return -1;
  if (count > d->size - offset)
    count = d->size - offset;
  if (count > READ_MAX)
    count = READ_MAX;
  clear_error ();
  if (chain_pread (d, buf, (size_t) count, offset) == -1) {
    check_failure ("chain_pread");
    return -1;
  }
  return 0;
}

/* A read in one call and in two calls split at an odd place agree. */
static void
read_split (struct vhd_disk *d, uint8_t *a, uint8_t *b, uint64_t offset,
            uint64_t count)
{
  uint64_t cut;

  if (offset >= d->size)
    return;
  count = count < d->size - offset ? count : d->size - offset;
  if (count < 2 || read_range (d, a, offset, count) == -1)
    return;
  cut = count / 2 + 1;
  if (read_range (d, b, offset, cut) == -1
      || read_range (d, b + cut, offset + cut, count - cut) == -1)
    return;
  FUZZ_ASSERT (memcmp (a, b, (size_t) count) == 0,
               "read of %" PRIu64 "+%" PRIu64 " differs when split at +%"
               PRIu64, offset, count, cut);
}

static bool
all_zero (const uint8_t *p, size_t n)
{
  size_t i;

  for (i = 0; i < n; i++)
    if (p[i])
      return false;
  return true;
}

static void
check_zero_extents (struct vhd_disk *d, uint8_t *buf, const struct walk *w)
{
  unsigned i;

  for (i = 0; i < w->n_zeros; i++) {
    uint64_t len = w->zeros[i].length < 65536 ? w->zeros[i].length : 65536;
    FUZZ_ASSERT (read_range (d, buf, w->zeros[i].offset, len) == 0,
                 "extent at %" PRIu64 " is reported as zeros but does not "
                 "read", w->zeros[i].offset);
    FUZZ_ASSERT (all_zero (buf, (size_t) len), "extent at %" PRIu64
                 " is reported as zeros but reads as data",
                 w->zeros[i].offset);
  }
}

static void
check_strings (struct vhd_disk *d)
{
  char id[37];
  const char *s;

  FUZZ_ASSERT (vhd_get_format (d) >= VHD_FORMAT_RAW
               && vhd_get_format (d) <= VHD_FORMAT_VHDX, "format %d",
               vhd_get_format (d));
  FUZZ_ASSERT (vhd_get_type (d) >= VHD_TYPE_FIXED
               && vhd_get_type (d) <= VHD_TYPE_DIFFERENCING, "type %d",
               vhd_get_type (d));
  FUZZ_ASSERT (vhd_get_id (d, id) == 0 && strlen (id) == 36, "id");
  FUZZ_ASSERT (strlen (vhd_get_format_name (d)) > 0, "format name");
  s = vhd_get_creator (d);
  FUZZ_ASSERT (s != NULL && strlen (s) < sizeof d->creator, "creator");
  s = vhd_get_parent_hint (d);
  if (s != NULL)
    FUZZ_ASSERT (strlen (s) < 1U << 20, "parent hint");
  FUZZ_ASSERT (d->logical_sector == 0 || d->logical_sector == 512
               || d->logical_sector == 4096, "logical sector %" PRIu32,
               d->logical_sector);
  FUZZ_ASSERT (vhd_get_file_size (d) >= 0, "file size");
  vhd_get_log_dirty (d);
}

/* Open io (taking it) and read through it.  mem, when not NULL, is the
 * memory source inside io, which must still hold orig[0..orig_len) at the
 * end. */
static void
run (struct io *io, struct io *mem, const uint8_t *orig, size_t orig_len)
{
  struct vhd_disk *d;
  struct walk w;
  uint8_t *a, *b;
  uint64_t n, bs;

  if (io == NULL)
    return;
  clear_error ();
  d = disk_open_io (io, "fuzz.img", VHD_OPEN_RDONLY | VHD_OPEN_NO_PARENT,
                    NULL);
  if (d == NULL) {
    check_failure ("disk_open_io");
    return;
  }
  a = malloc (READ_MAX);
  b = malloc (READ_MAX);
  if (a == NULL || b == NULL)
    abort ();
  check_strings (d);
  n = d->size;
  bs = d->block_size;

  /* The map. */
  memset (&w, 0, sizeof w);
  if (n <= 2 * WALK_EDGE)
    walk (d, 0, n, &w);
  else {
    walk (d, 0, WALK_EDGE, &w);
    check_zero_extents (d, a, &w);
    w.n_zeros = 0;
    walk (d, n / 2 - 65536, 131072, &w);
    check_zero_extents (d, a, &w);
    w.n_zeros = 0;
    walk (d, n - WALK_EDGE, WALK_EDGE, &w);
  }
  check_zero_extents (d, a, &w);
  if (bs == 0 || n / bs <= 65536) {
    int64_t used;
    clear_error ();
    used = vhd_get_allocated_bytes (d);
    if (used == -1)
      check_failure ("vhd_get_allocated_bytes");
    else
      FUZZ_ASSERT ((uint64_t) used <= n, "%" PRId64 " bytes allocated in a "
                   "disk of %" PRIu64, used, n);
  }

  /* Reads. */
  read_range (d, a, 0, 65536);
  read_split (d, a, b, n / 2 > 1000 ? n / 2 - 1000 : 0, 3001);
  read_range (d, a, n > 65536 ? n - 65536 : 0, 65536);
  if (n > 0)
    read_range (d, a, n - 1, 1);
  if (bs && n > bs + 700)
    read_split (d, a, b, bs - 700, 1400);
  if (n > 0) {
    /* Somewhere the input picks. */
    uint64_t h = 1469598103934665603ULL;
    size_t i;
    for (i = 0; i < orig_len && i < 4096; i++)
      h = (h ^ orig[i]) * 1099511628211ULL;
    read_split (d, a, b, h % n, (h >> 40) % READ_MAX + 1);
  }

  /* Read-only means read-only (writes through it abort already). */
  if (mem != NULL) {
    size_t now_len;
    const uint8_t *now = io_mem_data (mem, &now_len);
    FUZZ_ASSERT (now_len == orig_len, "a read-only open changed the file "
                 "size from %zu to %zu", orig_len, now_len);
    FUZZ_ASSERT (orig_len == 0 || memcmp (now, orig, orig_len) == 0,
                 "a read-only open changed the file");
  }
  vhd_close (d);
  free (a);
  free (b);
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

/* The input is an image file, or a sparse image (fuzz-common.h).  It runs
 * as it is, then again with its checksums fixed when that changes it. */
int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct sparse_io *s;

  if (is_sparse_input (data, size)) {
    s = sparse_from_input (data, size, 0, true);
    sparse_dump (s, "sparse");
    run (&s->io, NULL, data, size);
    s = sparse_from_input (data, size, 0, true);
  }
  else {
    struct io *mem = NULL;
    run (guard_io_new (data, size, size, true, &mem), mem, data, size);
    s = sparse_new (size, 0, true);
    sparse_add (s, 0, data, size, false);
  }
  /* The structure check without repair writes nothing (s aborts). */
  driver_check (&s->io, false);
  if (fix_checksums (s)) {
    sparse_dump (s, "checksum-fixed");
    driver_check (&s->io, false);
    run (&s->io, NULL, data, size);
  }
  else
    sp_close (&s->io);
  return 0;
}
