/* vhdtool/cmd-convert.c: "vhdtool convert", copy a virtual disk into a
 * new raw, VHD or VHDX image, or as raw bytes to standard output.
 *
 * SRC is opened read-only with its whole chain, so it is never modified.
 * DST's format comes from -O, else from its extension (.img and .raw are
 * raw, .vhd VHD, .vhdx VHDX); DST must not exist.  The new image has
 * SRC's virtual size (a VHDX also takes SRC's sector sizes unless told
 * otherwise, and a block size that suits SRC: vhdx_block_size) and is
 * filled by vhd_copy (), which leaves zero ranges
 * unallocated (sparse in raw).  On any failure the partly written DST is
 * removed.
 *
 * DST "-" streams the raw disk to standard output in 1 MiB reads; a
 * closed pipe is reported as an error, not a silent SIGPIPE death.
 * Progress (-p) goes to stdout, or to stderr when stdout carries the disk.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vhdtool.h"

#define CMD "convert"
#define CHUNK (1024 * 1024)
#define STDOUT_NAME "standard output"

enum cache_mode { CACHE_DEFAULT, CACHE_NONE, CACHE_WRITEBACK };

struct convert_args {
  struct image_params p;     /* of DST; format -1 until known */
  enum cache_mode cache;     /* of DST */
  bool progress;
  const char *src;
  const char *dst;
};

static const char short_opts[] = "O:t:b:ph";
static const struct option long_opts[] = {
  { "help",            no_argument,       NULL, 'h' },
  { "output-format",   required_argument, NULL, 'O' },
  { "type",            required_argument, NULL, 't' },
  { "block-size",      required_argument, NULL, 'b' },
  { "logical-sector",  required_argument, NULL, OPT_LOGICAL_SECTOR },
  { "physical-sector", required_argument, NULL, OPT_PHYSICAL_SECTOR },
  { "progress",        no_argument,       NULL, 'p' },
  { "cache",           required_argument, NULL, OPT_CACHE },
  { NULL, 0, NULL, 0 },
};

static void
usage (void)
{
  printf ("Usage: %s %s [-O raw|vhd|vhdx] [-t fixed|dynamic] "
          "[-b BLOCK_SIZE]\n"
          "         [--logical-sector N] [--physical-sector N] "
          "[--cache MODE] [-p]\n"
          "         SRC DST\n"
          "\n"
          "Copy the virtual disk SRC (read through its whole parent chain) "
          "into the\n"
          "new image DST.  DST \"-\" writes the raw disk to standard "
          "output.\n"
          "\n"
          "  -O, --output-format FMT  raw, vhd or vhdx (default: from DST's "
          "extension:\n"
          "                           .img/.raw, .vhd, .vhdx)\n"
          "  -t, --type TYPE          fixed or dynamic (default: dynamic)\n"
          "  -b, --block-size SIZE    block size of a dynamic DST (VHDX "
          "default: SRC's,\n"
          "                           else 8M-64M by size, as qemu-img)\n"
          "      --logical-sector N   logical sector size, 512 or 4096\n"
          "      --physical-sector N  physical sector size, 512 or 4096\n"
          "      --cache MODE         none: write DST with O_DIRECT; "
          "writeback: through\n"
          "                           the page cache (default: none where "
          "DST's data\n"
          "                           is page aligned and the file system "
          "allows it)\n"
          "  -p, --progress           show progress\n"
          "  -h, --help               print this help and exit\n",
          PROGRAM_NAME, CMD);
}

/* One option; 0 to go on, -1 after a usage error. */
static int
parse_option (int c, struct convert_args *a)
{
  int r = parse_image_option (CMD, c, optarg, &a->p);

  if (r != 1)
    return r;
  switch (c) {
  case 'O':
    if (parse_format (optarg, true, &a->p.format) == -1) {
      usage_error (CMD, "invalid format '%s' (raw, vhd or vhdx)", optarg);
      return -1;
    }
    return 0;
  case 'p':
    a->progress = true;
    return 0;
  case OPT_CACHE:
    if (strcmp (optarg, "none") == 0)
      a->cache = CACHE_NONE;
    else if (strcmp (optarg, "writeback") == 0)
      a->cache = CACHE_WRITEBACK;
    else {
      usage_error (CMD, "invalid cache mode '%s' (none or writeback)",
                   optarg);
      return -1;
    }
    return 0;
  default:
    try_help (CMD);
    return -1;
  }
}

static int
check_operands (int argc, char *argv[], struct convert_args *a)
{
  if (argc - optind < 2)
    return usage_error (CMD, "missing %s", optind < argc ? "DST" : "SRC");
  if (argc - optind > 2)
    return usage_error (CMD, "too many arguments");
  a->src = argv[optind];
  a->dst = argv[optind + 1];
  if (strcmp (a->dst, "-") == 0) {
    if (a->p.format != -1 && a->p.format != VHD_FORMAT_RAW)
      return usage_error (CMD, "standard output can only be written raw");
    if (a->cache != CACHE_DEFAULT)
      return usage_error (CMD, "--cache is for an image file, not standard "
                          "output");
    a->p.format = VHD_FORMAT_RAW;
  }
  if (a->p.format == -1)
    a->p.format = format_from_extension (a->dst, true);
  if (a->p.format == -1)
    return usage_error (CMD, "cannot tell the format from the name '%s'; "
                        "use -O raw, -O vhd or -O vhdx", a->dst);
  return EXIT_SUCCESS;
}

/* Writing an image. */

/* The block size of a dynamic VHDX when none was given.  SRC's, when a
 * VHDX can have it (1 MiB to 256 MiB): the allocation then carries over
 * block for block.  Else by size, as qemu-img chooses, so that a sparse
 * disk costs no more file than qemu-img's output: 8 MiB up to 1 GiB,
 * 16 MiB up to 100 GiB, 32 MiB (the format's default) up to 32 TiB,
 * 64 MiB beyond. */
static uint32_t
vhdx_block_size (struct vhd_disk *src, uint64_t size)
{
  const uint64_t GiB = UINT64_C (1) << 30;
  int64_t bs = vhd_get_block_size (src);

  if (bs >= (1 << 20) && bs <= (256 << 20) && (bs & (bs - 1)) == 0)
    return (uint32_t) bs;
  if (size > (UINT64_C (32) << 40))
    return 64U << 20;
  if (size > 100 * GiB)
    return 32U << 20;
  return size > GiB ? 16U << 20 : 8U << 20;
}

/* Size and, for VHDX, sector and block sizes that were not given. */
static int
inherit (struct image_params *p, struct vhd_disk *src, const char *file)
{
  int64_t size = vhd_get_size (src);

  if (size < 0)
    return fail_lib (file);
  p->size = (uint64_t) size;
  if (p->format != VHD_FORMAT_VHDX)
    return EXIT_SUCCESS;
  if (p->logical == 0 && p->physical == 0) {
    p->logical = (uint32_t) vhd_get_logical_sector_size (src);
    p->physical = (uint32_t) vhd_get_physical_sector_size (src);
  }
  if (p->type == VHD_TYPE_DYNAMIC && p->block_size == 0)
    p->block_size = vhdx_block_size (src, p->size);
  return EXIT_SUCCESS;
}

static int
copy (struct vhd_disk *src, struct vhd_disk *dst, const struct convert_args *a)
{
  struct progress prog = { 0 };
  int r;

  if (a->progress)
    progress_init (&prog, stdout);
  r = vhd_copy (src, dst, a->progress ? progress_update : NULL, &prog);
  if (a->progress) {
    if (r == 0)
      progress_finish (&prog);
    else
      putchar ('\n');
  }
  if (r == -1)
    return fail_lib (a->dst);
  if (vhd_flush (dst) == -1)
    return fail_lib (a->dst);
  return EXIT_SUCCESS;
}

/* DST, opened for the cache mode asked for.  By default its data goes
 * past the host page cache (O_DIRECT) where it sits on the page grid: a
 * convert writes each byte once and flushes at the end, so caching the
 * output only costs a copy and page allocations (half the time of
 * raw->vhdx and vhdx->raw, docs/performance.md).  A dynamic VHD keeps
 * its data beside its sector bitmaps, off the grid: buffered.  A file
 * system without O_DIRECT gets buffered writes, unless --cache=none
 * asked for direct ones. */
static struct vhd_disk *
create_output (const struct convert_args *a, struct vhd_create_opts *opts)
{
  struct vhd_disk *d;

  if (a->cache == CACHE_WRITEBACK
      || (a->cache == CACHE_DEFAULT && a->p.format == VHD_FORMAT_VHD
          && a->p.type != VHD_TYPE_FIXED))
    return create_image (a->dst, opts);
  if (vhd_create_opts_set_open_flags (opts, VHD_OPEN_DIRECT) == -1) {
    fail_lib (a->dst);
    return NULL;
  }
  if (a->cache == CACHE_NONE)
    return create_image (a->dst, opts);
  d = vhd_create (a->dst, opts);
  if (d == NULL && vhd_get_errno () == ENOTSUP
      && vhd_create_opts_set_open_flags (opts, 0) == 0)
    return create_image (a->dst, opts);
  if (d == NULL)
    create_failed (a->dst);
  return d;
}

static int
to_image (struct vhd_disk *src, struct convert_args *a)
{
  struct vhd_create_opts *opts;
  struct vhd_disk *dst;
  int r;

  if (inherit (&a->p, src, a->src) != EXIT_SUCCESS)
    return EXIT_FAILURE;
  opts = make_create_opts (&a->p, a->dst);
  if (opts == NULL)
    return EXIT_FAILURE;
  dst = create_output (a, opts);
  vhd_create_opts_free (opts);
  if (dst == NULL)
    return EXIT_FAILURE;
  r = copy (src, dst, a);
  vhd_close (dst);
  if (r != EXIT_SUCCESS)
    unlink (a->dst);
  return r;
}

/* Writing standard output. */

static int
write_all (int fd, const char *buf, size_t len)
{
  ssize_t n;

  while (len > 0) {
    n = write (fd, buf, len);
    if (n == -1 && errno == EINTR)
      continue;
    if (n == -1)
      return -1;
    buf += n;
    len -= (size_t) n;
  }
  return 0;
}

static int
write_error (int err)
{
  if (err == EPIPE)
    return fail (STDOUT_NAME, "closed before the whole disk was written "
                 "(broken pipe)");
  return fail (STDOUT_NAME, "write error: %s", strerror (err));
}

/* Copy SIZE bytes of SRC to stdout through BUF (CHUNK bytes). */
static int
stream (struct vhd_disk *src, const struct convert_args *a, char *buf,
        uint64_t size)
{
  struct progress prog = { 0 };
  uint64_t off;
  size_t n;
  int err;

  if (a->progress)
    progress_init (&prog, stderr);
  for (off = 0; off < size; off += n) {
    n = size - off < CHUNK ? (size_t) (size - off) : CHUNK;
    if (vhd_pread (src, buf, n, off) == -1) {
      if (a->progress)
        fputc ('\n', stderr);
      return fail_lib (a->src);
    }
    if (write_all (STDOUT_FILENO, buf, n) == -1) {
      err = errno;
      if (a->progress)
        fputc ('\n', stderr);
      return write_error (err);
    }
    if (a->progress)
      progress_update (&prog, off + n, size);
  }
  if (a->progress)
    progress_finish (&prog);
  return EXIT_SUCCESS;
}

static int
to_stdout (struct vhd_disk *src, const struct convert_args *a)
{
  int64_t size = vhd_get_size (src);
  char *buf;
  int r;

  if (size < 0)
    return fail_lib (a->src);
  if (isatty (STDOUT_FILENO))
    return fail (STDOUT_NAME, "is a terminal; not writing a disk image "
                 "to it (redirect or pipe it)");
  buf = malloc (CHUNK);
  if (buf == NULL)
    return fail (a->src, "%s", strerror (errno));
  signal (SIGPIPE, SIG_IGN);
  r = stream (src, a, buf, (uint64_t) size);
  free (buf);
  return r;
}

static int
convert (struct convert_args *a)
{
  struct vhd_disk *src = vhd_open (a->src, VHD_OPEN_RDONLY);
  int r;

  if (src == NULL)
    return fail_lib (a->src);
  if (strcmp (a->dst, "-") == 0)
    r = to_stdout (src, a);
  else
    r = to_image (src, a);
  vhd_close (src);
  return r;
}

int
cmd_convert (int argc, char *argv[])
{
  struct convert_args a = { .p = { .format = -1, .type = VHD_TYPE_DYNAMIC } };
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
  if (check_operands (argc, argv, &a) != EXIT_SUCCESS)
    return EXIT_FAILURE;
  return convert (&a);
}
