/* vhdtool/cmd-create.c: "vhdtool create", a new fixed, dynamic or
 * differencing image.
 *
 * The format comes from -f, else from FILE's extension (.vhd and .avhd
 * are VHD, .vhdx and .avhdx VHDX).  Without --parent SIZE is required and
 * the type defaults to dynamic; with --parent the new disk is a
 * differencing child that takes the parent's size, so SIZE and -t are
 * usage errors.  The library refuses an existing FILE; a file this command
 * created and could not finish is removed again.
 */
#include <getopt.h>
#include <stdlib.h>
#include <unistd.h>

#include "vhdtool.h"

#define CMD "create"

struct create_args {
  struct image_params p;
  bool format_given;
  bool type_given;
  const char *file;
  const char *size;      /* the SIZE operand, NULL if none */
};

static const char short_opts[] = "f:t:b:h";
static const struct option long_opts[] = {
  { "help",            no_argument,       NULL, 'h' },
  { "format",          required_argument, NULL, 'f' },
  { "type",            required_argument, NULL, 't' },
  { "block-size",      required_argument, NULL, 'b' },
  { "logical-sector",  required_argument, NULL, OPT_LOGICAL_SECTOR },
  { "physical-sector", required_argument, NULL, OPT_PHYSICAL_SECTOR },
  { "parent",          required_argument, NULL, OPT_PARENT },
  { NULL, 0, NULL, 0 },
};

static void
usage (void)
{
  printf ("Usage: %s %s [-f vhd|vhdx] [-t fixed|dynamic] [-b BLOCK_SIZE]\n"
          "         [--logical-sector 512|4096] [--physical-sector 512|4096]\n"
          "         [--parent PARENT] FILE [SIZE]\n"
          "\n"
          "Create the image FILE of SIZE bytes (K, M, G, T: powers of 1024).\n"
          "\n"
          "  -f, --format FMT         vhd or vhdx (default: from FILE's "
          "extension)\n"
          "  -t, --type TYPE          fixed or dynamic (default: dynamic)\n"
          "  -b, --block-size SIZE    block size of a dynamic image\n"
          "      --logical-sector N   logical sector size, 512 or 4096\n"
          "      --physical-sector N  physical sector size, 512 or 4096\n"
          "      --parent PARENT      a differencing disk over PARENT; "
          "SIZE is\n"
          "                           the parent's and must be omitted\n"
          "  -h, --help               print this help and exit\n",
          PROGRAM_NAME, CMD);
}

/* One option; 0 to go on, -1 after a usage error. */
static int
parse_option (int c, struct create_args *a)
{
  int r = parse_image_option (CMD, c, optarg, &a->p);

  if (r != 1) {
    a->type_given |= c == 't';
    return r;
  }
  switch (c) {
  case 'f':
    if (parse_format (optarg, false, &a->p.format) == -1) {
      usage_error (CMD, "invalid format '%s' (vhd or vhdx)", optarg);
      return -1;
    }
    a->format_given = true;
    return 0;
  case OPT_PARENT:
    a->p.parent = optarg;
    return 0;
  default:
    try_help (CMD);
    return -1;
  }
}

/* The operands and how they combine with the options. */
static int
check_operands (int argc, char *argv[], struct create_args *a)
{
  if (optind >= argc)
    return usage_error (CMD, "missing FILE");
  a->file = argv[optind++];
  if (optind < argc)
    a->size = argv[optind++];
  if (optind < argc)
    return usage_error (CMD, "too many arguments");
  if (a->p.parent != NULL && a->size != NULL)
    return usage_error (CMD, "SIZE cannot be given with --parent "
                        "(the new disk takes the parent's size)");
  if (a->p.parent != NULL && a->type_given)
    return usage_error (CMD, "-t cannot be given with --parent "
                        "(the new disk is a differencing disk)");
  if (a->p.parent == NULL && a->size == NULL)
    return usage_error (CMD, "missing SIZE");
  if (a->size != NULL && parse_size (a->size, &a->p.size) == -1)
    return usage_error (CMD, "invalid size '%s'", a->size);
  return EXIT_SUCCESS;
}

static int
pick_format (struct create_args *a)
{
  if (a->format_given)
    return EXIT_SUCCESS;
  a->p.format = format_from_extension (a->file, false);
  if (a->p.format == -1)
    return usage_error (CMD, "cannot tell the format from the name '%s'; "
                        "use -f vhd or -f vhdx", a->file);
  return EXIT_SUCCESS;
}

static int
create (const struct create_args *a)
{
  struct vhd_create_opts *opts;
  struct vhd_disk *d;
  int r;

  opts = make_create_opts (&a->p, a->file);
  if (opts == NULL)
    return EXIT_FAILURE;
  d = create_image (a->file, opts);
  vhd_create_opts_free (opts);
  if (d == NULL)
    return EXIT_FAILURE;
  if (vhd_flush (d) == -1) {
    r = fail_lib (a->file);
    vhd_close (d);
    unlink (a->file);
    return r;
  }
  vhd_close (d);
  return EXIT_SUCCESS;
}

int
cmd_create (int argc, char *argv[])
{
  struct create_args a = { .p = { .type = VHD_TYPE_DYNAMIC } };
  int c;

  optind = 1;
  while ((c = getopt_long (argc, argv, short_opts, long_opts, NULL)) != -1) {
    if (c == 'h') {
      usage ();
      return EXIT_SUCCESS;
    }
    if (parse_option (c, &a) == -1)
      return EXIT_FAILURE;
  }
  if (check_operands (argc, argv, &a) != EXIT_SUCCESS
      || pick_format (&a) != EXIT_SUCCESS)
    return EXIT_FAILURE;
  return create (&a);
}
