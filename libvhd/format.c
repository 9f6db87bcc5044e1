/* format.c: the format drivers and probing.
 *
 * Every driver scores the image's head and tail; the highest score wins,
 * and raw (score 1) takes whatever nobody claims.  A fixed VHD is raw data
 * followed by a footer, so the VHD driver must look at the tail: probing
 * only the head (as qemu does) calls it raw.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "minmax.h"

#define PROBE_HEAD 65536

static const struct format_ops *const formats[] = {
  &vhdx_format_ops,
  &vhd_format_ops,
  &raw_format_ops,
};

const struct format_ops *
format_by_id (enum vhd_format format)
{
  size_t i;

  for (i = 0; i < sizeof formats / sizeof formats[0]; i++)
    if (formats[i]->format == format)
      return formats[i];
  set_error (ENOTSUP, "format %d is not supported", (int) format);
  return NULL;
}

const struct format_ops *
format_probe (struct io *io)
{
  uint8_t tail[SECTOR_SIZE];
  int64_t size = io_get_size (io);
  const struct format_ops *best = &raw_format_ops;
  int best_score = 0;
  size_t head_len, tail_len, i;

  if (size < 0)
    return NULL;
  head_len = (size_t) MIN ((int64_t) PROBE_HEAD, size);
  tail_len = (size_t) MIN ((int64_t) SECTOR_SIZE, size);
  uint8_t *head = malloc (head_len ? head_len : 1);
  if (head == NULL) {
    set_error (ENOMEM, "out of memory");
    return NULL;
  }
  if (io_pread (io, head, head_len, 0) == -1
      || io_pread (io, tail, tail_len, (uint64_t) size - tail_len) == -1) {
    free (head);
    return NULL;
  }
  for (i = 0; i < sizeof formats / sizeof formats[0]; i++) {
    int score = formats[i]->probe (head, head_len, tail, tail_len);
    if (score > best_score) {
      best_score = score;
      best = formats[i];
    }
  }
  free (head);
  return best;
}
