/* bat.c: VHDX BAT geometry and validation (MS-VHDX 2.4, 2.5).
 *
 * chunk ratio = 2^23 * logical sector size / block size: the payload
 * blocks one 1 MiB sector bitmap block describes.  A fixed or dynamic
 * disk has data_blocks + (data_blocks - 1) / chunk_ratio entries (its
 * last entry is the last payload block); a differencing disk has
 * bitmap_blocks * (chunk_ratio + 1) (its last entry is a sector bitmap).
 *
 * Validation goes a range of entries at a time (the BAT is paged in,
 * bat-cache.c); allocated blocks are checked
 * against the file's end and the fixed structures (header section, log,
 * regions), not against one another (the FileOffsetMB uniqueness rule
 * needs a sort of the whole table and is left to a check command).
 */
#include <errno.h>
#include <inttypes.h>

#include "bat.h"
#include "header.h"
#include "internal.h"
#include "minmax.h"

void
vhdx_bat_geometry (uint64_t disk_size, uint32_t block_size,
                   uint32_t logical_sector, bool has_parent,
                   struct vhdx_bat_geometry *g)
{
  g->chunk_ratio = VHDX_SECTORS_PER_BITMAP * logical_sector / block_size;
  g->data_blocks = DIV_ROUND_UP (disk_size, (uint64_t) block_size);
  g->bitmap_blocks = DIV_ROUND_UP (g->data_blocks, g->chunk_ratio);
  if (has_parent)
    g->entries = g->bitmap_blocks * (g->chunk_ratio + 1);
  else
    g->entries = g->data_blocks + (g->data_blocks - 1) / g->chunk_ratio;
}

/* [offset, offset + len) inside the file and clear of avoid[]. */
static int
check_placement (uint64_t i, const char *kind, uint64_t offset, uint64_t len,
                 uint64_t file_size, const struct vhdx_range *avoid,
                 unsigned n_avoid)
{
  unsigned k;

  if (offset < VHDX_HEADER_SECTION_SIZE) {
    set_error (EBADMSG, "VHDX BAT entry %" PRIu64 ": %s at offset %" PRIu64
               " lies in the header section", i, kind, offset);
    return -1;
  }
  if (offset > file_size || len > file_size - offset) {
    set_error (EBADMSG, "VHDX BAT entry %" PRIu64 ": %s at offset %" PRIu64
               " runs past the end of the file (%" PRIu64 " bytes)", i, kind,
               offset, file_size);
    return -1;
  }
  for (k = 0; k < n_avoid; k++)
    if (offset < avoid[k].end && avoid[k].start < offset + len) {
      set_error (EBADMSG, "VHDX BAT entry %" PRIu64 ": %s at offset %"
                 PRIu64 " overlaps the %s", i, kind, offset, avoid[k].what);
      return -1;
    }
  return 0;
}

static int
check_bitmap_entry (uint64_t i, uint64_t e, uint64_t file_size,
                    const struct vhdx_range *avoid, unsigned n_avoid)
{
  unsigned s = vhdx_bat_state (e);

  if (s == VHDX_SB_NOT_PRESENT)
    return 0;
  if (s != VHDX_SB_PRESENT) {
    set_error (EBADMSG, "VHDX BAT entry %" PRIu64 ": sector bitmap in "
               "reserved state %u", i, s);
    return -1;
  }
  return check_placement (i, "sector bitmap", vhdx_bat_offset (e),
                          VHDX_BITMAP_BLOCK_SIZE, file_size, avoid, n_avoid);
}

/* Entry i holds a payload block of len bytes: its state, and its place
 * when allocated.  Whether a partially present block's chunk has its
 * sector bitmap is the caller's question (the entry may be elsewhere). */
static int
check_payload_entry (uint64_t i, uint64_t e, uint64_t block, uint64_t len,
                     uint64_t file_size, const struct vhdx_range *avoid,
                     unsigned n_avoid)
{
  switch (vhdx_bat_state (e)) {
  case VHDX_PAYLOAD_NOT_PRESENT:
  case VHDX_PAYLOAD_UNDEFINED:
  case VHDX_PAYLOAD_ZERO:
  case VHDX_PAYLOAD_UNMAPPED:
    return 0;
  case VHDX_PAYLOAD_PARTIALLY_PRESENT:
  case VHDX_PAYLOAD_FULLY_PRESENT:
    return check_placement (i, "payload block", vhdx_bat_offset (e), len,
                            file_size, avoid, n_avoid);
  default:
    set_error (EBADMSG, "VHDX BAT entry %" PRIu64 ": block %" PRIu64
               " in reserved state %u", i, block, vhdx_bat_state (e));
    return -1;
  }
}

int
vhdx_bat_check_entries (const uint64_t *e, uint64_t first, uint64_t n,
                        const struct vhdx_bat_geometry *g,
                        uint64_t disk_size, uint32_t block_size,
                        uint64_t file_size, const struct vhdx_range *avoid,
                        unsigned n_avoid)
{
  uint64_t k;

  for (k = 0; k < n; k++) {
    uint64_t i = first + k, block = vhdx_bat_block_of (g, i);
    if (vhdx_bat_is_bitmap (g, i)) {
      if (check_bitmap_entry (i, e[k], file_size, avoid, n_avoid) == -1)
        return -1;
    }
    else if (block < g->data_blocks) {
      uint64_t len = MIN ((uint64_t) block_size,
                          disk_size - block * block_size);
      if (check_payload_entry (i, e[k], block, len, file_size, avoid,
                               n_avoid) == -1)
        return -1;
    }
  }
  return 0;
}

int
vhdx_bat_check_bitmap_of (uint64_t bitmap_entry,
                          const struct vhdx_bat_geometry *g, uint64_t block)
{
  uint64_t bi = vhdx_bat_bitmap_index (g, block / g->chunk_ratio);

  if (bi < g->entries && vhdx_bat_state (bitmap_entry) == VHDX_SB_PRESENT)
    return 0;
  set_error (EBADMSG, "VHDX BAT entry %" PRIu64 ": block %" PRIu64
             " is partially present but its chunk has no sector bitmap",
             vhdx_bat_payload_index (g, block), block);
  return -1;
}

int
vhdx_bat_validate (const uint64_t *bat, const struct vhdx_bat_geometry *g,
                   uint64_t disk_size, uint32_t block_size,
                   uint64_t file_size, const struct vhdx_range *avoid,
                   unsigned n_avoid)
{
  uint64_t block;

  if (vhdx_bat_check_entries (bat, 0, g->entries, g, disk_size, block_size,
                              file_size, avoid, n_avoid) == -1)
    return -1;
  for (block = 0; block < g->data_blocks; block++) {
    uint64_t bi = vhdx_bat_bitmap_index (g, block / g->chunk_ratio);
    if (vhdx_bat_state (bat[vhdx_bat_payload_index (g, block)])
          == VHDX_PAYLOAD_PARTIALLY_PRESENT
        && vhdx_bat_check_bitmap_of (bi < g->entries ? bat[bi] : 0, g, block)
           == -1)
      return -1;
  }
  return 0;
}
