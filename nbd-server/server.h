/* server.h: vhd-nbd-server's shared types and the entry points of its
 * parts.
 *
 *   main.c       options, exports, listening sockets, signals, shutdown
 *   listen.c     Unix and TCP (IPv4 + IPv6) listening sockets
 *   conn.c       one thread per connection: handshake, then the reader;
 *                the list of live connections and the in-flight count
 *   handshake.c  fixed newstyle option haggling, one handler per option
 *   request.c    transmission: read, validate_request, dispatch_request
 *   reply.c      sending replies, errno -> NBD error mapping
 *   pool.c       the worker threads that run requests
 *   aio.c        --aio=native: requests through vhd_aio_*, one completion
 *                thread per image
 *
 * Threads.  The main thread accepts connections and waits for signals
 * (signalfd).  Each connection has one thread that negotiates and then
 * reads requests.  It answers invalid ones itself, and runs a valid one
 * itself too when nothing else of its client is in flight or waiting
 * (the queue-depth-1 case, where a hand-off costs two wake-ups) or when
 * it needs no I/O (a read of holes only); everything else goes to the
 * shared worker pool (or, with --aio=native, to the kernel).  Requests
 * run against the export's vhd_disk handle (one handle per image, shared
 * by every connection, which is what makes NBD_FLAG_CAN_MULTI_CONN
 * honest), and each reply is written whole under the connection's
 * send_lock, so replies go out whole but in any order.
 */
#ifndef VHD_NBD_SERVER_H
#define VHD_NBD_SERVER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "libvhd.h"

#define PROGRAM_NAME "vhd-nbd-server"

#define ATTR_PRINTF(f, a) __attribute__ ((__format__ (__printf__, f, a)))

/* Limits. */
#define MAX_REQUEST_SIZE   (32U << 20) /* READ/WRITE/CACHE payload (2^25) */
#define PREFERRED_BLOCK    4096U       /* at least this much per request */
#define MAX_OPTION_DATA    65536U      /* bytes of data with one option */
#define MAX_OPTIONS        1024U       /* options in one handshake */
#define MAX_INFLIGHT       64U         /* requests queued per connection */
#define MAX_INFLIGHT_BYTES (64U << 20) /* their read/write buffers */
#define MAX_CONNECTIONS    512U
#define HANDSHAKE_TIMEOUT  60          /* seconds for each handshake read */
#define SEND_TIMEOUT       60          /* seconds a reply may be blocked */
#define IN_BUFFER          (64U << 10) /* requests read ahead per recv */
#define UNIX_SNDBUF        (4 << 20)   /* send buffer of Unix sockets */
#define INLINE_MAX         (256U << 10) /* largest request run by the reader */

/* Metadata context IDs given out by NBD_OPT_SET_META_CONTEXT. */
#define META_BASE_ALLOCATION   1U
#define META_ALLOCATION_DEPTH  2U

/* One exported image, opened once for the life of the server. */
struct export {
  const char *name;            /* export name ("" is the default) */
  const char *path;
  struct vhd_disk *disk;
  uint64_t size;
  uint16_t eflags;             /* transmission flags, without SEND_DF */
  uint32_t min_block;          /* logical sector size */
  uint32_t pref_block;
  unsigned chain_len;          /* files in the chain, this one included */
  char *description;
  /* The chain's files hold much less than the data the images allocate:
   * allocated blocks are mostly unwritten holes of the host files, which
   * every read should look for (VHD_STATUS_HOST_HOLES) rather than read
   * them (main.c, host_sparse). */
  bool host_sparse;
  struct aio_export *aio;      /* --aio=native (aio.c), or NULL */
};

extern struct export *exports;
extern size_t n_exports;
extern bool readonly;
extern bool aio_native;        /* --aio=native */
extern bool cache_none;        /* --cache=none: O_DIRECT transfers */

/* A client connection. */
struct conn {
  int fd;
  char peer[64];               /* for messages */

  /* Transmission input read ahead by the reader (conn_recv): bytes
   * in_pos..in_len of in are received and not yet consumed. */
  uint8_t *in;
  size_t in_pos, in_len;

  /* Set by the handshake, constant during transmission. */
  const struct export *exp;
  bool structured;             /* NBD_OPT_STRUCTURED_REPLY acknowledged */
  bool check_align;            /* client asked for NBD_INFO_BLOCK_SIZE */
  bool meta_base;              /* base:allocation selected */
  bool meta_depth;             /* qemu:allocation-depth selected */

  /* Replies are written whole under send_lock.  Once a send fails the
   * connection is dead: nothing more is sent and the reader stops. */
  pthread_mutex_t send_lock;
  bool send_failed;

  /* Requests read and not yet answered, and the bytes of data they
   * carry or will read (conn_reserve / conn_release). */
  pthread_mutex_t lock;
  pthread_cond_t cond;
  unsigned inflight;
  uint64_t inflight_bytes;

  struct conn *prev, *next;    /* the server's list (conn.c) */
};

/* The ranges of one read, in order: data to read and send, or holes
 * (sent as NBD_REPLY_TYPE_OFFSET_HOLE). */
#define MAX_READ_SEGMENTS 64
struct read_plan {
  size_t n;
  struct segment {
    uint64_t offset;
    uint32_t length;
    bool hole;
  } seg[MAX_READ_SEGMENTS];
};

/* A request between the reader and a worker. */
struct request {
  struct conn *conn;
  uint16_t flags, type;
  uint64_t cookie, offset;
  uint32_t count;
  uint32_t cost;               /* bytes reserved by conn_reserve */
  void *data;                  /* WRITE payload, READ buffer (page aligned) */
  struct read_plan *plan;      /* READ: data and hole ranges (request.c) */
  struct request *next;        /* pool queue */
  /* --aio=native (aio.c): transfers not yet completed, first error. */
  unsigned aio_pending;
  int aio_error;
};

/* handshake.c: the export called name (len bytes, not terminated). */
extern const struct export *find_export (const char *name, size_t len);

/* main.c */
extern void server_error (const char *fs, ...) ATTR_PRINTF (1, 2);
extern void conn_error (const struct conn *c, const char *fs, ...)
  ATTR_PRINTF (2, 3);

/* listen.c: each returns the number of sockets added to fds (at most
 * max), or -1 after printing an error. */
extern int listen_unix (const char *path, int *fds, size_t max);
extern int listen_tcp (const char *addr, const char *port, int *fds,
                       size_t max);

/* conn.c */
extern int conn_start (int fd);
extern void conn_shutdown_all (void);
extern void conn_wait_all (void);
extern bool server_stopping (void);
extern void conn_reserve (struct conn *c, uint32_t cost);
extern void conn_release (struct conn *c, uint32_t cost);

/* handshake.c: 0 to enter transmission, -1 to drop the client. */
extern int handshake (struct conn *c);
extern uint16_t export_eflags (const struct conn *c);

/* request.c */
extern void serve_requests (struct conn *c);
extern void dispatch_request (struct request *r);
extern void free_request (struct request *r);
extern void finish_request (struct request *r);
extern int send_read_reply (struct conn *c, const struct request *r);
extern int read_buffer (struct request *r);

/* reply.c */
extern int recv_all (int fd, void *buf, size_t len);
extern int conn_recv (struct conn *c, void *buf, size_t len);
extern bool conn_input_waiting (struct conn *c);
extern int send_iov (struct conn *c, struct iovec *iov, int iovcnt);
extern int send_simple_reply (struct conn *c, uint64_t cookie,
                              uint32_t error);
extern int send_error_reply (struct conn *c, const struct request *r,
                             uint32_t error, const char *msg);
extern uint32_t nbd_error (int errnum, uint16_t cmd);
extern int reply_lib_error (struct conn *c, const struct request *r);

/* pool.c */
extern int pool_start (unsigned n_threads);
extern void pool_submit (struct request *r);
extern void pool_stop (void);

/* aio.c */
extern int aio_start (struct export *e);
extern void aio_stop (struct export *e);
extern bool aio_submit (struct request *r);

#endif /* VHD_NBD_SERVER_H */
