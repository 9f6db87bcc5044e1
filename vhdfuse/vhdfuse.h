/* vhdfuse.h: what the parts of vhdfuse share.
 *
 *   main.c        options, opening the image, mounting, the FUSE loop
 *   operations.c  the FUSE operations and the library → errno mapping
 *   files.c       the mount's namespace: disk, disk-partN, and when the
 *                 partition list must be read again
 *   partition.c   MBR and GPT parsing
 *
 * Every file of the mount is a window onto the one open disk; the disk
 * handle is thread-safe, so the FUSE worker threads share it freely.
 */
#ifndef VHDFUSE_H
#define VHDFUSE_H

#define FUSE_USE_VERSION 312

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <fuse.h>
#include <libvhd.h>

#define PROGRAM_NAME "vhdfuse"

#define VHDFUSE_STR_(x) #x
#define VHDFUSE_STR(x) VHDFUSE_STR_ (x)
#define VHDFUSE_VERSION                                               \
  VHDFUSE_STR (VHD_VERSION_MAJOR) "." VHDFUSE_STR (VHD_VERSION_MINOR) \
  "." VHDFUSE_STR (VHD_VERSION_MICRO)

/* The mounted image; set up by main () before the mount, read-only after,
 * except that the destroy operation closes the disk and clears it. */
struct vhdfuse_state {
  struct vhd_disk *disk;
  uint64_t size;          /* virtual size in bytes */
  unsigned sector_size;   /* logical sector size */
  bool readonly;
  bool direct_io;         /* -o direct_io: bypass the page cache */
  bool close_failed;      /* the final flush failed: exit non-zero */
  const char *name;       /* IMAGE as given on the command line */
  const char *image;      /* its absolute path (stat after daemonizing) */
  uid_t uid;
  gid_t gid;
};
extern struct vhdfuse_state vf;

/* A file of the mount: the bytes [start, start + size) of the disk. */
struct window {
  uint64_t start;
  uint64_t size;
};

/* ---------------------------------------------------------- partition.c */

struct partition {
  unsigned number;        /* N of disk-partN: its number in the table */
  uint64_t start, size;   /* bytes, inside the disk */
};

struct byte_range {
  uint64_t start, length;
};

/* The result of a scan: the partitions, and every range of the disk the
 * scan read (a write there may change the result). */
struct part_table {
  struct partition *parts;
  size_t n_parts;
  struct byte_range *read;
  size_t n_read;
};

/* Read the partition table of disk (size bytes, logical sectors of
 * sector_size bytes) into *t.  A disk without a valid table has no
 * partitions; -1 (library error set) only when reading the disk fails
 * or memory runs out.  t is always left safe to pass to part_table_free. */
extern int partition_scan (struct vhd_disk *disk, uint64_t size,
                           unsigned sector_size, struct part_table *t);
extern void part_table_free (struct part_table *t);

/* ---------------------------------------------------------- files.c */

enum file_kind {
  FILE_NONE,   /* no such file */
  FILE_ROOT,   /* the mount's root directory */
  FILE_DISK,   /* "disk" */
  FILE_PART,   /* "disk-partN" */
};

/* First scan of the partition table (its failure is only a warning). */
extern void files_init (void);
extern void files_free (void);
/* Resolve an absolute path of the mount; *w is set for FILE_DISK/PART. */
extern enum file_kind files_lookup (const char *path, struct window *w);
/* Fill a readdir buffer: ".", "..", "disk", "disk-partN"... */
extern int files_list (void *buf, fuse_fill_dir_t filler);
extern size_t files_count (void);
/* The disk's bytes [offset, offset + length) were written or zeroed. */
extern void files_note_write (uint64_t offset, uint64_t length);

/* ---------------------------------------------------------- operations.c */

extern const struct fuse_operations vhdfuse_operations;

/* The library's last error without its "vhd_func: " prefix, nor the
 * image's name when it comes first (messages name it themselves). */
extern const char *lib_message (void);

#endif /* VHDFUSE_H */
