/* vhd.h: state shared by the VHD driver's files (vhd.c, vhd-create.c).
 * Private to libvhd/vhd/.
 */
#ifndef LIBVHD_VHD_VHD_H
#define LIBVHD_VHD_VHD_H

#include <stdbool.h>
#include <stdint.h>

#include "internal.h"
#include "vhd/bat.h"
#include "vhd/dynheader.h"
#include "vhd/footer.h"

/* Largest disk we create: the spec's 2040 GiB (Hyper-V's VHD limit). */
#define VHD_MAX_CREATE_SIZE (UINT64_C (2040) << 30)
#define VHD_DEFAULT_BLOCK_SIZE (UINT32_C (2) << 20)
#define VHD_CREATOR_APP "lvhd"
#define VHD_CREATOR_VERSION 0x00010000U

/* d->priv of an open VHD. */
struct vhd_state {
  struct vhd_footer footer;     /* the footer in use */
  struct vhd_dynheader header;  /* dynamic and differencing only */
  uint64_t file_size;           /* at open */
  bool trailer_ok;              /* the file ends with a good footer ... */
  uint64_t footer_pos;          /* ... at this offset */
  bool stale_checksums;         /* hand-edited image: see read_footers */
  uint32_t bitmap_size;         /* bytes of bitmap before each block */
  uint32_t n_blocks;            /* blocks covering current_size */
  uint64_t next_free;           /* where the next block goes (aligned) */
  struct vhd_bat bat;
  struct vhd_bitmap_cache bitmaps;
};

/* The footer timestamp of d when it is an open VHD, else 0 (the parent
 * time stamp a differencing child records). */
uint32_t vhd_disk_timestamp (const struct vhd_disk *d);

/* vhd-create.c */
int vhd_driver_create (struct io *io, const struct create_params *p);

#endif /* LIBVHD_VHD_VHD_H */
