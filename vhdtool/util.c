/* vhdtool/util.c: helpers shared by the subcommands.
 *
 * Owns the spelling of everything the commands have in common:
 *   - sizes: a plain byte count, or a count followed by K, M, G or T
 *     (powers of 1024, either case), each optionally followed by "B" or
 *     "iB" ("4M", "4MB" and "4MiB" are the same); "512B" is 512 bytes.
 *     No fractions, signs or spaces.
 *   - format, type and sector-size names, and formats from extensions;
 *   - error lines: "vhdtool: FILE: message" from the library's per-thread
 *     error, with the library's own "vhd_func: FILE: " prefix dropped so
 *     the file is not named twice;
 *   - JSON strings (escaped, invalid UTF-8 replaced by U+FFFD);
 *   - qemu-img style progress lines.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "vhdtool.h"

/* Sizes. */

static int
unit_shift (char c)
{
  switch (toupper ((unsigned char) c)) {
  case 'K': return 10;
  case 'M': return 20;
  case 'G': return 30;
  case 'T': return 40;
  default:  return -1;
  }
}

int
parse_size (const char *s, uint64_t *out)
{
  char *end;
  unsigned long long v;
  int shift;

  if (!isdigit ((unsigned char) s[0]))
    return -1;
  errno = 0;
  v = strtoull (s, &end, 10);
  if (errno != 0)
    return -1;
  shift = unit_shift (*end);
  if (shift >= 0) {
    end++;
    if (strcmp (end, "iB") == 0 || strcmp (end, "B") == 0)
      end += strlen (end);
  }
  else {
    shift = 0;
    if (strcmp (end, "B") == 0)
      end++;
  }
  if (*end != '\0' || v > (UINT64_MAX >> shift))
    return -1;
  *out = (uint64_t) v << shift;
  return 0;
}

int
parse_block_size (const char *s, uint32_t *out)
{
  uint64_t v;

  if (parse_size (s, &v) == -1 || v == 0 || v > UINT32_MAX)
    return -1;
  *out = (uint32_t) v;
  return 0;
}

int
parse_sector_size (const char *s, uint32_t *out)
{
  if (strcmp (s, "512") == 0)
    *out = 512;
  else if (strcmp (s, "4096") == 0 || strcasecmp (s, "4K") == 0)
    *out = 4096;
  else
    return -1;
  return 0;
}

static int
bad_option (const char *cmd, const char *what, const char *arg)
{
  usage_error (cmd, "invalid %s '%s'", what, arg);
  return -1;
}

int
parse_image_option (const char *cmd, int c, const char *arg,
                    struct image_params *p)
{
  switch (c) {
  case 't':
    if (parse_type (arg, &p->type) == -1)
      return bad_option (cmd, "type (fixed or dynamic)", arg);
    return 0;
  case 'b':
    if (parse_block_size (arg, &p->block_size) == -1)
      return bad_option (cmd, "block size", arg);
    return 0;
  case OPT_LOGICAL_SECTOR:
    if (parse_sector_size (arg, &p->logical) == -1)
      return bad_option (cmd, "logical sector size (512 or 4096)", arg);
    return 0;
  case OPT_PHYSICAL_SECTOR:
    if (parse_sector_size (arg, &p->physical) == -1)
      return bad_option (cmd, "physical sector size (512 or 4096)", arg);
    return 0;
  default:
    return 1;
  }
}

/* Names. */

static const struct {
  const char *name;
  int format;
} format_names[] = {
  { "raw",  VHD_FORMAT_RAW },
  { "vhd",  VHD_FORMAT_VHD },
  { "vpc",  VHD_FORMAT_VHD },   /* qemu's name for it */
  { "vhdx", VHD_FORMAT_VHDX },
};

static const struct {
  const char *ext;
  int format;
} extensions[] = {
  { ".vhd",   VHD_FORMAT_VHD },
  { ".avhd",  VHD_FORMAT_VHD },
  { ".vhdx",  VHD_FORMAT_VHDX },
  { ".avhdx", VHD_FORMAT_VHDX },
  { ".img",   VHD_FORMAT_RAW },
  { ".raw",   VHD_FORMAT_RAW },
};

#define N_ELEMS(a) (sizeof (a) / sizeof ((a)[0]))

int
parse_format (const char *s, bool allow_raw, int *out)
{
  size_t i;

  for (i = 0; i < N_ELEMS (format_names); i++) {
    if (strcasecmp (s, format_names[i].name) == 0) {
      if (format_names[i].format == VHD_FORMAT_RAW && !allow_raw)
        return -1;
      *out = format_names[i].format;
      return 0;
    }
  }
  return -1;
}

int
parse_type (const char *s, int *out)
{
  if (strcasecmp (s, "fixed") == 0)
    *out = VHD_TYPE_FIXED;
  else if (strcasecmp (s, "dynamic") == 0)
    *out = VHD_TYPE_DYNAMIC;
  else
    return -1;
  return 0;
}

int
format_from_extension (const char *path, bool allow_raw)
{
  const char *dot = strrchr (path, '.');
  size_t i;

  if (dot == NULL || strchr (dot, '/') != NULL)
    return -1;
  for (i = 0; i < N_ELEMS (extensions); i++) {
    if (strcasecmp (dot, extensions[i].ext) == 0) {
      if (extensions[i].format == VHD_FORMAT_RAW && !allow_raw)
        return -1;
      return extensions[i].format;
    }
  }
  return -1;
}

const char *
format_name (int format)
{
  switch (format) {
  case VHD_FORMAT_RAW:  return "raw";
  case VHD_FORMAT_VHD:  return "vhd";
  case VHD_FORMAT_VHDX: return "vhdx";
  default:              return "unknown";
  }
}

const char *
type_name (int type)
{
  switch (type) {
  case VHD_TYPE_FIXED:        return "fixed";
  case VHD_TYPE_DYNAMIC:      return "dynamic";
  case VHD_TYPE_DIFFERENCING: return "differencing";
  default:                    return "unknown";
  }
}

/* Print VALUE with at most three significant digits, no trailing zeros. */
void
human_size (uint64_t bytes, char *buf, size_t len)
{
  static const char *const units[] =
    { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
  size_t u = 0;
  double v = (double) bytes;
  char *p;

  while (v >= 1024 && u + 1 < N_ELEMS (units)) {
    v /= 1024;
    u++;
  }
  snprintf (buf, len, "%.*f", v < 10 ? 2 : v < 100 ? 1 : 0, v);
  if (strchr (buf, '.') != NULL) {
    p = buf + strlen (buf) - 1;
    while (*p == '0')
      *p-- = '\0';
    if (*p == '.')
      *p = '\0';
  }
  snprintf (buf + strlen (buf), len - strlen (buf), " %s", units[u]);
}

/* Errors. */

int
usage_error (const char *cmd, const char *fs, ...)
{
  va_list ap;

  fprintf (stderr, "%s %s: ", PROGRAM_NAME, cmd);
  va_start (ap, fs);
  vfprintf (stderr, fs, ap);
  va_end (ap);
  fputc ('\n', stderr);
  return try_help (cmd);
}

int
try_help (const char *cmd)
{
  fprintf (stderr, "Try '%s %s --help' for more information.\n",
           PROGRAM_NAME, cmd);
  return EXIT_FAILURE;
}

int
fail (const char *file, const char *fs, ...)
{
  va_list ap;

  fprintf (stderr, "%s: %s: ", PROGRAM_NAME, file);
  va_start (ap, fs);
  vfprintf (stderr, fs, ap);
  va_end (ap);
  fputc ('\n', stderr);
  return EXIT_FAILURE;
}

const char *
lib_message (const char *file)
{
  const char *msg = vhd_get_error ();
  const char *colon;
  size_t n;

  if (msg == NULL || *msg == '\0') {
    int err = vhd_get_errno ();
    return strerror (err ? err : EIO);
  }
  /* Drop the "vhd_func: " context the library puts first. */
  colon = strstr (msg, ": ");
  if (strncmp (msg, "vhd_", 4) == 0 && colon != NULL
      && strspn (msg, "abcdefghijklmnopqrstuvwxyz0123456789_")
         == (size_t) (colon - msg))
    msg = colon + 2;
  /* And the file name we print ourselves. */
  n = strlen (file);
  if (strncmp (msg, file, n) == 0 && strncmp (msg + n, ": ", 2) == 0)
    msg += n + 2;
  return msg;
}

int
fail_lib (const char *file)
{
  return fail (file, "%s", lib_message (file));
}

void
warn_lib (const char *file)
{
  fprintf (stderr, "%s: %s: warning: %s\n", PROGRAM_NAME, file,
           lib_message (file));
}

int
finish_stdout (void)
{
  if (fflush (stdout) == EOF || ferror (stdout))
    return fail ("standard output", "write error: %s", strerror (errno));
  return EXIT_SUCCESS;
}

int
flush_and_close (struct vhd_disk *d, const char *file)
{
  int r = EXIT_SUCCESS;

  if (vhd_flush (d) == -1)
    r = fail_lib (file);
  vhd_close (d);
  return r;
}

/* Image creation, shared by create and convert. */

static int
apply_params (struct vhd_create_opts *o, const struct image_params *p)
{
  uint32_t logical = p->logical ? p->logical : p->physical ? 512 : 0;
  uint32_t physical = p->physical ? p->physical : logical;

  if (vhd_create_opts_set_format (o, p->format) == -1)
    return -1;
  if (p->parent != NULL) {
    if (vhd_create_opts_set_parent (o, p->parent) == -1)
      return -1;
  }
  else if (vhd_create_opts_set_type (o, p->type) == -1
           || vhd_create_opts_set_size (o, p->size) == -1)
    return -1;
  if (p->block_size != 0
      && vhd_create_opts_set_block_size (o, p->block_size) == -1)
    return -1;
  if (logical != 0
      && vhd_create_opts_set_sector_size (o, logical, physical) == -1)
    return -1;
  return 0;
}

struct vhd_create_opts *
make_create_opts (const struct image_params *p, const char *file)
{
  struct vhd_create_opts *o = vhd_create_opts_new ();

  if (o == NULL) {
    fail_lib (file);
    return NULL;
  }
  if (apply_params (o, p) == -1) {
    fail_lib (file);
    vhd_create_opts_free (o);
    return NULL;
  }
  return o;
}

void
create_failed (const char *file)
{
  if (vhd_get_errno () == EEXIST)
    fail (file, "file already exists (not overwriting it)");
  else
    fail_lib (file);
}

struct vhd_disk *
create_image (const char *file, const struct vhd_create_opts *opts)
{
  struct vhd_disk *d = vhd_create (file, opts);

  if (d == NULL)
    create_failed (file);
  return d;
}

/* JSON. */

/* Length of the valid UTF-8 sequence at S, or 0 when it is not one. */
static size_t
utf8_len (const unsigned char *s)
{
  size_t n, i;
  uint32_t cp;

  if (s[0] < 0x80)
    return 1;
  if (s[0] >= 0xc2 && s[0] <= 0xdf)
    n = 2, cp = s[0] & 0x1f;
  else if ((s[0] & 0xf0) == 0xe0)
    n = 3, cp = s[0] & 0x0f;
  else if (s[0] >= 0xf0 && s[0] <= 0xf4)
    n = 4, cp = s[0] & 0x07;
  else
    return 0;
  for (i = 1; i < n; i++) {
    if ((s[i] & 0xc0) != 0x80)
      return 0;
    cp = cp << 6 | (s[i] & 0x3f);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff))
      || (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return n;
}

static void
json_char (FILE *fp, unsigned char c)
{
  switch (c) {
  case '"':  fputs ("\\\"", fp); break;
  case '\\': fputs ("\\\\", fp); break;
  case '\b': fputs ("\\b", fp); break;
  case '\f': fputs ("\\f", fp); break;
  case '\n': fputs ("\\n", fp); break;
  case '\r': fputs ("\\r", fp); break;
  case '\t': fputs ("\\t", fp); break;
  default:
    if (c < 0x20 || c == 0x7f)
      fprintf (fp, "\\u%04x", c);
    else
      fputc (c, fp);
  }
}

void
json_string (FILE *fp, const char *s)
{
  const unsigned char *p = (const unsigned char *) s;
  size_t n;

  if (s == NULL) {
    fputs ("null", fp);
    return;
  }
  fputc ('"', fp);
  while (*p) {
    n = utf8_len (p);
    if (n == 0) {
      fputs ("\\ufffd", fp);
      p++;
    }
    else if (n == 1)
      json_char (fp, *p++);
    else {
      fwrite (p, 1, n, fp);
      p += n;
    }
  }
  fputc ('"', fp);
}

/* Progress. */

void
progress_init (struct progress *p, FILE *fp)
{
  p->fp = fp;
  p->last = -1;
  progress_update (p, 0, 1);
}

void
progress_update (void *opaque, uint64_t done, uint64_t total)
{
  struct progress *p = opaque;
  int now = 10000;

  if (total != 0 && done < total)
    now = (int) ((double) done * 10000 / (double) total);
  if (now == p->last)
    return;
  p->last = now;
  fprintf (p->fp, "    (%d.%02d/100%%)\r", now / 100, now % 100);
  fflush (p->fp);
}

void
progress_finish (struct progress *p)
{
  progress_update (p, 1, 1);
  fputc ('\n', p->fp);
  fflush (p->fp);
}

void
progress_abort (struct progress *p)
{
  fputc ('\n', p->fp);
  fflush (p->fp);
}

int
parse_flag_operand (int argc, char *argv[], const char *cmd,
                    const char *short_opts, const struct option *long_opts,
                    int flag_opt, void (*usage) (void),
                    const char *operand_name, bool *flag,
                    const char **operand)
{
  int c;

  *flag = false;
  optind = 1;
  while ((c = getopt_long (argc, argv, short_opts, long_opts, NULL)) != -1) {
    if (c == 'h') {
      usage ();
      return EXIT_SUCCESS;
    }
    if (c != flag_opt)
      return try_help (cmd);
    *flag = true;
  }
  return take_operand (argc, argv, cmd, operand_name, operand);
}

int
take_operand (int argc, char *argv[], const char *cmd,
              const char *operand_name, const char **operand)
{
  if (optind >= argc)
    return usage_error (cmd, "missing %s", operand_name);
  if (optind + 1 < argc)
    return usage_error (cmd, "too many arguments");
  *operand = argv[optind];
  return -1;
}
