/* zero.h: whether a buffer is all zero bytes.
 *
 * Eight words at a time: data usually has a non-zero byte in its first
 * word, and zeros are scanned at memory speed (memcmp (p, p + 1, n - 1)
 * reads every byte twice).  Used wherever blocks are tested for being
 * droppable or writes for being skippable. */
#ifndef LIBVHD_COMMON_ZERO_H
#define LIBVHD_COMMON_ZERO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline bool
buffer_is_zero (const void *buf, size_t n)
{
  const uint8_t *p = buf;
  size_t i = 0;

  for (; i + 64 <= n; i += 64) {
    uint64_t w[8];
    memcpy (w, p + i, sizeof w);
    if (w[0] | w[1] | w[2] | w[3] | w[4] | w[5] | w[6] | w[7])
      return false;
  }
  for (; i < n; i++)
    if (p[i])
      return false;
  return true;
}

#endif /* LIBVHD_COMMON_ZERO_H */
