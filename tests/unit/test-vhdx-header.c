/* test-vhdx-header.c: CRC-32C, GUIDs, the file identifier and the two
 * headers, against bytes captured from Windows, Disk2VHD and qemu images
 * (vhdx-golden.h).  Each malformed field: its own errno and message. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "byteorder.h"
#include "internal.h"
#include "vhdx-golden.h"
#include "vhdx/crc32c.h"
#include "vhdx/guid.h"
#include "vhdx/header.h"

static void
expect_error (int r, int errnum, const char *substring)
{
  cr_assert_eq (r, -1);
  cr_expect_eq (vhd_get_errno (), errnum, "errno %d, want %d (%s)",
                vhd_get_errno (), errnum, vhd_get_error ());
  cr_expect (strstr (vhd_get_error (), substring) != NULL,
             "message \"%s\" lacks \"%s\"", vhd_get_error (), substring);
}

/* Recompute a header's checksum after editing it. */
static void
reseal (uint8_t *h)
{
  put_le32 (h + VHDX_HDR_CHECKSUM,
            vhdx_checksum (h, VHDX_HDR_SIZE, VHDX_HDR_CHECKSUM));
}

/* --- CRC-32C -------------------------------------------------------------- */

static uint32_t
reference_crc (const uint8_t *p, size_t n)
{
  uint32_t c = 0xffffffff;
  while (n--) {
    c ^= *p++;
    for (int k = 0; k < 8; k++)
      c = c & 1 ? (c >> 1) ^ 0x82f63b78 : c >> 1;
  }
  return ~c;
}

Test (crc32c, check_value)
{
  cr_expect_eq (crc32c (0, "123456789", 9), 0xe3069283);
  cr_expect_eq (crc32c (0, "", 0), 0);
}

Test (crc32c, any_length_and_alignment)
{
  uint8_t buf[300];
  for (size_t i = 0; i < sizeof buf; i++)
    buf[i] = (uint8_t) (i * 37 + 11);
  for (size_t off = 0; off < 9; off++)
    for (size_t n = 0; n + off <= sizeof buf; n += 13)
      cr_assert_eq (crc32c (0, buf + off, n), reference_crc (buf + off, n),
                    "offset %zu length %zu", off, n);
  /* in pieces */
  cr_expect_eq (crc32c (crc32c (0, buf, 100), buf + 100, 200),
                reference_crc (buf, 300));
}

Test (crc32c, checksum_leaves_buffer_alone)
{
  uint8_t *h = GOLDEN (dyn_header), copy[VHDX_HDR_SIZE];

  memcpy (copy, h, sizeof copy);
  cr_expect_eq (vhdx_checksum (h, VHDX_HDR_SIZE, VHDX_HDR_CHECKSUM),
                get_le32 (h + VHDX_HDR_CHECKSUM));
  cr_expect_eq (memcmp (copy, h, sizeof copy), 0);
  free (h);
}

/* --- GUIDs ---------------------------------------------------------------- */

Test (guid, disk_order_and_text)
{
  /* The BAT region's GUID as stored on disk. */
  const uint8_t disk[16] = { 0x66, 0x77, 0xc2, 0x2d, 0x23, 0xf6, 0x00, 0x42,
                             0x9d, 0x64, 0x11, 0x5e, 0x9b, 0xfd, 0x4a, 0x08 };
  uint8_t g[16], back[16], parsed[16];
  char s[GUID_STR_SIZE];

  guid_decode (disk, g);
  guid_format (g, false, s);
  cr_expect_str_eq (s, "2dc27766-f623-4200-9d64-115e9bfd4a08");
  guid_format (g, true, s);
  cr_expect_str_eq (s, "{2dc27766-f623-4200-9d64-115e9bfd4a08}");
  guid_encode (g, back);
  cr_expect_eq (memcmp (back, disk, 16), 0);
  cr_assert_eq (guid_parse ("{2DC27766-F623-4200-9D64-115E9BFD4A08}",
                            parsed), 0);
  cr_expect (guid_eq (parsed, g));
  cr_assert_eq (guid_parse ("2dc27766-f623-4200-9d64-115e9bfd4a08", parsed),
                0);
  cr_expect_eq (guid_parse ("{2dc27766-f623-4200-9d64-115e9bfd4a08", parsed),
                -1);
  cr_expect_eq (guid_parse ("2dc27766f623-4200-9d64-115e9bfd4a08xx", parsed),
                -1);
  cr_expect_eq (guid_parse ("{2dc27766-f623-4200-9d64-115e9bfd4a0g}", parsed),
                -1);
}

/* --- file identifier ------------------------------------------------------ */

Test (fileid, roundtrip_and_signature)
{
  uint8_t *raw = calloc (1, VHDX_FILEID_SIZE);
  char creator[64];

  cr_assert_eq (vhdx_fileid_encode ("libvhd test \xc3\xa9", raw), 0);
  cr_expect_eq (memcmp (raw, "vhdxfile", 8), 0);
  cr_assert_eq (vhdx_fileid_decode (raw, creator, sizeof creator), 0);
  cr_expect_str_eq (creator, "libvhd test \xc3\xa9");
  cr_assert_eq (vhdx_fileid_decode (raw, creator, 6), 0);
  cr_expect_str_eq (creator, "libvh");
  raw[0] = 'V';
  expect_error (vhdx_fileid_decode (raw, creator, sizeof creator), EBADMSG,
                "signature");
  free (raw);
}

/* --- headers -------------------------------------------------------------- */

Test (header, decodes_windows_header)
{
  uint8_t *raw = GOLDEN (dyn_header);
  struct vhdx_header h;
  char s[GUID_STR_SIZE];

  cr_assert_eq (vhdx_header_decode (raw, &h), 0, "%s", vhd_get_error ());
  cr_expect_eq (h.sequence, 14);
  cr_expect_eq (h.version, 1);
  cr_expect_eq (h.log_version, 0);
  cr_expect_eq (h.log_length, 1 << 20);
  cr_expect_eq (h.log_offset, 1 << 20);
  cr_expect (guid_is_zero (h.log_guid));
  guid_format (h.data_write_guid, false, s);
  cr_expect_str_eq (s, "28e09ae1-ab94-4815-a155-f143e2d00a3f");
  free (raw);
}

Test (header, encode_decode_roundtrip)
{
  uint8_t *raw = GOLDEN (dyn_header), out[VHDX_HDR_SIZE];
  struct vhdx_header h;

  cr_assert_eq (vhdx_header_decode (raw, &h), 0);
  vhdx_header_encode (&h, out);
  cr_expect_eq (memcmp (raw, out, VHDX_HDR_SIZE), 0);
  free (raw);
}

Test (header, rejects_bad_signature)
{
  uint8_t *raw = GOLDEN (dyn_header);
  struct vhdx_header h;

  raw[VHDX_HDR_SIGNATURE] = 'H';
  reseal (raw);
  expect_error (vhdx_header_decode (raw, &h), EBADMSG, "signature");
  free (raw);
}

Test (header, rejects_bad_checksum)
{
  uint8_t *raw = GOLDEN (dyn_header);
  struct vhdx_header h;

  raw[VHDX_HDR_SEQUENCE] ^= 1;
  expect_error (vhdx_header_decode (raw, &h), EBADMSG, "checksum");
  free (raw);
}

Test (header, rejects_other_versions)
{
  uint8_t *raw = GOLDEN (dyn_header);
  struct vhdx_header h;

  put_le16 (raw + VHDX_HDR_VERSION, 2);
  reseal (raw);
  expect_error (vhdx_header_decode (raw, &h), ENOTSUP, "version 2");
  free (raw);
}

Test (header, rejects_unknown_log_version_with_a_log)
{
  uint8_t *raw = GOLDEN (dirty_header1);
  struct vhdx_header h;

  put_le16 (raw + VHDX_HDR_LOG_VERSION, 1);
  reseal (raw);
  expect_error (vhdx_header_decode (raw, &h), ENOTSUP, "log version 1");
  free (raw);
  raw = GOLDEN (dyn_header); /* no log to replay: accepted */
  put_le16 (raw + VHDX_HDR_LOG_VERSION, 1);
  reseal (raw);
  cr_expect_eq (vhdx_header_decode (raw, &h), 0);
  free (raw);
}

Test (header, select_highest_sequence)
{
  uint8_t *h1 = GOLDEN (dirty_header1), *h2 = GOLDEN (dirty_header2);
  struct vhdx_header h;
  unsigned which;

  cr_assert_eq (vhdx_header_select (h1, h2, &h, &which), 0);
  cr_expect_eq (which, 1);
  cr_expect_eq (h.sequence, 932638741);
  cr_assert_eq (vhdx_header_select (h2, h1, &h, &which), 0);
  cr_expect_eq (which, 0);
  /* a torn current header: the other one */
  h2[100] ^= 0xff;
  cr_assert_eq (vhdx_header_select (h1, h2, &h, &which), 0);
  cr_expect_eq (which, 0);
  cr_expect_eq (h.sequence, 932638740);
  h1[100] ^= 0xff;
  expect_error (vhdx_header_select (h1, h2, &h, &which), EBADMSG,
                "no valid VHDX header");
  free (h1), free (h2);
}

Test (header, disk2vhd_equal_sequence_numbers)
{
  uint8_t *h1 = GOLDEN (d2v_header), *h2 = GOLDEN (d2v_header);
  struct vhdx_header h;
  unsigned which;

  cr_assert_eq (vhdx_header_select (h1, h2, &h, &which), 0, "%s",
                vhd_get_error ());
  cr_expect_eq (h.sequence, 1);
  h2[VHDX_HDR_FILE_WRITE_GUID] ^= 1; /* same sequence, different content */
  reseal (h2);
  expect_error (vhdx_header_select (h1, h2, &h, &which), EBADMSG,
                "both have sequence number 1");
  free (h1), free (h2);
}
