/* aio-internal.h: what aio.c and aio-map.c share (not installed).
 *
 * (Not "aio.h": -Ilibvhd would shadow the system's <aio.h>.)
 */
#ifndef LIBVHD_AIO_INTERNAL_H
#define LIBVHD_AIO_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/* One transfer between a caller's buffer and a host file. */
struct aio_seg {
  int fd;
  uint64_t offset;  /* in the file */
  size_t len;
  uint8_t *buf;
  const char *file; /* for messages: the layer's file name */
};

/* The file transfers of one request, in order. */
struct aio_plan {
  bool direct;      /* use O_DIRECT descriptors where a transfer suits */
  struct aio_seg *seg;
  size_t n, cap;
};

/* Plan a read of [offset, offset+count) of d through its chain: ranges
 * stored in files with a descriptor become segments; zeros are filled
 * and other byte sources read at once.  Called with d's lock held;
 * 0, or -1 after set_error (). */
int aio_plan_read (struct vhd_disk *d, uint8_t *buf, uint64_t count,
                   uint64_t offset, struct aio_plan *pl);

/* Plan a write that needs no allocation and no metadata change: true
 * when every byte maps to data already stored in d's own file, which has
 * a descriptor (segments in pl); false otherwise, also when the map
 * fails (the synchronous path then meets and reports the error). */
bool aio_plan_write (struct vhd_disk *d, const uint8_t *buf,
                     uint64_t count, uint64_t offset, struct aio_plan *pl);

void aio_plan_free (struct aio_plan *pl);

#endif /* LIBVHD_AIO_INTERNAL_H */
