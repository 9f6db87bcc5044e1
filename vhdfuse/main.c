/* main.c: vhdfuse's command line and the life of a mount.
 *
 *   vhdfuse [-r] [-f] [-m] [-o FUSE_OPTIONS] IMAGE MOUNTPOINT
 *
 * The order matters:
 *   1. parse the options and hand the FUSE ones to fuse_new, which checks
 *      them, before the image is touched: a mistyped -o must not open an
 *      image read-write (opening a VHDX read-write may replay its log);
 *   2. open the image with its whole chain, read its partition table;
 *   3. mount, raise the mount's read-ahead, install the signal handlers,
 *      and only then daemonize: the parent exits when the mount is
 *      usable, and every failure so far reaches stderr with exit status 1;
 *   4. run fuse3's loop until the file system is unmounted (fusermount3
 *      -u) or a signal (SIGINT, SIGTERM, SIGHUP) ends it: one thread by
 *      default -- on page-cache-backed images it answers 4 KiB random
 *      reads two to three times faster than fuse3's multi-threaded loop,
 *      whose hand-offs between threads cost more than the reads, even at
 *      queue depth 16 on two cores -- or that loop with -m, for images
 *      on slow storage where one read must not wait for another;
 *   5. unmount, and fuse_destroy, whose destroy callback flushes and
 *      closes the image (operations.c).
 * Exit status 0 unless mounting, the loop or the final flush failed.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vhdfuse.h"

#define MAX_READAHEAD_KB 1024U

struct options {
  bool readonly;
  bool foreground;
  bool direct_io;
  bool multithreaded;
  char *fuse_opts;        /* the -o arguments joined by commas, or NULL */
  const char *image;
  const char *mountpoint;
};

static void
usage (FILE *fp)
{
  fprintf (fp,
           "Usage: %s [-r] [-f] [-m] [-o FUSE_OPTIONS] IMAGE MOUNTPOINT\n"
           "       %s --help | --version\n"
           "\n"
           "Mount a VHD, VHDX or raw disk image.  MOUNTPOINT/disk is its "
           "virtual disk\n"
           "(through the whole differencing chain) as a raw file, and "
           "MOUNTPOINT/disk-partN\n"
           "each partition N of its MBR or GPT partition table.\n"
           "\n"
           "  -r, --readonly     open the image read-only\n"
           "  -f, --foreground   stay in the foreground, errors on stderr\n"
           "  -m, --multithreaded  serve requests from several threads\n"
           "                     (slow storage; one thread is faster on "
           "cached images)\n"
           "  -o OPTIONS         FUSE mount options (allow_other, "
           "direct_io, ...)\n"
           "      --help         print this help and exit\n"
           "  -V, --version      print the versions and exit\n"
           "\n"
           "Unmount with 'fusermount3 -u MOUNTPOINT': it flushes and "
           "closes the image.\n",
           PROGRAM_NAME, PROGRAM_NAME);
}

static int
usage_error (const char *what)
{
  if (what)
    fprintf (stderr, "%s: %s\n", PROGRAM_NAME, what);
  fprintf (stderr, "Try '%s --help' for more information.\n", PROGRAM_NAME);
  return -1;
}

static void
print_version (void)
{
  printf ("%s %s\n", PROGRAM_NAME, VHDFUSE_VERSION);
  printf ("libvhd %s\n", vhd_get_version ());
  printf ("libfuse %s\n", fuse_pkgversion ());
}

/* Append one option to o->fuse_opts. */
static int
append_opt (struct options *o, const char *opt, size_t len)
{
  size_t old = o->fuse_opts ? strlen (o->fuse_opts) : 0;
  char *s = realloc (o->fuse_opts, old + 1 + len + 1);

  if (s == NULL)
    return -1;
  if (old)
    s[old++] = ',';
  memcpy (s + old, opt, len);
  s[old + len] = '\0';
  o->fuse_opts = s;
  return 0;
}

/* Take one -o argument: "ro" also means -r (the image must not be opened
 * read-write); "direct_io" is ours (libfuse 3 has no such option); the
 * rest goes to fuse_new.  Commas split options unless escaped by "\". */
static int
add_fuse_opts (struct options *o, const char *arg)
{
  while (*arg) {
    size_t n = 0;
    while (arg[n] && arg[n] != ',')
      n += (arg[n] == '\\' && arg[n + 1]) ? 2 : 1;
    if (n == 2 && strncmp (arg, "ro", 2) == 0)
      o->readonly = true;
    if (n == 9 && strncmp (arg, "direct_io", 9) == 0)
      o->direct_io = true;
    else if (n > 0 && append_opt (o, arg, n) == -1)
      return -1;
    arg += n + (arg[n] == ',');
  }
  return 0;
}

/* 0: run; 1: done (--help, --version); -1: usage error. */
static int
parse_args (int argc, char *argv[], struct options *o)
{
  static const struct option long_opts[] = {
    { "foreground", no_argument, NULL, 'f' },
    { "help", no_argument, NULL, 'h' },
    { "multithreaded", no_argument, NULL, 'm' },
    { "readonly", no_argument, NULL, 'r' },
    { "read-only", no_argument, NULL, 'r' },
    { "version", no_argument, NULL, 'V' },
    { NULL, 0, NULL, 0 },
  };
  int c;

  argv[0] = (char *) PROGRAM_NAME;   /* for getopt's messages */
  while ((c = getopt_long (argc, argv, "fmo:rV", long_opts, NULL)) != -1) {
    switch (c) {
    case 'f': o->foreground = true; break;
    case 'm': o->multithreaded = true; break;
    case 'r': o->readonly = true; break;
    case 'o':
      if (add_fuse_opts (o, optarg) == -1)
        return usage_error (strerror (errno));
      break;
    case 'h': usage (stdout); return 1;
    case 'V': print_version (); return 1;
    default: return usage_error (NULL);
    }
  }
  if (argc - optind != 2)
    return usage_error (argc - optind < 2 ? "IMAGE and MOUNTPOINT are needed"
                                          : "too many arguments");
  o->image = argv[optind];
  o->mountpoint = argv[optind + 1];
  return 0;
}

/* "fsname=PATH" with the characters fuse_opt splits on escaped. */
static char *
fsname_option (const char *path)
{
  char *s = malloc (strlen ("fsname=") + 2 * strlen (path) + 1);
  char *p = s;

  if (s == NULL)
    return NULL;
  p += sprintf (p, "fsname=");
  for (; *path; path++) {
    if (*path == ',' || *path == '\\')
      *p++ = '\\';
    *p++ = *path;
  }
  *p = '\0';
  return s;
}

/* argv for fuse_new: our fixed options, then -r's, then the user's. */
static int
fuse_arguments (const struct options *o, const char *argv0,
                struct fuse_args *args)
{
  char *fsname = fsname_option (vf.image);
  int r = -1;

  if (fsname == NULL)
    return -1;
  if (fuse_opt_add_arg (args, argv0) == 0
      && fuse_opt_add_arg (args, "-o") == 0
      && fuse_opt_add_arg (args, "subtype=vhdfuse,default_permissions") == 0
      && fuse_opt_add_arg (args, "-o") == 0
      && fuse_opt_add_arg (args, fsname) == 0
      && (!o->readonly || (fuse_opt_add_arg (args, "-o") == 0
                           && fuse_opt_add_arg (args, "ro") == 0))
      && (!o->fuse_opts || (fuse_opt_add_arg (args, "-o") == 0
                            && fuse_opt_add_arg (args, o->fuse_opts) == 0)))
    r = 0;
  free (fsname);
  return r;
}

static int
open_image (const struct options *o)
{
  int ss;

  vf.disk = vhd_open (o->image, o->readonly ? VHD_OPEN_RDONLY : 0);
  if (vf.disk == NULL) {
    int err = vhd_get_errno ();
    fprintf (stderr, "%s: %s: %s%s\n", PROGRAM_NAME, vf.name, lib_message (),
             !o->readonly && (err == EACCES || err == EROFS)
               ? " (-r mounts it read-only)" : "");
    return -1;
  }
  vf.size = (uint64_t) vhd_get_size (vf.disk);
  ss = vhd_get_logical_sector_size (vf.disk);
  vf.sector_size = ss > 0 ? (unsigned) ss : 512;
  return 0;
}

/* Whether mountinfo's escaped field equals path. */
static bool
unescaped_equal (const char *field, const char *path)
{
  while (*field && *path) {
    char c = *field++;
    if (c == '\\' && field[0] >= '0' && field[0] <= '3'
        && field[1] >= '0' && field[1] <= '7'
        && field[2] >= '0' && field[2] <= '7') {
      c = (char) ((field[0] - '0') << 6 | (field[1] - '0') << 3
                  | (field[2] - '0'));
      field += 3;
    }
    if (c != *path++)
      return false;
  }
  return *field == '\0' && *path == '\0';
}

/* The mount's "major:minor" from /proc/self/mountinfo (the last mount
 * of ours on that directory); stat () of the mount point would wait for
 * the loop, which is not running yet.  Fields: ID PARENT MAJ:MIN ROOT
 * MOUNTPOINT ... - FSTYPE ..., with blanks and backslashes as \ooo. */
static bool
mount_device (const char *dir, char dev[32])
{
  FILE *fp = fopen ("/proc/self/mountinfo", "r");
  char line[4096], d[32], mnt[4096], type[64];
  bool found = false;

  if (fp == NULL)
    return false;
  while (fgets (line, sizeof line, fp)) {
    const char *dash = strstr (line, " - ");
    if (dash && sscanf (line, "%*s %*s %31s %*s %4095s", d, mnt) == 2
        && sscanf (dash, " - %63s", type) == 1
        && strcmp (type, "fuse.vhdfuse") == 0 && unescaped_equal (mnt, dir)) {
      memcpy (dev, d, sizeof d);
      found = true;
    }
  }
  fclose (fp);
  return found;
}

/* Reads of a page-cached FUSE file come in read-ahead sized requests,
 * 128 KiB by default whatever max_readahead asks for: raise this mount's
 * read-ahead to MAX_READAHEAD_KB, which about doubles sequential reads.
 * Best effort: it needs root, and nothing depends on it. */
static void
raise_readahead (const char *dir)
{
  char dev[32], path[96];
  FILE *fp;

  if (mount_device (dir, dev)) {
    snprintf (path, sizeof path, "/sys/class/bdi/%s/read_ahead_kb", dev);
    fp = fopen (path, "w");
    if (fp) {
      fprintf (fp, "%u\n", MAX_READAHEAD_KB);
      fclose (fp);
    }
  }
}

/* Mount on dir (absolute: libfuse unmounts by that name, after
 * daemonizing has changed directory to "/"), daemonize, serve until
 * unmounted or signalled, unmount. */
static int
run (struct fuse *fuse, const char *dir, bool foreground, bool mt)
{
  struct fuse_session *se = fuse_get_session (fuse);
  int r;

  if (fuse_mount (fuse, dir) == -1)
    return -1;
  raise_readahead (dir);
  if (fuse_set_signal_handlers (se) == -1) {
    fuse_unmount (fuse);
    return -1;
  }
  if (fuse_daemonize (foreground) == -1)
    r = -1;
  else
    r = mt ? fuse_loop_mt (fuse, NULL) /* > 0: ended by that signal */
           : fuse_loop (fuse);
  fuse_remove_signal_handlers (se);
  fuse_unmount (fuse);
  return r < 0 ? -1 : 0;
}

int
main (int argc, char *argv[])
{
  struct options o = { 0 };
  struct fuse_args args = FUSE_ARGS_INIT (0, NULL);
  struct fuse *fuse = NULL;
  char *abs = NULL, *dir;
  int r;

  r = parse_args (argc, argv, &o);
  if (r != 0)
    return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
  dir = realpath (o.mountpoint, NULL);
  if (dir == NULL) {
    fprintf (stderr, "%s: %s: %s\n", PROGRAM_NAME, o.mountpoint,
             strerror (errno));
    return EXIT_FAILURE;
  }
  vf.name = o.image;
  abs = realpath (o.image, NULL);
  vf.image = abs ? abs : o.image;
  vf.readonly = o.readonly;
  vf.direct_io = o.direct_io;
  vf.uid = getuid ();
  vf.gid = getgid ();
  if (fuse_arguments (&o, argv[0], &args) == -1) {
    fprintf (stderr, "%s: %s\n", PROGRAM_NAME, strerror (ENOMEM));
    r = -1;
  }
  else if ((fuse = fuse_new (&args, &vhdfuse_operations,
                             sizeof vhdfuse_operations, NULL)) == NULL)
    r = usage_error (NULL);        /* fuse_new said which option */
  else if ((r = open_image (&o)) == 0) {
    files_init ();
    r = run (fuse, dir, o.foreground, o.multithreaded);
  }
  if (fuse)
    fuse_destroy (fuse);           /* destroy () closes the image */
  vhd_close (vf.disk);             /* when it never got that far */
  files_free ();
  fuse_opt_free_args (&args);
  free (o.fuse_opts);
  free (abs);
  free (dir);
  return r == 0 && !vf.close_failed ? EXIT_SUCCESS : EXIT_FAILURE;
}
