/* test-aio.c: the asynchronous API (vhd_aio_*).
 *
 * The error contract of every call (the synchronous twin's errno and
 * message), reads through differencing chains equal to the synchronous
 * reads, 64 requests in flight on every format, flush then reopen, the
 * eventfd's readiness, callbacks that submit, a poller thread beside a
 * submitter, close with requests in flight, failures reported through
 * the callback, and memory images (no descriptor: all synchronous).
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "minmax.h"

#define KiB 1024U
#define MiB (UINT64_C (1) << 20)
#define DEPTH 64

static char dir[64];

static void
setup (void)
{
  snprintf (dir, sizeof dir, "/tmp/libvhd-aio-XXXXXX");
  cr_assert_not_null (mkdtemp (dir));
}

static void
teardown (void)
{
  char cmd[128];
  snprintf (cmd, sizeof cmd, "rm -rf %s", dir);
  cr_expect_eq (system (cmd), 0);
}

static const char *
path_of (const char *name)
{
  static char buf[4][128];
  static unsigned n;
  char *p = buf[n++ % 4];
  snprintf (p, 128, "%s/%s", dir, name);
  return p;
}

/* A new image NAME; parent (a name) makes it a differencing child. */
static struct vhd_disk *
create (const char *name, int format, int type, uint64_t size,
        const char *parent)
{
  struct vhd_create_opts *o = vhd_create_opts_new ();
  struct vhd_disk *d;

  cr_assert_not_null (o);
  cr_assert_eq (vhd_create_opts_set_format (o, format), 0);
  cr_assert_eq (vhd_create_opts_set_type (o, type), 0);
  if (format == VHD_FORMAT_VHDX)
    cr_assert_eq (vhd_create_opts_set_block_size (o, 1U << 20), 0);
  if (parent)
    cr_assert_eq (vhd_create_opts_set_parent (o, path_of (parent)), 0);
  else
    cr_assert_eq (vhd_create_opts_set_size (o, size), 0);
  d = vhd_create (path_of (name), o);
  cr_assert_not_null (d, "create %s: %s", name, vhd_get_error ());
  vhd_create_opts_free (o);
  return d;
}

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint64_t
rnd (uint64_t n)
{
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return rng % n;
}

/* Recognisable bytes for (offset, generation). */
static void
pattern (uint8_t *buf, size_t len, uint64_t offset, unsigned gen)
{
  for (size_t i = 0; i < len; i++)
    buf[i] = (uint8_t) ((offset + i) * 7 + gen * 13 + (offset + i) / 4096);
}

/* --- callbacks and waiting ---------------------------------------------- */

struct done {
  int calls;
  int error;
  char msg[512];
};

static void
on_done (void *opaque, int error)
{
  struct done *x = opaque;

  x->calls++;
  x->error = error;
  if (error)
    snprintf (x->msg, sizeof x->msg, "%s",
              vhd_get_error () ? vhd_get_error () : "(no message)");
}

/* Run the event loop until nothing is in flight.  A request in flight
 * must leave the eventfd readable: waiting 10 s is a lost wake-up. */
static void
wait_all (struct vhd_disk *d)
{
  int fd = vhd_aio_get_fd (d);

  cr_assert_geq (fd, 0, "%s", vhd_get_error ());
  while (vhd_aio_in_flight (d) > 0) {
    struct pollfd p = { .fd = fd, .events = POLLIN };
    cr_assert_eq (poll (&p, 1, 10000), 1, "eventfd not readable with %"
                  PRId64 " requests in flight", vhd_aio_in_flight (d));
    cr_assert_geq (vhd_aio_poll (d), 0, "%s", vhd_get_error ());
  }
}

static void
expect_done (const struct done *x, const char *what)
{
  cr_assert_eq (x->calls, 1, "%s: callback called %d times", what, x->calls);
  cr_assert_eq (x->error, 0, "%s: %s", what, x->msg);
}

/* --- the error contract -------------------------------------------------- */

TestSuite (aio, .init = setup, .fini = teardown, .timeout = 120);

static void
expect_refused (int64_t r, int err, const char *prefix, const char *text)
{
  cr_assert_eq (r, -1);
  cr_expect_eq (vhd_get_errno (), err, "errno %d, want %d (%s)",
                vhd_get_errno (), err, vhd_get_error ());
  cr_expect_eq (strncmp (vhd_get_error (), prefix, strlen (prefix)), 0,
                "message %s does not start with %s", vhd_get_error (),
                prefix);
  if (text)
    cr_expect (strstr (vhd_get_error (), text), "message %s lacks %s",
               vhd_get_error (), text);
}

Test (aio, null_arguments)
{
  struct done x = { 0 };
  char buf[512];
  struct vhd_disk *d = create ("a.vhd", VHD_FORMAT_VHD, VHD_TYPE_DYNAMIC,
                               MiB, NULL);

  expect_refused (vhd_aio_get_fd (NULL), EFAULT, "vhd_aio_get_fd: ",
                  "disk cannot be NULL");
  expect_refused (vhd_aio_pread (NULL, buf, 512, 0, on_done, &x), EFAULT,
                  "vhd_aio_pread: ", "disk cannot be NULL");
  expect_refused (vhd_aio_pwrite (NULL, buf, 512, 0, on_done, &x), EFAULT,
                  "vhd_aio_pwrite: ", "disk cannot be NULL");
  expect_refused (vhd_aio_flush (NULL, on_done, &x), EFAULT,
                  "vhd_aio_flush: ", NULL);
  expect_refused (vhd_aio_discard (NULL, 0, 512, on_done, &x), EFAULT,
                  "vhd_aio_discard: ", NULL);
  expect_refused (vhd_aio_write_zeroes (NULL, 0, 512, 0, on_done, &x),
                  EFAULT, "vhd_aio_write_zeroes: ", NULL);
  expect_refused (vhd_aio_poll (NULL), EFAULT, "vhd_aio_poll: ", NULL);
  expect_refused (vhd_aio_in_flight (NULL), EFAULT, "vhd_aio_in_flight: ",
                  NULL);
  expect_refused (vhd_aio_set_direct (NULL, 1), EFAULT,
                  "vhd_aio_set_direct: ", NULL);
  expect_refused (vhd_aio_pread (d, NULL, 512, 0, on_done, &x), EFAULT,
                  "vhd_aio_pread: ", "buf cannot be NULL");
  expect_refused (vhd_aio_pwrite (d, NULL, 512, 0, on_done, &x), EFAULT,
                  "vhd_aio_pwrite: ", "buf cannot be NULL");
  cr_expect_eq (vhd_aio_in_flight (d), 0);
  cr_expect_eq (vhd_aio_poll (d), 0);
  cr_expect_eq (x.calls, 0, "a refused request's callback ran");
  vhd_close (d);
}

/* The asynchronous call is refused with the same errno and message
 * (after the function's name) as the synchronous one. */
static char async_msg[1024];
static int async_errno;

static void
refused (int64_t r, const char *name)
{
  cr_assert_eq (r, -1, "%s accepted", name);
  async_errno = vhd_get_errno ();
  snprintf (async_msg, sizeof async_msg, "%s", vhd_get_error ());
}

static void
same_as_sync (int r, const char *name)
{
  cr_assert_eq (r, -1);
  cr_expect_eq (async_errno, vhd_get_errno (), "%s", name);
  const char *a = strchr (async_msg, ':'), *s = strchr (vhd_get_error (), ':');
  cr_assert (a && s);
  cr_expect_str_eq (a, s, "%s", name);
}

#define expect_same(async_call, sync_call, name)                            \
  do {                                                                      \
    refused ((async_call), (name));                                         \
    same_as_sync ((sync_call), (name));                                     \
  } while (0)

Test (aio, refusals_match_sync_calls)
{
  struct done x = { 0 };
  char buf[4096] = { 0 };
  struct vhd_disk *d = create ("a.vhdx", VHD_FORMAT_VHDX, VHD_TYPE_DYNAMIC,
                               4 * MiB, NULL);
  vhd_close (d);
  d = vhd_open (path_of ("a.vhdx"), 0);
  cr_assert_not_null (d);

  /* Out of range (ERANGE), including an overflowing offset + count. */
  expect_same (vhd_aio_pread (d, buf, 4096, 4 * MiB - 512, on_done, &x),
               vhd_pread (d, buf, 4096, 4 * MiB - 512), "pread");
  cr_expect_eq (vhd_get_errno (), ERANGE);
  expect_same (vhd_aio_pwrite (d, buf, 512, UINT64_MAX, on_done, &x),
               vhd_pwrite (d, buf, 512, UINT64_MAX), "pwrite");
  expect_same (vhd_aio_discard (d, 4 * MiB, 1, on_done, &x),
               vhd_discard (d, 4 * MiB, 1), "discard");
  expect_same (vhd_aio_write_zeroes (d, 1, UINT64_MAX, 0, on_done, &x),
               vhd_write_zeroes (d, 1, UINT64_MAX, 0), "write_zeroes");
  /* Unknown flags (EINVAL). */
  expect_same (vhd_aio_write_zeroes (d, 0, 512, 0x100, on_done, &x),
               vhd_write_zeroes (d, 0, 512, 0x100), "write_zeroes flags");
  cr_expect_eq (vhd_get_errno (), EINVAL);
  vhd_close (d);

  /* Read-only (EROFS); a flush there succeeds, as vhd_flush does. */
  d = vhd_open (path_of ("a.vhdx"), VHD_OPEN_RDONLY);
  cr_assert_not_null (d);
  expect_same (vhd_aio_pwrite (d, buf, 512, 0, on_done, &x),
               vhd_pwrite (d, buf, 512, 0), "pwrite ro");
  cr_expect_eq (vhd_get_errno (), EROFS);
  expect_same (vhd_aio_discard (d, 0, 512, on_done, &x),
               vhd_discard (d, 0, 512), "discard ro");
  expect_same (vhd_aio_write_zeroes (d, 0, 512, 0, on_done, &x),
               vhd_write_zeroes (d, 0, 512, 0), "write_zeroes ro");
  cr_expect_eq (x.calls, 0, "a refused request's callback ran");
  cr_assert_gt (vhd_aio_flush (d, on_done, &x), 0, "%s", vhd_get_error ());
  /* The edges: an empty request at the end is valid. */
  struct done y = { 0 };
  cr_assert_gt (vhd_aio_pread (d, buf, 0, 4 * MiB, on_done, &y), 0);
  wait_all (d);
  expect_done (&x, "flush ro");
  expect_done (&y, "empty read");
  vhd_close (d);
}

/* --- reads through chains ------------------------------------------------ */

/* Read [off, off+len) both ways and compare. */
static void
compare_read (struct vhd_disk *d, uint64_t off, size_t len)
{
  uint8_t *want = malloc (len + 1), *got = NULL;

  cr_assert_eq (posix_memalign ((void **) &got, 4096, len + 1), 0);
  struct done x = { 0 };
  cr_assert_eq (vhd_pread (d, want, len, off), 0, "%s", vhd_get_error ());
  memset (got, 0xa5, len);
  cr_assert_gt (vhd_aio_pread (d, got, len, off, on_done, &x), 0, "%s",
                vhd_get_error ());
  wait_all (d);
  expect_done (&x, "read");
  for (size_t i = 0; i < len; i++)
    if (want[i] != got[i])
      cr_assert_fail ("byte at %" PRIu64 ": async 0x%02x, sync 0x%02x",
                      off + i, got[i], want[i]);
  free (want);
  free (got);
}

static void
fill (struct vhd_disk *d, uint64_t off, size_t len, unsigned gen)
{
  uint8_t *buf = malloc (len);
  pattern (buf, len, off, gen);
  cr_assert_eq (vhd_pwrite (d, buf, len, off), 0, "%s", vhd_get_error ());
  free (buf);
}

/* base: data in places; mid: a child with its own data and zeros (hiding
 * the base); top: a child of mid with sector-sized scraps.  Then reads of
 * top, whole and at random, match the synchronous ones. */
static void
chain_reads (int format, const char *ext, bool direct)
{
  char base[16], mid[16], top[16];
  struct vhd_disk *d;

  snprintf (base, sizeof base, "base.%s", ext);
  snprintf (mid, sizeof mid, "mid.%s", ext);
  snprintf (top, sizeof top, "top.%s", ext);
  d = create (base, format, VHD_TYPE_DYNAMIC, 8 * MiB, NULL);
  fill (d, 0, 3 * MiB, 1);
  fill (d, 6 * MiB + 1000, 70000, 2);
  vhd_close (d);
  d = create (mid, format, VHD_TYPE_DYNAMIC, 0, base);
  fill (d, MiB - 4096, 20000, 3);
  fill (d, 4 * MiB + 512, 512, 4);
  cr_assert_eq (vhd_write_zeroes (d, 2 * MiB, MiB, 0), 0, "%s",
                vhd_get_error ());
  vhd_close (d);
  d = create (top, format, VHD_TYPE_DYNAMIC, 0, mid);
  for (unsigned i = 0; i < 40; i++)
    fill (d, rnd (8 * MiB - 2000), 1 + rnd (1999), 5 + i);
  vhd_close (d);

  d = vhd_open (path_of (top), VHD_OPEN_RDONLY);
  cr_assert_not_null (d, "%s", vhd_get_error ());
  cr_assert_eq (vhd_aio_set_direct (d, direct), 0);
  compare_read (d, 0, 8 * MiB);
  for (unsigned i = 0; i < 200; i++) {
    uint64_t off = rnd (8 * MiB);
    compare_read (d, off, (size_t) rnd (MIN (8 * MiB - off, 300 * KiB) + 1));
  }
  vhd_close (d);
}

Test (aio, vhd_chain_reads) { chain_reads (VHD_FORMAT_VHD, "vhd", false); }
Test (aio, vhdx_chain_reads) { chain_reads (VHD_FORMAT_VHDX, "vhdx", false); }
Test (aio, vhdx_chain_reads_direct)
{
  chain_reads (VHD_FORMAT_VHDX, "vhdx", true);
}

/* A differencing disk opened without its parent: the parent's ranges
 * fail through the callback, with the synchronous call's error. */
Test (aio, read_failure_goes_to_callback)
{
  struct done x = { 0 };
  uint8_t buf[4096];
  struct vhd_disk *d = create ("base.vhd", VHD_FORMAT_VHD, VHD_TYPE_DYNAMIC,
                               4 * MiB, NULL);
  vhd_close (d);
  d = create ("child.vhd", VHD_FORMAT_VHD, VHD_TYPE_DYNAMIC, 0, "base.vhd");
  vhd_close (d);
  d = vhd_open (path_of ("child.vhd"), VHD_OPEN_NO_PARENT | VHD_OPEN_RDONLY);
  cr_assert_not_null (d, "%s", vhd_get_error ());
  cr_assert_gt (vhd_aio_pread (d, buf, sizeof buf, 0, on_done, &x), 0);
  wait_all (d);
  cr_assert_eq (x.calls, 1);
  cr_expect_eq (x.error, ENOENT);
  cr_expect (strstr (x.msg, "vhd_aio_pread: ") == x.msg, "%s", x.msg);
  cr_expect (strstr (x.msg, "not opened"), "%s", x.msg);
  vhd_close (d);
}

/* --- many requests in flight --------------------------------------------- */

/* A disk of SLOTS 4 KiB slots and its expected content; a slot is in one
 * request at a time. */
#define SLOT 4096U
struct shadow {
  struct vhd_disk *d;
  uint8_t *data;
  uint64_t size;
};

struct io_req {
  struct done x;
  uint8_t *buf;
  uint64_t off;
  size_t len;
  bool write;
};

/* Submit DEPTH requests on distinct slots (a few unaligned or two slots
 * long), wait, check reads against the shadow, then update it. */
static void
round_of_requests (struct shadow *s, unsigned gen, bool writes)
{
  struct io_req r[DEPTH];
  uint64_t slots = s->size / SLOT;
  bool *used = calloc (slots, 1);

  for (unsigned i = 0; i < DEPTH; i++) {
    uint64_t slot;
    do
      slot = rnd (slots - 1);
    while (used[slot] || used[slot + 1]);
    used[slot] = used[slot + 1] = true;
    r[i] = (struct io_req) { .off = slot * SLOT, .len = SLOT,
                             .write = writes && rnd (4) != 0 };
    if (i % 8 == 1)
      r[i].off += 512 * rnd (8), r[i].len = SLOT;   /* sector aligned */
    if (i % 8 == 2)
      r[i].off += rnd (SLOT), r[i].len = 1 + rnd (SLOT); /* unaligned */
    if (i % 8 == 3)
      r[i].len = 2 * SLOT;
    /* Page-aligned buffers: direct transfers where the offset allows. */
    cr_assert_eq (posix_memalign ((void **) &r[i].buf, 4096, r[i].len), 0);
    if (r[i].write) {
      pattern (r[i].buf, r[i].len, r[i].off, gen + i);
      cr_assert_gt (vhd_aio_pwrite (s->d, r[i].buf, r[i].len, r[i].off,
                                    on_done, &r[i].x), 0, "%s",
                    vhd_get_error ());
    }
    else
      cr_assert_gt (vhd_aio_pread (s->d, r[i].buf, r[i].len, r[i].off,
                                   on_done, &r[i].x), 0, "%s",
                    vhd_get_error ());
  }
  cr_assert_eq (vhd_aio_in_flight (s->d), DEPTH);
  wait_all (s->d);
  for (unsigned i = 0; i < DEPTH; i++) {
    expect_done (&r[i].x, r[i].write ? "write" : "read");
    if (r[i].write)
      memcpy (s->data + r[i].off, r[i].buf, r[i].len);
    else
      cr_assert_arr_eq (r[i].buf, s->data + r[i].off, r[i].len,
                        "read at %" PRIu64 "+%zu", r[i].off, r[i].len);
    free (r[i].buf);
  }
  free (used);
}

static void
verify_sync (struct vhd_disk *d, const uint8_t *want, uint64_t size)
{
  uint8_t *got = malloc (size);
  cr_assert_eq (vhd_pread (d, got, size, 0), 0, "%s", vhd_get_error ());
  cr_assert_arr_eq (got, want, size);
  free (got);
}

static void
many_in_flight (int format, int type, const char *name, bool direct)
{
  struct shadow s = { .size = 16 * MiB };
  struct done f = { 0 };

  s.data = calloc (1, s.size);
  s.d = create (name, format, type, s.size, NULL);
  /* Half the disk allocated, so writes meet both kinds of range. */
  for (uint64_t off = 0; off < s.size; off += 2 * MiB) {
    pattern (s.data + off, MiB, off, 0);
    cr_assert_eq (vhd_pwrite (s.d, s.data + off, MiB, off), 0);
  }
  vhd_close (s.d);
  s.d = vhd_open (path_of (name), 0);
  cr_assert_not_null (s.d, "%s", vhd_get_error ());
  cr_assert_eq (vhd_aio_set_direct (s.d, direct), 0);
  for (unsigned g = 1; g <= 6; g++)
    round_of_requests (&s, g * 100, g % 3 != 0);
  cr_assert_gt (vhd_aio_flush (s.d, on_done, &f), 0);
  wait_all (s.d);
  expect_done (&f, "flush");
  vhd_close (s.d);
  s.d = vhd_open (path_of (name), VHD_OPEN_RDONLY);
  cr_assert_not_null (s.d, "%s", vhd_get_error ());
  verify_sync (s.d, s.data, s.size);
  cr_assert_eq (vhd_aio_set_direct (s.d, direct), 0);
  round_of_requests (&s, 0, false);
  vhd_close (s.d);
  free (s.data);
}

struct many_case {
  int format, type;
  bool direct;
};

ParameterizedTestParameters (aio, many_in_flight)
{
  static struct many_case cases[] = {
    { VHD_FORMAT_VHD, VHD_TYPE_DYNAMIC, false },
    { VHD_FORMAT_VHD, VHD_TYPE_FIXED, false },
    { VHD_FORMAT_VHDX, VHD_TYPE_DYNAMIC, false },
    { VHD_FORMAT_VHDX, VHD_TYPE_FIXED, false },
    { VHD_FORMAT_RAW, VHD_TYPE_FIXED, false },
    /* O_DIRECT where the file system has it (else it stays buffered). */
    { VHD_FORMAT_VHD, VHD_TYPE_DYNAMIC, true },
    { VHD_FORMAT_VHD, VHD_TYPE_FIXED, true },
    { VHD_FORMAT_VHDX, VHD_TYPE_DYNAMIC, true },
    { VHD_FORMAT_VHDX, VHD_TYPE_FIXED, true },
    { VHD_FORMAT_RAW, VHD_TYPE_FIXED, true },
  };
  return cr_make_param_array (struct many_case, cases,
                              sizeof cases / sizeof cases[0]);
}

ParameterizedTest (struct many_case *c, aio, many_in_flight)
{
  const char *name = c->format == VHD_FORMAT_VHD    ? "a.vhd"
                     : c->format == VHD_FORMAT_VHDX ? "a.vhdx"
                                                    : "a.img";
  many_in_flight (c->format, c->type, name, c->direct);
}

/* Without polling, more transfers than the kernel ring holds: the rest
 * run synchronously, and every callback still comes. */
Test (aio, ring_full)
{
  enum { N = 700 };
  struct done *x = calloc (N, sizeof *x);
  uint8_t *bufs = malloc ((size_t) N * 512), *want = malloc (MiB);
  struct vhd_disk *d = create ("a.vhdx", VHD_FORMAT_VHDX, VHD_TYPE_DYNAMIC,
                               MiB, NULL);

  pattern (want, MiB, 0, 3);
  cr_assert_eq (vhd_pwrite (d, want, MiB, 0), 0);
  for (unsigned i = 0; i < N; i++)
    cr_assert_gt (vhd_aio_pread (d, bufs + i * 512, 512, (i % 2048) * 512,
                                 on_done, &x[i]), 0);
  cr_assert_eq (vhd_aio_in_flight (d), N);
  wait_all (d);
  for (unsigned i = 0; i < N; i++) {
    expect_done (&x[i], "read");
    cr_assert_arr_eq (bufs + i * 512, want + (i % 2048) * 512, 512);
  }
  vhd_close (d);
  free (x);
  free (bufs);
  free (want);
}

/* --- zeroes, discard, and the eventfd ------------------------------------ */

Test (aio, zeroes_and_discard)
{
  struct shadow s = { .size = 8 * MiB };
  struct done z = { 0 }, dz = { 0 }, fz = { 0 };

  s.data = calloc (1, s.size);
  s.d = create ("a.vhdx", VHD_FORMAT_VHDX, VHD_TYPE_DYNAMIC, s.size, NULL);
  pattern (s.data, s.size, 0, 9);
  cr_assert_eq (vhd_pwrite (s.d, s.data, s.size, 0), 0);
  cr_assert_gt (vhd_aio_write_zeroes (s.d, 1000, 3 * MiB, 0, on_done, &z), 0);
  cr_assert_gt (vhd_aio_discard (s.d, 5 * MiB, 2 * MiB, on_done, &dz), 0);
  /* A fast zero of part of a sector fails, through the callback. */
  cr_assert_gt (vhd_aio_write_zeroes (s.d, 7 * MiB + 10, 10, VHD_ZERO_FAST,
                                      on_done, &fz), 0);
  wait_all (s.d);
  expect_done (&z, "write zeroes");
  expect_done (&dz, "discard");
  cr_expect_eq (fz.calls, 1);
  cr_expect_eq (fz.error, ENOTSUP);
  cr_expect (strstr (fz.msg, "vhd_aio_write_zeroes: ") == fz.msg, "%s",
             fz.msg);
  memset (s.data + 1000, 0, 3 * MiB);
  memset (s.data + 5 * MiB, 0, 2 * MiB);
  verify_sync (s.d, s.data, s.size);
  round_of_requests (&s, 50, true);

  /* Synchronous discard and flush beside transfers in flight: they wait
   * for them (nothing polls meanwhile). */
  struct io_req w[8];
  for (unsigned i = 0; i < 8; i++) {
    w[i] = (struct io_req) { .off = i * 2 * SLOT, .len = SLOT, .write = 1 };
    cr_assert_eq (posix_memalign ((void **) &w[i].buf, 4096, SLOT), 0);
    pattern (w[i].buf, SLOT, w[i].off, 200 + i);
    cr_assert_gt (vhd_aio_pwrite (s.d, w[i].buf, SLOT, w[i].off, on_done,
                                  &w[i].x), 0);
  }
  cr_assert_eq (vhd_discard (s.d, 4 * MiB, MiB), 0, "%s", vhd_get_error ());
  cr_assert_eq (vhd_flush (s.d), 0, "%s", vhd_get_error ());
  wait_all (s.d);
  for (unsigned i = 0; i < 8; i++) {
    expect_done (&w[i].x, "write");
    memcpy (s.data + w[i].off, w[i].buf, SLOT);
    free (w[i].buf);
  }
  memset (s.data + 4 * MiB, 0, MiB);
  verify_sync (s.d, s.data, s.size);
  vhd_close (s.d);
  s.d = vhd_open (path_of ("a.vhdx"), VHD_OPEN_RDONLY);
  verify_sync (s.d, s.data, s.size);
  vhd_close (s.d);
  free (s.data);
}

static bool
readable (int fd, int timeout_ms)
{
  struct pollfd p = { .fd = fd, .events = POLLIN };
  return poll (&p, 1, timeout_ms) == 1;
}

Test (aio, eventfd_readiness)
{
  struct done x = { 0 }, y = { 0 };
  uint8_t buf[SLOT];
  struct vhd_disk *d = create ("a.vhd", VHD_FORMAT_VHD, VHD_TYPE_FIXED,
                               MiB, NULL);
  int fd = vhd_aio_get_fd (d);

  cr_assert_geq (fd, 0, "%s", vhd_get_error ());
  cr_expect_eq (vhd_aio_get_fd (d), fd, "one eventfd per handle");
  cr_expect (!readable (fd, 0), "readable with nothing submitted");
  cr_assert_gt (vhd_aio_pread (d, buf, sizeof buf, 0, on_done, &x), 0);
  cr_expect (readable (fd, 10000), "not readable after a read");
  cr_expect_eq (x.calls, 0, "callback ran before vhd_aio_poll");
  while (x.calls == 0) {
    cr_assert (readable (fd, 10000));
    cr_assert_geq (vhd_aio_poll (d), 0);
  }
  expect_done (&x, "read");
  cr_expect (!readable (fd, 0), "still readable after the poll");
  cr_expect_eq (vhd_aio_in_flight (d), 0);
  /* A request finished at submission (flush) wakes the loop too. */
  cr_assert_gt (vhd_aio_flush (d, on_done, &y), 0);
  cr_expect (readable (fd, 0));
  cr_expect_eq (vhd_aio_poll (d), 1);
  expect_done (&y, "flush");
  cr_expect_eq (vhd_aio_poll (d), 0);
  vhd_close (d);
}

/* --- callbacks that submit; two threads ---------------------------------- */

struct chainer {
  struct vhd_disk *d;
  uint8_t buf[SLOT];
  unsigned left, errors;
};

static void
resubmit (void *opaque, int error)
{
  struct chainer *c = opaque;

  if (error)
    c->errors++;
  if (c->left-- > 0
      && vhd_aio_pread (c->d, c->buf, SLOT, rnd (255) * SLOT, resubmit, c)
           == -1)
    c->errors++;
}

Test (aio, callbacks_may_submit)
{
  struct chainer c[8];
  struct vhd_disk *d = create ("a.vhdx", VHD_FORMAT_VHDX, VHD_TYPE_DYNAMIC,
                               MiB, NULL);

  fill (d, 0, MiB, 1);
  for (unsigned i = 0; i < 8; i++) {
    c[i] = (struct chainer) { .d = d, .left = 100 };
    cr_assert_gt (vhd_aio_pread (d, c[i].buf, SLOT, 0, resubmit, &c[i]), 0);
  }
  wait_all (d);
  for (unsigned i = 0; i < 8; i++)
    cr_expect_eq (c[i].errors, 0);
  vhd_close (d);
}

struct submitter {
  struct vhd_disk *d;
  unsigned n;
  int failed;
  struct done *x;
  uint8_t *bufs;
};

static void *
submit_many (void *opaque)
{
  struct submitter *s = opaque;

  for (unsigned i = 0; i < s->n; i++) {
    uint8_t *b = s->bufs + (size_t) i * SLOT;
    uint64_t off = (uint64_t) (i % 256) * SLOT;
    int64_t r = i % 2 ? vhd_aio_pread (s->d, b, SLOT, off, on_done, &s->x[i])
                      : vhd_aio_pwrite (s->d, b, SLOT, off, on_done,
                                        &s->x[i]);
    if (r == -1)
      s->failed = 1;
  }
  return NULL;
}

/* One thread submits, this one polls: every callback runs exactly once. */
Test (aio, poller_beside_submitter)
{
  struct submitter s = { .n = 2000 };
  pthread_t t;
  int fd;

  s.d = create ("a.vhd", VHD_FORMAT_VHD, VHD_TYPE_DYNAMIC, MiB, NULL);
  fill (s.d, 0, MiB, 1);
  s.x = calloc (s.n, sizeof *s.x);
  s.bufs = calloc (s.n, SLOT);
  fd = vhd_aio_get_fd (s.d);
  cr_assert_eq (pthread_create (&t, NULL, submit_many, &s), 0);
  for (int spins = 0; spins < 100000; spins++) {
    bool all = true;
    if (readable (fd, 10))
      cr_assert_geq (vhd_aio_poll (s.d), 0);
    for (unsigned i = 0; i < s.n && all; i++)
      all = __atomic_load_n (&s.x[i].calls, __ATOMIC_RELAXED) == 1;
    if (all)
      break;
  }
  pthread_join (t, NULL);
  wait_all (s.d);
  cr_expect_eq (s.failed, 0);
  for (unsigned i = 0; i < s.n; i++)
    expect_done (&s.x[i], i % 2 ? "read" : "write");
  vhd_close (s.d);
  free (s.x);
  free (s.bufs);
}

/* Four threads submit reads at once (they share the handle's lock) and
 * poll; any thread may run any callback.  Every read returns the bytes
 * written before, and runs its callback exactly once. */
#define READERS 4
#define READS_EACH 500

struct reader {
  struct vhd_disk *d;
  unsigned id;
  int failed;
  struct done x[READS_EACH];
  uint8_t buf[READS_EACH][4096];
};

static int total_done;

static void
on_read_done (void *opaque, int error)
{
  on_done (opaque, error);
  __atomic_fetch_add (&total_done, 1, __ATOMIC_RELAXED);
}

static void *
read_many (void *opaque)
{
  struct reader *r = opaque;
  int fd = vhd_aio_get_fd (r->d);

  for (unsigned i = 0; i < READS_EACH; i++) {
    uint64_t off = (uint64_t) ((i * 7 + r->id * 131) % 1024) * 4096;
    if (vhd_aio_pread (r->d, r->buf[i], 4096, off, on_read_done,
                       &r->x[i]) == -1)
      r->failed = 1;
    if (i % 16 == 0 && vhd_aio_poll (r->d) == -1)
      r->failed = 1;
  }
  while (__atomic_load_n (&total_done, __ATOMIC_RELAXED)
         < READERS * READS_EACH && !r->failed)
    if (readable (fd, 10) && vhd_aio_poll (r->d) == -1)
      r->failed = 1;
  return NULL;
}

static void
concurrent_reads (int format)
{
  struct reader *r = calloc (READERS, sizeof *r);
  pthread_t t[READERS];
  uint8_t want[4096];
  struct vhd_disk *d = create ("r.img", format, VHD_TYPE_DYNAMIC, 4 * MiB,
                               NULL);

  fill (d, 0, 4 * MiB, 3);
  total_done = 0;
  for (unsigned i = 0; i < READERS; i++) {
    r[i].d = d, r[i].id = i;
    cr_assert_eq (pthread_create (&t[i], NULL, read_many, &r[i]), 0);
  }
  for (unsigned i = 0; i < READERS; i++)
    pthread_join (t[i], NULL);
  cr_assert_eq (vhd_aio_in_flight (d), 0);
  for (unsigned i = 0; i < READERS; i++) {
    cr_expect_eq (r[i].failed, 0, "reader %u", i);
    for (unsigned k = 0; k < READS_EACH; k++) {
      uint64_t off = (uint64_t) ((k * 7 + i * 131) % 1024) * 4096;
      expect_done (&r[i].x[k], "read");
      pattern (want, sizeof want, off, 3);
      cr_assert_arr_eq (r[i].buf[k], want, sizeof want,
                        "reader %u read %u at %" PRIu64, i, k, off);
    }
  }
  vhd_close (d);
  free (r);
}

Test (aio, concurrent_readers_vhd) { concurrent_reads (VHD_FORMAT_VHD); }
Test (aio, concurrent_readers_vhdx) { concurrent_reads (VHD_FORMAT_VHDX); }

/* --- close with requests in flight --------------------------------------- */

Test (aio, close_with_requests_in_flight)
{
  struct io_req r[DEPTH];
  uint8_t *want = calloc (1, 4 * MiB);
  struct vhd_disk *d = create ("a.vhdx", VHD_FORMAT_VHDX, VHD_TYPE_DYNAMIC,
                               4 * MiB, NULL);

  fill (d, 0, 4 * MiB, 0);
  pattern (want, 4 * MiB, 0, 0);
  for (unsigned i = 0; i < DEPTH; i++) {
    r[i] = (struct io_req) { .off = (uint64_t) i * 2 * SLOT, .len = SLOT,
                             .write = i % 2 == 0 };
    r[i].buf = malloc (SLOT);
    pattern (r[i].buf, SLOT, r[i].off, 77);
    if (r[i].write) {
      memcpy (want + r[i].off, r[i].buf, SLOT);
      cr_assert_gt (vhd_aio_pwrite (d, r[i].buf, SLOT, r[i].off, on_done,
                                    &r[i].x), 0);
    }
    else
      cr_assert_gt (vhd_aio_pread (d, r[i].buf, SLOT, r[i].off, on_done,
                                   &r[i].x), 0);
  }
  vhd_close (d); /* waits, then runs every callback */
  for (unsigned i = 0; i < DEPTH; i++) {
    expect_done (&r[i].x, "request at close");
    if (!r[i].write)
      cr_expect_arr_eq (r[i].buf, want + r[i].off, SLOT);
    free (r[i].buf);
  }
  d = vhd_open (path_of ("a.vhdx"), VHD_OPEN_RDONLY);
  cr_assert_not_null (d, "%s", vhd_get_error ());
  verify_sync (d, want, 4 * MiB);
  vhd_close (d);
  free (want);
}

/* --- memory images: no descriptor, everything synchronous ---------------- */

static uint8_t *
slurp (const char *path, size_t *len)
{
  FILE *f = fopen (path, "rb");
  uint8_t *data;

  cr_assert_not_null (f);
  fseek (f, 0, SEEK_END);
  *len = (size_t) ftell (f);
  rewind (f);
  data = malloc (*len);
  cr_assert_eq (fread (data, 1, *len, f), *len);
  fclose (f);
  return data;
}

Test (aio, memory_image)
{
  struct shadow s = { .size = 4 * MiB };
  size_t len;
  uint8_t *img;
  struct vhd_disk *d = create ("a.vhdx", VHD_FORMAT_VHDX, VHD_TYPE_DYNAMIC,
                               s.size, NULL);

  vhd_close (d);
  img = slurp (path_of ("a.vhdx"), &len);
  s.d = disk_open_io (io_mem_new (img, len), "mem.vhdx", 0, NULL);
  cr_assert_not_null (s.d, "%s", vhd_get_error ());
  cr_assert_eq (io_fd (s.d->io), -1);
  s.data = calloc (1, s.size);
  for (unsigned g = 1; g <= 3; g++)
    round_of_requests (&s, g, true);
  verify_sync (s.d, s.data, s.size);
  vhd_close (s.d);
  free (s.data);
  free (img);
}
