/* locator.c: VHD parent locator entries and the paths they hold.
 *
 * W2ku (absolute) and W2ru (relative) hold Windows paths in UTF-16LE with
 * no terminator; MacX holds a UTF-8 file:// URL (RFC 2396), which we only
 * read.  The older Wi2k, Wi2r and Mac codes are deprecated by the spec
 * and ignored.  Data space: see vhd_locator_space_bytes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "byteorder.h"
#include "internal.h"
#include "vhd/locator.h"

void
vhd_locator_decode (const uint8_t raw[VHD_LOC_SIZE], struct vhd_locator *out)
{
  out->platform_code = get_be32 (raw + VHD_LOC_PLATFORM_CODE);
  out->data_space = get_be32 (raw + VHD_LOC_DATA_SPACE);
  out->data_length = get_be32 (raw + VHD_LOC_DATA_LENGTH);
  out->data_offset = get_be64 (raw + VHD_LOC_DATA_OFFSET);
}

void
vhd_locator_encode (const struct vhd_locator *in, uint8_t raw[VHD_LOC_SIZE])
{
  memset (raw, 0, VHD_LOC_SIZE);
  put_be32 (raw + VHD_LOC_PLATFORM_CODE, in->platform_code);
  put_be32 (raw + VHD_LOC_DATA_SPACE, in->data_space);
  put_be32 (raw + VHD_LOC_DATA_LENGTH, in->data_length);
  put_be64 (raw + VHD_LOC_DATA_OFFSET, in->data_offset);
}

uint64_t
vhd_locator_space_bytes (uint32_t data_space)
{
  if (data_space != 0 && data_space % SECTOR_SIZE == 0)
    return data_space;
  return (uint64_t) data_space * SECTOR_SIZE;
}

void
vhd_platform_name (uint32_t platform_code, char out[5])
{
  int i;

  for (i = 0; i < 4; i++) {
    char c = (char) (platform_code >> (24 - 8 * i));
    out[i] = c >= 0x20 && c < 0x7f ? c : '?';
  }
  out[4] = '\0';
}

static int
hex_digit (char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* "file://[localhost]/path" with %XX escapes → "/path". */
static char *
macx_path (const uint8_t *data, size_t len)
{
  static const char scheme[] = "file://";
  const size_t scheme_len = sizeof scheme - 1;
  const char *s = (const char *) data;
  char *out, *o;
  size_t i;

  while (len > 0 && data[len - 1] == '\0')
    len--;
  if (len < scheme_len || strncasecmp (s, scheme, scheme_len) != 0
      || memchr (data, '\0', len) != NULL) {
    set_error (EBADMSG, "MacX parent locator: not a file:// URL");
    return NULL;
  }
  s += scheme_len;
  len -= scheme_len;
  if (len >= 9 && strncasecmp (s, "localhost", 9) == 0) {
    s += 9;
    len -= 9;
  }
  out = o = malloc (len + 1);
  if (out == NULL) {
    set_error (ENOMEM, "out of memory");
    return NULL;
  }
  for (i = 0; i < len; i++) {
    int hi, lo;
    if (s[i] == '%' && i + 2 < len
        && (hi = hex_digit (s[i + 1])) >= 0
        && (lo = hex_digit (s[i + 2])) >= 0 && (hi | lo) != 0) {
      *o++ = (char) (hi << 4 | lo);
      i += 2;
    }
    else
      *o++ = s[i];
  }
  *o = '\0';
  return out;
}

char *
vhd_locator_path (uint32_t platform_code, const uint8_t *data, size_t len)
{
  char name[5];

  switch (platform_code) {
  case VHD_PLATFORM_W2KU:
  case VHD_PLATFORM_W2RU:
    if (len % 2 != 0) {
      vhd_platform_name (platform_code, name);
      set_error (EBADMSG, "%s parent locator: odd length %zu for UTF-16",
                 name, len);
      return NULL;
    }
    return utf16_to_utf8 (data, len, false);
  case VHD_PLATFORM_MACX:
    return macx_path (data, len);
  default:
    vhd_platform_name (platform_code, name);
    set_error (EINVAL, "parent locator platform \"%s\" holds no path we read",
               name);
    return NULL;
  }
}

ssize_t
vhd_locator_encode_path (const char *path, uint8_t *out, size_t out_size)
{
  char *copy = strdup (path), *c;
  ssize_t r;

  if (copy == NULL) {
    set_error (ENOMEM, "out of memory");
    return -1;
  }
  for (c = copy; *c; c++)
    if (*c == '/')
      *c = '\\';
  r = utf8_to_utf16 (copy, out, out_size, false);
  free (copy);
  return r;
}
