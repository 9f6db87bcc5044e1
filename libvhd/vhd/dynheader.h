/* dynheader.h: the VHD dynamic disk header (VHD spec 1.0, "Dynamic Disk
 * Header Format").  1024 bytes, big-endian, at the footer's data offset
 * of dynamic and differencing disks.
 */
#ifndef LIBVHD_VHD_DYNHEADER_H
#define LIBVHD_VHD_DYNHEADER_H

#include <stdint.h>

#include "vhd/locator.h"

/* Byte offsets, as in the spec's table. */
enum {
  VHD_DYN_COOKIE = 0,              /* char[8] "cxsparse" */
  VHD_DYN_DATA_OFFSET = 8,         /* be64, unused: ~0 */
  VHD_DYN_TABLE_OFFSET = 16,       /* be64, the BAT */
  VHD_DYN_HEADER_VERSION = 24,     /* be32, 0x00010000 */
  VHD_DYN_MAX_TABLE_ENTRIES = 28,  /* be32 */
  VHD_DYN_BLOCK_SIZE = 32,         /* be32, bytes of data per block */
  VHD_DYN_CHECKSUM = 36,           /* be32, ~(sum of the other bytes) */
  VHD_DYN_PARENT_UNIQUE_ID = 40,   /* 16 bytes */
  VHD_DYN_PARENT_TIMESTAMP = 56,   /* be32 */
  VHD_DYN_RESERVED1 = 60,          /* be32 */
  VHD_DYN_PARENT_NAME = 64,        /* 512 bytes of UTF-16 big-endian */
  VHD_DYN_PARENT_LOCATORS = 576,   /* 8 entries of VHD_LOC_SIZE */
  VHD_DYN_RESERVED2 = 768,         /* 256 zero bytes */
  VHD_DYN_SIZE = 1024,
};

#define VHD_DYN_COOKIE_STR "cxsparse"
#define VHD_DYN_VERSION 0x00010000U
#define VHD_DYN_PARENT_NAME_SIZE 512
#define VHD_MIN_BLOCK_SIZE 512U

struct vhd_dynheader {
  uint64_t data_offset, table_offset;
  uint32_t header_version, max_table_entries, block_size, checksum;
  uint8_t parent_unique_id[16];
  uint32_t parent_timestamp;
  uint8_t parent_name[VHD_DYN_PARENT_NAME_SIZE]; /* raw UTF-16BE */
  struct vhd_locator locators[VHD_LOCATOR_COUNT];
};

uint32_t vhd_dynheader_checksum (const uint8_t raw[VHD_DYN_SIZE]);

/* Decode and check what the spec requires: cookie, header version 1.x,
 * checksum, block size a power of two of at least 512 bytes.  0, or -1
 * with set_error (EBADMSG). */
int vhd_dynheader_decode (const uint8_t raw[VHD_DYN_SIZE],
                          struct vhd_dynheader *out);
/* The same without the checksum check (see vhd.c, hand-edited images). */
int vhd_dynheader_decode_unverified (const uint8_t raw[VHD_DYN_SIZE],
                                     struct vhd_dynheader *out);

/* Encode in, computing the checksum. */
void vhd_dynheader_encode (const struct vhd_dynheader *in,
                           uint8_t raw[VHD_DYN_SIZE]);

/* The parent's name as a malloc'd UTF-8 string ("" when empty), or NULL
 * after set_error. */
char *vhd_dynheader_parent_name (const struct vhd_dynheader *h);
/* Store name (UTF-8) as the parent's name; -1 after set_error when it
 * does not fit. */
int vhd_dynheader_set_parent_name (struct vhd_dynheader *h,
                                   const char *name);

#endif /* LIBVHD_VHD_DYNHEADER_H */
