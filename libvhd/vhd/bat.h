/* bat.h: the VHD block allocation table in memory, and the cache of
 * per-block sector bitmaps.
 *
 * The BAT is an array of big-endian 32-bit sector numbers, one per block,
 * 0xFFFFFFFF for a block not allocated.  In memory it is host order and
 * authoritative; changed entries are tracked per 512-byte BAT sector and
 * written back whole by vhd_bat_write_dirty.
 *
 * Each allocated block starts with a sector bitmap (one bit per 512-byte
 * sector, most significant bit first in each byte, set = the sector is in
 * this file), padded to a whole number of sectors.
 */
#ifndef LIBVHD_VHD_BAT_H
#define LIBVHD_VHD_BAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct io;

#define VHD_BAT_UNUSED 0xffffffffU
#define VHD_BAT_PER_SECTOR 128U /* entries in one 512-byte BAT sector */
/* Cap on the blocks of one disk (64 MiB of BAT): 32 TiB of 2 MiB blocks. */
#define VHD_MAX_BAT_ENTRIES (1U << 24)

struct vhd_bat {
  uint32_t *entries;     /* n_sectors * VHD_BAT_PER_SECTOR, host order */
  uint32_t n_sectors;    /* BAT sectors held */
  uint32_t max_entries;  /* the header's count; later ones are padding */
  uint64_t offset;       /* the BAT's file offset */
  uint8_t *dirty;        /* one bit per BAT sector */
  bool any_dirty;
};

/* Encode/decode count entries of a BAT sector (pure). */
void vhd_bat_decode (const uint8_t *raw, size_t count, uint32_t *out);
void vhd_bat_encode (const uint32_t *in, size_t count, uint8_t *raw);

/* Read the BAT sectors that cover the first n_blocks entries, from the
 * table of max_entries entries at offset (the caller has checked that the
 * table lies inside the file and n_blocks <= max_entries <= cap).
 * Entries from max_entries on read as unused. */
int vhd_bat_load (struct vhd_bat *bat, struct io *io, uint64_t offset,
                  uint32_t max_entries, uint32_t n_blocks);
/* A BAT of n_blocks unused entries (tests, create). */
int vhd_bat_init_empty (struct vhd_bat *bat, uint64_t offset,
                        uint32_t max_entries, uint32_t n_blocks);
void vhd_bat_free (struct vhd_bat *bat);

static inline uint32_t
vhd_bat_get (const struct vhd_bat *bat, uint32_t block)
{
  return bat->entries[block];
}

/* Change an entry in memory; its BAT sector becomes dirty. */
void vhd_bat_set (struct vhd_bat *bat, uint32_t block, uint32_t sector);

/* Write every dirty BAT sector (whole 512-byte sectors) and mark it
 * clean.  0, or -1 after set_error with the rest still dirty. */
int vhd_bat_write_dirty (struct vhd_bat *bat, struct io *io);

/* Hold at least n_blocks entries in memory; entries added read as unused
 * and their BAT sectors are dirty.  0, or -1 after set_error. */
int vhd_bat_grow (struct vhd_bat *bat, uint32_t n_blocks);
/* Mark every BAT sector held dirty (the BAT is being written elsewhere). */
void vhd_bat_mark_all_dirty (struct vhd_bat *bat);

/* --- sector bitmaps --------------------------------------------------- */

/* Bytes of bitmap in front of each block of block_size bytes. */
uint32_t vhd_bitmap_size (uint32_t block_size);

static inline bool
vhd_bitmap_test (const uint8_t *bits, uint32_t sector)
{
  return (bits[sector / 8] >> (7 - sector % 8)) & 1;
}

/* Set bits [first, first + count). */
void vhd_bitmap_set_range (uint8_t *bits, uint32_t first, uint32_t count);
/* How many sectors from first (at most max) share first's bit. */
uint32_t vhd_bitmap_run (const uint8_t *bits, uint32_t first, uint32_t max);

struct vhd_bitmap {
  uint32_t block;
  bool dirty;
  struct vhd_bitmap *hash_next;
  struct vhd_bitmap *prev, *next; /* the clean LRU list, or the dirty list */
  uint8_t bits[];
};

/* Bitmaps by block: clean ones are evicted least recently used first
 * beyond max_clean; dirty ones stay until written. */
struct vhd_bitmap_list {
  struct vhd_bitmap *head, *tail;
};

struct vhd_bitmap_cache {
  uint32_t bitmap_size;
  struct vhd_bitmap **buckets;
  uint32_t n_buckets;
  struct vhd_bitmap_list clean, dirty;
  size_t n_clean, n_dirty, max_clean;
};

int vhd_bmcache_init (struct vhd_bitmap_cache *c, uint32_t bitmap_size);
void vhd_bmcache_free (struct vhd_bitmap_cache *c);

/* The bitmap of block, read from host_offset when not cached.  The
 * pointer is valid until the next call on the cache. */
struct vhd_bitmap *vhd_bmcache_get (struct vhd_bitmap_cache *c,
                                    struct io *io, uint32_t block,
                                    uint64_t host_offset);
/* A bitmap for a block being allocated, filled with fill and dirty. */
struct vhd_bitmap *vhd_bmcache_new (struct vhd_bitmap_cache *c,
                                    uint32_t block, uint8_t fill);
void vhd_bmcache_mark_dirty (struct vhd_bitmap_cache *c,
                             struct vhd_bitmap *bm);
/* Forget block's bitmap, dirty or not (the block is being unmapped). */
void vhd_bmcache_drop (struct vhd_bitmap_cache *c, uint32_t block);
/* Write every dirty bitmap at its block's BAT sector and mark it clean. */
int vhd_bmcache_write_dirty (struct vhd_bitmap_cache *c, struct io *io,
                             const struct vhd_bat *bat);

#endif /* LIBVHD_VHD_BAT_H */
