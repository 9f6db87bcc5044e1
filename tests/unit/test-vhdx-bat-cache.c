/* test-vhdx-bat-cache.c: the paged VHDX BAT (vhdx/bat-cache.c) over a
 * table in memory: entries come back decoded, pages are read once while
 * they stay, clean pages are dropped past the limit and read again,
 * changed pages stay until cleaned, a page the check rejects is not
 * kept, and the table grows and shrinks. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "byteorder.h"
#include "internal.h"
#include "vhdx/bat-cache.h"

#define PER VHDX_BAT_PAGE_ENTRIES
#define TABLE_AT 4096U
#define PAGES 10U
/* The last page is half full. */
#define ENTRIES (PAGES * PER - PER / 2)

static struct io *io;
static struct vhdx_bat_cache c;

/* The value the file holds for entry i. */
static uint64_t
file_value (uint64_t i)
{
  return (i + 1) << 20 | 6;
}

static void
setup (void)
{
  size_t len = TABLE_AT + PAGES * PER * 8;
  uint8_t *file = calloc (1, len);
  uint64_t i;

  cr_assert_not_null (file);
  for (i = 0; i < PAGES * PER; i++)
    put_le64 (file + TABLE_AT + i * 8, file_value (i));
  io = io_mem_new (file, len);
  free (file);
  cr_assert_not_null (io);
  cr_assert_eq (vhdx_bat_cache_init (&c, io, TABLE_AT, ENTRIES, NULL, NULL),
                0);
}

static void
teardown (void)
{
  vhdx_bat_cache_free (&c);
  io->ops->close (io);
}

static uint64_t
get (uint64_t i)
{
  uint64_t e = 0;

  cr_assert_eq (vhdx_bat_cache_get (&c, i, &e), 0, "entry %lu: %s",
                (unsigned long) i, vhd_get_error ());
  return e;
}

/* Read every page once, in order. */
static void
touch_all (void)
{
  uint64_t p;

  for (p = 0; p < PAGES; p++)
    get (p * PER);
}

TestSuite (bat_cache, .init = setup, .fini = teardown);

Test (bat_cache, entries_come_back_decoded_and_each_page_is_read_once)
{
  uint64_t i;

  for (i = 0; i < ENTRIES; i++)
    cr_assert_eq (get (i), file_value (i), "entry %lu", (unsigned long) i);
  cr_expect_eq (c.reads, PAGES);
  touch_all ();
  cr_expect_eq (c.reads, PAGES, "pages in memory are not read again");
}

Test (bat_cache, an_entry_past_the_table_is_an_error)
{
  uint64_t e;

  cr_expect_eq (vhdx_bat_cache_get (&c, ENTRIES, &e), -1);
  cr_expect_eq (vhd_get_errno (), EIO);
}

Test (bat_cache, the_last_page_encodes_zeros_past_the_table)
{
  uint8_t out[PER * 8];
  uint64_t k, first = (PAGES - 1) * PER;

  cr_assert_eq (vhdx_bat_cache_encode (&c, PAGES - 1, out), 0);
  for (k = 0; k < PER; k++)
    cr_expect_eq (get_le64 (out + k * 8),
                  first + k < ENTRIES ? file_value (first + k) : 0,
                  "slot %lu", (unsigned long) k);
}

Test (bat_cache, clean_pages_are_dropped_past_the_limit_and_read_again)
{
  c.limit = 3;
  touch_all ();
  cr_expect_eq (c.reads, PAGES);
  cr_expect_leq (c.n_frames, 3, "%zu pages held", c.n_frames);
  cr_expect_eq (get (0), file_value (0));
  cr_expect_eq (c.reads, PAGES + 1, "page 0 was dropped and read again");
}

Test (bat_cache, a_page_in_use_survives_a_sweep)
{
  uint64_t p;

  c.limit = 3;
  for (p = 1; p < PAGES; p++) {
    get (0); /* page 0 is used between every other read */
    get (p * PER);
  }
  cr_expect_eq (c.reads, PAGES, "page 0 was never read again");
}

Test (bat_cache, a_changed_page_stays_until_cleaned)
{
  c.limit = 2;
  cr_assert_eq (vhdx_bat_cache_set (&c, 5, 0xabc00000 | 6), 0);
  touch_all ();
  touch_all ();
  cr_expect_eq (get (5), 0xabc00000 | 6, "the change is not lost");
  cr_expect_leq (c.n_frames, 2);
  vhdx_bat_cache_clean (&c, 0);
  touch_all ();
  cr_expect_eq (get (5), file_value (5),
                "a cleaned page is dropped and read from the file again");
}

Test (bat_cache, grows_past_its_limit_when_every_page_is_changed)
{
  uint64_t p;

  c.limit = 2;
  for (p = 0; p < 4; p++)
    cr_assert_eq (vhdx_bat_cache_pin (&c, p * PER), 0);
  cr_expect_eq (c.n_frames, 4);
  for (p = 0; p < 4; p++)
    cr_expect_eq (get (p * PER), file_value (p * PER));
  cr_expect_eq (c.reads, 4);
}

static int rejected;

static int
reject_page_2 (void *opaque, const uint64_t *e, uint64_t first, uint64_t n)
{
  (void) opaque;
  (void) e;
  (void) n;
  if (first != 2 * PER)
    return 0;
  rejected++;
  set_error (EBADMSG, "page 2 is bad");
  return -1;
}

Test (bat_cache, a_page_the_check_rejects_is_not_kept)
{
  uint64_t e;

  vhdx_bat_cache_free (&c);
  cr_assert_eq (vhdx_bat_cache_init (&c, io, TABLE_AT, ENTRIES,
                                     reject_page_2, NULL), 0);
  cr_expect_eq (get (PER), file_value (PER));
  cr_expect_eq (vhdx_bat_cache_get (&c, 2 * PER + 1, &e), -1);
  cr_expect_eq (vhd_get_errno (), EBADMSG);
  cr_expect_eq (vhdx_bat_cache_get (&c, 2 * PER, &e), -1);
  cr_expect_eq (rejected, 2, "read and checked again, not taken from memory");
}

Test (bat_cache, growing_reads_zeros_past_the_old_end_of_a_page_in_memory)
{
  uint64_t last = ENTRIES - 1;

  get (last);
  cr_assert_eq (vhdx_bat_cache_resize (&c, ENTRIES + 8), 0);
  cr_expect_eq (get (last), file_value (last));
  cr_expect_eq (get (ENTRIES), 0, "the file's bytes there are not the table's");
}

Test (bat_cache, shrinking_drops_clean_pages_past_the_end)
{
  touch_all ();
  cr_assert_eq (vhdx_bat_cache_resize (&c, 2 * PER), 0);
  cr_expect_eq (c.where[5], 0, "page 5 was dropped");
  cr_expect_neq (c.where[1], 0, "page 1 stays");
  cr_assert_eq (vhdx_bat_cache_resize (&c, ENTRIES), 0);
  cr_expect_eq (get (5 * PER), file_value (5 * PER), "read again");
}

Test (bat_cache, a_read_error_is_reported)
{
  uint64_t e;

  io_mem_fail_reads_after (io, 0);
  cr_expect_eq (vhdx_bat_cache_get (&c, 0, &e), -1);
  cr_expect (strstr (vhd_get_error (), "BAT entries 0..512") != NULL, "%s",
             vhd_get_error ());
}
