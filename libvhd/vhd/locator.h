/* locator.h: VHD parent locator entries (VHD spec 1.0, "Dynamic Disk
 * Header Format", Parent Locator Entries).  Eight 24-byte entries in the
 * dynamic disk header point at platform-specific copies of the parent's
 * path elsewhere in the file.
 */
#ifndef LIBVHD_VHD_LOCATOR_H
#define LIBVHD_VHD_LOCATOR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Byte offsets inside one entry. */
enum {
  VHD_LOC_PLATFORM_CODE = 0,  /* be32, e.g. "W2ku" */
  VHD_LOC_DATA_SPACE = 4,     /* be32, sectors per spec; Windows: bytes */
  VHD_LOC_DATA_LENGTH = 8,    /* be32, bytes */
  VHD_LOC_RESERVED = 12,      /* be32, zero */
  VHD_LOC_DATA_OFFSET = 16,   /* be64, absolute file offset */
  VHD_LOC_SIZE = 24,
};

#define VHD_LOCATOR_COUNT 8

enum vhd_platform {
  VHD_PLATFORM_NONE = 0,
  VHD_PLATFORM_WI2R = 0x57693272, /* "Wi2r", deprecated */
  VHD_PLATFORM_WI2K = 0x5769326b, /* "Wi2k", deprecated */
  VHD_PLATFORM_W2RU = 0x57327275, /* "W2ru": relative path, UTF-16LE */
  VHD_PLATFORM_W2KU = 0x57326b75, /* "W2ku": absolute path, UTF-16LE */
  VHD_PLATFORM_MAC = 0x4d616320,  /* "Mac ": alias blob */
  VHD_PLATFORM_MACX = 0x4d616358, /* "MacX": file:// URL, UTF-8 */
};

/* Longest locator data we read: a Windows path of 32767 UTF-16 units. */
#define VHD_LOCATOR_MAX_DATA 65536U

struct vhd_locator {
  uint32_t platform_code;
  uint32_t data_space; /* as stored; see vhd_locator_space_bytes */
  uint32_t data_length;
  uint64_t data_offset;
};

void vhd_locator_decode (const uint8_t raw[VHD_LOC_SIZE],
                         struct vhd_locator *out);
void vhd_locator_encode (const struct vhd_locator *in,
                         uint8_t raw[VHD_LOC_SIZE]);

/* The reserved space in bytes.  The spec counts it in sectors, Windows
 * writes bytes: a value that is a multiple of 512 (and not 0) is taken as
 * bytes, anything else as sectors. */
uint64_t vhd_locator_space_bytes (uint32_t data_space);

/* The path a W2ku, W2ru or MacX locator's data holds, as a malloc'd
 * UTF-8 string (MacX: the file:// URL's path, percent-decoded), or NULL
 * after set_error: EINVAL for another platform code, EBADMSG for data
 * that is not a path. */
char *vhd_locator_path (uint32_t platform_code, const uint8_t *data,
                        size_t len);

/* Encode path as W2ku/W2ru data (UTF-16LE, no terminator, slashes turned
 * into backslashes) into out; the byte count, or -1 after set_error. */
ssize_t vhd_locator_encode_path (const char *path, uint8_t *out,
                                 size_t out_size);

/* The platform code as four printable characters and a NUL. */
void vhd_platform_name (uint32_t platform_code, char out[5]);

#endif /* LIBVHD_VHD_LOCATOR_H */
