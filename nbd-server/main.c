/* main.c: vhd-nbd-server's command line, exports, accept loop and
 * shutdown.
 *
 *   vhd-nbd-server [-r] [-x NAME] (-k SOCKET | [-b ADDR] [-p PORT])
 *                  [--aio=threads|native] [--cache=writeback|none]
 *                  [--export NAME=IMAGE]... [IMAGE]
 *
 * Every image is opened once, before listening, and its handle is shared
 * by all connections (an image named by two exports shares one handle
 * too).  The process stays in the foreground.
 *
 * Signals: SIGINT and SIGTERM are blocked in every thread and read from a
 * signalfd by the accept loop, so no work happens in a signal handler.
 * Shutdown order: stop accepting; stop reading from clients; wait for
 * every connection to finish its in-flight requests; stop the completion
 * threads and the workers; flush and close the images; exit 0 (1 if a
 * flush failed).
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "protocol.h"
#include "server.h"

#define STR_(x) #x
#define STR(x) STR_ (x)
#define TOOL_VERSION \
  STR (VHD_VERSION_MAJOR) "." STR (VHD_VERSION_MINOR) "." STR (VHD_VERSION_MICRO)

#define DEFAULT_PORT "10809"
#define MAX_LISTEN   16

struct export *exports;
size_t n_exports;
bool readonly;
bool aio_native;
bool cache_none;
static bool aio_threads;       /* --aio=threads given */

/* ------------------------------------------------------------ messages */

void
server_error (const char *fs, ...)
{
  va_list args;
  char msg[1024];

  va_start (args, fs);
  vsnprintf (msg, sizeof msg, fs, args);
  va_end (args);
  fprintf (stderr, "%s: %s\n", PROGRAM_NAME, msg);
}

void
conn_error (const struct conn *c, const char *fs, ...)
{
  va_list args;
  char msg[1024];

  va_start (args, fs);
  vsnprintf (msg, sizeof msg, fs, args);
  va_end (args);
  fprintf (stderr, "%s: %s: %s\n", PROGRAM_NAME, c->peer, msg);
}

static void
usage (FILE *fp)
{
  fprintf (fp,
"Usage: %s [-r] [-x NAME] (-k SOCKET | [-b ADDR] [-p PORT])\n"
"                      [--aio=threads|native] [--cache=writeback|none]\n"
"                      [--export NAME=IMAGE]... [IMAGE]\n"
"\n"
"Serve VHD, VHDX and raw disk images (through their differencing chains)\n"
"over the NBD protocol.  Runs in the foreground; SIGINT or SIGTERM stops\n"
"it after finishing and flushing the requests in flight.\n"
"\n"
"Options:\n"
"  -r, --read-only         open images read-only and refuse writes\n"
"  -x, --export-name=NAME  export IMAGE under NAME (default \"\")\n"
"      --export=NAME=IMAGE also export IMAGE under NAME (repeatable)\n"
"  -k, --socket=SOCKET     listen on the Unix socket SOCKET\n"
"  -b, --bind=ADDR         listen on TCP address ADDR (default: all)\n"
"  -p, --port=PORT         TCP port (default %s)\n"
"      --aio=threads|native  reads and writes by worker threads (default)\n"
"                          or by Linux native AIO (libaio)\n"
"      --cache=writeback|none  none: transfers bypass the host page cache\n"
"                          (O_DIRECT); implies --aio=native\n"
"  -h, --help              print this help and exit\n"
"  -V, --version           print the version and exit\n",
           PROGRAM_NAME, DEFAULT_PORT);
}

static void usage_error (const char *fs, ...)
  ATTR_PRINTF (1, 2) __attribute__ ((__noreturn__));

static void
usage_error (const char *fs, ...)
{
  va_list args;

  fprintf (stderr, "%s: ", PROGRAM_NAME);
  va_start (args, fs);
  vfprintf (stderr, fs, args);
  va_end (args);
  fprintf (stderr, "\nTry '%s --help' for more information.\n",
           PROGRAM_NAME);
  exit (EXIT_FAILURE);
}

/* ------------------------------------------------------------ exports */

static void
add_export (const char *name, const char *path)
{
  struct export *e;

  if (strlen (name) > NBD_MAX_STRING)
    usage_error ("export name too long: %.40s...", name);
  if (find_export (name, strlen (name)))
    usage_error ("export name '%s' given twice", name);
  e = realloc (exports, (n_exports + 1) * sizeof *exports);
  if (e == NULL) {
    server_error ("out of memory");
    exit (EXIT_FAILURE);
  }
  exports = e;
  exports[n_exports++] = (struct export) { .name = name, .path = path };
}

/* The handle of an earlier export of the same file, if any. */
static struct vhd_disk *
shared_disk (size_t i)
{
  struct stat a, b;
  size_t j;

  if (stat (exports[i].path, &a) == -1)
    return NULL;
  for (j = 0; j < i; j++)
    if (stat (exports[j].path, &b) == 0 && a.st_dev == b.st_dev
        && a.st_ino == b.st_ino)
      return exports[j].disk;
  return NULL;
}

static const char *
type_name (int type)
{
  switch (type) {
  case VHD_TYPE_FIXED: return "fixed";
  case VHD_TYPE_DYNAMIC: return "dynamic";
  case VHD_TYPE_DIFFERENCING: return "differencing";
  default: return "unknown";
  }
}

static void
describe_export (struct export *e)
{
  struct vhd_disk *d;
  int n;

  e->chain_len = 0;
  for (d = e->disk; d; d = vhd_get_parent (d))
    e->chain_len++;
  n = asprintf (&e->description, "%s %s disk %s, chain of %u file%s",
                vhd_get_format_name (e->disk),
                type_name (vhd_get_type (e->disk)), e->path, e->chain_len,
                e->chain_len == 1 ? "" : "s");
  if (n < 0)
    e->description = NULL;
}

/* Whether the chain's files store much less than their images allocate:
 * qemu-img, for one, leaves the unwritten parts of the VHDX blocks it
 * allocates as holes of the host file, and the first read of a hole page
 * costs the kernel far more (a page to allocate and clear) than asking
 * where the holes are. */
static bool
host_sparse (struct vhd_disk *disk)
{
  uint64_t allocated = 0, stored = 0;
  struct vhd_disk *d;
  struct stat st;

  for (d = disk; d; d = vhd_get_parent (d)) {
    int64_t a = vhd_get_allocated_bytes (d);
    if (a < 0 || stat (vhd_get_filename (d), &st) == -1)
      return false;
    allocated += (uint64_t) a;
    stored += (uint64_t) st.st_blocks * 512;
  }
  return stored < allocated / 8 * 7;
}

static uint16_t
transmission_flags (void)
{
  uint16_t flags = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH
    | NBD_FLAG_CAN_MULTI_CONN | NBD_FLAG_SEND_CACHE;

  if (readonly)
    return flags | NBD_FLAG_READ_ONLY;
  return flags | NBD_FLAG_SEND_FUA | NBD_FLAG_SEND_TRIM
    | NBD_FLAG_SEND_WRITE_ZEROES | NBD_FLAG_SEND_FAST_ZERO;
}

static int
open_export (size_t i)
{
  struct export *e = &exports[i];
  int64_t size;
  int logical, physical;

  e->disk = shared_disk (i);
  if (e->disk == NULL)
    e->disk = vhd_open (e->path, readonly ? VHD_OPEN_RDONLY : 0);
  if (e->disk == NULL) {
    server_error ("%s: %s", e->path, vhd_get_error ());
    return -1;
  }
  size = vhd_get_size (e->disk);
  if (size < 0) {
    server_error ("%s: %s", e->path, vhd_get_error ());
    return -1;
  }
  e->size = (uint64_t) size;
  logical = vhd_get_logical_sector_size (e->disk);
  physical = vhd_get_physical_sector_size (e->disk);
  e->min_block = logical > 0 ? (uint32_t) logical : 512;
  if (e->size % e->min_block)   /* a raw file of any size: byte access */
    e->min_block = 1;
  e->pref_block = PREFERRED_BLOCK;
  if (physical > 0 && (uint32_t) physical > e->pref_block)
    e->pref_block = (uint32_t) physical;
  if (e->min_block > e->pref_block)
    e->pref_block = e->min_block;
  e->eflags = transmission_flags ();
  e->host_sparse = host_sparse (e->disk);
  describe_export (e);
  if (e->description == NULL) {
    server_error ("out of memory");
    return -1;
  }
  return 0;
}

/* Flush and close every handle once.  -1 if a flush failed. */
static int
close_exports (void)
{
  int ret = 0;
  size_t i, j;

  for (i = 0; i < n_exports; i++) {
    struct vhd_disk *d = exports[i].disk;
    if (d == NULL)
      continue;
    if (vhd_flush (d) == -1) {
      server_error ("%s: %s", exports[i].path, vhd_get_error ());
      ret = -1;
    }
    vhd_close (d);
    for (j = i; j < n_exports; j++)
      if (exports[j].disk == d)
        exports[j].disk = NULL;
  }
  for (i = 0; i < n_exports; i++)
    free (exports[i].description);
  return ret;
}

static void
stop_aio (void)
{
  size_t i;

  for (i = 0; i < n_exports; i++)
    aio_stop (&exports[i]);
}

/* ------------------------------------------------------------ options */

struct options {
  const char *export_name;
  const char *socket_path;
  const char *bind_addr;
  const char *port;
  const char *image;
};

enum { OPT_EXPORT = 256, OPT_AIO, OPT_CACHE };

static const struct option long_options[] = {
  { "read-only", no_argument, NULL, 'r' },
  { "export-name", required_argument, NULL, 'x' },
  { "export", required_argument, NULL, OPT_EXPORT },
  { "socket", required_argument, NULL, 'k' },
  { "bind", required_argument, NULL, 'b' },
  { "port", required_argument, NULL, 'p' },
  { "aio", required_argument, NULL, OPT_AIO },
  { "cache", required_argument, NULL, OPT_CACHE },
  { "help", no_argument, NULL, 'h' },
  { "version", no_argument, NULL, 'V' },
  { NULL, 0, NULL, 0 },
};

static void
add_export_option (char *arg)
{
  char *eq = strchr (arg, '=');

  if (eq == NULL || eq[1] == '\0')
    usage_error ("--export needs NAME=IMAGE, not '%s'", arg);
  *eq = '\0';
  add_export (arg, eq + 1);
}

static void
parse_port (const char *s)
{
  char *end;
  long v;

  errno = 0;
  v = strtol (s, &end, 10);
  if (errno || *s == '\0' || *end != '\0' || v < 1 || v > 65535)
    usage_error ("invalid port '%s'", s);
}

static void
parse_options (int argc, char *argv[], struct options *o)
{
  int c;

  while ((c = getopt_long (argc, argv, "rx:k:b:p:hV", long_options,
                           NULL)) != -1) {
    switch (c) {
    case 'r': readonly = true; break;
    case 'x': o->export_name = optarg; break;
    case 'k': o->socket_path = optarg; break;
    case 'b': o->bind_addr = optarg; break;
    case 'p': parse_port (optarg); o->port = optarg; break;
    case OPT_EXPORT: add_export_option (optarg); break;
    case OPT_AIO:
      aio_native = strcmp (optarg, "native") == 0;
      aio_threads = strcmp (optarg, "threads") == 0;
      if (!aio_native && !aio_threads)
        usage_error ("--aio must be threads or native, not '%s'", optarg);
      break;
    case OPT_CACHE:
      cache_none = strcmp (optarg, "none") == 0;
      if (!cache_none && strcmp (optarg, "writeback") != 0)
        usage_error ("--cache must be writeback or none, not '%s'", optarg);
      break;
    case 'h': usage (stdout); exit (EXIT_SUCCESS);
    case 'V':
      printf ("%s %s\nlibvhd %s\n", PROGRAM_NAME, TOOL_VERSION,
              vhd_get_version ());
      exit (EXIT_SUCCESS);
    default:
      fprintf (stderr, "Try '%s --help' for more information.\n",
               PROGRAM_NAME);
      exit (EXIT_FAILURE);
    }
  }
  if (argc - optind > 1)
    usage_error ("only one IMAGE may be given (use --export for more)");
  if (optind < argc)
    o->image = argv[optind];
  if (o->export_name && o->image == NULL)
    usage_error ("-x NAME needs an IMAGE");
  if (o->image)
    add_export (o->export_name ? o->export_name : "", o->image);
  if (n_exports == 0)
    usage_error ("no image to serve");
  if (o->socket_path && (o->bind_addr || o->port))
    usage_error ("-k cannot be combined with -b or -p");
  if (cache_none && aio_threads)
    usage_error ("--cache=none needs --aio=native");
  if (cache_none)
    aio_native = true;
}

/* ------------------------------------------------------------ serving */

static int
signal_fd (void)
{
  sigset_t set;
  int fd;

  sigemptyset (&set);
  sigaddset (&set, SIGINT);
  sigaddset (&set, SIGTERM);
  /* Blocked here, before any thread exists, so in every thread. */
  pthread_sigmask (SIG_BLOCK, &set, NULL);
  signal (SIGPIPE, SIG_IGN);
  fd = signalfd (-1, &set, SFD_CLOEXEC);
  if (fd == -1)
    server_error ("signalfd: %m");
  return fd;
}

static unsigned
worker_count (void)
{
  long n = sysconf (_SC_NPROCESSORS_ONLN) * 2;

  if (n < 4)
    n = 4;
  if (n > 32)
    n = 32;
  return (unsigned) n;
}

static void
accept_one (int lfd)
{
  int fd = accept4 (lfd, NULL, NULL, SOCK_CLOEXEC);

  if (fd >= 0) {
    conn_start (fd);
    return;
  }
  if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS
      || errno == ENOMEM) {
    server_error ("accept: %m");
    usleep (100000);            /* do not spin while out of descriptors */
  }
}

/* Accept clients until SIGINT or SIGTERM (0), or a poll error (-1). */
static int
accept_loop (const int *lfds, int n, int sfd)
{
  struct pollfd pfd[MAX_LISTEN + 1];
  int i;

  for (i = 0; i < n; i++)
    pfd[i] = (struct pollfd) { .fd = lfds[i], .events = POLLIN };
  pfd[n] = (struct pollfd) { .fd = sfd, .events = POLLIN };
  for (;;) {
    if (poll (pfd, (nfds_t) n + 1, -1) == -1) {
      if (errno == EINTR)
        continue;
      server_error ("poll: %m");
      return -1;
    }
    if (pfd[n].revents & POLLIN) {
      struct signalfd_siginfo si;
      if (read (sfd, &si, sizeof si) == (ssize_t) sizeof si)
        return 0;
    }
    for (i = 0; i < n; i++)
      if (pfd[i].revents & POLLIN)
        accept_one (lfds[i]);
  }
}

static int
start_listening (const struct options *o, int *lfds)
{
  if (o->socket_path)
    return listen_unix (o->socket_path, lfds, MAX_LISTEN);
  return listen_tcp (o->bind_addr, o->port ? o->port : DEFAULT_PORT, lfds,
                     MAX_LISTEN);
}

int
main (int argc, char *argv[])
{
  struct options o = { 0 };
  int lfds[MAX_LISTEN];
  int n_listen, sfd, i, status = EXIT_SUCCESS;
  size_t e;

  parse_options (argc, argv, &o);
  sfd = signal_fd ();
  if (sfd == -1)
    return EXIT_FAILURE;
  for (e = 0; e < n_exports; e++)
    if (open_export (e) == -1) {
      close_exports ();
      return EXIT_FAILURE;
    }
  for (e = 0; e < n_exports && aio_native; e++)
    if (aio_start (&exports[e]) == -1) {
      stop_aio ();
      close_exports ();
      return EXIT_FAILURE;
    }
  n_listen = start_listening (&o, lfds);
  if (n_listen < 0 || pool_start (worker_count ()) == -1) {
    stop_aio ();
    close_exports ();
    return EXIT_FAILURE;
  }

  if (accept_loop (lfds, n_listen, sfd) == -1)
    status = EXIT_FAILURE;

  for (i = 0; i < n_listen; i++)
    close (lfds[i]);
  if (o.socket_path)
    unlink (o.socket_path);
  conn_shutdown_all ();
  conn_wait_all ();
  stop_aio ();
  pool_stop ();
  if (close_exports () == -1)
    status = EXIT_FAILURE;
  free (exports);
  close (sfd);
  return status;
}
