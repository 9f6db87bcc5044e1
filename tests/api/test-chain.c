/* test-chain.c: differencing chains through real files: reads falling
 * through to parents, sector-granular child writes, allocation depth,
 * and the failures: missing parent, wrong parent, loops. */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libvhd.h"

#define MiB (UINT64_C (1) << 20)

static char dir[] = "/tmp/libvhd-chain-XXXXXX";

static void
setup (void)
{
  cr_assert_not_null (mkdtemp (dir));
}

static void
teardown (void)
{
  char cmd[256];
  snprintf (cmd, sizeof cmd, "rm -rf %s", dir);
  cr_expect_eq (system (cmd), 0);
}

static char *
path_of (const char *name)
{
  static char buf[4][256];
  static unsigned n;
  char *p = buf[n++ % 4];
  snprintf (p, 256, "%s/%s", dir, name);
  return p;
}

static struct vhd_disk *
create (const char *name, uint64_t size, const char *parent)
{
  struct vhd_create_opts *o = vhd_create_opts_new ();
  struct vhd_disk *d;

  cr_assert_not_null (o);
  if (parent)
    cr_assert_eq (vhd_create_opts_set_parent (o, path_of (parent)), 0);
  else
    cr_assert_eq (vhd_create_opts_set_size (o, size), 0);
  d = vhd_create (path_of (name), o);
  cr_assert_not_null (d, "create %s: %s", name, vhd_get_error ());
  vhd_create_opts_free (o);
  return d;
}

static void
fill (struct vhd_disk *d, uint8_t byte, size_t len, uint64_t off)
{
  uint8_t *buf = malloc (len);
  memset (buf, byte, len);
  cr_assert_eq (vhd_pwrite (d, buf, len, off), 0, "%s", vhd_get_error ());
  free (buf);
}

static void
expect_bytes (struct vhd_disk *d, uint8_t byte, size_t len, uint64_t off)
{
  uint8_t *buf = malloc (len);
  cr_assert_eq (vhd_pread (d, buf, len, off), 0, "%s", vhd_get_error ());
  for (size_t i = 0; i < len; i++)
    if (buf[i] != byte)
      cr_assert_fail ("byte at %" PRIu64 " is 0x%02x, want 0x%02x",
                      off + i, buf[i], byte);
  free (buf);
}

/* base: 0xbb over [0, 3 MiB); child: 0xcc over 100 bytes at 1 MiB + 10. */
static void
make_base_and_child (void)
{
  struct vhd_disk *base = create ("base.vhd", 8 * MiB, NULL);
  fill (base, 0xbb, 3 * MiB, 0);
  vhd_close (base);
  struct vhd_disk *child = create ("child.vhd", 0, "base.vhd");
  cr_expect_eq (vhd_get_type (child), VHD_TYPE_DIFFERENCING);
  cr_expect_eq (vhd_get_size (child), (int64_t) (8 * MiB));
  fill (child, 0xcc, 100, MiB + 10);
  cr_assert_eq (vhd_flush (child), 0);
  vhd_close (child);
}

TestSuite (chain, .init = setup, .fini = teardown);

Test (chain, child_reads_parent_and_own_sectors)
{
  make_base_and_child ();
  struct vhd_disk *d = vhd_open (path_of ("child.vhd"), VHD_OPEN_RDONLY);
  cr_assert_not_null (d, "%s", vhd_get_error ());
  cr_assert_not_null (vhd_get_parent (d));
  expect_bytes (d, 0xbb, MiB + 10, 0);
  expect_bytes (d, 0xcc, 100, MiB + 10);
  /* The rest of the written sectors keeps the parent's bytes. */
  expect_bytes (d, 0xbb, 2 * MiB - 110, MiB + 110);
  expect_bytes (d, 0, 5 * MiB, 3 * MiB);
  vhd_close (d);
}

struct ext { uint64_t off, len; unsigned state, depth; };
struct exts { struct ext e[64]; unsigned n; };

static int
collect (void *opaque, uint64_t off, uint64_t len, unsigned state,
         unsigned depth)
{
  struct exts *x = opaque;
  cr_assert_lt (x->n, 64);
  x->e[x->n++] = (struct ext) { off, len, state, depth };
  return 0;
}

Test (chain, block_status_reports_depth)
{
  make_base_and_child ();
  struct vhd_disk *d = vhd_open (path_of ("child.vhd"), VHD_OPEN_RDONLY);
  struct exts x = { .n = 0 };
  cr_assert_not_null (d, "%s", vhd_get_error ());
  cr_assert_eq (vhd_block_status (d, 0, 8 * MiB, collect, &x), 0);
  /* parent data | child sector(s) | parent data | hole */
  cr_assert_eq (x.n, 4);
  cr_expect_eq (x.e[0].off, 0);
  cr_expect_eq (x.e[0].len, MiB);
  cr_expect_eq (x.e[0].depth, 1);
  cr_expect_eq (x.e[0].state, 0);
  cr_expect_eq (x.e[1].off, MiB);
  cr_expect_eq (x.e[1].len, 512);
  cr_expect_eq (x.e[1].depth, 0);
  cr_expect_eq (x.e[2].off, MiB + 512);
  cr_expect_eq (x.e[2].depth, 1);
  cr_expect_eq (x.e[3].off, 4 * MiB); /* base blocks are 2 MiB */
  cr_expect_eq (x.e[3].state, VHD_STATE_HOLE | VHD_STATE_ZERO);
  cr_expect_eq (x.e[3].depth, 2, "absent from both layers");
  vhd_close (d);
}

Test (chain, grandchild_and_writes_stay_on_top)
{
  make_base_and_child ();
  struct vhd_disk *g = create ("grand.vhd", 0, "child.vhd");
  fill (g, 0xdd, 4096, 7 * MiB);
  expect_bytes (g, 0xcc, 100, MiB + 10);
  expect_bytes (g, 0xdd, 4096, 7 * MiB);
  expect_bytes (g, 0xbb, 4096, 0);
  vhd_close (g);
  /* The middle of the chain did not change. */
  struct vhd_disk *c = vhd_open (path_of ("child.vhd"), VHD_OPEN_RDONLY);
  cr_assert_not_null (c, "%s", vhd_get_error ());
  expect_bytes (c, 0, 4096, 7 * MiB);
  vhd_close (c);
}

Test (chain, missing_parent_is_named)
{
  make_base_and_child ();
  cr_assert_eq (rename (path_of ("base.vhd"), path_of ("moved.vhd")), 0);
  cr_assert_null (vhd_open (path_of ("child.vhd"), VHD_OPEN_RDONLY));
  cr_expect_eq (vhd_get_errno (), ENOENT);
  cr_expect (strstr (vhd_get_error (), "base.vhd") != NULL, "%s",
             vhd_get_error ());
  /* Inspection still works without the parent. */
  struct vhd_disk *d = vhd_open (path_of ("child.vhd"),
                                 VHD_OPEN_RDONLY | VHD_OPEN_NO_PARENT);
  cr_assert_not_null (d, "%s", vhd_get_error ());
  cr_expect_null (vhd_get_parent (d));
  cr_expect (strstr (vhd_get_parent_hint (d), "base.vhd") != NULL);
  vhd_close (d);
}

Test (chain, wrong_parent_identity_refused)
{
  make_base_and_child ();
  /* A different disk under the parent's name. */
  cr_assert_eq (unlink (path_of ("base.vhd")), 0);
  vhd_close (create ("base.vhd", 8 * MiB, NULL));
  cr_assert_null (vhd_open (path_of ("child.vhd"), VHD_OPEN_RDONLY));
  cr_expect_eq (vhd_get_errno (), EBADMSG);
  cr_expect (strstr (vhd_get_error (), "expects") != NULL, "%s",
             vhd_get_error ());
  struct vhd_disk *d = vhd_open (path_of ("child.vhd"),
                                 VHD_OPEN_RDONLY | VHD_OPEN_IGNORE_PARENT_ID);
  cr_assert_not_null (d, "%s", vhd_get_error ());
  vhd_close (d);
}

Test (chain, parent_loop_detected)
{
  make_base_and_child ();
  /* child.vhd now sits where its own parent should be. */
  cr_assert_eq (rename (path_of ("child.vhd"), path_of ("base.vhd")), 0);
  cr_assert_null (vhd_open (path_of ("base.vhd"),
                            VHD_OPEN_RDONLY | VHD_OPEN_IGNORE_PARENT_ID));
  cr_expect_eq (vhd_get_errno (), ELOOP, "%s", vhd_get_error ());
  cr_expect (strstr (vhd_get_error (), "loop") != NULL, "%s",
             vhd_get_error ());
}

Test (chain, parent_is_never_written)
{
  make_base_and_child ();
  FILE *f = fopen (path_of ("base.vhd"), "rb");
  cr_assert_not_null (f);
  fseek (f, 0, SEEK_END);
  long before = ftell (f);
  fclose (f);
  struct vhd_disk *d = vhd_open (path_of ("child.vhd"), 0);
  cr_assert_not_null (d, "%s", vhd_get_error ());
  fill (d, 0xee, 3 * MiB, 2 * MiB);
  cr_assert_eq (vhd_flush (d), 0);
  vhd_close (d);
  struct vhd_disk *b = vhd_open (path_of ("base.vhd"), VHD_OPEN_RDONLY);
  expect_bytes (b, 0xbb, 3 * MiB, 0);
  cr_expect_eq (vhd_get_file_size (b), before);
  vhd_close (b);
}

Test (chain, write_zeroes_hides_parent)
{
  make_base_and_child ();
  struct vhd_disk *d = vhd_open (path_of ("child.vhd"), 0);
  cr_assert_not_null (d, "%s", vhd_get_error ());
  /* Unaligned at both ends, across the child's own sectors. */
  cr_assert_eq (vhd_write_zeroes (d, MiB - 100, 5000, 0), 0, "%s",
                vhd_get_error ());
  expect_bytes (d, 0xbb, MiB - 100, 0);
  expect_bytes (d, 0, 5000, MiB - 100);
  expect_bytes (d, 0xbb, 4096, MiB + 4900);
  cr_assert_eq (vhd_discard (d, 2 * MiB, 2 * MiB), 0, "%s",
                vhd_get_error ());
  expect_bytes (d, 0, 2 * MiB, 2 * MiB);
  cr_assert_eq (vhd_flush (d), 0);
  vhd_close (d);
  d = vhd_open (path_of ("child.vhd"), VHD_OPEN_RDONLY);
  expect_bytes (d, 0, 5000, MiB - 100);
  expect_bytes (d, 0, 2 * MiB, 2 * MiB);
  expect_bytes (d, 0xbb, MiB - 100, 0);
  vhd_close (d);
}

Test (chain, write_zeroes_skips_ranges_already_zero)
{
  struct vhd_disk *d = create ("empty.vhd", 8 * MiB, NULL);
  cr_assert_eq (vhd_write_zeroes (d, 0, 8 * MiB, VHD_ZERO_FAST), 0, "%s",
                vhd_get_error ());
  cr_expect_eq (vhd_get_allocated_bytes (d), 0);
  vhd_close (d);
}

Test (chain, write_zeroes_errors)
{
  make_base_and_child ();
  struct vhd_disk *d = vhd_open (path_of ("child.vhd"), 0);
  cr_assert_not_null (d, "%s", vhd_get_error ());
  cr_expect_eq (vhd_write_zeroes (d, 0, 512, 0x100), -1);
  cr_expect_eq (vhd_get_errno (), EINVAL);
  cr_expect_eq (vhd_write_zeroes (d, 8 * MiB - 512, 1024, 0), -1);
  cr_expect_eq (vhd_get_errno (), ERANGE);
  cr_expect_eq (vhd_write_zeroes (d, 10, 100, VHD_ZERO_FAST), -1);
  cr_expect_eq (vhd_get_errno (), ENOTSUP);
  vhd_close (d);
  d = vhd_open (path_of ("child.vhd"), VHD_OPEN_RDONLY);
  cr_expect_eq (vhd_discard (d, 0, 512), -1);
  cr_expect_eq (vhd_get_errno (), EROFS);
  cr_expect (strncmp (vhd_get_error (), "vhd_discard: ", 13) == 0,
             "%s", vhd_get_error ());
  vhd_close (d);
}

Test (chain, open_errors_name_vhd_open)
{
  make_base_and_child ();
  cr_assert_eq (unlink (path_of ("base.vhd")), 0);
  vhd_close (create ("base.vhd", 8 * MiB, NULL));
  cr_assert_null (vhd_open (path_of ("child.vhd"), VHD_OPEN_RDONLY));
  cr_expect (strncmp (vhd_get_error (), "vhd_open: ", 10) == 0, "%s",
             vhd_get_error ());
}

Test (chain, grown_child_reads_zeros_not_the_parent)
{
  make_base_and_child ();
  struct vhd_disk *d = vhd_open (path_of ("child.vhd"), 0);
  cr_assert_not_null (d, "%s", vhd_get_error ());
  cr_assert_eq (vhd_resize (d, 2 * MiB, VHD_RESIZE_SHRINK), 0, "%s",
                vhd_get_error ());
  cr_assert_eq (vhd_resize (d, 8 * MiB, 0), 0, "%s", vhd_get_error ());
  expect_bytes (d, 0xbb, MiB, 0);
  expect_bytes (d, 0xcc, 100, MiB + 10);
  expect_bytes (d, 0, 6 * MiB, 2 * MiB); /* the parent has 0xbb to 3 MiB */
  vhd_close (d);
  d = vhd_open (path_of ("child.vhd"), VHD_OPEN_RDONLY);
  cr_assert_not_null (d, "%s", vhd_get_error ());
  expect_bytes (d, 0, 6 * MiB, 2 * MiB);
  vhd_close (d);
}
