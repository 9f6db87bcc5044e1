/* vhdtool/cmd-info.c: "vhdtool info", what an image is.
 *
 * Opens FILE read-only with its whole parent chain.  When that fails but
 * FILE itself opens without its parent (VHD_OPEN_NO_PARENT) and is a
 * differencing disk, the parent is what is missing or wrong: info warns on
 * stderr, still describes FILE, exits 0 and says "parent_missing": true
 * in JSON.  Any other open failure is an error.
 *
 * Output: aligned "key: value" lines (like qemu-img info), or with --json
 * one object with the keys DESIGN.md lists.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "vhdtool.h"

#define CMD "info"
#define KEY_WIDTH 22

struct facts {
  const char *file;
  struct vhd_disk *disk;
  char *parent_error;    /* why the chain did not open, NULL if it did */
  int format;
  int type;
  int64_t virtual_size;
  int64_t file_size;
  int64_t allocated;
  int64_t block_size;
  int logical;
  int physical;
  bool has_id;
  char id[37];
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
          "Print the format, type, sizes, identity and parent chain of the "
          "image FILE.\n"
          "\n"
          "      --json   print one JSON object\n"
          "  -h, --help   print this help and exit\n",
          PROGRAM_NAME, CMD);
}

/* Open FILE's chain, or FILE alone when only its parent is the problem. */
static int
open_image (struct facts *f)
{
  char *why;

  f->disk = vhd_open (f->file, VHD_OPEN_RDONLY);
  if (f->disk != NULL)
    return 0;
  why = strdup (lib_message (f->file));
  if (why == NULL) {
    fail_lib (f->file);
    return -1;
  }
  f->disk = vhd_open (f->file, VHD_OPEN_RDONLY | VHD_OPEN_NO_PARENT);
  if (f->disk == NULL || vhd_get_type (f->disk) != VHD_TYPE_DIFFERENCING) {
    fail (f->file, "%s", why);
    vhd_close (f->disk);
    free (why);
    return -1;
  }
  fprintf (stderr, "%s: %s: warning: %s (describing it without its parent)\n",
           PROGRAM_NAME, f->file, why);
  f->parent_error = why;
  return 0;
}

static int
gather (struct facts *f)
{
  struct vhd_disk *d = f->disk;

  f->format = vhd_get_format (d);
  f->type = vhd_get_type (d);
  f->virtual_size = vhd_get_size (d);
  f->file_size = vhd_get_file_size (d);
  f->allocated = vhd_get_allocated_bytes (d);
  f->block_size = vhd_get_block_size (d);
  f->logical = vhd_get_logical_sector_size (d);
  f->physical = vhd_get_physical_sector_size (d);
  /* The nil UUID is what a raw file (or an image without one) has. */
  f->has_id = vhd_get_id (d, f->id) == 0
    && strcmp (f->id, "00000000-0000-0000-0000-000000000000") != 0;
  if (f->format < 0 || f->type < 0 || f->virtual_size < 0
      || f->file_size < 0 || f->allocated < 0 || f->block_size < 0
      || f->logical < 0 || f->physical < 0)
    return fail_lib (f->file);
  return EXIT_SUCCESS;
}

/* The creator, or NULL when the image records none (raw). */
static const char *
creator (struct vhd_disk *d)
{
  const char *s = vhd_get_creator (d);

  return s != NULL && *s != '\0' ? s : NULL;
}

/* JSON. */

static void
json_chain (struct vhd_disk *d)
{
  const char *sep = "";

  printf ("  \"chain\": [");
  for (; d != NULL; d = vhd_get_parent (d)) {
    printf ("%s\n    ", sep);
    json_string (stdout, vhd_get_filename (d));
    sep = ",";
  }
  printf ("\n  ]");
}

static void
print_json (const struct facts *f)
{
  printf ("{\n  \"filename\": ");
  json_string (stdout, f->file);
  printf (",\n  \"format\": \"%s\",\n", format_name (f->format));
  printf ("  \"type\": \"%s\",\n", type_name (f->type));
  printf ("  \"virtual_size\": %" PRId64 ",\n", f->virtual_size);
  printf ("  \"file_size\": %" PRId64 ",\n", f->file_size);
  printf ("  \"allocated_bytes\": %" PRId64 ",\n", f->allocated);
  printf ("  \"block_size\": %" PRId64 ",\n", f->block_size);
  printf ("  \"logical_sector_size\": %d,\n", f->logical);
  printf ("  \"physical_sector_size\": %d,\n", f->physical);
  printf ("  \"id\": ");
  json_string (stdout, f->has_id ? f->id : NULL);
  printf (",\n  \"creator\": ");
  json_string (stdout, creator (f->disk));
  printf (",\n  \"parent\": ");
  json_string (stdout, vhd_get_parent_hint (f->disk));
  printf (",\n  \"parent_missing\": %s,\n",
          f->parent_error ? "true" : "false");
  if (f->parent_error != NULL) {
    printf ("  \"parent_error\": ");
    json_string (stdout, f->parent_error);
    printf (",\n");
  }
  json_chain (f->disk);
  if (f->format == VHD_FORMAT_VHDX)
    printf (",\n  \"log_dirty\": %s",
            vhd_get_log_dirty (f->disk) == 1 ? "true" : "false");
  printf ("\n}\n");
}

/* Human-readable. */

static void ATTR_PRINTF (2, 3)
line (const char *key, const char *fs, ...)
{
  va_list ap;

  /* An empty key continues the previous line's list (chain). */
  printf ("%s%s%*s", key, *key ? ":" : " ",
          (int) (KEY_WIDTH - strlen (key) - 1), "");
  va_start (ap, fs);
  vprintf (fs, ap);
  va_end (ap);
  putchar ('\n');
}

static void
size_line (const char *key, int64_t bytes)
{
  char human[32];

  human_size ((uint64_t) bytes, human, sizeof human);
  line (key, "%s (%" PRId64 " bytes)", human, bytes);
}

static void
print_chain (struct vhd_disk *d)
{
  const char *key = "chain";

  for (; d != NULL; d = vhd_get_parent (d)) {
    line (key, "%s", vhd_get_filename (d));
    key = "";
  }
}

static void
print_human (const struct facts *f)
{
  const char *parent = vhd_get_parent_hint (f->disk);
  const char *by = creator (f->disk);

  line ("image", "%s", f->file);
  line ("format", "%s", format_name (f->format));
  line ("type", "%s", type_name (f->type));
  size_line ("virtual size", f->virtual_size);
  size_line ("file size", f->file_size);
  size_line ("allocated", f->allocated);
  if (f->block_size > 0)
    size_line ("block size", f->block_size);
  line ("logical sector size", "%d", f->logical);
  line ("physical sector size", "%d", f->physical);
  line ("id", "%s", f->has_id ? f->id : "-");
  line ("creator", "%s", by ? by : "-");
  if (f->format == VHD_FORMAT_VHDX)
    line ("log dirty", "%s", vhd_get_log_dirty (f->disk) == 1 ? "yes" : "no");
  if (parent != NULL)
    line ("parent", "%s%s", parent, f->parent_error ? " (missing)" : "");
  print_chain (f->disk);
}

static int
info (const char *file, bool json)
{
  struct facts f = { .file = file };
  int r;

  if (open_image (&f) == -1)
    return EXIT_FAILURE;
  r = gather (&f);
  if (r == EXIT_SUCCESS) {
    if (json)
      print_json (&f);
    else
      print_human (&f);
  }
  vhd_close (f.disk);
  free (f.parent_error);
  return r;
}

int
cmd_info (int argc, char *argv[])
{
  bool json;
  const char *file;
  int r = parse_flag_operand (argc, argv, CMD, short_opts, long_opts, OPT_JSON,
                              usage, "FILE", &json, &file);

  return r >= 0 ? r : info (file, json);
}
