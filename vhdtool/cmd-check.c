/* vhdtool/cmd-check.c: "vhdtool check", verify (and repair) an image.
 *
 * vhd_check () reads FILE's structures without trusting them, so FILE
 * need not open.  Each finding it reports is kept and printed once the
 * check is over: one "corruption: ...", "leak: ...", "repaired: ..." or
 * "info: ..." line each, then a summary in qemu-img's words; or, with
 * --json, one object with the counts, the findings and the result.
 *
 * Exit status (DESIGN.md): 0 clean, 2 corruption left unrepaired, 3 only
 * leaked or unused space, 1 when the check could not run (the error on
 * stderr, nothing on stdout with --json).
 */
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vhdtool.h"

#define CMD "check"

#define EXIT_CORRUPT 2
#define EXIT_LEAKS 3

struct finding {
  int severity;
  char *message;
};

struct findings {
  struct finding *v;
  size_t n, cap;
  bool nomem;            /* a finding could not be stored */
  unsigned corruptions, leaks, repaired;
};

static const char short_opts[] = "h";
static const struct option long_opts[] = {
  { "help",   no_argument, NULL, 'h' },
  { "repair", no_argument, NULL, OPT_REPAIR },
  { "json",   no_argument, NULL, OPT_JSON },
  { NULL, 0, NULL, 0 },
};

static void
usage (void)
{
  printf ("Usage: %s %s [--repair] [--json] FILE\n"
          "\n"
          "Check the structures of the image FILE (which need not open).\n"
          "Exit status: 0 clean, 2 corruption found (and not repaired), "
          "3 only leaked\n"
          "or unused space found, 1 the check could not run.\n"
          "\n"
          "      --repair  fix what can be fixed safely\n"
          "      --json    print one JSON object\n"
          "  -h, --help    print this help and exit\n",
          PROGRAM_NAME, CMD);
}

static void
on_finding (void *opaque, int severity, const char *message)
{
  struct findings *f = opaque;
  struct finding *v;
  char *copy;

  switch (severity) {
  case VHD_CHECK_CORRUPT:  f->corruptions++; break;
  case VHD_CHECK_LEAKS:    f->leaks++; break;
  case VHD_CHECK_REPAIRED: f->repaired++; break;
  default: break;
  }
  if (f->n == f->cap) {
    size_t cap = f->cap ? 2 * f->cap : 16;
    v = realloc (f->v, cap * sizeof *v);
    if (v == NULL) {
      f->nomem = true;
      return;
    }
    f->v = v;
    f->cap = cap;
  }
  copy = strdup (message ? message : "");
  if (copy == NULL) {
    f->nomem = true;
    return;
  }
  f->v[f->n++] = (struct finding) { severity, copy };
}

static void
free_findings (struct findings *f)
{
  size_t i;

  for (i = 0; i < f->n; i++)
    free (f->v[i].message);
  free (f->v);
}

/* Human label and JSON severity of a finding. */
static const char *
label (int severity)
{
  switch (severity) {
  case VHD_CHECK_CORRUPT:  return "corruption";
  case VHD_CHECK_LEAKS:    return "leak";
  case VHD_CHECK_REPAIRED: return "repaired";
  default:                 return "info";
  }
}

static const char *
json_severity (int severity)
{
  switch (severity) {
  case VHD_CHECK_CORRUPT:  return "corrupt";
  case VHD_CHECK_LEAKS:    return "leak";
  case VHD_CHECK_REPAIRED: return "repaired";
  default:                 return "info";
  }
}

/* The format of FILE for the report: what the library makes of it, or,
 * when it does not open, what its signatures say; NULL when unknown. */
static const char *
image_format (const char *file)
{
  struct vhd_disk *d = vhd_open (file, VHD_OPEN_RDONLY | VHD_OPEN_NO_PARENT);
  char head[8], tail[8];
  const char *name = NULL;
  struct stat st;
  int fd;

  if (d != NULL) {
    name = format_name (vhd_get_format (d));
    vhd_close (d);
    return name;
  }
  fd = open (file, O_RDONLY | O_CLOEXEC);
  if (fd == -1)
    return NULL;
  if (pread (fd, head, 8, 0) == 8 && memcmp (head, "vhdxfile", 8) == 0)
    name = "vhdx";
  else if (memcmp (head, "conectix", 8) == 0)
    name = "vhd";
  else if (fstat (fd, &st) == 0 && st.st_size >= 512
           && pread (fd, tail, 8, st.st_size - 512) == 8
           && memcmp (tail, "conectix", 8) == 0)
    name = "vhd";
  close (fd);
  return name;
}

static const char *
result_name (int r)
{
  if (r & VHD_CHECK_CORRUPT)
    return "corrupt";
  if (r & VHD_CHECK_LEAKS)
    return "leaks";
  return "clean";
}

static void
print_json (const char *file, const struct findings *f, int r)
{
  size_t i;

  printf ("{\n  \"filename\": ");
  json_string (stdout, file);
  printf (",\n  \"format\": ");
  json_string (stdout, image_format (file));
  printf (",\n  \"corruptions\": %u,\n  \"leaks\": %u,\n"
          "  \"repaired\": %u,\n  \"findings\": [",
          f->corruptions, f->leaks, f->repaired);
  for (i = 0; i < f->n; i++) {
    printf ("%s\n    { \"severity\": \"%s\", \"message\": ", i ? "," : "",
            json_severity (f->v[i].severity));
    json_string (stdout, f->v[i].message);
    printf (" }");
  }
  printf ("%s],\n  \"result\": \"%s\"\n}\n", f->n ? "\n  " : "",
          result_name (r));
}

static void
print_findings (const struct findings *f)
{
  size_t i;

  for (i = 0; i < f->n; i++)
    printf ("%s: %s\n", label (f->v[i].severity), f->v[i].message);
}

static void
print_summary (const struct findings *f, int r, bool repair)
{
  if (f->repaired)
    printf ("%u problem%s %s repaired.\n", f->repaired,
            f->repaired == 1 ? "" : "s", f->repaired == 1 ? "was" : "were");
  if (r & VHD_CHECK_CORRUPT) {
    printf ("%u error%s %s found on the image.\n"
            "Data may be corrupted, or further writes to the image may "
            "corrupt it.\n", f->corruptions, f->corruptions == 1 ? "" : "s",
            f->corruptions == 1 ? "was" : "were");
    if (repair)
      printf ("Some of it could not be repaired safely.\n");
  }
  if (r & VHD_CHECK_LEAKS) {
    printf ("%u leak%s %s found on the image.\n"
            "This means waste of disk space, but no harm to data.\n",
            f->leaks, f->leaks == 1 ? "" : "s",
            f->leaks == 1 ? "was" : "were");
  }
  if (!(r & (VHD_CHECK_CORRUPT | VHD_CHECK_LEAKS)))
    printf ("No errors were found on the image.\n");
}

static int
check (const char *file, bool repair, bool json)
{
  struct findings f = { NULL, 0, 0, false, 0, 0, 0 };
  int r = vhd_check (file, repair ? VHD_CHECK_REPAIR : 0, on_finding, &f);
  int status;

  if (r == -1) {
    if (!json)
      print_findings (&f);
    fflush (stdout);
    status = fail_lib (file);
    free_findings (&f);
    return status;
  }
  if (f.nomem) {
    free_findings (&f);
    return fail (file, "out of memory storing the findings");
  }
  if (json)
    print_json (file, &f, r);
  else {
    print_findings (&f);
    print_summary (&f, r, repair);
  }
  free_findings (&f);
  status = finish_stdout ();
  if (status != EXIT_SUCCESS)
    return status;
  if (r & VHD_CHECK_CORRUPT)
    return EXIT_CORRUPT;
  if (r & VHD_CHECK_LEAKS)
    return EXIT_LEAKS;
  return EXIT_SUCCESS;
}

int
cmd_check (int argc, char *argv[])
{
  bool repair = false, json = false;
  const char *file;
  int c, r;

  optind = 1;
  while ((c = getopt_long (argc, argv, short_opts, long_opts, NULL)) != -1) {
    switch (c) {
    case 'h':
      usage ();
      return EXIT_SUCCESS;
    case OPT_REPAIR:
      repair = true;
      break;
    case OPT_JSON:
      json = true;
      break;
    default:
      return try_help (CMD);
    }
  }
  r = take_operand (argc, argv, CMD, "FILE", &file);
  return r >= 0 ? r : check (file, repair, json);
}
