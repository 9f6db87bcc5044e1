/* test-flush-concurrency.c: a flush with only data to make durable does
 * not stall the handle.  The byte source's flush is held open until
 * another thread has written in place and read back through the same
 * handle; were the flush to hold the handle's lock exclusively, that
 * write would wait for it and the flush would give up waiting.  Every
 * format and type whose writes in place can happen: raw, VHD fixed and
 * dynamic, VHDX dynamic and fixed. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define MiB (UINT64_C (1) << 20)
#define LEN (64U << 10)
#define GATE_SECONDS 5

/* The gate: armed, the source's flush waits until the writer is done. */
static struct {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool armed, flush_started, write_done, timed_out;
  int (*inner_flush) (struct io *io);
} gate = { .lock = PTHREAD_MUTEX_INITIALIZER,
            .cond = PTHREAD_COND_INITIALIZER };

static void
deadline (struct timespec *ts, int seconds)
{
  clock_gettime (CLOCK_REALTIME, ts);
  ts->tv_sec += seconds;
}

static int
gated_flush (struct io *io)
{
  struct timespec ts;

  pthread_mutex_lock (&gate.lock);
  if (gate.armed) {
    gate.flush_started = true;
    pthread_cond_broadcast (&gate.cond);
    deadline (&ts, GATE_SECONDS);
    while (!gate.write_done && !gate.timed_out)
      if (pthread_cond_timedwait (&gate.cond, &gate.lock, &ts) == ETIMEDOUT)
        gate.timed_out = true;
  }
  pthread_mutex_unlock (&gate.lock);
  return gate.inner_flush (io);
}

static struct io_ops gated_ops;
static char dir[] = "/tmp/libvhd-flush-XXXXXX";
static char path[256];

static void
setup (void)
{
  cr_assert_not_null (mkdtemp (dir));
  snprintf (path, sizeof path, "%s/disk", dir);
}

static void
teardown (void)
{
  unlink (path);
  rmdir (dir);
}

/* A new image file, opened read-write with its flush through the gate
 * (writes in place need a file: a memory source has no descriptor). */
static struct vhd_disk *
open_gated (int format, int type)
{
  struct vhd_create_opts *o = vhd_create_opts_new ();
  struct vhd_disk *d;

  cr_assert_not_null (o);
  cr_assert_eq (vhd_create_opts_set_format (o, format), 0);
  cr_assert_eq (vhd_create_opts_set_type (o, type), 0);
  cr_assert_eq (vhd_create_opts_set_size (o, 8 * MiB), 0);
  if (format != VHD_FORMAT_RAW)
    cr_assert_eq (vhd_create_opts_set_block_size (o, 2 * MiB), 0);
  d = vhd_create (path, o);
  vhd_create_opts_free (o);
  cr_assert_not_null (d, "create: %s", vhd_get_error ());
  vhd_close (d);
  d = vhd_open (path, 0);
  cr_assert_not_null (d, "open: %s", vhd_get_error ());
  gated_ops = *d->io->ops;
  gate.inner_flush = d->io->ops->flush;
  gated_ops.flush = gated_flush;
  d->io->ops = &gated_ops;
  return d;
}

TestSuite (flush_concurrency, .init = setup, .fini = teardown);

static void *
flush_thread (void *opaque)
{
  return (void *) (intptr_t) vhd_flush (opaque);
}

static void
write_during_flush (int format, int type)
{
  struct vhd_disk *d = open_gated (format, type);
  uint8_t *buf = malloc (LEN), *got = malloc (LEN);
  struct timespec ts;
  pthread_t t;
  void *flushed;

  cr_assert (buf && got);
  /* Allocate the range and make it durable: metadata is clean now. */
  memset (buf, 0x11, LEN);
  cr_assert_eq (vhd_pwrite (d, buf, LEN, 3 * MiB), 0, "%s", vhd_get_error ());
  cr_assert_eq (vhd_flush (d), 0, "%s", vhd_get_error ());

  gate.armed = true;
  cr_assert_eq (pthread_create (&t, NULL, flush_thread, d), 0);
  pthread_mutex_lock (&gate.lock);
  deadline (&ts, 2 * GATE_SECONDS);
  while (!gate.flush_started)
    cr_assert_neq (pthread_cond_timedwait (&gate.cond, &gate.lock, &ts),
                   ETIMEDOUT, "the flush never reached the byte source");
  pthread_mutex_unlock (&gate.lock);

  memset (buf, 0x22, LEN);
  cr_expect_eq (vhd_pwrite (d, buf, LEN, 3 * MiB), 0, "%s", vhd_get_error ());
  cr_expect_eq (vhd_pread (d, got, LEN, 3 * MiB), 0, "%s", vhd_get_error ());
  pthread_mutex_lock (&gate.lock);
  gate.write_done = true;
  pthread_cond_broadcast (&gate.cond);
  pthread_mutex_unlock (&gate.lock);
  pthread_join (t, &flushed);

  cr_expect_eq ((intptr_t) flushed, 0, "flush: %s", vhd_get_error ());
  cr_expect_not (gate.timed_out, "the write in place waited for the flush");
  cr_expect_eq (memcmp (buf, got, LEN), 0);
  gate.armed = false;
  vhd_close (d);
  free (buf);
  free (got);
}

Test (flush_concurrency, raw)
{
  write_during_flush (VHD_FORMAT_RAW, VHD_TYPE_FIXED);
}

Test (flush_concurrency, vhd_fixed)
{
  write_during_flush (VHD_FORMAT_VHD, VHD_TYPE_FIXED);
}

Test (flush_concurrency, vhd_dynamic)
{
  write_during_flush (VHD_FORMAT_VHD, VHD_TYPE_DYNAMIC);
}

Test (flush_concurrency, vhdx_dynamic)
{
  write_during_flush (VHD_FORMAT_VHDX, VHD_TYPE_DYNAMIC);
}

Test (flush_concurrency, vhdx_fixed)
{
  write_during_flush (VHD_FORMAT_VHDX, VHD_TYPE_FIXED);
}

/* With metadata waiting (a new block's BAT entry deferred to the flush),
 * the flush takes the handle to itself and writes it; a reopened copy of
 * the file holds the new block. */
Test (flush_concurrency, vhdx_flush_with_metadata_commits_it)
{
  struct vhd_disk *d = open_gated (VHD_FORMAT_VHDX, VHD_TYPE_DYNAMIC), *r;
  uint8_t *buf = malloc (LEN), *got = malloc (LEN);

  cr_assert (buf && got);
  memset (buf, 0x33, LEN);
  cr_assert_eq (vhd_pwrite (d, buf, LEN, 5 * MiB), 0, "%s", vhd_get_error ());
  cr_expect (d->ops->flush_needs_metadata (d), "the BAT change is deferred");
  cr_assert_eq (vhd_flush (d), 0, "%s", vhd_get_error ());
  cr_expect_not (d->ops->flush_needs_metadata (d));
  r = vhd_open (path, VHD_OPEN_RDONLY);
  cr_assert_not_null (r, "%s", vhd_get_error ());
  cr_expect_eq (vhd_pread (r, got, LEN, 5 * MiB), 0, "%s", vhd_get_error ());
  cr_expect_eq (memcmp (buf, got, LEN), 0);
  vhd_close (r);
  vhd_close (d);
  free (buf);
  free (got);
}
