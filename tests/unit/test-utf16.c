/* test-utf16.c: UTF-8 <-> UTF-16 for parent names and locators. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

Test (utf16, ascii_little_endian)
{
  uint8_t out[16];
  cr_assert_eq (utf8_to_utf16 ("a\\b", out, sizeof out, false), 6);
  cr_expect_arr_eq (out, ((uint8_t[]) { 'a', 0, '\\', 0, 'b', 0 }), 6);
}

Test (utf16, ascii_big_endian)
{
  uint8_t out[16];
  cr_assert_eq (utf8_to_utf16 ("ab", out, sizeof out, true), 4);
  cr_expect_arr_eq (out, ((uint8_t[]) { 0, 'a', 0, 'b' }), 4);
}

Test (utf16, roundtrip_with_surrogates)
{
  const char *s = "d\xc3\xa9j\xc3\xa0-\xe2\x82\xac-\xf0\x9f\x98\x80.vhd";
  uint8_t buf[64];
  ssize_t n = utf8_to_utf16 (s, buf, sizeof buf, false);
  cr_assert_gt (n, 0);
  char *back = utf16_to_utf8 (buf, (size_t) n, false);
  cr_assert_not_null (back);
  cr_expect_str_eq (back, s);
  free (back);
}

Test (utf16, stops_at_nul_unit)
{
  const uint8_t in[] = { 'x', 0, 0, 0, 'y', 0 };
  char *s = utf16_to_utf8 (in, sizeof in, false);
  cr_assert_not_null (s);
  cr_expect_str_eq (s, "x");
  free (s);
}

Test (utf16, rejects_lone_surrogate)
{
  const uint8_t in[] = { 0x00, 0xdc, 'a', 0 };
  cr_expect_null (utf16_to_utf8 (in, sizeof in, false));
  cr_expect_eq (vhd_get_errno (), EILSEQ);
}

Test (utf16, rejects_bad_utf8)
{
  uint8_t out[16];
  cr_expect_eq (utf8_to_utf16 ("\xff", out, sizeof out, false), -1);
  cr_expect_eq (vhd_get_errno (), EILSEQ);
}

Test (utf16, too_long_for_field)
{
  uint8_t out[4];
  cr_expect_eq (utf8_to_utf16 ("abc", out, sizeof out, false), -1);
  cr_expect_eq (vhd_get_errno (), ENAMETOOLONG);
}
