/* request.c: the transmission phase (proto.md "Transmission").
 *
 * serve_requests () is the connection's reader: it reads each request
 * header (and a write's payload) through the connection's read-ahead
 * buffer, checks it with validate_request (), and keeps at most
 * MAX_INFLIGHT requests and MAX_INFLIGHT_BYTES of buffers of this client
 * in flight.  It answers invalid requests itself, plans reads (below) and
 * answers those that are holes only, runs a request itself when nothing
 * else of the client is in flight or waiting (run_inline), and hands the
 * rest to the worker pool, or with --aio=native reads and writes to
 * aio.c.  It stops at NBD_CMD_DISC, end of file, a bad magic number, a
 * write payload over MAX_REQUEST_SIZE (which cannot be skipped safely), or
 * when the server is stopping.
 *
 * dispatch_request () runs a request: one handler per command, each
 * calling the library on the export's shared handle and sending the whole
 * reply.  Library errors become NBD errors in reply.c (nbd_error).
 *
 * Reads with structured replies are sparse: the allocation map of the
 * range is looked up first (in the reader), ranges that read as zeros (at
 * least PREFERRED_BLOCK long) go out as NBD_REPLY_TYPE_OFFSET_HOLE chunks
 * and only the rest is read.  Everything is read before the first chunk
 * is sent, so an error is always reported alone, never after content.
 * A write that completed before a read was sent is in its plan: the plan
 * is made after the read arrives.
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol.h"
#include "server.h"

#define MAX_EXTENTS         1024 /* descriptors per context per reply */
#define CACHE_CHUNK         (1U << 20)

static void free_buffer (void *p, size_t size);

void
free_request (struct request *r)
{
  free_buffer (r->data, r->count);
  free (r->plan);
  free (r);
}

/* A request has been answered (or dropped): free it and give its room
 * back to its connection. */
void
finish_request (struct request *r)
{
  struct conn *c = r->conn;
  uint32_t cost = r->cost;

  free_request (r);
  conn_release (c, cost);
}

/* ------------------------------------------------------------ validation */

static bool
is_write_command (uint16_t type)
{
  return type == NBD_CMD_WRITE || type == NBD_CMD_TRIM
    || type == NBD_CMD_WRITE_ZEROES;
}

/* The command flags a client may set on this command. */
static uint16_t
allowed_flags (const struct conn *c, uint16_t type)
{
  uint16_t flags = 0;

  if (c->exp->eflags & NBD_FLAG_SEND_FUA)
    flags |= NBD_CMD_FLAG_FUA;   /* valid on every command (proto.md) */
  switch (type) {
  case NBD_CMD_READ:
    if (c->structured)
      flags |= NBD_CMD_FLAG_DF;
    break;
  case NBD_CMD_WRITE_ZEROES:
    flags |= NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_FAST_ZERO;
    break;
  case NBD_CMD_BLOCK_STATUS:
    flags |= NBD_CMD_FLAG_REQ_ONE;
    break;
  }
  return flags;
}

/* 0 if r may be dispatched, else the NBD error to answer with and a
 * message for the client (proto.md "Error values" and "Block size
 * constraints").  One rule, one message. */
static uint32_t
validate_request (const struct conn *c, const struct request *r,
                  const char **msg)
{
  const struct export *exp = c->exp;

  switch (r->type) {
  case NBD_CMD_READ: case NBD_CMD_WRITE: case NBD_CMD_FLUSH:
  case NBD_CMD_TRIM: case NBD_CMD_CACHE: case NBD_CMD_WRITE_ZEROES:
    break;
  case NBD_CMD_BLOCK_STATUS:
    if (!c->meta_base && !c->meta_depth) {
      *msg = "block status without a negotiated metadata context";
      return NBD_EINVAL;
    }
    break;
  default:
    *msg = "unknown command";
    return NBD_EINVAL;
  }
  if (r->flags & ~allowed_flags (c, r->type)) {
    *msg = "command flags not valid for this command";
    return NBD_EINVAL;
  }
  if (is_write_command (r->type) && (exp->eflags & NBD_FLAG_READ_ONLY)) {
    *msg = "export is read-only";
    return NBD_EPERM;
  }
  if (r->type == NBD_CMD_FLUSH) {
    if (r->offset != 0 || r->count != 0) {
      *msg = "flush offset and length must be zero";
      return NBD_EINVAL;
    }
    return 0;
  }
  if (r->count == 0) {
    *msg = "zero-length request";
    return NBD_EINVAL;
  }
  if (r->offset > exp->size || r->count > exp->size - r->offset) {
    *msg = "request beyond the end of the export";
    return r->type == NBD_CMD_WRITE || r->type == NBD_CMD_WRITE_ZEROES
             ? NBD_ENOSPC : NBD_EINVAL;
  }
  if (c->check_align && ((r->offset | r->count) % exp->min_block) != 0) {
    *msg = "request not aligned to the minimum block size";
    return NBD_EINVAL;
  }
  if ((r->type == NBD_CMD_READ || r->type == NBD_CMD_CACHE)
      && r->count > MAX_REQUEST_SIZE) {
    *msg = "request larger than the maximum block size";
    return NBD_EINVAL;
  }
  return 0;
}

/* ------------------------------------------------------------ commands */

/* After a write with NBD_CMD_FLAG_FUA: make it durable before replying. */
static int
finish_write (struct conn *c, const struct request *r)
{
  if ((r->flags & NBD_CMD_FLAG_FUA) && vhd_flush (c->exp->disk) == -1)
    return reply_lib_error (c, r);
  return send_simple_reply (c, r->cookie, 0);
}

static int
handle_write (struct conn *c, struct request *r)
{
  if (vhd_pwrite (c->exp->disk, r->data, r->count, r->offset) == -1)
    return reply_lib_error (c, r);
  return finish_write (c, r);
}

static int
handle_flush (struct conn *c, struct request *r)
{
  if (vhd_flush (c->exp->disk) == -1)
    return reply_lib_error (c, r);
  return send_simple_reply (c, r->cookie, 0);
}

static int
handle_trim (struct conn *c, struct request *r)
{
  if (vhd_discard (c->exp->disk, r->offset, r->count) == -1)
    return reply_lib_error (c, r);
  return finish_write (c, r);
}

static int
handle_write_zeroes (struct conn *c, struct request *r)
{
  unsigned flags = 0;

  if (!(r->flags & NBD_CMD_FLAG_NO_HOLE))
    flags |= VHD_ZERO_MAY_UNMAP;
  if (r->flags & NBD_CMD_FLAG_FAST_ZERO)
    flags |= VHD_ZERO_FAST;
  if (vhd_write_zeroes (c->exp->disk, r->offset, r->count, flags) == -1)
    return reply_lib_error (c, r);
  return finish_write (c, r);
}

/* Read the range through the chain so that later reads find it in the
 * host's page cache. */
static int
handle_cache (struct conn *c, struct request *r)
{
  uint8_t *buf = malloc (CACHE_CHUNK);
  uint64_t off = r->offset, left = r->count;

  if (buf == NULL)
    return send_error_reply (c, r, NBD_ENOMEM, "out of memory");
  while (left > 0) {
    size_t n = left < CACHE_CHUNK ? (size_t) left : CACHE_CHUNK;
    if (vhd_pread (c->exp->disk, buf, n, off) == -1) {
      free (buf);
      return reply_lib_error (c, r);
    }
    off += n, left -= n;
  }
  free (buf);
  return send_simple_reply (c, r->cookie, 0);
}

/* A read reply without structured replies: header then all the data. */
static int
send_simple_read (struct conn *c, const struct request *r)
{
  struct nbd_simple_reply reply = {
    .magic = htobe32 (NBD_SIMPLE_REPLY_MAGIC),
    .error = 0,
    .cookie = r->cookie,
  };
  struct iovec iov[] = { { &reply, sizeof reply }, { r->data, r->count } };

  return send_iov (c, iov, 2);
}

static void
plan_add (struct read_plan *p, uint64_t offset, uint32_t length, bool hole)
{
  struct segment *last = p->n ? &p->seg[p->n - 1] : NULL;

  if (last && last->hole == hole)
    last->length += length;
  else {
    p->seg[p->n++] = (struct segment) { offset, length, hole };
  }
}

static int
plan_extent (void *opaque, uint64_t offset, uint64_t length, unsigned state,
             unsigned depth)
{
  struct read_plan *p = opaque;
  bool hole = (state & VHD_STATE_ZERO) != 0;

  /* Keep the last slot for "the rest is data". */
  if (p->n == MAX_READ_SEGMENTS - 1 && p->seg[p->n - 1].hole != hole)
    return 1;
  plan_add (p, offset, (uint32_t) length, hole);
  return 0;
}

#define HOST_HOLES_MIN_READ (256U << 10)

/* Split [offset, offset+count) into data and hole segments: short holes
 * are cheaper to send as data than as separate chunks. */
static void
make_read_plan (struct conn *c, const struct request *r, struct read_plan *p)
{
  struct read_plan raw = { .n = 0 };
  uint64_t end = r->offset, stop = r->offset + r->count;
  unsigned flags = 0;
  size_t i;

  p->n = 0;
  /* Asking the host file for holes costs a system call or two: worth it
   * where whole chunks of data may be left unread, and wherever the
   * images' blocks are mostly host holes (a first read of a hole page
   * costs the kernel far more than the question). */
  if (r->count >= HOST_HOLES_MIN_READ || c->exp->host_sparse)
    flags |= VHD_STATUS_HOST_HOLES;
  if (vhd_block_status_ex (c->exp->disk, r->offset, r->count, flags,
                           plan_extent, &raw) == -1)
    raw.n = 0;                  /* no map: read it all */
  for (i = 0; i < raw.n; i++) {
    struct segment *s = &raw.seg[i];
    bool hole = s->hole && (s->length >= PREFERRED_BLOCK
                            || s->length == r->count);
    plan_add (p, s->offset, s->length, hole);
    end = s->offset + s->length;
  }
  if (end < stop)
    plan_add (p, end, (uint32_t) (stop - end), false);
}

/* Memory for reads' data and writes' payloads.  Large buffers come and
 * go with every request, often allocated by one thread and freed by
 * another, and glibc then gives them back to the kernel and faults them
 * in again (28 page faults and half the server's CPU time per 1 MiB
 * read, measured): up to BUFFER_CACHE bytes of freed ones wait here, one
 * list per power of two, for the next request of their size.  Every
 * cached buffer is page aligned, as O_DIRECT transfers need (and so is
 * every buffer with --cache=none). */
#define BUFFER_MIN_CACHED (64U << 10)
#define BUFFER_CACHE      (8U << 20)
#define BUFFER_CLASSES    16    /* 64 KiB .. 2 GiB */

struct free_buffer { struct free_buffer *next; };
static pthread_mutex_t buffers_lock = PTHREAD_MUTEX_INITIALIZER;
static struct free_buffer *buffers[BUFFER_CLASSES];
static size_t buffers_bytes;

/* The size class of a buffer of size bytes (-1: not cached), and the
 * bytes a buffer of that class holds. */
static int
buffer_class (size_t size, size_t *bytes)
{
  int c = 0;

  *bytes = BUFFER_MIN_CACHED;
  if (size < BUFFER_MIN_CACHED / 2 || size > MAX_REQUEST_SIZE) {
    *bytes = size ? size : 1;
    return -1;
  }
  while (*bytes < size)
    *bytes <<= 1, c++;
  return c;
}

static void *
alloc_buffer (size_t size)
{
  size_t bytes;
  int c = buffer_class (size, &bytes);
  void *p = NULL;

  if (c >= 0) {
    pthread_mutex_lock (&buffers_lock);
    if (buffers[c]) {
      p = buffers[c];
      buffers[c] = buffers[c]->next;
      buffers_bytes -= bytes;
    }
    pthread_mutex_unlock (&buffers_lock);
    if (p)
      return p;
  }
  if (c < 0 && !cache_none)
    return malloc (bytes);
  if (posix_memalign (&p, 4096, bytes))
    return NULL;
  return p;
}

static void
free_buffer (void *p, size_t size)
{
  size_t bytes;
  int c = buffer_class (size, &bytes);

  if (p == NULL)
    return;
  if (c >= 0) {
    pthread_mutex_lock (&buffers_lock);
    if (buffers_bytes + bytes <= BUFFER_CACHE) {
      struct free_buffer *b = p;
      b->next = buffers[c];
      buffers[c] = b;
      buffers_bytes += bytes;
      p = NULL;
    }
    pthread_mutex_unlock (&buffers_lock);
  }
  free (p);
}

static bool
plan_has_data (const struct read_plan *p)
{
  size_t i;

  for (i = 0; i < p->n; i++)
    if (!p->seg[i].hole)
      return true;
  return false;
}

/* Plan a read: its data and hole segments.  0, or -1 when out of
 * memory. */
static int
prepare_read (struct conn *c, struct request *r)
{
  r->plan = malloc (sizeof *r->plan);
  if (r->plan == NULL)
    return -1;
  if (!c->structured || (r->flags & NBD_CMD_FLAG_DF)) {
    r->plan->n = 1;
    r->plan->seg[0] = (struct segment) { r->offset, r->count, false };
  }
  else
    make_read_plan (c, r, r->plan);
  return 0;
}

/* The buffer of a planned read, allocated only when it is about to run
 * (a queued request holds no memory).  0, or -1 when out of memory. */
int
read_buffer (struct request *r)
{
  if (r->data != NULL || !plan_has_data (r->plan))
    return 0;
  r->data = alloc_buffer (r->count);
  return r->data ? 0 : -1;
}

static void
put_chunk_header (uint8_t *h, const struct request *r, uint16_t type,
                  bool done, uint32_t length)
{
  struct nbd_structured_reply hdr = {
    .magic = htobe32 (NBD_STRUCTURED_REPLY_MAGIC),
    .flags = htobe16 (done ? NBD_REPLY_FLAG_DONE : 0),
    .type = htobe16 (type),
    .cookie = r->cookie,
    .length = htobe32 (length),
  };

  memcpy (h, &hdr, sizeof hdr);
}

/* Send the plan as content chunks: OFFSET_DATA (header, offset, data) and
 * OFFSET_HOLE (header, offset, length), the last one flagged DONE. */
static int
send_read_chunks (struct conn *c, const struct request *r)
{
  enum {
    HDR = sizeof (struct nbd_structured_reply),
    DATA = sizeof (struct nbd_structured_reply_offset_data),
    HOLE = sizeof (struct nbd_structured_reply_offset_hole),
  };
  const struct read_plan *p = r->plan;
  uint8_t hdrs[MAX_READ_SEGMENTS][HDR + HOLE];
  struct iovec iov[2 * MAX_READ_SEGMENTS];
  uint8_t *buf = r->data;
  int n = 0;
  size_t i;

  for (i = 0; i < p->n; i++) {
    const struct segment *s = &p->seg[i];
    bool done = i + 1 == p->n;
    struct nbd_structured_reply_offset_hole hole = {
      .offset = htobe64 (s->offset),
      .length = htobe32 (s->length),
    };

    if (s->hole) {
      put_chunk_header (hdrs[i], r, NBD_REPLY_TYPE_OFFSET_HOLE, done, HOLE);
      memcpy (hdrs[i] + HDR, &hole, HOLE);
      iov[n++] = (struct iovec) { hdrs[i], HDR + HOLE };
    }
    else {
      put_chunk_header (hdrs[i], r, NBD_REPLY_TYPE_OFFSET_DATA, done,
                        DATA + s->length);
      memcpy (hdrs[i] + HDR, &hole.offset, DATA);
      iov[n++] = (struct iovec) { hdrs[i], HDR + DATA };
      iov[n++] = (struct iovec) { buf + (s->offset - r->offset), s->length };
    }
  }
  return send_iov (c, iov, n);
}

/* The reply to a planned read whose data is in r->data. */
int
send_read_reply (struct conn *c, const struct request *r)
{
  if (c->structured)
    return send_read_chunks (c, r);
  return send_simple_read (c, r);
}

static int
handle_read (struct conn *c, struct request *r)
{
  size_t i;

  if ((r->plan == NULL && prepare_read (c, r) == -1)
      || read_buffer (r) == -1)
    return send_error_reply (c, r, NBD_ENOMEM, "out of memory");
  for (i = 0; i < r->plan->n; i++) {
    const struct segment *s = &r->plan->seg[i];
    if (!s->hole
        && vhd_pread (c->exp->disk, (uint8_t *) r->data
                      + (s->offset - r->offset), s->length, s->offset) == -1)
      return reply_lib_error (c, r);
  }
  return send_read_reply (c, r);
}

/* Block status: one walk of the allocation map, two context views. */
struct extent_list {
  size_t n;
  struct nbd_block_descriptor d[MAX_EXTENTS];   /* host order until sent */
};

struct status_walk {
  const struct export *exp;
  size_t max;                  /* 1 with NBD_CMD_FLAG_REQ_ONE */
  struct extent_list base, depth;
};

/* qemu:allocation-depth: 0 where no layer holds the range (the library
 * reports those at depth = chain length), else the layer (1 = the served
 * file). */
static uint32_t
allocation_depth (const struct export *exp, unsigned state, unsigned depth)
{
  return depth >= exp->chain_len ? 0 : depth + 1;
}

/* Whether the list can take an extent with these flags: either the last
 * descriptor grows, or there is room for a new one. */
static bool
extent_fits (const struct extent_list *l, size_t max, uint32_t flags)
{
  return (l->n && l->d[l->n - 1].status_flags == flags) || l->n < max;
}

static void
extent_add (struct extent_list *l, uint32_t length, uint32_t flags)
{
  if (l->n && l->d[l->n - 1].status_flags == flags)
    l->d[l->n - 1].length += length;
  else
    l->d[l->n++] = (struct nbd_block_descriptor) { length, flags };
}

static int
status_extent (void *opaque, uint64_t offset, uint64_t length,
               unsigned state, unsigned depth)
{
  struct status_walk *w = opaque;
  uint32_t base = ((state & VHD_STATE_HOLE) ? NBD_STATE_HOLE : 0)
                  | ((state & VHD_STATE_ZERO) ? NBD_STATE_ZERO : 0);
  uint32_t layer = allocation_depth (w->exp, state, depth);

  /* Both lists take the extent or neither does, so that they always
   * describe the same range. */
  if (!extent_fits (&w->base, w->max, base)
      || !extent_fits (&w->depth, w->max, layer))
    return 1;
  extent_add (&w->base, (uint32_t) length, base);
  extent_add (&w->depth, (uint32_t) length, layer);
  return 0;
}

static void
put_status_chunk (uint8_t *h, const struct request *r, uint32_t id,
                  struct extent_list *l, bool done)
{
  size_t i;

  put_chunk_header (h, r, NBD_REPLY_TYPE_BLOCK_STATUS, done,
                    (uint32_t) (4 + l->n * sizeof l->d[0]));
  id = htobe32 (id);
  memcpy (h + 20, &id, 4);
  for (i = 0; i < l->n; i++) {
    l->d[i].length = htobe32 (l->d[i].length);
    l->d[i].status_flags = htobe32 (l->d[i].status_flags);
  }
}

static int
handle_block_status (struct conn *c, struct request *r)
{
  struct status_walk *w = calloc (1, sizeof *w);
  uint8_t hb[24], hd[24];
  struct iovec iov[4];
  int n = 0, ret;

  if (w == NULL)
    return send_error_reply (c, r, NBD_ENOMEM, "out of memory");
  w->exp = c->exp;
  w->max = (r->flags & NBD_CMD_FLAG_REQ_ONE) ? 1 : MAX_EXTENTS;
  /* As qemu-nbd: stored data in holes of the host file reads as zeros. */
  if (vhd_block_status_ex (c->exp->disk, r->offset, r->count,
                           VHD_STATUS_HOST_HOLES, status_extent, w) == -1) {
    free (w);
    return reply_lib_error (c, r);
  }
  if (c->meta_base) {
    put_status_chunk (hb, r, META_BASE_ALLOCATION, &w->base,
                      !c->meta_depth);
    iov[n++] = (struct iovec) { hb, sizeof hb };
    iov[n++] = (struct iovec) { w->base.d, w->base.n * sizeof w->base.d[0] };
  }
  if (c->meta_depth) {
    put_status_chunk (hd, r, META_ALLOCATION_DEPTH, &w->depth, true);
    iov[n++] = (struct iovec) { hd, sizeof hd };
    iov[n++] = (struct iovec) { w->depth.d,
                                w->depth.n * sizeof w->depth.d[0] };
  }
  ret = send_iov (c, iov, n);
  free (w);
  return ret;
}

/* Run a validated request and send its reply (in a pool worker). */
void
dispatch_request (struct request *r)
{
  struct conn *c = r->conn;

  switch (r->type) {
  case NBD_CMD_READ:          handle_read (c, r); break;
  case NBD_CMD_WRITE:         handle_write (c, r); break;
  case NBD_CMD_FLUSH:         handle_flush (c, r); break;
  case NBD_CMD_TRIM:          handle_trim (c, r); break;
  case NBD_CMD_CACHE:         handle_cache (c, r); break;
  case NBD_CMD_WRITE_ZEROES:  handle_write_zeroes (c, r); break;
  case NBD_CMD_BLOCK_STATUS:  handle_block_status (c, r); break;
  default:
    abort ();                   /* validate_request let it through */
  }
}

/* ------------------------------------------------------------ reader */

/* Read one request header.  NULL when the client is gone or sent
 * something that is not a request. */
static struct request *
read_request (struct conn *c)
{
  struct nbd_request req;
  struct request *r;

  if (conn_recv (c, &req, sizeof req)) {
    if (errno != 0 && errno != ECONNRESET && !server_stopping ())
      conn_error (c, "reading request: %m");
    return NULL;
  }
  if (be32toh (req.magic) != NBD_REQUEST_MAGIC) {
    conn_error (c, "bad request magic 0x%08" PRIx32, be32toh (req.magic));
    return NULL;
  }
  r = calloc (1, sizeof *r);
  if (r == NULL) {
    conn_error (c, "out of memory");
    return NULL;
  }
  r->conn = c;
  r->flags = be16toh (req.flags);
  r->type = be16toh (req.type);
  r->cookie = req.cookie;
  r->offset = be64toh (req.offset);
  r->count = be32toh (req.count);
  return r;
}

/* The bytes of buffer a request needs while in flight. */
static uint32_t
request_cost (const struct request *r)
{
  if (r->type != NBD_CMD_READ && r->type != NBD_CMD_WRITE)
    return 0;
  return r->count < MAX_REQUEST_SIZE ? r->count : MAX_REQUEST_SIZE;
}

/* A write's payload.  Its size cannot be skipped past safely when it is
 * over the limit, nor when the client leaves halfway: -1 drops the client. */
static int
read_payload (struct conn *c, struct request *r)
{
  if (r->count > MAX_REQUEST_SIZE) {
    conn_error (c, "write of %" PRIu32 " bytes is over the %u limit",
                r->count, MAX_REQUEST_SIZE);
    return -1;
  }
  r->data = alloc_buffer (r->count);
  if (r->data == NULL) {
    conn_error (c, "out of memory");
    return -1;
  }
  return conn_recv (c, r->data, r->count);
}

/* Whether the reader should run r itself: when nothing else of this
 * client is in flight or waiting in the socket, nothing waits behind it,
 * and handing it to a worker would only add a wake-up on each side (a
 * client at queue depth 1 sees that as latency).  Flushes, FUA requests
 * and large transfers still go to the pool, so that a request the client
 * sends meanwhile is read at once. */
static bool
run_inline (struct conn *c, const struct request *r)
{
  bool alone;

  if (r->type == NBD_CMD_FLUSH || r->type == NBD_CMD_CACHE
      || (r->flags & NBD_CMD_FLAG_FUA)
      || (r->type != NBD_CMD_BLOCK_STATUS && r->count > INLINE_MAX))
    return false;
  pthread_mutex_lock (&c->lock);
  alone = c->inflight == 1;     /* r itself */
  pthread_mutex_unlock (&c->lock);
  return alone && !conn_input_waiting (c);
}

/* Answer an invalid request here, or run a valid one (here, in the pool
 * or through aio.c).  The request is consumed either way; -1 when the
 * connection is dead. */
static int
answer_or_submit (struct conn *c, struct request *r)
{
  const char *msg = NULL;
  uint32_t error = validate_request (c, r, &msg);
  int ret = 0;

  if (error) {
    ret = send_error_reply (c, r, error, msg);
    finish_request (r);
    return ret;
  }
  if (r->type == NBD_CMD_READ) {
    if (prepare_read (c, r) == -1) {
      ret = send_error_reply (c, r, NBD_ENOMEM, "out of memory");
      finish_request (r);
      return ret;
    }
    if (!plan_has_data (r->plan)) {     /* no I/O: answer it now */
      ret = send_read_reply (c, r);
      finish_request (r);
      return ret;
    }
  }
  if (c->exp->aio && aio_submit (r))
    return 0;
  if (run_inline (c, r)) {
    dispatch_request (r);
    finish_request (r);
    return 0;                   /* a failed send shut the socket down */
  }
  pool_submit (r);
  return 0;
}

void
serve_requests (struct conn *c)
{
  while (!server_stopping ()) {
    struct request *r = read_request (c);

    if (r == NULL)
      return;
    if (r->type == NBD_CMD_DISC) {
      free_request (r);
      return;
    }
    /* Room first, so that a client cannot make the server hold more than
     * MAX_INFLIGHT_BYTES of its write payloads. */
    r->cost = request_cost (r);
    conn_reserve (c, r->cost);
    if (r->type == NBD_CMD_WRITE && read_payload (c, r) == -1) {
      finish_request (r);
      return;
    }
    if (answer_or_submit (c, r) == -1)
      return;
  }
}
