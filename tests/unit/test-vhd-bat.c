/* test-vhd-bat.c: the VHD BAT in memory and the sector-bitmap cache. */
#undef NDEBUG /* Keep test strong */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "byteorder.h"
#include "internal.h"
#include "vhd/bat.h"

Test (vhd_bitmap, sizes)
{
  cr_expect_eq (vhd_bitmap_size (2 << 20), 512);   /* 4096 sectors */
  cr_expect_eq (vhd_bitmap_size (512 << 10), 512); /* 1024 sectors */
  cr_expect_eq (vhd_bitmap_size (512), 512);
  cr_expect_eq (vhd_bitmap_size (16 << 20), 4096);
  cr_expect_eq (vhd_bitmap_size (1U << 31), 512 << 10);
}

Test (vhd_bitmap, most_significant_bit_first)
{
  uint8_t bits[4] = { 0 };

  vhd_bitmap_set_range (bits, 0, 1);
  cr_expect_eq (bits[0], 0x80);
  vhd_bitmap_set_range (bits, 6, 4);
  cr_expect_eq (bits[0], 0x83);
  cr_expect_eq (bits[1], 0xc0);
  vhd_bitmap_set_range (bits, 16, 16);
  cr_expect_eq (bits[2], 0xff);
  cr_expect_eq (bits[3], 0xff);
  cr_expect (vhd_bitmap_test (bits, 0));
  cr_expect (!vhd_bitmap_test (bits, 1));
  cr_expect (vhd_bitmap_test (bits, 9));
  cr_expect (!vhd_bitmap_test (bits, 10));
}

Test (vhd_bitmap, runs)
{
  uint8_t bits[8] = { 0x3f, 0xff, 0xff, 0x00, 0x00, 0x01, 0x80, 0xff };

  cr_expect_eq (vhd_bitmap_run (bits, 0, 64), 2);
  cr_expect_eq (vhd_bitmap_run (bits, 1, 64), 1);
  cr_expect_eq (vhd_bitmap_run (bits, 2, 64), 22);
  cr_expect_eq (vhd_bitmap_run (bits, 2, 5), 5);
  cr_expect_eq (vhd_bitmap_run (bits, 24, 64 - 24), 23);
  cr_expect_eq (vhd_bitmap_run (bits, 47, 64 - 47), 2);
  cr_expect_eq (vhd_bitmap_run (bits, 49, 64 - 49), 7);
  cr_expect_eq (vhd_bitmap_run (bits, 56, 8), 8);
  cr_expect_eq (vhd_bitmap_run (bits, 63, 1), 1);
}

Test (vhd_bat, encode_decode)
{
  static const uint32_t entries[3] = { 4, 0xffffffff, 0x12345678 };
  uint8_t raw[12];
  uint32_t back[3];

  vhd_bat_encode (entries, 3, raw);
  cr_expect_eq (get_be32 (raw + 8), 0x12345678);
  cr_expect_eq (raw[8], 0x12);
  vhd_bat_decode (raw, 3, back);
  cr_expect_eq (memcmp (back, entries, sizeof back), 0);
}

/* A BAT of 130 entries at 512 in a memory file: two sectors, the second
 * holding 2 entries and padding. */
Test (vhd_bat, load_set_write)
{
  uint8_t file[2048];
  struct io *io;
  struct vhd_bat bat;
  size_t len;
  const uint8_t *now;

  memset (file, 0xff, sizeof file);
  put_be32 (file + 512 + 4 * 129, 77);
  io = io_mem_new (file, sizeof file);
  cr_assert_eq (vhd_bat_load (&bat, io, 512, 130, 130), 0);
  cr_expect_eq (bat.n_sectors, 2);
  cr_expect_eq (vhd_bat_get (&bat, 129), 77);
  cr_expect_eq (vhd_bat_get (&bat, 130), VHD_BAT_UNUSED); /* padding */
  cr_expect_eq (vhd_bat_write_dirty (&bat, io), 0);
  cr_expect_eq (io_mem_write_count (io), 0);
  vhd_bat_set (&bat, 128, 99);
  cr_expect_eq (vhd_bat_write_dirty (&bat, io), 0);
  cr_expect_eq (io_mem_write_count (io), 1);
  now = io_mem_data (io, &len);
  cr_expect_eq (get_be32 (now + 512 + 4 * 128), 99);
  cr_expect_eq (get_be32 (now + 512 + 4 * 129), 77);
  cr_expect_eq (get_be32 (now + 512 + 4 * 130), VHD_BAT_UNUSED);
  cr_expect_eq (vhd_bat_write_dirty (&bat, io), 0);
  cr_expect_eq (io_mem_write_count (io), 1);
  vhd_bat_free (&bat);
  io->ops->close (io);
}

Test (vhd_bat, refuses_too_many_blocks)
{
  struct vhd_bat bat;

  cr_expect_eq (vhd_bat_init_empty (&bat, 1536, UINT32_MAX,
                                    VHD_MAX_BAT_ENTRIES + 1), -1);
  cr_expect_eq (vhd_get_errno (), EFBIG);
}

/* Clean bitmaps are evicted beyond the cap; dirty ones stay. */
Test (vhd_bmcache, eviction_keeps_dirty)
{
  struct io *io = io_mem_new (NULL, 0);
  struct vhd_bitmap_cache c;
  struct vhd_bat bat;
  struct vhd_bitmap *b;
  uint32_t i;
  uint8_t sector[512];

  memset (sector, 0x0f, sizeof sector);
  for (i = 0; i < 64; i++)
    cr_assert_eq (io_pwrite (io, sector, sizeof sector, (uint64_t) i * 512),
                  0);
  cr_assert_eq (vhd_bat_init_empty (&bat, 0, 64, 64), 0);
  cr_assert_eq (vhd_bmcache_init (&c, 512), 0);
  c.max_clean = 4;
  b = vhd_bmcache_new (&c, 50, 0);
  vhd_bitmap_set_range (b->bits, 0, 1);
  vhd_bat_set (&bat, 50, 50);
  for (i = 0; i < 10; i++) {
    b = vhd_bmcache_get (&c, io, i, (uint64_t) i * 512);
    cr_assert_not_null (b);
    cr_expect_eq (b->bits[0], 0x0f);
  }
  cr_expect_eq (c.n_clean, 4);
  cr_expect_eq (c.n_dirty, 1);
  b = vhd_bmcache_get (&c, io, 50, 50 * 512);
  cr_expect_eq (b->bits[0], 0x80); /* from memory, not disk */
  cr_expect_eq (vhd_bmcache_write_dirty (&c, io, &bat), 0);
  cr_expect_eq (c.n_dirty, 0);
  cr_expect_eq (c.n_clean, 4);
  cr_assert_eq (io_pread (io, sector, 1, 50 * 512), 0);
  cr_expect_eq (sector[0], 0x80);
  vhd_bmcache_free (&c);
  vhd_bat_free (&bat);
  io->ops->close (io);
}
