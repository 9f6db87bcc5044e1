/* bat.c: the VHD BAT in memory and the sector-bitmap cache.
 *
 * The BAT is held whole (capped at VHD_MAX_BAT_ENTRIES) in host order;
 * vhd.c changes entries only in memory and writes the dirty BAT sectors
 * at flush, after the data and bitmaps they point at are durable (see
 * "CRASH SAFETY" in vhd.c).
 *
 * The bitmap cache is a hash of block -> bitmap with two lists: clean
 * bitmaps in least-recently-used order, evicted beyond max_clean, and
 * dirty ones, pinned until vhd_bmcache_write_dirty.  Memory is bounded
 * by max_clean (derived from the bitmap size) plus what the driver lets
 * become dirty between flushes.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "byteorder.h"
#include "internal.h"
#include "minmax.h"
#include "vhd/bat.h"

/* BAT bytes read per I/O when loading. */
#define LOAD_CHUNK_SECTORS 2048U
/* Clean bitmaps kept: at most this many, and at most this many bytes. */
#define MAX_CLEAN_BITMAPS 4096U
#define MAX_CLEAN_BYTES (8U << 20)

void
vhd_bat_decode (const uint8_t *raw, size_t count, uint32_t *out)
{
  size_t i;

  for (i = 0; i < count; i++)
    out[i] = get_be32 (raw + 4 * i);
}

void
vhd_bat_encode (const uint32_t *in, size_t count, uint8_t *raw)
{
  size_t i;

  for (i = 0; i < count; i++)
    put_be32 (raw + 4 * i, in[i]);
}

int
vhd_bat_init_empty (struct vhd_bat *bat, uint64_t offset,
                    uint32_t max_entries, uint32_t n_blocks)
{
  size_t n;

  memset (bat, 0, sizeof *bat);
  if (n_blocks > VHD_MAX_BAT_ENTRIES || n_blocks > max_entries) {
    set_error (EFBIG, "BAT of %" PRIu32 " blocks is too large", n_blocks);
    return -1;
  }
  bat->n_sectors = DIV_ROUND_UP (n_blocks, VHD_BAT_PER_SECTOR);
  bat->max_entries = max_entries;
  bat->offset = offset;
  n = (size_t) bat->n_sectors * VHD_BAT_PER_SECTOR;
  bat->entries = malloc (MAX (n, (size_t) 1) * sizeof *bat->entries);
  bat->dirty = calloc (DIV_ROUND_UP (bat->n_sectors, 8) + 1, 1);
  if (bat->entries == NULL || bat->dirty == NULL) {
    vhd_bat_free (bat);
    set_error (ENOMEM, "out of memory for a BAT of %" PRIu32 " entries",
               n_blocks);
    return -1;
  }
  memset (bat->entries, 0xff, n * sizeof *bat->entries);
  return 0;
}

int
vhd_bat_load (struct vhd_bat *bat, struct io *io, uint64_t offset,
              uint32_t max_entries, uint32_t n_blocks)
{
  uint32_t to_read, done = 0;
  uint8_t *buf;

  if (vhd_bat_init_empty (bat, offset, max_entries, n_blocks) == -1)
    return -1;
  to_read = (uint32_t) MIN ((uint64_t) max_entries,
                            (uint64_t) bat->n_sectors * VHD_BAT_PER_SECTOR);
  buf = malloc ((size_t) LOAD_CHUNK_SECTORS * SECTOR_SIZE);
  if (buf == NULL) {
    vhd_bat_free (bat);
    set_error (ENOMEM, "out of memory");
    return -1;
  }
  while (done < to_read) {
    uint32_t n = MIN (to_read - done, LOAD_CHUNK_SECTORS * VHD_BAT_PER_SECTOR);
    if (io_pread (io, buf, (size_t) n * 4, offset + (uint64_t) done * 4)
        == -1) {
      prefix_error ("reading the BAT");
      free (buf);
      vhd_bat_free (bat);
      return -1;
    }
    vhd_bat_decode (buf, n, bat->entries + done);
    done += n;
  }
  free (buf);
  return 0;
}

void
vhd_bat_free (struct vhd_bat *bat)
{
  free (bat->entries);
  free (bat->dirty);
  bat->entries = NULL;
  bat->dirty = NULL;
  bat->n_sectors = 0;
}

void
vhd_bat_set (struct vhd_bat *bat, uint32_t block, uint32_t sector)
{
  uint32_t s = block / VHD_BAT_PER_SECTOR;

  bat->entries[block] = sector;
  bat->dirty[s / 8] |= (uint8_t) (1U << (s % 8));
  bat->any_dirty = true;
}

int
vhd_bat_write_dirty (struct vhd_bat *bat, struct io *io)
{
  uint8_t raw[SECTOR_SIZE];
  uint32_t s;

  if (!bat->any_dirty)
    return 0;
  for (s = 0; s < bat->n_sectors; s++) {
    uint32_t first = s * VHD_BAT_PER_SECTOR, i;
    if (!(bat->dirty[s / 8] & (1U << (s % 8))))
      continue;
    vhd_bat_encode (bat->entries + first, VHD_BAT_PER_SECTOR, raw);
    /* Entries past the header's count are padding: keep them unused. */
    for (i = 0; i < VHD_BAT_PER_SECTOR; i++)
      if (first + i >= bat->max_entries)
        put_be32 (raw + 4 * i, VHD_BAT_UNUSED);
    if (io_pwrite (io, raw, sizeof raw,
                   bat->offset + (uint64_t) s * SECTOR_SIZE) == -1) {
      prefix_error ("writing BAT sector %" PRIu32, s);
      return -1;
    }
    bat->dirty[s / 8] &= (uint8_t) ~(1U << (s % 8));
  }
  bat->any_dirty = false;
  return 0;
}

int
vhd_bat_grow (struct vhd_bat *bat, uint32_t n_blocks)
{
  uint32_t n_sectors = DIV_ROUND_UP (n_blocks, VHD_BAT_PER_SECTOR), s;
  size_t n = (size_t) n_sectors * VHD_BAT_PER_SECTOR;
  size_t old = (size_t) bat->n_sectors * VHD_BAT_PER_SECTOR;
  uint32_t *entries;
  uint8_t *dirty;

  if (n_sectors <= bat->n_sectors)
    return 0;
  if (n_blocks > VHD_MAX_BAT_ENTRIES) {
    set_error (EFBIG, "BAT of %" PRIu32 " blocks is too large", n_blocks);
    return -1;
  }
  entries = realloc (bat->entries, n * sizeof *entries);
  if (entries == NULL) {
    set_error (ENOMEM, "out of memory for a BAT of %" PRIu32 " entries",
               n_blocks);
    return -1;
  }
  bat->entries = entries;
  dirty = realloc (bat->dirty, DIV_ROUND_UP (n_sectors, 8) + 1);
  if (dirty == NULL) {
    set_error (ENOMEM, "out of memory for a BAT of %" PRIu32 " entries",
               n_blocks);
    return -1;
  }
  memset (dirty + DIV_ROUND_UP (bat->n_sectors, 8) + 1, 0,
          DIV_ROUND_UP (n_sectors, 8) - DIV_ROUND_UP (bat->n_sectors, 8));
  bat->dirty = dirty;
  memset (bat->entries + old, 0xff, (n - old) * sizeof *entries);
  for (s = bat->n_sectors; s < n_sectors; s++)
    bat->dirty[s / 8] |= (uint8_t) (1U << (s % 8));
  bat->n_sectors = n_sectors;
  bat->any_dirty = true;
  return 0;
}

void
vhd_bat_mark_all_dirty (struct vhd_bat *bat)
{
  memset (bat->dirty, 0xff, DIV_ROUND_UP (bat->n_sectors, 8) + 1);
  bat->any_dirty = true;
}

/* --- sector bitmaps --------------------------------------------------- */

uint32_t
vhd_bitmap_size (uint32_t block_size)
{
  uint32_t bytes = DIV_ROUND_UP (block_size / SECTOR_SIZE, 8U);

  return ROUND_UP (MAX (bytes, 1U), SECTOR_SIZE);
}

void
vhd_bitmap_set_range (uint8_t *bits, uint32_t first, uint32_t count)
{
  uint32_t i;

  for (i = first; i < first + count && i % 8 != 0; i++)
    bits[i / 8] |= (uint8_t) (0x80U >> (i % 8));
  for (; i + 8 <= first + count; i += 8)
    bits[i / 8] = 0xff;
  for (; i < first + count; i++)
    bits[i / 8] |= (uint8_t) (0x80U >> (i % 8));
}

uint32_t
vhd_bitmap_run (const uint8_t *bits, uint32_t first, uint32_t max)
{
  bool want = vhd_bitmap_test (bits, first);
  uint8_t whole = want ? 0xff : 0x00;
  uint32_t i = first, end = first + max;

  for (; i < end && i % 8 != 0; i++)
    if (vhd_bitmap_test (bits, i) != want)
      return i - first;
  while (i + 8 <= end && bits[i / 8] == whole)
    i += 8;
  while (i < end && vhd_bitmap_test (bits, i) == want)
    i++;
  return i - first;
}

/* --- the cache ---------------------------------------------------------- */

static void
list_remove (struct vhd_bitmap_list *l, struct vhd_bitmap *b)
{
  if (b->prev)
    b->prev->next = b->next;
  else
    l->head = b->next;
  if (b->next)
    b->next->prev = b->prev;
  else
    l->tail = b->prev;
  b->prev = b->next = NULL;
}

static void
list_append (struct vhd_bitmap_list *l, struct vhd_bitmap *b)
{
  b->prev = l->tail;
  b->next = NULL;
  if (l->tail)
    l->tail->next = b;
  else
    l->head = b;
  l->tail = b;
}

int
vhd_bmcache_init (struct vhd_bitmap_cache *c, uint32_t bitmap_size)
{
  memset (c, 0, sizeof *c);
  c->bitmap_size = bitmap_size;
  c->max_clean = MAX (16U, MIN (MAX_CLEAN_BITMAPS,
                                MAX_CLEAN_BYTES / bitmap_size));
  c->n_buckets = 4096;
  c->buckets = calloc (c->n_buckets, sizeof *c->buckets);
  if (c->buckets == NULL) {
    set_error (ENOMEM, "out of memory");
    return -1;
  }
  return 0;
}

static struct vhd_bitmap **
bucket (struct vhd_bitmap_cache *c, uint32_t block)
{
  return &c->buckets[(block * 2654435761U) % c->n_buckets];
}

static struct vhd_bitmap *
lookup (struct vhd_bitmap_cache *c, uint32_t block)
{
  struct vhd_bitmap *b;

  for (b = *bucket (c, block); b; b = b->hash_next)
    if (b->block == block)
      return b;
  return NULL;
}

static void
unhash (struct vhd_bitmap_cache *c, struct vhd_bitmap *b)
{
  struct vhd_bitmap **p = bucket (c, b->block);

  while (*p != b)
    p = &(*p)->hash_next;
  *p = b->hash_next;
}

static void
evict_clean (struct vhd_bitmap_cache *c)
{
  while (c->n_clean > c->max_clean) {
    struct vhd_bitmap *b = c->clean.head;
    list_remove (&c->clean, b);
    unhash (c, b);
    c->n_clean--;
    free (b);
  }
}

static struct vhd_bitmap *
insert (struct vhd_bitmap_cache *c, uint32_t block)
{
  struct vhd_bitmap *b = malloc (sizeof *b + c->bitmap_size);
  struct vhd_bitmap **head = bucket (c, block);

  if (b == NULL) {
    set_error (ENOMEM, "out of memory for a sector bitmap");
    return NULL;
  }
  b->block = block;
  b->dirty = false;
  b->prev = b->next = NULL;
  b->hash_next = *head;
  *head = b;
  return b;
}

struct vhd_bitmap *
vhd_bmcache_get (struct vhd_bitmap_cache *c, struct io *io, uint32_t block,
                 uint64_t host_offset)
{
  struct vhd_bitmap *b = lookup (c, block);

  if (b != NULL) {
    if (!b->dirty) { /* most recently used goes last */
      list_remove (&c->clean, b);
      list_append (&c->clean, b);
    }
    return b;
  }
  b = insert (c, block);
  if (b == NULL)
    return NULL;
  if (io_pread (io, b->bits, c->bitmap_size, host_offset) == -1) {
    prefix_error ("reading the sector bitmap of block %" PRIu32, block);
    unhash (c, b);
    free (b);
    return NULL;
  }
  list_append (&c->clean, b);
  c->n_clean++;
  evict_clean (c);
  return b;
}

struct vhd_bitmap *
vhd_bmcache_new (struct vhd_bitmap_cache *c, uint32_t block, uint8_t fill)
{
  struct vhd_bitmap *b;

  vhd_bmcache_drop (c, block); /* a stale entry for a block reallocated */
  b = insert (c, block);
  if (b == NULL)
    return NULL;
  memset (b->bits, fill, c->bitmap_size);
  b->dirty = true;
  list_append (&c->dirty, b);
  c->n_dirty++;
  return b;
}

void
vhd_bmcache_mark_dirty (struct vhd_bitmap_cache *c, struct vhd_bitmap *b)
{
  if (b->dirty)
    return;
  list_remove (&c->clean, b);
  c->n_clean--;
  b->dirty = true;
  list_append (&c->dirty, b);
  c->n_dirty++;
}

void
vhd_bmcache_drop (struct vhd_bitmap_cache *c, uint32_t block)
{
  struct vhd_bitmap *b = lookup (c, block);

  if (b == NULL)
    return;
  if (b->dirty) {
    list_remove (&c->dirty, b);
    c->n_dirty--;
  }
  else {
    list_remove (&c->clean, b);
    c->n_clean--;
  }
  unhash (c, b);
  free (b);
}

int
vhd_bmcache_write_dirty (struct vhd_bitmap_cache *c, struct io *io,
                         const struct vhd_bat *bat)
{
  while (c->dirty.head != NULL) {
    struct vhd_bitmap *b = c->dirty.head;
    uint64_t at = (uint64_t) vhd_bat_get (bat, b->block) * SECTOR_SIZE;
    if (io_pwrite (io, b->bits, c->bitmap_size, at) == -1) {
      prefix_error ("writing the sector bitmap of block %" PRIu32, b->block);
      return -1;
    }
    list_remove (&c->dirty, b);
    c->n_dirty--;
    b->dirty = false;
    list_append (&c->clean, b);
    c->n_clean++;
  }
  evict_clean (c);
  return 0;
}

void
vhd_bmcache_free (struct vhd_bitmap_cache *c)
{
  uint32_t i;

  if (c->buckets == NULL)
    return;
  for (i = 0; i < c->n_buckets; i++) {
    struct vhd_bitmap *b = c->buckets[i];
    while (b) {
      struct vhd_bitmap *next = b->hash_next;
      free (b);
      b = next;
    }
  }
  free (c->buckets);
  memset (c, 0, sizeof *c);
}
