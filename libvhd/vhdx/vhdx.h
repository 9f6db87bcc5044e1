/* vhdx.h: the VHDX driver's state, shared by vhdx.c (open, map),
 * vhdx-write.c (writes through the log) and vhdx-create.c. */
#ifndef LIBVHD_VHDX_VHDX_H
#define LIBVHD_VHDX_VHDX_H

#include <stdbool.h>
#include <stdint.h>

#include "bat.h"
#include "header.h"
#include "internal.h"
#include "metadata.h"
#include "region.h"

/* Sector bitmap slices cached for map(): direct-mapped by block number.
 * A slice is block_size / logical_sector / 8 bytes (at most 64 KiB), so
 * the cache holds at most 4 MiB. */
#define VHDX_BITMAP_CACHE_SLOTS 64

struct vhdx_bitmap_slot {
  bool valid;
  uint64_t block;
  uint8_t *bits;
};

struct vhdx {
  struct vhdx_header hdr;   /* the current header */
  unsigned current;         /* its slot: 0 (64 KiB) or 1 (128 KiB) */
  struct vhdx_regions regions;
  struct vhdx_metadata md;
  struct vhdx_bat_geometry geo;
  uint64_t *bat;            /* host order, geo.entries long */
  uint64_t bat_offset;
  uint64_t sectors_per_block;
  size_t bitmap_slice;      /* bytes of sector bitmap per payload block */
  struct vhdx_bitmap_slot cache[VHDX_BITMAP_CACHE_SLOTS];

  /* Writing (vhdx-write.c). */
  bool file_guid_renewed;   /* FileWriteGuid changed in this session */
  bool data_guid_renewed;   /* DataWriteGuid changed in this session */
  bool log_active;          /* the header's LogGuid is ours */
  uint32_t log_head;        /* log offset of the next entry */
  uint64_t log_sequence;    /* of the last entry written */
  uint64_t file_end;        /* where the next block goes (1 MiB aligned) */
  bool failed;              /* a metadata update failed: refuse writes */
};

/* vhdx-write.c */
int vhdx_update_headers (struct vhd_disk *d, bool new_data_guid);
int vhdx_pwrite (struct vhd_disk *d, const void *buf, size_t count,
                 uint64_t offset);
int vhdx_flush (struct vhd_disk *d);
int64_t vhdx_zero (struct vhd_disk *d, uint64_t offset, uint64_t count,
                   unsigned flags);
/* vhdx.c: the cached sector bitmap slice of a block, or NULL. */
const uint8_t *vhdx_block_bitmap (struct vhd_disk *d, uint64_t block);
void vhdx_forget_bitmap (struct vhdx *v, uint64_t block);
/* vhdx-create.c */
int vhdx_create (struct io *io, const struct create_params *p);

#endif /* LIBVHD_VHDX_VHDX_H */
