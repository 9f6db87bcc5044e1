/* vhd-ops-helpers.h: images in memory and in files for the tests of the
 * VHD operations (test-vhd-ops.c, test-vhd-ops-crash.c).  Header-only:
 * each test program includes it once. */
#ifndef TESTS_VHD_OPS_HELPERS_H
#define TESTS_VHD_OPS_HELPERS_H

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "byteorder.h"
#include "internal.h"
#include "minmax.h"
#include "vhd/vhd.h"

/* Not every program uses every helper. */
#define HELPER static __attribute__ ((unused))

#define KiB (UINT64_C (1) << 10)
#define MiB (UINT64_C (1) << 20)

/* Bytes of an image in memory (and, for a differencing one, its parent's). */
struct image {
  uint8_t *bytes;
  size_t len;
  struct image *parent; /* not owned */
};

HELPER uint8_t *
copy_of (const uint8_t *p, size_t len)
{
  uint8_t *c = malloc (len ? len : 1);

  cr_assert_not_null (c);
  memcpy (c, p, len);
  return c;
}

/* Take over the current bytes of a memory handle. */
HELPER void
snapshot (struct vhd_disk *d, struct image *img)
{
  size_t len;
  const uint8_t *p = io_mem_data (d->io, &len);

  free (img->bytes);
  img->bytes = copy_of (p, len);
  img->len = len;
}

HELPER struct vhd_disk *
open_image (const struct image *img, unsigned flags)
{
  struct vhd_disk *parent = NULL, *d;

  if (img->parent) {
    parent = open_image (img->parent, VHD_OPEN_RDONLY);
    cr_assert_not_null (parent, "parent: %s", vhd_get_error ());
  }
  d = disk_open_io (io_mem_new (img->bytes, img->len), "mem.vhd", flags,
                    parent);
  return d;
}

HELPER struct vhd_disk *
must_open (const struct image *img, unsigned flags)
{
  struct vhd_disk *d = open_image (img, flags);

  cr_assert_not_null (d, "open: %s", vhd_get_error ());
  return d;
}

/* A new image; parent (opened from its image) for a differencing one. */
HELPER void
make_image (struct image *img, enum vhd_type type, uint64_t size,
            uint32_t block_size, struct image *parent)
{
  struct create_params p = { .type = type, .size = size,
                             .block_size = block_size };
  struct io *io = io_mem_new (NULL, 0);
  struct vhd_disk *pd = NULL;
  size_t len;

  memset (img, 0, sizeof *img);
  if (parent) {
    pd = must_open (parent, VHD_OPEN_RDONLY);
    p.size = pd->size;
    p.parent = pd;
    p.parent_path = "/images/base.vhd";
    p.parent_abs_path = "/images/base.vhd";
    p.parent_rel_path = "base.vhd";
    img->parent = parent;
  }
  const uint8_t *data;

  cr_assert_eq (vhd_format_ops.create (io, &p), 0, "%s", vhd_get_error ());
  data = io_mem_data (io, &len);
  img->bytes = copy_of (data, len);
  img->len = len;
  io->ops->close (io);
  vhd_close (pd);
}

HELPER void
free_image (struct image *img)
{
  free (img->bytes);
  img->bytes = NULL;
}

/* A byte that depends on the offset and a seed, never zero. */
HELPER uint8_t
pattern (uint64_t offset, unsigned seed)
{
  return (uint8_t) (((offset / 512) * 31 + offset % 512 * 7 + seed * 13)
                    % 255 + 1);
}

/* Write the pattern over [offset, offset + len) of d and of view. */
HELPER void
fill (struct vhd_disk *d, uint8_t *view, uint64_t offset, size_t len,
      unsigned seed)
{
  uint8_t *buf = malloc (len);
  size_t i;

  cr_assert_not_null (buf);
  for (i = 0; i < len; i++)
    buf[i] = pattern (offset + i, seed);
  cr_assert_eq (vhd_pwrite (d, buf, len, offset), 0, "%s", vhd_get_error ());
  if (view)
    memcpy (view + offset, buf, len);
  free (buf);
}

/* The whole virtual disk. */
HELPER uint8_t *
read_all (struct vhd_disk *d)
{
  uint8_t *buf = malloc (d->size ? d->size : 1);

  cr_assert_not_null (buf);
  cr_assert_eq (vhd_pread (d, buf, d->size, 0), 0, "%s", vhd_get_error ());
  return buf;
}

/* First differing offset, or -1. */
HELPER int64_t
first_diff (const uint8_t *a, const uint8_t *b, size_t len)
{
  size_t i;

  if (memcmp (a, b, len) == 0)
    return -1;
  for (i = 0; a[i] == b[i]; i++)
    ;
  return (int64_t) i;
}

HELPER void
expect_view (struct vhd_disk *d, const uint8_t *want, uint64_t size,
             const char *what)
{
  uint8_t *got;
  int64_t at;

  cr_assert_eq (d->size, size, "%s: size %" PRIu64 ", want %" PRIu64, what,
                d->size, size);
  got = read_all (d);
  at = first_diff (got, want, size);
  cr_assert_eq (at, -1, "%s: byte %" PRId64 " is 0x%02x, want 0x%02x", what,
                at, at >= 0 ? got[at] : 0, at >= 0 ? want[at] : 0);
  free (got);
}

HELPER enum layer_state
state_at (struct vhd_disk *d, uint64_t offset)
{
  struct extent e;

  cr_assert_eq (d->ops->map (d, offset, d->size - offset, &e), 0);
  return e.state;
}

/* Rebuild a dynamic image with its blocks at the given offsets. */
HELPER void
relayout (struct image *img, const uint64_t *at, unsigned n)
{
  struct vhd_disk *d = must_open (img, VHD_OPEN_RDONLY);
  struct vhd_state *s = d->priv;
  uint64_t bb = vhd_block_bytes (s), end = 0;
  uint8_t *out;
  unsigned i;

  for (i = 0; i < n; i++)
    end = MAX (end, at[i] + bb);
  out = calloc (1, end + 512);
  cr_assert_not_null (out);
  memcpy (out, img->bytes, 2048); /* footer copy, header, BAT sector */
  for (i = 0; i < n; i++) {
    uint64_t from = (uint64_t) vhd_bat_get (&s->bat, i) * 512;
    memcpy (out + at[i], img->bytes + from, bb);
    put_be32 (out + 1536 + 4 * i, (uint32_t) (at[i] / 512));
  }
  memcpy (out + end, img->bytes + img->len - 512, 512);
  vhd_close (d);
  free (img->bytes);
  img->bytes = out;
  img->len = end + 512;
}

/* --- files -------------------------------------------------------------- */

HELPER char test_dir[] = "/tmp/libvhd-ops-XXXXXX";

HELPER void
dir_setup (void)
{
  cr_assert_not_null (mkdtemp (test_dir));
}

HELPER void
dir_teardown (void)
{
  char cmd[256];

  snprintf (cmd, sizeof cmd, "rm -rf %s", test_dir);
  cr_expect_eq (system (cmd), 0);
}

HELPER char *
path_of (const char *name)
{
  static char buf[8][256];
  static unsigned n;
  char *p = buf[n++ % 8];

  snprintf (p, 256, "%s/%s", test_dir, name);
  return p;
}

HELPER struct vhd_disk *
create_file (const char *name, int type, uint64_t size, uint32_t block_size,
             const char *parent)
{
  struct vhd_create_opts *o = vhd_create_opts_new ();
  struct vhd_disk *d;

  cr_assert_not_null (o);
  cr_assert_eq (vhd_create_opts_set_format (o, VHD_FORMAT_VHD), 0);
  if (parent)
    cr_assert_eq (vhd_create_opts_set_parent (o, path_of (parent)), 0);
  else {
    cr_assert_eq (vhd_create_opts_set_type (o, type), 0);
    cr_assert_eq (vhd_create_opts_set_size (o, size), 0);
  }
  if (block_size)
    cr_assert_eq (vhd_create_opts_set_block_size (o, block_size), 0);
  d = vhd_create (path_of (name), o);
  cr_assert_not_null (d, "create %s: %s", name, vhd_get_error ());
  vhd_create_opts_free (o);
  return d;
}

HELPER uint8_t *
file_bytes (const char *name, size_t *len)
{
  FILE *f = fopen (path_of (name), "rb");
  uint8_t *buf;
  long n;

  cr_assert_not_null (f, "%s", name);
  fseek (f, 0, SEEK_END);
  n = ftell (f);
  rewind (f);
  buf = malloc (n ? (size_t) n : 1);
  cr_assert_not_null (buf);
  cr_assert_eq (fread (buf, 1, (size_t) n, f), (size_t) n);
  fclose (f);
  *len = (size_t) n;
  return buf;
}

HELPER void
write_file (const char *name, const uint8_t *p, size_t len)
{
  FILE *f = fopen (path_of (name), "wb");

  cr_assert_not_null (f, "%s", name);
  cr_assert_eq (fwrite (p, 1, len, f), len);
  cr_assert_eq (fclose (f), 0);
}

HELPER uint64_t
file_size_of (const char *name)
{
  size_t len;
  uint8_t *p = file_bytes (name, &len);

  free (p);
  return len;
}

/* qemu-img, an independent reader, sees image as the raw bytes of view
 * (skipped when qemu-img is not installed). */
HELPER void
qemu_compare (const char *image, const uint8_t *view, uint64_t size)
{
  char cmd[1024];
  int r;

  if (system ("command -v qemu-img > /dev/null 2>&1") != 0) {
    cr_log_warn ("qemu-img not installed: %s not compared", image);
    return;
  }
  write_file ("qemu-view.raw", view, size);
  snprintf (cmd, sizeof cmd, "qemu-img compare -q --image-opts "
            "driver=vpc,force_size_calc=current_size,file.filename=%s "
            "driver=raw,file.filename=%s", path_of (image),
            path_of ("qemu-view.raw"));
  r = system (cmd);
  cr_assert_eq (r, 0, "qemu-img compare %s: differs (status %d)", image, r);
}

#endif /* TESTS_VHD_OPS_HELPERS_H */
