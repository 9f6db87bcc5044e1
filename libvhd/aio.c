/* aio.c: the asynchronous API (vhd_aio_*), on Linux native AIO (libaio).
 *
 * REQUESTS.  A submit call validates its arguments like its synchronous
 * twin and, under the handle lock:
 *   - pread plans the read through the chain (aio-map.c) and submits one
 *     iocb per file segment; zeros are filled in at once;
 *   - pwrite submits iocbs when every sector is already data of the top
 *     layer's file, else writes through chain_pwrite at once (allocation,
 *     partial sectors, metadata);
 *   - flush, discard and write zeroes drain the transfers in flight, then
 *     run their chain_* call at once.
 * A request finished at submission joins the done list at once; one with
 * iocbs joins it when its last iocb is reaped.  Its callback runs later,
 * in vhd_aio_poll (at the latest in vhd_close), in the caller's thread,
 * with no lock held: every accepted request gets exactly one callback.
 *
 * The first write of a handle through this API goes through the driver
 * even when it could be a transfer: a driver may prepare the file before
 * its data first changes (VHDX renews the write GUIDs of its headers).
 * After a failed driver write, writes go through the driver again, which
 * refuses them when the image is in doubt.
 *
 * WAKE-UPS.  Every iocb carries the eventfd (io_set_eventfd): the kernel
 * adds one per completion.  Whoever queues a request outside vhd_aio_poll
 * (a completion at submission, a drain) adds one after queueing it.
 * vhd_aio_poll reads the eventfd first, then reaps and takes the list, so
 * a completion it misses leaves the descriptor readable.
 *
 * LOCKS.  Submission and drains hold the handle lock, and take a->lock
 * (done list, counters, reaping) inside it; vhd_aio_poll takes a->lock
 * only, so callbacks may submit more requests.  Reads hold the handle
 * lock shared (once the state exists), like vhd_pread: they only map
 * and submit; everything else holds it exclusive.
 *
 * STORAGE.  A transfer goes to a fixed place in a file, so nothing may
 * free or move blocks while one is in flight: flush, write zeroes and
 * every operation (compact, resize, commit, rebase: they flush first)
 * drain them first (chain_flush, chain_write_zeroes).  Allocating writes
 * take new space, or space freed by such a call (no transfer can aim at
 * it since), and need no drain.
 *
 * DIRECT.  With vhd_aio_set_direct, transfers that suit it go through
 * the file's O_DIRECT descriptor (aio-map.c): only there does the kernel
 * run them concurrently; buffered ones are done inside io_submit.
 *
 * No threads: completions are reaped with a zero timeout by vhd_aio_poll,
 * and waited for only by drains and vhd_close.
 */
#include <errno.h>
#include <inttypes.h>
#include <libaio.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "aio-internal.h"
#include "cleanup.h"
#include "minmax.h"

/* Events the kernel ring holds; requests beyond it run synchronously. */
#define AIO_RING 512U
#define REAP_BATCH 64
#define SUBMIT_BATCH 64U

struct aio_io {
  struct iocb iocb; /* first: an io_event's obj points here */
  const char *file;
};

struct aio_req {
  struct aio_req *next; /* on the done list */
  const char *what;     /* the submitting call, for messages */
  vhd_aio_callback cb;
  void *opaque;
  int error;            /* the first failure: 0 or an errno */
  char *msg;            /* its message (malloc'd), or NULL */
  size_t pending;       /* iocbs not yet reaped */
  size_t n;
  struct aio_io io[];
};

struct aio_state {
  int efd;
  io_context_t ctx;     /* NULL when io_setup failed: all synchronous */
  int64_t next_cookie;  /* atomic: reads submit under the shared lock */
  /* Under the handle lock, exclusive. */
  bool write_ready;     /* the last driver write succeeded (see above) */
  bool direct;          /* vhd_aio_set_direct */
  /* Under lock. */
  pthread_mutex_t lock;
  size_t iocbs;         /* submitted, not yet reaped */
  int64_t in_flight;    /* accepted, callback not yet started */
  struct aio_req *done, **done_tail;
};

/* --- validation, as in handle.c ----------------------------------------- */

/* --- state -------------------------------------------------------------- */

/* The handle's state, created on first use.  Handle lock held. */
static struct aio_state *
get_state (struct vhd_disk *d)
{
  struct aio_state *a = d->aio;

  if (a)
    return a;
  a = calloc (1, sizeof *a);
  if (a == NULL) {
    set_error (ENOMEM, "out of memory");
    return NULL;
  }
  a->efd = eventfd (0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (a->efd == -1) {
    set_error (errno, "eventfd: %s", strerror (errno));
    free (a);
    return NULL;
  }
  a->direct = (d->flags & VHD_OPEN_DIRECT) != 0;
  if (io_setup (AIO_RING, &a->ctx) < 0)
    a->ctx = NULL; /* fs.aio-max-nr reached, say: run synchronously */
  pthread_mutex_init (&a->lock, NULL);
  a->done_tail = &a->done;
  a->next_cookie = 1;
  /* vhd_aio_poll and vhd_aio_in_flight read it without the handle lock. */
  __atomic_store_n (&d->aio, a, __ATOMIC_RELEASE);
  return a;
}

static struct aio_state *
peek_state (struct vhd_disk *d)
{
  return __atomic_load_n (&d->aio, __ATOMIC_ACQUIRE);
}

/* Make the eventfd readable. */
static void
wake (struct aio_state *a)
{
  uint64_t one = 1;
  ssize_t r = write (a->efd, &one, sizeof one);

  (void) r; /* fails only when the counter is full: readable anyway */
}

/* --- requests ----------------------------------------------------------- */

static struct aio_req *
req_new (const char *what, vhd_aio_callback cb, void *opaque, size_t n)
{
  struct aio_req *r = calloc (1, sizeof *r + n * sizeof r->io[0]);

  if (r == NULL) {
    set_error (ENOMEM, "out of memory");
    return NULL;
  }
  r->what = what;
  r->cb = cb;
  r->opaque = opaque;
  r->n = n;
  return r;
}

/* A request whose transfers are the segments of pl. */
static struct aio_req *
req_from_plan (const char *what, vhd_aio_callback cb, void *opaque,
               const struct aio_plan *pl, bool write, int efd)
{
  struct aio_req *r = req_new (what, cb, opaque, pl->n);
  size_t i;

  if (r == NULL)
    return NULL;
  for (i = 0; i < pl->n; i++) {
    const struct aio_seg *s = &pl->seg[i];
    struct iocb *iocb = &r->io[i].iocb;
    if (write)
      io_prep_pwrite (iocb, s->fd, s->buf, s->len, (long long) s->offset);
    else
      io_prep_pread (iocb, s->fd, s->buf, s->len, (long long) s->offset);
    io_set_eventfd (iocb, efd);
    iocb->data = r;
    r->io[i].file = s->file;
  }
  return r;
}

/* Record the request's first failure.  a->lock held, or r not shared. */
static void __attribute__ ((format (printf, 3, 4)))
req_fail (struct aio_req *r, int err, const char *fs, ...)
{
  va_list args;

  if (r->error)
    return;
  r->error = err ? err : EIO;
  va_start (args, fs);
  if (vasprintf (&r->msg, fs, args) == -1)
    r->msg = NULL;
  va_end (args);
}

/* Check one transfer's result: bytes done, or -errno (an io_event's). */
static void
io_result (struct aio_req *r, const struct aio_io *io, long res)
{
  const struct iocb *cb = &io->iocb;
  const char *op = cb->aio_lio_opcode == IO_CMD_PWRITE ? "write" : "read";

  if (res < 0)
    req_fail (r, (int) -res, "%s: %s of %lu bytes at offset %lld of %s: %s",
              r->what, op, cb->u.c.nbytes, cb->u.c.offset, io->file,
              strerror ((int) -res));
  else if ((unsigned long) res != cb->u.c.nbytes)
    req_fail (r, EIO, "%s: short %s at offset %lld of %s: %ld of %lu bytes",
              r->what, op, cb->u.c.offset, io->file, res, cb->u.c.nbytes);
}

/* A transfer done here and now, with the result an io_event would hold. */
static long
transfer_sync (const struct iocb *cb)
{
  uint8_t *p = cb->u.c.buf;
  size_t left = cb->u.c.nbytes;
  off_t off = (off_t) cb->u.c.offset;

  while (left > 0) {
    ssize_t r = cb->aio_lio_opcode == IO_CMD_PWRITE
                  ? pwrite (cb->aio_fildes, p, left, off)
                  : pread (cb->aio_fildes, p, left, off);
    if (r == -1 && errno == EINTR)
      continue;
    if (r == -1)
      return -errno;
    if (r == 0)
      break;
    p += r, left -= (size_t) r, off += r;
  }
  return (long) (cb->u.c.nbytes - left);
}

/* a->lock held. */
static void
done_push (struct aio_state *a, struct aio_req *r)
{
  r->next = NULL;
  *a->done_tail = r;
  a->done_tail = &r->next;
}

static struct aio_req *
done_take (struct aio_state *a)
{
  struct aio_req *list = a->done;

  a->done = NULL;
  a->done_tail = &a->done;
  return list;
}

/* Accept r with `iocbs` transfers about to be submitted (none: it is
 * finished).  Handle lock held; returns r's cookie.  r may be gone
 * once this returns with iocbs == 0. */
static int64_t
req_start (struct aio_state *a, struct aio_req *r, size_t iocbs)
{
  pthread_mutex_lock (&a->lock);
  a->in_flight++;
  r->pending = iocbs;
  a->iocbs += iocbs;
  if (iocbs == 0)
    done_push (a, r);
  pthread_mutex_unlock (&a->lock);
  if (iocbs == 0)
    wake (a);
  return __atomic_fetch_add (&a->next_cookie, 1, __ATOMIC_RELAXED);
}

/* A request run synchronously: result is its chain_* call's. */
static int64_t
req_finish (struct aio_state *a, struct aio_req *r, int result)
{
  if (result == -1)
    req_fail (r, vhd_get_errno (), "%s",
              vhd_get_error () ? vhd_get_error () : "I/O error");
  return req_start (a, r, 0);
}

/* Transfers [from, n) of an accepted request, done synchronously. */
static void
transfer_rest (struct aio_state *a, struct aio_req *r, size_t from, size_t n)
{
  for (size_t i = from; i < n; i++) {
    long res = transfer_sync (&r->io[i].iocb);
    bool last;
    pthread_mutex_lock (&a->lock);
    io_result (r, &r->io[i], res);
    a->iocbs--;
    last = --r->pending == 0;
    if (last)
      done_push (a, r);
    pthread_mutex_unlock (&a->lock);
    if (last)
      wake (a);
  }
}

/* Start r's transfers.  When the ring has no room, or io_submit refuses
 * some, they are done synchronously.  Handle lock held. */
static int64_t
req_submit (struct aio_state *a, struct aio_req *r)
{
  size_t n = r->n, sent = 0;
  int64_t cookie;
  bool room;

  if (n == 0)
    return req_start (a, r, 0);
  pthread_mutex_lock (&a->lock);
  room = a->ctx != NULL && a->iocbs + n <= AIO_RING;
  pthread_mutex_unlock (&a->lock);
  cookie = req_start (a, r, n);
  /* Once the last batch is in, a concurrent vhd_aio_poll may finish and
   * free r: it is not touched after that. */
  while (room && sent < n) {
    struct iocb *list[SUBMIT_BATCH];
    size_t k, batch = MIN (n - sent, SUBMIT_BATCH);
    for (k = 0; k < batch; k++)
      list[k] = &r->io[sent + k].iocb;
    int s = io_submit (a->ctx, (long) batch, list);
    if (s <= 0)
      break;
    sent += (size_t) s;
  }
  if (sent < n)
    transfer_rest (a, r, sent, n);
  return cookie;
}

/* --- completion --------------------------------------------------------- */

/* One reaped transfer; true when it finished its request.  a->lock held. */
static bool
complete_io (struct aio_state *a, const struct io_event *ev)
{
  struct aio_req *r = ev->data;

  io_result (r, (const struct aio_io *) ev->obj, (long) ev->res);
  a->iocbs--;
  if (--r->pending > 0)
    return false;
  done_push (a, r);
  return true;
}

/* Reap what the kernel has finished, or with wait, everything in flight.
 * Returns how many requests were finished.  a->lock held. */
static size_t
reap (struct aio_state *a, bool wait)
{
  struct io_event ev[REAP_BATCH];
  struct timespec zero = { 0, 0 };
  size_t done = 0;

  while (a->ctx && a->iocbs > 0) {
    int n = io_getevents (a->ctx, wait ? 1 : 0, REAP_BATCH, ev,
                          wait ? NULL : &zero);
    if (n == -EINTR)
      continue;
    if (n <= 0)
      break;
    for (int i = 0; i < n; i++)
      done += complete_io (a, &ev[i]);
    if (!wait && n < REAP_BATCH)
      break;
  }
  return done;
}

void
aio_drain (struct vhd_disk *d)
{
  struct aio_state *a = d->aio;
  size_t done;

  if (a == NULL)
    return;
  pthread_mutex_lock (&a->lock);
  done = reap (a, true);
  pthread_mutex_unlock (&a->lock);
  if (done)
    wake (a); /* they wait on the done list for vhd_aio_poll */
}

/* Run the callbacks of a taken list; returns how many.  A failed
 * request's message is the thread's error while its callback runs. */
static int
run_callbacks (struct aio_state *a, struct aio_req *list, const char *context)
{
  int n = 0;

  while (list) {
    struct aio_req *r = list;
    list = r->next;
    pthread_mutex_lock (&a->lock);
    a->in_flight--;
    pthread_mutex_unlock (&a->lock);
    if (r->cb && r->error) {
      set_error_context (NULL);
      set_error (r->error, "%s", r->msg ? r->msg : strerror (r->error));
      set_error_context (context);
    }
    if (r->cb)
      r->cb (r->opaque, r->error);
    free (r->msg);
    free (r);
    n++;
  }
  return n;
}

void
aio_close (struct vhd_disk *d)
{
  struct aio_state *a = d->aio;
  struct aio_req *list;

  if (a == NULL)
    return;
  aio_drain (d);
  pthread_mutex_lock (&a->lock);
  list = done_take (a);
  pthread_mutex_unlock (&a->lock);
  run_callbacks (a, list, "vhd_close");
  if (a->ctx)
    io_destroy (a->ctx);
  close (a->efd);
  pthread_mutex_destroy (&a->lock);
  free (a);
  d->aio = NULL;
}

/* --- submission --------------------------------------------------------- */

static int64_t
submit_read (struct vhd_disk *d, struct aio_state *a, void *buf,
             size_t count, uint64_t offset, vhd_aio_callback cb,
             void *opaque)
{
  struct aio_plan pl = { .direct = a->direct };
  struct aio_req *r;
  int mapped = aio_plan_read (d, buf, count, offset, &pl);

  if (mapped == -1)
    pl.n = 0; /* the request fails through its callback */
  r = req_from_plan ("vhd_aio_pread", cb, opaque, &pl, false, a->efd);
  aio_plan_free (&pl);
  if (r == NULL)
    return -1;
  if (mapped == -1)
    return req_finish (a, r, -1);
  return req_submit (a, r);
}

static int64_t
submit_write (struct vhd_disk *d, struct aio_state *a, const void *buf,
              size_t count, uint64_t offset, vhd_aio_callback cb,
              void *opaque)
{
  struct aio_plan pl = { .direct = a->direct };
  struct aio_req *r;
  int res;

  if (count == 0 || (a->write_ready
                     && aio_plan_write (d, buf, count, offset, &pl))) {
    r = req_from_plan ("vhd_aio_pwrite", cb, opaque, &pl, true, a->efd);
    aio_plan_free (&pl);
    return r ? req_submit (a, r) : -1;
  }
  aio_plan_free (&pl);
  r = req_new ("vhd_aio_pwrite", cb, opaque, 0);
  if (r == NULL)
    return -1;
  res = chain_pwrite (d, buf, count, offset);
  a->write_ready = res == 0;
  return req_finish (a, r, res);
}

int
vhd_aio_get_fd (struct vhd_disk *d)
{
  struct aio_state *a;

  set_error_context ("vhd_aio_get_fd");
  if (!valid_disk (d))
    return -1;
  EXCLUSIVE_LOCK_FOR_CURRENT_SCOPE (&d->lock);
  a = get_state (d);
  return a ? a->efd : -1;
}

int
vhd_aio_set_direct (struct vhd_disk *d, int direct)
{
  struct aio_state *a;

  set_error_context ("vhd_aio_set_direct");
  if (!valid_disk (d))
    return -1;
  EXCLUSIVE_LOCK_FOR_CURRENT_SCOPE (&d->lock);
  if ((a = get_state (d)) == NULL)
    return -1;
  a->direct = direct != 0;
  return 0;
}

int64_t
vhd_aio_pread (struct vhd_disk *d, void *buf, size_t count, uint64_t offset,
               vhd_aio_callback cb, void *opaque)
{
  struct aio_state *a;

  set_error_context ("vhd_aio_pread");
  if (!valid_disk (d) || !valid_buffer (buf))
    return -1;
  {
    SHARED_LOCK_FOR_CURRENT_SCOPE (&d->lock);
    if (!valid_range (d, count, offset))
      return -1;
    if ((a = peek_state (d)) != NULL)
      return submit_read (d, a, buf, count, offset, cb, opaque);
  }
  EXCLUSIVE_LOCK_FOR_CURRENT_SCOPE (&d->lock);
  if ((a = get_state (d)) == NULL)
    return -1;
  return submit_read (d, a, buf, count, offset, cb, opaque);
}

int64_t
vhd_aio_pwrite (struct vhd_disk *d, const void *buf, size_t count,
                uint64_t offset, vhd_aio_callback cb, void *opaque)
{
  struct aio_state *a;

  set_error_context ("vhd_aio_pwrite");
  if (!valid_disk (d) || !valid_buffer (buf))
    return -1;
  if (!valid_writable (d))
    return -1;
  EXCLUSIVE_LOCK_FOR_CURRENT_SCOPE (&d->lock);
  if (!valid_range (d, count, offset) || (a = get_state (d)) == NULL)
    return -1;
  return submit_write (d, a, buf, count, offset, cb, opaque);
}

int64_t
vhd_aio_flush (struct vhd_disk *d, vhd_aio_callback cb, void *opaque)
{
  struct aio_state *a;
  struct aio_req *r;

  set_error_context ("vhd_aio_flush");
  if (!valid_disk (d))
    return -1;
  if ((r = req_new ("vhd_aio_flush", cb, opaque, 0)) == NULL)
    return -1;
  if (!d->readonly) {
    /* As vhd_flush: data only, beside the writes in place, when it can. */
    SHARED_LOCK_FOR_CURRENT_SCOPE (&d->lock);
    int done = (a = peek_state (d)) != NULL ? chain_flush_data (d) : 0;
    if (done != 0)
      return req_finish (a, r, done == 1 ? 0 : -1);
  }
  EXCLUSIVE_LOCK_FOR_CURRENT_SCOPE (&d->lock);
  if ((a = get_state (d)) == NULL) {
    free (r);
    return -1;
  }
  if (d->readonly)
    return req_start (a, r, 0);
  /* Every write completed so far, and every one in flight, is covered. */
  aio_drain (d);
  return req_finish (a, r, chain_flush (d));
}

static int64_t
submit_zeroes (struct vhd_disk *d, const char *what, uint64_t offset,
               uint64_t count, unsigned flags, vhd_aio_callback cb,
               void *opaque)
{
  struct aio_state *a;
  struct aio_req *r;

  if (!valid_disk (d))
    return -1;
  if (flags & ~VHD_ZERO_MASK) {
    set_error (EINVAL, "unknown flags 0x%x", flags & ~VHD_ZERO_MASK);
    return -1;
  }
  if (!valid_writable (d))
    return -1;
  EXCLUSIVE_LOCK_FOR_CURRENT_SCOPE (&d->lock);
  if (!valid_range (d, count, offset) || (a = get_state (d)) == NULL
      || (r = req_new (what, cb, opaque, 0)) == NULL)
    return -1;
  if (count == 0)
    return req_start (a, r, 0);
  aio_drain (d); /* blocks may be freed */
  return req_finish (a, r, chain_write_zeroes (d, offset, count, flags));
}

int64_t
vhd_aio_write_zeroes (struct vhd_disk *d, uint64_t offset, uint64_t count,
                      unsigned flags, vhd_aio_callback cb, void *opaque)
{
  set_error_context ("vhd_aio_write_zeroes");
  return submit_zeroes (d, "vhd_aio_write_zeroes", offset, count, flags, cb,
                        opaque);
}

int64_t
vhd_aio_discard (struct vhd_disk *d, uint64_t offset, uint64_t count,
                 vhd_aio_callback cb, void *opaque)
{
  set_error_context ("vhd_aio_discard");
  return submit_zeroes (d, "vhd_aio_discard", offset, count,
                        VHD_ZERO_MAY_UNMAP, cb, opaque);
}

/* --- polling ------------------------------------------------------------ */

int
vhd_aio_poll (struct vhd_disk *d)
{
  struct aio_state *a;
  struct aio_req *list;
  uint64_t count;

  set_error_context ("vhd_aio_poll");
  if (!valid_disk (d))
    return -1;
  a = peek_state (d);
  if (a == NULL)
    return 0;
  /* Clear the eventfd before looking: a later completion sets it again. */
  if (read (a->efd, &count, sizeof count) == -1 && errno != EAGAIN) {
    set_error (errno, "reading the eventfd: %s", strerror (errno));
    return -1;
  }
  pthread_mutex_lock (&a->lock);
  reap (a, false);
  list = done_take (a);
  pthread_mutex_unlock (&a->lock);
  return run_callbacks (a, list, "vhd_aio_poll");
}

int64_t
vhd_aio_in_flight (struct vhd_disk *d)
{
  struct aio_state *a;
  int64_t n;

  set_error_context ("vhd_aio_in_flight");
  if (!valid_disk (d))
    return -1;
  a = peek_state (d);
  if (a == NULL)
    return 0;
  pthread_mutex_lock (&a->lock);
  n = a->in_flight;
  pthread_mutex_unlock (&a->lock);
  return n;
}
