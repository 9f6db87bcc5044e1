/* dynheader.c: decode and encode the 1024-byte VHD dynamic disk header.
 *
 * Pure functions over byte buffers, like footer.c.  The parent's name is
 * UTF-16 *big-endian* (the spec says "Unicode"; Windows, Virtual PC and
 * the dfvfs test chain all store it big-endian), while the W2ku/W2ru
 * locators it sits beside are little-endian.  Whether the table offset
 * and entry count fit the file is checked by the driver (vhd.c).
 */
#include <errno.h>
#include <string.h>

#include "byteorder.h"
#include "internal.h"
#include "minmax.h"
#include "vhd/dynheader.h"

_Static_assert (VHD_DYN_PARENT_LOCATORS + VHD_LOCATOR_COUNT * VHD_LOC_SIZE
                  == VHD_DYN_RESERVED2,
                "8 locator entries end where the last reserved area starts");
_Static_assert (VHD_DYN_RESERVED2 + 256 == VHD_DYN_SIZE,
                "VHD dynamic disk header is 1024 bytes");

uint32_t
vhd_dynheader_checksum (const uint8_t raw[VHD_DYN_SIZE])
{
  uint32_t sum = 0;
  size_t i;

  for (i = 0; i < VHD_DYN_SIZE; i++)
    if (i < VHD_DYN_CHECKSUM || i >= VHD_DYN_CHECKSUM + 4)
      sum += raw[i];
  return ~sum;
}

static void
decode_fields (const uint8_t *raw, struct vhd_dynheader *out)
{
  unsigned i;

  memset (out, 0, sizeof *out);
  out->data_offset = get_be64 (raw + VHD_DYN_DATA_OFFSET);
  out->table_offset = get_be64 (raw + VHD_DYN_TABLE_OFFSET);
  out->header_version = get_be32 (raw + VHD_DYN_HEADER_VERSION);
  out->max_table_entries = get_be32 (raw + VHD_DYN_MAX_TABLE_ENTRIES);
  out->block_size = get_be32 (raw + VHD_DYN_BLOCK_SIZE);
  out->checksum = get_be32 (raw + VHD_DYN_CHECKSUM);
  memcpy (out->parent_unique_id, raw + VHD_DYN_PARENT_UNIQUE_ID, 16);
  out->parent_timestamp = get_be32 (raw + VHD_DYN_PARENT_TIMESTAMP);
  memcpy (out->parent_name, raw + VHD_DYN_PARENT_NAME,
          VHD_DYN_PARENT_NAME_SIZE);
  for (i = 0; i < VHD_LOCATOR_COUNT; i++)
    vhd_locator_decode (raw + VHD_DYN_PARENT_LOCATORS + i * VHD_LOC_SIZE,
                        &out->locators[i]);
}

static int
decode (const uint8_t *raw, struct vhd_dynheader *out, bool verify)
{
  uint32_t computed;

  if (memcmp (raw + VHD_DYN_COOKIE, VHD_DYN_COOKIE_STR, 8) != 0) {
    set_error (EBADMSG, "VHD dynamic disk header: no \"cxsparse\" cookie");
    return -1;
  }
  decode_fields (raw, out);
  if (out->header_version >> 16 != VHD_DYN_VERSION >> 16) {
    set_error (EBADMSG,
               "VHD dynamic disk header: unsupported header version 0x%08x",
               out->header_version);
    return -1;
  }
  computed = vhd_dynheader_checksum (raw);
  if (verify && computed != out->checksum) {
    set_error (EBADMSG,
               "VHD dynamic disk header: bad checksum (stored 0x%08x, "
               "computed 0x%08x)", out->checksum, computed);
    return -1;
  }
  if (!IS_POWER_OF_2 (out->block_size)
      || out->block_size < VHD_MIN_BLOCK_SIZE) {
    set_error (EBADMSG,
               "VHD dynamic disk header: block size %u is not a power of "
               "two of at least %u bytes", out->block_size,
               VHD_MIN_BLOCK_SIZE);
    return -1;
  }
  return 0;
}

int
vhd_dynheader_decode (const uint8_t raw[VHD_DYN_SIZE],
                      struct vhd_dynheader *out)
{
  return decode (raw, out, true);
}

int
vhd_dynheader_decode_unverified (const uint8_t raw[VHD_DYN_SIZE],
                                 struct vhd_dynheader *out)
{
  return decode (raw, out, false);
}

void
vhd_dynheader_encode (const struct vhd_dynheader *in,
                      uint8_t raw[VHD_DYN_SIZE])
{
  unsigned i;

  memset (raw, 0, VHD_DYN_SIZE);
  memcpy (raw + VHD_DYN_COOKIE, VHD_DYN_COOKIE_STR, 8);
  put_be64 (raw + VHD_DYN_DATA_OFFSET, in->data_offset);
  put_be64 (raw + VHD_DYN_TABLE_OFFSET, in->table_offset);
  put_be32 (raw + VHD_DYN_HEADER_VERSION, in->header_version);
  put_be32 (raw + VHD_DYN_MAX_TABLE_ENTRIES, in->max_table_entries);
  put_be32 (raw + VHD_DYN_BLOCK_SIZE, in->block_size);
  memcpy (raw + VHD_DYN_PARENT_UNIQUE_ID, in->parent_unique_id, 16);
  put_be32 (raw + VHD_DYN_PARENT_TIMESTAMP, in->parent_timestamp);
  memcpy (raw + VHD_DYN_PARENT_NAME, in->parent_name,
          VHD_DYN_PARENT_NAME_SIZE);
  for (i = 0; i < VHD_LOCATOR_COUNT; i++)
    vhd_locator_encode (&in->locators[i],
                        raw + VHD_DYN_PARENT_LOCATORS + i * VHD_LOC_SIZE);
  put_be32 (raw + VHD_DYN_CHECKSUM, vhd_dynheader_checksum (raw));
}

char *
vhd_dynheader_parent_name (const struct vhd_dynheader *h)
{
  return utf16_to_utf8 (h->parent_name, VHD_DYN_PARENT_NAME_SIZE, true);
}

int
vhd_dynheader_set_parent_name (struct vhd_dynheader *h, const char *name)
{
  memset (h->parent_name, 0, VHD_DYN_PARENT_NAME_SIZE);
  if (utf8_to_utf16 (name, h->parent_name, VHD_DYN_PARENT_NAME_SIZE, true)
      == -1) {
    memset (h->parent_name, 0, VHD_DYN_PARENT_NAME_SIZE);
    return -1;
  }
  return 0;
}
