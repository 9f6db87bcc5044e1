/* vhdx-create.c: writing a new, empty VHDX image.
 *
 * Layout (every object 1 MiB aligned, as Hyper-V lays files out):
 *
 *   0      file identifier, headers, region tables  (1 MiB)
 *   1 MiB  log                                      (1 MiB)
 *   2 MiB  metadata region                          (1 MiB)
 *   3 MiB  BAT                                      (rounded up to 1 MiB)
 *   then   payload blocks (fixed: all of them, written as zeros so the
 *          host file is fully allocated; dynamic and differencing: none)
 *
 * New dynamic and differencing blocks are NOT_PRESENT (entry 0), as
 * Hyper-V writes them; a fixed image's blocks are FULLY_PRESENT and its
 * file parameters say LeaveBlocksAllocated.  A differencing image gets
 * all its sector bitmap blocks up front, zeroed (the file is extended,
 * not written: they stay sparse until used), as Hyper-V's checkpoints
 * have them: libvhdi 20210425 reads a NOT_PRESENT block of a chunk
 * without a sector bitmap wrongly (only the first sector of a read comes
 * from the parent).  Past MAX_EARLY_BITMAPS (4 TiB of a 512-byte-sector
 * disk, 32 TiB of a 4096 one) the rest are allocated when first needed.  The default block size is
 * 32 MiB.  A differencing image takes its parent's logical and physical
 * sector sizes (the spec requires equal logical sectors) and records the
 * parent's link ID (a VHDX parent's DataWriteGuid) as parent_linkage,
 * its path relative to the child (".\name", backslashes) and its
 * absolute path (backslashes) as absolute_win32_path.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "byteorder.h"
#include "log.h"
#include "minmax.h"
#include "vhdx.h"

#define DEFAULT_BLOCK_SIZE (UINT32_C (32) << 20)
#define LOG_OFFSET VHDX_MiB
#define LOG_LENGTH VHDX_MiB
#define METADATA_OFFSET (2 * VHDX_MiB)
#define METADATA_LENGTH VHDX_MiB
#define BAT_OFFSET (3 * VHDX_MiB)
#define MAX_EARLY_BITMAPS UINT64_C (1024)
#define CREATOR "libvhd " VHD_LIB_VERSION

struct layout {
  struct vhdx_metadata md;
  struct vhdx_bat_geometry geo;
  uint64_t bat_length, data_offset, file_size;
  uint64_t early_bitmaps; /* sector bitmap blocks allocated now */
};

static int
check_params (const struct create_params *p, struct layout *l)
{
  uint32_t bs = p->block_size ? p->block_size : DEFAULT_BLOCK_SIZE;

  if (!IS_POWER_OF_2 (bs) || bs < VHDX_MIN_BLOCK_SIZE
      || bs > VHDX_MAX_BLOCK_SIZE) {
    set_error (EINVAL, "VHDX block size %" PRIu32 " is not a power of two "
               "from 1 MiB to 256 MiB", bs);
    return -1;
  }
  l->md.block_size = bs;
  l->md.logical_sector = p->parent ? p->parent->logical_sector
                                   : p->logical_sector;
  l->md.physical_sector = p->parent ? p->parent->physical_sector
                                    : p->physical_sector;
  if (l->md.logical_sector != 512 && l->md.logical_sector != 4096)
    l->md.logical_sector = 512; /* a raw or VHD parent may say otherwise */
  if (l->md.physical_sector != 512 && l->md.physical_sector != 4096)
    l->md.physical_sector = 512;
  l->md.disk_size = ROUND_UP (p->size, (uint64_t) l->md.logical_sector);
  if (l->md.disk_size == 0 || l->md.disk_size > VHDX_MAX_DISK_SIZE) {
    set_error (ERANGE, "VHDX virtual size %" PRIu64 " is not within 1 byte "
               "to 64 TiB", p->size);
    return -1;
  }
  return 0;
}

/* ".\name" style: backslashes, and ".\" before a path that does not
 * already climb with "..". */
static char *
windows_relative (const char *rel)
{
  size_t n = strlen (rel), i;
  char *out = malloc (n + 3);

  if (out == NULL)
    return NULL;
  if (strncmp (rel, "../", 3) == 0 || strcmp (rel, "..") == 0)
    strcpy (out, rel);
  else
    snprintf (out, n + 3, ".\\%s", rel);
  for (i = 0; out[i]; i++)
    if (out[i] == '/')
      out[i] = '\\';
  return out;
}

static char *
windows_absolute (const char *abs)
{
  char *out = strdup (abs), *c;

  if (out)
    for (c = out; *c; c++)
      if (*c == '/')
        *c = '\\';
  return out;
}

int
vhdx_locator_plan (const struct create_params *p,
                   struct vhdx_parent_locator *pl)
{
  char g[GUID_STR_SIZE];

  guid_format (p->parent->link_id, true, g);
  pl->parent_linkage = strdup (g);
  if (p->parent_link_id2) {
    guid_format (p->parent_link_id2, true, g);
    if ((pl->parent_linkage2 = strdup (g)) == NULL) {
      set_error (ENOMEM, "out of memory");
      return -1;
    }
  }
  pl->relative_path = p->parent_rel_path
                        ? windows_relative (p->parent_rel_path) : NULL;
  pl->absolute_win32_path = p->parent_abs_path
                              ? windows_absolute (p->parent_abs_path) : NULL;
  if (pl->parent_linkage == NULL
      || (p->parent_rel_path && pl->relative_path == NULL)
      || (p->parent_abs_path && pl->absolute_win32_path == NULL)) {
    set_error (ENOMEM, "out of memory");
    return -1;
  }
  if (!pl->relative_path && !pl->absolute_win32_path) {
    set_error (EINVAL, "a differencing VHDX needs the parent's path");
    return -1;
  }
  return 0;
}

static int
plan_parent (const struct create_params *p, struct vhdx_metadata *md)
{
  md->has_parent = true;
  return vhdx_locator_plan (p, &md->locator);
}

static int
plan (const struct create_params *p, struct layout *l)
{
  memset (l, 0, sizeof *l);
  if (check_params (p, l) == -1)
    return -1;
  uuid_generate_bytes (l->md.disk_id);
  l->md.leave_blocks_allocated = p->type == VHD_TYPE_FIXED;
  if (p->parent && plan_parent (p, &l->md) == -1)
    return -1;
  vhdx_bat_geometry (l->md.disk_size, l->md.block_size,
                     l->md.logical_sector, l->md.has_parent, &l->geo);
  l->bat_length = ROUND_UP (l->geo.entries * 8, VHDX_MiB);
  if (l->bat_length > UINT32_MAX) {
    set_error (EFBIG, "VHDX BAT of %" PRIu64 " bytes is too large for a "
               "region", l->bat_length);
    return -1;
  }
  l->data_offset = BAT_OFFSET + l->bat_length;
  l->file_size = l->data_offset;
  if (l->md.has_parent)
    l->early_bitmaps = MIN (l->geo.bitmap_blocks, MAX_EARLY_BITMAPS);
  l->file_size += l->early_bitmaps * VHDX_BITMAP_BLOCK_SIZE;
  if (p->type == VHD_TYPE_FIXED)
    l->file_size += l->geo.data_blocks * l->md.block_size;
  return 0;
}

static int
write_header_section (struct io *io, const struct layout *l)
{
  struct vhdx_header h = { .version = 1, .log_length = LOG_LENGTH,
                           .log_offset = LOG_OFFSET };
  struct vhdx_region rg[2] = {
    { .offset = BAT_OFFSET, .length = (uint32_t) l->bat_length,
      .required = true },
    { .offset = METADATA_OFFSET, .length = METADATA_LENGTH,
      .required = true },
  };
  uint8_t *buf = calloc (1, VHDX_HEADER_SECTION_SIZE);
  int r = -1;

  if (buf == NULL) {
    set_error (ENOMEM, "out of memory");
    return -1;
  }
  memcpy (rg[0].guid, vhdx_bat_guid, GUID_SIZE);
  memcpy (rg[1].guid, vhdx_metadata_guid, GUID_SIZE);
  uuid_generate_bytes (h.file_write_guid);
  uuid_generate_bytes (h.data_write_guid);
  if (vhdx_fileid_encode (CREATOR, buf) == 0) {
    h.sequence = 1;
    vhdx_header_encode (&h, buf + VHDX_HEADER1_OFFSET);
    h.sequence = 2;
    vhdx_header_encode (&h, buf + VHDX_HEADER2_OFFSET);
    vhdx_region_encode (rg, 2, buf + VHDX_REGION1_OFFSET);
    vhdx_region_encode (rg, 2, buf + VHDX_REGION2_OFFSET);
    r = io_pwrite (io, buf, VHDX_HEADER_SECTION_SIZE, 0);
  }
  free (buf);
  return r;
}

static int
write_metadata (struct io *io, const struct layout *l)
{
  uint8_t *buf = malloc (METADATA_LENGTH);
  int r = -1;

  if (buf == NULL) {
    set_error (ENOMEM, "out of memory");
    return -1;
  }
  if (vhdx_metadata_encode (&l->md, buf, METADATA_LENGTH) == 0)
    r = io_pwrite (io, buf, METADATA_LENGTH, METADATA_OFFSET);
  free (buf);
  return r;
}

/* The entry at BAT index idx of a new image. */
static uint64_t
new_entry (const struct layout *l, uint64_t idx, bool fixed)
{
  uint64_t cr = l->geo.chunk_ratio;

  if (idx % (cr + 1) == cr) /* a sector bitmap */
    return idx / (cr + 1) < l->early_bitmaps
             ? vhdx_bat_entry (VHDX_SB_PRESENT,
                               l->data_offset
                                 + idx / (cr + 1) * VHDX_BITMAP_BLOCK_SIZE)
             : 0;
  if (!fixed)
    return 0;
  return vhdx_bat_entry (VHDX_PAYLOAD_FULLY_PRESENT,
                         l->data_offset
                           + (idx - idx / (cr + 1)) * l->md.block_size);
}

/* The BAT, written one 1 MiB piece at a time; pieces of unused entries
 * are left as the new file has them (zeros, and no host space: a 64 TiB
 * disk of 1 MiB blocks has a 512 MiB table). */
static int
write_bat (struct io *io, const struct layout *l, bool fixed)
{
  uint8_t *buf = malloc (VHDX_MiB);
  uint64_t per = VHDX_MiB / 8, piece, i;
  int r = 0;

  if (buf == NULL) {
    set_error (ENOMEM, "out of memory");
    return -1;
  }
  for (piece = 0; piece * per < l->geo.entries && r == 0; piece++) {
    bool used = false;
    memset (buf, 0, VHDX_MiB);
    for (i = 0; i < per && piece * per + i < l->geo.entries; i++) {
      uint64_t e = new_entry (l, piece * per + i, fixed);
      put_le64 (buf + i * 8, e);
      used |= e != 0;
    }
    if (used)
      r = io_pwrite (io, buf, VHDX_MiB, BAT_OFFSET + piece * VHDX_MiB);
  }
  free (buf);
  return r;
}

int
vhdx_create (struct io *io, const struct create_params *p)
{
  struct layout l;
  bool fixed = p->type == VHD_TYPE_FIXED && !p->parent;
  int r = -1;

  if (plan (p, &l) == 0 && io->ops->truncate (io, l.file_size) == 0
      && (!fixed || io_write_zeros (io, l.data_offset,
                                    l.file_size - l.data_offset) == 0)
      && io_write_zeros (io, LOG_OFFSET, LOG_LENGTH) == 0
      && write_metadata (io, &l) == 0 && write_bat (io, &l, fixed) == 0
      && write_header_section (io, &l) == 0)
    r = 0;
  vhdx_metadata_free (&l.md);
  return r;
}
