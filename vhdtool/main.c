/* vhdtool/main.c: the subcommand table, --help, --version and dispatch.
 *
 * "vhdtool COMMAND ARGS..." runs the table entry for COMMAND with
 * argv[0] replaced by "vhdtool COMMAND", so that getopt's messages name
 * the command.
 */
#include <stdlib.h>
#include <string.h>

#include "vhdtool.h"

struct command {
  const char *name;
  int (*run) (int argc, char *argv[]);
  const char *summary;
};

static const struct command commands[] = {
  { "create", cmd_create,
    "create a fixed, dynamic or differencing image" },
  { "info", cmd_info,
    "print format, sizes, type and parent chain" },
  { "convert", cmd_convert,
    "copy a disk between raw, VHD and VHDX" },
  { "map", cmd_map,
    "print the allocation map of a disk" },
  { "check", cmd_check,
    "verify an image's structures" },
  { "compact", cmd_compact,
    "drop zero blocks and shrink the file" },
  { "resize", cmd_resize,
    "change the virtual size" },
  { "commit", cmd_commit,
    "merge a differencing disk into its parent" },
  { "rebase", cmd_rebase,
    "point a differencing disk at a moved parent" },
};

#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void
usage (FILE *fp)
{
  size_t i;

  fprintf (fp,
           "Usage: %s COMMAND [OPTION]... ARG...\n"
           "       %s help [COMMAND]\n"
           "       %s --version\n"
           "\n"
           "Work with VHD and VHDX virtual disk images.\n"
           "\n"
           "Commands:\n",
           PROGRAM_NAME, PROGRAM_NAME, PROGRAM_NAME);
  for (i = 0; i < N_COMMANDS; i++)
    fprintf (fp, "  %-9s %s\n", commands[i].name, commands[i].summary);
  fprintf (fp,
           "\n"
           "Sizes are bytes, or a number followed by K, M, G or T "
           "(powers of 1024).\n"
           "Run '%s COMMAND --help' for the options of a command.\n",
           PROGRAM_NAME);
}

static int
print_version (void)
{
  printf ("%s %s\n", PROGRAM_NAME, VHDTOOL_VERSION);
  printf ("libvhd %s\n", vhd_get_version ());
  return EXIT_SUCCESS;
}

static const struct command *
find_command (const char *name)
{
  size_t i;

  for (i = 0; i < N_COMMANDS; i++)
    if (strcmp (commands[i].name, name) == 0)
      return &commands[i];
  return NULL;
}

static bool
is_help (const char *arg)
{
  return strcmp (arg, "--help") == 0 || strcmp (arg, "-h") == 0;
}

static int
run_command (const struct command *cmd, int argc, char *argv[])
{
  char prog[64];

  snprintf (prog, sizeof prog, "%s %s", PROGRAM_NAME, cmd->name);
  argv[0] = prog;
  return cmd->run (argc, argv);
}

static int
unknown (const char *arg)
{
  if (arg[0] == '-')
    fprintf (stderr, "%s: unrecognized option '%s'\n", PROGRAM_NAME, arg);
  else
    fprintf (stderr, "%s: unknown command '%s'\n", PROGRAM_NAME, arg);
  usage (stderr);
  return EXIT_FAILURE;
}

/* "vhdtool help [COMMAND]". */
static int
help_command (int argc, char *argv[])
{
  const struct command *cmd;
  char help[] = "--help";
  char *args[3] = { argv[0], help, NULL };

  if (argc < 2) {
    usage (stdout);
    return EXIT_SUCCESS;
  }
  cmd = find_command (argv[1]);
  if (cmd == NULL)
    return unknown (argv[1]);
  if (argc > 2) {
    fprintf (stderr, "%s: help: too many arguments\n", PROGRAM_NAME);
    return EXIT_FAILURE;
  }
  return run_command (cmd, 2, args);
}

int
main (int argc, char *argv[])
{
  const struct command *cmd;
  int r;

  if (argc < 2) {
    usage (stderr);
    return EXIT_FAILURE;
  }
  if (is_help (argv[1]) || strcmp (argv[1], "help") == 0)
    r = help_command (argc - 1, argv + 1);
  else if (strcmp (argv[1], "--version") == 0 || strcmp (argv[1], "-V") == 0)
    r = print_version ();
  else if ((cmd = find_command (argv[1])) != NULL)
    r = run_command (cmd, argc - 1, argv + 1);
  else
    return unknown (argv[1]);
  if (r == EXIT_SUCCESS)
    r = finish_stdout ();
  return r;
}
