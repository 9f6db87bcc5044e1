/* test-api-errors.c: the error contract of the public calls.
 * Each failure returns -1/NULL, sets errno, and leaves a message that
 * starts with the public function's name. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libvhd.h"

static void
expect_error (const char *context, int errnum)
{
  const char *msg = vhd_get_error ();
  cr_assert_not_null (msg);
  cr_expect_eq (vhd_get_errno (), errnum, "errno %d, want %d (%s)",
                vhd_get_errno (), errnum, msg);
  cr_expect_eq (strncmp (msg, context, strlen (context)), 0,
                "message \"%s\" should start with %s", msg, context);
}

/* A raw file of `size` bytes, removed at exit of the test process. */
static char *
make_raw (uint64_t size)
{
  static char path[] = "/tmp/libvhd-test-XXXXXX";
  int fd = mkstemp (path);
  cr_assert_neq (fd, -1);
  cr_assert_eq (ftruncate (fd, (off_t) size), 0);
  close (fd);
  return path;
}

Test (errors, open_null_path)
{
  cr_assert_null (vhd_open (NULL, 0));
  expect_error ("vhd_open: ", EFAULT);
}

Test (errors, open_missing_file)
{
  cr_assert_null (vhd_open ("/nonexistent/file.vhd", VHD_OPEN_RDONLY));
  expect_error ("vhd_open: ", ENOENT);
  cr_expect (strstr (vhd_get_error (), "/nonexistent/file.vhd") != NULL);
}

Test (errors, open_bad_flags)
{
  cr_assert_null (vhd_open ("/dev/null", 0x80000000U));
  expect_error ("vhd_open: ", EINVAL);
}

Test (errors, close_null_is_fine)
{
  vhd_close (NULL);
}

Test (errors, null_disk_everywhere)
{
  uint8_t b[1];
  char id[37];

  cr_expect_eq (vhd_get_size (NULL), -1);
  expect_error ("vhd_get_size: ", EFAULT);
  cr_expect_eq (vhd_pread (NULL, b, 1, 0), -1);
  expect_error ("vhd_pread: ", EFAULT);
  cr_expect_eq (vhd_pwrite (NULL, b, 1, 0), -1);
  expect_error ("vhd_pwrite: ", EFAULT);
  cr_expect_eq (vhd_flush (NULL), -1);
  expect_error ("vhd_flush: ", EFAULT);
  cr_expect_eq (vhd_get_format (NULL), -1);
  expect_error ("vhd_get_format: ", EFAULT);
  cr_expect_eq (vhd_get_id (NULL, id), -1);
  expect_error ("vhd_get_id: ", EFAULT);
  cr_expect_eq (vhd_block_status (NULL, 0, 1, NULL, NULL), -1);
  expect_error ("vhd_block_status: ", EFAULT);
  cr_expect_eq (vhd_copy (NULL, NULL, NULL, NULL), -1);
  expect_error ("vhd_copy: ", EFAULT);
}

static int
no_extent (void *opaque, uint64_t offset, uint64_t length, unsigned state,
           unsigned depth)
{
  return 0;
}

/* The rest of the calls that take a handle or options: NULL is EFAULT
 * with the call's own name; bad flags are EINVAL. */
Test (errors, every_other_call_refuses_null)
{
  char want[64];

#define CHECK_NULL(name, call)                                                \
  do {                                                                        \
    cr_expect_eq ((long) (call), -1, "%s", name);                            \
    snprintf (want, sizeof want, "%s: ", name);                               \
    expect_error (want, EFAULT);                                              \
  } while (0)
  CHECK_NULL ("vhd_get_type", vhd_get_type (NULL));
  CHECK_NULL ("vhd_get_block_size", vhd_get_block_size (NULL));
  CHECK_NULL ("vhd_get_logical_sector_size",
              vhd_get_logical_sector_size (NULL));
  CHECK_NULL ("vhd_get_physical_sector_size",
              vhd_get_physical_sector_size (NULL));
  CHECK_NULL ("vhd_get_file_size", vhd_get_file_size (NULL));
  CHECK_NULL ("vhd_get_allocated_bytes", vhd_get_allocated_bytes (NULL));
  CHECK_NULL ("vhd_get_log_dirty", vhd_get_log_dirty (NULL));
  CHECK_NULL ("vhd_write_zeroes", vhd_write_zeroes (NULL, 0, 1, 0));
  CHECK_NULL ("vhd_discard", vhd_discard (NULL, 0, 1));
  CHECK_NULL ("vhd_block_status_ex",
              vhd_block_status_ex (NULL, 0, 1, 0, no_extent, NULL));
  CHECK_NULL ("vhd_resize", vhd_resize (NULL, 4096, 0));
  CHECK_NULL ("vhd_compact", vhd_compact (NULL, NULL, NULL));
  CHECK_NULL ("vhd_compact_ex",
              vhd_compact_ex (NULL, VHD_COMPACT_NO_MOVE, NULL, NULL));
  CHECK_NULL ("vhd_commit", vhd_commit (NULL, NULL, NULL));
  CHECK_NULL ("vhd_rebase", vhd_rebase (NULL, "x", 0));
  CHECK_NULL ("vhd_check", vhd_check (NULL, 0, NULL, NULL));
  CHECK_NULL ("vhd_create_opts_set_parent",
              vhd_create_opts_set_parent (NULL, "x"));
  CHECK_NULL ("vhd_create_opts_set_open_flags",
              vhd_create_opts_set_open_flags (NULL, VHD_OPEN_DIRECT));
  CHECK_NULL ("vhd_open_opts_set_parent",
              vhd_open_opts_set_parent (NULL, "x"));
  CHECK_NULL ("vhd_open_opts_set_flags", vhd_open_opts_set_flags (NULL, 0));
#undef CHECK_NULL
  cr_expect_null (vhd_get_format_name (NULL));
  expect_error ("vhd_get_format_name: ", EFAULT);
  cr_expect_null (vhd_get_filename (NULL));
  expect_error ("vhd_get_filename: ", EFAULT);
  cr_expect_null (vhd_get_parent (NULL));
  expect_error ("vhd_get_parent: ", EFAULT);
  cr_expect_null (vhd_get_parent_hint (NULL));
  expect_error ("vhd_get_parent_hint: ", EFAULT);
  cr_expect_null (vhd_get_creator (NULL));
  expect_error ("vhd_get_creator: ", EFAULT);
  cr_expect_null (vhd_open_with_opts (NULL, NULL));
  expect_error ("vhd_open_with_opts: ", EFAULT);
  vhd_create_opts_free (NULL);
  vhd_open_opts_free (NULL);
}

Test (errors, bad_flags_everywhere)
{
  struct vhd_disk *d = vhd_open (make_raw (1U << 20), 0);

  cr_assert_not_null (d, "%s", vhd_get_error ());
  cr_expect_eq (vhd_write_zeroes (d, 0, 512, 0x80), -1);
  expect_error ("vhd_write_zeroes: ", EINVAL);
  cr_expect_eq (vhd_block_status_ex (d, 0, 512, 0x80, no_extent, NULL), -1);
  expect_error ("vhd_block_status_ex: ", EINVAL);
  cr_expect_eq (vhd_block_status_ex (d, 0, 512, 0, NULL, NULL), -1);
  expect_error ("vhd_block_status_ex: ", EFAULT);
  cr_expect_eq (vhd_block_status_ex (d, 1U << 20, 1, 0, no_extent, NULL), -1);
  expect_error ("vhd_block_status_ex: ", ERANGE);
  cr_expect_eq (vhd_resize (d, 4096, 0x80), -1);
  expect_error ("vhd_resize: ", EINVAL);
  cr_expect_eq (vhd_rebase (d, "x", 0x80), -1);
  expect_error ("vhd_rebase: ", EINVAL);
  cr_expect_eq (vhd_check ("/nonexistent", 0x80, NULL, NULL), -1);
  expect_error ("vhd_check: ", EINVAL);
  cr_expect_eq (vhd_compact_ex (d, 0x2, NULL, NULL), -1);
  expect_error ("vhd_compact_ex: ", EINVAL);
  cr_expect_eq (vhd_compact_ex (d, 0x80000000U | VHD_COMPACT_NO_MOVE, NULL,
                                NULL), -1);
  expect_error ("vhd_compact_ex: ", EINVAL);
  vhd_close (d);
}

/* Compaction writes: a read-only handle is refused before anything is
 * read, whichever entry point and flags. */
Test (errors, compact_readonly_handle)
{
  char dir[] = "/tmp/libvhd-compact-XXXXXX", path[64], cmd[96];
  struct vhd_create_opts *o = vhd_create_opts_new ();
  struct vhd_disk *d;

  cr_assert_not_null (mkdtemp (dir));
  snprintf (path, sizeof path, "%s/dyn.vhd", dir);
  cr_assert_eq (vhd_create_opts_set_size (o, 4U << 20), 0);
  d = vhd_create (path, o);
  cr_assert_not_null (d, "%s", vhd_get_error ());
  vhd_close (d);
  vhd_create_opts_free (o);

  d = vhd_open (path, VHD_OPEN_RDONLY);
  cr_assert_not_null (d, "%s", vhd_get_error ());
  cr_expect_eq (vhd_compact_ex (d, VHD_COMPACT_NO_MOVE, NULL, NULL), -1);
  expect_error ("vhd_compact_ex: ", EROFS);
  cr_expect (strstr (vhd_get_error (), path) != NULL,
             "the message names the file: %s", vhd_get_error ());
  cr_expect_eq (vhd_compact_ex (d, 0, NULL, NULL), -1);
  expect_error ("vhd_compact_ex: ", EROFS);
  cr_expect_eq (vhd_compact (d, NULL, NULL), -1);
  expect_error ("vhd_compact: ", EROFS);
  vhd_close (d);

  /* The same image read-write: both flag values are accepted. */
  d = vhd_open (path, 0);
  cr_assert_not_null (d, "%s", vhd_get_error ());
  cr_expect_eq (vhd_compact_ex (d, VHD_COMPACT_NO_MOVE, NULL, NULL), 0, "%s",
                vhd_get_error ());
  cr_expect_eq (vhd_compact_ex (d, 0, NULL, NULL), 0, "%s", vhd_get_error ());
  vhd_close (d);
  snprintf (cmd, sizeof cmd, "rm -rf %s", dir);
  cr_expect_eq (system (cmd), 0);
}

Test (errors, zero_length_calls_succeed)
{
  struct vhd_disk *d = vhd_open (make_raw (1U << 20), 0);
  uint8_t b[1];

  cr_assert_not_null (d, "%s", vhd_get_error ());
  cr_expect_eq (vhd_pread (d, b, 0, 1U << 20), 0, "%s", vhd_get_error ());
  cr_expect_eq (vhd_pwrite (d, b, 0, 1U << 20), 0, "%s", vhd_get_error ());
  cr_expect_eq (vhd_write_zeroes (d, 1U << 20, 0, 0), 0, "%s",
                vhd_get_error ());
  cr_expect_eq (vhd_write_zeroes (d, 100, 0, VHD_ZERO_FAST), 0, "%s",
                vhd_get_error ());
  cr_expect_eq (vhd_discard (d, 0, 0), 0, "%s", vhd_get_error ());
  vhd_close (d);
}

Test (errors, read_past_end)
{
  struct vhd_disk *d = vhd_open (make_raw (4096), VHD_OPEN_RDONLY);
  uint8_t buf[512];

  cr_assert_not_null (d, "%s", vhd_get_error ());
  cr_expect_eq (vhd_pread (d, buf, sizeof buf, 4096 - 256), -1);
  expect_error ("vhd_pread: ", ERANGE);
  cr_expect_eq (vhd_pread (d, buf, sizeof buf, UINT64_MAX - 10), -1);
  expect_error ("vhd_pread: ", ERANGE);
  cr_expect_eq (vhd_pread (d, NULL, 1, 0), -1);
  expect_error ("vhd_pread: ", EFAULT);
  vhd_close (d);
}

Test (errors, write_to_readonly_handle)
{
  char *path = make_raw (4096);
  struct vhd_disk *d = vhd_open (path, VHD_OPEN_RDONLY);
  uint8_t buf[512] = { 1 };

  cr_assert_not_null (d, "%s", vhd_get_error ());
  cr_expect_eq (vhd_pwrite (d, buf, sizeof buf, 0), -1);
  expect_error ("vhd_pwrite: ", EROFS);
  vhd_close (d);
  unlink (path);
}

Test (errors, raw_read_write_unaligned)
{
  char *path = make_raw (10000); /* not a sector multiple */
  struct vhd_disk *d = vhd_open (path, 0);
  uint8_t in[3000], out[3000];

  cr_assert_not_null (d, "%s", vhd_get_error ());
  cr_expect_eq (vhd_get_format (d), VHD_FORMAT_RAW);
  cr_expect_eq (vhd_get_size (d), 10000);
  for (size_t i = 0; i < sizeof in; i++)
    in[i] = (uint8_t) (i * 7 + 3);
  cr_assert_eq (vhd_pwrite (d, in, sizeof in, 7000), 0, "%s",
                vhd_get_error ());
  cr_assert_eq (vhd_pread (d, out, sizeof out, 7000), 0, "%s",
                vhd_get_error ());
  cr_expect_arr_eq (in, out, sizeof in);
  cr_expect_eq (vhd_flush (d), 0);
  vhd_close (d);
  unlink (path);
}

Test (errors, create_opts_validation)
{
  struct vhd_create_opts *o = vhd_create_opts_new ();

  cr_assert_not_null (o);
  cr_expect_eq (vhd_create_opts_set_format (o, 99), -1);
  expect_error ("vhd_create_opts_set_format: ", EINVAL);
  cr_expect_eq (vhd_create_opts_set_type (o, VHD_TYPE_DIFFERENCING), -1);
  expect_error ("vhd_create_opts_set_type: ", EINVAL);
  cr_expect_eq (vhd_create_opts_set_size (o, 0), -1);
  expect_error ("vhd_create_opts_set_size: ", ERANGE);
  cr_expect_eq (vhd_create_opts_set_block_size (o, 3000), -1);
  expect_error ("vhd_create_opts_set_block_size: ", EINVAL);
  cr_expect_eq (vhd_create_opts_set_sector_size (o, 1024, 512), -1);
  expect_error ("vhd_create_opts_set_sector_size: ", EINVAL);
  cr_expect_eq (vhd_create_opts_set_size (NULL, 1), -1);
  expect_error ("vhd_create_opts_set_size: ", EFAULT);
  /* Only VHD_OPEN_DIRECT may be asked for the handle vhd_create returns. */
  cr_expect_eq (vhd_create_opts_set_open_flags (o, VHD_OPEN_RDONLY), -1);
  expect_error ("vhd_create_opts_set_open_flags: ", EINVAL);
  cr_expect_eq (vhd_create_opts_set_open_flags (o, VHD_OPEN_DIRECT
                                                   | VHD_OPEN_RDONLY), -1);
  expect_error ("vhd_create_opts_set_open_flags: ", EINVAL);
  cr_expect_eq (vhd_create_opts_set_open_flags (o, 0x80000000U), -1);
  expect_error ("vhd_create_opts_set_open_flags: ", EINVAL);
  cr_expect_eq (vhd_create_opts_set_open_flags (o, VHD_OPEN_DIRECT), 0, "%s",
                vhd_get_error ());
  cr_expect_eq (vhd_create_opts_set_open_flags (o, 0), 0, "%s",
                vhd_get_error ());
  vhd_create_opts_free (o);
  vhd_create_opts_free (NULL);
}

/* A refused open flag leaves the options as they were: a create with
 * them still works and gives a plain read-write handle. */
Test (errors, create_open_flags_refused_keep_options)
{
  char path[] = "/tmp/libvhd-test-openflags.vhdx";
  struct vhd_create_opts *o = vhd_create_opts_new ();
  struct vhd_disk *d;
  uint8_t buf[512] = { 9 };

  unlink (path);
  cr_assert_eq (vhd_create_opts_set_format (o, VHD_FORMAT_VHDX), 0);
  cr_assert_eq (vhd_create_opts_set_size (o, 4U << 20), 0);
  cr_expect_eq (vhd_create_opts_set_open_flags (o, VHD_OPEN_RDONLY), -1);
  expect_error ("vhd_create_opts_set_open_flags: ", EINVAL);
  d = vhd_create (path, o);
  cr_assert_not_null (d, "%s", vhd_get_error ());
  cr_expect_eq (vhd_pwrite (d, buf, sizeof buf, 0), 0, "not read-only: %s",
                vhd_get_error ());
  vhd_close (d);
  vhd_create_opts_free (o);
  unlink (path);
}

Test (errors, child_sector_size_must_be_the_parents)
{
  char dir[] = "/tmp/libvhd-sector-XXXXXX", base[64], child[64], cmd[96];
  struct vhd_create_opts *o = vhd_create_opts_new ();
  struct vhd_disk *d;

  cr_assert_not_null (mkdtemp (dir));
  snprintf (base, sizeof base, "%s/base.vhdx", dir);
  snprintf (child, sizeof child, "%s/child.vhdx", dir);
  cr_assert_eq (vhd_create_opts_set_format (o, VHD_FORMAT_VHDX), 0);
  cr_assert_eq (vhd_create_opts_set_size (o, 8U << 20), 0);
  d = vhd_create (base, o);
  cr_assert_not_null (d, "%s", vhd_get_error ());
  vhd_close (d);
  cr_assert_eq (vhd_create_opts_set_parent (o, base), 0);
  cr_assert_eq (vhd_create_opts_set_sector_size (o, 4096, 4096), 0);
  cr_expect_null (vhd_create (child, o));
  expect_error ("vhd_create: ", EINVAL);
  cr_expect_neq (access (child, F_OK), 0, "nothing left behind");
  cr_assert_eq (vhd_create_opts_set_sector_size (o, 512, 4096), 0);
  d = vhd_create (child, o);
  cr_assert_not_null (d, "%s", vhd_get_error ());
  cr_expect_eq (vhd_get_logical_sector_size (d), 512);
  vhd_close (d);
  vhd_create_opts_free (o);
  snprintf (cmd, sizeof cmd, "rm -rf %s", dir);
  cr_expect_eq (system (cmd), 0);
}

Test (errors, create_refuses_existing_file)
{
  char *path = make_raw (4096);
  struct vhd_create_opts *o = vhd_create_opts_new ();

  cr_assert_eq (vhd_create_opts_set_size (o, 1 << 20), 0);
  cr_expect_null (vhd_create (path, o));
  expect_error ("vhd_create: ", EEXIST);
  vhd_create_opts_free (o);
  unlink (path);
}

Test (errors, create_without_size)
{
  char path[] = "/tmp/libvhd-test-nosize.vhd";
  struct vhd_create_opts *o = vhd_create_opts_new ();

  unlink (path);
  cr_expect_null (vhd_create (path, o));
  expect_error ("vhd_create: ", EINVAL);
  cr_expect_eq (access (path, F_OK), -1, "a failed create leaves no file");
  vhd_create_opts_free (o);
}

Test (errors, version)
{
  cr_expect_str_eq (vhd_get_version (), "0.1.0");
}
