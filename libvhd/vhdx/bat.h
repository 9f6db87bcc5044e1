/* bat.h: the VHDX block allocation table (MS-VHDX 2.5).
 *
 * One array of 64-bit entries: per chunk, chunk_ratio payload entries and
 * then the chunk's sector bitmap entry.
 *
 *   bits 0-2   state
 *   bits 3-19  reserved
 *   bits 20-63 file offset in MiB
 */
#ifndef LIBVHD_VHDX_BAT_H
#define LIBVHD_VHDX_BAT_H

#include <stdbool.h>
#include <stdint.h>

enum vhdx_payload_state {
  VHDX_PAYLOAD_NOT_PRESENT = 0,
  VHDX_PAYLOAD_UNDEFINED = 1,
  VHDX_PAYLOAD_ZERO = 2,
  VHDX_PAYLOAD_UNMAPPED = 3,
  VHDX_PAYLOAD_FULLY_PRESENT = 6,
  VHDX_PAYLOAD_PARTIALLY_PRESENT = 7,
};

enum vhdx_bitmap_state {
  VHDX_SB_NOT_PRESENT = 0,
  VHDX_SB_PRESENT = 6,
};

#define VHDX_BAT_STATE_MASK UINT64_C (7)
#define VHDX_BAT_OFFSET_SHIFT 20
/* Sectors described by one 1 MiB sector bitmap block. */
#define VHDX_SECTORS_PER_BITMAP (UINT64_C (1) << 23)
#define VHDX_BITMAP_BLOCK_SIZE (UINT32_C (1) << 20)

struct vhdx_bat_geometry {
  uint64_t chunk_ratio;   /* payload blocks per sector bitmap block */
  uint64_t data_blocks;   /* payload blocks covering the disk */
  uint64_t bitmap_blocks; /* sector bitmap blocks covering the disk */
  uint64_t entries;       /* BAT entries the spec requires */
};

/* A range of the file that no block may overlap. */
struct vhdx_range {
  uint64_t start, end;
  const char *what;
};

/* The BAT's shape for a disk.  Inputs are validated metadata. */
void vhdx_bat_geometry (uint64_t disk_size, uint32_t block_size,
                        uint32_t logical_sector, bool has_parent,
                        struct vhdx_bat_geometry *g);

static inline unsigned
vhdx_bat_state (uint64_t entry)
{
  return (unsigned) (entry & VHDX_BAT_STATE_MASK);
}

/* File offset in bytes (reserved bits ignored). */
static inline uint64_t
vhdx_bat_offset (uint64_t entry)
{
  return entry >> VHDX_BAT_OFFSET_SHIFT << VHDX_BAT_OFFSET_SHIFT;
}

/* offset must be a multiple of 1 MiB. */
static inline uint64_t
vhdx_bat_entry (unsigned state, uint64_t offset)
{
  return offset | state;
}

static inline uint64_t
vhdx_bat_payload_index (const struct vhdx_bat_geometry *g, uint64_t block)
{
  return block + block / g->chunk_ratio;
}

static inline uint64_t
vhdx_bat_bitmap_index (const struct vhdx_bat_geometry *g, uint64_t chunk)
{
  return chunk * (g->chunk_ratio + 1) + g->chunk_ratio;
}

/* Whether entry i is a sector bitmap's; else it is block
 * vhdx_bat_block_of's (which may lie past the disk's last block). */
static inline bool
vhdx_bat_is_bitmap (const struct vhdx_bat_geometry *g, uint64_t i)
{
  return i % (g->chunk_ratio + 1) == g->chunk_ratio;
}

static inline uint64_t
vhdx_bat_block_of (const struct vhdx_bat_geometry *g, uint64_t i)
{
  return i - i / (g->chunk_ratio + 1);
}

/* Check entries [first, first + n) of a table shaped g, held in e[]:
 * known states, and for allocated blocks an offset past the header
 * section, inside a file of file_size bytes and clear of avoid[].
 * EBADMSG naming the first bad entry. */
int vhdx_bat_check_entries (const uint64_t *e, uint64_t first, uint64_t n,
                            const struct vhdx_bat_geometry *g,
                            uint64_t disk_size, uint32_t block_size,
                            uint64_t file_size,
                            const struct vhdx_range *avoid,
                            unsigned n_avoid);
/* For a partially present block: EBADMSG unless its chunk's sector
 * bitmap entry (0 when the table has none) is present. */
int vhdx_bat_check_bitmap_of (uint64_t bitmap_entry,
                              const struct vhdx_bat_geometry *g,
                              uint64_t block);

/* Check every entry: known state, and for allocated blocks an offset past
 * the header section, inside a file of file_size bytes and clear of the
 * ranges in avoid[].  Partially present blocks need their chunk's sector
 * bitmap.  EBADMSG naming the entry on the first failure. */
int vhdx_bat_validate (const uint64_t *bat, const struct vhdx_bat_geometry *g,
                       uint64_t disk_size, uint32_t block_size,
                       uint64_t file_size, const struct vhdx_range *avoid,
                       unsigned n_avoid);

#endif /* LIBVHD_VHDX_BAT_H */
