/* vhdx-write.c: writing a VHDX image: headers, block allocation, and
 * metadata updates through the log (MS-VHDX 2.2.2.1, 2.3).
 *
 * CRASH SAFETY.  Payload data is written in place; everything else
 * (BAT entries, sector bitmaps) changes only through the log:
 *
 *   0. Before the first write of a session, the headers are rewritten
 *      with a new FileWriteGuid and DataWriteGuid (sequence + 1, the
 *      non-current slot first, flushed, then the other slot, flushed).
 *   1. New blocks are taken from space freed earlier in the session
 *      (punched once its release was durable, vhdx-space.c) or at the
 *      1 MiB-aligned end of the file (extended): either reads as zeros.
 *      Their data is written and everything flushed: the data is
 *      durable before anything points at it.
 *   2. The changed 4 KiB metadata pages go into one log entry, written at
 *      the log's head and flushed.  The entry's Tail is itself: earlier
 *      entries are always applied already.  The first entry after the
 *      log was idle carries a fresh LogGuid, which the headers then get
 *      (written and flushed twice) -- only then is the entry live.
 *   3. The pages are written to their places and flushed.
 *   Writes defer steps 1-3: the BAT pages of many allocations wait in
 *   the handle's deferred stage and take one data flush and one log
 *   entry together, at a flush, a zero, a write that changes a sector
 *   bitmap, or when the stage is full.  A write is durable after a flush
 *   (vhd_flush, NBD FLUSH or FUA), as with any disk's write cache.  A
 *   batch (vhd_copy, vhd_compact: copy-internal.h) also defers unmaps
 *   and commits at its end.
 *   On flush, an active log is retired by clearing LogGuid in the
 *   headers, so a flushed image needs no replay (qemu opens it read-only).
 *
 * A crash before the entry is live loses only the unacknowledged write
 * (new blocks leak at the end of the file); after it, replay on the next
 * open completes the update.  An entry never overlaps its predecessor
 * (entries are at most half the log), so a torn entry leaves the
 * previous, already applied one as the newest valid sequence, and
 * replaying it again changes nothing.
 *
 * A metadata update that fails half-way leaves the in-memory BAT ahead of
 * the file: the handle then refuses further writes (reopen to recover).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "byteorder.h"
#include "copy-internal.h"
#include "log.h"
#include "minmax.h"
#include "vhdx.h"

#define BAT_PER_PAGE (VHDX_LOG_SECTOR / 8)

/* --- headers -------------------------------------------------------------- */

int
vhdx_update_headers (struct vhd_disk *d, bool new_data_guid)
{
  struct vhdx *v = d->priv;
  uint8_t raw[VHDX_HDR_SIZE];
  unsigned i;

  if (!v->file_guid_renewed) {
    uuid_generate_bytes (v->hdr.file_write_guid);
    v->file_guid_renewed = true;
  }
  if (new_data_guid) {
    /* A commit may have announced this one to the child already. */
    if (!uuid_is_null_bytes (d->next_link_id))
      memcpy (v->hdr.data_write_guid, d->next_link_id, 16);
    else
      uuid_generate_bytes (v->hdr.data_write_guid);
    memcpy (d->link_id, v->hdr.data_write_guid, 16);
  }
  for (i = 0; i < 2; i++) {
    unsigned slot = 1 - v->current;
    v->hdr.sequence++;
    vhdx_header_encode (&v->hdr, raw);
    if (io_pwrite (d->io, raw, sizeof raw,
                   slot ? VHDX_HEADER2_OFFSET : VHDX_HEADER1_OFFSET) == -1
        || io_flush (d->io) == -1) {
      prefix_error ("updating the VHDX header");
      return -1;
    }
    v->current = slot;
  }
  return 0;
}

/* --- staging -------------------------------------------------------------- */

static struct vhdx_staged *
stage_find (struct vhdx_stage *st, uint64_t offset)
{
  unsigned i;

  for (i = 0; i < st->n; i++)
    if (st->p[i].offset == offset)
      return &st->p[i];
  return NULL;
}

int
vhdx_stage_bat (struct vhdx *v, struct vhdx_stage *st, uint64_t index)
{
  uint64_t offset = v->bat.offset + index / BAT_PER_PAGE * VHDX_LOG_SECTOR;

  if (vhdx_bat_cache_pin (&v->bat, index) == -1)
    return -1;
  if (stage_find (st, offset))
    return 0;
  if (st->n == VHDX_MAX_STAGED) {
    set_error (EFBIG, "VHDX metadata update of more than %u pages",
               VHDX_MAX_STAGED);
    return -1;
  }
  st->p[st->n++] = (struct vhdx_staged) { offset, NULL };
  return 0;
}

void
vhdx_stage_free (struct vhdx_stage *st)
{
  unsigned i;

  for (i = 0; i < st->n; i++)
    free (st->p[i].data);
  st->n = 0;
}

/* A metadata page (sector bitmap, metadata region), read from the file
 * the first time it is staged. */
uint8_t *
vhdx_stage_page (struct vhd_disk *d, struct vhdx_stage *st, uint64_t offset)
{
  struct vhdx_staged *s = stage_find (st, offset);
  uint8_t *data;

  if (s)
    return s->data;
  if (st->n == VHDX_MAX_STAGED) {
    set_error (EFBIG, "VHDX metadata update of more than %u pages",
               VHDX_MAX_STAGED);
    return NULL;
  }
  data = malloc (VHDX_LOG_SECTOR);
  if (data == NULL) {
    set_error (ENOMEM, "out of memory");
    return NULL;
  }
  if (io_pread (d->io, data, VHDX_LOG_SECTOR, offset) == -1) {
    free (data);
    return NULL;
  }
  st->p[st->n++] = (struct vhdx_staged) { offset, data };
  return data;
}

int
vhdx_stage_bytes (struct vhd_disk *d, struct vhdx_stage *st, uint64_t offset,
                  const uint8_t *data, size_t len)
{
  size_t done = 0;

  while (done < len) {
    uint64_t at = offset + done;
    uint64_t page = at / VHDX_LOG_SECTOR * VHDX_LOG_SECTOR;
    size_t n = (size_t) MIN ((uint64_t) (len - done),
                             page + VHDX_LOG_SECTOR - at);
    uint8_t *p = vhdx_stage_page (d, st, page);
    if (p == NULL)
      return -1;
    memcpy (p + (at - page), data + done, n);
    done += n;
  }
  return 0;
}

/* --- the log -------------------------------------------------------------- */

/* Write the entry at the log's head (wrapping at the log's end). */
static int
write_entry (struct vhd_disk *d, const uint8_t *entry, uint64_t len)
{
  struct vhdx *v = d->priv;
  uint64_t first = MIN (len, (uint64_t) v->hdr.log_length - v->log_head);

  if (io_pwrite (d->io, entry, (size_t) first,
                 v->hdr.log_offset + v->log_head) == -1)
    return -1;
  if (first < len
      && io_pwrite (d->io, entry + first, (size_t) (len - first),
                    v->hdr.log_offset) == -1)
    return -1;
  return io_flush (d->io);
}

static int
log_pages (struct vhd_disk *d, const struct vhdx_log_page *pages, unsigned n)
{
  struct vhdx *v = d->priv;
  uint64_t len = vhdx_log_entry_length (n);
  int64_t size = io_get_size (d->io);
  uint8_t *entry;
  bool activate = !v->log_active;
  int r;

  if (size < 0)
    return -1;
  if (activate) {
    uuid_generate_bytes (v->hdr.log_guid);
    v->log_head = 0;
  }
  entry = malloc ((size_t) len);
  if (entry == NULL) {
    set_error (ENOMEM, "out of memory");
    return -1;
  }
  vhdx_log_entry_encode (entry, v->log_sequence + 1, v->log_head,
                         v->hdr.log_guid,
                         (uint64_t) size / VHDX_MiB * VHDX_MiB,
                         ROUND_UP ((uint64_t) size, VHDX_MiB), pages, n);
  r = write_entry (d, entry, len);
  free (entry);
  if (r == 0 && activate && (r = vhdx_update_headers (d, false)) == 0)
    v->log_active = true;
  if (r == -1)
    return -1;
  v->log_sequence++;
  v->log_head = (uint32_t) ((v->log_head + len) % v->hdr.log_length);
  return 0;
}

static int
apply_pages (struct vhd_disk *d, const struct vhdx_log_page *pages,
             unsigned n)
{
  unsigned i;

  for (i = 0; i < n; i++)
    if (io_pwrite (d->io, pages[i].data, VHDX_LOG_SECTOR,
                   pages[i].file_offset) == -1)
      return -1;
  return io_flush (d->io);
}

/* The BAT page at file offset (a staged one). */
static uint64_t
bat_page (const struct vhdx *v, uint64_t offset)
{
  return (offset - v->bat.offset) / VHDX_LOG_SECTOR;
}

/* Steps 1-3 of the file-top note for the staged pages.  BAT pages are
 * encoded from memory now, and are as the file holds them afterwards. */
int
vhdx_commit (struct vhd_disk *d, struct vhdx_stage *st)
{
  struct vhdx *v = d->priv;
  struct vhdx_log_page pages[VHDX_MAX_STAGED];
  uint8_t *bat_pages;
  unsigned i;
  int r = -1;

  if (st->n == 0) {
    vhdx_pending_settle (d, true);
    return 0;
  }
  bat_pages = malloc ((size_t) st->n * VHDX_LOG_SECTOR);
  if (bat_pages == NULL) {
    set_error (ENOMEM, "out of memory");
    goto out;
  }
  for (i = 0; i < st->n; i++) {
    pages[i].file_offset = st->p[i].offset;
    pages[i].data = st->p[i].data;
    if (pages[i].data == NULL) {
      pages[i].data = bat_pages + i * VHDX_LOG_SECTOR;
      if (vhdx_bat_cache_encode (&v->bat, bat_page (v, st->p[i].offset),
                                 bat_pages + i * VHDX_LOG_SECTOR) == -1)
        goto out;
    }
  }
  if (io_flush (d->io) == 0 && log_pages (d, pages, st->n) == 0
      && apply_pages (d, pages, st->n) == 0)
    r = 0;
  for (i = 0; r == 0 && i < st->n; i++)
    if (st->p[i].data == NULL)
      vhdx_bat_cache_clean (&v->bat, bat_page (v, st->p[i].offset));
out:
  free (bat_pages);
  vhdx_stage_free (st);
  vhdx_pending_settle (d, r == 0);
  if (r == -1) {
    v->failed = true;
    prefix_error ("updating VHDX metadata through the log");
  }
  return r;
}

void
vhdx_abandon (struct vhd_disk *d, struct vhdx_stage *st)
{
  struct vhdx *v = d->priv;

  vhdx_stage_free (st);
  vhdx_pending_settle (d, false);
  v->failed = true;
}

/* --- allocation ----------------------------------------------------------- */

/* size bytes at the end of the file, which is extended to cover them. */
int
vhdx_allocate_end (struct vhd_disk *d, uint64_t size, uint64_t *offset)
{
  struct vhdx *v = d->priv;
  int64_t cur = io_get_size (d->io);

  if (cur < 0)
    return -1;
  v->file_end = MAX (v->file_end, ROUND_UP ((uint64_t) cur, VHDX_MiB));
  *offset = v->file_end;
  if (d->io->ops->truncate (d->io, v->file_end + size) == -1)
    return -1;
  v->file_end += size;
  return 0;
}

/* Freed space first (it was punched, so it reads as zeros like the new
 * end of the file does), then the end of the file. */
int
vhdx_allocate (struct vhd_disk *d, uint64_t size, uint64_t *offset)
{
  struct vhdx *v = d->priv;

  if (!v->free_stale && vhdx_free_take (v, size, offset))
    return 0;
  return vhdx_allocate_end (d, size, offset);
}

/* The chunk's sector bitmap block, allocated (zeroed) when missing. */
static int
ensure_bitmap (struct vhd_disk *d, struct vhdx_stage *st, uint64_t chunk,
               uint64_t *offset)
{
  struct vhdx *v = d->priv;
  uint64_t i = vhdx_bat_bitmap_index (&v->geo, chunk), e;

  if (vhdx_get_entry (v, i, &e) == -1)
    return -1;
  if (vhdx_bat_state (e) == VHDX_SB_PRESENT) {
    *offset = vhdx_bat_offset (e);
    return 0;
  }
  if (vhdx_allocate (d, VHDX_BITMAP_BLOCK_SIZE, offset) == -1)
    return -1;
  return vhdx_put_entry (v, st, i, vhdx_bat_entry (VHDX_SB_PRESENT, *offset));
}

/* Mark sectors [in, in + n) of a partially present block as ours. */
static int
mark_present (struct vhd_disk *d, struct vhdx_stage *st, uint64_t block,
              uint64_t in, uint64_t n)
{
  struct vhdx *v = d->priv;
  uint64_t ls = d->logical_sector, bm, s;
  uint64_t first = (block % v->geo.chunk_ratio) * v->sectors_per_block;

  if (ensure_bitmap (d, st, block / v->geo.chunk_ratio, &bm) == -1)
    return -1;
  vhdx_forget_bitmap (v, block);
  for (s = first + in / ls; s < first + (in + n) / ls; s++) {
    uint64_t byte = s / 8;
    uint8_t *page = vhdx_stage_page (d, st, bm + byte / VHDX_LOG_SECTOR
                                                  * VHDX_LOG_SECTOR);
    if (page == NULL)
      return -1;
    page[byte % VHDX_LOG_SECTOR] |= (uint8_t) (1U << (s % 8));
  }
  return 0;
}

/* True when the sectors [in, in + n) of a partially present block are
 * already ours (no bitmap update needed). */
static bool
all_present (struct vhd_disk *d, uint64_t block, uint64_t in, uint64_t n)
{
  const uint8_t *bits = vhdx_block_bitmap (d, block);
  uint64_t ls = d->logical_sector, s;

  if (bits == NULL)
    return false; /* mark_present rereads and reports */
  for (s = in / ls; s < (in + n) / ls; s++)
    if (!((bits[s / 8] >> (s % 8)) & 1))
      return false;
  return true;
}

/* A block that becomes partially present holds none of its sectors yet,
 * but its slice of the chunk's bitmap may still carry the bits of an
 * earlier allocation (the block was unmapped since): clear them in the
 * same log entry. */
static int
clear_slice (struct vhd_disk *d, struct vhdx_stage *st, uint64_t block)
{
  struct vhdx *v = d->priv;
  uint64_t first = (block % v->geo.chunk_ratio) * v->bitmap_slice;
  uint64_t bm, done = 0;

  if (ensure_bitmap (d, st, block / v->geo.chunk_ratio, &bm) == -1)
    return -1;
  vhdx_forget_bitmap (v, block);
  while (done < v->bitmap_slice) {
    uint64_t at = bm + first + done;
    uint64_t page = at / VHDX_LOG_SECTOR * VHDX_LOG_SECTOR;
    uint64_t n = MIN ((uint64_t) v->bitmap_slice - done,
                      page + VHDX_LOG_SECTOR - at);
    uint8_t *p = vhdx_stage_page (d, st, page);
    if (p == NULL)
      return -1;
    memset (p + (at - page), 0, (size_t) n);
    done += n;
  }
  return 0;
}

/* --- writing one block's part --------------------------------------------- */

static int
write_new_block (struct vhd_disk *d, struct vhdx_stage *st, uint64_t block,
                 uint64_t in, const uint8_t *src, uint64_t n)
{
  struct vhdx *v = d->priv;
  uint64_t idx = vhdx_bat_payload_index (&v->geo, block), off;
  uint64_t bs = v->md.block_size;
  uint64_t block_len = MIN (bs, d->size - block * bs), old;
  bool partial;

  if (vhdx_get_entry (v, idx, &old) == -1)
    return -1;
  partial = d->type == VHD_TYPE_DIFFERENCING
            && vhdx_bat_state (old) != VHDX_PAYLOAD_ZERO
            && !(in == 0 && n == block_len);
  if (vhdx_allocate (d, bs, &off) == -1
      || io_pwrite (d->io, src, (size_t) n, off + in) == -1
      || vhdx_put_entry (v, st, idx,
                         vhdx_bat_entry (partial
                                         ? VHDX_PAYLOAD_PARTIALLY_PRESENT
                                         : VHDX_PAYLOAD_FULLY_PRESENT, off))
         == -1)
    return -1;
  if (!partial)
    return 0;
  if (clear_slice (d, st, block) == -1)
    return -1;
  return mark_present (d, st, block, in, n);
}

static int
write_block (struct vhd_disk *d, struct vhdx_stage *st, uint64_t block,
             uint64_t in, const uint8_t *src, uint64_t n)
{
  struct vhdx *v = d->priv;
  uint64_t e;

  if (vhdx_get_entry (v, vhdx_bat_payload_index (&v->geo, block), &e) == -1)
    return -1;
  switch (vhdx_bat_state (e)) {
  case VHDX_PAYLOAD_FULLY_PRESENT:
    return io_pwrite (d->io, src, (size_t) n, vhdx_bat_offset (e) + in);
  case VHDX_PAYLOAD_PARTIALLY_PRESENT:
    if (io_pwrite (d->io, src, (size_t) n, vhdx_bat_offset (e) + in) == -1)
      return -1;
    if (all_present (d, block, in, n))
      return 0;
    return mark_present (d, st, block, in, n);
  default:
    return write_new_block (d, st, block, in, src, n);
  }
}

/* Room in the stage for one more block's updates: its BAT page, a
 * bitmap's BAT page and the bitmap pages of one block (at most 16 for a
 * 256 MiB block of 512-byte sectors). */
static bool
stage_has_room (const struct vhdx_stage *st)
{
  return st->n + 18 <= VHDX_MAX_STAGED;
}

int
vhdx_begin_update (struct vhd_disk *d, bool data_changes)
{
  struct vhdx *v = d->priv;

  if (v->failed) {
    set_error (EIO, "an earlier metadata update failed; reopen the image");
    return -1;
  }
  if (v->hdr.log_length == 0) {
    set_error (ENOTSUP, "a VHDX image without a log cannot be written");
    return -1;
  }
  if (data_changes && !v->data_guid_renewed) {
    if (vhdx_update_headers (d, true) == -1)
      return -1;
    v->data_guid_renewed = true;
  }
  if (!v->file_guid_renewed)
    return vhdx_update_headers (d, false);
  return 0;
}

/* --- deferred BAT changes and batches (copy-internal.h) ----------------- */

/* The stage the BAT changes of allocating writes wait in (made on first
 * use; NULL when memory is short: then each write commits its own). */
static struct vhdx_stage *
deferred_stage (struct vhdx *v)
{
  if (v->deferred == NULL)
    v->deferred = calloc (1, sizeof *v->deferred);
  return v->deferred;
}

bool
write_batch_begin (struct vhd_disk *d)
{
  struct vhdx *v = d->priv;

  if (d->ops != &vhdx_format_ops || d->readonly || v->batching
      || deferred_stage (v) == NULL)
    return false; /* unbatched is slower, not wrong */
  v->batching = true;
  return true;
}

struct vhdx_stage *
vhdx_batch_of (struct vhd_disk *d)
{
  struct vhdx *v = d->priv;

  return v->batching ? v->deferred : NULL;
}

/* Commit the deferred changes, if any: at a flush, before a zero, at the
 * end of a batch. */
static int
batch_commit (struct vhd_disk *d)
{
  struct vhdx_stage *st = ((struct vhdx *) d->priv)->deferred;

  return st && st->n ? vhdx_commit (d, st) : 0;
}

int
write_batch_end (struct vhd_disk *d)
{
  struct vhdx *v = d->priv;
  int r = batch_commit (d);

  v->batching = false;
  return r;
}

int
write_batch_finish (struct vhd_disk *d, int r)
{
  struct saved_error e;

  if (r == 0)
    return write_batch_end (d);
  save_error (&e);
  (void) write_batch_end (d);
  restore_error (&e);
  return -1;
}

static bool
stage_only_bat (const struct vhdx_stage *st)
{
  unsigned i;

  for (i = 0; i < st->n; i++)
    if (st->p[i].data)
      return false;
  return true;
}

/* --- the driver's write and flush ----------------------------------------- */

int
vhdx_pwrite (struct vhd_disk *d, const void *buf, size_t count,
             uint64_t offset)
{
  struct vhdx *v = d->priv;
  const uint8_t *p = buf;
  uint64_t bs = v->md.block_size;
  struct vhdx_stage *st = deferred_stage (v), *own = NULL;
  int r = 0;

  if (vhdx_begin_update (d, true) == -1)
    return -1;
  if (st == NULL && (st = own = calloc (1, sizeof *st)) == NULL) {
    set_error (ENOMEM, "out of memory");
    return -1;
  }
  while (count > 0 && r == 0) {
    uint64_t block = offset / bs, in = offset % bs;
    uint64_t n = MIN ((uint64_t) count, bs - in);
    if (!stage_has_room (st))
      r = vhdx_commit (d, st);
    if (r == 0)
      r = write_block (d, st, block, in, p, n);
    p += n, count -= (size_t) n, offset += n;
  }
  if (r == 0 && (own || !stage_only_bat (st)))
    r = vhdx_commit (d, st);
  if (r == -1 && st->n > 0)
    v->failed = true; /* the in-memory BAT is ahead of the file */
  if (r == -1 || own)
    vhdx_stage_free (st);
  free (own);
  return r;
}

int
vhdx_flush (struct vhd_disk *d)
{
  struct vhdx *v = d->priv;

  if (v->failed) {
    /* Deferred changes may have gone with the update that failed. */
    set_error (EIO, "an earlier metadata update of %s failed: writes "
               "since the last flush may be lost (reopen the image)",
               d->filename);
    return -1;
  }
  if (batch_commit (d) == -1 || io_flush (d->io) == -1)
    return -1;
  if (!v->log_active || v->failed)
    return 0;
  memset (v->hdr.log_guid, 0, GUID_SIZE);
  if (vhdx_update_headers (d, false) == -1)
    return -1;
  v->log_active = false;
  return 0;
}

bool
vhdx_flush_needs_metadata (struct vhd_disk *d)
{
  const struct vhdx *v = d->priv;

  return v->failed || v->log_active || (v->deferred && v->deferred->n);
}

/* Whether a block whose entry is e may become ZERO: always when nothing
 * is stored for it; when it holds data, only if the caller lets storage
 * go. */
static bool
may_zero_block (uint64_t e, unsigned flags)
{
  unsigned s = vhdx_bat_state (e);

  if (s == VHDX_PAYLOAD_FULLY_PRESENT || s == VHDX_PAYLOAD_PARTIALLY_PRESENT)
    return (flags & VHD_ZERO_MAY_UNMAP) != 0;
  return true;
}

/* Part of a block whose every sector is stored in this file: with
 * MAY_UNMAP its bytes become a hole in the file (the file system zeroes
 * partial host blocks), so a guest's discard gives the space back even
 * where it does not cover whole blocks; without, they are zeroed in
 * place and stay allocated.  No metadata changes: it is a write in place
 * of zeros.  The bytes done, 0 to leave the part to the core (it writes
 * zero data), or -1. */
static int64_t
zero_part (struct vhd_disk *d, uint64_t offset, uint64_t count,
           unsigned flags)
{
  struct vhdx *v = d->priv;
  uint64_t bs = v->md.block_size, block = offset / bs, in = offset % bs, e;
  uint64_t block_len = MIN (bs, d->size - block * bs);
  uint64_t n = MIN (count, block_len - in);
  unsigned s;
  int r;

  if (vhdx_get_entry (v, vhdx_bat_payload_index (&v->geo, block), &e) == -1)
    return -1;
  s = vhdx_bat_state (e);
  if (s != VHDX_PAYLOAD_FULLY_PRESENT
      && !(s == VHDX_PAYLOAD_PARTIALLY_PRESENT && all_present (d, block, in, n)))
    return 0;
  if (vhdx_begin_update (d, !(flags & ZERO_VIEW_UNCHANGED)) == -1)
    return -1;
  r = io_try_zero (d->io, vhdx_bat_offset (e) + in, n,
                   flags & VHD_ZERO_MAY_UNMAP);
  return r == 1 ? (int64_t) n : r;
}

/* The zero op: whole blocks become PAYLOAD_BLOCK_ZERO (file offset 0),
 * through the log; the storage of blocks that held data (MAY_UNMAP) is
 * released once that is durable (vhdx-space.c).  ZERO rather than
 * NOT_PRESENT: in a differencing disk it hides the parent, and in a base
 * disk the two read the same.  Parts of blocks, and whole blocks that
 * hold data when MAY_UNMAP is not given, are punched or zeroed in place
 * (zero_part).  A fixed image keeps its blocks and their space allocated
 * (LeaveBlocksAllocated): zeroed in place only. */
int64_t
vhdx_zero (struct vhd_disk *d, uint64_t offset, uint64_t count,
           unsigned flags)
{
  struct vhdx *v = d->priv;
  uint64_t bs = v->md.block_size, block = offset / bs, done = 0;
  struct vhdx_stage *st;

  if (v->md.leave_blocks_allocated && !v->md.has_parent)
    return zero_part (d, offset, count, flags & ~VHD_ZERO_MAY_UNMAP);
  if (offset % bs || count < MIN (bs, d->size - block * bs))
    return zero_part (d, offset, count, flags);
  if (batch_commit (d) == -1
      || vhdx_begin_update (d, !(flags & ZERO_VIEW_UNCHANGED)) == -1)
    return -1;
  st = calloc (1, sizeof *st);
  if (st == NULL) {
    set_error (ENOMEM, "out of memory");
    return -1;
  }
  while (st->n < VHDX_MAX_STAGED && block < v->geo.data_blocks) {
    uint64_t len = MIN (bs, d->size - block * bs), e;
    uint64_t idx = vhdx_bat_payload_index (&v->geo, block);
    unsigned s;
    if (count - done < len)
      break;
    if (vhdx_get_entry (v, idx, &e) == -1)
      goto fail;
    if (!may_zero_block (e, flags))
      break;
    s = vhdx_bat_state (e);
    if (s == VHDX_PAYLOAD_FULLY_PRESENT
        || s == VHDX_PAYLOAD_PARTIALLY_PRESENT)
      vhdx_pending_add (v, vhdx_bat_offset (e), vhdx_bat_offset (e) + bs);
    if (vhdx_put_entry (v, st, idx, vhdx_bat_entry (VHDX_PAYLOAD_ZERO, 0))
        == -1)
      goto fail;
    done += len;
    block++;
  }
  if (vhdx_commit (d, st) == -1) {
    free (st);
    return -1;
  }
  free (st);
  if (done == 0) /* the first block holds data, and MAY_UNMAP is not given */
    return zero_part (d, offset, count, flags);
  return (int64_t) done;
fail:
  vhdx_abandon (d, st);
  free (st);
  return -1;
}
