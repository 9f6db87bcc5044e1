/* aio.c: --aio=native, reads and writes through the library's
 * asynchronous API (vhd_aio_*, Linux native AIO).
 *
 * The reader submits each planned read (one vhd_aio_pread per data
 * segment; holes need no I/O) and each write without FUA, and goes on
 * reading.  One completion thread per image handle waits on the handle's
 * eventfd (vhd_aio_get_fd) and runs vhd_aio_poll, which calls back here;
 * the callback of a request's last transfer sends the reply and frees the
 * request.  Everything else (flush, FUA writes, trim, zeroes, cache, block
 * status) keeps the synchronous path: the library runs those at once
 * inside the submit call anyway, after draining the transfers in flight.
 *
 * Only with --cache=none (vhd_aio_set_direct: O_DIRECT wherever buffer,
 * offset and length allow) does the kernel run transfers concurrently:
 * a buffered libaio transfer is carried out inside io_submit, so without
 * it the reader does the copy itself.  Writes that must allocate, or that
 * are not whole sectors of data already stored, are done by the library
 * at submission too.  Buffers are page aligned (request.c, alloc_buffer).
 *
 * Shutdown: conn.c waits until every request of a client is answered, so
 * once no connection is left nothing is in flight, and aio_stop () only
 * has to stop the thread.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "protocol.h"
#include "server.h"

struct aio_export {
  struct vhd_disk *disk;
  int efd;                     /* the handle's completion eventfd */
  int stop_fd;                 /* eventfd: the thread should exit */
  unsigned users;              /* exports of this handle */
  pthread_t thread;
};

static void *
completion_thread (void *arg)
{
  struct aio_export *a = arg;

  for (;;) {
    struct pollfd pfd[2] = {
      { .fd = a->efd, .events = POLLIN },
      { .fd = a->stop_fd, .events = POLLIN },
    };
    if (poll (pfd, 2, -1) == -1) {
      if (errno == EINTR)
        continue;
      server_error ("poll: %m");
      break;
    }
    if ((pfd[0].revents & POLLIN) && vhd_aio_poll (a->disk) == -1)
      server_error ("%s", vhd_get_error ());
    if ((pfd[1].revents & POLLIN) && vhd_aio_in_flight (a->disk) <= 0)
      break;
  }
  return NULL;
}

int
aio_start (struct export *e)
{
  struct aio_export *a;
  size_t i;
  int err;

  for (i = 0; &exports[i] != e; i++)
    if (exports[i].disk == e->disk && exports[i].aio) {
      e->aio = exports[i].aio;  /* the same image: its thread */
      e->aio->users++;
      return 0;
    }
  a = calloc (1, sizeof *a);
  if (a == NULL) {
    server_error ("out of memory");
    return -1;
  }
  a->disk = e->disk;
  a->efd = vhd_aio_get_fd (e->disk);
  if (a->efd == -1
      || (cache_none && vhd_aio_set_direct (e->disk, 1) == -1)) {
    server_error ("%s: %s", e->path, vhd_get_error ());
    free (a);
    return -1;
  }
  a->stop_fd = eventfd (0, EFD_CLOEXEC);
  if (a->stop_fd == -1) {
    server_error ("eventfd: %m");
    free (a);
    return -1;
  }
  err = pthread_create (&a->thread, NULL, completion_thread, a);
  if (err) {
    server_error ("creating completion thread: %s", strerror (err));
    close (a->stop_fd);
    free (a);
    return -1;
  }
  a->users = 1;
  e->aio = a;
  return 0;
}

void
aio_stop (struct export *e)
{
  struct aio_export *a = e->aio;
  uint64_t one = 1;

  if (a == NULL)
    return;
  e->aio = NULL;
  if (--a->users > 0)
    return;
  if (write (a->stop_fd, &one, sizeof one) != (ssize_t) sizeof one)
    server_error ("eventfd write: %m");
  pthread_join (a->thread, NULL);
  close (a->stop_fd);
  free (a);
}

/* The errno of a refused submission. */
static int
submit_error (void)
{
  int err = vhd_get_errno ();

  return err ? err : EIO;
}

/* Every transfer of r is done: answer it. */
static void
complete (struct request *r)
{
  struct conn *c = r->conn;
  int err = __atomic_load_n (&r->aio_error, __ATOMIC_ACQUIRE);

  if (err) {
    conn_error (c, "%s: %s", r->type == NBD_CMD_READ ? "read" : "write",
                strerror (err));
    send_error_reply (c, r, nbd_error (err, r->type), strerror (err));
  }
  else if (r->type == NBD_CMD_READ)
    send_read_reply (c, r);
  else
    send_simple_reply (c, r->cookie, 0);
  finish_request (r);
}

static void
transfer_done (struct request *r, int error)
{
  int none = 0;

  if (error)
    __atomic_compare_exchange_n (&r->aio_error, &none, error, false,
                                 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
  if (__atomic_sub_fetch (&r->aio_pending, 1, __ATOMIC_ACQ_REL) == 0)
    complete (r);
}

static void
callback (void *opaque, int error)
{
  transfer_done (opaque, error);
}

/* Start r's transfers if it is a read or a plain write: true when r is
 * taken (and will be answered from a completion), false when it should
 * run synchronously. */
bool
aio_submit (struct request *r)
{
  struct vhd_disk *disk = r->conn->exp->disk;
  size_t i;

  switch (r->type) {
  case NBD_CMD_READ:
    if (read_buffer (r) == -1)
      return false;             /* the synchronous path answers ENOMEM */
    /* One count for the submission itself, so that the reply cannot go
     * out (and r be freed) before the last segment is submitted. */
    r->aio_pending = 1;
    for (i = 0; i < r->plan->n; i++) {
      const struct segment *s = &r->plan->seg[i];
      if (s->hole)
        continue;
      __atomic_add_fetch (&r->aio_pending, 1, __ATOMIC_ACQ_REL);
      if (vhd_aio_pread (disk, (uint8_t *) r->data + (s->offset - r->offset),
                         s->length, s->offset, callback, r) == -1) {
        transfer_done (r, submit_error ());
        break;
      }
    }
    transfer_done (r, 0);
    return true;

  case NBD_CMD_WRITE:
    if (r->flags & NBD_CMD_FLAG_FUA)
      return false;             /* write and flush: the synchronous path */
    r->aio_pending = 1;
    if (vhd_aio_pwrite (disk, r->data, r->count, r->offset, callback,
                        r) == -1)
      transfer_done (r, submit_error ());
    return true;

  default:
    return false;
  }
}
