/* test-vhd-footer.c: the 512-byte VHD footer against footers captured
 * from qemu-img and Windows (golden-vhd.h).  Each malformed-field test
 * changes one field of a local copy and expects one errno and message. */
#undef NDEBUG /* Keep test strong */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "byteorder.h"
#include "internal.h"
#include "unit/golden-vhd.h"
#include "vhd/footer.h"

static uint8_t raw[VHD_FTR_SIZE];

static void
copy_golden (void)
{
  memcpy (raw, qemu_dynamic_footer, sizeof raw);
}

/* Store the checksum again after a test edited a field. */
static void
fix_checksum (void)
{
  put_be32 (raw + VHD_FTR_CHECKSUM, vhd_footer_checksum (raw));
}

static void
expect_failure (int err, const char *substring)
{
  struct vhd_footer f;

  cr_assert_eq (vhd_footer_decode (raw, &f), -1);
  cr_expect_eq (vhd_get_errno (), err, "errno %d", vhd_get_errno ());
  cr_expect (strstr (vhd_get_error (), substring) != NULL,
             "message \"%s\" lacks \"%s\"", vhd_get_error (), substring);
}

TestSuite (vhd_footer, .init = copy_golden);

Test (vhd_footer, decodes_qemu_dynamic)
{
  struct vhd_footer f;

  cr_assert_eq (vhd_footer_decode (raw, &f), 0, "%s", vhd_get_error ());
  cr_expect_eq (f.features, 2);
  cr_expect_eq (f.version, 0x00010000);
  cr_expect_eq (f.data_offset, 512);
  cr_expect_eq (memcmp (f.creator_app, "qemu", 4), 0);
  cr_expect_eq (f.creator_version, 0x00050003);
  cr_expect_eq (f.creator_host_os, VHD_HOST_OS_WINDOWS);
  cr_expect_eq (f.original_size, 67125248);
  cr_expect_eq (f.current_size, 67125248);
  cr_expect_eq (f.cylinders, 964);
  cr_expect_eq (f.heads, 8);
  cr_expect_eq (f.sectors_per_track, 17);
  cr_expect_eq (f.disk_type, VHD_DISK_DYNAMIC);
  cr_expect_eq (f.saved_state, 0);
}

Test (vhd_footer, decodes_qemu_fixed)
{
  struct vhd_footer f;

  cr_assert_eq (vhd_footer_decode (qemu_fixed_footer, &f), 0);
  cr_expect_eq (f.disk_type, VHD_DISK_FIXED);
  cr_expect_eq (f.data_offset, VHD_NO_DATA_OFFSET);
  cr_expect_eq (f.current_size, 8390656);
}

Test (vhd_footer, decodes_windows_fixed)
{
  struct vhd_footer f;

  cr_assert_eq (vhd_footer_decode (win_fixed_footer, &f), 0);
  cr_expect_eq (memcmp (f.creator_app, "win ", 4), 0);
  cr_expect_eq (f.current_size, 10485760);
  cr_expect_eq (f.cylinders, 301);
  cr_expect_eq (f.heads, 4);
  cr_expect_eq (f.sectors_per_track, 17);
}

Test (vhd_footer, checksum_matches_stored)
{
  cr_expect_eq (vhd_footer_checksum (qemu_dynamic_footer),
                get_be32 (qemu_dynamic_footer + VHD_FTR_CHECKSUM));
  cr_expect_eq (vhd_footer_checksum (win_fixed_footer),
                get_be32 (win_fixed_footer + VHD_FTR_CHECKSUM));
}

Test (vhd_footer, checksum_does_not_modify_input)
{
  vhd_footer_checksum (raw);
  cr_expect_eq (memcmp (raw, qemu_dynamic_footer, sizeof raw), 0);
}

Test (vhd_footer, encode_decode_roundtrip)
{
  const uint8_t *golden[] = { qemu_dynamic_footer, qemu_fixed_footer,
                              win_fixed_footer };
  uint8_t out[VHD_FTR_SIZE];
  struct vhd_footer f;
  size_t i;

  for (i = 0; i < sizeof golden / sizeof golden[0]; i++) {
    cr_assert_eq (vhd_footer_decode (golden[i], &f), 0);
    vhd_footer_encode (&f, out);
    cr_expect_eq (memcmp (out, golden[i], VHD_FTR_SIZE), 0,
                  "footer %zu changed in a round trip", i);
  }
}

Test (vhd_footer, rejects_bad_cookie)
{
  raw[VHD_FTR_COOKIE] = 'C';
  fix_checksum ();
  expect_failure (EBADMSG, "cookie");
}

Test (vhd_footer, rejects_bad_version)
{
  put_be32 (raw + VHD_FTR_VERSION, 0x00020000);
  fix_checksum ();
  expect_failure (EBADMSG, "format version 0x00020000");
}

Test (vhd_footer, accepts_later_minor_version)
{
  struct vhd_footer f;

  put_be32 (raw + VHD_FTR_VERSION, 0x00010001);
  fix_checksum ();
  cr_expect_eq (vhd_footer_decode (raw, &f), 0);
}

Test (vhd_footer, rejects_bad_checksum)
{
  raw[VHD_FTR_CHECKSUM + 3] ^= 1;
  expect_failure (EBADMSG, "checksum");
}

Test (vhd_footer, rejects_changed_field_under_checksum)
{
  raw[VHD_FTR_CURRENT_SIZE + 7] ^= 0x02;
  expect_failure (EBADMSG, "bad checksum");
}

Test (vhd_footer, unverified_decode_skips_only_the_checksum)
{
  struct vhd_footer f;

  raw[VHD_FTR_CHECKSUM] ^= 0xff;
  cr_expect_eq (vhd_footer_decode_unverified (raw, &f), 0);
  put_be32 (raw + VHD_FTR_DISK_TYPE, 5);
  cr_expect_eq (vhd_footer_decode_unverified (raw, &f), -1);
  cr_expect_eq (vhd_get_errno (), EBADMSG);
}

Test (vhd_footer, rejects_deprecated_disk_types)
{
  static const uint32_t bad[] = { 0, 1, 5, 6, 0x12345678 };
  size_t i;

  for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    copy_golden ();
    put_be32 (raw + VHD_FTR_DISK_TYPE, bad[i]);
    fix_checksum ();
    expect_failure (EBADMSG, "disk type");
  }
}

Test (vhd_footer, has_cookie)
{
  cr_expect (vhd_footer_has_cookie (qemu_fixed_footer));
  raw[7] = 'y';
  cr_expect (!vhd_footer_has_cookie (raw));
}

Test (vhd_footer, timestamp_epoch_2000)
{
  cr_expect_eq (vhd_timestamp (946684800), 0);
  cr_expect_eq (vhd_timestamp (946684800 + 86400), 86400);
  cr_expect_eq (vhd_timestamp (0), 0);
  cr_expect_eq (vhd_timestamp (INT64_MAX), UINT32_MAX);
}
