/* test-threads.c: one handle, eight threads, every format and type.
 * Each thread writes its own stripes (allocating blocks concurrently with
 * the others), reads them back at once, and flushes now and then; then
 * it writes them all again (writes in place, which share the handle's
 * lock with the other threads' reads and allocations) and reads them
 * back.  After the join, and again after a reopen, every stripe holds
 * its thread's second pattern. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libvhd.h"

#define THREADS 8
#define STRIPE (192U * 1024)   /* not a block multiple: stripes share blocks */
#define ROUNDS 6
#define DISK_SIZE ((uint64_t) THREADS * ROUNDS * STRIPE)

struct worker {
  struct vhd_disk *d;
  unsigned id;
  int failed;
  char why[256];
};

static uint64_t
stripe_offset (unsigned id, unsigned round)
{
  return ((uint64_t) round * THREADS + id) * STRIPE;
}

#define PASSES 2

static void
pattern (uint8_t *buf, unsigned id, unsigned round, unsigned pass)
{
  for (size_t i = 0; i < STRIPE; i++)
    buf[i] = (uint8_t) (id * 31 + round * 7 + pass * 101 + i % 251);
}

static void *
work (void *opaque)
{
  struct worker *w = opaque;
  uint8_t *want = malloc (STRIPE), *got = malloc (STRIPE);

  for (unsigned k = 0; k < PASSES * ROUNDS && !w->failed; k++) {
    unsigned r = k % ROUNDS, pass = k / ROUNDS;
    uint64_t off = stripe_offset (w->id, r);
    pattern (want, w->id, r, pass);
    if (vhd_pwrite (w->d, want, STRIPE, off) == -1
        || vhd_pread (w->d, got, STRIPE, off) == -1
        || (r % 2 && vhd_flush (w->d) == -1)) {
      w->failed = 1;
      snprintf (w->why, sizeof w->why, "%s", vhd_get_error ());
    }
    else if (memcmp (want, got, STRIPE) != 0) {
      w->failed = 1;
      snprintf (w->why, sizeof w->why, "thread %u round %u pass %u reads "
                "back other bytes", w->id, r, pass);
    }
  }
  free (want);
  free (got);
  return NULL;
}

static void
verify_all (struct vhd_disk *d)
{
  uint8_t *want = malloc (STRIPE), *got = malloc (STRIPE);

  for (unsigned id = 0; id < THREADS; id++)
    for (unsigned r = 0; r < ROUNDS; r++) {
      pattern (want, id, r, PASSES - 1);
      cr_assert_eq (vhd_pread (d, got, STRIPE, stripe_offset (id, r)), 0,
                    "%s", vhd_get_error ());
      cr_assert_arr_eq (want, got, STRIPE, "stripe of thread %u round %u",
                        id, r);
    }
  free (want);
  free (got);
}

static void
run_threads (const char *path)
{
  struct vhd_disk *d = vhd_open (path, 0);
  pthread_t t[THREADS];
  struct worker w[THREADS];

  cr_assert_not_null (d, "%s", vhd_get_error ());
  for (unsigned i = 0; i < THREADS; i++) {
    w[i] = (struct worker) { .d = d, .id = i };
    cr_assert_eq (pthread_create (&t[i], NULL, work, &w[i]), 0);
  }
  for (unsigned i = 0; i < THREADS; i++) {
    pthread_join (t[i], NULL);
    cr_expect_eq (w[i].failed, 0, "thread %u: %s", i, w[i].why);
  }
  verify_all (d);
  vhd_close (d);
  d = vhd_open (path, VHD_OPEN_RDONLY);
  cr_assert_not_null (d, "%s", vhd_get_error ());
  verify_all (d);
  vhd_close (d);
}

/* Create NAME (format, type, parent) in a fresh directory. */
static void
run_on (int format, int type, bool child)
{
  char dir[] = "/tmp/libvhd-threads-XXXXXX", path[128], base[128];
  const char *ext = format == VHD_FORMAT_VHDX ? "vhdx" : "vhd";
  struct vhd_create_opts *o = vhd_create_opts_new ();
  struct vhd_disk *d;

  cr_assert_not_null (mkdtemp (dir));
  snprintf (base, sizeof base, "%s/base.%s", dir, ext);
  snprintf (path, sizeof path, "%s/child.%s", dir, ext);
  cr_assert_eq (vhd_create_opts_set_format (o, format), 0);
  cr_assert_eq (vhd_create_opts_set_type (o, type), 0);
  if (format == VHD_FORMAT_VHDX)
    cr_assert_eq (vhd_create_opts_set_block_size (o, 1U << 20), 0);
  cr_assert_eq (vhd_create_opts_set_size (o, DISK_SIZE), 0);
  d = vhd_create (base, o);
  cr_assert_not_null (d, "%s", vhd_get_error ());
  vhd_close (d);
  if (child) {
    cr_assert_eq (vhd_create_opts_set_parent (o, base), 0);
    d = vhd_create (path, o);
    cr_assert_not_null (d, "%s", vhd_get_error ());
    vhd_close (d);
  }
  vhd_create_opts_free (o);
  run_threads (child ? path : base);
  snprintf (path, sizeof path, "rm -rf %s", dir);
  cr_expect_eq (system (path), 0);
}

Test (threads, vhd_dynamic) { run_on (VHD_FORMAT_VHD, VHD_TYPE_DYNAMIC, false); }
Test (threads, vhd_fixed) { run_on (VHD_FORMAT_VHD, VHD_TYPE_FIXED, false); }
Test (threads, vhd_differencing) { run_on (VHD_FORMAT_VHD, VHD_TYPE_DYNAMIC, true); }
Test (threads, vhdx_dynamic) { run_on (VHD_FORMAT_VHDX, VHD_TYPE_DYNAMIC, false); }
Test (threads, vhdx_fixed) { run_on (VHD_FORMAT_VHDX, VHD_TYPE_FIXED, false); }
Test (threads, vhdx_differencing) { run_on (VHD_FORMAT_VHDX, VHD_TYPE_DYNAMIC, true); }
