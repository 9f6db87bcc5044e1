/* vhd-create.c: writing a new VHD into an empty byte source.
 *
 *   fixed:         [ zeros, size bytes (fully allocated) ][ footer ]
 *   dynamic/diff:  0     footer copy
 *                  512   dynamic header
 *                  1536  BAT, ceil (size / block) entries of 0xFFFFFFFF,
 *                        padded to whole sectors with more of them
 *                  ...   differencing: W2ku data (absolute path), then
 *                        W2ru data (relative path), each in its own
 *                        sectors
 *                  end   footer
 *
 * This is qemu's and Hyper-V's layout (BAT at 1536, the first block right
 * after the metadata).  Fixed disks are written out in full, as Windows
 * expects: no sparse host file.  Locator paths are UTF-16LE with
 * backslashes and no terminator; their data space is written in bytes (a
 * multiple of 512), as Windows writes it, not in sectors as the spec
 * says: readers (ours included) accept both.  The footer says creator
 * "lvhd", host OS "Wi2k", and the geometry from the spec's algorithm.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "minmax.h"
#include "vhd/vhd.h"

#define MIN_CREATE_BLOCK_SIZE (UINT32_C (512) << 10)
#define MAX_CREATE_BLOCK_SIZE (UINT32_C (256) << 20)
#define HEADER_OFFSET 512U
#define BAT_OFFSET 1536U

static int
check_params (const struct create_params *p, uint32_t *block_size)
{
  if (p->size % SECTOR_SIZE != 0) {
    set_error (EINVAL, "VHD size %" PRIu64 " is not a multiple of %u",
               p->size, SECTOR_SIZE);
    return -1;
  }
  if (p->size > VHD_MAX_CREATE_SIZE) {
    set_error (ERANGE, "VHD size %" PRIu64 " is larger than the format's "
               "limit of 2040 GiB", p->size);
    return -1;
  }
  if ((p->logical_sector && p->logical_sector != SECTOR_SIZE)
      || (p->physical_sector && p->physical_sector != SECTOR_SIZE)) {
    set_error (EINVAL, "VHD has only 512-byte sectors (asked for %" PRIu32
               "/%" PRIu32 ")", p->logical_sector, p->physical_sector);
    return -1;
  }
  *block_size = p->block_size ? p->block_size : VHD_DEFAULT_BLOCK_SIZE;
  if (p->type != VHD_TYPE_FIXED
      && (!IS_POWER_OF_2 (*block_size) || *block_size < MIN_CREATE_BLOCK_SIZE
          || *block_size > MAX_CREATE_BLOCK_SIZE)) {
    set_error (EINVAL, "VHD block size %" PRIu32 " is not a power of two "
               "from 512 KiB to 256 MiB", *block_size);
    return -1;
  }
  if (p->type == VHD_TYPE_DIFFERENCING && p->parent == NULL) {
    set_error (EINVAL, "a differencing VHD needs a parent");
    return -1;
  }
  return 0;
}

static void
init_footer (struct vhd_footer *f, const struct create_params *p)
{
  memset (f, 0, sizeof *f);
  f->features = VHD_FEATURES_RESERVED;
  f->version = VHD_FORMAT_VERSION;
  f->data_offset = p->type == VHD_TYPE_FIXED ? VHD_NO_DATA_OFFSET
                                             : HEADER_OFFSET;
  f->timestamp = vhd_timestamp ((int64_t) time (NULL));
  memcpy (f->creator_app, VHD_CREATOR_APP, 4);
  f->creator_version = VHD_CREATOR_VERSION;
  f->creator_host_os = VHD_HOST_OS_WINDOWS;
  f->original_size = f->current_size = p->size;
  vhd_geometry (p->size, &f->cylinders, &f->heads, &f->sectors_per_track);
  f->disk_type = p->type == VHD_TYPE_FIXED     ? VHD_DISK_FIXED
                 : p->type == VHD_TYPE_DYNAMIC ? VHD_DISK_DYNAMIC
                                               : VHD_DISK_DIFFERENCING;
  uuid_generate_bytes (f->unique_id);
}

static int
write_footer (struct io *io, const struct vhd_footer *f, uint64_t offset)
{
  uint8_t raw[VHD_FTR_SIZE];

  vhd_footer_encode (f, raw);
  return io_pwrite (io, raw, sizeof raw, offset);
}

static int
create_fixed (struct io *io, const struct vhd_footer *f)
{
  if (io_write_zeros (io, 0, f->current_size) == -1)
    return -1;
  return write_footer (io, f, f->current_size);
}

/* One W2ku/W2ru locator's data, encoded. */
static int
encode_locator (struct vhd_parent_locator *l, uint32_t code,
                const char *path)
{
  ssize_t len;

  l->code = code;
  l->data = malloc (VHD_LOCATOR_MAX_DATA);
  if (l->data == NULL) {
    set_error (ENOMEM, "out of memory");
    return -1;
  }
  len = vhd_locator_encode_path (path, l->data, VHD_LOCATOR_MAX_DATA);
  if (len <= 0) {
    if (len == 0)
      set_error (EINVAL, "empty parent path");
    free (l->data);
    l->data = NULL;
    return -1;
  }
  l->len = (size_t) len;
  return 0;
}

/* ".\name" style: backslashes, and a leading ".\" for a bare name. */
static char *
relative_locator_path (const char *rel)
{
  char *out = malloc (strlen (rel) + 3);

  if (out == NULL) {
    set_error (ENOMEM, "out of memory");
    return NULL;
  }
  if (rel[0] == '.' || rel[0] == '/' || rel[0] == '\\')
    strcpy (out, rel);
  else {
    strcpy (out, ".\\");
    strcat (out, rel);
  }
  return out;
}

static const char *
base_name (const char *path)
{
  const char *base = path, *c;

  for (c = path; *c; c++)
    if (*c == '/' || *c == '\\')
      base = c + 1;
  return base;
}

void
vhd_free_parent_locators (struct vhd_parent_locator *loc, unsigned n)
{
  unsigned i;

  for (i = 0; i < n; i++) {
    free (loc[i].data);
    loc[i].data = NULL;
  }
}

int
vhd_encode_parent (struct vhd_dynheader *h, const struct create_params *p,
                   struct vhd_parent_locator loc[2], unsigned *n)
{
  const char *abs = p->parent_abs_path ? p->parent_abs_path : p->parent_path;
  char *rel;
  int r = 0;

  *n = 0;
  memcpy (h->parent_unique_id, p->parent->link_id, 16);
  h->parent_timestamp = vhd_disk_timestamp (p->parent);
  memset (h->locators, 0, sizeof h->locators);
  memset (h->parent_name, 0, sizeof h->parent_name);
  if (abs && vhd_dynheader_set_parent_name (h, base_name (abs)) == -1)
    return -1;
  if (abs && abs[0]) {
    if (encode_locator (&loc[0], VHD_PLATFORM_W2KU, abs) == -1)
      return -1;
    *n = 1;
  }
  if (p->parent_rel_path && p->parent_rel_path[0]) {
    rel = relative_locator_path (p->parent_rel_path);
    r = rel ? encode_locator (&loc[*n], VHD_PLATFORM_W2RU, rel) : -1;
    free (rel);
    if (r == 0)
      (*n)++;
  }
  if (r == -1)
    vhd_free_parent_locators (loc, *n);
  return r;
}

/* Parent identity, name and locators of a differencing child; the
 * locator data goes at *next, each in its own sectors. */
static int
set_parent (struct io *io, struct vhd_dynheader *h,
            const struct create_params *p, uint64_t *next)
{
  struct vhd_parent_locator loc[2];
  unsigned n, i;
  int r = 0;

  if (vhd_encode_parent (h, p, loc, &n) == -1)
    return -1;
  for (i = 0; i < n && r == 0; i++) {
    struct vhd_locator *l = &h->locators[i];
    r = io_pwrite (io, loc[i].data, loc[i].len, *next);
    l->platform_code = loc[i].code;
    l->data_length = (uint32_t) loc[i].len;
    l->data_space = ROUND_UP ((uint32_t) loc[i].len, SECTOR_SIZE);
    l->data_offset = *next;
    *next += l->data_space;
  }
  vhd_free_parent_locators (loc, n);
  return r;
}

static int
write_bat (struct io *io, uint64_t bytes)
{
  uint8_t *raw = malloc (bytes);
  int r;

  if (raw == NULL) {
    set_error (ENOMEM, "out of memory for a BAT of %" PRIu64 " bytes",
               bytes);
    return -1;
  }
  memset (raw, 0xff, bytes);
  r = io_pwrite (io, raw, bytes, BAT_OFFSET);
  free (raw);
  return r;
}

static int
create_sparse (struct io *io, const struct create_params *p,
               const struct vhd_footer *f, uint32_t block_size)
{
  struct vhd_dynheader h;
  uint8_t raw[VHD_DYN_SIZE];
  uint64_t n_blocks = DIV_ROUND_UP (p->size, (uint64_t) block_size);
  uint64_t bat_bytes = MAX (ROUND_UP (n_blocks * 4, (uint64_t) SECTOR_SIZE),
                            (uint64_t) SECTOR_SIZE);
  uint64_t next = BAT_OFFSET + bat_bytes;

  memset (&h, 0, sizeof h);
  h.data_offset = UINT64_MAX;
  h.table_offset = BAT_OFFSET;
  h.header_version = VHD_DYN_VERSION;
  h.max_table_entries = (uint32_t) n_blocks;
  h.block_size = block_size;
  if (write_bat (io, bat_bytes) == -1)
    return -1;
  if (p->type == VHD_TYPE_DIFFERENCING && set_parent (io, &h, p, &next) == -1)
    return -1;
  vhd_dynheader_encode (&h, raw);
  if (write_footer (io, f, 0) == -1
      || io_pwrite (io, raw, sizeof raw, HEADER_OFFSET) == -1)
    return -1;
  return write_footer (io, f, next);
}

int
vhd_driver_create (struct io *io, const struct create_params *p)
{
  struct vhd_footer f;
  uint32_t block_size;
  int r;

  if (check_params (p, &block_size) == -1)
    return -1;
  init_footer (&f, p);
  if (p->type == VHD_TYPE_FIXED)
    r = create_fixed (io, &f);
  else
    r = create_sparse (io, p, &f, block_size);
  if (r == -1)
    return -1;
  return io_flush (io);
}
