/* vhd-space.c: the file space of a dynamic or differencing VHD, for the
 * operations that free, move or add blocks and metadata (vhd-zero.c,
 * vhd-defrag.c, vhd-resize.c, vhd-parent.c).
 *
 *   [ footer copy ][ header ][ BAT ][ locators ][ block ] ... [ footer ]
 *                                                             ^ next_free
 *
 * Invariants kept by every function here:
 *   - the file always ends in a valid footer, or (between two writes of
 *     the same step) in something open ignores by falling back to the
 *     footer copy at offset 0: space is added by writing the footer at
 *     the new end first (vhd_extend), and cut by writing it at the new
 *     end inside the file, io_flush, then truncate (vhd_shrink_to);
 *   - space the BAT on disk may still point at is never written: an
 *     unmapped block goes on s->freed and is punched (or cut off the end)
 *     only by vhd_release_freed, which flush calls after writing the BAT
 *     (inside vhd_compact only cut: its defragment then moves blocks into
 *     the rest, and a move clears what it does not write);
 *     new blocks always go at next_free, past everything;
 *   - a block moves by copy, io_flush, BAT switch, io_flush
 *     (vhd_move_blocks): after a crash each BAT entry, whole or torn,
 *     points at one of two identical copies.
 * The dynamic header's first sector (table offset, entry count, checksum)
 * is rewritten alone: one sector, so a torn write cannot mix old and new.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "byteorder.h"
#include "minmax.h"
#include "vhd/vhd.h"
#include "zero.h"

#define COPY_CHUNK (1U << 20)
#define MAX_FREED 4096U

uint64_t
vhd_block_bytes (const struct vhd_state *s)
{
  return (uint64_t) s->bitmap_size + s->header.block_size;
}

static unsigned
add (struct vhd_region *r, unsigned n, uint64_t start, uint64_t len)
{
  unsigned i = n;

  /* Insertion sort: at most VHD_MAX_REGIONS. */
  while (i > 0 && r[i - 1].start > start) {
    r[i] = r[i - 1];
    i--;
  }
  r[i].start = start;
  r[i].end = start + len;
  return n + 1;
}

static bool
locator_in_use (const struct vhd_locator *l)
{
  return (l->platform_code == VHD_PLATFORM_W2KU
          || l->platform_code == VHD_PLATFORM_W2RU
          || l->platform_code == VHD_PLATFORM_MACX)
         && l->data_length > 0;
}

unsigned
vhd_meta_regions (const struct vhd_state *s,
                  struct vhd_region r[VHD_MAX_REGIONS])
{
  const struct vhd_dynheader *h = &s->header;
  unsigned n = 0, i;

  n = add (r, n, 0, VHD_FTR_SIZE);
  n = add (r, n, s->footer.data_offset, VHD_DYN_SIZE);
  n = add (r, n, h->table_offset,
           ROUND_UP ((uint64_t) h->max_table_entries * 4,
                     (uint64_t) SECTOR_SIZE));
  if (s->footer.disk_type != VHD_DISK_DIFFERENCING)
    return n;
  for (i = 0; i < VHD_LOCATOR_COUNT; i++)
    if (locator_in_use (&h->locators[i]))
      n = add (r, n, h->locators[i].data_offset,
               ROUND_UP ((uint64_t) h->locators[i].data_length,
                         (uint64_t) SECTOR_SIZE));
  return n;
}

uint64_t
vhd_live_end (const struct vhd_state *s)
{
  struct vhd_region r[VHD_MAX_REGIONS];
  unsigned n = vhd_meta_regions (s, r), k;
  uint64_t end = 0, bb = vhd_block_bytes (s);
  uint32_t i;

  for (k = 0; k < n; k++)
    end = MAX (end, r[k].end);
  for (i = 0; i < s->n_blocks; i++) {
    uint32_t sector = vhd_bat_get (&s->bat, i);
    if (sector != VHD_BAT_UNUSED)
      end = MAX (end, (uint64_t) sector * SECTOR_SIZE + bb);
  }
  return ROUND_UP (end, (uint64_t) SECTOR_SIZE);
}

int
vhd_write_footer (struct io *io, const struct vhd_footer *f, uint64_t offset)
{
  uint8_t raw[VHD_FTR_SIZE];

  vhd_footer_encode (f, raw);
  if (io_pwrite (io, raw, sizeof raw, offset) == -1) {
    prefix_error ("writing the footer at offset %" PRIu64, offset);
    return -1;
  }
  return 0;
}

int
vhd_extend (struct vhd_disk *d, uint64_t new_end)
{
  struct vhd_state *s = d->priv;

  if (new_end <= s->next_free && s->trailer_ok)
    return 0;
  new_end = MAX (new_end, s->next_free);
  if (new_end / SECTOR_SIZE >= VHD_BAT_UNUSED) {
    set_error (EFBIG, "the file would grow past the largest offset a BAT "
               "entry can hold (%" PRIu64 ")", new_end);
    return -1;
  }
  if (vhd_write_footer (d->io, &s->footer, new_end) == -1)
    return -1;
  s->next_free = s->footer_pos = new_end;
  s->trailer_ok = true;
  return 0;
}

int
vhd_shrink_to (struct vhd_disk *d, uint64_t new_end)
{
  struct vhd_state *s = d->priv;
  bool overlaps = s->trailer_ok && new_end + VHD_FTR_SIZE > s->footer_pos;

  /* Normally the new footer lies inside the file, before the old one,
   * and the truncation makes it the last: both steps are atomic.  Only
   * in a file whose footer is not sector aligned can it overlap the old
   * one; then the file is cut first, and a crash in between leaves it
   * without a trailing footer, which open takes from offset 0. */
  if (!overlaps && (vhd_write_footer (d->io, &s->footer, new_end) == -1
                    || io_flush (d->io) == -1))
    return -1;
  if (d->io->ops->truncate (d->io, new_end + VHD_FTR_SIZE) == -1) {
    prefix_error ("shortening the file to %" PRIu64 " bytes",
                  new_end + VHD_FTR_SIZE);
    return -1;
  }
  if (overlaps && vhd_write_footer (d->io, &s->footer, new_end) == -1)
    return -1;
  s->next_free = s->footer_pos = new_end;
  s->file_size = new_end + VHD_FTR_SIZE;
  s->trailer_ok = true;
  return io_flush (d->io);
}

/* --- unmapped blocks ------------------------------------------------------ */

int
vhd_free_block (struct vhd_disk *d, uint32_t block)
{
  struct vhd_state *s = d->priv;
  struct vhd_freed *f = &s->freed;
  uint32_t sector = vhd_bat_get (&s->bat, block);

  if (sector == VHD_BAT_UNUSED)
    return 0;
  if (f->n == f->cap) {
    size_t cap = f->cap ? 2 * f->cap : 64;
    uint32_t *p = realloc (f->sectors, cap * sizeof *p);
    if (p == NULL) {
      set_error (ENOMEM, "out of memory");
      return -1;
    }
    f->sectors = p;
    f->cap = cap;
  }
  f->sectors[f->n++] = sector;
  vhd_bmcache_drop (&s->bitmaps, block);
  vhd_bat_set (&s->bat, block, VHD_BAT_UNUSED);
  if (f->n >= MAX_FREED) /* bound the queue: make it durable now */
    return d->ops->flush (d);
  return 0;
}

static int
by_sector (const void *a, const void *b)
{
  uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;

  return x < y ? -1 : x > y;
}

/* Freed blocks that lie next to each other are punched as one range: a
 * block is not page aligned, so punching each alone would leave the
 * host page across every boundary allocated. */
int
vhd_release_freed (struct vhd_disk *d)
{
  struct vhd_state *s = d->priv;
  struct vhd_freed *f = &s->freed;
  uint64_t end, bb = vhd_block_bytes (s);
  size_t i, j;

  if (f->n == 0)
    return 0;
  end = vhd_live_end (s);
  qsort (f->sectors, f->n, sizeof *f->sectors, by_sector);
  /* compact's defragment fills or cuts off this space: not punched */
  for (i = 0; !d->defer_release && i < f->n; i = j) {
    uint64_t start = (uint64_t) f->sectors[i] * SECTOR_SIZE, len = bb;
    for (j = i + 1; j < f->n
                    && (uint64_t) f->sectors[j] * SECTOR_SIZE == start + len;
         j++)
      len += bb;
    if (start < end
        && io_try_punch (d->io, start, MIN (len, end - start)) == -1)
      return -1;
  }
  if (s->trailer_ok && s->footer_pos > end
      && vhd_shrink_to (d, end) == -1)
    return -1;
  f->n = 0;
  return 0;
}

/* --- moving blocks -------------------------------------------------------- */

/* Copy bb bytes; zero chunks are punched, keeping a sparse block sparse. */
static int
copy_block (struct io *io, uint8_t *buf, uint64_t src, uint64_t dst,
            uint64_t bb)
{
  uint64_t done = 0;

  while (done < bb) {
    size_t n = (size_t) MIN (bb - done, (uint64_t) COPY_CHUNK);
    if (io_pread (io, buf, n, src + done) == -1)
      return -1;
    if (buffer_is_zero (buf, n)) {
      if (io_zero_or_write (io, dst + done, n) == -1)
        return -1;
    }
    else if (io_pwrite (io, buf, n, dst + done) == -1)
      return -1;
    done += n;
  }
  return 0;
}

int
vhd_move_blocks (struct vhd_disk *d, const struct vhd_move *m, size_t n)
{
  struct vhd_state *s = d->priv;
  uint64_t bb = vhd_block_bytes (s);
  uint8_t *buf;
  size_t i;
  int r = 0;

  if (n == 0)
    return 0;
  buf = malloc (COPY_CHUNK);
  if (buf == NULL) {
    set_error (ENOMEM, "out of memory");
    return -1;
  }
  for (i = 0; i < n && r == 0; i++) {
    uint64_t src = (uint64_t) vhd_bat_get (&s->bat, m[i].block) * SECTOR_SIZE;
    if (m[i].dst % SECTOR_SIZE != 0
        || m[i].dst / SECTOR_SIZE >= VHD_BAT_UNUSED) {
      set_error (EFBIG, "block %" PRIu32 " cannot move to offset %" PRIu64,
                 m[i].block, m[i].dst);
      r = -1;
      break;
    }
    r = copy_block (d->io, buf, src, m[i].dst, bb);
    if (r == -1)
      prefix_error ("moving block %" PRIu32 " from offset %" PRIu64
                    " to %" PRIu64, m[i].block, src, m[i].dst);
  }
  free (buf);
  if (r == -1 || io_flush (d->io) == -1)
    return -1;
  for (i = 0; i < n; i++)
    vhd_bat_set (&s->bat, m[i].block, (uint32_t) (m[i].dst / SECTOR_SIZE));
  if (vhd_bat_write_dirty (&s->bat, d->io) == -1)
    return -1;
  return io_flush (d->io);
}

/* --- header and footers --------------------------------------------------- */

int
vhd_write_header_sector0 (struct vhd_disk *d)
{
  struct vhd_state *s = d->priv;
  uint8_t raw[VHD_DYN_SIZE];
  uint64_t off = s->footer.data_offset;

  /* Patch what is on disk, so that bytes we do not model (reserved
   * fields) stay and the checksum covers them. */
  if (io_pread (d->io, raw, sizeof raw, off) == -1) {
    prefix_error ("reading the dynamic disk header");
    return -1;
  }
  put_be64 (raw + VHD_DYN_TABLE_OFFSET, s->header.table_offset);
  put_be32 (raw + VHD_DYN_MAX_TABLE_ENTRIES, s->header.max_table_entries);
  put_be32 (raw + VHD_DYN_CHECKSUM, vhd_dynheader_checksum (raw));
  if (io_pwrite (d->io, raw, SECTOR_SIZE, off) == -1) {
    prefix_error ("writing the dynamic disk header");
    return -1;
  }
  return 0;
}

int
vhd_write_footers (struct vhd_disk *d)
{
  struct vhd_state *s = d->priv;

  /* Either copy alone describes a valid image; the flush in between
   * keeps a torn write from hitting both. */
  if (vhd_write_footer (d->io, &s->footer, s->footer_pos) == -1
      || io_flush (d->io) == -1)
    return -1;
  if (s->footer.disk_type != VHD_DISK_FIXED
      && (vhd_write_footer (d->io, &s->footer, 0) == -1
          || io_flush (d->io) == -1))
    return -1;
  return 0;
}
