/* test-open-opts.c: vhd_open_with_opts -- a parent named by the caller,
 * VHD_OPEN_DIRECT -- and the feature and version macros. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libvhd.h"

#define SIZE (8U << 20)

static char dir[] = "/tmp/libvhd-openopts-XXXXXX";

static void
setup (void)
{
  cr_assert_not_null (mkdtemp (dir));
}

static void
teardown (void)
{
  char cmd[128];
  snprintf (cmd, sizeof cmd, "rm -rf %s", dir);
  cr_expect_eq (system (cmd), 0);
}

static const char *
in_dir (const char *name)
{
  static char path[8][256];
  static unsigned next;
  char *p = path[next++ % 8];
  snprintf (p, 256, "%s/%s", dir, name);
  return p;
}

/* Create NAME (FORMAT, dynamic, or a child of PARENT) and fill BYTE at
 * OFFSET (64 KiB) unless BYTE is 0. */
static void
make (const char *name, int format, const char *parent, uint64_t offset,
      int byte)
{
  struct vhd_create_opts *o = vhd_create_opts_new ();
  struct vhd_disk *d;
  static uint8_t buf[65536];

  cr_assert_eq (vhd_create_opts_set_format (o, format), 0);
  cr_assert_eq (vhd_create_opts_set_size (o, SIZE), 0);
  if (format == VHD_FORMAT_VHDX)
    cr_assert_eq (vhd_create_opts_set_block_size (o, 1U << 20), 0);
  if (parent)
    cr_assert_eq (vhd_create_opts_set_parent (o, in_dir (parent)), 0);
  d = vhd_create (in_dir (name), o);
  cr_assert_not_null (d, "%s", vhd_get_error ());
  if (byte) {
    memset (buf, byte, sizeof buf);
    cr_assert_eq (vhd_pwrite (d, buf, sizeof buf, offset), 0, "%s",
                  vhd_get_error ());
  }
  vhd_close (d);
  vhd_create_opts_free (o);
}

static struct vhd_disk *
open_with (const char *name, unsigned flags, const char *parent)
{
  struct vhd_open_opts *o = vhd_open_opts_new ();
  struct vhd_disk *d;

  cr_assert_not_null (o);
  cr_assert_eq (vhd_open_opts_set_flags (o, flags), 0);
  cr_assert_eq (vhd_open_opts_set_parent (o, parent ? in_dir (parent)
                                                    : NULL), 0);
  d = vhd_open_with_opts (in_dir (name), o);
  vhd_open_opts_free (o);
  return d;
}

static void
expect_byte (struct vhd_disk *d, uint64_t offset, int byte)
{
  uint8_t buf[4096];
  cr_assert_eq (vhd_pread (d, buf, sizeof buf, offset), 0, "%s",
                vhd_get_error ());
  for (size_t i = 0; i < sizeof buf; i++)
    cr_assert_eq (buf[i], byte, "byte %zu at %llu: %d, not %d", i,
                  (unsigned long long) offset, buf[i], byte);
}

TestSuite (open_opts, .init = setup, .fini = teardown);

Test (open_opts, argument_errors)
{
  struct vhd_open_opts *o = vhd_open_opts_new ();

  cr_assert_eq (vhd_open_opts_set_flags (NULL, 0), -1);
  cr_assert_eq (vhd_get_errno (), EFAULT);
  cr_assert_eq (vhd_open_opts_set_parent (NULL, "x"), -1);
  cr_assert_eq (vhd_get_errno (), EFAULT);
  cr_assert_eq (vhd_open_opts_set_flags (o, 0x100), -1);
  cr_assert_eq (vhd_get_errno (), EINVAL);
  cr_assert (strstr (vhd_get_error (), "vhd_open_opts_set_flags") != NULL,
             "%s", vhd_get_error ());
  cr_assert_null (vhd_open_with_opts (NULL, o));
  cr_assert_eq (vhd_get_errno (), EFAULT);
  cr_assert_null (vhd_open_with_opts ("x", NULL));
  cr_assert_eq (vhd_get_errno (), EFAULT);
  cr_assert_eq (vhd_open_opts_set_flags (o, VHD_OPEN_NO_PARENT), 0);
  cr_assert_eq (vhd_open_opts_set_parent (o, "p"), 0);
  cr_assert_null (vhd_open_with_opts ("x", o));
  cr_assert_eq (vhd_get_errno (), EINVAL);
  vhd_open_opts_free (o);
  vhd_open_opts_free (NULL);
}

/* The recorded parent is gone (renamed): the search fails, the parent
 * named by the caller works, and its identity is still checked. */
static void
given_parent (int format)
{
  struct vhd_disk *d;

  make ("base", format, NULL, 0, 0xaa);
  make ("child", format, "base", 1U << 20, 0xcc);
  make ("other", format, NULL, 0, 0xee);
  make ("flat", format, NULL, 0, 0);
  cr_assert_eq (rename (in_dir ("base"), in_dir ("moved")), 0);

  cr_assert_null (vhd_open (in_dir ("child"), VHD_OPEN_RDONLY));
  cr_assert_eq (vhd_get_errno (), ENOENT, "%s", vhd_get_error ());

  d = open_with ("child", VHD_OPEN_RDONLY, "moved");
  cr_assert_not_null (d, "%s", vhd_get_error ());
  expect_byte (d, 0, 0xaa);
  expect_byte (d, 1U << 20, 0xcc);
  expect_byte (d, 4U << 20, 0);
  cr_assert_str_eq (vhd_get_filename (vhd_get_parent (d)), in_dir ("moved"));
  vhd_close (d);

  /* Read-write too: writes go to the child, the parent stays as it was. */
  d = open_with ("child", 0, "moved");
  cr_assert_not_null (d, "%s", vhd_get_error ());
  uint8_t buf[4096];
  memset (buf, 0x11, sizeof buf);
  cr_assert_eq (vhd_pwrite (d, buf, sizeof buf, 0), 0, "%s", vhd_get_error ());
  vhd_close (d);
  d = open_with ("moved", VHD_OPEN_RDONLY, NULL);
  cr_assert_not_null (d, "%s", vhd_get_error ());
  expect_byte (d, 0, 0xaa);
  vhd_close (d);

  cr_assert_null (open_with ("child", VHD_OPEN_RDONLY, "other"));
  cr_assert_eq (vhd_get_errno (), EBADMSG, "%s", vhd_get_error ());
  cr_assert (strstr (vhd_get_error (), "vhd_open_with_opts: ") == vhd_get_error (),
             "%s", vhd_get_error ());
  cr_assert_null (strstr (vhd_get_error () + 1, "vhd_open_with_opts"),
                  "the call's name appears once: %s", vhd_get_error ());

  d = open_with ("child", VHD_OPEN_RDONLY | VHD_OPEN_IGNORE_PARENT_ID,
                 "other");
  cr_assert_not_null (d, "%s", vhd_get_error ());
  expect_byte (d, 0, 0x11);
  expect_byte (d, 4096, 0xee);
  vhd_close (d);

  cr_assert_null (open_with ("child", VHD_OPEN_RDONLY, "missing"));
  cr_assert_eq (vhd_get_errno (), ENOENT, "%s", vhd_get_error ());

  cr_assert_null (open_with ("flat", VHD_OPEN_RDONLY, "moved"));
  cr_assert_eq (vhd_get_errno (), EINVAL, "%s", vhd_get_error ());

  /* The search finds a file with the wrong identity where the parent
   * was: EBADMSG, and the message names the call once. */
  cr_assert_eq (symlink (in_dir ("other"), in_dir ("base")), 0);
  cr_assert_null (vhd_open (in_dir ("child"), VHD_OPEN_RDONLY));
  cr_assert_eq (vhd_get_errno (), EBADMSG, "%s", vhd_get_error ());
  cr_assert_null (strstr (vhd_get_error () + 1, "vhd_open:"),
                  "the call's name appears once: %s", vhd_get_error ());

  /* The child is its own parent: a loop, not a hang. */
  cr_assert_null (open_with ("child", VHD_OPEN_RDONLY
                                      | VHD_OPEN_IGNORE_PARENT_ID, "child"));
  cr_assert_eq (vhd_get_errno (), ELOOP, "%s", vhd_get_error ());
}

Test (open_opts, given_parent_vhd) { given_parent (VHD_FORMAT_VHD); }
Test (open_opts, given_parent_vhdx) { given_parent (VHD_FORMAT_VHDX); }

/* How many of this process's descriptors on PATH have O_DIRECT set. */
static int
direct_fds_on (const char *path)
{
  char real[PATH_MAX], link[64], target[PATH_MAX], info[64], line[128];
  int n = 0;

  cr_assert_not_null (realpath (path, real));
  for (int fd = 0; fd < 1024; fd++) {
    snprintf (link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t len = readlink (link, target, sizeof target - 1);
    if (len <= 0)
      continue;
    target[len] = '\0';
    if (strcmp (target, real) != 0)
      continue;
    snprintf (info, sizeof info, "/proc/self/fdinfo/%d", fd);
    FILE *f = fopen (info, "r");
    cr_assert_not_null (f);
    while (fgets (line, sizeof line, f)) {
      unsigned long flags;
      if (sscanf (line, "flags: %lo", &flags) == 1 && (flags & O_DIRECT))
        n++;
    }
    fclose (f);
  }
  return n;
}

/* Aligned and unaligned transfers through a direct handle read back, and
 * the data is there for a buffered reader after close. */
static void
direct (int format)
{
  struct vhd_disk *d;
  uint8_t *buf = NULL, small[1000];

  make ("base", format, NULL, 0, 0x5a);
  make ("img", format, "base", 0, 0);
  d = open_with ("img", VHD_OPEN_DIRECT, NULL);
  if (d == NULL && vhd_get_errno () == ENOTSUP)
    cr_skip_test ("no direct I/O here: %s", vhd_get_error ());
  cr_assert_not_null (d, "%s", vhd_get_error ());
  cr_assert_geq (direct_fds_on (in_dir ("img")), 1);
  cr_assert_geq (direct_fds_on (in_dir ("base")), 1, "the parent too");

  cr_assert_eq (posix_memalign ((void **) &buf, 4096, 1U << 20), 0);
  memset (buf, 0x77, 1U << 20);
  cr_assert_eq (vhd_pwrite (d, buf, 1U << 20, 2U << 20), 0, "%s",
                vhd_get_error ());
  cr_assert_eq (vhd_pwrite (d, buf, 1U << 20, 2U << 20), 0, "in place: %s",
                vhd_get_error ());
  memset (small, 0x33, sizeof small);
  cr_assert_eq (vhd_pwrite (d, small, sizeof small, (2U << 20) + 100), 0,
                "%s", vhd_get_error ());
  cr_assert_eq (vhd_flush (d), 0, "%s", vhd_get_error ());
  memset (buf, 0, 1U << 20);
  cr_assert_eq (vhd_pread (d, buf, 1U << 20, 2U << 20), 0, "%s",
                vhd_get_error ());
  for (size_t i = 0; i < (1U << 20); i++)
    cr_assert_eq (buf[i], i >= 100 && i < 1100 ? 0x33 : 0x77, "byte %zu", i);
  expect_byte (d, 0, 0x5a);
  vhd_close (d);

  d = vhd_open (in_dir ("img"), VHD_OPEN_RDONLY);
  cr_assert_not_null (d, "%s", vhd_get_error ());
  cr_assert_eq (vhd_pread (d, buf, 1U << 20, 2U << 20), 0, "%s",
                vhd_get_error ());
  for (size_t i = 0; i < (1U << 20); i++)
    cr_assert_eq (buf[i], i >= 100 && i < 1100 ? 0x33 : 0x77, "byte %zu", i);
  cr_assert_eq (direct_fds_on (in_dir ("img")), 0);
  vhd_close (d);
  free (buf);
}

Test (open_opts, direct_vhd) { direct (VHD_FORMAT_VHD); }
Test (open_opts, direct_vhdx) { direct (VHD_FORMAT_VHDX); }

/* vhd_create of PATH (FORMAT, dynamic unless raw, SIZE bytes) with the
 * open flags FLAGS for the handle it returns. */
static struct vhd_disk *
create_with (const char *path, int format, unsigned flags)
{
  struct vhd_create_opts *o = vhd_create_opts_new ();
  struct vhd_disk *d;

  cr_assert_not_null (o);
  cr_assert_eq (vhd_create_opts_set_format (o, format), 0);
  cr_assert_eq (vhd_create_opts_set_size (o, SIZE), 0);
  if (format == VHD_FORMAT_VHDX)
    cr_assert_eq (vhd_create_opts_set_block_size (o, 1U << 20), 0);
  cr_assert_eq (vhd_create_opts_set_open_flags (o, flags), 0, "%s",
                vhd_get_error ());
  d = vhd_create (path, o);
  vhd_create_opts_free (o);
  return d;
}

/* vhd_create with VHD_OPEN_DIRECT returns a handle on an O_DIRECT
 * descriptor of the new file; aligned writes through it read back, there
 * and after reopening.  Without the flag the handle has none. */
static void
create_direct (int format)
{
  struct vhd_disk *d;
  uint8_t *buf = NULL;

  d = create_with (in_dir ("direct"), format, VHD_OPEN_DIRECT);
  if (d == NULL && vhd_get_errno () == ENOTSUP)
    cr_skip_test ("no direct I/O here: %s", vhd_get_error ());
  cr_assert_not_null (d, "%s", vhd_get_error ());
  cr_assert_geq (direct_fds_on (in_dir ("direct")), 1,
                 "vhd_create's handle has an O_DIRECT descriptor");

  cr_assert_eq (posix_memalign ((void **) &buf, 4096, 1U << 20), 0);
  memset (buf, 0x6b, 1U << 20);
  cr_assert_eq (vhd_pwrite (d, buf, 1U << 20, 3U << 20), 0, "%s",
                vhd_get_error ());
  memset (buf, 0x2d, 65536);
  cr_assert_eq (vhd_pwrite (d, buf, 65536, 0), 0, "%s", vhd_get_error ());
  cr_assert_eq (vhd_flush (d), 0, "%s", vhd_get_error ());
  expect_byte (d, 0, 0x2d);
  expect_byte (d, (3U << 20) + 4096, 0x6b);
  expect_byte (d, (4U << 20) - 4096, 0x6b);
  expect_byte (d, 4U << 20, 0);
  vhd_close (d);

  d = vhd_open (in_dir ("direct"), VHD_OPEN_RDONLY);
  cr_assert_not_null (d, "%s", vhd_get_error ());
  cr_assert_eq (vhd_get_format (d), format);
  cr_assert_eq (vhd_pread (d, buf, 1U << 20, 3U << 20), 0, "%s",
                vhd_get_error ());
  for (size_t i = 0; i < (1U << 20); i++)
    cr_assert_eq (buf[i], 0x6b, "byte %zu after reopening", i);
  expect_byte (d, 61440, 0x2d);
  vhd_close (d);

  d = create_with (in_dir ("buffered"), format, 0);
  cr_assert_not_null (d, "%s", vhd_get_error ());
  cr_assert_eq (direct_fds_on (in_dir ("buffered")), 0,
                "open flags 0: no O_DIRECT descriptor");
  vhd_close (d);
  free (buf);
}

Test (open_opts, create_direct_raw) { create_direct (VHD_FORMAT_RAW); }
Test (open_opts, create_direct_vhd) { create_direct (VHD_FORMAT_VHD); }
Test (open_opts, create_direct_vhdx) { create_direct (VHD_FORMAT_VHDX); }

/* Where the file system has no O_DIRECT, vhd_create with VHD_OPEN_DIRECT
 * fails with ENOTSUP and leaves no file; where it has, the handle is
 * direct.  /dev/shm (tmpfs) is either, by kernel version. */
Test (open_opts, create_direct_needs_a_capable_file_system)
{
  char path[] = "/dev/shm/libvhd-cdirect-XXXXXX";
  int fd = mkstemp (path);
  struct vhd_disk *d;

  if (fd == -1)
    cr_skip_test ("no /dev/shm: %s", strerror (errno));
  close (fd);
  unlink (path);
  d = create_with (path, VHD_FORMAT_VHDX, VHD_OPEN_DIRECT);
  if (d == NULL) {
    cr_expect_eq (vhd_get_errno (), ENOTSUP, "%s", vhd_get_error ());
    cr_expect (strstr (vhd_get_error (), "vhd_create: ") == vhd_get_error (),
               "%s", vhd_get_error ());
    cr_expect_neq (access (path, F_OK), 0, "a failed create leaves no file");
  }
  else {
    cr_expect_geq (direct_fds_on (path), 1);
    vhd_close (d);
  }
  unlink (path);
}

Test (open_opts, direct_needs_a_capable_file_system)
{
  /* /dev/shm is tmpfs: O_DIRECT is refused there on older kernels and
   * accepted on newer ones; either way the answer is clean. */
  struct vhd_create_opts *o = vhd_create_opts_new ();
  char path[] = "/dev/shm/libvhd-direct-XXXXXX";
  int fd = mkstemp (path);
  struct vhd_disk *d;

  cr_assert_geq (fd, 0);
  close (fd);
  unlink (path);
  cr_assert_eq (vhd_create_opts_set_size (o, SIZE), 0);
  d = vhd_create (path, o);
  cr_assert_not_null (d, "%s", vhd_get_error ());
  vhd_close (d);
  vhd_create_opts_free (o);
  d = vhd_open (path, VHD_OPEN_DIRECT);
  if (d == NULL)
    cr_expect_eq (vhd_get_errno (), ENOTSUP, "%s", vhd_get_error ());
  vhd_close (d);
  unlink (path);
}

Test (open_opts, version_and_features)
{
  char want[32];

  snprintf (want, sizeof want, "%d.%d.%d", VHD_VERSION_MAJOR,
            VHD_VERSION_MINOR, VHD_VERSION_MICRO);
  cr_assert_str_eq (vhd_get_version (), want);
  cr_assert (VHD_CHECK_VERSION (0, 1, 0));
  cr_assert (VHD_CHECK_VERSION (VHD_VERSION_MAJOR, VHD_VERSION_MINOR,
                                VHD_VERSION_MICRO));
  cr_assert (!VHD_CHECK_VERSION (VHD_VERSION_MAJOR, VHD_VERSION_MINOR + 1, 0));
  cr_assert (!VHD_CHECK_VERSION (VHD_VERSION_MAJOR + 1, 0, 0));
#if !defined(VHD_HAVE_AIO) || !defined(VHD_HAVE_OPEN_OPTS)                 \
  || !defined(VHD_HAVE_BLOCK_STATUS) || !defined(VHD_HAVE_ZEROES)
  cr_assert_fail ("a feature macro is missing");
#endif
}
