/* footer.c: decode and encode the 512-byte VHD footer; CHS geometry.
 *
 * Pure functions over byte buffers (STYLE B.7): nothing here does I/O or
 * keeps state.  Decoding rejects only what the spec forbids (cookie,
 * version, checksum, disk type); whether sizes and offsets make sense for
 * the file they came from is the driver's business (vhd.c).
 */
#include <errno.h>
#include <string.h>

#include "byteorder.h"
#include "internal.h"
#include "vhd/footer.h"

_Static_assert (VHD_FTR_RESERVED + 427 == VHD_FTR_SIZE,
                "VHD footer is 512 bytes");

bool
vhd_footer_has_cookie (const uint8_t *raw)
{
  return memcmp (raw + VHD_FTR_COOKIE, VHD_COOKIE, 8) == 0;
}

uint32_t
vhd_footer_checksum (const uint8_t raw[VHD_FTR_SIZE])
{
  uint32_t sum = 0;
  size_t i;

  for (i = 0; i < VHD_FTR_SIZE; i++)
    if (i < VHD_FTR_CHECKSUM || i >= VHD_FTR_CHECKSUM + 4)
      sum += raw[i];
  return ~sum;
}

static void
decode_fields (const uint8_t *raw, struct vhd_footer *out)
{
  memset (out, 0, sizeof *out);
  out->features = get_be32 (raw + VHD_FTR_FEATURES);
  out->version = get_be32 (raw + VHD_FTR_VERSION);
  out->data_offset = get_be64 (raw + VHD_FTR_DATA_OFFSET);
  out->timestamp = get_be32 (raw + VHD_FTR_TIMESTAMP);
  memcpy (out->creator_app, raw + VHD_FTR_CREATOR_APP, 4);
  out->creator_version = get_be32 (raw + VHD_FTR_CREATOR_VERSION);
  out->creator_host_os = get_be32 (raw + VHD_FTR_CREATOR_HOST_OS);
  out->original_size = get_be64 (raw + VHD_FTR_ORIGINAL_SIZE);
  out->current_size = get_be64 (raw + VHD_FTR_CURRENT_SIZE);
  out->cylinders = get_be16 (raw + VHD_FTR_CYLINDERS);
  out->heads = raw[VHD_FTR_HEADS];
  out->sectors_per_track = raw[VHD_FTR_SECTORS];
  out->disk_type = get_be32 (raw + VHD_FTR_DISK_TYPE);
  out->checksum = get_be32 (raw + VHD_FTR_CHECKSUM);
  memcpy (out->unique_id, raw + VHD_FTR_UNIQUE_ID, 16);
  out->saved_state = raw[VHD_FTR_SAVED_STATE];
}

static int
decode (const uint8_t *raw, struct vhd_footer *out, bool verify)
{
  uint32_t computed;

  if (!vhd_footer_has_cookie (raw)) {
    set_error (EBADMSG, "VHD footer: no \"conectix\" cookie");
    return -1;
  }
  decode_fields (raw, out);
  /* Format version 1.x: a later minor version stays readable. */
  if (out->version >> 16 != VHD_FORMAT_VERSION >> 16) {
    set_error (EBADMSG, "VHD footer: unsupported format version 0x%08x",
               out->version);
    return -1;
  }
  computed = vhd_footer_checksum (raw);
  if (verify && computed != out->checksum) {
    set_error (EBADMSG,
               "VHD footer: bad checksum (stored 0x%08x, computed 0x%08x)",
               out->checksum, computed);
    return -1;
  }
  if (out->disk_type != VHD_DISK_FIXED && out->disk_type != VHD_DISK_DYNAMIC
      && out->disk_type != VHD_DISK_DIFFERENCING) {
    set_error (EBADMSG, "VHD footer: unsupported disk type %u",
               out->disk_type);
    return -1;
  }
  return 0;
}

int
vhd_footer_decode (const uint8_t raw[VHD_FTR_SIZE], struct vhd_footer *out)
{
  return decode (raw, out, true);
}

int
vhd_footer_decode_unverified (const uint8_t raw[VHD_FTR_SIZE],
                              struct vhd_footer *out)
{
  return decode (raw, out, false);
}

void
vhd_footer_encode (const struct vhd_footer *in, uint8_t raw[VHD_FTR_SIZE])
{
  memset (raw, 0, VHD_FTR_SIZE);
  memcpy (raw + VHD_FTR_COOKIE, VHD_COOKIE, 8);
  put_be32 (raw + VHD_FTR_FEATURES, in->features);
  put_be32 (raw + VHD_FTR_VERSION, in->version);
  put_be64 (raw + VHD_FTR_DATA_OFFSET, in->data_offset);
  put_be32 (raw + VHD_FTR_TIMESTAMP, in->timestamp);
  memcpy (raw + VHD_FTR_CREATOR_APP, in->creator_app, 4);
  put_be32 (raw + VHD_FTR_CREATOR_VERSION, in->creator_version);
  put_be32 (raw + VHD_FTR_CREATOR_HOST_OS, in->creator_host_os);
  put_be64 (raw + VHD_FTR_ORIGINAL_SIZE, in->original_size);
  put_be64 (raw + VHD_FTR_CURRENT_SIZE, in->current_size);
  put_be16 (raw + VHD_FTR_CYLINDERS, in->cylinders);
  raw[VHD_FTR_HEADS] = in->heads;
  raw[VHD_FTR_SECTORS] = in->sectors_per_track;
  put_be32 (raw + VHD_FTR_DISK_TYPE, in->disk_type);
  memcpy (raw + VHD_FTR_UNIQUE_ID, in->unique_id, 16);
  raw[VHD_FTR_SAVED_STATE] = in->saved_state;
  put_be32 (raw + VHD_FTR_CHECKSUM, vhd_footer_checksum (raw));
}

/* The spec's appendix, step by step, on the sector count. */
void
vhd_geometry (uint64_t size, uint16_t *cylinders, uint8_t *heads,
              uint8_t *sectors_per_track)
{
  uint64_t total = size / SECTOR_SIZE, cyl_times_heads;
  uint32_t spt, h;

  if (total > 65535ULL * 16 * 255)
    total = 65535ULL * 16 * 255;
  if (total >= 65535ULL * 16 * 63) {
    spt = 255;
    h = 16;
    cyl_times_heads = total / spt;
  }
  else {
    spt = 17;
    cyl_times_heads = total / spt;
    h = (uint32_t) ((cyl_times_heads + 1023) / 1024);
    if (h < 4)
      h = 4;
    if (cyl_times_heads >= h * 1024ULL || h > 16) {
      spt = 31;
      h = 16;
      cyl_times_heads = total / spt;
    }
    if (cyl_times_heads >= h * 1024ULL) {
      spt = 63;
      h = 16;
      cyl_times_heads = total / spt;
    }
  }
  *cylinders = (uint16_t) (cyl_times_heads / h);
  *heads = (uint8_t) h;
  *sectors_per_track = (uint8_t) spt;
}

uint32_t
vhd_timestamp (int64_t unix_time)
{
  const int64_t epoch_2000 = 946684800; /* 2000-01-01T00:00:00Z */

  if (unix_time < epoch_2000)
    return 0;
  if (unix_time - epoch_2000 > UINT32_MAX)
    return UINT32_MAX;
  return (uint32_t) (unix_time - epoch_2000);
}
