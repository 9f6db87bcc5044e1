/* test-vhd-locator.c: VHD parent locator entries and their paths, against
 * the locators Windows wrote in corpus dfvfs-fat-differential.vhd. */
#undef NDEBUG /* Keep test strong */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "unit/golden-vhd.h"
#include "vhd/dynheader.h"
#include "vhd/locator.h"

static char *
path_of (uint32_t code, const void *data, size_t len)
{
  return vhd_locator_path (code, data, len);
}

Test (vhd_locator, windows_w2ku)
{
  char *p = path_of (VHD_PLATFORM_W2KU, win_diff_w2ku_data,
                     sizeof win_diff_w2ku_data);

  cr_assert_not_null (p, "%s", vhd_get_error ());
  cr_expect_str_eq (p, "C:\\Projects\\dfvfs\\test_data\\fat-parent.vhd");
  free (p);
}

Test (vhd_locator, windows_w2ru)
{
  char *p = path_of (VHD_PLATFORM_W2RU, win_diff_w2ru_data,
                     sizeof win_diff_w2ru_data);

  cr_assert_not_null (p, "%s", vhd_get_error ());
  cr_expect_str_eq (p, ".\\fat-parent.vhd");
  free (p);
}

Test (vhd_locator, encode_matches_windows)
{
  uint8_t out[256];
  ssize_t n = vhd_locator_encode_path ("./fat-parent.vhd", out, sizeof out);

  cr_assert_eq (n, (ssize_t) sizeof win_diff_w2ru_data);
  cr_expect_eq (memcmp (out, win_diff_w2ru_data, (size_t) n), 0);
}

Test (vhd_locator, encode_too_long)
{
  uint8_t out[8];

  cr_expect_eq (vhd_locator_encode_path ("abcde", out, sizeof out), -1);
  cr_expect_eq (vhd_get_errno (), ENAMETOOLONG);
}

Test (vhd_locator, entry_roundtrip)
{
  struct vhd_dynheader h;
  struct vhd_locator l;
  uint8_t out[VHD_LOC_SIZE];
  unsigned i;

  cr_assert_eq (vhd_dynheader_decode (win_diff_header, &h), 0);
  for (i = 0; i < VHD_LOCATOR_COUNT; i++) {
    const uint8_t *in = win_diff_header + VHD_DYN_PARENT_LOCATORS
                        + i * VHD_LOC_SIZE;
    vhd_locator_decode (in, &l);
    vhd_locator_encode (&l, out);
    cr_expect_eq (memcmp (in, out, VHD_LOC_SIZE), 0, "entry %u", i);
  }
}

struct space_case {
  uint32_t stored;
  uint64_t bytes;
};

/* Windows writes bytes (4096, 65536); the spec says sectors (1, 2). */
ParameterizedTestParameters (vhd_locator, data_space)
{
  static struct space_case cases[] = {
    { 4096, 4096 }, { 65536, 65536 }, { 512, 512 }, { 1, 512 },
    { 2, 1024 },    { 0, 0 },         { 513, 513 * 512ULL },
    { UINT32_MAX, UINT32_MAX * 512ULL },
  };

  return cr_make_param_array (struct space_case, cases,
                              sizeof cases / sizeof cases[0]);
}

ParameterizedTest (struct space_case *c, vhd_locator, data_space)
{
  cr_expect_eq (vhd_locator_space_bytes (c->stored), c->bytes,
                "stored %u", c->stored);
}

Test (vhd_locator, macx_url)
{
  static const char url[] = "file://localhost/Users/me/My%20Disks/base.vhd";
  char *p = path_of (VHD_PLATFORM_MACX, url, strlen (url));

  cr_assert_not_null (p, "%s", vhd_get_error ());
  cr_expect_str_eq (p, "/Users/me/My Disks/base.vhd");
  free (p);
}

Test (vhd_locator, macx_url_without_host_and_with_nul)
{
  static const char url[] = "file:///tmp/base%2.vhd"; /* bad escape kept */
  char *p = path_of (VHD_PLATFORM_MACX, url, sizeof url);

  cr_assert_not_null (p, "%s", vhd_get_error ());
  cr_expect_str_eq (p, "/tmp/base%2.vhd");
  free (p);
}

Test (vhd_locator, macx_rejects_other_urls)
{
  static const char url[] = "http://example.com/base.vhd";

  cr_expect_null (path_of (VHD_PLATFORM_MACX, url, strlen (url)));
  cr_expect_eq (vhd_get_errno (), EBADMSG);
  cr_expect (strstr (vhd_get_error (), "file://") != NULL);
}

Test (vhd_locator, rejects_odd_utf16_length)
{
  cr_expect_null (path_of (VHD_PLATFORM_W2KU, win_diff_w2ku_data, 5));
  cr_expect_eq (vhd_get_errno (), EBADMSG);
  cr_expect (strstr (vhd_get_error (), "W2ku") != NULL);
}

Test (vhd_locator, rejects_unpaired_surrogate)
{
  static const uint8_t bad[] = { 'a', 0, 0x00, 0xd8, 'b', 0 };

  cr_expect_null (path_of (VHD_PLATFORM_W2RU, bad, sizeof bad));
  cr_expect_eq (vhd_get_errno (), EILSEQ);
}

Test (vhd_locator, deprecated_codes_hold_no_path)
{
  cr_expect_null (path_of (VHD_PLATFORM_WI2K, "C:\\x", 4));
  cr_expect_eq (vhd_get_errno (), EINVAL);
  cr_expect (strstr (vhd_get_error (), "Wi2k") != NULL);
}

Test (vhd_locator, platform_names)
{
  char name[5];

  vhd_platform_name (VHD_PLATFORM_W2RU, name);
  cr_expect_str_eq (name, "W2ru");
  vhd_platform_name (0x01020304, name);
  cr_expect_str_eq (name, "????");
}
