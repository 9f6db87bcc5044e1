/* vhd-parent.c: the set_parent hook of the VHD driver (vhd_rebase, and
 * vhd_commit relinking the emptied child).
 *
 * The parent is recorded in the dynamic header: its unique ID, the time
 * stamp of its footer, its file name (UTF-16BE), and the locator entries
 * pointing at W2ku (absolute) and W2ru (relative) path data elsewhere in
 * the file, written as vhd-create.c writes them.  Other locator entries
 * (MacX, deprecated codes) are dropped: they named the old parent.
 *
 * CRASH SAFETY
 *
 *   1. locator data that differs from what an old entry of the same kind
 *      holds is written to new sectors at the end of the file (footer
 *      first, as for a block), io_flush: nothing refers to it yet;
 *   2. the dynamic header is rewritten (1024 bytes), io_flush.
 * The old data is never overwritten, so a crash before 2 leaves the old
 * parent recorded and readable.  What remains is the window of step 2
 * itself: VHD has a single header, and the change spans both of its
 * sectors (the name runs into the second, the locators are in it), so a
 * write torn between them fails the header's checksum and the image will
 * not open until the header is rewritten.  No reader offers a second
 * copy; we accept this and keep the window to one write.  When nothing
 * changes (commit relinking the same parent) nothing is written at all.
 *
 * The old locator data left behind lies among the metadata, before the
 * first block: vhd-check.c counts such short gaps as padding, not leaks.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "byteorder.h"
#include "minmax.h"
#include "vhd/vhd.h"

/* Does an old locator entry of this kind already hold exactly this data?
 * 1 (and *out is that entry), 0, or -1. */
static int
find_same (struct vhd_disk *d, const struct vhd_state *s,
           const struct vhd_parent_locator *loc, struct vhd_locator *out)
{
  uint8_t *data = malloc (MAX (loc->len, (size_t) 1));
  unsigned i;
  int r = 0;

  if (data == NULL) {
    set_error (ENOMEM, "out of memory");
    return -1;
  }
  for (i = 0; i < VHD_LOCATOR_COUNT && r == 0; i++) {
    const struct vhd_locator *l = &s->header.locators[i];
    if (l->platform_code != loc->code || l->data_length != loc->len
        || l->data_offset > s->next_free
        || l->data_length > s->next_free - l->data_offset)
      continue;
    if (io_pread (d->io, data, loc->len, l->data_offset) == -1)
      r = -1;
    else if (memcmp (data, loc->data, loc->len) == 0) {
      *out = *l;
      r = 1;
    }
  }
  free (data);
  return r;
}

/* Step 1: each locator reuses identical old data or gets new sectors. */
static int
place_locators (struct vhd_disk *d, struct vhd_state *s,
                struct vhd_dynheader *h,
                const struct vhd_parent_locator *loc, unsigned n)
{
  uint64_t at = s->next_free, end = at;
  bool fresh[2] = { false, false };
  unsigned i;
  int r;

  for (i = 0; i < n; i++) {
    struct vhd_locator *l = &h->locators[i];
    r = find_same (d, s, &loc[i], l);
    if (r == -1)
      return -1;
    if (r == 1)
      continue;
    fresh[i] = true;
    l->platform_code = loc[i].code;
    l->data_length = (uint32_t) loc[i].len;
    l->data_space = ROUND_UP ((uint32_t) loc[i].len, SECTOR_SIZE);
    l->data_offset = end;
    end += l->data_space;
  }
  if (end == at)
    return 0;
  if (vhd_extend (d, end) == -1)
    return -1;
  for (i = 0; i < n; i++)
    if (fresh[i] && io_pwrite (d->io, loc[i].data, loc[i].len,
                               h->locators[i].data_offset) == -1) {
      prefix_error ("writing parent locator data");
      return -1;
    }
  return io_flush (d->io);
}

/* Step 2: the header as on disk with the parent fields of h. */
static int
write_header (struct vhd_disk *d, const struct vhd_state *s,
              const struct vhd_dynheader *h)
{
  uint8_t raw[VHD_DYN_SIZE], old[VHD_DYN_SIZE];
  uint64_t off = s->footer.data_offset;
  unsigned i;

  if (io_pread (d->io, raw, sizeof raw, off) == -1) {
    prefix_error ("reading the dynamic disk header");
    return -1;
  }
  memcpy (old, raw, sizeof old);
  memcpy (raw + VHD_DYN_PARENT_UNIQUE_ID, h->parent_unique_id, 16);
  put_be32 (raw + VHD_DYN_PARENT_TIMESTAMP, h->parent_timestamp);
  memcpy (raw + VHD_DYN_PARENT_NAME, h->parent_name,
          VHD_DYN_PARENT_NAME_SIZE);
  for (i = 0; i < VHD_LOCATOR_COUNT; i++)
    vhd_locator_encode (&h->locators[i],
                        raw + VHD_DYN_PARENT_LOCATORS + i * VHD_LOC_SIZE);
  put_be32 (raw + VHD_DYN_CHECKSUM, vhd_dynheader_checksum (raw));
  if (memcmp (raw, old, sizeof raw) == 0)
    return 0;
  if (io_pwrite (d->io, raw, sizeof raw, off) == -1) {
    prefix_error ("writing the dynamic disk header");
    return -1;
  }
  return io_flush (d->io);
}

int
vhd_op_set_parent (struct vhd_disk *d, const struct create_params *p)
{
  struct vhd_state *s = d->priv;
  struct vhd_dynheader h = s->header;
  struct vhd_parent_locator loc[2];
  unsigned n;
  int r;

  if (s->footer.disk_type != VHD_DISK_DIFFERENCING) {
    set_error (EINVAL, "only a differencing VHD has a parent");
    return -1;
  }
  if (d->ops->flush (d) == -1 || vhd_encode_parent (&h, p, loc, &n) == -1)
    return -1;
  r = place_locators (d, s, &h, loc, n);
  if (r == 0)
    r = write_header (d, s, &h);
  vhd_free_parent_locators (loc, n);
  if (r == -1)
    return -1;
  s->header = h;
  return 0;
}
