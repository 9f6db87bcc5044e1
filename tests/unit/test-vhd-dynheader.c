/* test-vhd-dynheader.c: the 1024-byte dynamic disk header against headers
 * from qemu-img, Windows and the dfvfs differencing image (golden-vhd.h).
 * Each malformed-field test changes one field of a local copy. */
#undef NDEBUG /* Keep test strong */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "byteorder.h"
#include "internal.h"
#include "unit/golden-vhd.h"
#include "vhd/dynheader.h"

static uint8_t raw[VHD_DYN_SIZE];

static void
copy_golden (void)
{
  memcpy (raw, qemu_dynamic_header, sizeof raw);
}

static void
fix_checksum (void)
{
  put_be32 (raw + VHD_DYN_CHECKSUM, vhd_dynheader_checksum (raw));
}

static void
expect_failure (int err, const char *substring)
{
  struct vhd_dynheader h;

  cr_assert_eq (vhd_dynheader_decode (raw, &h), -1);
  cr_expect_eq (vhd_get_errno (), err, "errno %d", vhd_get_errno ());
  cr_expect (strstr (vhd_get_error (), substring) != NULL,
             "message \"%s\" lacks \"%s\"", vhd_get_error (), substring);
}

TestSuite (vhd_dynheader, .init = copy_golden);

Test (vhd_dynheader, decodes_qemu_header)
{
  struct vhd_dynheader h;
  unsigned i;

  cr_assert_eq (vhd_dynheader_decode (raw, &h), 0, "%s", vhd_get_error ());
  cr_expect_eq (h.data_offset, UINT64_MAX);
  cr_expect_eq (h.table_offset, 1536);
  cr_expect_eq (h.header_version, 0x00010000);
  cr_expect_eq (h.max_table_entries, 33);
  cr_expect_eq (h.block_size, 2 << 20);
  for (i = 0; i < VHD_LOCATOR_COUNT; i++)
    cr_expect_eq (h.locators[i].platform_code, VHD_PLATFORM_NONE);
}

Test (vhd_dynheader, decodes_windows_differencing_header)
{
  struct vhd_dynheader h;
  char *name;

  cr_assert_eq (vhd_dynheader_decode (win_diff_header, &h), 0, "%s",
                vhd_get_error ());
  cr_expect_eq (h.table_offset, 8192);
  cr_expect_eq (h.max_table_entries, 2);
  cr_expect_eq (h.locators[0].platform_code, VHD_PLATFORM_W2KU);
  cr_expect_eq (h.locators[0].data_space, 4096);
  cr_expect_eq (h.locators[0].data_length, 84);
  cr_expect_eq (h.locators[0].data_offset, 4096);
  cr_expect_eq (h.locators[1].platform_code, VHD_PLATFORM_W2RU);
  cr_expect_eq (h.locators[1].data_space, 65536);
  cr_expect_eq (h.locators[1].data_length, 32);
  cr_expect_eq (h.locators[1].data_offset, 12288);
  /* Windows stores the whole path as the parent's "name". */
  name = vhd_dynheader_parent_name (&h);
  cr_assert_not_null (name);
  cr_expect_str_eq (name, "C:\\Projects\\dfvfs\\test_data\\fat-parent.vhd");
  free (name);
}

/* The parent's name is UTF-16 big-endian: the dfvfs chain names
 * "image.vhd", whose ID it records. */
Test (vhd_dynheader, parent_name_is_big_endian)
{
  static const uint8_t parent_id[16] = {
    0xd4, 0x9c, 0x5c, 0x80, 0x35, 0x0a, 0x4a, 0x89,
    0x89, 0x8a, 0x5a, 0xd6, 0xd1, 0x0f, 0x65, 0x78,
  };
  struct vhd_dynheader h;
  char *name;

  cr_assert_eq (vhd_dynheader_decode_unverified (dfvfs_diff_header, &h), 0);
  name = vhd_dynheader_parent_name (&h);
  cr_assert_not_null (name);
  cr_expect_str_eq (name, "image.vhd");
  cr_expect_eq (memcmp (h.parent_unique_id, parent_id, 16), 0);
  free (name);
}

/* The dfvfs image was edited without updating the checksum: the strict
 * decoder must notice. */
Test (vhd_dynheader, dfvfs_header_has_a_stale_checksum)
{
  memcpy (raw, dfvfs_diff_header, sizeof raw);
  expect_failure (EBADMSG, "checksum");
}

Test (vhd_dynheader, encode_decode_roundtrip)
{
  const uint8_t *golden[] = { qemu_dynamic_header, win_diff_header };
  uint8_t out[VHD_DYN_SIZE];
  struct vhd_dynheader h;
  size_t i;

  for (i = 0; i < sizeof golden / sizeof golden[0]; i++) {
    cr_assert_eq (vhd_dynheader_decode (golden[i], &h), 0);
    vhd_dynheader_encode (&h, out);
    cr_expect_eq (memcmp (out, golden[i], VHD_DYN_SIZE), 0,
                  "header %zu changed in a round trip", i);
  }
}

Test (vhd_dynheader, set_parent_name_roundtrip)
{
  struct vhd_dynheader h;
  char *name;

  cr_assert_eq (vhd_dynheader_decode (raw, &h), 0);
  cr_assert_eq (vhd_dynheader_set_parent_name (&h, "b\xc3\xa4se.vhd"), 0);
  cr_expect_eq (h.parent_name[0], 0);
  cr_expect_eq (h.parent_name[1], 'b');
  name = vhd_dynheader_parent_name (&h);
  cr_expect_str_eq (name, "b\xc3\xa4se.vhd");
  free (name);
}

Test (vhd_dynheader, set_parent_name_too_long)
{
  struct vhd_dynheader h;
  char longname[300];

  memset (longname, 'x', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  cr_assert_eq (vhd_dynheader_decode (raw, &h), 0);
  cr_expect_eq (vhd_dynheader_set_parent_name (&h, longname), -1);
  cr_expect_eq (vhd_get_errno (), ENAMETOOLONG);
}

Test (vhd_dynheader, rejects_bad_cookie)
{
  memcpy (raw + VHD_DYN_COOKIE, "cxsparsf", 8);
  fix_checksum ();
  expect_failure (EBADMSG, "cxsparse");
}

Test (vhd_dynheader, rejects_bad_version)
{
  put_be32 (raw + VHD_DYN_HEADER_VERSION, 0x00000001);
  fix_checksum ();
  expect_failure (EBADMSG, "header version 0x00000001");
}

Test (vhd_dynheader, rejects_bad_checksum)
{
  raw[VHD_DYN_CHECKSUM] ^= 0x10;
  expect_failure (EBADMSG, "bad checksum");
}

Test (vhd_dynheader, rejects_changed_field_under_checksum)
{
  raw[VHD_DYN_MAX_TABLE_ENTRIES + 3] ^= 1;
  expect_failure (EBADMSG, "bad checksum");
}

Test (vhd_dynheader, rejects_block_size_not_power_of_two)
{
  put_be32 (raw + VHD_DYN_BLOCK_SIZE, 3 << 20);
  fix_checksum ();
  expect_failure (EBADMSG, "block size 3145728");
}

Test (vhd_dynheader, rejects_block_size_below_a_sector)
{
  put_be32 (raw + VHD_DYN_BLOCK_SIZE, 256);
  fix_checksum ();
  expect_failure (EBADMSG, "block size 256");
}

Test (vhd_dynheader, rejects_block_size_zero)
{
  put_be32 (raw + VHD_DYN_BLOCK_SIZE, 0);
  fix_checksum ();
  expect_failure (EBADMSG, "block size 0");
}

Test (vhd_dynheader, accepts_other_block_sizes)
{
  static const uint32_t ok[] = { 512, 4096, 512 << 10, 16 << 20, 1U << 31 };
  struct vhd_dynheader h;
  size_t i;

  for (i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    put_be32 (raw + VHD_DYN_BLOCK_SIZE, ok[i]);
    fix_checksum ();
    cr_expect_eq (vhd_dynheader_decode (raw, &h), 0, "block size %u",
                  ok[i]);
    cr_expect_eq (h.block_size, ok[i]);
  }
}
