/* vhdx.c: the VHDX format driver: probe, open, map, close (MS-VHDX v1.0).
 *
 * Open follows the spec's order, one step per function:
 *   file identifier -> headers -> log replay -> region table -> metadata
 *   -> BAT.
 * A non-empty log is replayed before anything else is read: in place
 * when the handle may write (then the header's LogGuid is cleared), and
 * into an overlay byte source that replaces d->io when it may not, so
 * the image reads as replayed while the file stays byte-identical.
 *
 * map() is O(1): BAT pages are read on first use and cached (bat-cache.h;
 * open reads and checks the whole table once, keeping what fits) and
 * sector bitmaps of partially present blocks are read per block on
 * first use and cached (vhdx.h).  What each block state means:
 *   FULLY_PRESENT      data at the block's file offset
 *   PARTIALLY_PRESENT  per sector: data here, or the parent's (bitmap)
 *   ZERO               zeros, hiding any parent
 *   NOT_PRESENT, UNDEFINED, UNMAPPED
 *                      not in this layer: the parent's in a differencing
 *                      disk, zeros (reported as holes) in a base disk.
 *
 * Limits: none on the BAT beyond the format's (a 64 TiB disk of 1 MiB
 * blocks has 64 Mi entries; the cache holds 8 MiB of them).  A log
 * is replayed only up to 128 MiB (Hyper-V and qemu write 1 MiB logs);
 * the metadata region is read up to 16 MiB.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "byteorder.h"
#include "checked-overflow.h"
#include "log.h"
#include "minmax.h"
#include "overlay.h"
#include "vhdx.h"

#define MAX_LOG_REPLAY (UINT32_C (128) << 20)
#define MAX_METADATA_READ (UINT32_C (16) << 20)

static int
vhdx_probe (const uint8_t *head, size_t head_len, const uint8_t *tail,
            size_t tail_len)
{
  if (head_len >= 8 && memcmp (head, VHDX_FILEID_MAGIC, 8) == 0)
    return 100;
  return 0;
}

static int64_t
file_size (struct vhd_disk *d)
{
  return io_get_size (d->io);
}

/* Read a buffer the image describes, with a cap on its size. */
static uint8_t *
read_alloc (struct vhd_disk *d, uint64_t offset, uint64_t len,
            const char *what)
{
  uint8_t *buf = malloc (len ? (size_t) len : 1);

  if (buf == NULL) {
    set_error (ENOMEM, "out of memory reading the VHDX %s (%" PRIu64
               " bytes)", what, len);
    return NULL;
  }
  if (io_pread (d->io, buf, (size_t) len, offset) == -1) {
    prefix_error ("reading the VHDX %s", what);
    free (buf);
    return NULL;
  }
  return buf;
}

/* --- headers -------------------------------------------------------------- */

static int
check_log_placement (const struct vhdx_header *h, int64_t size)
{
  uint64_t end;

  if (h->log_length % VHDX_MiB || h->log_offset % VHDX_MiB
      || (h->log_length && h->log_offset < VHDX_HEADER_SECTION_SIZE)) {
    set_error (EBADMSG, "VHDX header: log of %" PRIu32 " bytes at %" PRIu64
               " is not 1 MiB aligned past the header section",
               h->log_length, h->log_offset);
    return -1;
  }
  if (ADD_OVERFLOW (h->log_offset, (uint64_t) h->log_length, &end)
      || end > (uint64_t) size) {
    set_error (EBADMSG, "VHDX header: log at %" PRIu64 " (%" PRIu32
               " bytes) runs past the end of the file (%" PRId64 " bytes)",
               h->log_offset, h->log_length, size);
    return -1;
  }
  return 0;
}

static int
read_headers (struct vhd_disk *d, struct vhdx *v)
{
  uint8_t *buf;
  int64_t size = file_size (d);
  int r;

  if (size < 0)
    return -1;
  if ((uint64_t) size < VHDX_HEADER_SECTION_SIZE) {
    set_error (EBADMSG, "VHDX file of %" PRId64 " bytes is shorter than its "
               "header section", size);
    return -1;
  }
  buf = read_alloc (d, 0, VHDX_HEADER2_OFFSET + VHDX_HDR_SIZE, "headers");
  if (buf == NULL)
    return -1;
  r = vhdx_fileid_decode (buf, d->creator, sizeof d->creator);
  if (r == 0)
    r = vhdx_header_select (buf + VHDX_HEADER1_OFFSET,
                            buf + VHDX_HEADER2_OFFSET, &v->hdr, &v->current);
  free (buf);
  if (r == 0)
    r = check_log_placement (&v->hdr, size);
  return r;
}

/* --- log replay ----------------------------------------------------------- */

/* A log update may not touch the file identifier or the headers (the
 * spec keeps them out of the log) nor wrap around the offset space. */
static int
check_update (uint64_t offset, uint64_t length)
{
  uint64_t end;

  if (ADD_OVERFLOW (offset, length, &end)) {
    set_error (EBADMSG, "VHDX log: update at %" PRIu64 " overflows",
               offset);
    return -1;
  }
  if (offset < VHDX_REGION1_OFFSET) {
    set_error (EBADMSG, "VHDX log: update at %" PRIu64 " would overwrite "
               "the file identifier or the headers", offset);
    return -1;
  }
  return 0;
}

static int
apply_in_place (void *opaque, uint64_t offset, const uint8_t *data,
                uint64_t length)
{
  struct vhd_disk *d = opaque;

  if (check_update (offset, length) == -1)
    return -1;
  if (data)
    return io_pwrite (d->io, data, (size_t) length, offset);
  return io_write_zeros (d->io, offset, length);
}

static int
apply_overlay (void *opaque, uint64_t offset, const uint8_t *data,
               uint64_t length)
{
  struct vhd_disk *d = opaque;

  if (check_update (offset, length) == -1)
    return -1;
  return vhdx_overlay_add (d->io, offset, data, length);
}

static int
replay_read_only (struct vhd_disk *d, const uint8_t *log, uint32_t len,
                  const struct vhdx_log_sequence *seq)
{
  struct io *ov = vhdx_overlay_new (d->io);

  d->io = ov; /* the overlay owns the file now (or closed it) */
  if (ov == NULL)
    return -1;
  if (vhdx_log_replay (log, len, seq, apply_overlay, d) == -1)
    return -1;
  vhdx_overlay_extend (ov, seq->last_file_offset);
  return 0;
}

static int
replay_in_place (struct vhd_disk *d, struct vhdx *v, const uint8_t *log,
                 uint32_t len, const struct vhdx_log_sequence *seq)
{
  int64_t size;

  if (vhdx_log_replay (log, len, seq, apply_in_place, d) == -1)
    return -1;
  size = file_size (d);
  if (size < 0)
    return -1;
  if ((uint64_t) size < seq->last_file_offset
      && d->io->ops->truncate (d->io, seq->last_file_offset) == -1)
    return -1;
  if (io_flush (d->io) == -1)
    return -1;
  memset (v->hdr.log_guid, 0, GUID_SIZE);
  return vhdx_update_headers (d, false);
}

static int
replay_log (struct vhd_disk *d, struct vhdx *v)
{
  struct vhdx_log_sequence seq;
  uint32_t len = v->hdr.log_length;
  int64_t size = file_size (d);
  uint8_t *log;
  int r;

  if (guid_is_zero (v->hdr.log_guid))
    return 0;
  if (len == 0 || len > MAX_LOG_REPLAY) {
    set_error (len ? EFBIG : EBADMSG, "VHDX log of %" PRIu32 " bytes must "
               "be replayed (this library replays logs of 1 MiB to %" PRIu32
               " MiB)", len, MAX_LOG_REPLAY >> 20);
    return -1;
  }
  log = read_alloc (d, v->hdr.log_offset, len, "log");
  if (log == NULL)
    return -1;
  r = vhdx_log_find_active (log, len, v->hdr.log_guid, &seq);
  if (r == 0 && seq.count == 0) {
    /* LogGuid set but no entry carries it: a writer stopped between
     * setting the GUID and writing its first entry.  Nothing to replay
     * (qemu reads such files the same way). */
    memset (v->hdr.log_guid, 0, GUID_SIZE);
  }
  else if (r == 0 && (size < 0 || vhdx_log_check_replay (log, len, &seq,
                                                         (uint64_t) size)
                                     == -1))
    r = -1; /* truncated, or beyond the replay limits (log.h) */
  else if (r == 0) {
    d->log_dirty = true;
    r = d->readonly ? replay_read_only (d, log, len, &seq)
                    : replay_in_place (d, v, log, len, &seq);
  }
  free (log);
  return r;
}

/* --- regions and metadata ------------------------------------------------- */

static int
read_regions (struct vhd_disk *d, struct vhdx *v)
{
  uint8_t *buf = read_alloc (d, VHDX_REGION1_OFFSET, 2 * VHDX_RGN_SIZE,
                             "region tables");
  int r;

  if (buf == NULL)
    return -1;
  r = vhdx_region_decode (buf, &v->regions);
  if (r == -1 && vhd_get_errno () == EBADMSG) {
    /* A torn or damaged first copy: the second one is there for that. */
    if (vhdx_region_decode (buf + VHDX_RGN_SIZE, &v->regions) == 0)
      r = 0;
    else
      vhdx_region_decode (buf, &v->regions); /* report the first copy */
  }
  free (buf);
  return r;
}

/* Regions inside the file and clear of the log. */
static int
check_regions (struct vhd_disk *d, const struct vhdx *v)
{
  int64_t size = file_size (d);
  const struct vhdx_header *h = &v->hdr;
  uint32_t i;
  char g[GUID_STR_SIZE];

  if (size < 0)
    return -1;
  for (i = 0; i < v->regions.count; i++) {
    const struct vhdx_region *e = &v->regions.e[i];
    guid_format (e->guid, false, g);
    if (e->offset + e->length > (uint64_t) size) {
      set_error (EBADMSG, "VHDX region %s (%" PRIu32 " bytes at %" PRIu64
                 ") runs past the end of the file", g, e->length, e->offset);
      return -1;
    }
    if (e->offset < h->log_offset + h->log_length
        && h->log_offset < e->offset + e->length) {
      set_error (EBADMSG, "VHDX region %s overlaps the log", g);
      return -1;
    }
  }
  return 0;
}

static int
read_metadata (struct vhd_disk *d, struct vhdx *v)
{
  const struct vhdx_region *m = v->regions.metadata;
  uint32_t len = MIN (m->length, MAX_METADATA_READ);
  uint8_t *buf = read_alloc (d, m->offset, len, "metadata region");
  int r;

  if (buf == NULL)
    return -1;
  r = vhdx_metadata_decode (buf, len, &v->md);
  free (buf);
  return r;
}

/* --- BAT ------------------------------------------------------------------ */

static unsigned
avoid_ranges (const struct vhdx *v, struct vhdx_range *out, unsigned max)
{
  unsigned n = 0;
  uint32_t i;

  if (v->hdr.log_length)
    out[n++] = (struct vhdx_range) { v->hdr.log_offset,
                                     v->hdr.log_offset + v->hdr.log_length,
                                     "log" };
  for (i = 0; i < v->regions.count && n < max; i++) {
    const struct vhdx_region *e = &v->regions.e[i];
    out[n++] = (struct vhdx_range) {
      e->offset, e->offset + e->length,
      e == v->regions.bat ? "BAT" : e == v->regions.metadata
                                      ? "metadata region" : "region" };
  }
  return n;
}

/* A BAT page just read: entries checked as at open, against the file's
 * size now and the structures the blocks must not overlap. */
static int
check_bat_page (void *opaque, const uint64_t *e, uint64_t first, uint64_t n)
{
  struct vhd_disk *d = opaque;
  struct vhdx *v = d->priv;
  struct vhdx_range avoid[VHDX_RGN_MAX_ENTRIES + 1];
  int64_t size = file_size (d);

  if (size < 0)
    return -1;
  return vhdx_bat_check_entries (e, first, n, &v->geo, v->md.disk_size,
                                 v->md.block_size, (uint64_t) size, avoid,
                                 avoid_ranges (v, avoid,
                                               VHDX_RGN_MAX_ENTRIES + 1));
}

/* Every entry once (each page is checked as it comes in), and every
 * partially present block's chunk has its sector bitmap. */
static int
check_whole_bat (struct vhdx *v)
{
  uint64_t block, e, bitmap;

  for (block = 0; block < v->geo.data_blocks; block++) {
    uint64_t bi = vhdx_bat_bitmap_index (&v->geo, block / v->geo.chunk_ratio);
    if (vhdx_get_entry (v, vhdx_bat_payload_index (&v->geo, block), &e) == -1)
      return -1;
    if (vhdx_bat_state (e) != VHDX_PAYLOAD_PARTIALLY_PRESENT)
      continue;
    bitmap = 0;
    if ((bi < v->geo.entries && vhdx_get_entry (v, bi, &bitmap) == -1)
        || vhdx_bat_check_bitmap_of (bitmap, &v->geo, block) == -1)
      return -1;
  }
  /* The pages the payload entries left out hold only entries of blocks
   * past the disk, and a differencing disk's last bitmap entry. */
  return vhdx_get_entry (v, v->geo.entries - 1, &e);
}

static int
read_bat (struct vhd_disk *d, struct vhdx *v)
{
  const struct vhdx_region *b = v->regions.bat;
  const struct vhdx_metadata *md = &v->md;

  vhdx_bat_geometry (md->disk_size, md->block_size, md->logical_sector,
                     md->has_parent, &v->geo);
  if (v->geo.entries > b->length / 8) {
    set_error (EBADMSG, "VHDX BAT region of %" PRIu32 " bytes is too small "
               "for the %" PRIu64 " entries the disk needs", b->length,
               v->geo.entries);
    return -1;
  }
  if (vhdx_bat_cache_init (&v->bat, d->io, b->offset, v->geo.entries,
                           check_bat_page, d) == -1)
    return -1;
  return check_whole_bat (v);
}

/* --- filling the handle --------------------------------------------------- */

static int
add_candidates (struct vhd_disk *d, const struct vhdx_parent_locator *pl)
{
  if (disk_add_parent_candidate (d, pl->relative_path) == -1
      || disk_add_parent_candidate (d, pl->absolute_win32_path) == -1
      || disk_add_parent_candidate (d, pl->volume_path) == -1)
    return -1;
  return 0;
}

static int
fill_disk (struct vhd_disk *d, struct vhdx *v)
{
  const struct vhdx_metadata *md = &v->md;
  int64_t size = file_size (d);

  if (size < 0)
    return -1;
  d->size = md->disk_size;
  d->block_size = md->block_size;
  d->logical_sector = md->logical_sector;
  d->physical_sector = md->physical_sector;
  memcpy (d->id, md->disk_id, 16);
  memcpy (d->link_id, v->hdr.data_write_guid, 16);
  v->sectors_per_block = md->block_size / md->logical_sector;
  v->bitmap_slice = (size_t) (v->sectors_per_block / 8);
  v->file_end = ROUND_UP ((uint64_t) size, VHDX_MiB);
  if (!md->has_parent) {
    d->type = md->leave_blocks_allocated ? VHD_TYPE_FIXED : VHD_TYPE_DYNAMIC;
    return 0;
  }
  d->type = VHD_TYPE_DIFFERENCING;
  if (guid_parse (md->locator.parent_linkage, d->parent_link_id) == -1) {
    set_error (EBADMSG, "VHDX parent locator: parent_linkage \"%s\" is not "
               "a GUID", md->locator.parent_linkage);
    return -1;
  }
  if (md->locator.parent_linkage2
      && guid_parse (md->locator.parent_linkage2, d->parent_link_id2) == -1) {
    set_error (EBADMSG, "VHDX parent locator: parent_linkage2 \"%s\" is not "
               "a GUID", md->locator.parent_linkage2);
    return -1;
  }
  return add_candidates (d, &md->locator);
}

static int
vhdx_open (struct vhd_disk *d)
{
  struct vhdx *v = d->priv;

  if (read_headers (d, v) == -1 || replay_log (d, v) == -1
      || read_regions (d, v) == -1 || check_regions (d, v) == -1
      || read_metadata (d, v) == -1 || read_bat (d, v) == -1
      || fill_disk (d, v) == -1)
    return -1;
  return 0;
}

static void
vhdx_close (struct vhd_disk *d)
{
  struct vhdx *v = d->priv;
  unsigned i;

  if (v == NULL)
    return;
  for (i = 0; i < VHDX_BITMAP_CACHE_SLOTS; i++)
    free (v->cache[i].bits);
  if (v->deferred)
    vhdx_stage_free (v->deferred);
  free (v->deferred);
  vhdx_bat_cache_free (&v->bat);
  free (v->free);
  free (v->pending);
  vhdx_metadata_free (&v->md);
}

/* --- map ------------------------------------------------------------------ */

const uint8_t *
vhdx_block_bitmap (struct vhd_disk *d, uint64_t block)
{
  struct vhdx *v = d->priv;
  struct vhdx_bitmap_slot *s = &v->cache[block % VHDX_BITMAP_CACHE_SLOTS];
  uint64_t chunk = block / v->geo.chunk_ratio, entry, where;

  if (s->valid && s->block == block)
    return s->bits;
  if (vhdx_get_entry (v, vhdx_bat_bitmap_index (&v->geo, chunk), &entry)
      == -1)
    return NULL;
  if (vhdx_bat_check_bitmap_of (entry, &v->geo, block) == -1)
    return NULL;
  where = vhdx_bat_offset (entry)
          + (block % v->geo.chunk_ratio) * v->bitmap_slice;
  if (s->bits == NULL && (s->bits = malloc (v->bitmap_slice)) == NULL) {
    set_error (ENOMEM, "out of memory");
    return NULL;
  }
  s->valid = false;
  if (io_pread (d->io, s->bits, v->bitmap_slice, where) == -1) {
    prefix_error ("reading the sector bitmap of block %" PRIu64, block);
    return NULL;
  }
  s->valid = true;
  s->block = block;
  return s->bits;
}

void
vhdx_forget_bitmap (struct vhdx *v, uint64_t block)
{
  struct vhdx_bitmap_slot *s = &v->cache[block % VHDX_BITMAP_CACHE_SLOTS];

  if (s->block == block)
    s->valid = false;
}

static bool
bit_set (const uint8_t *bits, uint64_t i)
{
  return (bits[i / 8] >> (i % 8)) & 1;
}

/* Within a partially present block: the run of sectors that share the
 * state of the one holding byte `in`, up to `len` bytes. */
static int
map_partial (struct vhd_disk *d, uint64_t block, uint64_t in, uint64_t len,
             uint64_t block_offset, struct extent *e)
{
  struct vhdx *v = d->priv;
  const uint8_t *bits = vhdx_block_bitmap (d, block);
  uint64_t ls = d->logical_sector, s, last;
  bool present;

  if (bits == NULL)
    return -1;
  s = in / ls;
  last = MIN (DIV_ROUND_UP (in + len, ls), v->sectors_per_block);
  present = bit_set (bits, s);
  while (++s < last && bit_set (bits, s) == present)
    ;
  e->length = MIN (in + len, s * ls) - in;
  e->state = present ? LAYER_DATA : LAYER_ABSENT;
  e->host_offset = block_offset + in;
  return 0;
}

static int
vhdx_map (struct vhd_disk *d, uint64_t offset, uint64_t count,
          struct extent *e)
{
  struct vhdx *v = d->priv;
  uint64_t bs = v->md.block_size, block = offset / bs, in = offset % bs;
  uint64_t len = MIN (count, bs - in), entry;

  if (vhdx_get_entry (v, vhdx_bat_payload_index (&v->geo, block), &entry)
      == -1)
    return -1;
  e->length = len;
  e->host_offset = 0;
  switch (vhdx_bat_state (entry)) {
  case VHDX_PAYLOAD_FULLY_PRESENT:
    e->state = LAYER_DATA;
    e->host_offset = vhdx_bat_offset (entry) + in;
    return 0;
  case VHDX_PAYLOAD_PARTIALLY_PRESENT:
    return map_partial (d, block, in, len, vhdx_bat_offset (entry), e);
  case VHDX_PAYLOAD_ZERO:
    e->state = LAYER_ZERO;
    return 0;
  default:
    e->state = LAYER_ABSENT;
    return 0;
  }
}

const struct format_ops vhdx_format_ops = {
  .name = "vhdx",
  .format = VHD_FORMAT_VHDX,
  .instance_size = sizeof (struct vhdx),
  .probe = vhdx_probe,
  .open = vhdx_open,
  .close = vhdx_close,
  .map = vhdx_map,
  .pwrite = vhdx_pwrite,
  .flush = vhdx_flush,
  .flush_needs_metadata = vhdx_flush_needs_metadata,
  .zero = vhdx_zero,
  .create = vhdx_create,
  .unmap = vhdx_unmap,
  .defragment = vhdx_defragment,
  .resize = vhdx_resize,
  .records_link_id2 = true,
  .set_parent = vhdx_set_parent,
  .check = vhdx_check,
};
