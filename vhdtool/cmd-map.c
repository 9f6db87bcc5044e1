/* vhdtool/cmd-map.c: "vhdtool map", the allocation map of a disk.
 *
 * Walks the whole virtual disk with vhd_block_status () through the full
 * parent chain and prints one extent per run of equal (state, depth),
 * merging the adjacent extents the library reports separately (one per
 * block, typically).  An extent is "data" when some layer stores it
 * (neither VHD_STATE_HOLE nor VHD_STATE_ZERO), "zero" otherwise; depth is
 * the layer that supplies it (0 = FILE, the chain length = no layer).
 *
 * Human output is a qemu-img map style table; --json prints an array of
 * {"start", "length", "type", "data", "zero", "hole", "depth"} objects.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>

#include "vhdtool.h"

#define CMD "map"
#define STOP_OUTPUT 1          /* callback result: writing stdout failed */

struct extent {
  uint64_t start;
  uint64_t length;
  unsigned state;
  unsigned depth;
};

struct mapper {
  bool json;
  bool have;             /* cur holds an extent not printed yet */
  uint64_t printed;      /* extents printed so far */
  struct extent cur;
};

static const char short_opts[] = "h";
static const struct option long_opts[] = {
  { "help", no_argument, NULL, 'h' },
  { "json", no_argument, NULL, OPT_JSON },
  { NULL, 0, NULL, 0 },
};

static void
usage (void)
{
  printf ("Usage: %s %s [--json] FILE\n"
          "\n"
          "Print the extents covering the whole virtual disk of FILE: "
          "offset, length,\n"
          "type (data or zero) and depth (the layer of the parent chain "
          "that holds\n"
          "the extent: 0 is FILE itself).\n"
          "\n"
          "      --json   print a JSON array of extents\n"
          "  -h, --help   print this help and exit\n",
          PROGRAM_NAME, CMD);
}

static bool
is_data (unsigned state)
{
  return (state & (VHD_STATE_HOLE | VHD_STATE_ZERO)) == 0;
}

static void
print_extent (struct mapper *m)
{
  const struct extent *e = &m->cur;

  if (!m->json) {
    if (m->printed == 0)
      printf ("%-16s%-16s%-6s%s\n", "Offset", "Length", "Type", "Depth");
    printf ("%#-16" PRIx64 "%#-16" PRIx64 "%-6s%u\n", e->start, e->length,
            is_data (e->state) ? "data" : "zero", e->depth);
  }
  else {
    printf ("%s{ \"start\": %" PRIu64 ", \"length\": %" PRIu64 ", "
            "\"type\": \"%s\", \"data\": %s, \"zero\": %s, "
            "\"hole\": %s, \"depth\": %u }",
            m->printed ? ",\n  " : "[\n  ", e->start, e->length,
            is_data (e->state) ? "data" : "zero",
            is_data (e->state) ? "true" : "false",
            e->state & VHD_STATE_ZERO ? "true" : "false",
            e->state & VHD_STATE_HOLE ? "true" : "false", e->depth);
  }
  m->printed++;
}

static int
on_extent (void *opaque, uint64_t offset, uint64_t length, unsigned state,
           unsigned depth)
{
  struct mapper *m = opaque;
  struct extent *e = &m->cur;

  if (length == 0)
    return 0;
  if (m->have && e->start + e->length == offset && e->state == state
      && e->depth == depth) {
    e->length += length;
    return 0;
  }
  if (m->have)
    print_extent (m);
  *e = (struct extent) { offset, length, state, depth };
  m->have = true;
  return ferror (stdout) ? STOP_OUTPUT : 0;
}

static int
walk (const char *file, struct vhd_disk *d, struct mapper *m)
{
  int64_t size = vhd_get_size (d);
  int r;

  if (size < 0)
    return fail_lib (file);
  r = size ? vhd_block_status (d, 0, (uint64_t) size, on_extent, m) : 0;
  if (r == STOP_OUTPUT) {
    finish_stdout ();          /* reports the write error */
    return EXIT_FAILURE;
  }
  if (r != 0)
    return fail_lib (file);
  if (m->have)
    print_extent (m);
  if (m->json)
    printf (m->printed ? "\n]\n" : "[]\n");
  return EXIT_SUCCESS;
}

static int
map (const char *file, bool json)
{
  struct mapper m = { .json = json };
  struct vhd_disk *d = vhd_open (file, VHD_OPEN_RDONLY);
  int r;

  if (d == NULL)
    return fail_lib (file);
  r = walk (file, d, &m);
  vhd_close (d);
  return r;
}

int
cmd_map (int argc, char *argv[])
{
  bool json;
  const char *file;
  int r = parse_flag_operand (argc, argv, CMD, short_opts, long_opts, OPT_JSON,
                              usage, "FILE", &json, &file);

  return r >= 0 ? r : map (file, json);
}
