/* vhd.h: state shared by the VHD driver's files (vhd.c, vhd-create.c,
 * and the operations: vhd-space.c, vhd-zero.c, vhd-defrag.c, vhd-resize.c,
 * vhd-parent.c, vhd-check.c).  Private to libvhd/vhd/.
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

/* Blocks unmapped since the last flush, by first sector: their space is
 * given back (punched, or cut off the end of the file) only once the BAT
 * on disk no longer points at them (vhd-space.c). */
struct vhd_freed {
  uint32_t *sectors;
  size_t n, cap;
};

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
  struct vhd_freed freed;
};

/* The footer timestamp of d when it is an open VHD, else 0 (the parent
 * time stamp a differencing child records). */
uint32_t vhd_disk_timestamp (const struct vhd_disk *d);

/* vhd-create.c */
int vhd_driver_create (struct io *io, const struct create_params *p);

/* The W2ku (absolute path) and W2ru (relative path) locator data of a
 * differencing child, as create writes them. */
struct vhd_parent_locator {
  uint32_t code;
  uint8_t *data; /* malloc'd */
  size_t len;
};
/* Fill h's parent unique ID, time stamp and name from p, clear its
 * locator entries, and encode the locator data into loc (*n of them).
 * 0, or -1 after set_error; free loc with vhd_free_parent_locators. */
int vhd_encode_parent (struct vhd_dynheader *h, const struct create_params *p,
                       struct vhd_parent_locator loc[2], unsigned *n);
void vhd_free_parent_locators (struct vhd_parent_locator *loc, unsigned n);

/* vhd-space.c: the file's space, for the operations. */
#define VHD_MAX_REGIONS (4 + VHD_LOCATOR_COUNT)
struct vhd_region {
  uint64_t start, end;
};
/* The metadata in front of the blocks (footer copy, header, BAT, the
 * locator data of a differencing disk), sorted by start. */
unsigned vhd_meta_regions (const struct vhd_state *s,
                           struct vhd_region r[VHD_MAX_REGIONS]);
/* Bytes of one block in the file: sector bitmap and data. */
uint64_t vhd_block_bytes (const struct vhd_state *s);
/* The end of the metadata and of every block the BAT maps (sector
 * aligned): where the trailing footer of a tidy file lies. */
uint64_t vhd_live_end (const struct vhd_state *s);
int vhd_write_footer (struct io *io, const struct vhd_footer *f,
                      uint64_t offset);
/* Make room up to new_end for blocks or metadata: the footer is written
 * at new_end first, so the file never ends in anything but a footer. */
int vhd_extend (struct vhd_disk *d, uint64_t new_end);
/* Cut the file after new_end (>= the live end): footer at new_end,
 * io_flush, truncate. */
int vhd_shrink_to (struct vhd_disk *d, uint64_t new_end);
/* Unmap one block: BAT entry unused (dirty), bitmap forgotten, space
 * queued in s->freed. */
int vhd_free_block (struct vhd_disk *d, uint32_t block);
/* Called by flush once the BAT is durable: give the queued space back. */
int vhd_release_freed (struct vhd_disk *d);
struct vhd_move {
  uint32_t block;
  uint64_t dst; /* free, clear of every block and of the metadata */
};
/* Copy each block to its dst, io_flush, point the BAT entries there,
 * write the BAT, io_flush.  The caller has made the file long enough. */
int vhd_move_blocks (struct vhd_disk *d, const struct vhd_move *m, size_t n);
/* Write the first sector of the dynamic header (table offset, entry
 * count, checksum: a one-sector write, atomic) for s->header. */
int vhd_write_header_sector0 (struct vhd_disk *d);
/* Write the footer s->footer at the end and at offset 0, then flush. */
int vhd_write_footers (struct vhd_disk *d);

/* The operations (vhd-zero.c, vhd-defrag.c, vhd-resize.c, vhd-parent.c,
 * vhd-check.c). */
int64_t vhd_op_zero (struct vhd_disk *d, uint64_t offset, uint64_t count,
                     unsigned flags);
int vhd_op_unmap (struct vhd_disk *d, uint64_t offset, uint64_t count);
int vhd_op_defragment (struct vhd_disk *d, vhd_progress_fn progress,
                       void *opaque);
int vhd_op_resize (struct vhd_disk *d, uint64_t new_size);
int vhd_op_set_parent (struct vhd_disk *d, const struct create_params *p);
int vhd_op_check (struct io *io, struct check_ctx *c);

#endif /* LIBVHD_VHD_VHD_H */
