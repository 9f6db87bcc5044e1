/* footer.h: the VHD hard disk footer (VHD spec 1.0, "Hard Disk Footer
 * Format").  512 bytes, big-endian, at the end of every VHD and, for
 * dynamic and differencing disks, copied at offset 0.
 */
#ifndef LIBVHD_VHD_FOOTER_H
#define LIBVHD_VHD_FOOTER_H

#include <stdbool.h>
#include <stdint.h>

/* Byte offsets, as in the spec's table. */
enum {
  VHD_FTR_COOKIE = 0,           /* char[8] "conectix" */
  VHD_FTR_FEATURES = 8,         /* be32, bit 1 (reserved) always set */
  VHD_FTR_VERSION = 12,         /* be32, 0x00010000 */
  VHD_FTR_DATA_OFFSET = 16,     /* be64, ~0 for fixed disks */
  VHD_FTR_TIMESTAMP = 24,       /* be32, seconds since 2000-01-01 UTC */
  VHD_FTR_CREATOR_APP = 28,     /* char[4] */
  VHD_FTR_CREATOR_VERSION = 32, /* be32 */
  VHD_FTR_CREATOR_HOST_OS = 36, /* be32, "Wi2k" or "Mac " */
  VHD_FTR_ORIGINAL_SIZE = 40,   /* be64 */
  VHD_FTR_CURRENT_SIZE = 48,    /* be64, the virtual disk's size */
  VHD_FTR_CYLINDERS = 56,       /* be16 */
  VHD_FTR_HEADS = 58,           /* u8 */
  VHD_FTR_SECTORS = 59,         /* u8, sectors per track */
  VHD_FTR_DISK_TYPE = 60,       /* be32: 2 fixed, 3 dynamic, 4 differencing */
  VHD_FTR_CHECKSUM = 64,        /* be32, ~(sum of the other bytes) */
  VHD_FTR_UNIQUE_ID = 68,       /* 16 bytes */
  VHD_FTR_SAVED_STATE = 84,     /* u8 */
  VHD_FTR_RESERVED = 85,        /* 427 zero bytes */
  VHD_FTR_SIZE = 512,
};

#define VHD_COOKIE "conectix"
#define VHD_FORMAT_VERSION 0x00010000U
#define VHD_FEATURES_RESERVED 0x00000002U
#define VHD_HOST_OS_WINDOWS 0x5769326bU /* "Wi2k" */
#define VHD_NO_DATA_OFFSET UINT64_MAX   /* fixed disks */

enum vhd_disk_type {
  VHD_DISK_FIXED = 2,
  VHD_DISK_DYNAMIC = 3,
  VHD_DISK_DIFFERENCING = 4,
};

/* Host-order view of a footer.  Never written to disk directly. */
struct vhd_footer {
  uint32_t features, version, timestamp;
  uint64_t data_offset;
  char creator_app[4];
  uint32_t creator_version, creator_host_os;
  uint64_t original_size, current_size;
  uint16_t cylinders;
  uint8_t heads, sectors_per_track;
  uint32_t disk_type, checksum;
  uint8_t unique_id[16];
  uint8_t saved_state;
};

/* True when raw starts with the "conectix" cookie (raw holds >= 8 bytes). */
bool vhd_footer_has_cookie (const uint8_t *raw);

/* The spec's checksum of raw: the one's complement of the sum of every
 * byte except the checksum field.  Pure. */
uint32_t vhd_footer_checksum (const uint8_t raw[VHD_FTR_SIZE]);

/* Decode and check what the spec requires: cookie, format version 1.x,
 * checksum, disk type 2, 3 or 4.  0, or -1 with set_error (EBADMSG). */
int vhd_footer_decode (const uint8_t raw[VHD_FTR_SIZE],
                       struct vhd_footer *out);

/* The same without the checksum check, for images whose checksums are
 * known to be stale (see vhd.c, "hand-edited images"). */
int vhd_footer_decode_unverified (const uint8_t raw[VHD_FTR_SIZE],
                                  struct vhd_footer *out);

/* Encode in (its checksum field is ignored: the checksum is computed). */
void vhd_footer_encode (const struct vhd_footer *in,
                        uint8_t raw[VHD_FTR_SIZE]);

/* CHS geometry for a disk of size bytes, by the spec's algorithm
 * (appendix "CHS Calculation"); sizes beyond 65535*16*255 sectors get
 * the largest geometry. */
void vhd_geometry (uint64_t size, uint16_t *cylinders, uint8_t *heads,
                   uint8_t *sectors_per_track);

/* Seconds since 2000-01-01 00:00:00 UTC for a Unix time (0 before it). */
uint32_t vhd_timestamp (int64_t unix_time);

#endif /* LIBVHD_VHD_FOOTER_H */
