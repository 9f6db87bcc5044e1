/* conn.c: connection threads and the list of live connections.
 *
 * Each accepted socket gets a detached thread that runs the handshake and
 * then reads requests until the client leaves (NBD_CMD_DISC, end of file,
 * protocol violation) or the server stops.  Before it closes the socket
 * and frees the connection it waits until every request it handed to the
 * pool has been answered, so workers never see a freed connection.
 *
 * Locking: conns_lock protects the list and its count; a connection is
 * taken off the list before its socket is closed, so conn_shutdown_all ()
 * only ever touches open sockets.  c->lock protects c->inflight and
 * c->inflight_bytes.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "server.h"

static pthread_mutex_t conns_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t conns_cond = PTHREAD_COND_INITIALIZER;
static struct conn *conns;
static unsigned n_conns;
static bool stopping;

bool
server_stopping (void)
{
  bool r;

  pthread_mutex_lock (&conns_lock);
  r = stopping;
  pthread_mutex_unlock (&conns_lock);
  return r;
}

static void
set_timeout (int fd, int option, int seconds)
{
  struct timeval tv = { .tv_sec = seconds };

  setsockopt (fd, SOL_SOCKET, option, &tv, sizeof tv);
}

static void
describe_peer (struct conn *c)
{
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  char host[INET6_ADDRSTRLEN], port[8];

  snprintf (c->peer, sizeof c->peer, "client %d", c->fd);
  if (getpeername (c->fd, (struct sockaddr *) &ss, &len) == -1)
    return;
  if (ss.ss_family == AF_UNIX) {
    snprintf (c->peer, sizeof c->peer, "unix client %d", c->fd);
    return;
  }
  if (getnameinfo ((struct sockaddr *) &ss, len, host, sizeof host, port,
                   sizeof port, NI_NUMERICHOST | NI_NUMERICSERV) == 0)
    snprintf (c->peer, sizeof c->peer, "client %s port %s", host, port);
}

/* TCP: no Nagle delay, replies are whole messages already.  Unix: a send
 * buffer that takes a few large replies whole (with the default, about
 * 200 KiB, the sender of a 1 MiB reply waits for the client several
 * times); the kernel caps it at net.core.wmem_max.  TCP keeps its
 * autotuning, which setting SO_SNDBUF would turn off. */
static void
tune_socket (struct conn *c)
{
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  int one = 1, sndbuf = UNIX_SNDBUF;

  if (getsockname (c->fd, (struct sockaddr *) &ss, &len) == -1)
    return;
  if (ss.ss_family == AF_UNIX)
    setsockopt (c->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  else
    setsockopt (c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void
conn_free (struct conn *c)
{
  pthread_mutex_destroy (&c->send_lock);
  pthread_mutex_destroy (&c->lock);
  pthread_cond_destroy (&c->cond);
  free (c->in);
  free (c);
}

static void
unlink_conn (struct conn *c)
{
  pthread_mutex_lock (&conns_lock);
  if (c->prev)
    c->prev->next = c->next;
  else
    conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  n_conns--;
  pthread_cond_broadcast (&conns_cond);
  pthread_mutex_unlock (&conns_lock);
}

static void *
conn_thread (void *arg)
{
  struct conn *c = arg;

  set_timeout (c->fd, SO_RCVTIMEO, HANDSHAKE_TIMEOUT);
  set_timeout (c->fd, SO_SNDTIMEO, SEND_TIMEOUT);
  if (handshake (c) == 0) {
    set_timeout (c->fd, SO_RCVTIMEO, 0);
    c->in = malloc (IN_BUFFER);
    if (c->in == NULL)
      conn_error (c, "out of memory");
    else
      serve_requests (c);
  }

  /* Wait for the pool to answer what this client asked. */
  pthread_mutex_lock (&c->lock);
  while (c->inflight > 0)
    pthread_cond_wait (&c->cond, &c->lock);
  pthread_mutex_unlock (&c->lock);

  unlink_conn (c);
  close (c->fd);
  conn_free (c);
  return NULL;
}

/* Start serving a newly accepted socket (which this takes over). */
int
conn_start (int fd)
{
  struct conn *c;
  pthread_attr_t attr;
  pthread_t tid;
  int err;

  pthread_mutex_lock (&conns_lock);
  if (stopping || n_conns >= MAX_CONNECTIONS) {
    pthread_mutex_unlock (&conns_lock);
    if (!stopping)
      server_error ("too many connections (%u): refusing a new one",
                    MAX_CONNECTIONS);
    close (fd);
    return -1;
  }
  pthread_mutex_unlock (&conns_lock);

  c = calloc (1, sizeof *c);
  if (c == NULL) {
    server_error ("out of memory");
    close (fd);
    return -1;
  }
  c->fd = fd;
  pthread_mutex_init (&c->send_lock, NULL);
  pthread_mutex_init (&c->lock, NULL);
  pthread_cond_init (&c->cond, NULL);
  describe_peer (c);
  tune_socket (c);

  pthread_mutex_lock (&conns_lock);
  c->next = conns;
  if (conns)
    conns->prev = c;
  conns = c;
  n_conns++;
  pthread_mutex_unlock (&conns_lock);

  pthread_attr_init (&attr);
  pthread_attr_setdetachstate (&attr, PTHREAD_CREATE_DETACHED);
  err = pthread_create (&tid, &attr, conn_thread, c);
  pthread_attr_destroy (&attr);
  if (err) {
    server_error ("creating connection thread: %s", strerror (err));
    unlink_conn (c);
    close (fd);
    conn_free (c);
    return -1;
  }
  return 0;
}

/* Stop reading from every client: blocked readers see end of file, and
 * readers check server_stopping () before each new request.  Replies to
 * requests already read still go out. */
void
conn_shutdown_all (void)
{
  struct conn *c;

  pthread_mutex_lock (&conns_lock);
  stopping = true;
  for (c = conns; c; c = c->next)
    shutdown (c->fd, SHUT_RD);
  pthread_mutex_unlock (&conns_lock);
}

/* Wait until every connection thread has finished. */
void
conn_wait_all (void)
{
  pthread_mutex_lock (&conns_lock);
  while (n_conns > 0)
    pthread_cond_wait (&conns_cond, &conns_lock);
  pthread_mutex_unlock (&conns_lock);
}

/* Wait until this connection may have one more request of cost bytes in
 * flight: fewer than MAX_INFLIGHT requests, and MAX_INFLIGHT_BYTES of
 * buffers (or none at all, so that any single request can go). */
void
conn_reserve (struct conn *c, uint32_t cost)
{
  pthread_mutex_lock (&c->lock);
  while (c->inflight >= MAX_INFLIGHT
         || (c->inflight > 0
             && c->inflight_bytes + cost > MAX_INFLIGHT_BYTES))
    pthread_cond_wait (&c->cond, &c->lock);
  c->inflight++;
  c->inflight_bytes += cost;
  pthread_mutex_unlock (&c->lock);
}

/* A request has been answered (or dropped). */
void
conn_release (struct conn *c, uint32_t cost)
{
  pthread_mutex_lock (&c->lock);
  c->inflight--;
  c->inflight_bytes -= cost;
  pthread_cond_broadcast (&c->cond);
  pthread_mutex_unlock (&c->lock);
}
