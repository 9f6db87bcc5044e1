/* fuzz-nbd-server.c: libFuzzer target for vhd-nbd-server's handshake and
 * request parsing, fed as a client over a socketpair.
 *
 * Input: one control byte, then the bytes a client sends (4 bytes of
 * client flags, options, then requests with their payloads).
 *   control bit 0   the export is read-only (server --readonly)
 *
 * The server's own code runs unchanged: handshake () then
 * serve_requests (), as conn.c's connection thread does, with the real
 * worker pool (started once, two threads) answering the valid requests
 * against a fresh 1 MiB dynamic VHD in memory.  Everything of main.c the
 * other parts use (the export table, find_export, the error printers) is
 * defined here instead.  A feeder thread writes the input, half-closes
 * its end and reads every reply until the server closes, so neither side
 * can block the other.  Crashes, sanitizer reports, leaks and hangs are
 * what this finds; the contract checked is that the server finishes
 * every input (end of input means the client went away).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

#include "../../nbd-server/protocol.h"
#include "../../nbd-server/server.h"

#define EXPORT_SIZE (UINT64_C (1) << 20)

/* --- what main.c provides to the other parts ---------------------------- */

static struct export the_export = { .name = "" };
struct export *exports = &the_export;
size_t n_exports = 1;
bool readonly;
bool aio_native; /* the worker pool, not --aio=native */
bool cache_none;

void
server_error (const char *fs, ...)
{
  (void) fs;
}

void
conn_error (const struct conn *c, const char *fs, ...)
{
  (void) c, (void) fs;
}

/* --- the export ----------------------------------------------------------- */

static struct vhd_disk *
make_disk (bool ro)
{
  struct create_params p = { .type = VHD_TYPE_DYNAMIC, .size = EXPORT_SIZE,
                             .block_size = 512 * 1024,
                             .logical_sector = 512,
                             .physical_sector = 512 };
  struct io *io = io_mem_new (NULL, 0);
  struct vhd_disk *d;

  if (io == NULL || vhd_format_ops.create (io, &p) == -1) {
    fprintf (stderr, "fuzz-nbd-server: creating the export: %s\n",
             vhd_get_error ());
    abort ();
  }
  d = disk_open_io (io, "fuzz.vhd", ro ? VHD_OPEN_RDONLY : 0, NULL);
  if (d == NULL) {
    fprintf (stderr, "fuzz-nbd-server: opening the export: %s\n",
             vhd_get_error ());
    abort ();
  }
  return d;
}

static void
set_export (bool ro)
{
  uint16_t flags = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH
                   | NBD_FLAG_CAN_MULTI_CONN | NBD_FLAG_SEND_CACHE;

  readonly = ro; /* as main.c transmission_flags () */
  if (ro)
    flags |= NBD_FLAG_READ_ONLY;
  else
    flags |= NBD_FLAG_SEND_FUA | NBD_FLAG_SEND_TRIM
             | NBD_FLAG_SEND_WRITE_ZEROES | NBD_FLAG_SEND_FAST_ZERO;
  the_export = (struct export) {
    .name = "", .path = "fuzz.vhd", .disk = make_disk (ro),
    .size = EXPORT_SIZE, .eflags = flags, .min_block = 512,
    .pref_block = 4096, .chain_len = 1, .description = (char *) "fuzz",
  };
}

/* --- the client ------------------------------------------------------------ */

struct feeder {
  int fd;
  const uint8_t *data;
  size_t size;
};

/* Write the input, half-close, read replies until the server closes. */
static void *
feed (void *arg)
{
  struct feeder *f = arg;
  size_t done = 0;
  uint8_t sink[65536];
  bool shut = false;

  for (;;) {
    struct pollfd p = { .fd = f->fd, .events = POLLIN };
    ssize_t r;
    if (!shut && done == f->size) {
      shutdown (f->fd, SHUT_WR);
      shut = true;
    }
    if (!shut)
      p.events |= POLLOUT;
    if (poll (&p, 1, -1) == -1) {
      if (errno == EINTR)
        continue;
      break;
    }
    if (p.revents & POLLIN || p.revents & (POLLHUP | POLLERR)) {
      r = recv (f->fd, sink, sizeof sink, MSG_DONTWAIT);
      if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
        break;
    }
    if (!shut && p.revents & POLLOUT) {
      r = send (f->fd, f->data + done, f->size - done,
                MSG_DONTWAIT | MSG_NOSIGNAL);
      if (r > 0)
        done += (size_t) r;
      else if (r < 0 && errno != EAGAIN && errno != EINTR)
        shut = true; /* the server is gone */
    }
  }
  return NULL;
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static bool started;
  struct conn c;
  struct feeder f;
  pthread_t tid;
  int sv[2];

  if (size < 1)
    return 0;
  if (!started) {
    if (pool_start (2) == -1)
      abort ();
    started = true;
  }
  set_export (data[0] & 1);
  if (socketpair (AF_UNIX, SOCK_STREAM, 0, sv) == -1) {
    perror ("socketpair");
    abort ();
  }
  memset (&c, 0, sizeof c);
  c.fd = sv[0];
  snprintf (c.peer, sizeof c.peer, "fuzz client");
  pthread_mutex_init (&c.send_lock, NULL);
  pthread_mutex_init (&c.lock, NULL);
  pthread_cond_init (&c.cond, NULL);
  f = (struct feeder) { sv[1], data + 1, size - 1 };
  if (pthread_create (&tid, NULL, feed, &f) != 0)
    abort ();

  /* conn.c conn_thread (), without the timeouts. */
  if (handshake (&c) == 0) {
    c.in = malloc (IN_BUFFER);
    if (c.in == NULL)
      abort ();
    serve_requests (&c);
  }
  pthread_mutex_lock (&c.lock);
  while (c.inflight > 0)
    pthread_cond_wait (&c.cond, &c.lock);
  pthread_mutex_unlock (&c.lock);

  free (c.in);
  close (sv[0]);
  pthread_join (tid, NULL);
  close (sv[1]);
  pthread_mutex_destroy (&c.send_lock);
  pthread_mutex_destroy (&c.lock);
  pthread_cond_destroy (&c.cond);
  vhd_close (the_export.disk);
  the_export.disk = NULL;
  return 0;
}
