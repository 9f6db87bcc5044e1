/* fuzz-open-write.c: the write path over an image in memory.
 *
 * The input is an image file.  It is opened read-write without its parent
 * (a dirty VHDX log is then replayed in place) over a memory copy that
 * may grow by at most 64 MiB (writes past that fail with ENOSPC, like a
 * full disk).  Then: small writes at the start, in the middle
 * (unaligned), across a block boundary, over several small blocks and at
 * the very end; a flush; write_zeroes with no flag, MAY_UNMAP and FAST;
 * zero-length requests at the end of the disk; a flush; vhd_compact and
 * vhd_resize; a last flush.  Errors are fine (a differencing disk
 * cannot patch a partial sector without its parent); crashes, hangs and
 * leaks are not, and neither are:
 *   - a failure that sets no error;
 *   - a successful write or write_zeroes that does not read back;
 *   - vhd_compact or vhd_resize (to one block more) changing what the
 *     disk reads, or new space not reading as zeros;
 *   - after everything succeeded, an image that does not reopen, or that
 *     reads differently after reopening;
 *   - the format driver's structure check with repair leaving no
 *     corruption, and a second check finding some.
 * As in fuzz-open-read, each input runs again with its checksums fixed.
 */
#include "fuzz-common.h"

#define GROWTH_CAP (64 * FUZZ_MiB)
#define MAX_OP_LEN (66U * 1024)
#define N_OPS 12

struct op {
  enum { OP_WRITE, OP_ZERO, OP_ZERO_FAST, OP_DISCARD, OP_FLUSH } kind;
  uint64_t offset, length;
};

/* The ranges the ops touched, read back before closing. */
struct seen {
  uint64_t offset, length;
  uint8_t *data; /* NULL: could not be read */
};

static void
fill (uint8_t *buf, size_t len, unsigned seed)
{
  size_t i;

  for (i = 0; i < len; i++)
    buf[i] = (uint8_t) (seed * 37 + i * 7 + (i >> 9) + 1);
}

static unsigned
plan (const struct vhd_disk *d, struct op *ops)
{
  uint64_t n = d->size, bs = d->block_size;
  unsigned k = 0;

#define ADD(K, OFF, LEN)                                                     \
  do {                                                                       \
    uint64_t off_ = (OFF), len_ = (LEN);                                     \
    if (off_ < n) {                                                          \
      if (len_ > n - off_)                                                   \
        len_ = n - off_;                                                     \
      ops[k++] = (struct op) { (K), off_, len_ };                            \
    }                                                                        \
  } while (0)
  ADD (OP_WRITE, 0, 4096);
  ADD (OP_WRITE, n / 2 + 3, 1000);
  if (bs && n > bs + 700)
    ADD (OP_WRITE, bs - 700, 1400);
  ADD (OP_WRITE, n > 100 ? n - 100 : 0, 100);
  if (bs && 2 * bs <= MAX_OP_LEN) /* several small blocks at once */
    ADD (OP_WRITE, bs / 2, 2 * bs);
  ops[k++] = (struct op) { OP_FLUSH, 0, 0 };
  ADD (OP_ZERO, n / 3, 65536 + 300);
  ADD (OP_DISCARD, n / 4 / 512 * 512, 65536);
  ADD (OP_ZERO_FAST, n / 3 * 2 / 4096 * 4096, 8192);
  ops[k++] = (struct op) { OP_FLUSH, 0, 0 };
#undef ADD
  return k;
}

static int
do_op (struct vhd_disk *d, const struct op *o, uint8_t *buf, unsigned seed)
{
  switch (o->kind) {
  case OP_WRITE:
    fill (buf, (size_t) o->length, seed);
    return vhd_pwrite (d, buf, (size_t) o->length, o->offset);
  case OP_ZERO:
    return vhd_write_zeroes (d, o->offset, o->length, 0);
  case OP_ZERO_FAST: /* may fail with ENOTSUP */
    return vhd_write_zeroes (d, o->offset, o->length, VHD_ZERO_FAST);
  case OP_DISCARD:
    return vhd_discard (d, o->offset, o->length);
  case OP_FLUSH:
    return vhd_flush (d);
  }
  return -1;
}

/* A successful op must read back. */
static void
verify_op (struct vhd_disk *d, const struct op *o, uint8_t *buf,
           uint8_t *got, unsigned seed)
{
  size_t i;

  if (o->kind == OP_FLUSH || o->length == 0)
    return;
  /* What was just written is this layer's: it reads without the parent. */
  clear_error ();
  FUZZ_ASSERT (vhd_pread (d, got, (size_t) o->length, o->offset) == 0,
               "%s of %" PRIu64 "+%" PRIu64 " succeeded but the range does "
               "not read back", o->kind == OP_WRITE ? "write"
               : "write_zeroes", o->offset, o->length);
  if (o->kind == OP_WRITE) {
    fill (buf, (size_t) o->length, seed);
    FUZZ_ASSERT (memcmp (buf, got, (size_t) o->length) == 0,
                 "write of %" PRIu64 "+%" PRIu64 " succeeded but reads "
                 "back differently", o->offset, o->length);
  }
  else
    for (i = 0; i < o->length; i++)
      FUZZ_ASSERT (got[i] == 0, "write_zeroes of %" PRIu64 "+%" PRIu64
                   " succeeded but byte %zu reads as 0x%02x", o->offset,
                   o->length, i, got[i]);
}

/* Read each op's range into seen[] (NULL where it does not read). */
static void
capture (struct vhd_disk *d, const struct op *ops, unsigned n_ops,
         struct seen *seen)
{
  unsigned i;

  for (i = 0; i < n_ops; i++) {
    free (seen[i].data);
    seen[i].offset = ops[i].offset;
    seen[i].length = ops[i].length;
    seen[i].data = NULL;
    if (ops[i].kind == OP_FLUSH || ops[i].length == 0)
      continue;
    seen[i].data = malloc ((size_t) ops[i].length);
    if (seen[i].data == NULL)
      abort ();
    clear_error ();
    if (vhd_pread (d, seen[i].data, (size_t) seen[i].length,
                   seen[i].offset) == -1) {
      check_failure ("vhd_pread");
      free (seen[i].data);
      seen[i].data = NULL;
    }
  }
}

/* The ranges captured still read the same. */
static void
compare (struct vhd_disk *d, const struct seen *seen, unsigned n,
         uint8_t *got, const char *after)
{
  unsigned i;

  for (i = 0; i < n; i++) {
    if (seen[i].data == NULL)
      continue;
    clear_error ();
    FUZZ_ASSERT (vhd_pread (d, got, (size_t) seen[i].length, seen[i].offset)
                 == 0, "%" PRIu64 "+%" PRIu64 " no longer reads after %s",
                 seen[i].offset, seen[i].length, after);
    FUZZ_ASSERT (memcmp (got, seen[i].data, (size_t) seen[i].length) == 0,
                 "%" PRIu64 "+%" PRIu64 " reads differently after %s",
                 seen[i].offset, seen[i].length, after);
  }
}

/* vhd_compact, then vhd_resize to one block (or 1 MiB) more: the content
 * stays, the new space reads as zeros.  Both may fail; false when one
 * failed other than with ENOTSUP (which means it did nothing). */
static bool
compact_and_grow (struct vhd_disk *d, const struct op *ops, unsigned n_ops,
                  struct seen *seen, uint8_t *got)
{
  uint64_t old = d->size, grow = d->block_size ? d->block_size : FUZZ_MiB;
  uint64_t n, i;
  bool ok = true;

  capture (d, ops, n_ops, seen);
  clear_error ();
  if (vhd_compact (d, NULL, NULL) == 0)
    compare (d, seen, n_ops, got, "vhd_compact");
  else {
    check_failure ("vhd_compact");
    ok = vhd_get_errno () == ENOTSUP; /* then nothing was done */
    capture (d, ops, n_ops, seen);
  }
  if (old > (UINT64_C (1) << 40))
    return ok;
  clear_error ();
  if (vhd_resize (d, old + grow, 0) == -1) {
    check_failure ("vhd_resize");
    return ok && vhd_get_errno () == ENOTSUP;
  }
  /* Rounded up to whole sectors at most. */
  FUZZ_ASSERT (d->size >= old + grow && d->size - (old + grow) < 4096,
               "resized to %" PRIu64 " bytes, asked for %" PRIu64, d->size,
               old + grow);
  compare (d, seen, n_ops, got, "vhd_resize");
  n = grow < MAX_OP_LEN ? grow : MAX_OP_LEN;
  clear_error ();
  if (vhd_pread (d, got, (size_t) n, old) == -1) {
    /* Without its parent a differencing disk cannot know whether the
     * parent is larger: its new space may read as the parent's. */
    check_failure ("vhd_pread after vhd_resize");
    FUZZ_ASSERT (d->type == VHD_TYPE_DIFFERENCING
                 && vhd_get_errno () == ENOENT,
                 "the space added by vhd_resize does not read");
    return ok;
  }
  for (i = 0; i < n; i++)
    FUZZ_ASSERT (got[i] == 0, "byte %" PRIu64 " added by vhd_resize reads "
                 "as 0x%02x", old + i, got[i]);
  return ok;
}

/* Open io (taking it), write, reopen.  The image lives in sp (a sparse
 * source) or in mem (io-mem.c), one of them inside io. */
static void
run (struct io *io, struct sparse_io *sp, struct io *mem)
{
  struct vhd_disk *d;
  struct op ops[N_OPS];
  struct seen seen[N_OPS];
  unsigned n_ops, i;
  bool all_ok = true;
  uint8_t *buf, *got;

  if (io == NULL)
    return;
  clear_error ();
  d = disk_open_io (io, "fuzz.img", VHD_OPEN_NO_PARENT, NULL);
  if (d == NULL) {
    check_failure ("disk_open_io");
    return;
  }
  buf = malloc (MAX_OP_LEN);
  got = malloc (MAX_OP_LEN);
  if (buf == NULL || got == NULL)
    abort ();
  n_ops = plan (d, ops);
  for (i = 0; i < n_ops; i++) {
    clear_error ();
    if (do_op (d, &ops[i], buf, i) == -1) {
      check_failure ("write op");
      all_ok = false;
      continue;
    }
    verify_op (d, &ops[i], buf, got, i);
  }

  /* Zero-length requests at the very end are valid and do nothing. */
  clear_error ();
  if (vhd_pwrite (d, buf, 0, d->size) == -1)
    check_failure ("zero-length pwrite");
  clear_error ();
  if (vhd_write_zeroes (d, d->size, 0, 0) == -1)
    check_failure ("zero-length write_zeroes");
  clear_error ();
  if (vhd_flush (d) == -1) {
    check_failure ("vhd_flush");
    all_ok = false;
  }

  /* Operations on the whole image; then what this handle reads, to
   * compare after reopening. */
  memset (seen, 0, sizeof seen);
  if (!compact_and_grow (d, ops, n_ops, seen, got))
    all_ok = false;
  clear_error ();
  if (vhd_flush (d) == -1) {
    check_failure ("vhd_flush");
    all_ok = false;
  }
  capture (d, ops, n_ops, seen);
  /* A copy of the image as it is now, to reopen after closing. */
  if (sp != NULL)
    io = &sparse_clone (sp, true)->io;
  else {
    size_t len;
    const uint8_t *now = io_mem_data (mem, &len);
    io = guard_io_new (now, len, len, true, &mem);
  }
  vhd_close (d);

  /* Reopen it. */
  if (io != NULL) {
    clear_error ();
    d = disk_open_io (io, "reopened.img",
                      VHD_OPEN_RDONLY | VHD_OPEN_NO_PARENT, NULL);
    if (d == NULL)
      check_failure ("disk_open_io (reopen)");
    FUZZ_ASSERT (d != NULL || !all_ok, "the image no longer opens after "
                 "successful writes and flushes: %s", vhd_get_error ());
    if (d != NULL && all_ok)
      compare (d, seen, n_ops, got, "reopening");
    vhd_close (d);
  }
  for (i = 0; i < n_ops; i++)
    free (seen[i].data);
  free (buf);
  free (got);
}

/* The structure check with repair over a copy of s: when it leaves no
 * corruption unrepaired, a second check finds none either. */
static void
check_repair (const struct sparse_io *s)
{
  struct sparse_io *c = sparse_clone (s, false), *again;
  int found = driver_check (&c->io, true);

  if (found >= 0 && !(found & VHD_CHECK_CORRUPT)) {
    again = sparse_clone (c, true);
    found = driver_check (&again->io, false);
    FUZZ_ASSERT (found >= 0 && !(found & VHD_CHECK_CORRUPT),
                 "a check finds corruption (0x%x) after a repairing check "
                 "left none", found);
    sp_close (&again->io);
  }
  sp_close (&c->io);
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

/* The input is an image file, or a sparse image (fuzz-common.h).  It runs
 * as it is, then again with its checksums fixed when that changes it. */
int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct sparse_io *s;

  if (is_sparse_input (data, size)) {
    s = sparse_from_input (data, size, GROWTH_CAP, false);
    sparse_dump (s, "sparse");
    run (&s->io, s, NULL);
    s = sparse_from_input (data, size, GROWTH_CAP, false);
  }
  else {
    struct io *mem = NULL;
    run (guard_io_new (data, size, (uint64_t) size + GROWTH_CAP, false,
                       &mem), NULL, mem);
    s = sparse_new (size, GROWTH_CAP, false);
    sparse_add (s, 0, data, size, false);
  }
  check_repair (s);
  if (fix_checksums (s)) {
    sparse_dump (s, "checksum-fixed");
    check_repair (s);
    run (&s->io, s, NULL);
  }
  else
    sp_close (&s->io);
  return 0;
}
