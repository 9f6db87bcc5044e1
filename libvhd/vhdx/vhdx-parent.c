/* vhdx-parent.c: set_parent for VHDX: rewrite the parent locator
 * (MS-VHDX 2.6.2.6) through the log.
 *
 * The new locator has parent_linkage (the parent's link ID -- a VHDX
 * parent's DataWriteGuid -- as "{xxxxxxxx-...}"), relative_path (".\"
 * style, backslashes) and absolute_win32_path (backslashes), as create
 * writes them, and parent_linkage2 when the caller gives one (commit:
 * the DataWriteGuid the parent is about to take); an old
 * parent_linkage2 goes;
 * volume_path ("\\?\Volume{GUID}\...") cannot be derived on this side,
 * so it is left out.
 *
 * Placement: the lowest offset past the metadata table where the item
 * fits without touching any other item (the old locator's own bytes may
 * be reused), inside the metadata region.  One log entry carries the
 * item's pages and the table page with the entry's new offset and
 * length, so a crash leaves the old locator or the new one.
 *
 * The disk's view is kept (commit; rebase to an identical parent): the
 * headers get a new FileWriteGuid, DataWriteGuid stays.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "byteorder.h"
#include "log.h"
#include "minmax.h"
#include "vhdx.h"

/* Room for the item and the table page in one log entry. */
#define ITEM_CAP ((size_t) (VHDX_MAX_STAGED - 3) * VHDX_LOG_SECTOR)
#define ITEM_ALIGN 8U

int
vhdx_md_find (struct vhd_disk *d, enum vhdx_md_item which, uint8_t **table,
              struct vhdx_md_entry *e)
{
  struct vhdx *v = d->priv;
  uint8_t *t = malloc (VHDX_MD_TABLE_SIZE);

  if (t == NULL) {
    set_error (ENOMEM, "out of memory");
    return -1;
  }
  if (io_pread (d->io, t, VHDX_MD_TABLE_SIZE, v->regions.metadata->offset)
        == -1
      || vhdx_metadata_find (t, which, e) == -1) {
    free (t);
    return -1;
  }
  *table = t;
  return 0;
}

static void
locator_free (struct vhdx_parent_locator *pl)
{
  free (pl->parent_linkage);
  free (pl->parent_linkage2);
  free (pl->relative_path);
  free (pl->volume_path);
  free (pl->absolute_win32_path);
  memset (pl, 0, sizeof *pl);
}

/* The lowest offset for len bytes clear of every item but entry skip. */
static int
place_item (const struct vhdx *v, const uint8_t *table, unsigned skip,
            uint32_t len, uint32_t *where)
{
  unsigned i, count = vhdx_metadata_count (table);
  uint64_t at = VHDX_MD_TABLE_SIZE;
  bool moved = true;

  while (moved) {
    moved = false;
    for (i = 0; i < count; i++) {
      struct vhdx_md_entry e;
      vhdx_metadata_entry (table, i, &e);
      if (i == skip || e.length == 0)
        continue;
      if (e.offset < at + len && at < (uint64_t) e.offset + e.length) {
        at = ROUND_UP ((uint64_t) e.offset + e.length, ITEM_ALIGN);
        moved = true;
      }
    }
  }
  if (at + len > v->regions.metadata->length) {
    set_error (ENOSPC, "no room for a parent locator of %" PRIu32 " bytes "
               "in the VHDX metadata region", len);
    return -1;
  }
  *where = (uint32_t) at;
  return 0;
}

/* One log entry: the item at its place and its table entry. */
static int
write_locator (struct vhd_disk *d, const uint8_t *item, uint32_t len,
               const struct vhdx_md_entry *e, uint32_t where)
{
  struct vhdx *v = d->priv;
  uint64_t md = v->regions.metadata->offset;
  uint64_t field = md + VHDX_MD_ENTRIES + (uint64_t) e->index * VHDX_MDE_SIZE;
  struct vhdx_stage *st = calloc (1, sizeof *st);
  uint8_t raw[8];
  int r;

  if (st == NULL) {
    set_error (ENOMEM, "out of memory");
    return -1;
  }
  put_le32 (raw, where);
  put_le32 (raw + 4, len);
  r = vhdx_stage_bytes (d, st, md + where, item, len);
  if (r == 0)
    r = vhdx_stage_bytes (d, st, field + VHDX_MDE_OFFSET, raw, sizeof raw);
  if (r == 0)
    r = vhdx_commit (d, st);
  vhdx_stage_free (st);
  free (st);
  return r;
}

static int
rewrite (struct vhd_disk *d, const struct vhdx_parent_locator *pl)
{
  struct vhdx *v = d->priv;
  struct vhdx_md_entry e;
  uint8_t *item = calloc (1, ITEM_CAP), *table = NULL;
  uint32_t where = 0;
  ssize_t len;
  int r = -1;

  if (item == NULL) {
    set_error (ENOMEM, "out of memory");
    return -1;
  }
  len = vhdx_locator_encode (pl, item, ITEM_CAP);
  if (len > 0 && vhdx_md_find (d, VHDX_MD_ITEM_PARENT_LOCATOR, &table, &e)
                   == 0
      && place_item (v, table, e.index, (uint32_t) len, &where) == 0
      && vhdx_begin_update (d, false) == 0)
    r = write_locator (d, item, (uint32_t) len, &e, where);
  free (table);
  free (item);
  return r;
}

int
vhdx_set_parent (struct vhd_disk *d, const struct create_params *p)
{
  struct vhdx *v = d->priv;
  struct vhdx_parent_locator pl;

  memset (&pl, 0, sizeof pl);
  if (!v->md.has_parent) {
    set_error (EINVAL, "not a differencing VHDX image");
    return -1;
  }
  if (vhdx_locator_plan (p, &pl) == -1 || rewrite (d, &pl) == -1) {
    locator_free (&pl);
    prefix_error ("rewriting the VHDX parent locator");
    return -1;
  }
  memcpy (pl.type, vhdx_parent_locator_vhdx_type, GUID_SIZE);
  memcpy (d->parent_link_id, p->parent->link_id, 16);
  if (p->parent_link_id2)
    memcpy (d->parent_link_id2, p->parent_link_id2, 16);
  else
    memset (d->parent_link_id2, 0, 16);
  locator_free (&v->md.locator);
  v->md.locator = pl;
  return 0;
}
