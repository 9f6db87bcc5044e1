/* vmm-demo.c: the block layer of a toy VMM, on libvhd's asynchronous API.
 *
 *   vmm-demo [-n OPS] [-q DEPTH] [-D] IMAGE
 *
 * A "guest" issues random 4 KiB reads and writes (one in three is a
 * write), keeping DEPTH of them in flight (default 16), OPS in all
 * (default 20000).  The VMM's event loop is an epoll set watching the
 * disk's eventfd; each completion callback checks the request and
 * submits the guest's next one, as a virtio queue would.  A shadow copy
 * of the disk in memory checks every read.  At the end: flush, close,
 * reopen synchronously, and compare the whole disk with the shadow.
 * -D asks for O_DIRECT transfers (vhd_aio_set_direct).
 *
 * IMAGE is created as a 64 MiB dynamic VHDX unless it exists.  Exit
 * status 0 when every check passed.
 *
 *   cc vmm-demo.c -o vmm-demo `pkg-config libvhd --cflags --libs --static`
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include <libvhd.h>

#define IO_SIZE 4096U
#define NEW_DISK_SIZE (64U << 20)
#define MAX_DEPTH 256

struct vmm;

/* One guest request slot; its buffer is reused for request after request. */
struct request {
  struct vmm *vmm;
  uint8_t *buf;      /* IO_SIZE, page aligned (O_DIRECT wants that) */
  uint64_t chunk;    /* which 4 KiB of the disk */
  bool write;
};

struct vmm {
  struct vhd_disk *disk;
  uint64_t chunks;   /* disk size / IO_SIZE */
  uint8_t *shadow;   /* what the disk must hold */
  bool *busy;        /* a request is in flight on it: none overlap */
  unsigned long ops, submitted, completed, reads, writes;
  int failed;
};

static void
die (const char *what)
{
  fprintf (stderr, "vmm-demo: %s: %s\n", what, vhd_get_error ());
  exit (EXIT_FAILURE);
}

static uint64_t
rnd (void)
{
  static uint64_t x = 0x2545f4914f6cdd1dULL;
  x ^= x << 13, x ^= x >> 7, x ^= x << 17;
  return x;
}

static void on_complete (void *opaque, int error);

/* Issue the guest's next request on this slot. */
static void
submit (struct request *r)
{
  struct vmm *v = r->vmm;
  int64_t cookie;

  do
    r->chunk = rnd () % v->chunks;
  while (v->busy[r->chunk]);
  v->busy[r->chunk] = true;
  r->write = rnd () % 3 == 0;
  if (r->write) {
    for (unsigned i = 0; i < IO_SIZE; i += 8) {
      uint64_t word = rnd ();
      memcpy (r->buf + i, &word, 8);
    }
    cookie = vhd_aio_pwrite (v->disk, r->buf, IO_SIZE, r->chunk * IO_SIZE,
                             on_complete, r);
  }
  else
    cookie = vhd_aio_pread (v->disk, r->buf, IO_SIZE, r->chunk * IO_SIZE,
                            on_complete, r);
  if (cookie == -1)
    die ("submit");
  v->submitted++;
}

/* Called from vhd_aio_poll, in the event loop's thread. */
static void
on_complete (void *opaque, int error)
{
  struct request *r = opaque;
  struct vmm *v = r->vmm;
  uint8_t *expected = v->shadow + r->chunk * IO_SIZE;

  if (error || (!r->write && memcmp (expected, r->buf, IO_SIZE) != 0)) {
    fprintf (stderr, "vmm-demo: %s at %llu: %s\n", r->write ? "write" : "read",
             (unsigned long long) (r->chunk * IO_SIZE),
             error ? vhd_get_error () : "other data than written");
    v->failed = 1;
  }
  if (r->write) {
    memcpy (expected, r->buf, IO_SIZE); /* the guest saw it complete */
    v->writes++;
  }
  else
    v->reads++;
  v->busy[r->chunk] = false;
  v->completed++;
  if (v->submitted < v->ops && !v->failed)
    submit (r);
}

#define PENDING (-1)

static void
on_flush (void *opaque, int error)
{
  *(int *) opaque = error;
}

/* The event loop: sleep in epoll until the disk's eventfd is readable,
 * then let libvhd run the callbacks of what completed.  Runs until
 * nothing is in flight, or until *result is no longer PENDING. */
static void
run_until (struct vmm *v, int epfd, const int *result)
{
  while (result ? *result == PENDING : vhd_aio_in_flight (v->disk) > 0) {
    struct epoll_event ev;
    int n = epoll_wait (epfd, &ev, 1, 10000);
    if (n == -1 && errno == EINTR)
      continue;
    if (n <= 0) {
      fprintf (stderr, "vmm-demo: no completion for 10 s\n");
      exit (EXIT_FAILURE);
    }
    if (vhd_aio_poll (v->disk) == -1)
      die ("poll");
  }
}

/* Open IMAGE (creating it if needed) and load the shadow from it. */
static void
attach_disk (struct vmm *v, const char *path)
{
  struct vhd_create_opts *o = vhd_create_opts_new ();

  if (access (path, F_OK) == 0)
    v->disk = vhd_open (path, 0);
  else if (o && vhd_create_opts_set_format (o, VHD_FORMAT_VHDX) == 0
           && vhd_create_opts_set_type (o, VHD_TYPE_DYNAMIC) == 0
           && vhd_create_opts_set_block_size (o, 1U << 20) == 0
           && vhd_create_opts_set_size (o, NEW_DISK_SIZE) == 0)
    v->disk = vhd_create (path, o);
  vhd_create_opts_free (o);
  if (v->disk == NULL)
    die (path);
  v->chunks = (uint64_t) vhd_get_size (v->disk) / IO_SIZE;
  v->shadow = malloc (v->chunks * IO_SIZE);
  v->busy = calloc (v->chunks, sizeof *v->busy);
  if (v->shadow == NULL || v->busy == NULL
      || vhd_pread (v->disk, v->shadow, v->chunks * IO_SIZE, 0) == -1)
    die ("loading the shadow copy");
}

/* After a power cycle the disk must hold exactly the shadow. */
static void
check_after_reopen (struct vmm *v, const char *path)
{
  uint8_t *now = malloc (v->chunks * IO_SIZE);

  v->disk = vhd_open (path, VHD_OPEN_RDONLY);
  if (now == NULL || v->disk == NULL
      || vhd_pread (v->disk, now, v->chunks * IO_SIZE, 0) == -1)
    die ("reopen");
  if (memcmp (now, v->shadow, v->chunks * IO_SIZE) != 0) {
    fprintf (stderr, "vmm-demo: after reopen the disk differs\n");
    v->failed = 1;
  }
  vhd_close (v->disk);
  free (now);
}

int
main (int argc, char *argv[])
{
  struct vmm v = { .ops = 20000 };
  struct request slot[MAX_DEPTH];
  struct epoll_event ev = { .events = EPOLLIN };
  struct timespec t0, t1;
  unsigned depth = 16, started;
  int c, epfd, flushed = PENDING;
  bool direct = false;

  while ((c = getopt (argc, argv, "n:q:D")) != -1) {
    if (c == 'n')
      v.ops = strtoul (optarg, NULL, 0);
    else if (c == 'q')
      depth = (unsigned) strtoul (optarg, NULL, 0);
    else if (c == 'D')
      direct = true;
    else
      depth = 0; /* usage */
  }
  if (optind != argc - 1 || depth == 0 || depth > MAX_DEPTH) {
    fprintf (stderr, "usage: vmm-demo [-n OPS] [-q DEPTH] [-D] IMAGE\n");
    return 2;
  }
  attach_disk (&v, argv[optind]);
  if (direct && vhd_aio_set_direct (v.disk, 1) == -1)
    die ("direct");
  if (v.chunks < 2 * depth) {
    fprintf (stderr, "vmm-demo: disk too small\n");
    return EXIT_FAILURE;
  }

  /* The VMM's epoll set watches the disk's eventfd. */
  epfd = epoll_create1 (EPOLL_CLOEXEC);
  if (epfd == -1 || epoll_ctl (epfd, EPOLL_CTL_ADD, vhd_aio_get_fd (v.disk),
                               &ev) == -1)
    die ("epoll");

  clock_gettime (CLOCK_MONOTONIC, &t0);
  for (started = 0; started < depth && v.submitted < v.ops; started++) {
    slot[started] = (struct request) { .vmm = &v };
    if (posix_memalign ((void **) &slot[started].buf, 4096, IO_SIZE))
      die ("memory");
    submit (&slot[started]);
  }
  run_until (&v, epfd, NULL);
  clock_gettime (CLOCK_MONOTONIC, &t1);

  /* The guest's flush: every write it saw complete becomes durable. */
  if (vhd_aio_flush (v.disk, on_flush, &flushed) == -1)
    die ("flush");
  run_until (&v, epfd, &flushed);
  if (flushed != 0) {
    fprintf (stderr, "vmm-demo: flush: %s\n", strerror (flushed));
    v.failed = 1;
  }
  vhd_close (v.disk);
  close (epfd);
  check_after_reopen (&v, argv[optind]);

  double secs = (double) (t1.tv_sec - t0.tv_sec)
                + (double) (t1.tv_nsec - t0.tv_nsec) / 1e9;
  printf ("vmm-demo: %lu ops (%lu reads, %lu writes), queue depth %u%s, "
          "%.3f s, %.0f IOPS: %s\n", v.completed, v.reads, v.writes, depth,
          direct ? ", O_DIRECT" : "", secs, (double) v.completed / secs,
          v.failed ? "FAILED" : "verified");
  while (started > 0)
    free (slot[--started].buf);
  free (v.shadow);
  free (v.busy);
  return v.failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
