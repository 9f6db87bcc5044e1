/* fuzz-common.h: helpers shared by the libFuzzer targets in tests/fuzz/.
 *
 *   FUZZ_ASSERT      a broken contract: print why, then abort (libFuzzer
 *                    saves the input as a crash)
 *   clear_error, check_failure
 *                    every call that fails must set errno and a message
 *   fix_vhd_*, fix_vhdx_*
 *                    recompute the checksum of one structure in a buffer
 *   sparse_io        a byte source of segments over zeros, for images
 *                    given as a few KiB of input (a VHDX needs at least
 *                    3 MiB) and for laying checksum fixes over an input;
 *                    fix_checksums () fixes every VHD/VHDX structure at
 *                    its usual place, so that mutations reach the code
 *                    behind the checksum checks
 *   driver_check     the format driver's structure check (vhd_check)
 *   guard_io         io-mem.c behind a cap on growth (no multi-GiB
 *                    images in memory) and, for read-only opens, an abort
 *                    on any attempt to write
 *
 * Everything is static: each target includes this once.
 */
#ifndef LIBVHD_FUZZ_COMMON_H
#define LIBVHD_FUZZ_COMMON_H

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "byteorder.h"
#include "internal.h"
#include "vhd/dynheader.h"
#include "vhd/footer.h"
#include "vhdx/crc32c.h"
#include "vhdx/header.h"
#include "vhdx/log.h"
#include "vhdx/region.h"

#define FUZZ_MiB (UINT64_C (1) << 20)

#define FUZZ_ASSERT(cond, ...)                                               \
  do {                                                                       \
    if (!(cond)) {                                                           \
      fprintf (stderr, "%s:%d: contract broken: %s: ", __FILE__, __LINE__,   \
               #cond);                                                       \
      fprintf (stderr, __VA_ARGS__);                                         \
      fprintf (stderr, " (last error: %s)\n",                                \
               vhd_get_error () ? vhd_get_error () : "none");                \
      abort ();                                                              \
    }                                                                        \
  } while (0)

/* Forget the calling thread's last error, so that a failure that sets
 * none can be told apart (every -1 must come with errno and message). */
static inline void
clear_error (void)
{
  set_error_context (NULL);
  set_error (0, "%s", "");
}

static inline void
check_failure (const char *what)
{
  FUZZ_ASSERT (vhd_get_errno () != 0 && vhd_get_error () != NULL,
               "%s failed without setting an error", what);
}

/* --- checksum fix-ups ----------------------------------------------------- */

static inline bool
fix_vhd_footer (uint8_t *p)
{
  uint32_t want;

  if (!vhd_footer_has_cookie (p))
    return false;
  want = vhd_footer_checksum (p);
  if (get_be32 (p + VHD_FTR_CHECKSUM) == want)
    return false;
  put_be32 (p + VHD_FTR_CHECKSUM, want);
  return true;
}

static inline bool
fix_vhd_dynheader (uint8_t *buf, size_t len, uint64_t off)
{
  uint8_t *p;
  uint32_t want;

  if (off > len || len - off < VHD_DYN_SIZE)
    return false;
  p = buf + off;
  if (memcmp (p + VHD_DYN_COOKIE, VHD_DYN_COOKIE_STR, 8) != 0)
    return false;
  want = vhd_dynheader_checksum (p);
  if (get_be32 (p + VHD_DYN_CHECKSUM) == want)
    return false;
  put_be32 (p + VHD_DYN_CHECKSUM, want);
  return true;
}

static inline bool
fix_vhdx_crc (uint8_t *buf, size_t len, uint64_t off, uint32_t magic,
              size_t size, size_t csum_off)
{
  uint8_t *p;
  uint32_t want;

  if (off > len || len - off < size || get_le32 (buf + off) != magic)
    return false;
  p = buf + off;
  want = vhdx_checksum (p, size, csum_off);
  if (get_le32 (p + csum_off) == want)
    return false;
  put_le32 (p + csum_off, want);
  return true;
}

/* Every log entry header in log[0..len) (len a multiple of 4 KiB): the
 * CRC-32C over the entry's sectors, wrapping at the end of the log. */
static inline bool
fix_vhdx_log (uint8_t *log, size_t len)
{
  uint8_t *tmp;
  bool changed = false;
  size_t off, i;

  if (len == 0 || len % VHDX_LOG_SECTOR || len > 128 * FUZZ_MiB)
    return false;
  tmp = malloc (len);
  if (tmp == NULL)
    return false;
  for (off = 0; off < len; off += VHDX_LOG_SECTOR) {
    uint8_t *h = log + off;
    uint32_t length = get_le32 (h + VHDX_LOGE_LENGTH), want;
    if (get_le32 (h + VHDX_LOGE_SIGNATURE) != VHDX_LOGE_MAGIC
        || length == 0 || length % VHDX_LOG_SECTOR || length > len)
      continue;
    for (i = 0; i < length; i += VHDX_LOG_SECTOR)
      memcpy (tmp + i, log + (off + i) % len, VHDX_LOG_SECTOR);
    want = vhdx_checksum (tmp, length, VHDX_LOGE_CHECKSUM);
    if (get_le32 (h + VHDX_LOGE_CHECKSUM) != want) {
      put_le32 (h + VHDX_LOGE_CHECKSUM, want);
      changed = true;
    }
  }
  free (tmp);
  return changed;
}

/* --- sparse images ------------------------------------------------------- */

/* A byte source made of segments over zeros: how the open targets take a
 * VHDX (whose structures lie 1 MiB apart) as a few KiB of input, and how
 * checksum fixes are laid over an input without copying it.  Later
 * segments win.  Writes add segments (copied); past `cap` they fail with
 * ENOSPC, like a full disk; with forbid_writes any write aborts. */
struct seg {
  uint64_t offset, length;
  const uint8_t *data; /* NULL: zeros */
  uint8_t *owned;      /* data, when this store owns it */
};

struct sparse_io {
  struct io io;
  uint64_t size, cap;
  bool forbid_writes;
  struct seg *v;
  size_t n, n_alloc;
};

#define SPARSE_MAGIC "VHDFUZZ1"
#define SPARSE_MAX_INPUT_SEGS 512
#define SPARSE_MAX_SIZE (UINT64_C (1) << 40)

static inline int
sparse_add (struct sparse_io *s, uint64_t offset, const uint8_t *data,
            uint64_t length, bool copy)
{
  struct seg g = { offset, length, data, NULL };

  if (length == 0)
    return 0;
  if (s->n == s->n_alloc) {
    size_t n = s->n_alloc ? 2 * s->n_alloc : 16;
    struct seg *v = realloc (s->v, n * sizeof *v);
    if (v == NULL)
      abort ();
    s->v = v, s->n_alloc = n;
  }
  if (copy && data) {
    g.owned = malloc ((size_t) length);
    if (g.owned == NULL)
      abort ();
    memcpy (g.owned, data, (size_t) length);
    g.data = g.owned;
  }
  s->v[s->n++] = g;
  return 0;
}

static inline int
sp_pread (struct io *io, void *buf, size_t count, uint64_t offset)
{
  struct sparse_io *s = (struct sparse_io *) io;
  uint64_t end = offset + count;
  size_t i;

  if (offset > s->size || count > s->size - offset) {
    set_error (EIO, "unexpected end of file at offset %" PRIu64, offset);
    return -1;
  }
  if (count == 0)
    return 0;
  memset (buf, 0, count);
  for (i = 0; i < s->n; i++) {
    const struct seg *g = &s->v[i];
    uint64_t a = g->offset > offset ? g->offset : offset;
    uint64_t b = g->offset + g->length < end ? g->offset + g->length : end;
    if (a >= b)
      continue;
    if (g->data)
      memcpy ((uint8_t *) buf + (a - offset), g->data + (a - g->offset),
              (size_t) (b - a));
    else
      memset ((uint8_t *) buf + (a - offset), 0, (size_t) (b - a));
  }
  return 0;
}

static inline int
sp_check_write (struct sparse_io *s, const char *what, uint64_t offset,
                uint64_t end)
{
  FUZZ_ASSERT (!s->forbid_writes,
               "%s at offset %" PRIu64 " through a read-only handle", what,
               offset);
  if (end > s->cap || end < offset) {
    set_error (ENOSPC, "fuzz: %s up to %" PRIu64 " past the %" PRIu64
               "-byte cap of the memory image", what, end, s->cap);
    return -1;
  }
  return 0;
}

static inline int
sp_pwrite (struct io *io, const void *buf, size_t count, uint64_t offset)
{
  struct sparse_io *s = (struct sparse_io *) io;

  if (sp_check_write (s, "pwrite", offset, offset + count) == -1)
    return -1;
  sparse_add (s, offset, buf, count, true);
  if (offset + count > s->size)
    s->size = offset + count;
  return 0;
}

static inline int
sp_flush (struct io *io)
{
  return 0;
}

static inline int64_t
sp_get_size (struct io *io)
{
  return (int64_t) ((struct sparse_io *) io)->size;
}

static inline int
sp_truncate (struct io *io, uint64_t size)
{
  struct sparse_io *s = (struct sparse_io *) io;

  if (sp_check_write (s, "truncate", size, size) == -1)
    return -1;
  if (size < s->size) /* what lay past the end reads as zeros again */
    sparse_add (s, size, NULL, s->size - size, false);
  s->size = size;
  return 0;
}

static inline int
sp_punch_hole (struct io *io, uint64_t offset, uint64_t count)
{
  struct sparse_io *s = (struct sparse_io *) io;

  if (sp_check_write (s, "punch_hole", offset, offset) == -1)
    return -1;
  if (offset < s->size)
    sparse_add (s, offset, NULL,
                count < s->size - offset ? count : s->size - offset, false);
  return 0;
}

static inline int
sp_run_at (struct io *io, uint64_t offset, bool *data, uint64_t *length)
{
  struct sparse_io *s = (struct sparse_io *) io;

  if (offset >= s->size) {
    set_error (EIO, "offset %" PRIu64 " past the end of file", offset);
    return -1;
  }
  *data = true;
  *length = s->size - offset;
  return 0;
}

static inline int64_t
sp_allocated (struct io *io)
{
  return sp_get_size (io);
}

static inline void
sp_close (struct io *io)
{
  struct sparse_io *s = (struct sparse_io *) io;
  size_t i;

  for (i = 0; i < s->n; i++)
    free (s->v[i].owned);
  free (s->v);
  free (s);
}

static const struct io_ops sparse_ops = {
  .name = "fuzz-sparse",
  .pread = sp_pread,
  .pwrite = sp_pwrite,
  .flush = sp_flush,
  .get_size = sp_get_size,
  .truncate = sp_truncate,
  .punch_hole = sp_punch_hole,
  .run_at = sp_run_at,
  .allocated = sp_allocated,
  .close = sp_close,
};

static inline struct sparse_io *
sparse_new (uint64_t size, uint64_t growth, bool forbid_writes)
{
  struct sparse_io *s = calloc (1, sizeof *s);

  if (s == NULL)
    abort ();
  s->io.ops = &sparse_ops;
  s->io.readonly = forbid_writes;
  s->size = size;
  s->cap = size + growth;
  s->forbid_writes = forbid_writes;
  return s;
}

/* A copy whose segments of the input stay shared (valid as long as the
 * input is), written ones copied. */
static inline struct sparse_io *
sparse_clone (const struct sparse_io *s, bool forbid_writes)
{
  struct sparse_io *c = sparse_new (s->size, s->cap - s->size,
                                    forbid_writes);
  size_t i;

  for (i = 0; i < s->n; i++)
    sparse_add (c, s->v[i].offset, s->v[i].data, s->v[i].length,
                s->v[i].owned != NULL);
  return c;
}

static inline bool
is_sparse_input (const uint8_t *data, size_t size)
{
  return size >= 16 && memcmp (data, SPARSE_MAGIC, 8) == 0;
}

/* The input format of the open targets' sparse images:
 *   "VHDFUZZ1", le64 file size (taken modulo 1 TiB + 1), then segments
 *   { le64 offset, le32 length, length bytes } to the end of the input
 *   (the last one may be short; at most 512 count).
 * make-seeds.sh makes them from images with `seed-tool sparse`. */
static inline struct sparse_io *
sparse_from_input (const uint8_t *data, size_t size, uint64_t growth,
                   bool forbid_writes)
{
  struct sparse_io *s = sparse_new (get_le64 (data + 8)
                                      % (SPARSE_MAX_SIZE + 1),
                                    growth, forbid_writes);
  size_t pos = 16;

  while (size - pos >= 12 && s->n < SPARSE_MAX_INPUT_SEGS) {
    uint64_t off = get_le64 (data + pos);
    uint64_t len = get_le32 (data + pos + 8);
    pos += 12;
    if (len > size - pos)
      len = size - pos;
    if (off < s->size) /* nothing past the end: growing shows zeros */
      sparse_add (s, off, data + pos,
                  len < s->size - off ? len : s->size - off, false);
    pos += (size_t) len;
  }
  return s;
}

/* Write the image s holds to FILE when FUZZ_DUMP_IMAGE=FILE is set: how a
 * crash found on a sparse or checksum-fixed input becomes an image file. */
static inline void
sparse_dump (struct sparse_io *s, const char *what)
{
  const char *path = getenv ("FUZZ_DUMP_IMAGE");
  uint8_t *buf;
  uint64_t off;
  FILE *f;

  if (path == NULL || (f = fopen (path, "wb")) == NULL)
    return;
  buf = malloc (FUZZ_MiB);
  if (buf == NULL)
    abort ();
  for (off = 0; off < s->size; off += FUZZ_MiB) {
    size_t n = (size_t) (s->size - off < FUZZ_MiB ? s->size - off
                                                  : FUZZ_MiB);
    sp_pread (&s->io, buf, n, off);
    fwrite (buf, 1, n, f);
  }
  fclose (f);
  free (buf);
  fprintf (stderr, "fuzz: %s image (%" PRIu64 " bytes) written to %s\n",
           what, s->size, path);
}

/* --- checksum fix-ups over a byte source ---------------------------------- */

/* Fix the structure of `size` bytes at off in s; patches the checksum. */
static inline bool
fix_at (struct sparse_io *s, uint64_t off, size_t size, uint32_t magic,
        size_t csum_off)
{
  uint8_t *buf;
  bool changed;

  if (off > s->size || size > s->size - off)
    return false;
  buf = malloc (size);
  if (buf == NULL)
    abort ();
  sp_pread (&s->io, buf, size, off);
  changed = fix_vhdx_crc (buf, size, 0, magic, size, csum_off);
  if (changed)
    sparse_add (s, off + csum_off, buf + csum_off, 4, true);
  free (buf);
  return changed;
}

/* The log the VHDX header at hoff describes (logs up to 8 MiB). */
static inline bool
fix_log_at (struct sparse_io *s, uint64_t hoff)
{
  uint8_t h[VHDX_HDR_SIZE], *log, *orig;
  uint64_t loff, off;
  uint32_t llen;
  bool changed;

  if (hoff + VHDX_HDR_SIZE > s->size)
    return false;
  sp_pread (&s->io, h, sizeof h, hoff);
  if (get_le32 (h) != VHDX_HDR_MAGIC)
    return false;
  loff = get_le64 (h + VHDX_HDR_LOG_OFFSET);
  llen = get_le32 (h + VHDX_HDR_LOG_LENGTH);
  if (llen == 0 || llen > 8 * FUZZ_MiB || loff > s->size
      || llen > s->size - loff)
    return false;
  log = malloc (llen);
  orig = malloc (llen);
  if (log == NULL || orig == NULL)
    abort ();
  sp_pread (&s->io, log, llen, loff);
  memcpy (orig, log, llen);
  changed = fix_vhdx_log (log, llen);
  for (off = 0; changed && off < llen; off += VHDX_LOG_SECTOR)
    if (memcmp (log + off + VHDX_LOGE_CHECKSUM, orig + off
                + VHDX_LOGE_CHECKSUM, 4) != 0)
      sparse_add (s, loff + off + VHDX_LOGE_CHECKSUM,
                  log + off + VHDX_LOGE_CHECKSUM, 4, true);
  free (log);
  free (orig);
  return changed;
}

static inline bool
fix_vhd_at (struct sparse_io *s, uint64_t off, bool footer)
{
  uint8_t buf[VHD_DYN_SIZE];
  size_t size = footer ? VHD_FTR_SIZE : VHD_DYN_SIZE;
  size_t csum = footer ? VHD_FTR_CHECKSUM : VHD_DYN_CHECKSUM;
  bool changed;

  if (off > s->size || size > s->size - off)
    return false;
  sp_pread (&s->io, buf, size, off);
  changed = footer ? fix_vhd_footer (buf) : fix_vhd_dynheader (buf, size, 0);
  if (changed)
    sparse_add (s, off + csum, buf + csum, 4, true);
  return changed;
}

/* Recompute the checksums of every VHD or VHDX structure at its usual
 * place; true when anything changed. */
static inline bool
fix_checksums (struct sparse_io *s)
{
  uint8_t head[VHD_FTR_SIZE], tail[VHD_FTR_SIZE];
  bool changed = false;

  if (s->size < VHD_FTR_SIZE)
    return false;
  sp_pread (&s->io, head, sizeof head, 0);
  if (memcmp (head, VHDX_FILEID_MAGIC, 8) == 0) {
    /* The log first: its entries do not cover the headers. */
    changed |= fix_log_at (s, VHDX_HEADER1_OFFSET);
    changed |= fix_log_at (s, VHDX_HEADER2_OFFSET);
    changed |= fix_at (s, VHDX_HEADER1_OFFSET, VHDX_HDR_SIZE, VHDX_HDR_MAGIC,
                       VHDX_HDR_CHECKSUM);
    changed |= fix_at (s, VHDX_HEADER2_OFFSET, VHDX_HDR_SIZE, VHDX_HDR_MAGIC,
                       VHDX_HDR_CHECKSUM);
    changed |= fix_at (s, VHDX_REGION1_OFFSET, VHDX_RGN_SIZE, VHDX_RGN_MAGIC,
                       VHDX_RGN_CHECKSUM);
    changed |= fix_at (s, VHDX_REGION2_OFFSET, VHDX_RGN_SIZE, VHDX_RGN_MAGIC,
                       VHDX_RGN_CHECKSUM);
    return changed;
  }
  changed |= fix_vhd_at (s, s->size - VHD_FTR_SIZE, true);
  if (s->size >= 2 * VHD_FTR_SIZE)
    changed |= fix_vhd_at (s, 0, true);
  sp_pread (&s->io, head, sizeof head, 0);
  sp_pread (&s->io, tail, sizeof tail, s->size - VHD_FTR_SIZE);
  if (vhd_footer_has_cookie (tail))
    changed |= fix_vhd_at (s, get_be64 (tail + VHD_FTR_DATA_OFFSET), false);
  if (vhd_footer_has_cookie (head)
      && get_be64 (head + VHD_FTR_DATA_OFFSET)
           != get_be64 (tail + VHD_FTR_DATA_OFFSET))
    changed |= fix_vhd_at (s, get_be64 (head + VHD_FTR_DATA_OFFSET), false);
  return changed;
}

/* --- structure checks ----------------------------------------------------- */

static inline void
on_finding (void *opaque, int severity, const char *message)
{
  FUZZ_ASSERT (message != NULL && message[0] != '\0'
               && (severity == VHD_CHECK_CORRUPT || severity == VHD_CHECK_LEAKS
                   || severity == VHD_CHECK_REPAIRED
                   || severity == VHD_CHECK_INFO),
               "check finding of severity %d: \"%s\"", severity,
               message ? message : "(null)");
}

/* The format driver's structure check (what vhd_check runs before it
 * opens the image) over io, which it does not take.  The findings, or -1
 * when the check could not run. */
static inline int
driver_check (struct io *io, bool repair)
{
  struct check_ctx c = { repair, 0, on_finding, NULL };
  const struct format_ops *ops;

  clear_error ();
  ops = format_probe (io);
  if (ops == NULL) {
    check_failure ("format_probe");
    return -1;
  }
  if (ops->check == NULL)
    return 0;
  if (ops->check (io, &c) == -1) {
    check_failure ("check");
    return -1;
  }
  FUZZ_ASSERT ((c.found & ~(VHD_CHECK_CORRUPT | VHD_CHECK_LEAKS)) == 0,
               "check found 0x%x", c.found);
  return c.found;
}

/* --- a guarded byte source ---------------------------------------------- */

struct guard_io {
  struct io io;
  struct io *inner; /* io-mem.c */
  uint64_t cap;     /* largest size the image may grow to */
  bool forbid_writes;
};

static inline int
g_pread (struct io *io, void *buf, size_t count, uint64_t offset)
{
  struct guard_io *g = (struct guard_io *) io;
  return io_pread (g->inner, buf, count, offset);
}

static inline void
g_check_write (struct guard_io *g, const char *what, uint64_t offset)
{
  FUZZ_ASSERT (!g->forbid_writes,
               "%s at offset %" PRIu64 " through a read-only handle", what,
               offset);
}

static inline int
g_pwrite (struct io *io, const void *buf, size_t count, uint64_t offset)
{
  struct guard_io *g = (struct guard_io *) io;

  g_check_write (g, "pwrite", offset);
  if (offset > g->cap || count > g->cap - offset) {
    set_error (ENOSPC, "fuzz: write at %" PRIu64 " past the %" PRIu64
               "-byte cap of the memory image", offset, g->cap);
    return -1;
  }
  return io_pwrite (g->inner, buf, count, offset);
}

static inline int
g_flush (struct io *io)
{
  struct guard_io *g = (struct guard_io *) io;
  return io_flush (g->inner);
}

static inline int64_t
g_get_size (struct io *io)
{
  struct guard_io *g = (struct guard_io *) io;
  return io_get_size (g->inner);
}

static inline int
g_truncate (struct io *io, uint64_t size)
{
  struct guard_io *g = (struct guard_io *) io;

  g_check_write (g, "truncate", size);
  if (size > g->cap) {
    set_error (ENOSPC, "fuzz: truncate to %" PRIu64 " past the %" PRIu64
               "-byte cap of the memory image", size, g->cap);
    return -1;
  }
  return g->inner->ops->truncate (g->inner, size);
}

static inline int
g_punch_hole (struct io *io, uint64_t offset, uint64_t count)
{
  struct guard_io *g = (struct guard_io *) io;

  g_check_write (g, "punch_hole", offset);
  return g->inner->ops->punch_hole (g->inner, offset, count);
}

static inline int
g_run_at (struct io *io, uint64_t offset, bool *data, uint64_t *length)
{
  struct guard_io *g = (struct guard_io *) io;
  return g->inner->ops->run_at (g->inner, offset, data, length);
}

static inline int64_t
g_allocated (struct io *io)
{
  struct guard_io *g = (struct guard_io *) io;
  return g->inner->ops->allocated (g->inner);
}

static inline void
g_close (struct io *io)
{
  struct guard_io *g = (struct guard_io *) io;

  g->inner->ops->close (g->inner);
  free (g);
}

static const struct io_ops guard_ops = {
  .name = "fuzz-guard",
  .pread = g_pread,
  .pwrite = g_pwrite,
  .flush = g_flush,
  .get_size = g_get_size,
  .truncate = g_truncate,
  .punch_hole = g_punch_hole,
  .run_at = g_run_at,
  .allocated = g_allocated,
  .close = g_close,
};

/* A guarded copy of data[0..len); *inner gets the memory source (valid
 * until the handle that owns the guard is closed). */
static inline struct io *
guard_io_new (const uint8_t *data, size_t len, uint64_t cap,
              bool forbid_writes, struct io **inner)
{
  struct guard_io *g = calloc (1, sizeof *g);

  if (g == NULL)
    return NULL;
  g->inner = io_mem_new (data, len);
  if (g->inner == NULL) {
    free (g);
    return NULL;
  }
  g->io.ops = &guard_ops;
  g->io.readonly = forbid_writes;
  g->cap = cap;
  g->forbid_writes = forbid_writes;
  *inner = g->inner;
  return &g->io;
}

#endif /* LIBVHD_FUZZ_COMMON_H */
