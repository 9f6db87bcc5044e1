/* header.h: the VHDX header section (MS-VHDX 2.2): the file type
 * identifier at offset 0 and the two headers at 64 KiB and 128 KiB.
 *
 *   0        64K        128K       192K        256K        1M
 *   | file id | header 1 | header 2 | region 1 | region 2 | reserved |
 *
 * Each header is a 4 KiB structure, little-endian, CRC-32C protected.
 */
#ifndef LIBVHD_VHDX_HEADER_H
#define LIBVHD_VHDX_HEADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "guid.h"

#define VHDX_MiB (UINT64_C (1) << 20)
#define VHDX_HEADER_SECTION_SIZE VHDX_MiB

/* File type identifier. */
enum {
  VHDX_FILEID_OFFSET = 0,
  VHDX_FILEID_SIGNATURE = 0, /* char[8] "vhdxfile" */
  VHDX_FILEID_CREATOR = 8,   /* UTF-16LE, 512 bytes, NUL-padded */
  VHDX_FILEID_CREATOR_LEN = 512,
  VHDX_FILEID_SIZE = 65536,  /* the structure's 64 KiB slot */
};

/* Header. */
enum {
  VHDX_HDR_SIGNATURE = 0,        /* u32 "head" */
  VHDX_HDR_CHECKSUM = 4,         /* u32 CRC-32C of the 4 KiB, this as 0 */
  VHDX_HDR_SEQUENCE = 8,         /* u64 */
  VHDX_HDR_FILE_WRITE_GUID = 16, /* GUID */
  VHDX_HDR_DATA_WRITE_GUID = 32, /* GUID */
  VHDX_HDR_LOG_GUID = 48,        /* GUID, zero: no log to replay */
  VHDX_HDR_LOG_VERSION = 64,     /* u16, 0 */
  VHDX_HDR_VERSION = 66,         /* u16, 1 */
  VHDX_HDR_LOG_LENGTH = 68,      /* u32, multiple of 1 MiB */
  VHDX_HDR_LOG_OFFSET = 72,      /* u64, multiple of 1 MiB */
  VHDX_HDR_SIZE = 4096,
  VHDX_HEADER1_OFFSET = 65536,
  VHDX_HEADER2_OFFSET = 131072,
};

#define VHDX_FILEID_MAGIC "vhdxfile"
#define VHDX_HDR_MAGIC 0x64616568U /* "head" */

/* Host view of a header.  GUIDs in RFC order (guid.h). */
struct vhdx_header {
  uint64_t sequence;
  uint8_t file_write_guid[GUID_SIZE];
  uint8_t data_write_guid[GUID_SIZE];
  uint8_t log_guid[GUID_SIZE];
  uint16_t log_version, version;
  uint32_t log_length;
  uint64_t log_offset;
};

/* Check the file type signature; the creator string (UTF-8, truncated at
 * a character boundary to fit) goes to creator.  raw holds at least
 * VHDX_FILEID_CREATOR + VHDX_FILEID_CREATOR_LEN bytes. */
int vhdx_fileid_decode (const uint8_t *raw, char *creator,
                        size_t creator_size);
/* Fill raw[0..VHDX_FILEID_SIZE) with a file type identifier. */
int vhdx_fileid_encode (const char *creator, uint8_t *raw);

/* Decode one header: signature and checksum, then version rules.
 * EBADMSG for a torn or foreign header, ENOTSUP for other versions. */
int vhdx_header_decode (const uint8_t raw[VHDX_HDR_SIZE],
                        struct vhdx_header *h);
/* Encode into raw[0..VHDX_HDR_SIZE), checksum included. */
void vhdx_header_encode (const struct vhdx_header *h,
                         uint8_t raw[VHDX_HDR_SIZE]);

/* Pick the current header from the two slots per MS-VHDX 2.2.2: the only
 * valid one, or the valid one with the greater sequence number.  Equal
 * sequence numbers are accepted when the two headers are byte-identical
 * (Disk2VHD writes them so).  *which is 0 or 1, the current slot. */
int vhdx_header_select (const uint8_t raw1[VHDX_HDR_SIZE],
                        const uint8_t raw2[VHDX_HDR_SIZE],
                        struct vhdx_header *h, unsigned *which);

#endif /* LIBVHD_VHDX_HEADER_H */
