/* overlay.h: a read-only byte source that shows another one with patches
 * on top: how a read-only open sees a replayed VHDX log without writing
 * to the file. */
#ifndef LIBVHD_VHDX_OVERLAY_H
#define LIBVHD_VHDX_OVERLAY_H

#include <stdint.h>

#include "internal.h"

/* Wrap base (owned from then on, also on failure). */
struct io *vhdx_overlay_new (struct io *base);
/* Wrap base, which stays the caller's (closing the overlay leaves it
 * open): a check looking at a replayed log without writing. */
struct io *vhdx_overlay_borrow (struct io *base);
/* Patch [offset, offset + length) with a copy of data (NULL: zeros).
 * Later patches win over earlier ones. */
int vhdx_overlay_add (struct io *io, uint64_t offset, const uint8_t *data,
                      uint64_t length);
/* Make the source at least size bytes long (zeros past base's end). */
void vhdx_overlay_extend (struct io *io, uint64_t size);

#endif /* LIBVHD_VHDX_OVERLAY_H */
