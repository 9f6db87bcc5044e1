/* region.h: the VHDX region table (MS-VHDX 2.2.3), two copies at
 * 192 KiB and 256 KiB.  64 KiB each: a 16-byte header, then entries.
 */
#ifndef LIBVHD_VHDX_REGION_H
#define LIBVHD_VHDX_REGION_H

#include <stdbool.h>
#include <stdint.h>

#include "guid.h"

enum {
  VHDX_RGN_SIGNATURE = 0,   /* u32 "regi" */
  VHDX_RGN_CHECKSUM = 4,    /* u32 CRC-32C over the 64 KiB, this as 0 */
  VHDX_RGN_COUNT = 8,       /* u32, <= 2047 */
  VHDX_RGN_ENTRIES = 16,
  /* Entry, 32 bytes. */
  VHDX_RGNE_GUID = 0,       /* GUID */
  VHDX_RGNE_OFFSET = 16,    /* u64, multiple of 1 MiB, >= 1 MiB */
  VHDX_RGNE_LENGTH = 24,    /* u32, multiple of 1 MiB */
  VHDX_RGNE_REQUIRED = 28,  /* u32, bit 0 */
  VHDX_RGNE_SIZE = 32,
  VHDX_RGN_MAX_ENTRIES = 2047,
  VHDX_RGN_SIZE = 65536,
  VHDX_REGION1_OFFSET = 196608,
  VHDX_REGION2_OFFSET = 262144,
};

#define VHDX_RGN_MAGIC 0x69676572U /* "regi" */

extern const uint8_t vhdx_bat_guid[GUID_SIZE];
extern const uint8_t vhdx_metadata_guid[GUID_SIZE];

struct vhdx_region {
  uint8_t guid[GUID_SIZE];
  uint64_t offset;
  uint32_t length;
  bool required;
};

/* All entries, unknown optional ones included (they are kept, and new
 * allocations must not overlap them). */
struct vhdx_regions {
  uint32_t count;
  struct vhdx_region e[VHDX_RGN_MAX_ENTRIES];
  const struct vhdx_region *bat, *metadata; /* point into e */
};

/* Decode and validate one table: signature, checksum, count, each
 * entry's alignment, duplicates and overlaps, the presence of the BAT and
 * metadata regions, and ENOTSUP for an unknown required region. */
int vhdx_region_decode (const uint8_t raw[VHDX_RGN_SIZE],
                        struct vhdx_regions *r);
/* Encode a table of count entries into raw[0..VHDX_RGN_SIZE). */
void vhdx_region_encode (const struct vhdx_region *e, uint32_t count,
                         uint8_t raw[VHDX_RGN_SIZE]);

#endif /* LIBVHD_VHDX_REGION_H */
