/* test-vhdx-metadata.c: the region table and the metadata region, against
 * bytes captured from Windows images (vhdx-golden.h), and the encoders
 * against the decoders.  Each malformed field: its own errno and message. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "byteorder.h"
#include "internal.h"
#include "vhdx-golden.h"
#include "vhdx/crc32c.h"
#include "vhdx/metadata.h"
#include "vhdx/region.h"

#define MiB (UINT64_C (1) << 20)
#define MD_ITEMS 65536 /* where Windows puts the first item */

static void
expect_error (int r, int errnum, const char *substring)
{
  cr_assert_eq (r, -1);
  cr_expect_eq (vhd_get_errno (), errnum, "errno %d, want %d (%s)",
                vhd_get_errno (), errnum, vhd_get_error ());
  cr_expect (strstr (vhd_get_error (), substring) != NULL,
             "message \"%s\" lacks \"%s\"", vhd_get_error (), substring);
}

/* --- region table --------------------------------------------------------- */

static struct vhdx_regions r;

static void
reseal_region (uint8_t *t)
{
  put_le32 (t + VHDX_RGN_CHECKSUM,
            vhdx_checksum (t, VHDX_RGN_SIZE, VHDX_RGN_CHECKSUM));
}

static uint8_t *
entry (uint8_t *t, unsigned i)
{
  return t + VHDX_RGN_ENTRIES + i * VHDX_RGNE_SIZE;
}

Test (region, decodes_windows_table)
{
  uint8_t *t = GOLDEN (dyn_region);

  cr_assert_eq (vhdx_region_decode (t, &r), 0, "%s", vhd_get_error ());
  cr_expect_eq (r.count, 2);
  cr_expect_eq (r.bat->offset, 3 * MiB);
  cr_expect_eq (r.bat->length, MiB);
  cr_expect (r.bat->required);
  cr_expect_eq (r.metadata->offset, 2 * MiB);
  free (t);
}

Test (region, encode_decode_roundtrip)
{
  uint8_t *t = GOLDEN (dyn_region), *out = malloc (VHDX_RGN_SIZE);

  cr_assert_eq (vhdx_region_decode (t, &r), 0);
  vhdx_region_encode (r.e, r.count, out);
  cr_expect_eq (memcmp (t, out, VHDX_RGN_SIZE), 0);
  free (t), free (out);
}

Test (region, rejects_bad_checksum_and_signature)
{
  uint8_t *t = GOLDEN (dyn_region);

  t[1000] = 1;
  expect_error (vhdx_region_decode (t, &r), EBADMSG, "checksum");
  t[0] = 'R';
  reseal_region (t);
  expect_error (vhdx_region_decode (t, &r), EBADMSG, "signature");
  free (t);
}

Test (region, rejects_too_many_entries)
{
  uint8_t *t = GOLDEN (dyn_region);

  put_le32 (t + VHDX_RGN_COUNT, 2048);
  reseal_region (t);
  expect_error (vhdx_region_decode (t, &r), EBADMSG, "2048 entries");
  free (t);
}

Test (region, rejects_misaligned_offset)
{
  uint8_t *t = GOLDEN (dyn_region);

  put_le64 (entry (t, 0) + VHDX_RGNE_OFFSET, 3 * MiB + 4096);
  reseal_region (t);
  expect_error (vhdx_region_decode (t, &r), EBADMSG, "not a multiple of 1 MiB");
  free (t);
}

Test (region, rejects_overlap_and_duplicates)
{
  uint8_t *t = GOLDEN (dyn_region);

  put_le64 (entry (t, 1) + VHDX_RGNE_OFFSET, 3 * MiB);
  reseal_region (t);
  expect_error (vhdx_region_decode (t, &r), EBADMSG, "overlap");
  free (t);
  t = GOLDEN (dyn_region);
  memcpy (entry (t, 1), entry (t, 0), 16);
  reseal_region (t);
  expect_error (vhdx_region_decode (t, &r), EBADMSG, "listed twice");
  free (t);
}

Test (region, unknown_regions)
{
  uint8_t *t = GOLDEN (dyn_region);

  /* a third region, optional: kept */
  memcpy (entry (t, 2), "\x01\x02\x03\x04\x05\x06\x07\x08"
                        "\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10", 16);
  put_le64 (entry (t, 2) + VHDX_RGNE_OFFSET, 8 * MiB);
  put_le32 (entry (t, 2) + VHDX_RGNE_LENGTH, MiB);
  put_le32 (t + VHDX_RGN_COUNT, 3);
  reseal_region (t);
  cr_assert_eq (vhdx_region_decode (t, &r), 0, "%s", vhd_get_error ());
  cr_expect_eq (r.count, 3);
  cr_expect_eq (r.e[2].offset, 8 * MiB);
  /* required: refused, naming it */
  put_le32 (entry (t, 2) + VHDX_RGNE_REQUIRED, 1);
  reseal_region (t);
  expect_error (vhdx_region_decode (t, &r), ENOTSUP,
                "04030201-0605-0807-090a-0b0c0d0e0f10");
  free (t);
}

Test (region, requires_bat_and_metadata)
{
  uint8_t *t = GOLDEN (dyn_region);

  put_le32 (t + VHDX_RGN_COUNT, 1);
  reseal_region (t);
  expect_error (vhdx_region_decode (t, &r), EBADMSG, "no ");
  free (t);
}

/* --- metadata ------------------------------------------------------------- */

static struct vhdx_metadata md;

static void
decode_fail (uint8_t *m, int errnum, const char *substring)
{
  expect_error (vhdx_metadata_decode (m, MiB, &md), errnum, substring);
  vhdx_metadata_free (&md);
  free (m);
}

static uint8_t *
md_entry (uint8_t *m, unsigned i)
{
  return m + VHDX_MD_ENTRIES + i * VHDX_MDE_SIZE;
}

Test (metadata, decodes_windows_dynamic)
{
  uint8_t *m = GOLDEN (dyn_metadata);
  char s[GUID_STR_SIZE];

  cr_assert_eq (vhdx_metadata_decode (m, MiB, &md), 0, "%s",
                vhd_get_error ());
  cr_expect_eq (md.block_size, 32 * MiB);
  cr_expect_eq (md.disk_size, 10 * MiB);
  cr_expect_eq (md.logical_sector, 512);
  cr_expect_eq (md.physical_sector, 4096);
  cr_expect_not (md.has_parent);
  cr_expect_not (md.leave_blocks_allocated);
  guid_format (md.disk_id, false, s);
  cr_expect_str_eq (s, "788015f0-5e93-4bd2-a5de-b0cd8459db11");
  vhdx_metadata_free (&md);
  free (m);
}

Test (metadata, decodes_hyperv_parent_locator)
{
  uint8_t *m = GOLDEN (diff_metadata);
  const struct vhdx_parent_locator *pl = &md.locator;

  cr_assert_eq (vhdx_metadata_decode (m, MiB, &md), 0, "%s",
                vhd_get_error ());
  cr_expect (md.has_parent);
  cr_expect_eq (md.block_size, 2 * MiB);
  cr_expect_str_eq (pl->parent_linkage,
                    "{ff34003b-11ed-4cf8-a166-b2be05e20b80}");
  cr_expect_str_eq (pl->parent_linkage2,
                    "{00000000-0000-0000-0000-000000000000}");
  cr_expect_str_eq (pl->relative_path, ".\\Generation 1_49C4BAF3-4B25-4406-"
                    "8C4B-D39E65C32385.avhdx");
  cr_expect_str_eq (pl->absolute_win32_path, "C:\\Users\\Public\\Documents"
                    "\\Hyper-V\\Virtual hard disks\\Generation 1_49C4BAF3-"
                    "4B25-4406-8C4B-D39E65C32385.avhdx");
  cr_expect (strncmp (pl->volume_path, "\\\\?\\Volume{0eba351e", 19) == 0);
  vhdx_metadata_free (&md);
  free (m);
}

Test (metadata, encode_decode_roundtrip)
{
  struct vhdx_metadata in = {
    .block_size = 8 * MiB, .has_parent = true, .disk_size = 5 * MiB * 1024,
    .disk_id = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 },
    .logical_sector = 4096, .physical_sector = 512,
    .locator = { .parent_linkage =
                   (char *) "{00112233-4455-6677-8899-aabbccddeeff}",
                 .relative_path = (char *) "..\\p\\parent.vhdx",
                 .absolute_win32_path = (char *) "\\srv\\p\\parent.vhdx" },
  };
  uint8_t *m = malloc (MiB);

  cr_assert_eq (vhdx_metadata_encode (&in, m, MiB), 0, "%s",
                vhd_get_error ());
  cr_assert_eq (vhdx_metadata_decode (m, MiB, &md), 0, "%s",
                vhd_get_error ());
  cr_expect_eq (md.block_size, in.block_size);
  cr_expect_eq (md.disk_size, in.disk_size);
  cr_expect_eq (md.logical_sector, 4096);
  cr_expect_eq (md.physical_sector, 512);
  cr_expect_eq (memcmp (md.disk_id, in.disk_id, 16), 0);
  cr_expect (md.has_parent);
  cr_expect_str_eq (md.locator.parent_linkage, in.locator.parent_linkage);
  cr_expect_str_eq (md.locator.relative_path, in.locator.relative_path);
  cr_expect_str_eq (md.locator.absolute_win32_path,
                    in.locator.absolute_win32_path);
  cr_expect_null (md.locator.volume_path);
  vhdx_metadata_free (&md);
  free (m);
}

Test (metadata, rejects_bad_signature)
{
  uint8_t *m = GOLDEN (dyn_metadata);
  m[0] = 'M';
  decode_fail (m, EBADMSG, "signature");
}

Test (metadata, rejects_bad_block_sizes)
{
  uint8_t *m = GOLDEN (dyn_metadata);
  put_le32 (m + MD_ITEMS, 3 * MiB);
  decode_fail (m, EBADMSG, "block size 3145728");
  m = GOLDEN (dyn_metadata);
  put_le32 (m + MD_ITEMS, 512 * 1024);
  decode_fail (m, EBADMSG, "block size 524288");
  m = GOLDEN (dyn_metadata);
  put_le32 (m + MD_ITEMS, 512 * MiB);
  decode_fail (m, EBADMSG, "block size 536870912");
}

Test (metadata, rejects_bad_sector_sizes)
{
  uint8_t *m = GOLDEN (dyn_metadata);
  put_le32 (m + MD_ITEMS + 16, 1024);
  decode_fail (m, EBADMSG, "logical sector size 1024");
  m = GOLDEN (dyn_metadata);
  put_le32 (m + MD_ITEMS + 20, 520);
  decode_fail (m, EBADMSG, "physical sector size 520");
}

Test (metadata, rejects_bad_disk_sizes)
{
  uint8_t *m = GOLDEN (dyn_metadata);
  put_le64 (m + MD_ITEMS + 8, 0);
  decode_fail (m, EBADMSG, "virtual disk size 0");
  m = GOLDEN (dyn_metadata);
  put_le64 (m + MD_ITEMS + 8, (UINT64_C (64) << 40) + 512);
  decode_fail (m, EBADMSG, "within 1 byte..64 TiB");
  m = GOLDEN (dyn_metadata);
  put_le64 (m + MD_ITEMS + 8, 10 * MiB + 100);
  decode_fail (m, EBADMSG, "not a multiple of the logical sector");
}

Test (metadata, rejects_misplaced_items)
{
  uint8_t *m = GOLDEN (dyn_metadata);
  put_le32 (md_entry (m, 1) + VHDX_MDE_OFFSET, 4096);
  decode_fail (m, EBADMSG, "not inside the metadata region");
  m = GOLDEN (dyn_metadata);
  put_le32 (md_entry (m, 1) + VHDX_MDE_OFFSET, MiB - 4);
  decode_fail (m, EBADMSG, "not inside the metadata region");
  m = GOLDEN (dyn_metadata);
  put_le32 (md_entry (m, 1) + VHDX_MDE_OFFSET, MD_ITEMS + 4);
  decode_fail (m, EBADMSG, "overlap");
  m = GOLDEN (dyn_metadata);
  put_le32 (md_entry (m, 4) + VHDX_MDE_LENGTH, 8);
  decode_fail (m, EBADMSG, "virtual disk ID item has length 8");
  m = GOLDEN (dyn_metadata);
  memcpy (md_entry (m, 2), md_entry (m, 3), 16);
  decode_fail (m, EBADMSG, "listed twice");
  m = GOLDEN (dyn_metadata);
  put_le16 (m + VHDX_MD_COUNT, 2048);
  decode_fail (m, EBADMSG, "2048 entries");
}

Test (metadata, missing_items)
{
  uint8_t *m = GOLDEN (dyn_metadata);
  put_le16 (m + VHDX_MD_COUNT, 4); /* drops the virtual disk ID */
  decode_fail (m, EBADMSG, "no virtual disk ID item");
  m = GOLDEN (dyn_metadata);
  put_le32 (m + MD_ITEMS + 4, 2); /* HasParent without a locator */
  decode_fail (m, EBADMSG, "no parent locator item");
}

Test (metadata, unknown_items)
{
  uint8_t *m = GOLDEN (dyn_metadata);

  memcpy (md_entry (m, 5), "\xaa\xbb\xcc\xdd\x01\x02\x03\x04"
                           "\x05\x06\x07\x08\x09\x0a\x0b\x0c", 16);
  put_le32 (md_entry (m, 5) + VHDX_MDE_OFFSET, MD_ITEMS + 4096);
  put_le32 (md_entry (m, 5) + VHDX_MDE_LENGTH, 16);
  put_le32 (md_entry (m, 5) + VHDX_MDE_FLAGS, 0);
  put_le16 (m + VHDX_MD_COUNT, 6);
  cr_assert_eq (vhdx_metadata_decode (m, MiB, &md), 0, "optional: %s",
                vhd_get_error ());
  vhdx_metadata_free (&md);
  put_le32 (md_entry (m, 5) + VHDX_MDE_FLAGS,
            VHDX_MD_FLAG_USER | VHDX_MD_FLAG_REQUIRED);
  cr_assert_eq (vhdx_metadata_decode (m, MiB, &md), 0, "user item: %s",
                vhd_get_error ());
  vhdx_metadata_free (&md);
  put_le32 (md_entry (m, 5) + VHDX_MDE_FLAGS, VHDX_MD_FLAG_REQUIRED);
  decode_fail (m, ENOTSUP, "ddccbbaa-0201-0403-0506-0708090a0b0c");
}

Test (metadata, parent_locator_errors)
{
  uint8_t *m = GOLDEN (diff_metadata);
  uint8_t *pl = m + MD_ITEMS + 40; /* the locator item (entry 5) */

  pl[VHDX_PL_TYPE] ^= 1;
  decode_fail (m, ENOTSUP, "parent locator type");
  m = GOLDEN (diff_metadata);
  pl = m + MD_ITEMS + 40;
  put_le16 (pl + VHDX_PL_COUNT, 200);
  decode_fail (m, EBADMSG, "200 entries do not fit");
  m = GOLDEN (diff_metadata);
  pl = m + MD_ITEMS + 40;
  put_le32 (pl + VHDX_PL_ENTRIES + VHDX_PLE_VALUE_OFFSET, 5000);
  decode_fail (m, EBADMSG, "outside the item");
  m = GOLDEN (diff_metadata);
  pl = m + MD_ITEMS + 40;
  put_le16 (pl + VHDX_PL_ENTRIES + VHDX_PLE_KEY_LENGTH, 3);
  decode_fail (m, EBADMSG, "empty, odd");
}
