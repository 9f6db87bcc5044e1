/* vhdtool/cmd-compact.c: "vhdtool compact", give back unused space.
 *
 * Opens FILE read-write (a differencing disk with its parent chain, which
 * compaction compares against) and runs vhd_compact_ex (): blocks that
 * read as zeros (in a differencing disk: that match the parent's view)
 * are dropped, the rest moved down, the file shortened; with --no-move
 * the dropped blocks' space is only punched out of the host file.
 * Prints the file size before and after (--no-move: the space the host
 * allocates for it).  Fixed images (and raw files) have nothing to
 * compact: that is an error that says so.  -p shows qemu-img style
 * progress.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "vhdtool.h"

#define CMD "compact"

static const char short_opts[] = "ph";
static const struct option long_opts[] = {
  { "help",     no_argument, NULL, 'h' },
  { "no-move",  no_argument, NULL, OPT_NO_MOVE },
  { "progress", no_argument, NULL, 'p' },
  { NULL, 0, NULL, 0 },
};

static void
usage (void)
{
  printf ("Usage: %s %s [-p] [--no-move] FILE\n"
          "\n"
          "Compact the dynamic or differencing image FILE: drop blocks "
          "that read as\n"
          "zeros (in a differencing disk, blocks identical to the parent's), "
          "move the\n"
          "rest down and shorten the file.\n"
          "\n"
          "  -p, --progress  show progress\n"
          "      --no-move   only drop those blocks and punch their space "
          "out of the\n"
          "                  host file: nothing moves, the file keeps its "
          "length\n"
          "  -h, --help      print this help and exit\n",
          PROGRAM_NAME, CMD);
}

/* The error of a failed vhd_compact (). */
static int
compact_failed (const char *file, struct vhd_disk *d)
{
  int format = vhd_get_format (d);

  if (vhd_get_errno () != ENOTSUP)
    return fail_lib (file);
  if (format == VHD_FORMAT_RAW)
    return fail (file, "cannot compact a raw image: only dynamic and "
                 "differencing VHD and VHDX images can be compacted");
  if (vhd_get_type (d) == VHD_TYPE_FIXED)
    return fail (file, "cannot compact a fixed %s image: only dynamic and "
                 "differencing images can be compacted", format_name (format));
  return fail_lib (file);
}

/* What the report measures: the file's length, or with --no-move the
 * space the host allocates for it (-1 when unknown). */
static int64_t
measure (const char *file, struct vhd_disk *d, bool no_move)
{
  struct stat st;

  if (!no_move)
    return vhd_get_file_size (d);
  return stat (file, &st) == 0 ? (int64_t) st.st_blocks * 512 : -1;
}

static void
report (struct vhd_disk *d, bool no_move,
        int64_t size_before, int64_t size_after)
{
  char before[32], after[32], length[32];
  int64_t file_size = vhd_get_file_size (d);

  if (size_before < 0 || size_after < 0 || file_size < 0) {
    printf ("compacted\n");
    return;
  }
  human_size ((uint64_t) size_before, before, sizeof before);
  human_size ((uint64_t) size_after, after, sizeof after);
  if (!no_move) {
    printf ("compacted: %s -> %s\n", before, after);
    return;
  }
  human_size ((uint64_t) file_size, length, sizeof length);
  printf ("compacted in place: %s -> %s allocated on the host (file "
          "length %s)\n", before, after, length);
}

static int
compact (const char *file, bool show_progress, bool no_move)
{
  struct progress prog = { 0 };
  struct vhd_disk *d = vhd_open (file, 0);
  int64_t size_before;
  int r;

  if (d == NULL)
    return fail_lib (file);
  size_before = measure (file, d, no_move);
  if (show_progress)
    progress_init (&prog, stdout);
  r = vhd_compact_ex (d, no_move ? VHD_COMPACT_NO_MOVE : 0,
                      show_progress ? progress_update : NULL, &prog);
  if (show_progress) {
    if (r == 0)
      progress_finish (&prog);
    else
      progress_abort (&prog);
  }
  if (r == -1) {
    r = compact_failed (file, d);
    vhd_close (d);
    return r;
  }
  if (vhd_flush (d) == -1) {
    r = fail_lib (file);
    vhd_close (d);
    return r;
  }
  report (d, no_move, size_before, measure (file, d, no_move));
  vhd_close (d);
  return EXIT_SUCCESS;
}

int
cmd_compact (int argc, char *argv[])
{
  bool show_progress = false, no_move = false;
  const char *file;
  int c, r;

  optind = 1;
  while ((c = getopt_long (argc, argv, short_opts, long_opts, NULL)) != -1)
    switch (c) {
    case 'h':
      usage ();
      return EXIT_SUCCESS;
    case 'p':
      show_progress = true;
      break;
    case OPT_NO_MOVE:
      no_move = true;
      break;
    default:
      return try_help (CMD);
    }
  r = take_operand (argc, argv, CMD, "FILE", &file);
  return r >= 0 ? r : compact (file, show_progress, no_move);
}
