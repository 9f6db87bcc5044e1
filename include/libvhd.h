/* libvhd: VHD and VHDX virtual disk images.  See libvhd(3).
 *
 * Handles are opaque.  Constructors return NULL on failure, destructors
 * accept NULL, everything else returns 0 (or a non-negative value) on
 * success and -1 on failure.  A failing call sets errno and a per-thread
 * message, read back with vhd_get_error () and vhd_get_errno ().
 * The library never prints, logs or exits.
 *
 * Not related to blktap's libvhd, which uses the same vhd_ prefix: the
 * two cannot be linked into one program.
 */
#ifndef LIBVHD_H
#define LIBVHD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VHD_VERSION_MAJOR 0
#define VHD_VERSION_MINOR 1
#define VHD_VERSION_MICRO 0
/* True when this header is at least version MAJOR.MINOR.MICRO. */
#define VHD_CHECK_VERSION(major, minor, micro)                                \
  (VHD_VERSION_MAJOR > (major)                                               \
   || (VHD_VERSION_MAJOR == (major) && VHD_VERSION_MINOR > (minor))          \
   || (VHD_VERSION_MAJOR == (major) && VHD_VERSION_MINOR == (minor)          \
       && VHD_VERSION_MICRO >= (micro)))

/* Feature macros: defined when the header declares the feature, so that
 * a program can use it conditionally (#ifdef VHD_HAVE_AIO). */
#define VHD_HAVE_VHDX 1           /* the VHDX format */
#define VHD_HAVE_AIO 1            /* vhd_aio_* */
#define VHD_HAVE_ZEROES 1         /* vhd_write_zeroes, vhd_discard */
#define VHD_HAVE_BLOCK_STATUS 1   /* vhd_block_status, vhd_block_status_ex */
#define VHD_HAVE_OPEN_OPTS 1      /* vhd_open_with_opts, VHD_OPEN_DIRECT */
#define VHD_HAVE_OPERATIONS 1     /* compact, resize, commit, rebase, check */
#define VHD_HAVE_COMPACT_EX 1     /* vhd_compact_ex, VHD_COMPACT_NO_MOVE */

#if defined(__GNUC__) && !defined(VHD_NO_ATTRIBUTES)
#define VHD_NONNULL(...) __attribute__ ((__nonnull__ (__VA_ARGS__)))
#define VHD_WUR __attribute__ ((__warn_unused_result__))
#else
#define VHD_NONNULL(...)
#define VHD_WUR
#endif

/* Everything declared here is the library's public ABI, exported even
 * though the library is built with -fvisibility=hidden. */
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

struct vhd_disk;          /* an open image and its parent chain */
struct vhd_create_opts;   /* parameters of a new image */
struct vhd_open_opts;     /* how to open an image, beyond flags */

/* vhd_open flags. */
#define VHD_OPEN_RDONLY           0x01U /* never write to any file */
#define VHD_OPEN_NO_PARENT        0x02U /* inspect only: do not open the parent;
                                           reads of ranges the parent holds fail */
#define VHD_OPEN_IGNORE_PARENT_ID 0x04U /* accept a parent whose ID does not
                                           match the child's record of it */
#define VHD_OPEN_DIRECT           0x08U /* O_DIRECT: data transfers on the
                                           host page grid bypass the page
                                           cache, in every file of the chain;
                                           ENOTSUP where the file system
                                           cannot */
#define VHD_OPEN_MASK             0x0fU

enum vhd_format {
  VHD_FORMAT_AUTO = 0,
  VHD_FORMAT_RAW = 1,
  VHD_FORMAT_VHD = 2,
  VHD_FORMAT_VHDX = 3,
};

enum vhd_type {
  VHD_TYPE_FIXED = 1,
  VHD_TYPE_DYNAMIC = 2,
  VHD_TYPE_DIFFERENCING = 3,
};

/* Open, I/O, close. */
extern struct vhd_disk *vhd_open (const char *path, unsigned flags) VHD_WUR;
extern void vhd_close (struct vhd_disk *disk);
/* Open with options: the vhd_open flags, and a parent given by the
 * caller, which replaces the search through the paths a differencing
 * disk records (its identity is still checked unless
 * VHD_OPEN_IGNORE_PARENT_ID; its own parents are found as usual). */
extern struct vhd_open_opts *vhd_open_opts_new (void) VHD_WUR;
extern void vhd_open_opts_free (struct vhd_open_opts *opts);
extern int vhd_open_opts_set_flags (struct vhd_open_opts *opts,
                                    unsigned flags);
extern int vhd_open_opts_set_parent (struct vhd_open_opts *opts,
                                     const char *parent_path);
extern struct vhd_disk *vhd_open_with_opts (const char *path,
                                            const struct vhd_open_opts *opts)
  VHD_WUR;
extern int64_t vhd_get_size (struct vhd_disk *disk);
extern int vhd_pread (struct vhd_disk *disk, void *buf, size_t count,
                      uint64_t offset) VHD_WUR;
extern int vhd_pwrite (struct vhd_disk *disk, const void *buf, size_t count,
                       uint64_t offset) VHD_WUR;
extern int vhd_flush (struct vhd_disk *disk) VHD_WUR;

/* Errors of the calling thread's most recent failing call. */
extern const char *vhd_get_error (void);
extern int vhd_get_errno (void);

/* "MAJOR.MINOR.MICRO" of the library actually linked. */
extern const char *vhd_get_version (void);

/* Inspection.  Each returns -1 (or NULL) when disk is NULL; the file
 * size and allocated bytes also when the file cannot be examined. */
extern int vhd_get_format (struct vhd_disk *disk);        /* enum vhd_format */
extern int vhd_get_type (struct vhd_disk *disk);          /* enum vhd_type */
extern const char *vhd_get_format_name (struct vhd_disk *disk);
extern const char *vhd_get_filename (struct vhd_disk *disk);
/* Block size in bytes; 0 when the image has no blocks (fixed VHD, raw). */
extern int64_t vhd_get_block_size (struct vhd_disk *disk);
extern int vhd_get_logical_sector_size (struct vhd_disk *disk);
extern int vhd_get_physical_sector_size (struct vhd_disk *disk);
/* Size of the image file itself, in bytes. */
extern int64_t vhd_get_file_size (struct vhd_disk *disk);
/* Bytes of the virtual disk that this file (not its parents) holds. */
extern int64_t vhd_get_allocated_bytes (struct vhd_disk *disk);
/* The image's identity as a UUID string (VHD unique ID, VHDX virtual
 * disk ID); out must hold 37 bytes. */
extern int vhd_get_id (struct vhd_disk *disk, char *out);
/* The opened parent, owned by disk; NULL for a disk without one. */
extern struct vhd_disk *vhd_get_parent (struct vhd_disk *disk);
/* The parent's path (NULL if none): the local path of the parent that
 * was opened (a recorded locator made local, or the caller's), else the
 * first path the image records. */
extern const char *vhd_get_parent_hint (struct vhd_disk *disk);
/* Four-character creator application (VHD) or creator string (VHDX). */
extern const char *vhd_get_creator (struct vhd_disk *disk);
/* 1 when the VHDX log had to be replayed on open, 0 otherwise. */
extern int vhd_get_log_dirty (struct vhd_disk *disk);

/* Make [offset, offset + count) read as zeros (also in a differencing
 * disk: the parent's data there is hidden).  With VHD_ZERO_MAY_UNMAP the
 * storage behind whole blocks may be given back; with VHD_ZERO_FAST the
 * call fails with ENOTSUP instead of writing zeros when it cannot just
 * mark or free the range.  vhd_discard is write_zeroes with MAY_UNMAP. */
#define VHD_ZERO_MAY_UNMAP 0x1U
#define VHD_ZERO_FAST      0x2U
#define VHD_ZERO_MASK      0x3U
extern int vhd_write_zeroes (struct vhd_disk *disk, uint64_t offset,
                             uint64_t count, unsigned flags) VHD_WUR;
extern int vhd_discard (struct vhd_disk *disk, uint64_t offset,
                        uint64_t count) VHD_WUR;

/* Allocation map.  The callback receives consecutive extents covering
 * [offset, offset + count): state is a combination of the flags below
 * (0 = data), depth the chain layer that supplies the extent (0 = this
 * file, 1 its parent, ...).  A layer that stores the range as zeros
 * without data gives HOLE|ZERO at its own depth; a range that no layer
 * holds gives HOLE|ZERO at depth = the number of layers in the chain.
 * A differencing disk opened with VHD_OPEN_NO_PARENT reports its parent's
 * ranges as HOLE alone: their content is unknown.
 * A non-zero return from the callback stops the walk and is returned. */
#define VHD_STATE_HOLE 0x1U /* no storage behind it in any layer */
#define VHD_STATE_ZERO 0x2U /* reads as zeros */
typedef int (*vhd_extent_fn) (void *opaque, uint64_t offset, uint64_t length,
                              unsigned state, unsigned depth);
extern int vhd_block_status (struct vhd_disk *disk, uint64_t offset,
                             uint64_t count, vhd_extent_fn fn, void *opaque);
/* The same with flags.  VHD_STATUS_HOST_HOLES also asks the host file
 * (SEEK_DATA/SEEK_HOLE, a system call or two per stored run) and reports
 * stored data that lies in a hole of it as ZERO without HOLE: it reads as
 * zeros although the image allocates it, so copies may skip it unread. */
#define VHD_STATUS_HOST_HOLES 0x1U
#define VHD_STATUS_MASK       0x1U
extern int vhd_block_status_ex (struct vhd_disk *disk, uint64_t offset,
                                uint64_t count, unsigned flags,
                                vhd_extent_fn fn, void *opaque);

/* Creation.  Options start as: format VHD, type dynamic, default block
 * size of the format, 512-byte sectors, no parent. */
extern struct vhd_create_opts *vhd_create_opts_new (void);
extern void vhd_create_opts_free (struct vhd_create_opts *opts);
extern int vhd_create_opts_set_format (struct vhd_create_opts *opts,
                                       int format);
extern int vhd_create_opts_set_type (struct vhd_create_opts *opts, int type);
/* Virtual size in bytes, rounded up to a whole logical sector for VHD
 * and VHDX (raw keeps it exact). */
extern int vhd_create_opts_set_size (struct vhd_create_opts *opts,
                                     uint64_t size);
extern int vhd_create_opts_set_block_size (struct vhd_create_opts *opts,
                                           uint32_t block_size);
extern int vhd_create_opts_set_sector_size (struct vhd_create_opts *opts,
                                            uint32_t logical,
                                            uint32_t physical);
/* A differencing child of PARENT (its size comes from the parent). */
extern int vhd_create_opts_set_parent (struct vhd_create_opts *opts,
                                       const char *parent);
/* Open the new image with these flags: 0 or VHD_OPEN_DIRECT (ENOTSUP
 * from vhd_create where the file system has no O_DIRECT). */
extern int vhd_create_opts_set_open_flags (struct vhd_create_opts *opts,
                                           unsigned flags);
/* Create PATH (which must not exist) and return it opened read-write. */
extern struct vhd_disk *vhd_create (const char *path,
                                    const struct vhd_create_opts *opts)
  VHD_WUR;

/* Copy the whole virtual disk of SRC into DST (same size or larger),
 * leaving ranges that read as zeros unwritten: DST must read as zeros
 * there already (a new image).  progress, when not NULL, is called with
 * the bytes done so far and the total. */
typedef void (*vhd_progress_fn) (void *opaque, uint64_t done, uint64_t total);
extern int vhd_copy (struct vhd_disk *src, struct vhd_disk *dst,
                     vhd_progress_fn progress, void *opaque) VHD_WUR;

/* Operations on an image opened read-write (they flush first).  Each
 * stays crash-safe: stopped at any write, the image opens and shows the
 * old or the new content.  A format that cannot do an operation makes
 * it fail with ENOTSUP; a disk of the wrong type (commit or rebase of a
 * disk that is not differencing) with EINVAL. */

/* Change the virtual size.  Shrinking needs VHD_RESIZE_SHRINK and is
 * refused (ENOTEMPTY) when data lies past the new end.  New space reads
 * as zeros. */
#define VHD_RESIZE_SHRINK 0x1U
extern int vhd_resize (struct vhd_disk *disk, uint64_t new_size,
                       unsigned flags) VHD_WUR;

/* Give back the space of blocks that read as zeros (and, in a
 * differencing disk, blocks identical to the parent's view), move the
 * rest down and shorten the file. */
extern int vhd_compact (struct vhd_disk *disk, vhd_progress_fn progress,
                        void *opaque) VHD_WUR;
/* The same with flags.  VHD_COMPACT_NO_MOVE: only drop those blocks and
 * punch their space out of the host file; nothing moves, and the file
 * keeps its length (about the cost of reading the image once). */
#define VHD_COMPACT_NO_MOVE 0x1U
extern int vhd_compact_ex (struct vhd_disk *disk, unsigned flags,
                           vhd_progress_fn progress, void *opaque) VHD_WUR;

/* Write a differencing disk's own data into its parent, leaving the
 * child empty and valid.  The parent file is opened read-write for the
 * duration. */
extern int vhd_commit (struct vhd_disk *disk, vhd_progress_fn progress,
                       void *opaque) VHD_WUR;

/* Point a differencing disk (opened with VHD_OPEN_NO_PARENT when its old
 * parent is gone) at NEW_PARENT.  Unless VHD_REBASE_UNSAFE, the new
 * parent must carry the identity the child records. */
#define VHD_REBASE_UNSAFE 0x1U
extern int vhd_rebase (struct vhd_disk *disk, const char *new_parent,
                       unsigned flags) VHD_WUR;

/* Check an image's structures without trusting them (the file need not
 * open).  fn receives one message per finding.  Returns -1 when the check
 * could not run, else a combination of VHD_CHECK_CORRUPT (corruption left
 * unrepaired) and VHD_CHECK_LEAKS (unused space), 0 when clean.  With
 * VHD_CHECK_REPAIR, what can be fixed safely is fixed and reported with
 * severity VHD_CHECK_REPAIRED. */
#define VHD_CHECK_REPAIR 0x1U
#define VHD_CHECK_CORRUPT  0x1
#define VHD_CHECK_LEAKS    0x2
#define VHD_CHECK_REPAIRED 0x4
#define VHD_CHECK_INFO     0x8
typedef void (*vhd_check_fn) (void *opaque, int severity,
                              const char *message);
extern int vhd_check (const char *path, unsigned flags, vhd_check_fn fn,
                      void *opaque) VHD_WUR;

/* Asynchronous I/O (libvhd(3), ASYNCHRONOUS I/O).  Each submit call
 * checks its arguments like its synchronous twin and returns -1 when it
 * refuses the request, or a cookie (> 0) when it takes it; cb (may be
 * NULL) is then called exactly once, with 0 or an errno, from
 * vhd_aio_poll in the polling thread (or at the latest from vhd_close).
 * Buffers must stay valid until then.  Requests in flight together have
 * no defined order, and their callbacks may run in any order.
 * vhd_aio_get_fd returns an eventfd that is readable while completions
 * wait for vhd_aio_poll, which runs their callbacks and returns how many
 * it ran.  vhd_aio_in_flight counts requests whose callback has not yet
 * started. */
typedef void (*vhd_aio_callback) (void *opaque, int error);
extern int vhd_aio_get_fd (struct vhd_disk *disk);
extern int64_t vhd_aio_pread (struct vhd_disk *disk, void *buf, size_t count,
                              uint64_t offset, vhd_aio_callback cb,
                              void *opaque) VHD_WUR;
extern int64_t vhd_aio_pwrite (struct vhd_disk *disk, const void *buf,
                               size_t count, uint64_t offset,
                               vhd_aio_callback cb, void *opaque) VHD_WUR;
/* Covers every write completed or in flight when it is submitted. */
extern int64_t vhd_aio_flush (struct vhd_disk *disk, vhd_aio_callback cb,
                              void *opaque) VHD_WUR;
extern int64_t vhd_aio_discard (struct vhd_disk *disk, uint64_t offset,
                                uint64_t count, vhd_aio_callback cb,
                                void *opaque) VHD_WUR;
extern int64_t vhd_aio_write_zeroes (struct vhd_disk *disk, uint64_t offset,
                                     uint64_t count, unsigned flags,
                                     vhd_aio_callback cb, void *opaque)
  VHD_WUR;
extern int vhd_aio_poll (struct vhd_disk *disk);
extern int64_t vhd_aio_in_flight (struct vhd_disk *disk);
/* With direct non-zero, later requests move data with O_DIRECT (past the
 * host page cache, truly in parallel) where buffer, offset and length
 * suit the file system; the rest stays buffered.  Off by default, on
 * for handles opened with VHD_OPEN_DIRECT. */
extern int vhd_aio_set_direct (struct vhd_disk *disk, int direct);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif
#endif /* LIBVHD_H */
