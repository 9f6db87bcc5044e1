/* guid.c: GUID byte order, comparison and text form (see guid.h). */
#include <stdio.h>
#include <string.h>

#include "guid.h"

/* The byte permutation between the two orders is its own inverse. */
static void
swap_fields (const uint8_t *in, uint8_t *out)
{
  uint8_t t[GUID_SIZE];

  t[0] = in[3], t[1] = in[2], t[2] = in[1], t[3] = in[0];
  t[4] = in[5], t[5] = in[4];
  t[6] = in[7], t[7] = in[6];
  memcpy (t + 8, in + 8, 8);
  memcpy (out, t, GUID_SIZE);
}

void
guid_decode (const uint8_t *disk, uint8_t guid[GUID_SIZE])
{
  swap_fields (disk, guid);
}

void
guid_encode (const uint8_t guid[GUID_SIZE], uint8_t *disk)
{
  swap_fields (guid, disk);
}

bool
guid_eq (const uint8_t *a, const uint8_t *b)
{
  return memcmp (a, b, GUID_SIZE) == 0;
}

bool
guid_is_zero (const uint8_t *g)
{
  static const uint8_t zero[GUID_SIZE];

  return guid_eq (g, zero);
}

void
guid_format (const uint8_t g[GUID_SIZE], bool braces, char out[GUID_STR_SIZE])
{
  snprintf (out, GUID_STR_SIZE,
            "%s%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
            "%02x%02x%02x%02x%02x%02x%s",
            braces ? "{" : "", g[0], g[1], g[2], g[3], g[4], g[5], g[6],
            g[7], g[8], g[9], g[10], g[11], g[12], g[13], g[14], g[15],
            braces ? "}" : "");
}

static int
hex_value (char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

int
guid_parse (const char *s, uint8_t guid[GUID_SIZE])
{
  bool braces = s[0] == '{';
  size_t i, n = 0;

  if (braces)
    s++;
  for (i = 0; n < GUID_SIZE; i++) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-')
        return -1;
      continue;
    }
    int hi = hex_value (s[i]), lo = hi < 0 ? -1 : hex_value (s[i + 1]);
    if (hi < 0 || lo < 0)
      return -1;
    guid[n++] = (uint8_t) (hi << 4 | lo);
    i++;
  }
  if (braces ? (s[i] != '}' || s[i + 1] != '\0') : s[i] != '\0')
    return -1;
  return 0;
}
