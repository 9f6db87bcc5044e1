/* crc32c.c: CRC-32C, with the SSE4.2 crc32 instruction where the CPU has
 * it and a byte-wise table otherwise.
 *
 * Both paths compute the same reflected CRC (polynomial 0x82F63B78,
 * initial and final XOR 0xFFFFFFFF), as RFC 3720 and MS-VHDX use it.  The
 * table is built once, on first use, under pthread_once; the instruction
 * is chosen with __builtin_cpu_supports, so the library runs on any
 * x86-64 and elsewhere.
 */
#include <pthread.h>

#include "crc32c.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <nmmintrin.h>
#include <string.h>
#define HAVE_SSE42_PATH 1
#endif

#define POLY 0x82f63b78U

static uint32_t table[256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void
make_table (void)
{
  uint32_t i, k, c;

  for (i = 0; i < 256; i++) {
    c = i;
    for (k = 0; k < 8; k++)
      c = c & 1 ? (c >> 1) ^ POLY : c >> 1;
    table[i] = c;
  }
}

static uint32_t
crc32c_sw (uint32_t state, const uint8_t *p, size_t len)
{
  pthread_once (&table_once, make_table);
  while (len--)
    state = table[(state ^ *p++) & 0xff] ^ (state >> 8);
  return state;
}

#ifdef HAVE_SSE42_PATH
__attribute__ ((target ("sse4.2"))) static uint32_t
crc32c_hw (uint32_t state, const uint8_t *p, size_t len)
{
  uint64_t s = state, v;

  while (len && ((uintptr_t) p & 7)) {
    s = _mm_crc32_u8 ((uint32_t) s, *p++);
    len--;
  }
  while (len >= 8) {
    memcpy (&v, p, 8);
    s = _mm_crc32_u64 (s, v);
    p += 8;
    len -= 8;
  }
  while (len--)
    s = _mm_crc32_u8 ((uint32_t) s, *p++);
  return (uint32_t) s;
}

static int
have_sse42 (void)
{
  static int cached = -1;

  if (cached < 0) {
    __builtin_cpu_init ();
    cached = __builtin_cpu_supports ("sse4.2") ? 1 : 0;
  }
  return cached;
}
#endif

static uint32_t
crc32c_raw (uint32_t state, const uint8_t *p, size_t len)
{
#ifdef HAVE_SSE42_PATH
  if (have_sse42 ())
    return crc32c_hw (state, p, len);
#endif
  return crc32c_sw (state, p, len);
}

uint32_t
crc32c (uint32_t crc, const void *buf, size_t len)
{
  return ~crc32c_raw (~crc, buf, len);
}

uint32_t
vhdx_checksum (const uint8_t *buf, size_t len, size_t csum_off)
{
  static const uint8_t zero[4];
  uint32_t crc;

  crc = crc32c (0, buf, csum_off);
  crc = crc32c (crc, zero, sizeof zero);
  return crc32c (crc, buf + csum_off + 4, len - csum_off - 4);
}
