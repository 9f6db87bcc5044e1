/* vhdtool/cmd-compact.c: "vhdtool compact", give back unused space.
 *
 * Opens FILE read-write (a differencing disk with its parent chain, which
 * compaction compares against) and runs vhd_compact (): blocks that read
 * as zeros (in a differencing disk: that match the parent's view) are
 * dropped, the rest moved down, the file shortened.  Prints the file size
 * before and after.  Fixed images (and raw files) have nothing to compact:
 * that is an error that says so.  -p shows qemu-img style progress.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>

#include "vhdtool.h"

#define CMD "compact"

static const char short_opts[] = "ph";
static const struct option long_opts[] = {
  { "help",     no_argument, NULL, 'h' },
  { "progress", no_argument, NULL, 'p' },
  { NULL, 0, NULL, 0 },
};

static void
usage (void)
{
  printf ("Usage: %s %s [-p] FILE\n"
          "\n"
          "Compact the dynamic or differencing image FILE: drop blocks "
          "that read as\n"
          "zeros (in a differencing disk, blocks identical to the parent's), "
          "move the\n"
          "rest down and shorten the file.\n"
          "\n"
          "  -p, --progress  show progress\n"
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

static int
compact (const char *file, bool show_progress)
{
  struct progress prog = { 0 };
  struct vhd_disk *d = vhd_open (file, 0);
  char before[32], after[32];
  int64_t size_before, size_after;
  int r;

  if (d == NULL)
    return fail_lib (file);
  size_before = vhd_get_file_size (d);
  if (show_progress)
    progress_init (&prog, stdout);
  r = vhd_compact (d, show_progress ? progress_update : NULL, &prog);
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
  size_after = vhd_get_file_size (d);
  vhd_close (d);
  if (size_before >= 0 && size_after >= 0) {
    human_size ((uint64_t) size_before, before, sizeof before);
    human_size ((uint64_t) size_after, after, sizeof after);
    printf ("compacted: %s -> %s\n", before, after);
  }
  else
    printf ("compacted\n");
  return EXIT_SUCCESS;
}

int
cmd_compact (int argc, char *argv[])
{
  bool show_progress;
  const char *file;
  int r = parse_flag_operand (argc, argv, CMD, short_opts, long_opts, 'p',
                              usage, "FILE", &show_progress, &file);

  return r >= 0 ? r : compact (file, show_progress);
}
