/* internal.h: the library's inner interfaces.
 *
 *   handle.c     public wrappers: lock, validate, call the *_unlocked core
 *   chain.c      reads and writes through the differencing chain
 *   aio*.c       the asynchronous API (vhd_aio_*), on libaio
 *   format.c     the table of format drivers and probing
 *   io-*.c       byte sources (file, memory) behind struct io
 *   vhd/ vhdx/ raw/   format drivers behind struct format_ops
 *
 * Data flows down: drivers never call the public API, byte sources never
 * call drivers.
 */
#ifndef LIBVHD_INTERNAL_H
#define LIBVHD_INTERNAL_H

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "libvhd.h"

#define VHD_LIB_VERSION "0.1.0"
#define SECTOR_SIZE 512U
/* Longest chain we follow; deeper chains are refused as likely loops. */
#define MAX_CHAIN_DEPTH 256U

/* --- errors.c ---------------------------------------------------------- */

/* Record the calling thread's error: "CONTEXT: message".  Sets errno. */
void set_error (int errnum, const char *fs, ...)
  __attribute__ ((format (printf, 2, 3)));
/* Prefix a message already recorded with more context ("FILE: ..."). */
void prefix_error (const char *fs, ...) __attribute__ ((format (printf, 1, 2)));
/* The public function being run, used as the message prefix. */
void set_error_context (const char *context);
/* The thread's last message without that prefix (for wrapping it into
 * another message); "unknown error" when there is none. */
const char *error_message (void);
/* The thread's error as it is, to put back after cleanup that may fail
 * too (the first error is the one to report). */
#define ERROR_MESSAGE_MAX 1024
struct saved_error {
  int errnum;
  char message[ERROR_MESSAGE_MAX];
};
void save_error (struct saved_error *e);
void restore_error (const struct saved_error *e);

/* --- byte sources (io-file.c, io-mem.c) -------------------------------- */

struct io;

/* Each returns 0 or -1 after set_error ().  pread fails on a short read:
 * a structure that runs past the end of the file is corruption. */
struct io_ops {
  const char *name;
  int (*pread) (struct io *io, void *buf, size_t count, uint64_t offset);
  int (*pwrite) (struct io *io, const void *buf, size_t count,
                 uint64_t offset);
  int (*flush) (struct io *io);
  int64_t (*get_size) (struct io *io);
  int (*truncate) (struct io *io, uint64_t size);
  /* Give [offset, offset+count) back to the host; reads then see zeros. */
  int (*punch_hole) (struct io *io, uint64_t offset, uint64_t count);
  /* OPTIONAL (NULL: cannot).  Make [offset, offset+count) read as zeros
   * without writing them, keeping the space allocated on the host. */
  int (*zero_range) (struct io *io, uint64_t offset, uint64_t count);
  /* Whether offset (< size) lies in data or in a hole of the host file,
   * and how far that run goes (at most to the end of the file). */
  int (*run_at) (struct io *io, uint64_t offset, bool *data,
                 uint64_t *length);
  /* Host bytes in use (st_blocks), or the size for memory. */
  int64_t (*allocated) (struct io *io);
  void (*close) (struct io *io);
  /* OPTIONAL (NULL: none).  The descriptor behind the source, which the
   * asynchronous API (aio.c) reads and writes data through; -1 when there
   * is none (memory).  Owned by the source. */
  int (*fd) (struct io *io);
  /* OPTIONAL (NULL: none).  A second descriptor on the same file, opened
   * with O_DIRECT on first use and owned by the source, with the
   * alignment its transfers need (buffer; offset and length); -1 when the
   * file system offers no direct I/O or does not report the alignment. */
  int (*direct_fd) (struct io *io, uint32_t *mem_align,
                    uint32_t *offset_align);
};

struct io {
  const struct io_ops *ops;
  bool readonly;
};

static inline int
io_pread (struct io *io, void *buf, size_t count, uint64_t offset)
{
  return io->ops->pread (io, buf, count, offset);
}

static inline int
io_pwrite (struct io *io, const void *buf, size_t count, uint64_t offset)
{
  return io->ops->pwrite (io, buf, count, offset);
}

static inline int
io_flush (struct io *io)
{
  return io->ops->flush (io);
}

static inline int64_t
io_get_size (struct io *io)
{
  return io->ops->get_size (io);
}

/* The result of an optional host operation: 1 done, 0 when the host
 * cannot do it (the caller writes instead), -1 after set_error. */
static inline int
io_try_result (int r, const char *what, uint64_t offset, uint64_t len)
{
  if (r == 0)
    return 1;
  if (errno == EOPNOTSUPP || errno == ENOTSUP || errno == ENOSYS)
    return 0;
  prefix_error ("%s %" PRIu64 " bytes at offset %" PRIu64, what, len,
                offset);
  return -1;
}

/* Punch [offset, offset+len) (partial host blocks are zeroed): 1 done,
 * 0 when the host cannot punch, -1 after set_error. */
static inline int
io_try_punch (struct io *io, uint64_t offset, uint64_t len)
{
  if (len == 0)
    return 1;
  return io_try_result (io->ops->punch_hole (io, offset, len),
                        "giving back", offset, len);
}

/* Make [offset, offset+len) read as zeros without writing them: punched
 * when its space may go (unmap), else zeroed and kept allocated (a
 * caller that asked for no hole must not find ENOSPC later).  1, 0 or
 * -1 as io_try_punch. */
static inline int
io_try_zero (struct io *io, uint64_t offset, uint64_t len, bool unmap)
{
  if (unmap || len == 0)
    return io_try_punch (io, offset, len);
  if (io->ops->zero_range == NULL)
    return 0;
  return io_try_result (io->ops->zero_range (io, offset, len), "zeroing",
                        offset, len);
}

/* Write zeros over [offset, offset+len) (io-zero.c).  0 or -1. */
int io_write_zeros (struct io *io, uint64_t offset, uint64_t len);
/* Make [offset, offset+len) read as zeros: punched where the host can,
 * else written.  0 or -1. */
int io_zero_or_write (struct io *io, uint64_t offset, uint64_t len);

/* Whether [offset, offset + length) of the file is all holes, taking no
 * space on the host (false when that cannot be told). */
static inline bool
io_is_hole (struct io *io, uint64_t offset, uint64_t length)
{
  bool data;
  uint64_t run;

  return length > 0 && io->ops->run_at
         && io->ops->run_at (io, offset, &data, &run) == 0 && !data
         && run >= length;
}

static inline int
io_fd (struct io *io)
{
  return io->ops->fd ? io->ops->fd (io) : -1;
}

static inline int
io_direct_fd (struct io *io, uint32_t *mem_align, uint32_t *offset_align)
{
  return io->ops->direct_fd ? io->ops->direct_fd (io, mem_align, offset_align)
                            : -1;
}

/* Open a file byte source; create says O_CREAT|O_EXCL. */
struct io *io_file_open (const char *path, bool readonly, bool create);
/* Send every transfer that suits it through an O_DIRECT descriptor (the
 * page cache is bypassed for data; small or unaligned metadata stays
 * buffered).  ENOTSUP when the file system cannot. */
int io_file_use_direct (struct io *io);
/* Identity of an open file source, for loop detection; 0 on success. */
int io_file_identity (struct io *io, uint64_t *dev, uint64_t *ino);

/* A byte source in memory, starting as a copy of data (may be NULL/0). */
struct io *io_mem_new (const void *data, size_t len);
/* The current contents (valid until the next write or close). */
const uint8_t *io_mem_data (struct io *io, size_t *len);
/* Fault injection: after `writes` more successful writes, every write,
 * flush and truncate fails with EIO (a crash).  With tear, the failing
 * write first stores its first half.  A negative count switches it off. */
void io_mem_fail_after (struct io *io, long writes, bool tear);
/* Writes done so far (for counting a path's write points). */
long io_mem_write_count (struct io *io);
/* Let reads more reads through, then fail every read with EIO. */
void io_mem_fail_reads_after (struct io *io, long reads);
/* Reads so far. */
long io_mem_read_count (struct io *io);

/* --- format drivers ---------------------------------------------------- */

/* What one layer says about a range of the virtual disk. */
enum layer_state {
  LAYER_DATA,   /* stored in this file at host_offset */
  LAYER_ZERO,   /* reads as zeros without storage; hides the parent */
  LAYER_ABSENT, /* not in this layer: the parent's, or zeros at the base */
};

struct extent {
  uint64_t length;      /* > 0, within the range asked for */
  enum layer_state state;
  uint64_t host_offset; /* for LAYER_DATA */
};

/* Parameters of a new image, validated by vhd_create before the driver
 * sees them. */
struct create_params {
  enum vhd_type type;
  uint64_t size;
  uint32_t block_size;          /* 0: the format's default */
  uint32_t logical_sector, physical_sector;
  struct vhd_disk *parent;      /* differencing: the opened parent */
  const char *parent_path;      /* as given by the user */
  const char *parent_abs_path;  /* absolute, resolved */
  const char *parent_rel_path;  /* relative to the child's directory */
  /* set_parent: also accept this coming link ID of the parent (VHDX
   * parent_linkage2), or NULL. */
  const uint8_t *parent_link_id2;
};

/* check.c: findings of a structure check.  Drivers call check_report
 * with a severity (VHD_CHECK_CORRUPT, _LEAKS, _REPAIRED, _INFO). */
struct check_ctx {
  bool repair;
  int found;              /* VHD_CHECK_CORRUPT | VHD_CHECK_LEAKS left */
  vhd_check_fn fn;
  void *opaque;
};
void check_report (struct check_ctx *c, int severity, const char *fs, ...)
  __attribute__ ((format (printf, 3, 4)));

/* A format driver.  Every member is required; the core never checks for
 * NULL.  Members are called with the handle's lock held and return 0 or
 * -1 after set_error (). */
struct format_ops {
  const char *name;
  enum vhd_format format;
  size_t instance_size; /* the core allocates d->priv of this size */

  /* Confidence 0..100 that the image is ours, from its first bytes (up to
   * 64 KiB) and its last 512 bytes (tail_len may be less for tiny files). */
  int (*probe) (const uint8_t *head, size_t head_len, const uint8_t *tail,
                size_t tail_len);

  /* Read the metadata of d->io and fill the generic fields of d (size,
   * type, sector and block sizes, id, link_id, parent candidates).
   * Must leave nothing behind that close cannot free. */
  int (*open) (struct vhd_disk *d);
  /* Free d->priv's contents; copes with a partly opened d. */
  void (*close) (struct vhd_disk *d);

  /* The state of the run that starts at offset, at most count bytes long.
   * offset < d->size, count > 0. */
  int (*map) (struct vhd_disk *d, uint64_t offset, uint64_t count,
              struct extent *e);

  /* Write whole logical sectors within d->size, allocating as needed; the
   * sectors written become this layer's. */
  int (*pwrite) (struct vhd_disk *d, const void *buf, size_t count,
                 uint64_t offset);

  /* Make every completed write durable, metadata included. */
  int (*flush) (struct vhd_disk *d);
  /* Whether flush has more to do than make the data durable: metadata
   * waiting in memory, space to release, an earlier failure to report.
   * Called with the lock held shared; false lets the core flush the data
   * while writes in place go on. */
  bool (*flush_needs_metadata) (struct vhd_disk *d);

  /* OPTIONAL (NULL: the core writes zero sectors instead).  Make whole
   * logical sectors [offset, offset+count) read as zeros without writing
   * zero data: mark blocks zero, or free them (VHD_ZERO_MAY_UNMAP).
   * Returns how many bytes from offset it handled, or 0 when it cannot do
   * the first part this way (the core then writes zeros up to the next
   * block boundary and asks again), or -1 after set_error (). */
  int64_t (*zero) (struct vhd_disk *d, uint64_t offset, uint64_t count,
                   unsigned flags);
/* A zero flag of the library's own (beside VHD_ZERO_*): the range already
 * reads as zeros (compact), so the disk's view does not change and its
 * identity for children (a VHDX DataWriteGuid) stays. */
#define ZERO_VIEW_UNCHANGED 0x80000000U

  /* Write a new, empty image into io (an empty byte source). */
  int (*create) (struct io *io, const struct create_params *p);

  /* The operations below are OPTIONAL: NULL means the format does not
   * support it (the core reports ENOTSUP).  All are called on a handle
   * opened read-write, after a flush, with the lock held. */

  /* Make whole blocks [offset, offset+count) (block-aligned) absent from
   * this layer: the parent shows through in a differencing disk, zeros
   * in a base disk.  Storage is freed or left for defragment. */
  int (*unmap) (struct vhd_disk *d, uint64_t offset, uint64_t count);

  /* Move the blocks down to fill holes and shorten the file, crash-safe:
   * copy, switch the BAT entry (ordered write or log), then reuse. */
  int (*defragment) (struct vhd_disk *d, vhd_progress_fn progress,
                     void *opaque);

  /* Change the virtual size.  The core has checked that on a shrink no
   * data of this layer lies past new_size. */
  int (*resize) (struct vhd_disk *d, uint64_t new_size);

  /* Record p->parent (opened) as the parent: identity, locators, and
   * p->parent_link_id2 where the format has room for a second link ID
   * (records_link_id2). */
  int (*set_parent) (struct vhd_disk *d, const struct create_params *p);
  bool records_link_id2;

  /* Check the structures in io without trusting them; see check.c. */
  int (*check) (struct io *io, struct check_ctx *c);
};

extern const struct format_ops raw_format_ops;
extern const struct format_ops vhd_format_ops;
extern const struct format_ops vhdx_format_ops;

/* format.c */
const struct format_ops *format_by_id (enum vhd_format format);
/* The best-scoring driver for an image (raw when nothing else claims it). */
const struct format_ops *format_probe (struct io *io);

/* --- handles ------------------------------------------------------------ */

#define MAX_PARENT_CANDIDATES 8

struct aio_state;

struct vhd_disk {
  /* Held shared by reads, allocation maps and writes in place (data
   * already stored in this file: nothing but the data changes); held
   * exclusive by every call that allocates or changes metadata. */
  pthread_rwlock_t lock;
  /* Serializes the driver's map, which fills caches (bitmaps, BAT pages)
   * even for readers; taken inside the lock, per layer (disk_map). */
  pthread_mutex_t map_lock;
  /* A driver write has succeeded since open and none has failed since:
   * the driver has prepared the file (VHDX renews its headers before the
   * first change), so data writes in place may bypass it.  Changed only
   * with the lock held exclusive. */
  bool writes_in_place;
  struct aio_state *aio;      /* aio.c: created by the first vhd_aio_ call */
  const struct format_ops *ops;
  void *priv;
  struct io *io;
  char *filename;             /* as opened */
  unsigned flags;
  bool readonly;
  struct vhd_disk *parent;    /* owned; opened read-only */
  unsigned depth_below;       /* layers below this one */

  /* Filled by the driver's open. */
  uint64_t size;
  enum vhd_type type;
  uint32_t block_size;        /* 0 when blockless */
  uint32_t logical_sector, physical_sector;
  uint32_t write_align;       /* pwrite granularity; 0 = logical sector */
  uint8_t id[16];             /* shown as the image's ID */
  uint8_t link_id[16];        /* what a child records of this parent */
  uint8_t parent_link_id[16]; /* differencing: what we expect of ours */
  /* Differencing: a second link ID accepted for the parent (VHDX
   * parent_linkage2: the one a commit in progress is giving it); all
   * zeros when none. */
  uint8_t parent_link_id2[16];
  /* All zeros, or the link ID this image takes when its data first
   * changes (a VHDX DataWriteGuid chosen in advance by commit, which has
   * announced it to the child). */
  uint8_t next_link_id[16];
  char creator[64];
  bool log_dirty;
  /* Set by vhd_compact while it drops blocks that its defragment will
   * move others into: space freed meanwhile is neither punched nor
   * reused, and the defragment reclaims it (overwriting beats punching
   * and then filling new space). */
  bool defer_release;
  /* Differencing: paths to try, most trusted first, as recorded (may be
   * relative to the image's directory or use backslashes). */
  char *parent_candidates[MAX_PARENT_CANDIDATES];
  unsigned n_parent_candidates;
  char *parent_hint;          /* the candidate that resolved, or the first */
};

/* open.c: whether p carries the identity d records of its parent. */
bool disk_parent_matches (const struct vhd_disk *d, const struct vhd_disk *p);

/* Add a recorded parent path (copied); ignores empty strings. */
int disk_add_parent_candidate (struct vhd_disk *d, const char *path);

/* open.c: open a handle over a byte source (taking ownership of io,
 * also on failure).  parent, when given, is used instead of resolving
 * one (memory images in tests) and is owned from then on. */
struct vhd_disk *disk_open_io (struct io *io, const char *name,
                               unsigned flags, struct vhd_disk *parent);
/* Open a file and, unless VHD_OPEN_NO_PARENT, its whole chain; the top
 * image's parent is parent_path when that is not NULL. */
struct vhd_disk *disk_open_path (const char *path, unsigned flags,
                                 const char *parent_path);
/* Flush (read-write handles) and free, without touching the error
 * context: internal code closes handles in the middle of public calls. */
void disk_close (struct vhd_disk *d);
void disk_free (struct vhd_disk *d);

/* handle.c: argument checks of the public calls (synchronous and
 * asynchronous alike), each recording its error. */
bool valid_disk (struct vhd_disk *d);                 /* EFAULT */
bool valid_buffer (const void *buf);                  /* EFAULT */
bool valid_writable (struct vhd_disk *d);             /* EROFS */
/* [offset, offset+count) inside the disk (ERANGE). */
bool valid_range (struct vhd_disk *d, uint64_t count, uint64_t offset);

/* chain.c: the driver's map of one layer under its map_lock, with the
 * contract checked (a run is never empty). */
int disk_map (struct vhd_disk *d, uint64_t offset, uint64_t count,
              struct extent *e);

/* chain.c: the core of the public calls; arguments already validated.
 * Reads and block status need d's lock shared, the rest exclusive. */
int chain_pread (struct vhd_disk *d, void *buf, size_t count,
                 uint64_t offset);
int chain_pwrite (struct vhd_disk *d, const void *buf, size_t count,
                  uint64_t offset);
int chain_flush (struct vhd_disk *d);
int chain_flush_data (struct vhd_disk *d);
/* A write that needs nothing but the data written (lock held shared):
 * every byte already stored in d's own file, aligned, and the driver
 * ready (writes_in_place).  0 done, -1 error, 1 not possible: take the
 * lock exclusive and call chain_pwrite. */
int chain_write_in_place (struct vhd_disk *d, const void *buf, size_t count,
                          uint64_t offset);
/* Whether chain_write_in_place would write it (1) or not (0); -1 on
 * error.  Writes nothing. */
int chain_can_write_in_place (struct vhd_disk *d, size_t count,
                              uint64_t offset);
/* Write part of one unit of write alignment: read it, patch, write. */
int chain_write_partial (struct vhd_disk *d, const void *src, size_t len,
                         uint64_t offset);
int chain_write_zeroes (struct vhd_disk *d, uint64_t offset, uint64_t count,
                        unsigned flags);
int chain_block_status (struct vhd_disk *d, uint64_t offset, uint64_t count,
                        unsigned flags, vhd_extent_fn fn, void *opaque);
/* Bytes of the virtual disk that d's own file holds. */
int64_t disk_allocated_bytes (struct vhd_disk *d);

/* aio.c: wait until no asynchronous transfer of d is left in the kernel
 * (their completions stay queued for vhd_aio_poll).  Called, with d's
 * lock held, before anything that frees or moves storage or must cover
 * every write: flush, write zeroes, the operations. */
void aio_drain (struct vhd_disk *d);
/* Wait for d's transfers, run every callback not yet run, free the
 * state.  Called by disk_free. */
void aio_close (struct vhd_disk *d);

/* Granularity of driver writes: the logical sector unless the driver
 * says otherwise (raw: 1). */
static inline uint32_t
disk_write_align (const struct vhd_disk *d)
{
  if (d->write_align)
    return d->write_align;
  return d->logical_sector ? d->logical_sector : SECTOR_SIZE;
}

/* create.c: a parent's path, absolute and relative to the directory of
 * the child (which formats record both of). */
struct parent_paths {
  char abs[4096];
  char *rel; /* malloc'd */
};
int resolve_parent_paths (const char *child, const char *parent,
                          struct parent_paths *pp);

/* utf16.c: conversions for parent names and locators.  Each returns the
 * number of bytes written (excluding the NUL of utf8 output) or -1. */
ssize_t utf8_to_utf16 (const char *in, uint8_t *out, size_t out_size,
                       bool big_endian);
char *utf16_to_utf8 (const uint8_t *in, size_t in_len, bool big_endian);

/* uuid helpers (uuid.c). */
void uuid_to_string (const uint8_t id[16], char out[37]);
void uuid_generate_bytes (uint8_t id[16]);
bool uuid_is_null_bytes (const uint8_t id[16]);

#endif /* LIBVHD_INTERNAL_H */
