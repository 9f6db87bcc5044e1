/* utf16.c: UTF-8 <-> UTF-16 for parent names and locators.
 *
 * VHD stores the parent's name in UTF-16 big-endian and its locator paths
 * in UTF-16 little-endian; VHDX uses little-endian throughout.  Invalid
 * input (lone surrogates, bad UTF-8) is refused rather than guessed at.
 */
#include <errno.h>
#include <stdlib.h>

#include "byteorder.h"
#include "internal.h"

static void
put_unit (uint8_t *p, uint16_t u, bool big_endian)
{
  if (big_endian)
    put_be16 (p, u);
  else
    put_le16 (p, u);
}

/* Decode one UTF-8 sequence at *s; advances *s.  -1 when invalid. */
static long
next_utf8 (const unsigned char **s)
{
  const unsigned char *p = *s;
  unsigned len, i;
  long cp;

  if (p[0] < 0x80)
    len = 1, cp = p[0];
  else if ((p[0] & 0xe0) == 0xc0)
    len = 2, cp = p[0] & 0x1f;
  else if ((p[0] & 0xf0) == 0xe0)
    len = 3, cp = p[0] & 0x0f;
  else if ((p[0] & 0xf8) == 0xf0)
    len = 4, cp = p[0] & 0x07;
  else
    return -1;
  for (i = 1; i < len; i++) {
    if ((p[i] & 0xc0) != 0x80)
      return -1;
    cp = cp << 6 | (p[i] & 0x3f);
  }
  if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
    return -1;
  *s = p + len;
  return cp;
}

ssize_t
utf8_to_utf16 (const char *in, uint8_t *out, size_t out_size, bool big_endian)
{
  const unsigned char *s = (const unsigned char *) in;
  size_t n = 0;

  while (*s) {
    long cp = next_utf8 (&s);
    if (cp < 0) {
      set_error (EILSEQ, "path is not valid UTF-8");
      return -1;
    }
    size_t need = cp >= 0x10000 ? 4 : 2;
    if (n + need > out_size) {
      set_error (ENAMETOOLONG, "path too long for UTF-16 field (%zu bytes)",
                 out_size);
      return -1;
    }
    if (cp >= 0x10000) {
      cp -= 0x10000;
      put_unit (out + n, (uint16_t) (0xd800 | (cp >> 10)), big_endian);
      put_unit (out + n + 2, (uint16_t) (0xdc00 | (cp & 0x3ff)), big_endian);
    }
    else
      put_unit (out + n, (uint16_t) cp, big_endian);
    n += need;
  }
  return (ssize_t) n;
}

static size_t
put_utf8 (char *o, unsigned long cp)
{
  if (cp < 0x80) {
    o[0] = (char) cp;
    return 1;
  }
  if (cp < 0x800) {
    o[0] = (char) (0xc0 | (cp >> 6));
    o[1] = (char) (0x80 | (cp & 0x3f));
    return 2;
  }
  if (cp < 0x10000) {
    o[0] = (char) (0xe0 | (cp >> 12));
    o[1] = (char) (0x80 | ((cp >> 6) & 0x3f));
    o[2] = (char) (0x80 | (cp & 0x3f));
    return 3;
  }
  o[0] = (char) (0xf0 | (cp >> 18));
  o[1] = (char) (0x80 | ((cp >> 12) & 0x3f));
  o[2] = (char) (0x80 | ((cp >> 6) & 0x3f));
  o[3] = (char) (0x80 | (cp & 0x3f));
  return 4;
}

/* Stops at the first NUL unit; in_len is in bytes.  Returns a malloc'd
 * string, or NULL after set_error. */
char *
utf16_to_utf8 (const uint8_t *in, size_t in_len, bool big_endian)
{
  size_t units = in_len / 2, i, n = 0;
  char *out = malloc (units * 3 + 1);

  if (out == NULL) {
    set_error (ENOMEM, "out of memory");
    return NULL;
  }
  for (i = 0; i < units; i++) {
    const uint8_t *p = in + 2 * i;
    unsigned long cp = big_endian ? get_be16 (p) : get_le16 (p);
    if (cp == 0)
      break;
    if (cp >= 0xd800 && cp <= 0xdbff && i + 1 < units) {
      const uint8_t *q = p + 2;
      unsigned long lo = big_endian ? get_be16 (q) : get_le16 (q);
      if (lo >= 0xdc00 && lo <= 0xdfff) {
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        i++;
      }
    }
    if (cp >= 0xd800 && cp <= 0xdfff) {
      free (out);
      set_error (EILSEQ, "invalid UTF-16 (unpaired surrogate)");
      return NULL;
    }
    n += put_utf8 (out + n, cp);
  }
  out[n] = '\0';
  return out;
}
