/* vhdtool/cmd-resize.c: "vhdtool resize", change the virtual size.
 *
 * SIZE is absolute, or relative to the current size with a leading "+" or
 * "-".  "-1M" would look like an option to getopt, so options are parsed
 * one argument at a time: an argument that is a sign followed by a digit
 * is always an operand (resize has no digit options), "--" ends the
 * options, and options may still follow the operands ("F 1G --shrink").
 *
 * A size below the current one needs --shrink: without it nothing is
 * opened for writing beyond reading the size, and the error says to use
 * --shrink.  The library refuses a shrink that would cut off data
 * (ENOTEMPTY) and leaves the file untouched.  VHD and VHDX sizes are
 * rounded up to whole sectors by the library.
 */
#include <ctype.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "vhdtool.h"

#define CMD "resize"

struct resize_args {
  bool shrink;
  const char *operands[2];
  int n_operands;
  int sign;              /* 0 absolute, +1 grow by, -1 shrink by */
  uint64_t amount;
};

static const char short_opts[] = "+h";
static const struct option long_opts[] = {
  { "help",   no_argument, NULL, 'h' },
  { "shrink", no_argument, NULL, OPT_SHRINK },
  { NULL, 0, NULL, 0 },
};

static void
usage (void)
{
  printf ("Usage: %s %s [--shrink] FILE SIZE|+SIZE|-SIZE\n"
          "\n"
          "Set the virtual size of the image FILE to SIZE, or grow or "
          "shrink it by SIZE\n"
          "(K, M, G, T: powers of 1024).  New space reads as zeros.  "
          "Shrinking is\n"
          "refused when data lies past the new end.\n"
          "\n"
          "      --shrink  allow a size smaller than the current one\n"
          "  -h, --help    print this help and exit\n",
          PROGRAM_NAME, CMD);
}

/* "-1M", "+2G": a signed size, never an option. */
static bool
is_signed_size (const char *s)
{
  return (s[0] == '-' || s[0] == '+') && isdigit ((unsigned char) s[1]);
}

static int
add_operand (struct resize_args *a, const char *s)
{
  if (a->n_operands == 2)
    return usage_error (CMD, "too many arguments");
  a->operands[a->n_operands++] = s;
  return EXIT_SUCCESS;
}

/* Options and operands in any order; see the comment at the top. */
static int
parse_args (int argc, char *argv[], struct resize_args *a)
{
  bool options_done = false;
  int c, before;

  optind = 1;
  while (optind < argc) {
    if (options_done || is_signed_size (argv[optind])) {
      if (add_operand (a, argv[optind++]) != EXIT_SUCCESS)
        return EXIT_FAILURE;
      continue;
    }
    before = optind;
    c = getopt_long (argc, argv, short_opts, long_opts, NULL);
    switch (c) {
    case -1:
      if (optind == before + 1 && strcmp (argv[before], "--") == 0)
        options_done = true;
      else if (optind < argc
               && add_operand (a, argv[optind++]) != EXIT_SUCCESS)
        return EXIT_FAILURE;
      break;
    case 'h':
      usage ();
      return -1;
    case OPT_SHRINK:
      a->shrink = true;
      break;
    default:
      return try_help (CMD);
    }
  }
  if (a->n_operands < 2)
    return usage_error (CMD, "missing %s", a->n_operands ? "SIZE" : "FILE");
  return EXIT_SUCCESS;
}

static int
parse_new_size (struct resize_args *a)
{
  const char *s = a->operands[1];

  if (s[0] == '+' || s[0] == '-') {
    a->sign = s[0] == '+' ? 1 : -1;
    s++;
  }
  if (parse_size (s, &a->amount) == -1)
    return usage_error (CMD, "invalid size '%s'", a->operands[1]);
  if (a->amount == 0 && a->sign == 0)
    return usage_error (CMD, "the size must be greater than zero");
  return EXIT_SUCCESS;
}

/* The size asked for, from the current one; -1 after an error. */
static int
target_size (const char *file, uint64_t cur, const struct resize_args *a,
             uint64_t *out)
{
  if (a->sign == 0)
    *out = a->amount;
  else if (a->sign > 0) {
    if (a->amount > (uint64_t) INT64_MAX - cur) {
      fail (file, "%s would make the disk larger than any image can be",
            a->operands[1]);
      return -1;
    }
    *out = cur + a->amount;
  }
  else {
    if (a->amount >= cur) {
      fail (file, "cannot shrink by %s: the disk is only %" PRIu64
            " bytes", a->operands[1] + 1, cur);
      return -1;
    }
    *out = cur - a->amount;
  }
  if (*out < cur && !a->shrink) {
    char want[32], have[32];
    human_size (*out, want, sizeof want);
    human_size (cur, have, sizeof have);
    fail (file, "the new size (%s) is smaller than the disk (%s); "
          "use --shrink to shrink it", want, have);
    return -1;
  }
  return 0;
}

static int
resize (const char *file, const struct resize_args *a)
{
  struct vhd_disk *d = vhd_open (file, 0);
  char from[32], to[32];
  int64_t cur, now;
  uint64_t want;

  if (d == NULL)
    return fail_lib (file);
  cur = vhd_get_size (d);
  if (cur < 0 || target_size (file, (uint64_t) cur, a, &want) == -1) {
    if (cur < 0)
      fail_lib (file);
    vhd_close (d);
    return EXIT_FAILURE;
  }
  if (vhd_resize (d, want, a->shrink ? VHD_RESIZE_SHRINK : 0) == -1) {
    fail_lib (file);
    vhd_close (d);
    return EXIT_FAILURE;
  }
  now = vhd_get_size (d);
  if (flush_and_close (d, file) != EXIT_SUCCESS)
    return EXIT_FAILURE;
  human_size ((uint64_t) cur, from, sizeof from);
  human_size (now < 0 ? want : (uint64_t) now, to, sizeof to);
  printf ("Image resized: %s -> %s.\n", from, to);
  return EXIT_SUCCESS;
}

int
cmd_resize (int argc, char *argv[])
{
  struct resize_args a = { .shrink = false };
  int r = parse_args (argc, argv, &a);

  if (r == -1)
    return EXIT_SUCCESS;         /* --help */
  if (r != EXIT_SUCCESS || parse_new_size (&a) != EXIT_SUCCESS)
    return EXIT_FAILURE;
  return resize (a.operands[0], &a);
}
