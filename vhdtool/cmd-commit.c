/* vhdtool/cmd-commit.c: "vhdtool commit", merge a differencing disk into
 * its parent (Hyper-V's Merge-VHD into the parent).
 *
 * CHILD is opened read-write with its chain; vhd_commit () opens the
 * parent read-write itself for the duration, writes CHILD's data into it
 * and leaves CHILD empty (and still valid: the chain reads the same).
 *
 * Before committing, the parent's directory is searched for other images
 * (*.vhd, *.vhdx, *.avhd, *.avhdx) whose chain goes through the parent
 * without going through CHILD: what they read changes with the commit, so
 * each is named in a warning on stderr.  The commit still goes ahead.
 */
#include <dirent.h>
#include <getopt.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "vhdtool.h"

#define CMD "commit"

struct file_id {
  dev_t dev;
  ino_t ino;
};

static const char short_opts[] = "ph";
static const struct option long_opts[] = {
  { "help",     no_argument, NULL, 'h' },
  { "progress", no_argument, NULL, 'p' },
  { NULL, 0, NULL, 0 },
};

static void
usage (void)
{
  printf ("Usage: %s %s [-p] CHILD\n"
          "\n"
          "Merge the differencing disk CHILD into its parent: the parent "
          "takes CHILD's\n"
          "data and CHILD is left empty, so the chain reads the same.  "
          "Other images\n"
          "based on the same parent see the parent change: they are named "
          "in a warning.\n"
          "\n"
          "  -p, --progress  show progress\n"
          "  -h, --help      print this help and exit\n",
          PROGRAM_NAME, CMD);
}

static bool
file_id (const char *path, struct file_id *id)
{
  struct stat st;

  if (path == NULL || stat (path, &st) == -1)
    return false;
  id->dev = st.st_dev;
  id->ino = st.st_ino;
  return true;
}

static bool
same_file (const char *path, const struct file_id *id)
{
  struct file_id other;

  return file_id (path, &other) && other.dev == id->dev
    && other.ino == id->ino;
}

static bool
image_name (const char *name)
{
  static const char *const exts[] = { ".vhd", ".vhdx", ".avhd", ".avhdx" };
  const char *dot = strrchr (name, '.');
  size_t i;

  if (dot == NULL)
    return false;
  for (i = 0; i < sizeof exts / sizeof exts[0]; i++)
    if (strcasecmp (dot, exts[i]) == 0)
      return true;
  return false;
}

/* PATH without a leading "./", for messages. */
static const char *
tidy (const char *path)
{
  while (path[0] == '.' && path[1] == '/' && path[2] != '\0')
    path += 2;
  return path;
}

/* Whether PATH's chain reaches PARENT without passing through CHILD. */
static bool
shares_parent (const char *path, const struct file_id *parent,
               const struct file_id *child)
{
  struct vhd_disk *d = vhd_open (path, VHD_OPEN_RDONLY);
  struct vhd_disk *p;
  bool r = false;

  if (d == NULL)
    return false;       /* not an image, or its chain does not open */
  for (p = vhd_get_parent (d); p != NULL; p = vhd_get_parent (p)) {
    const char *name = vhd_get_filename (p);
    if (same_file (name, child))
      break;
    if (same_file (name, parent)) {
      r = true;
      break;
    }
  }
  vhd_close (d);
  return r;
}

/* Warn about the other images over PARENT_PATH in its directory. */
static void
warn_siblings (const char *parent_path, const char *child_path)
{
  struct file_id parent, child;
  char *copy = strdup (parent_path), *dir;
  struct dirent *e;
  DIR *dp;

  if (copy == NULL || !file_id (parent_path, &parent)
      || !file_id (child_path, &child)) {
    free (copy);
    return;
  }
  dir = dirname (copy);
  dp = opendir (dir);
  if (dp == NULL) {
    free (copy);
    return;
  }
  while ((e = readdir (dp)) != NULL) {
    char *path;
    if (!image_name (e->d_name))
      continue;
    if (asprintf (&path, "%s/%s", dir, e->d_name) == -1)
      break;
    if (!same_file (path, &parent) && !same_file (path, &child)
        && shares_parent (path, &parent, &child))
      fprintf (stderr, "%s: %s: warning: %s is also based on this image; "
               "what it reads changes with the commit\n", PROGRAM_NAME,
               tidy (parent_path), tidy (path));
    free (path);
  }
  closedir (dp);
  free (copy);
}

static int
commit (const char *file, bool show_progress)
{
  struct progress prog = { 0 };
  struct vhd_disk *d = vhd_open (file, 0);
  struct vhd_disk *parent;
  int r;

  if (d == NULL)
    return fail_lib (file);
  parent = vhd_get_parent (d);
  if (vhd_get_type (d) != VHD_TYPE_DIFFERENCING || parent == NULL) {
    vhd_close (d);
    return fail (file, "not a differencing disk: there is no parent to "
                 "commit into");
  }
  warn_siblings (vhd_get_filename (parent), file);
  if (show_progress)
    progress_init (&prog, stdout);
  r = vhd_commit (d, show_progress ? progress_update : NULL, &prog);
  if (show_progress) {
    if (r == 0)
      progress_finish (&prog);
    else
      progress_abort (&prog);
  }
  if (r == -1) {
    fail_lib (file);
    vhd_close (d);
    return EXIT_FAILURE;
  }
  if (flush_and_close (d, file) != EXIT_SUCCESS)
    return EXIT_FAILURE;
  printf ("Image committed.\n");
  return EXIT_SUCCESS;
}

int
cmd_commit (int argc, char *argv[])
{
  bool show_progress;
  const char *file;
  int r = parse_flag_operand (argc, argv, CMD, short_opts, long_opts, 'p',
                              usage, "CHILD", &show_progress, &file);

  return r >= 0 ? r : commit (file, show_progress);
}
