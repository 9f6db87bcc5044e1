/* test-vhd-driver.c: the VHD driver over the memory byte source: images
 * created by vhd_format_ops.create, written, read and reopened; open's
 * checks against damaged metadata (one field each, one errno and message
 * each); read-only opens that never write. */
#undef NDEBUG /* Keep test strong */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "byteorder.h"
#include "internal.h"
#include "vhd/bat.h"
#include "vhd/dynheader.h"
#include "vhd/footer.h"
#include "vhd/vhd.h"

#define MiB (UINT64_C (1) << 20)

/* --- helpers ---------------------------------------------------------- */

/* A new image of type and size in memory (a parent makes it
 * differencing). */
static struct io *
new_image (enum vhd_type type, uint64_t size, struct vhd_disk *parent)
{
  struct create_params p = {
    .type = parent ? VHD_TYPE_DIFFERENCING : type,
    .size = parent ? parent->size : size,
    .parent = parent,
    .parent_path = parent ? "base.vhd" : NULL,
    .parent_abs_path = parent ? "/images/base.vhd" : NULL,
    .parent_rel_path = parent ? "base.vhd" : NULL,
  };
  struct io *io = io_mem_new (NULL, 0);

  cr_assert_not_null (io);
  cr_assert_eq (vhd_format_ops.create (io, &p), 0, "create: %s",
                vhd_get_error ());
  return io;
}

static struct vhd_disk *
open_io (struct io *io, unsigned flags, struct vhd_disk *parent)
{
  struct vhd_disk *d = disk_open_io (io, "mem.vhd", flags, parent);

  cr_assert_not_null (d, "open: %s", vhd_get_error ());
  return d;
}

/* A copy of d's bytes as a new memory source (after flushing d). */
static struct io *
snapshot (struct vhd_disk *d)
{
  size_t len;
  const uint8_t *data;

  cr_assert_eq (vhd_flush (d), 0, "flush: %s", vhd_get_error ());
  data = io_mem_data (d->io, &len);
  return io_mem_new (data, len);
}

/* Open fails on these bytes with err and a message containing what. */
static void
expect_open_failure (const uint8_t *data, size_t len, int err,
                     const char *what)
{
  struct vhd_disk *d = disk_open_io (io_mem_new (data, len), "bad.vhd",
                                     VHD_OPEN_RDONLY, NULL);

  cr_assert_null (d, "opened an image with %s", what);
  cr_expect_eq (vhd_get_errno (), err, "errno %d, message %s",
                vhd_get_errno (), vhd_get_error ());
  cr_expect (strstr (vhd_get_error (), what) != NULL,
             "message \"%s\" lacks \"%s\"", vhd_get_error (), what);
}

static void
fill (struct vhd_disk *d, uint8_t byte, size_t len, uint64_t off)
{
  uint8_t *buf = malloc (len);

  cr_assert_not_null (buf);
  memset (buf, byte, len);
  cr_assert_eq (vhd_pwrite (d, buf, len, off), 0, "write %zu at %llu: %s",
                len, (unsigned long long) off, vhd_get_error ());
  free (buf);
}

/* Every byte of [off, off+len) is byte. */
static void
expect_bytes (struct vhd_disk *d, uint8_t byte, size_t len, uint64_t off)
{
  uint8_t *buf = malloc (len);
  size_t i;

  cr_assert_not_null (buf);
  cr_assert_eq (vhd_pread (d, buf, len, off), 0, "read: %s",
                vhd_get_error ());
  for (i = 0; i < len && buf[i] == byte; i++)
    ;
  cr_expect_eq (i, len, "offset %llu: 0x%02x, expected 0x%02x",
                (unsigned long long) (off + i), i < len ? buf[i] : 0, byte);
  free (buf);
}

/* The image bytes, to damage. */
static uint8_t *
image_bytes (struct io *io, size_t *len)
{
  const uint8_t *data = io_mem_data (io, len);
  uint8_t *copy = malloc (*len);

  cr_assert_not_null (copy);
  memcpy (copy, data, *len);
  io->ops->close (io);
  return copy;
}

static void
refresh_footers (uint8_t *img, size_t len)
{
  put_be32 (img + VHD_FTR_CHECKSUM, vhd_footer_checksum (img));
  memcpy (img + len - VHD_FTR_SIZE, img, VHD_FTR_SIZE);
}

static void
refresh_header (uint8_t *img)
{
  put_be32 (img + 512 + VHD_DYN_CHECKSUM, vhd_dynheader_checksum (img + 512));
}

/* --- creation and I/O ------------------------------------------------- */

Test (vhd_driver, dynamic_write_read_reopen)
{
  struct vhd_disk *d = open_io (new_image (VHD_TYPE_DYNAMIC, 64 * MiB, NULL),
                                0, NULL);
  struct extent e;

  cr_expect_eq (d->ops, &vhd_format_ops);
  cr_expect_eq (d->size, 64 * MiB);
  cr_expect_eq (d->type, VHD_TYPE_DYNAMIC);
  cr_expect_eq (d->block_size, 2 * MiB);
  cr_expect_eq (d->logical_sector, 512);
  cr_expect_str_eq (d->creator, "lvhd");
  expect_bytes (d, 0, 4 * MiB, 0);
  fill (d, 0x11, 4096, 0);
  fill (d, 0x22, 3 * MiB, 3 * MiB - 512);   /* spans three blocks */
  fill (d, 0x33, 100, 40 * MiB + 7);        /* unaligned, read-modify-write */
  fill (d, 0x44, 512, 64 * MiB - 512);      /* the last sector */
  cr_assert_eq (vhd_format_ops.map (d, 10 * MiB, MiB, &e), 0);
  cr_expect_eq (e.state, LAYER_ABSENT);

  struct vhd_disk *r = open_io (snapshot (d), VHD_OPEN_RDONLY, NULL);
  vhd_close (d);
  expect_bytes (r, 0x11, 4096, 0);
  expect_bytes (r, 0, 3 * MiB - 512 - 4096, 4096);
  expect_bytes (r, 0x22, 3 * MiB, 3 * MiB - 512);
  expect_bytes (r, 0, 7, 40 * MiB);
  expect_bytes (r, 0x33, 100, 40 * MiB + 7);
  expect_bytes (r, 0, 405, 40 * MiB + 107);
  expect_bytes (r, 0x44, 512, 64 * MiB - 512);
  /* A dynamic disk's allocated block is data throughout. */
  cr_assert_eq (vhd_format_ops.map (r, 4096, 4 * MiB, &e), 0);
  cr_expect_eq (e.state, LAYER_DATA);
  cr_expect_eq (e.length, 2 * MiB - 4096);
  vhd_close (r);
}

Test (vhd_driver, dynamic_file_layout)
{
  struct io *io = new_image (VHD_TYPE_DYNAMIC, 5 * MiB, NULL);
  size_t len;
  const uint8_t *img = io_mem_data (io, &len);
  struct vhd_footer f;
  struct vhd_dynheader h;

  /* footer copy, header, BAT (3 entries padded to a sector), footer */
  cr_expect_eq (len, 512 + 1024 + 512 + 512);
  cr_assert_eq (vhd_footer_decode (img, &f), 0);
  cr_expect_eq (memcmp (img, img + len - 512, 512), 0);
  cr_expect_eq (memcmp (f.creator_app, "lvhd", 4), 0);
  cr_expect_eq (f.creator_host_os, VHD_HOST_OS_WINDOWS);
  cr_expect_eq (f.original_size, 5 * MiB);
  cr_expect_eq (f.data_offset, 512);
  cr_assert_eq (vhd_dynheader_decode (img + 512, &h), 0);
  cr_expect_eq (h.table_offset, 1536);
  cr_expect_eq (h.max_table_entries, 3);
  cr_expect_eq (get_be32 (img + 1536 + 508), 0xffffffff);
  io->ops->close (io);
}

Test (vhd_driver, fixed_is_fully_written)
{
  struct io *io = new_image (VHD_TYPE_FIXED, 8 * MiB, NULL);
  size_t len;
  struct vhd_disk *d;

  io_mem_data (io, &len);
  cr_expect_eq (len, 8 * MiB + 512);
  cr_expect_geq (io_mem_write_count (io), 9);
  d = open_io (io, 0, NULL);
  cr_expect_eq (d->type, VHD_TYPE_FIXED);
  cr_expect_eq (d->block_size, 0);
  fill (d, 0x5a, 3, MiB + 1);
  fill (d, 0x6b, MiB, 7 * MiB);

  struct vhd_disk *r = open_io (snapshot (d), VHD_OPEN_RDONLY, NULL);
  vhd_close (d);
  expect_bytes (r, 0, MiB + 1, 0);
  expect_bytes (r, 0x5a, 3, MiB + 1);
  expect_bytes (r, 0x6b, MiB, 7 * MiB);
  vhd_close (r);
}

Test (vhd_driver, fixed_probes_as_vhd_not_raw)
{
  struct io *io = new_image (VHD_TYPE_FIXED, MiB, NULL);

  cr_expect_eq (format_probe (io), &vhd_format_ops);
  io->ops->close (io);
}

static struct vhd_disk *
parent_with_pattern (void)
{
  struct vhd_disk *p = open_io (new_image (VHD_TYPE_DYNAMIC, 8 * MiB, NULL),
                                0, NULL);
  struct vhd_disk *r;

  fill (p, 0xaa, 8 * MiB, 0);
  r = open_io (snapshot (p), VHD_OPEN_RDONLY, NULL);
  vhd_close (p);
  return r;
}

Test (vhd_driver, differencing_sectors_and_reopen)
{
  struct vhd_disk *parent = parent_with_pattern ();
  uint8_t parent_id[16];
  struct io *io = new_image (0, 0, parent);
  struct vhd_disk *d, *r;
  struct extent e;

  memcpy (parent_id, parent->link_id, 16);
  d = open_io (io, 0, parent);
  cr_expect_eq (d->type, VHD_TYPE_DIFFERENCING);
  cr_expect_eq (memcmp (d->parent_link_id, parent_id, 16), 0);
  cr_assert_eq (d->n_parent_candidates, 3);
  cr_expect_str_eq (d->parent_candidates[0], ".\\base.vhd");
  cr_expect_str_eq (d->parent_candidates[1], "\\images\\base.vhd");
  cr_expect_str_eq (d->parent_candidates[2], "base.vhd");
  expect_bytes (d, 0xaa, 8 * MiB, 0);
  fill (d, 0x01, 1024, 512);            /* sectors 1-2 of block 0 */
  fill (d, 0x02, 10, 2 * MiB + 100);    /* part of one sector of block 1 */
  fill (d, 0x03, 512, 2 * MiB + 4096);  /* same block, later */
  cr_assert_eq (vhd_format_ops.map (d, 0, MiB, &e), 0);
  cr_expect_eq (e.state, LAYER_ABSENT);
  cr_expect_eq (e.length, 512);
  cr_assert_eq (vhd_format_ops.map (d, 512, MiB, &e), 0);
  cr_expect_eq (e.state, LAYER_DATA);
  cr_expect_eq (e.length, 1024);

  r = open_io (snapshot (d), VHD_OPEN_RDONLY, parent_with_pattern ());
  vhd_close (d);
  expect_bytes (r, 0xaa, 512, 0);
  expect_bytes (r, 0x01, 1024, 512);
  expect_bytes (r, 0xaa, 2 * MiB - 1536 + 100, 1536);
  expect_bytes (r, 0x02, 10, 2 * MiB + 100);
  expect_bytes (r, 0xaa, 4096 - 110, 2 * MiB + 110);
  expect_bytes (r, 0x03, 512, 2 * MiB + 4096);
  expect_bytes (r, 0xaa, 6 * MiB - 4608, 2 * MiB + 4608);
  cr_assert_eq (vhd_format_ops.map (r, 2 * MiB, MiB, &e), 0);
  cr_expect_eq (e.state, LAYER_DATA);
  cr_expect_eq (e.length, 512);
  cr_assert_eq (vhd_format_ops.map (r, 2 * MiB + 512, MiB, &e), 0);
  cr_expect_eq (e.state, LAYER_ABSENT);
  cr_expect_eq (e.length, 4096 - 512);
  vhd_close (r);
}

Test (vhd_driver, differencing_locators_on_disk)
{
  struct vhd_disk *parent = parent_with_pattern ();
  struct io *io = new_image (0, 0, parent);
  size_t len;
  const uint8_t *img = io_mem_data (io, &len);
  struct vhd_dynheader h;
  char *name;

  cr_assert_eq (vhd_dynheader_decode (img + 512, &h), 0);
  cr_expect_eq (h.parent_timestamp, vhd_disk_timestamp (parent));
  name = vhd_dynheader_parent_name (&h);
  cr_expect_str_eq (name, "base.vhd");
  free (name);
  cr_expect_eq (h.locators[0].platform_code, VHD_PLATFORM_W2KU);
  cr_expect_eq (h.locators[1].platform_code, VHD_PLATFORM_W2RU);
  cr_expect_eq (h.locators[0].data_offset, 2048);
  cr_expect_eq (h.locators[0].data_space, 512);
  cr_expect_eq (h.locators[0].data_length, 32);
  cr_expect_eq (h.locators[1].data_offset, 2560);
  cr_expect_eq (len, 3072 + 512);
  io->ops->close (io);
  vhd_close (parent);
}

/* --- open's checks ---------------------------------------------------- */

/* An 8 MiB dynamic image with blocks 0 and 2 allocated (at sectors 4 and
 * 4101), as bytes to damage. */
static uint8_t *
dynamic_bytes (size_t *len)
{
  struct vhd_disk *d = open_io (new_image (VHD_TYPE_DYNAMIC, 8 * MiB, NULL),
                                0, NULL);
  struct io *io;

  fill (d, 0x10, 4096, 0);
  fill (d, 0x20, 4096, 4 * MiB);
  io = snapshot (d);
  vhd_close (d);
  return image_bytes (io, len);
}

static void
set_bat (uint8_t *img, unsigned i, uint32_t sector)
{
  put_be32 (img + 1536 + 4 * i, sector);
}

Test (vhd_open_checks, layout_of_the_test_image)
{
  size_t len;
  uint8_t *img = dynamic_bytes (&len);

  cr_expect_eq (get_be32 (img + 1536), 4);
  cr_expect_eq (get_be32 (img + 1536 + 8), 4101);
  cr_expect_eq (len, 4101 * 512 + 512 + 2 * MiB + 512);
  free (img);
}

Test (vhd_open_checks, damaged_trailing_footer_uses_the_copy)
{
  size_t len;
  uint8_t *img = dynamic_bytes (&len);
  struct vhd_disk *d;

  img[len - 512 + VHD_FTR_CHECKSUM] ^= 1;
  d = open_io (io_mem_new (img, len), VHD_OPEN_RDONLY, NULL);
  expect_bytes (d, 0x10, 4096, 0);
  expect_bytes (d, 0x20, 4096, 4 * MiB);
  cr_expect_eq (io_mem_write_count (d->io), 0);
  vhd_close (d);
  free (img);
}

Test (vhd_open_checks, missing_trailing_footer_uses_the_copy)
{
  size_t len;
  uint8_t *img = dynamic_bytes (&len);
  struct vhd_disk *d;

  d = open_io (io_mem_new (img, len - 512), VHD_OPEN_RDONLY, NULL);
  expect_bytes (d, 0x20, 4096, 4 * MiB);
  vhd_close (d);
  free (img);
}

Test (vhd_open_checks, both_footers_damaged)
{
  size_t len;
  uint8_t *img = dynamic_bytes (&len);

  img[len - 512 + VHD_FTR_CHECKSUM] ^= 1;
  img[VHD_FTR_CHECKSUM] ^= 2;
  expect_open_failure (img, len, EBADMSG, "bad checksum");
  free (img);
}

Test (vhd_open_checks, hand_edited_identical_footers_are_accepted)
{
  size_t len;
  uint8_t *img = dynamic_bytes (&len);
  struct vhd_disk *d;

  /* dfvfs-style: a field changed in both copies and in the header, no
   * checksum updated. */
  img[VHD_FTR_UNIQUE_ID] ^= 0xff;
  memcpy (img + len - 512, img, 512);
  img[512 + VHD_DYN_PARENT_NAME + 1] = 'x';
  d = open_io (io_mem_new (img, len), VHD_OPEN_RDONLY, NULL);
  expect_bytes (d, 0x10, 4096, 0);
  vhd_close (d);
  free (img);
}

/* Written through a read-write handle, such an image keeps opening: the
 * new trailing footer has a good checksum, the copy at 0 a stale one. */
Test (vhd_open_checks, hand_edited_image_stays_readable_after_writes)
{
  size_t len;
  uint8_t *img = dynamic_bytes (&len);
  struct vhd_disk *d, *r;

  img[VHD_FTR_UNIQUE_ID] ^= 0xff;
  memcpy (img + len - 512, img, 512);
  img[512 + VHD_DYN_PARENT_NAME + 1] = 'x';
  d = open_io (io_mem_new (img, len), 0, NULL);
  fill (d, 0x66, 512, 2 * MiB);
  r = open_io (snapshot (d), VHD_OPEN_RDONLY, NULL);
  vhd_close (d);
  expect_bytes (r, 0x10, 4096, 0);
  expect_bytes (r, 0x66, 512, 2 * MiB);
  vhd_close (r);
  free (img);
}

Test (vhd_open_checks, damaged_fixed_footer)
{
  struct io *io = new_image (VHD_TYPE_FIXED, MiB, NULL);
  size_t len;
  uint8_t *img = image_bytes (io, &len);

  img[len - 512 + VHD_FTR_CURRENT_SIZE] ^= 1;
  expect_open_failure (img, len, EBADMSG, "footer at offset 1048576");
  free (img);
}

Test (vhd_open_checks, short_footer_of_old_virtual_pc)
{
  struct io *io = new_image (VHD_TYPE_FIXED, MiB, NULL);
  size_t len;
  uint8_t *img = image_bytes (io, &len);
  struct vhd_disk *d;

  memset (img, 0x42, MiB);
  d = open_io (io_mem_new (img, len - 1), VHD_OPEN_RDONLY, NULL);
  cr_expect_eq (d->size, MiB);
  expect_bytes (d, 0x42, MiB, 0);
  vhd_close (d);
  free (img);
}

Test (vhd_open_checks, fixed_size_beyond_the_file)
{
  struct io *io = new_image (VHD_TYPE_FIXED, MiB, NULL);
  size_t len;
  uint8_t *img = image_bytes (io, &len);
  uint8_t *footer = img + len - 512;

  put_be64 (footer + VHD_FTR_CURRENT_SIZE, 2 * MiB);
  put_be32 (footer + VHD_FTR_CHECKSUM, vhd_footer_checksum (footer));
  expect_open_failure (img, len, EBADMSG, "current size 2097152");
  free (img);
}

Test (vhd_open_checks, tiny_file)
{
  static const uint8_t img[100] = "conectix";

  expect_open_failure (img, sizeof img, EBADMSG, "too small");
}

Test (vhd_open_checks, data_offset_past_the_end)
{
  size_t len;
  uint8_t *img = dynamic_bytes (&len);

  put_be64 (img + VHD_FTR_DATA_OFFSET, len - 512);
  refresh_footers (img, len);
  expect_open_failure (img, len, EBADMSG, "data offset");
  free (img);
}

Test (vhd_open_checks, data_offset_overflows)
{
  size_t len;
  uint8_t *img = dynamic_bytes (&len);

  put_be64 (img + VHD_FTR_DATA_OFFSET, UINT64_MAX - 100);
  refresh_footers (img, len);
  expect_open_failure (img, len, EBADMSG, "data offset");
  free (img);
}

Test (vhd_open_checks, header_checksum)
{
  size_t len;
  uint8_t *img = dynamic_bytes (&len);

  img[512 + VHD_DYN_BLOCK_SIZE + 3] ^= 1;
  expect_open_failure (img, len, EBADMSG, "header: bad checksum");
  free (img);
}

Test (vhd_open_checks, table_offset_past_the_end)
{
  size_t len;
  uint8_t *img = dynamic_bytes (&len);

  put_be64 (img + 512 + VHD_DYN_TABLE_OFFSET, len - 8);
  refresh_header (img);
  expect_open_failure (img, len, EBADMSG, "table offset");
  free (img);
}

Test (vhd_open_checks, table_over_the_header)
{
  size_t len;
  uint8_t *img = dynamic_bytes (&len);

  put_be64 (img + 512 + VHD_DYN_TABLE_OFFSET, 1024);
  refresh_header (img);
  expect_open_failure (img, len, EBADMSG, "overlaps the dynamic disk header");
  free (img);
}

Test (vhd_open_checks, max_table_entries_past_the_end)
{
  size_t len;
  uint8_t *img = dynamic_bytes (&len);

  put_be32 (img + 512 + VHD_DYN_MAX_TABLE_ENTRIES, 0xffffffff);
  refresh_header (img);
  expect_open_failure (img, len, EBADMSG, "4294967295 max table entries");
  free (img);
}

Test (vhd_open_checks, max_table_entries_too_few)
{
  size_t len;
  uint8_t *img = dynamic_bytes (&len);

  put_be32 (img + 512 + VHD_DYN_MAX_TABLE_ENTRIES, 3);
  refresh_header (img);
  expect_open_failure (img, len, EBADMSG, "max table entries 3");
  free (img);
}

Test (vhd_open_checks, size_needs_too_many_blocks)
{
  size_t len;
  uint8_t *img = dynamic_bytes (&len);

  put_be64 (img + VHD_FTR_CURRENT_SIZE, UINT64_C (1) << 56);
  refresh_footers (img, len);
  expect_open_failure (img, len, EFBIG, "BAT entries");
  free (img);
}

Test (vhd_open_checks, block_past_the_end)
{
  size_t len;
  uint8_t *img = dynamic_bytes (&len);

  set_bat (img, 3, 4101 + 4101);
  expect_open_failure (img, len, EBADMSG, "BAT entry 3: block at offset");
  free (img);
}

Test (vhd_open_checks, block_over_the_trailing_footer)
{
  size_t len;
  uint8_t *img = dynamic_bytes (&len);

  set_bat (img, 3, 4101 + 1);
  expect_open_failure (img, len, EBADMSG, "BAT entry 3");
  free (img);
}

Test (vhd_open_checks, block_over_the_bat)
{
  size_t len;
  uint8_t *img = dynamic_bytes (&len);

  set_bat (img, 1, 3);
  expect_open_failure (img, len, EBADMSG, "BAT entry 1: block at offset "
                                          "1536 overlaps the BAT");
  free (img);
}

Test (vhd_open_checks, block_over_the_header)
{
  size_t len;
  uint8_t *img = dynamic_bytes (&len);

  set_bat (img, 1, 2);
  expect_open_failure (img, len, EBADMSG, "overlaps the dynamic disk header");
  free (img);
}

Test (vhd_open_checks, blocks_overlapping_each_other)
{
  size_t len;
  uint8_t *img = dynamic_bytes (&len);

  set_bat (img, 3, 4 + 8);
  expect_open_failure (img, len, EBADMSG, "BAT entries 0 and 3");
  free (img);
}

/* A differencing image as bytes: locators at 2048 (W2ku) and 2560, and
 * block 3 allocated at sector 6. */
static uint8_t *
differencing_bytes (size_t *len)
{
  struct vhd_disk *parent = parent_with_pattern ();
  struct vhd_disk *d = open_io (new_image (0, 0, parent), 0, parent);
  struct io *io;

  fill (d, 0x30, 512, 6 * MiB);
  io = snapshot (d);
  vhd_close (d);
  return image_bytes (io, len);
}

static void
set_locator (uint8_t *img, unsigned i, unsigned field, uint64_t value)
{
  uint8_t *l = img + 512 + VHD_DYN_PARENT_LOCATORS + i * VHD_LOC_SIZE;

  if (field == VHD_LOC_DATA_OFFSET)
    put_be64 (l + field, value);
  else
    put_be32 (l + field, (uint32_t) value);
  refresh_header (img);
}

Test (vhd_open_checks, locator_past_the_end)
{
  size_t len;
  uint8_t *img = differencing_bytes (&len);

  set_locator (img, 1, VHD_LOC_DATA_OFFSET, len);
  expect_open_failure (img, len, EBADMSG, "parent locator 1 (W2ru): data");
  free (img);
}

Test (vhd_open_checks, locator_too_long)
{
  size_t len;
  uint8_t *img = differencing_bytes (&len);

  set_locator (img, 0, VHD_LOC_DATA_LENGTH, 1 << 20);
  expect_open_failure (img, len, EBADMSG, "data length 1048576");
  free (img);
}

Test (vhd_open_checks, locator_not_utf16)
{
  size_t len;
  uint8_t *img = differencing_bytes (&len);

  set_locator (img, 0, VHD_LOC_DATA_LENGTH, 31);
  expect_open_failure (img, len, EBADMSG, "parent locator 0: W2ku");
  free (img);
}

Test (vhd_open_checks, block_over_locator_data)
{
  size_t len;
  uint8_t *img = differencing_bytes (&len);

  set_bat (img, 0, 5);
  expect_open_failure (img, len, EBADMSG, "overlaps parent locator 1's data");
  free (img);
}

Test (vhd_open_checks, deprecated_locators_are_ignored)
{
  size_t len;
  uint8_t *img = differencing_bytes (&len);
  struct vhd_disk *d;

  set_locator (img, 0, VHD_LOC_PLATFORM_CODE, VHD_PLATFORM_WI2K);
  set_locator (img, 0, VHD_LOC_DATA_OFFSET, UINT64_MAX);
  d = disk_open_io (io_mem_new (img, len), "diff.vhd",
                    VHD_OPEN_RDONLY | VHD_OPEN_NO_PARENT, NULL);
  cr_assert_not_null (d, "%s", vhd_get_error ());
  cr_expect_eq (d->n_parent_candidates, 2);
  cr_expect_str_eq (d->parent_candidates[0], ".\\base.vhd");
  vhd_close (d);
  free (img);
}

/* --- read-only and repair ---------------------------------------------- */

Test (vhd_open_checks, read_only_never_writes)
{
  size_t len, after_len;
  uint8_t *img = dynamic_bytes (&len), *buf = malloc (8 * MiB);
  struct vhd_disk *d;

  img[len - 512 + VHD_FTR_CHECKSUM] ^= 1; /* a repair would be tempting */
  d = open_io (io_mem_new (img, len), VHD_OPEN_RDONLY, NULL);
  cr_assert_eq (vhd_pread (d, buf, 8 * MiB, 0), 0);
  cr_expect_eq (vhd_flush (d), 0);
  cr_expect_eq (vhd_pwrite (d, buf, 512, 0), -1);
  cr_expect_eq (vhd_get_errno (), EROFS);
  cr_expect_eq (io_mem_write_count (d->io), 0);
  cr_expect_eq (memcmp (io_mem_data (d->io, &after_len), img, len), 0);
  cr_expect_eq (after_len, len);
  vhd_close (d);
  free (buf);
  free (img);
}

Test (vhd_open_checks, flush_rewrites_a_damaged_trailing_footer)
{
  size_t len, new_len;
  uint8_t *img = dynamic_bytes (&len);
  const uint8_t *now;
  struct vhd_disk *d;
  struct vhd_footer f;

  img[len - 512 + VHD_FTR_CHECKSUM] ^= 1;
  d = open_io (io_mem_new (img, len), 0, NULL);
  cr_assert_eq (vhd_flush (d), 0);
  now = io_mem_data (d->io, &new_len);
  cr_expect_eq (new_len, len + 512);
  cr_expect_eq (vhd_footer_decode (now + new_len - 512, &f), 0);
  cr_expect_eq (memcmp (now + new_len - 512, img, 512), 0);
  vhd_close (d);
  free (img);
}

/* --- create's checks ---------------------------------------------------- */

static void
expect_create_failure (const struct create_params *p, int err,
                       const char *what)
{
  struct io *io = io_mem_new (NULL, 0);

  cr_expect_eq (vhd_format_ops.create (io, p), -1);
  cr_expect_eq (vhd_get_errno (), err);
  cr_expect (strstr (vhd_get_error (), what) != NULL,
             "message \"%s\" lacks \"%s\"", vhd_get_error (), what);
  io->ops->close (io);
}

Test (vhd_create, limits)
{
  struct create_params p = { .type = VHD_TYPE_DYNAMIC };

  p.size = (UINT64_C (2040) << 30) + 512;
  expect_create_failure (&p, ERANGE, "2040 GiB");
  p.size = MiB + 1;
  expect_create_failure (&p, EINVAL, "multiple of 512");
  p.size = MiB;
  p.block_size = 3 * MiB;
  expect_create_failure (&p, EINVAL, "block size 3145728");
  p.block_size = 0;
  p.logical_sector = 4096;
  expect_create_failure (&p, EINVAL, "512-byte sectors");
  p.logical_sector = 0;
  p.type = VHD_TYPE_DIFFERENCING;
  expect_create_failure (&p, EINVAL, "needs a parent");
}

Test (vhd_create, largest_dynamic_and_other_block_sizes)
{
  struct create_params p = { .type = VHD_TYPE_DYNAMIC,
                             .size = UINT64_C (2040) << 30 };
  struct io *io = io_mem_new (NULL, 0);
  struct vhd_disk *d;

  cr_assert_eq (vhd_format_ops.create (io, &p), 0, "%s", vhd_get_error ());
  d = open_io (io, 0, NULL);
  cr_expect_eq (d->size, UINT64_C (2040) << 30);
  fill (d, 0x77, 4096, d->size - 4096);
  expect_bytes (d, 0x77, 4096, d->size - 4096);
  vhd_close (d);

  p.size = 3 * MiB;
  p.block_size = 512 * 1024;
  io = io_mem_new (NULL, 0);
  cr_assert_eq (vhd_format_ops.create (io, &p), 0, "%s", vhd_get_error ());
  d = open_io (io, 0, NULL);
  cr_expect_eq (d->block_size, 512 * 1024);
  fill (d, 0x78, MiB, MiB - 512);
  expect_bytes (d, 0, MiB - 512, 0);
  expect_bytes (d, 0x78, MiB, MiB - 512);
  expect_bytes (d, 0, MiB + 512, 2 * MiB - 512);
  vhd_close (d);
}
