/* test-vhdx-bat-paging.c: VHDX images whose BAT is larger than the BAT
 * cache (libvhd/vhdx/bat-cache.h): an 8 TiB disk of 1 MiB blocks has a
 * 64 MiB table, eight times the cache.  Blocks written all over it read
 * back after their pages were dropped and read again, the allocation
 * map is exact, the cache stays within its limit, and qemu (which loads
 * the whole table) finds every block.  A 64 TiB disk of 1 MiB blocks, beyond
 * the old in-memory limit, opens, writes, reads and passes the check. */
#undef NDEBUG
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "vhdx/vhdx.h"

#define MiB (UINT64_C (1) << 20)
#define TiB (UINT64_C (1) << 40)
#define SPOTS 64U

static char dir[] = "/tmp/libvhd-bat-paging-XXXXXX";
static char path[256];

static void
setup (void)
{
  cr_assert_not_null (mkdtemp (dir));
  snprintf (path, sizeof path, "%s/big.vhdx", dir);
}

static void
teardown (void)
{
  unlink (path);
  rmdir (dir);
}

static struct vhd_disk *
create_vhdx (uint64_t size)
{
  struct vhd_create_opts *o = vhd_create_opts_new ();
  struct vhd_disk *d;

  cr_assert_not_null (o);
  cr_assert_eq (vhd_create_opts_set_format (o, VHD_FORMAT_VHDX), 0);
  cr_assert_eq (vhd_create_opts_set_size (o, size), 0);
  cr_assert_eq (vhd_create_opts_set_block_size (o, MiB), 0);
  d = vhd_create (path, o);
  vhd_create_opts_free (o);
  cr_assert_not_null (d, "%s", vhd_get_error ());
  return d;
}

/* Spot k of a round: one block, each on a different BAT page. */
static uint64_t
spot (uint64_t size, unsigned round, unsigned k)
{
  return (size / SPOTS) * k + (2 * round + 1) * MiB;
}

/* A byte of its own for every block written. */
static int
pattern (unsigned round, unsigned k)
{
  return (int) (round * SPOTS + k + 1);
}

static void
fill (uint8_t *buf, unsigned round, unsigned k)
{
  memset (buf, pattern (round, k), MiB);
}

static void
write_round (struct vhd_disk *d, uint64_t size, unsigned round)
{
  uint8_t *buf = malloc (MiB);
  unsigned k;

  for (k = 0; k < SPOTS; k++) {
    fill (buf, round, k);
    cr_assert_eq (vhd_pwrite (d, buf, MiB, spot (size, round, k)), 0,
                  "%s", vhd_get_error ());
  }
  free (buf);
}

static void
expect_rounds (struct vhd_disk *d, uint64_t size, unsigned rounds)
{
  uint8_t *buf = malloc (MiB), *want = malloc (MiB);
  unsigned r, k;

  for (r = 0; r < rounds; r++)
    for (k = 0; k < SPOTS; k++) {
      cr_assert_eq (vhd_pread (d, buf, MiB, spot (size, r, k)), 0, "%s",
                    vhd_get_error ());
      fill (want, r, k);
      cr_assert (memcmp (buf, want, MiB) == 0, "round %u spot %u", r, k);
    }
  free (buf);
  free (want);
}

static int
count_data (void *opaque, uint64_t offset, uint64_t length, unsigned state,
            unsigned depth)
{
  if (!(state & VHD_STATE_HOLE))
    *(uint64_t *) opaque += length;
  return 0;
}

static uint64_t
data_bytes (struct vhd_disk *d)
{
  uint64_t n = 0;

  cr_assert_eq (vhd_block_status (d, 0, vhd_get_size (d), count_data, &n),
                0, "%s", vhd_get_error ());
  return n;
}

static size_t
cached_pages (struct vhd_disk *d)
{
  return ((struct vhdx *) d->priv)->bat.n_frames;
}

TestSuite (bat_paging, .init = setup, .fini = teardown, .timeout = 120);

Test (bat_paging, a_table_eight_times_the_cache_reads_writes_and_maps)
{
  uint64_t size = 8 * TiB;
  struct vhd_disk *d = create_vhdx (size);

  write_round (d, size, 0);
  cr_assert_eq (vhd_flush (d), 0, "%s", vhd_get_error ());
  vhd_close (d);

  d = vhd_open (path, 0);
  cr_assert_not_null (d, "%s", vhd_get_error ());
  cr_expect_leq (cached_pages (d), VHDX_BAT_CACHE_PAGES,
                 "open read the table through the cache");
  cr_expect_eq (data_bytes (d), SPOTS * MiB);
  expect_rounds (d, size, 1);
  write_round (d, size, 1); /* after their pages were dropped */
  cr_assert_eq (vhd_flush (d), 0);
  cr_expect_eq (data_bytes (d), 2 * SPOTS * MiB);
  cr_expect_leq (cached_pages (d), VHDX_BAT_CACHE_PAGES);
  cr_assert_eq (vhd_flush (d), 0, "%s", vhd_get_error ());
  vhd_close (d);

  d = vhd_open (path, VHD_OPEN_RDONLY);
  cr_assert_not_null (d, "%s", vhd_get_error ());
  expect_rounds (d, size, 2);
  cr_expect_eq (data_bytes (d), 2 * SPOTS * MiB);
  vhd_close (d);

  if (system ("command -v qemu-img >/dev/null") != 0) {
    cr_log_warn ("qemu-img missing: its half skipped");
    return;
  }
  char cmd[16384];
  int n = snprintf (cmd, sizeof cmd, "qemu-img check -q -f vhdx '%s' && "
                    "qemu-io -f vhdx -r", path);
  for (unsigned r = 0; r < 2; r++)
    for (unsigned k = 0; k < SPOTS; k++)
      n += snprintf (cmd + n, sizeof cmd - (size_t) n, " -c 'read -q -P %d "
                     "%" PRIu64 " 1M'", pattern (r, k), spot (size, r, k));
  /* qemu-io prints nothing unless a read fails or differs. */
  snprintf (cmd + n, sizeof cmd - (size_t) n,
            " '%s' 2>&1 | grep -q . && exit 1; exit 0", path);
  cr_expect_eq (system (cmd), 0, "qemu-img check and qemu-io read back");
}

static void
count_finding (void *opaque, int severity, const char *message)
{
  cr_log_info ("check: %s", message);
  ++*(unsigned *) opaque;
}

Test (bat_paging, a_64_tib_disk_of_1_mib_blocks_opens_and_holds_data)
{
  unsigned findings = 0;
  uint64_t size = 64 * TiB;
  struct vhd_disk *d = create_vhdx (size);
  uint8_t buf[4096], back[4096];

  memset (buf, 0xc3, sizeof buf);
  cr_assert_eq (vhd_pwrite (d, buf, sizeof buf, size - sizeof buf), 0, "%s",
                vhd_get_error ());
  cr_assert_eq (vhd_flush (d), 0, "%s", vhd_get_error ());
  vhd_close (d);
  d = vhd_open (path, VHD_OPEN_RDONLY);
  cr_assert_not_null (d, "%s", vhd_get_error ());
  cr_expect_eq ((uint64_t) vhd_get_size (d), size);
  cr_assert_eq (vhd_pread (d, back, sizeof back, size - sizeof back), 0);
  cr_expect (memcmp (buf, back, sizeof buf) == 0);
  cr_expect_eq (data_bytes (d), MiB);
  vhd_close (d);
  /* Every one of its 64 Mi + 16 Ki entries is checked. */
  cr_expect_eq (vhd_check (path, 0, count_finding, &findings), 0, "%s",
                vhd_get_error ());
  cr_expect_eq (findings, 0);
}
