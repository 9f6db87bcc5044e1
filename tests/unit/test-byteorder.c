/* test-byteorder.c: the on-disk integer accessors. */
#include <criterion/criterion.h>

#include "byteorder.h"

Test (byteorder, big_endian_roundtrip)
{
  uint8_t b[8];
  put_be64 (b, UINT64_C (0x0102030405060708));
  cr_expect_arr_eq (b, ((uint8_t[]) { 1, 2, 3, 4, 5, 6, 7, 8 }), 8);
  cr_expect_eq (get_be64 (b), UINT64_C (0x0102030405060708));
  cr_expect_eq (get_be32 (b), 0x01020304U);
  cr_expect_eq (get_be16 (b), 0x0102);
}

Test (byteorder, little_endian_roundtrip)
{
  uint8_t b[8];
  put_le64 (b, UINT64_C (0x0102030405060708));
  cr_expect_arr_eq (b, ((uint8_t[]) { 8, 7, 6, 5, 4, 3, 2, 1 }), 8);
  cr_expect_eq (get_le64 (b), UINT64_C (0x0102030405060708));
  cr_expect_eq (get_le32 (b + 4), 0x01020304U);
  cr_expect_eq (get_le16 (b + 6), 0x0102);
}

Test (byteorder, unaligned_access)
{
  uint8_t b[11] = { 0 };
  put_be32 (b + 3, 0xdeadbeefU);
  cr_expect_eq (get_be32 (b + 3), 0xdeadbeefU);
  put_le16 (b + 9, 0xbeef);
  cr_expect_eq (get_le16 (b + 9), 0xbeef);
}
