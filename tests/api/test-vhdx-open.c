/* test-vhdx-open.c: opening damaged VHDX images over the memory byte
 * source: each kind of damage refuses the open with its own errno and
 * message, or (a torn first region table, a LogGuid without entries) is
 * survived the way the spec and qemu do. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "byteorder.h"
#include "internal.h"
#include "vhdx/crc32c.h"
#include "vhdx/header.h"
#include "vhdx/log.h"
#include "vhdx/metadata.h"
#include "vhdx/region.h"

#define MiB (UINT64_C (1) << 20)
#define BAT 3 * MiB
#define META 2 * MiB

static uint8_t *img;
static size_t img_len;

/* A 64 MiB dynamic image, 1 MiB blocks, one block written. */
static void
setup (void)
{
  struct create_params p = { .type = VHD_TYPE_DYNAMIC, .size = 64 * MiB,
                             .block_size = MiB, .logical_sector = 512,
                             .physical_sector = 512 };
  struct io *io = io_mem_new (NULL, 0);
  struct vhd_disk *d;
  const uint8_t *data;

  cr_assert_eq (vhdx_format_ops.create (io, &p), 0, "%s", vhd_get_error ());
  data = io_mem_data (io, &img_len);
  d = disk_open_io (io_mem_new (data, img_len), "m", 0, NULL);
  io->ops->close (io);
  cr_assert_not_null (d, "%s", vhd_get_error ());
  cr_assert_eq (vhd_pwrite (d, (uint8_t[512]) { 1 }, 512, 5 * MiB), 0);
  cr_assert_eq (vhd_flush (d), 0);
  data = io_mem_data (d->io, &img_len);
  img = malloc (img_len);
  memcpy (img, data, img_len);
  vhd_close (d);
}

static void
teardown (void)
{
  free (img);
}

TestSuite (vhdx_open, .init = setup, .fini = teardown);

static struct vhd_disk *
try_open (unsigned flags)
{
  return disk_open_io (io_mem_new (img, img_len), "damaged.vhdx", flags,
                       NULL);
}

static void
expect_refused (int errnum, const char *substring)
{
  struct vhd_disk *d = try_open (VHD_OPEN_RDONLY);

  cr_assert_null (d, "opened, want \"%s\"", substring);
  cr_expect_eq (vhd_get_errno (), errnum, "errno %d, want %d (%s)",
                vhd_get_errno (), errnum, vhd_get_error ());
  cr_expect (strstr (vhd_get_error (), substring) != NULL,
             "message \"%s\" lacks \"%s\"", vhd_get_error (), substring);
}

static void
reseal_headers (void)
{
  for (int i = 0; i < 2; i++) {
    uint8_t *h = img + (i ? VHDX_HEADER2_OFFSET : VHDX_HEADER1_OFFSET);
    put_le32 (h + VHDX_HDR_CHECKSUM,
              vhdx_checksum (h, VHDX_HDR_SIZE, VHDX_HDR_CHECKSUM));
  }
}

static void
reseal_regions (void)
{
  for (int i = 0; i < 2; i++) {
    uint8_t *t = img + (i ? VHDX_REGION2_OFFSET : VHDX_REGION1_OFFSET);
    put_le32 (t + VHDX_RGN_CHECKSUM,
              vhdx_checksum (t, VHDX_RGN_SIZE, VHDX_RGN_CHECKSUM));
  }
}

Test (vhdx_open, intact)
{
  struct vhd_disk *d = try_open (VHD_OPEN_RDONLY);
  uint8_t b[512];

  cr_assert_not_null (d, "%s", vhd_get_error ());
  cr_assert_eq (vhd_pread (d, b, 512, 5 * MiB), 0);
  cr_expect_eq (b[0], 1);
  cr_expect_str_eq (vhd_get_format_name (d), "vhdx");
  cr_expect_str_eq (vhd_get_creator (d), "libvhd " VHD_LIB_VERSION);
  vhd_close (d);
}

Test (vhdx_open, short_file)
{
  img_len = 512 * 1024;
  expect_refused (EBADMSG, "shorter than its header section");
}

Test (vhdx_open, no_valid_header)
{
  img[VHDX_HEADER1_OFFSET + 200] ^= 1;
  img[VHDX_HEADER2_OFFSET + 200] ^= 1;
  expect_refused (EBADMSG, "no valid VHDX header");
}

Test (vhdx_open, log_past_end)
{
  put_le64 (img + VHDX_HEADER1_OFFSET + VHDX_HDR_LOG_OFFSET, 64 * MiB);
  put_le64 (img + VHDX_HEADER2_OFFSET + VHDX_HDR_LOG_OFFSET, 64 * MiB);
  reseal_headers ();
  expect_refused (EBADMSG, "log at 67108864");
}

Test (vhdx_open, unknown_required_region)
{
  for (int i = 0; i < 2; i++) {
    uint8_t *t = img + (i ? VHDX_REGION2_OFFSET : VHDX_REGION1_OFFSET);
    uint8_t *e = t + VHDX_RGN_ENTRIES + 2 * VHDX_RGNE_SIZE;
    memset (e, 0x77, 16);
    put_le64 (e + VHDX_RGNE_OFFSET, 32 * MiB);
    put_le32 (e + VHDX_RGNE_LENGTH, MiB);
    put_le32 (e + VHDX_RGNE_REQUIRED, 1);
    put_le32 (t + VHDX_RGN_COUNT, 3);
  }
  reseal_regions ();
  expect_refused (ENOTSUP, "77777777-7777-7777-7777-777777777777");
}

Test (vhdx_open, torn_first_region_table)
{
  img[VHDX_REGION1_OFFSET + 100] ^= 1;
  struct vhd_disk *d = try_open (VHD_OPEN_RDONLY);
  cr_assert_not_null (d, "%s", vhd_get_error ());
  vhd_close (d);
  img[VHDX_REGION2_OFFSET + 100] ^= 1;
  expect_refused (EBADMSG, "region table: bad checksum");
}

Test (vhdx_open, bat_entry_past_end)
{
  put_le64 (img + BAT + 8, (UINT64_C (200) << 20) | 6);
  expect_refused (EBADMSG, "VHDX BAT entry 1: payload block at offset "
                           "209715200 runs past the end of the file");
}

Test (vhdx_open, bat_entry_on_metadata)
{
  put_le64 (img + BAT + 8, META | 6);
  expect_refused (EBADMSG, "overlaps the metadata region");
}

Test (vhdx_open, unknown_required_metadata)
{
  uint8_t *e = img + META + VHDX_MD_ENTRIES + 5 * VHDX_MDE_SIZE;

  memset (e, 0x99, 16);
  put_le32 (e + VHDX_MDE_OFFSET, 65536 + 4096);
  put_le32 (e + VHDX_MDE_LENGTH, 8);
  put_le32 (e + VHDX_MDE_FLAGS, VHDX_MD_FLAG_REQUIRED);
  put_le16 (img + META + VHDX_MD_COUNT, 6);
  expect_refused (ENOTSUP, "99999999-9999-9999-9999-999999999999");
}

Test (vhdx_open, bat_region_too_small)
{
  put_le64 (img + META + 65536 + 8, UINT64_C (1) << 40);
  expect_refused (EBADMSG, "BAT region of 1048576 bytes is too small");
}

/* Give the headers a LogGuid and put an entry into the log. */
static void
add_log_entry (uint64_t flushed, bool valid)
{
  uint8_t page[4096], guid[16];
  struct vhdx_log_page p = { 10 * MiB, page };
  uint8_t *entry = malloc (vhdx_log_entry_length (1));

  memset (guid, 0x42, 16);
  memset (page, 0xab, sizeof page);
  for (int i = 0; i < 2; i++)
    memcpy (img + (i ? VHDX_HEADER2_OFFSET : VHDX_HEADER1_OFFSET)
              + VHDX_HDR_LOG_GUID, guid, 16);
  reseal_headers ();
  vhdx_log_entry_encode (entry, 1, 0, guid, flushed, 12 * MiB, &p, 1);
  if (!valid)
    entry[4] ^= 1;
  memcpy (img + MiB, entry, vhdx_log_entry_length (1));
  free (entry);
}

Test (vhdx_open, log_says_file_was_truncated)
{
  add_log_entry (128 * MiB, true);
  expect_refused (EBADMSG, "truncated");
}

Test (vhdx_open, log_guid_without_entries)
{
  add_log_entry (4 * MiB, false);
  struct vhd_disk *d = try_open (VHD_OPEN_RDONLY);
  cr_assert_not_null (d, "%s", vhd_get_error ());
  cr_expect_eq (vhd_get_log_dirty (d), 0);
  vhd_close (d);
}

Test (vhdx_open, read_only_replay_extends_and_patches)
{
  size_t before = img_len;
  uint8_t *copy;
  uint8_t b[16];

  add_log_entry (4 * MiB, true);
  copy = malloc (img_len);
  memcpy (copy, img, img_len);
  struct vhd_disk *d = try_open (VHD_OPEN_RDONLY);
  cr_assert_not_null (d, "%s", vhd_get_error ());
  cr_expect_eq (vhd_get_log_dirty (d), 1);
  cr_expect_eq (vhd_get_file_size (d), (int64_t) (12 * MiB));
  cr_assert_eq (d->io->ops->pread (d->io, b, 16, 10 * MiB), 0);
  cr_expect_eq (b[0], 0xab);
  vhd_close (d);
  cr_expect_eq (img_len, before);
  cr_expect_eq (memcmp (copy, img, img_len), 0);
  free (copy);
}

Test (vhdx_open, log_may_not_touch_the_headers)
{
  uint8_t page[4096], guid[16];
  struct vhdx_log_page p = { VHDX_HEADER1_OFFSET, page };
  uint8_t *entry = malloc (vhdx_log_entry_length (1));

  memset (guid, 0x42, 16);
  memset (page, 0, sizeof page);
  for (int i = 0; i < 2; i++)
    memcpy (img + (i ? VHDX_HEADER2_OFFSET : VHDX_HEADER1_OFFSET)
              + VHDX_HDR_LOG_GUID, guid, 16);
  reseal_headers ();
  vhdx_log_entry_encode (entry, 1, 0, guid, 4 * MiB, 4 * MiB, &p, 1);
  memcpy (img + MiB, entry, vhdx_log_entry_length (1));
  free (entry);
  expect_refused (EBADMSG, "would overwrite the file identifier or the "
                           "headers");
}
