/* metadata.c: the VHDX metadata region (MS-VHDX 2.6).
 *
 * The system items are one table (items[] below): GUID, name, exact
 * length, the flags we write, and a decoder each.  Decoding walks the
 * region's table once, checks every entry's placement (inside the region,
 * past the table, no overlaps, no duplicates), hands known system items
 * to their decoders, skips user items and unknown optional items, and
 * refuses unknown required ones.  Values are checked against the spec:
 * block size a power of two in 1..256 MiB, sector sizes 512 or 4096,
 * disk size a positive multiple of the logical sector of at most 64 TiB.
 *
 * The parent locator is a list of UTF-16LE key/value pairs; we keep the
 * five keys the spec defines, converted to UTF-8, and ignore others.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "byteorder.h"
#include "checked-overflow.h"
#include "internal.h"
#include "metadata.h"
#include "minmax.h"

#define VHDX_MD_MAGIC "metadata"

enum item_id {
  ITEM_FILE_PARAMETERS,
  ITEM_DISK_SIZE,
  ITEM_DISK_ID,
  ITEM_LOGICAL_SECTOR,
  ITEM_PHYSICAL_SECTOR,
  ITEM_PARENT_LOCATOR,
  N_ITEMS,
};

const uint8_t vhdx_parent_locator_vhdx_type[GUID_SIZE] = {
  0xb0, 0x4a, 0xef, 0xb7, 0xd1, 0x9e, 0x4a, 0x81,
  0xb7, 0x89, 0x25, 0xb8, 0xe9, 0x44, 0x59, 0x13,
};

static int
decode_file_parameters (const uint8_t *p, uint32_t len,
                        struct vhdx_metadata *md)
{
  uint32_t flags = get_le32 (p + 4);

  md->block_size = get_le32 (p);
  md->leave_blocks_allocated = (flags & 1) != 0;
  md->has_parent = (flags & 2) != 0;
  if (!IS_POWER_OF_2 (md->block_size) || md->block_size < VHDX_MIN_BLOCK_SIZE
      || md->block_size > VHDX_MAX_BLOCK_SIZE) {
    set_error (EBADMSG, "VHDX metadata: block size %" PRIu32 " is not a "
               "power of two from 1 MiB to 256 MiB", md->block_size);
    return -1;
  }
  return 0;
}

static int
decode_disk_size (const uint8_t *p, uint32_t len, struct vhdx_metadata *md)
{
  md->disk_size = get_le64 (p);
  if (md->disk_size == 0 || md->disk_size > VHDX_MAX_DISK_SIZE) {
    set_error (EBADMSG, "VHDX metadata: virtual disk size %" PRIu64
               " is not within 1 byte..64 TiB", md->disk_size);
    return -1;
  }
  return 0;
}

static int
decode_disk_id (const uint8_t *p, uint32_t len, struct vhdx_metadata *md)
{
  guid_decode (p, md->disk_id);
  return 0;
}

static int
decode_sector (const char *what, const uint8_t *p, uint32_t *out)
{
  *out = get_le32 (p);
  if (*out != 512 && *out != 4096) {
    set_error (EBADMSG, "VHDX metadata: %s sector size %" PRIu32
               " (must be 512 or 4096)", what, *out);
    return -1;
  }
  return 0;
}

static int
decode_logical_sector (const uint8_t *p, uint32_t len,
                       struct vhdx_metadata *md)
{
  return decode_sector ("logical", p, &md->logical_sector);
}

static int
decode_physical_sector (const uint8_t *p, uint32_t len,
                        struct vhdx_metadata *md)
{
  return decode_sector ("physical", p, &md->physical_sector);
}

static int
decode_parent_locator (const uint8_t *p, uint32_t len,
                       struct vhdx_metadata *md)
{
  md->have_locator = true;
  return vhdx_locator_decode (p, len, &md->locator);
}

static const struct item {
  uint8_t guid[GUID_SIZE];
  const char *name;
  uint32_t length; /* exact; 0 = variable */
  uint32_t flags;  /* as written (and as Hyper-V writes them) */
  int (*decode) (const uint8_t *p, uint32_t len, struct vhdx_metadata *md);
} items[N_ITEMS] = {
  [ITEM_FILE_PARAMETERS] = {
    { 0xca, 0xa1, 0x67, 0x37, 0xfa, 0x36, 0x4d, 0x43,
      0xb3, 0xb6, 0x33, 0xf0, 0xaa, 0x44, 0xe7, 0x6b },
    "file parameters", 8, VHDX_MD_FLAG_REQUIRED, decode_file_parameters },
  [ITEM_DISK_SIZE] = {
    { 0x2f, 0xa5, 0x42, 0x24, 0xcd, 0x1b, 0x48, 0x76,
      0xb2, 0x11, 0x5d, 0xbe, 0xd8, 0x3b, 0xf4, 0xb8 },
    "virtual disk size", 8,
    VHDX_MD_FLAG_REQUIRED | VHDX_MD_FLAG_VIRTUAL_DISK, decode_disk_size },
  [ITEM_DISK_ID] = {
    { 0xbe, 0xca, 0x12, 0xab, 0xb2, 0xe6, 0x45, 0x23,
      0x93, 0xef, 0xc3, 0x09, 0xe0, 0x00, 0xc7, 0x46 },
    "virtual disk ID", 16,
    VHDX_MD_FLAG_REQUIRED | VHDX_MD_FLAG_VIRTUAL_DISK, decode_disk_id },
  [ITEM_LOGICAL_SECTOR] = {
    { 0x81, 0x41, 0xbf, 0x1d, 0xa9, 0x6f, 0x47, 0x09,
      0xba, 0x47, 0xf2, 0x33, 0xa8, 0xfa, 0xab, 0x5f },
    "logical sector size", 4,
    VHDX_MD_FLAG_REQUIRED | VHDX_MD_FLAG_VIRTUAL_DISK,
    decode_logical_sector },
  [ITEM_PHYSICAL_SECTOR] = {
    { 0xcd, 0xa3, 0x48, 0xc7, 0x44, 0x5d, 0x44, 0x71,
      0x9c, 0xc9, 0xe9, 0x88, 0x52, 0x51, 0xc5, 0x56 },
    "physical sector size", 4,
    VHDX_MD_FLAG_REQUIRED | VHDX_MD_FLAG_VIRTUAL_DISK,
    decode_physical_sector },
  [ITEM_PARENT_LOCATOR] = {
    { 0xa8, 0xd3, 0x5f, 0x2d, 0xb3, 0x0b, 0x45, 0x4d,
      0xab, 0xf7, 0xd3, 0xd8, 0x48, 0x34, 0xab, 0x0c },
    "parent locator", 0, VHDX_MD_FLAG_REQUIRED, decode_parent_locator },
};

/* --- parent locator ----------------------------------------------------- */

static char **
locator_slot (struct vhdx_parent_locator *pl, const char *key)
{
  if (strcmp (key, "parent_linkage") == 0)
    return &pl->parent_linkage;
  if (strcmp (key, "parent_linkage2") == 0)
    return &pl->parent_linkage2;
  if (strcmp (key, "relative_path") == 0)
    return &pl->relative_path;
  if (strcmp (key, "volume_path") == 0)
    return &pl->volume_path;
  if (strcmp (key, "absolute_win32_path") == 0)
    return &pl->absolute_win32_path;
  return NULL;
}

/* One string of the locator: inside the item, non-empty, whole units. */
static char *
locator_string (const uint8_t *p, uint32_t len, uint32_t off, uint16_t n,
                unsigned i, const char *what)
{
  if (n == 0 || n % 2 || off == 0 || off > len || n > len - off) {
    set_error (EBADMSG, "VHDX parent locator: entry %u: %s at %" PRIu32
               " (%" PRIu16 " bytes) is empty, odd or outside the item",
               i, what, off, n);
    return NULL;
  }
  return utf16_to_utf8 (p + off, n, false);
}

static int
locator_entry (const uint8_t *p, uint32_t len, unsigned i,
               struct vhdx_parent_locator *pl)
{
  const uint8_t *e = p + VHDX_PL_ENTRIES + (size_t) i * VHDX_PLE_SIZE;
  char *key, *value, **slot;

  key = locator_string (p, len, get_le32 (e + VHDX_PLE_KEY_OFFSET),
                        get_le16 (e + VHDX_PLE_KEY_LENGTH), i, "key");
  if (key == NULL)
    return -1;
  value = locator_string (p, len, get_le32 (e + VHDX_PLE_VALUE_OFFSET),
                          get_le16 (e + VHDX_PLE_VALUE_LENGTH), i, "value");
  if (value == NULL) {
    free (key);
    return -1;
  }
  slot = locator_slot (pl, key);
  if (slot && *slot) {
    set_error (EBADMSG, "VHDX parent locator: key %s appears twice", key);
    free (key), free (value);
    return -1;
  }
  if (slot)
    *slot = value;
  else
    free (value); /* a key this version of the spec does not define */
  free (key);
  return 0;
}

int
vhdx_locator_decode (const uint8_t *p, uint32_t len,
                     struct vhdx_parent_locator *pl)
{
  unsigned i, count;
  char g[GUID_STR_SIZE];

  if (len < VHDX_PL_ENTRIES) {
    set_error (EBADMSG, "VHDX parent locator: %" PRIu32 " bytes is too "
               "short for its header", len);
    return -1;
  }
  guid_decode (p + VHDX_PL_TYPE, pl->type);
  if (!guid_eq (pl->type, vhdx_parent_locator_vhdx_type)) {
    guid_format (pl->type, false, g);
    set_error (ENOTSUP, "VHDX parent locator type %s is not supported", g);
    return -1;
  }
  count = get_le16 (p + VHDX_PL_COUNT);
  if ((uint64_t) VHDX_PL_ENTRIES + (uint64_t) count * VHDX_PLE_SIZE > len) {
    set_error (EBADMSG, "VHDX parent locator: %u entries do not fit in %"
               PRIu32 " bytes", count, len);
    return -1;
  }
  for (i = 0; i < count; i++)
    if (locator_entry (p, len, i, pl) == -1)
      return -1;
  if (pl->parent_linkage == NULL) {
    set_error (EBADMSG, "VHDX parent locator: no parent_linkage");
    return -1;
  }
  if (!pl->relative_path && !pl->volume_path && !pl->absolute_win32_path) {
    set_error (EBADMSG, "VHDX parent locator: no path to the parent");
    return -1;
  }
  return 0;
}

/* --- the table ------------------------------------------------------------ */

struct entry {
  uint8_t id[GUID_SIZE];
  uint32_t offset, length, flags;
};

static void
read_entry (const uint8_t *region, unsigned i, struct entry *e)
{
  const uint8_t *p = region + VHDX_MD_ENTRIES + (size_t) i * VHDX_MDE_SIZE;

  guid_decode (p + VHDX_MDE_ID, e->id);
  e->offset = get_le32 (p + VHDX_MDE_OFFSET);
  e->length = get_le32 (p + VHDX_MDE_LENGTH);
  e->flags = get_le32 (p + VHDX_MDE_FLAGS);
}

static int
check_entry (const struct entry *e, size_t len)
{
  char g[GUID_STR_SIZE];

  guid_format (e->id, false, g); /* at most 2047 entries */
  if (e->length == 0) {
    if (e->offset != 0) {
      set_error (EBADMSG, "VHDX metadata item %s: empty but at offset %"
                 PRIu32, g, e->offset);
      return -1;
    }
    return 0;
  }
  if (e->length > VHDX_MD_ITEM_MAX || e->offset < VHDX_MD_TABLE_SIZE
      || e->offset > len || e->length > len - e->offset) {
    set_error (EBADMSG, "VHDX metadata item %s: %" PRIu32 " bytes at %"
               PRIu32 " is not inside the metadata region after its table",
               g, e->length, e->offset);
    return -1;
  }
  return 0;
}

static int
check_pair (const struct entry *a, const struct entry *b)
{
  char g[GUID_STR_SIZE], h[GUID_STR_SIZE];

  if (guid_eq (a->id, b->id)
      && (a->flags & VHDX_MD_FLAG_USER) == (b->flags & VHDX_MD_FLAG_USER)) {
    guid_format (a->id, false, g);
    set_error (EBADMSG, "VHDX metadata item %s is listed twice", g);
    return -1;
  }
  if (a->length && b->length && a->offset < b->offset + b->length
      && b->offset < a->offset + a->length) {
    guid_format (a->id, false, g);
    guid_format (b->id, false, h);
    set_error (EBADMSG, "VHDX metadata items %s and %s overlap", g, h);
    return -1;
  }
  return 0;
}

static const struct item *
find_item (const struct entry *e, enum item_id *id)
{
  unsigned i;

  if (e->flags & VHDX_MD_FLAG_USER)
    return NULL;
  for (i = 0; i < N_ITEMS; i++)
    if (guid_eq (e->id, items[i].guid)) {
      *id = (enum item_id) i;
      return &items[i];
    }
  return NULL;
}

static int
decode_entry (const uint8_t *region, const struct entry *e, unsigned *seen,
              struct vhdx_metadata *md)
{
  enum item_id id = N_ITEMS;
  const struct item *it = find_item (e, &id);
  char g[GUID_STR_SIZE];

  if (it == NULL) {
    if ((e->flags & VHDX_MD_FLAG_REQUIRED)
        && !(e->flags & VHDX_MD_FLAG_USER)) {
      guid_format (e->id, false, g);
      set_error (ENOTSUP, "VHDX metadata item %s is required but not "
                 "supported", g);
      return -1;
    }
    return 0;
  }
  if (it->length ? e->length != it->length : e->length == 0) {
    set_error (EBADMSG, "VHDX metadata: %s item has length %" PRIu32
               " (expected %" PRIu32 ")", it->name, e->length, it->length);
    return -1;
  }
  *seen |= 1U << id;
  return it->decode (region + e->offset, e->length, md);
}

static int
check_complete (unsigned seen, const struct vhdx_metadata *md)
{
  unsigned i;

  for (i = 0; i < N_ITEMS; i++) {
    bool needed = i != ITEM_PARENT_LOCATOR || md->has_parent;
    if (needed && !(seen & (1U << i))) {
      set_error (EBADMSG, "VHDX metadata: no %s item", items[i].name);
      return -1;
    }
  }
  if (md->disk_size % md->logical_sector) {
    set_error (EBADMSG, "VHDX metadata: virtual disk size %" PRIu64
               " is not a multiple of the logical sector size %" PRIu32,
               md->disk_size, md->logical_sector);
    return -1;
  }
  return 0;
}

int
vhdx_metadata_decode (const uint8_t *region, size_t len,
                      struct vhdx_metadata *md)
{
  struct entry *e;
  unsigned i, j, count, seen = 0;
  int r = -1;

  memset (md, 0, sizeof *md);
  if (len < VHDX_MD_TABLE_SIZE
      || memcmp (region + VHDX_MD_SIGNATURE, VHDX_MD_MAGIC, 8) != 0) {
    set_error (EBADMSG, "VHDX metadata table: bad signature (expected "
               "\"metadata\")");
    return -1;
  }
  count = get_le16 (region + VHDX_MD_COUNT);
  if (count > VHDX_MD_MAX_ENTRIES) {
    set_error (EBADMSG, "VHDX metadata table: %u entries (at most %d "
               "allowed)", count, VHDX_MD_MAX_ENTRIES);
    return -1;
  }
  e = calloc (count ? count : 1, sizeof *e);
  if (e == NULL) {
    set_error (ENOMEM, "out of memory");
    return -1;
  }
  for (i = 0; i < count; i++) {
    read_entry (region, i, &e[i]);
    if (check_entry (&e[i], len) == -1)
      goto out;
    for (j = 0; j < i; j++)
      if (check_pair (&e[j], &e[i]) == -1)
        goto out;
  }
  for (i = 0; i < count; i++)
    if (decode_entry (region, &e[i], &seen, md) == -1)
      goto out;
  r = check_complete (seen, md);
out:
  free (e);
  return r;
}

void
vhdx_metadata_free (struct vhdx_metadata *md)
{
  struct vhdx_parent_locator *pl = &md->locator;

  free (pl->parent_linkage);
  free (pl->parent_linkage2);
  free (pl->relative_path);
  free (pl->volume_path);
  free (pl->absolute_win32_path);
  memset (pl, 0, sizeof *pl);
}

/* --- encoding ------------------------------------------------------------- */

/* Append one UTF-16LE string at *pos of the item; its offset and length
 * go to the entry fields.  -1 when it does not fit. */
static int
put_locator_string (uint8_t *item, size_t cap, size_t *pos, const char *s,
                    uint8_t *off_field, uint8_t *len_field)
{
  ssize_t n = utf8_to_utf16 (s, item + *pos, MIN (cap - *pos, (size_t) 65534),
                             false);

  if (n <= 0) {
    if (n == 0)
      set_error (EINVAL, "VHDX parent locator: empty string");
    return -1;
  }
  put_le32 (off_field, (uint32_t) *pos);
  put_le16 (len_field, (uint16_t) n);
  *pos += (size_t) n;
  return 0;
}

ssize_t
vhdx_locator_encode (const struct vhdx_parent_locator *pl, uint8_t *item,
                     size_t cap)
{
  const char *keys[] = { "parent_linkage", "parent_linkage2",
                         "relative_path", "volume_path",
                         "absolute_win32_path" };
  const char *values[] = { pl->parent_linkage, pl->parent_linkage2,
                           pl->relative_path, pl->volume_path,
                           pl->absolute_win32_path };
  unsigned i, n = 0;
  size_t pos = VHDX_PL_ENTRIES + 5 * VHDX_PLE_SIZE;

  guid_encode (vhdx_parent_locator_vhdx_type, item + VHDX_PL_TYPE);
  for (i = 0; i < 5; i++) {
    if (values[i] == NULL || values[i][0] == '\0')
      continue;
    uint8_t *e = item + VHDX_PL_ENTRIES + (size_t) n * VHDX_PLE_SIZE;
    if (put_locator_string (item, cap, &pos, keys[i],
                            e + VHDX_PLE_KEY_OFFSET,
                            e + VHDX_PLE_KEY_LENGTH) == -1
        || put_locator_string (item, cap, &pos, values[i],
                               e + VHDX_PLE_VALUE_OFFSET,
                               e + VHDX_PLE_VALUE_LENGTH) == -1)
      return -1;
    n++;
  }
  put_le16 (item + VHDX_PL_COUNT, (uint16_t) n);
  return (ssize_t) pos;
}

static void
put_entry (uint8_t *region, unsigned i, enum item_id id, uint32_t offset,
           uint32_t length)
{
  uint8_t *p = region + VHDX_MD_ENTRIES + (size_t) i * VHDX_MDE_SIZE;

  guid_encode (items[id].guid, p + VHDX_MDE_ID);
  put_le32 (p + VHDX_MDE_OFFSET, offset);
  put_le32 (p + VHDX_MDE_LENGTH, length);
  put_le32 (p + VHDX_MDE_FLAGS, items[id].flags);
}

int
vhdx_metadata_encode (const struct vhdx_metadata *md, uint8_t *region,
                      size_t len)
{
  uint8_t *item = region + VHDX_MD_TABLE_SIZE;
  uint32_t off = VHDX_MD_TABLE_SIZE;
  unsigned i, n = 0;

  if (len < 2 * VHDX_MD_TABLE_SIZE) {
    set_error (EINVAL, "VHDX metadata region too small");
    return -1;
  }
  memset (region, 0, len);
  memcpy (region + VHDX_MD_SIGNATURE, VHDX_MD_MAGIC, 8);
  put_le32 (item, md->block_size);
  put_le32 (item + 4, (md->leave_blocks_allocated ? 1U : 0U)
                          | (md->has_parent ? 2U : 0U));
  put_le64 (item + 8, md->disk_size);
  guid_encode (md->disk_id, item + 16);
  put_le32 (item + 32, md->logical_sector);
  put_le32 (item + 36, md->physical_sector);
  for (i = ITEM_FILE_PARAMETERS; i < ITEM_PARENT_LOCATOR; i++) {
    put_entry (region, n++, (enum item_id) i, off, items[i].length);
    off += items[i].length;
  }
  if (md->has_parent) {
    ssize_t pl = vhdx_locator_encode (&md->locator, region + off,
                                 MIN (len - off, (size_t) VHDX_MD_ITEM_MAX));
    if (pl == -1)
      return -1;
    put_entry (region, n++, ITEM_PARENT_LOCATOR, off, (uint32_t) pl);
  }
  put_le16 (region + VHDX_MD_COUNT, (uint16_t) n);
  return 0;
}

/* --- editing -------------------------------------------------------------- */

_Static_assert ((int) VHDX_MD_ITEM_DISK_SIZE == (int) ITEM_DISK_SIZE,
                "public item numbers follow items[]");
_Static_assert ((int) VHDX_MD_ITEM_PARENT_LOCATOR
                  == (int) ITEM_PARENT_LOCATOR,
                "public item numbers follow items[]");

unsigned
vhdx_metadata_count (const uint8_t *table)
{
  return MIN ((unsigned) get_le16 (table + VHDX_MD_COUNT),
              (unsigned) VHDX_MD_MAX_ENTRIES);
}

void
vhdx_metadata_entry (const uint8_t *table, unsigned i,
                     struct vhdx_md_entry *out)
{
  struct entry e;

  read_entry (table, i, &e);
  out->index = i;
  memcpy (out->id, e.id, GUID_SIZE);
  out->offset = e.offset;
  out->length = e.length;
  out->flags = e.flags;
}

int
vhdx_metadata_find (const uint8_t *table, enum vhdx_md_item which,
                    struct vhdx_md_entry *out)
{
  unsigned i, count = vhdx_metadata_count (table);

  for (i = 0; i < count; i++) {
    vhdx_metadata_entry (table, i, out);
    if (!(out->flags & VHDX_MD_FLAG_USER)
        && guid_eq (out->id, items[which].guid))
      return 0;
  }
  set_error (EBADMSG, "VHDX metadata table: no %s item", items[which].name);
  return -1;
}
