/* reply.c: moving bytes to and from a client, and the one place where
 * library errors become NBD errors.
 *
 * Every reply, simple or structured with all its chunks, is written by a
 * single send_iov () call, which holds the connection's send_lock for the
 * whole reply: replies of concurrent requests never interleave, and a
 * reader of the stream always sees complete messages.  The first failed
 * send (client gone, or not reading for SEND_TIMEOUT seconds) marks the
 * connection dead and shuts the socket down, which also wakes its reader;
 * later replies are dropped.  Nothing is lost by that: a request whose
 * reply the client never saw was, by definition, never acknowledged.
 */
#include <errno.h>
#include <endian.h>
#include <limits.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "protocol.h"
#include "server.h"

/* One recv, again after EINTR: bytes received (> 0), or -1 with errno
 * (0 at end of file). */
static ssize_t
recv_some (int fd, void *buf, size_t len)
{
  ssize_t r;

  do
    r = recv (fd, buf, len, 0);
  while (r < 0 && errno == EINTR);
  if (r == 0) {
    errno = 0;
    return -1;
  }
  return r;
}

/* Read exactly len bytes.  0 on success; -1 on end of file (errno 0),
 * error or timeout. */
int
recv_all (int fd, void *buf, size_t len)
{
  uint8_t *p = buf;

  while (len > 0) {
    ssize_t r = recv_some (fd, p, len);
    if (r < 0)
      return -1;
    p += r, len -= (size_t) r;
  }
  return 0;
}

/* Read exactly len bytes of transmission input, from what the reader
 * has already received and then from the socket: small reads (request
 * headers, short payloads) fill the buffer with as much as the client has
 * sent, so that a burst of requests costs one system call; large payloads
 * go straight to their destination.  Same results as recv_all. */
int
conn_recv (struct conn *c, void *buf, size_t len)
{
  uint8_t *p = buf;

  for (;;) {
    size_t have = c->in_len - c->in_pos;
    ssize_t r;

    if (have > len)
      have = len;
    memcpy (p, c->in + c->in_pos, have);
    c->in_pos += have, p += have, len -= have;
    if (len == 0)
      return 0;
    if (len >= IN_BUFFER / 2)
      return recv_all (c->fd, p, len);
    c->in_pos = c->in_len = 0;
    if ((r = recv_some (c->fd, c->in, IN_BUFFER)) < 0)
      return -1;
    c->in_len = (size_t) r;
  }
}

/* Whether the client has sent more than the reader has consumed: a peek
 * that never blocks (and reads ahead what is there). */
bool
conn_input_waiting (struct conn *c)
{
  ssize_t r;

  if (c->in_pos < c->in_len)
    return true;
  c->in_pos = c->in_len = 0;
  do
    r = recv (c->fd, c->in, IN_BUFFER, MSG_DONTWAIT);
  while (r < 0 && errno == EINTR);
  if (r > 0)
    c->in_len = (size_t) r;
  return r >= 0;                /* data, or end of file: not idle */
}

/* Step over n bytes already sent (and over empty iovecs). */
static void
advance_iov (struct iovec **iov, int *iovcnt, size_t n)
{
  while (n > 0 && *iovcnt > 0) {
    if (n < (*iov)->iov_len) {
      (*iov)->iov_base = (uint8_t *) (*iov)->iov_base + n;
      (*iov)->iov_len -= n;
      return;
    }
    n -= (*iov)->iov_len;
    (*iov)++, (*iovcnt)--;
  }
  while (*iovcnt > 0 && (*iov)->iov_len == 0)
    (*iov)++, (*iovcnt)--;
}

static int
send_iov_locked (struct conn *c, struct iovec *iov, int iovcnt)
{
  advance_iov (&iov, &iovcnt, 0);
  while (iovcnt > 0) {
    struct msghdr msg = {
      .msg_iov = iov,
      .msg_iovlen = (size_t) (iovcnt < IOV_MAX ? iovcnt : IOV_MAX),
    };
    ssize_t r = sendmsg (c->fd, &msg, MSG_NOSIGNAL);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    advance_iov (&iov, &iovcnt, (size_t) r);
  }
  return 0;
}

/* Send one whole reply.  The iovecs are modified.  0, or -1 when the
 * connection is (now) dead. */
int
send_iov (struct conn *c, struct iovec *iov, int iovcnt)
{
  int r = -1;

  pthread_mutex_lock (&c->send_lock);
  if (!c->send_failed) {
    r = send_iov_locked (c, iov, iovcnt);
    if (r == -1) {
      if (errno != EPIPE && errno != ECONNRESET)
        conn_error (c, "sending reply: %m");
      c->send_failed = true;
      shutdown (c->fd, SHUT_RDWR);
    }
  }
  pthread_mutex_unlock (&c->send_lock);
  return r;
}

int
send_simple_reply (struct conn *c, uint64_t cookie, uint32_t error)
{
  struct nbd_simple_reply reply = {
    .magic = htobe32 (NBD_SIMPLE_REPLY_MAGIC),
    .error = htobe32 (error),
    .cookie = cookie,           /* opaque: echoed byte for byte */
  };
  struct iovec iov[] = { { &reply, sizeof reply } };

  return send_iov (c, iov, 1);
}

/* An error reply: a structured NBD_REPLY_TYPE_ERROR chunk carrying msg
 * when structured replies were negotiated, else a simple reply. */
int
send_error_reply (struct conn *c, const struct request *r, uint32_t error,
                  const char *msg)
{
  size_t len = msg ? strlen (msg) : 0;
  struct nbd_structured_reply hdr;
  struct nbd_structured_reply_error err;
  struct iovec iov[3];

  if (!c->structured)
    return send_simple_reply (c, r->cookie, error);
  if (len > NBD_MAX_STRING)
    len = NBD_MAX_STRING;
  hdr.magic = htobe32 (NBD_STRUCTURED_REPLY_MAGIC);
  hdr.flags = htobe16 (NBD_REPLY_FLAG_DONE);
  hdr.type = htobe16 (NBD_REPLY_TYPE_ERROR);
  hdr.cookie = r->cookie;
  hdr.length = htobe32 ((uint32_t) (sizeof err + len));
  err.error = htobe32 (error);
  err.len = htobe16 ((uint16_t) len);
  iov[0] = (struct iovec) { &hdr, sizeof hdr };
  iov[1] = (struct iovec) { &err, sizeof err };
  iov[2] = (struct iovec) { (void *) msg, len };
  return send_iov (c, iov, 3);
}

/* The errno of a failed library call, as the NBD error the client gets.
 * The protocol allows a fixed set (proto.md "Error values"): writes past
 * the end and EDQUOT/EFBIG are ENOSPC, ENOTSUP is only for fast zero
 * requests and EOVERFLOW only for NBD_CMD_FLAG_DF reads (which this server
 * never fails that way), so ranges and overflows are EINVAL.  Anything
 * unknown is an I/O error. */
uint32_t
nbd_error (int errnum, uint16_t cmd)
{
  switch (errnum) {
  case EPERM:
  case EROFS:
  case EACCES:
    return NBD_EPERM;
  case ENOMEM:
    return NBD_ENOMEM;
  case EINVAL:
  case ERANGE:
  case EOVERFLOW:
  case EFAULT:
    return NBD_EINVAL;
  case ENOSPC:
  case EDQUOT:
  case EFBIG:
    return NBD_ENOSPC;
  case ENOTSUP:
    return cmd == NBD_CMD_WRITE_ZEROES ? NBD_ENOTSUP : NBD_EINVAL;
  case ESHUTDOWN:
    return NBD_ESHUTDOWN;
  case EIO:
  default:
    return NBD_EIO;
  }
}

/* Answer r with the calling thread's last library error.  A fast zero
 * that cannot be fast is an expected answer, not worth a log line. */
int
reply_lib_error (struct conn *c, const struct request *r)
{
  int err = vhd_get_errno ();
  const char *msg = vhd_get_error ();
  uint32_t error = nbd_error (err, r->type);

  if (error != NBD_ENOTSUP)
    conn_error (c, "%s", msg ? msg : "unknown library error");
  return send_error_reply (c, r, error, msg);
}
