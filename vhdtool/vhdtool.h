/* vhdtool: command-line front end of libvhd.
 *
 * Shared declarations of the subcommands (one cmd-*.c file each) and of
 * the helpers in util.c.  Conventions every command follows (DESIGN.md,
 * "Command-line contracts"):
 *   --help          usage on stdout, exit 0;
 *   usage errors    message on stderr, exit 1;
 *   runtime errors  one line "vhdtool: FILE: what went wrong", exit 1.
 * Commands return their exit status; nothing below main () calls exit ().
 */
#ifndef VHDTOOL_H
#define VHDTOOL_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "libvhd.h"

#define PROGRAM_NAME "vhdtool"

#define VHDTOOL_STR_(x) #x
#define VHDTOOL_STR(x) VHDTOOL_STR_ (x)
#define VHDTOOL_VERSION                                         \
  VHDTOOL_STR (VHD_VERSION_MAJOR) "." VHDTOOL_STR (VHD_VERSION_MINOR) \
  "." VHDTOOL_STR (VHD_VERSION_MICRO)

#define ATTR_PRINTF(f, a) __attribute__ ((__format__ (__printf__, f, a)))

/* Long-only options shared by the commands. */
enum {
  OPT_JSON = 256,
  OPT_LOGICAL_SECTOR,
  OPT_PHYSICAL_SECTOR,
  OPT_PARENT,
  OPT_REPAIR,
  OPT_SHRINK,
  OPT_UNSAFE,
  OPT_NO_MOVE,
  OPT_CACHE,
};

/* Subcommands.  argv[0] is "vhdtool NAME" (getopt prints it). */
extern int cmd_create (int argc, char *argv[]);
extern int cmd_info (int argc, char *argv[]);
extern int cmd_convert (int argc, char *argv[]);
extern int cmd_map (int argc, char *argv[]);
extern int cmd_check (int argc, char *argv[]);
extern int cmd_compact (int argc, char *argv[]);
extern int cmd_resize (int argc, char *argv[]);
extern int cmd_commit (int argc, char *argv[]);
extern int cmd_rebase (int argc, char *argv[]);

/* Parameters of a new image, shared by create and convert. */
struct image_params {
  int format;            /* enum vhd_format */
  int type;              /* enum vhd_type; DIFFERENCING when parent set */
  uint64_t size;         /* ignored with a parent */
  uint32_t block_size;   /* 0: the format's default */
  uint32_t logical;      /* 0: default (512) */
  uint32_t physical;     /* 0: default (the logical size) */
  const char *parent;    /* NULL: none */
};

/* Option parsing.  Each returns 0, or -1 when the text is invalid
 * (printing nothing: the caller reports a usage error). */
extern int parse_size (const char *s, uint64_t *out);
extern int parse_block_size (const char *s, uint32_t *out);
extern int parse_sector_size (const char *s, uint32_t *out);
extern int parse_format (const char *s, bool allow_raw, int *out);
extern int parse_type (const char *s, int *out);
/* The options create and convert share: -t, -b, --logical-sector and
 * --physical-sector.  Returns 0 when C was one of them and was stored in
 * P, -1 after a usage error about it, 1 when C is not one of them. */
extern int parse_image_option (const char *cmd, int c, const char *arg,
                               struct image_params *p);
/* enum vhd_format from PATH's extension, or -1 when unknown. */
extern int format_from_extension (const char *path, bool allow_raw);

extern const char *format_name (int format);
extern const char *type_name (int type);
/* "1.5 GiB"; buf of at least 32 bytes. */
extern void human_size (uint64_t bytes, char *buf, size_t len);

/* Errors.  Each prints one line to stderr and returns EXIT_FAILURE. */
extern int usage_error (const char *cmd, const char *fs, ...)
  ATTR_PRINTF (2, 3);
extern int try_help (const char *cmd);
/* Parse "[OPTION] OPERAND" for a command whose only option besides
 * --help is the flag `flag_opt`.  Returns -1 to go on, with *flag and
 * *operand set, or the exit status (help printed, or a usage error). */
extern int parse_flag_operand (int argc, char *argv[], const char *cmd,
                               const char *short_opts,
                               const struct option *long_opts, int flag_opt,
                               void (*usage) (void), const char *operand_name,
                               bool *flag, const char **operand);
/* After the options: the single operand at optind.  Returns -1 to go on,
 * with *operand set, or the exit status of a usage error. */
extern int take_operand (int argc, char *argv[], const char *cmd,
                         const char *operand_name, const char **operand);
extern int fail (const char *file, const char *fs, ...) ATTR_PRINTF (2, 3);
extern int fail_lib (const char *file);      /* uses vhd_get_error () */
extern void warn_lib (const char *file);     /* "FILE: warning: ..." */
/* The library's message without its "vhd_func: FILE: " prefix. */
extern const char *lib_message (const char *file);
/* Flush stdout; on a write error report it and return EXIT_FAILURE. */
extern int finish_stdout (void);
/* vhd_flush () then vhd_close () an image opened read-write; reports a
 * failing flush against FILE.  Returns the exit status. */
extern int flush_and_close (struct vhd_disk *d, const char *file);

/* Build creation options from P; on failure report against FILE. */
extern struct vhd_create_opts *make_create_opts (const struct image_params *p,
                                                 const char *file);
/* vhd_create () that reports an existing FILE in plain words. */
extern struct vhd_disk *create_image (const char *file,
                                      const struct vhd_create_opts *opts);
/* The error of a failed vhd_create () of FILE, so reported. */
extern void create_failed (const char *file);

/* JSON output. */
extern void json_string (FILE *fp, const char *s);   /* quoted, or null */

/* qemu-img style progress: "    (12.34/100%)\r". */
struct progress {
  FILE *fp;
  int last;              /* hundredths of a percent last printed, -1 none */
};
extern void progress_init (struct progress *p, FILE *fp);
extern void progress_update (void *opaque, uint64_t done, uint64_t total);
extern void progress_finish (struct progress *p);
/* End the progress line after a failure (the error follows on stderr). */
extern void progress_abort (struct progress *p);

#endif /* VHDTOOL_H */
