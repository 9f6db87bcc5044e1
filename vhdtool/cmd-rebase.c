/* vhdtool/cmd-rebase.c: "vhdtool rebase", point a differencing disk at
 * a moved or renamed parent.
 *
 * CHILD is opened read-write without its parent (VHD_OPEN_NO_PARENT: the
 * old parent may be gone, which is the usual reason to rebase), then
 * vhd_rebase () records NEWPARENT: identity and parent locators.  The
 * library checks that NEWPARENT carries the identity CHILD records, unless
 * --unsafe.  Nothing of CHILD's data changes, so this is not qemu-img's
 * content-preserving rebase onto a different base: it is its "-u" mode
 * with an identity check.
 */
#include <getopt.h>
#include <stdlib.h>

#include "vhdtool.h"

#define CMD "rebase"

static const char short_opts[] = "uh";
static const struct option long_opts[] = {
  { "help",   no_argument,       NULL, 'h' },
  { "parent", required_argument, NULL, OPT_PARENT },
  { "unsafe", no_argument,       NULL, OPT_UNSAFE },
  { NULL, 0, NULL, 0 },
};

static void
usage (void)
{
  printf ("Usage: %s %s [--unsafe] --parent NEWPARENT CHILD\n"
          "\n"
          "Make the differencing disk CHILD refer to NEWPARENT, its parent "
          "after a move\n"
          "or rename.  NEWPARENT must be the image CHILD was made over "
          "(its ID is\n"
          "checked) unless --unsafe is given.\n"
          "\n"
          "      --parent NEWPARENT  the parent's new path\n"
          "  -u, --unsafe            accept NEWPARENT without checking "
          "its identity\n"
          "                          (the disk's content is then what "
          "NEWPARENT makes it)\n"
          "  -h, --help              print this help and exit\n",
          PROGRAM_NAME, CMD);
}

static int
rebase (const char *child, const char *parent, bool unsafe)
{
  struct vhd_disk *d = vhd_open (child, VHD_OPEN_NO_PARENT);

  if (d == NULL)
    return fail_lib (child);
  if (vhd_get_type (d) != VHD_TYPE_DIFFERENCING) {
    vhd_close (d);
    return fail (child, "not a differencing disk: it has no parent to "
                 "change");
  }
  if (vhd_rebase (d, parent, unsafe ? VHD_REBASE_UNSAFE : 0) == -1) {
    fail_lib (child);
    vhd_close (d);
    return EXIT_FAILURE;
  }
  return flush_and_close (d, child);
}

int
cmd_rebase (int argc, char *argv[])
{
  const char *parent = NULL;
  bool unsafe = false;
  int c;

  optind = 1;
  while ((c = getopt_long (argc, argv, short_opts, long_opts, NULL)) != -1) {
    switch (c) {
    case 'h':
      usage ();
      return EXIT_SUCCESS;
    case OPT_PARENT:
      parent = optarg;
      break;
    case 'u':
    case OPT_UNSAFE:
      unsafe = true;
      break;
    default:
      return try_help (CMD);
    }
  }
  if (optind >= argc)
    return usage_error (CMD, "missing CHILD");
  if (optind + 1 < argc)
    return usage_error (CMD, "too many arguments");
  if (parent == NULL)
    return usage_error (CMD, "missing --parent NEWPARENT");
  if (*parent == '\0')
    return usage_error (CMD, "empty --parent");
  return rebase (argv[optind], parent, unsafe);
}
