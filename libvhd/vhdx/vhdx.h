/* vhdx.h: the VHDX driver's state, shared by vhdx.c (open, map),
 * vhdx-write.c (writes through the log), vhdx-create.c, vhdx-space.c
 * (free space, objects, moves) and the operations: vhdx-ops.c (unmap),
 * vhdx-defrag.c, vhdx-resize.c, vhdx-parent.c (set_parent) and
 * vhdx-check.c. */
#ifndef LIBVHD_VHDX_VHDX_H
#define LIBVHD_VHDX_VHDX_H

#include <stdbool.h>
#include <stdint.h>

#include "bat-cache.h"
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

/* A metadata update in the making: 4 KiB pages to write through the
 * log in one entry (vhdx-write.c).  BAT pages carry data NULL (encoded
 * from the in-memory BAT at commit time), other pages their new bytes. */
#define VHDX_MAX_STAGED 64U

struct vhdx_staged {
  uint64_t offset;
  uint8_t *data;
};

struct vhdx_stage {
  struct vhdx_staged p[VHDX_MAX_STAGED];
  unsigned n;
};

/* A range of the file, [start, end). */
struct vhdx_extent {
  uint64_t start, end;
};

struct vhdx {
  struct vhdx_header hdr;   /* the current header */
  unsigned current;         /* its slot: 0 (64 KiB) or 1 (128 KiB) */
  struct vhdx_regions regions;
  struct vhdx_metadata md;
  struct vhdx_bat_geometry geo;
  struct vhdx_bat_cache bat; /* geo.entries long, paged in */
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
  /* BAT changes of writes waiting for a flush (vhdx-write.c), and
   * whether a batch (copy-internal.h) defers unmaps too. */
  struct vhdx_stage *deferred;
  bool batching;

  /* Space freed in this session (vhdx-space.c): unreferenced by a
   * durable BAT, punched (reads as zeros), sorted and merged.  New
   * blocks are taken from here before the end of the file. */
  struct vhdx_extent *free;
  size_t n_free, free_cap;
  /* During defragment: free space may hold old bytes (gaps not punched,
   * vhdx_free_gaps); punched at its end by vhdx_punch_free. */
  bool free_stale;
  /* Space that the staged BAT change stops referencing: released by
   * vhdx_commit once that change is durable, forgotten if it fails. */
  struct vhdx_extent *pending;
  size_t n_pending, pending_cap;
};

/* vhdx-write.c */
int vhdx_update_headers (struct vhd_disk *d, bool new_data_guid);
/* Before the first change of a session: refuse a failed handle or an
 * image without a log, and renew FileWriteGuid (and DataWriteGuid when
 * the change is visible in the disk's content) in the headers. */
int vhdx_begin_update (struct vhd_disk *d, bool data_changes);
/* Stage the BAT page holding entry index (kept in memory until the
 * stage is committed). */
int vhdx_stage_bat (struct vhdx *v, struct vhdx_stage *st, uint64_t index);
/* BAT entry index, and a change of it staged in st. */
static inline int
vhdx_get_entry (struct vhdx *v, uint64_t index, uint64_t *entry)
{
  return vhdx_bat_cache_get (&v->bat, index, entry);
}

static inline int
vhdx_put_entry (struct vhdx *v, struct vhdx_stage *st, uint64_t index,
                uint64_t entry)
{
  if (vhdx_bat_cache_set (&v->bat, index, entry) == -1)
    return -1;
  return vhdx_stage_bat (v, st, index);
}
/* The staged copy of the 4 KiB page at offset (read from the file the
 * first time), to modify in place; NULL after set_error (). */
uint8_t *vhdx_stage_page (struct vhd_disk *d, struct vhdx_stage *st,
                          uint64_t offset);
/* The stage of d's open write batch (copy-internal.h), or NULL. */
struct vhdx_stage *vhdx_batch_of (struct vhd_disk *d);
/* Write the staged pages through the log (flush, entry, apply, flush)
 * and empty the stage.  On failure the handle is marked failed. */
int vhdx_commit (struct vhd_disk *d, struct vhdx_stage *st);
void vhdx_stage_free (struct vhdx_stage *st);
/* An update that failed before its commit: drop the stage, forget the
 * pending space and mark the handle failed (memory may be ahead of the
 * file). */
void vhdx_abandon (struct vhd_disk *d, struct vhdx_stage *st);
/* Stage len bytes at file offset (the pages they span). */
int vhdx_stage_bytes (struct vhd_disk *d, struct vhdx_stage *st,
                      uint64_t offset, const uint8_t *data, size_t len);
/* size bytes (a multiple of 1 MiB) of zeroed space for a new object:
 * freed space when some fits, else at the end of the file. */
int vhdx_allocate (struct vhd_disk *d, uint64_t size, uint64_t *offset);
/* The same, always at the 1 MiB-aligned end of the file. */
int vhdx_allocate_end (struct vhd_disk *d, uint64_t size, uint64_t *offset);
int vhdx_pwrite (struct vhd_disk *d, const void *buf, size_t count,
                 uint64_t offset);
int vhdx_flush (struct vhd_disk *d);
bool vhdx_flush_needs_metadata (struct vhd_disk *d);
int64_t vhdx_zero (struct vhd_disk *d, uint64_t offset, uint64_t count,
                   unsigned flags);
/* vhdx.c: the cached sector bitmap slice of a block, or NULL. */
const uint8_t *vhdx_block_bitmap (struct vhd_disk *d, uint64_t block);
void vhdx_forget_bitmap (struct vhdx *v, uint64_t block);
/* vhdx-create.c */
int vhdx_create (struct io *io, const struct create_params *p);
/* Fill pl from p's parent (parent_linkage, relative_path and
 * absolute_win32_path in Windows form); free with the metadata. */
int vhdx_locator_plan (const struct create_params *p,
                       struct vhdx_parent_locator *pl);

/* vhdx-space.c: free space and the objects of the file. */
/* Record [start, end) as free and reusable (ENOMEM: it stays a leak). */
void vhdx_free_add (struct vhdx *v, uint64_t start, uint64_t end);
/* Take size bytes from the lowest free range that holds them. */
bool vhdx_free_take (struct vhdx *v, uint64_t size, uint64_t *offset);
/* Forget free ranges at or past end (the file was cut there). */
void vhdx_free_cut (struct vhdx *v, uint64_t end);
/* Take [start, end) out of the free ranges. */
void vhdx_free_remove (struct vhdx *v, uint64_t start, uint64_t end);
/* Release [start, end) when the staged change is durable. */
void vhdx_pending_add (struct vhdx *v, uint64_t start, uint64_t end);
/* After a commit: release the pending space (durable) or forget it. */
void vhdx_pending_settle (struct vhd_disk *d, bool durable);
/* Give [offset, offset + length) back to the host and, when that
 * worked, keep it for reuse.  Only for space no durable structure
 * references any more. */
void vhdx_release (struct vhd_disk *d, uint64_t offset, uint64_t length);
/* Punch the free space that may hold old bytes, so that allocations can
 * take it again (what cannot be punched is forgotten). */
void vhdx_punch_free (struct vhd_disk *d);

enum vhdx_object_kind {
  VHDX_OBJ_FIXED,   /* header section, log, metadata and other regions */
  VHDX_OBJ_BAT,     /* the BAT region */
  VHDX_OBJ_PAYLOAD, /* a payload block (index: its BAT entry) */
  VHDX_OBJ_BITMAP,  /* a sector bitmap block (index: its BAT entry) */
};

/* Something that occupies [start, end) of the file. */
struct vhdx_object {
  uint64_t start, end;
  enum vhdx_object_kind kind;
  uint64_t index;
};

/* Every object v describes, sorted by start (overlaps included); *out
 * is malloc'd. */
int vhdx_list_objects (struct vhdx *v, struct vhdx_object **out,
                       size_t *n);
/* The same, EBADMSG when two overlap. */
int vhdx_objects (struct vhd_disk *d, struct vhdx_object **out, size_t *n);
/* Every gap between the objects o[0..n) (sorted) becomes free space as
 * it is, not punched (defragment: moves overwrite it). */
void vhdx_free_gaps (struct vhd_disk *d, const struct vhdx_object *o,
                     size_t n);
/* The end of the last object, 1 MiB aligned. */
int vhdx_used_end (struct vhd_disk *d, uint64_t *end);
/* Retire the log, then cut the file after its last object. */
int vhdx_trim (struct vhd_disk *d);
/* Copy len bytes of an object from src to dest (free space), then
 * flush: dest holds the object, nothing points at it yet. */
int vhdx_copy_object (struct vhd_disk *d, uint64_t src, uint64_t dest,
                      uint64_t len);
/* The same without the flush (a batch of copies takes one). */
int vhdx_copy_data (struct vhd_disk *d, uint64_t src, uint64_t dest,
                    uint64_t len);
/* Point BAT entry idx at dest (same state) through the log. */
int vhdx_switch_entry (struct vhd_disk *d, uint64_t idx, uint64_t dest);
/* A block's new place. */
struct vhdx_move {
  uint64_t index, dest;
};
/* Point n (at most VHDX_MAX_STAGED) BAT entries at their new places in
 * one log entry, which flushes the copies first. */
int vhdx_switch_entries (struct vhd_disk *d, const struct vhdx_move *m,
                         size_t n);
/* Write the BAT (v->geo.entries from memory, zeros to length) at dest,
 * retire the log and switch both region tables to it (MS-VHDX 2.2.3:
 * copy 1, flush, copy 2, flush).  The old BAT space is the caller's. */
int vhdx_move_bat (struct vhd_disk *d, uint64_t dest, uint32_t length);

/* The operations (vhdx-ops.c, vhdx-defrag.c, vhdx-resize.c,
 * vhdx-parent.c, vhdx-check.c). */
int vhdx_unmap (struct vhd_disk *d, uint64_t offset, uint64_t count);
int vhdx_defragment (struct vhd_disk *d, vhd_progress_fn progress,
                     void *opaque);
/* Block moves per log entry in defragment (at most 64; tests lower it to
 * cross batch boundaries in small images). */
extern unsigned vhdx_move_batch;
int vhdx_resize (struct vhd_disk *d, uint64_t new_size);
int vhdx_set_parent (struct vhd_disk *d, const struct create_params *p);
int vhdx_check (struct io *io, struct check_ctx *c);
/* vhdx-parent.c: the metadata region's table (VHDX_MD_TABLE_SIZE bytes,
 * malloc'd) and a system item's entry in it. */
int vhdx_md_find (struct vhd_disk *d, enum vhdx_md_item which,
                  uint8_t **table, struct vhdx_md_entry *e);

#endif /* LIBVHD_VHDX_VHDX_H */
