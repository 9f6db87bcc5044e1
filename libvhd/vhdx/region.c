/* region.c: the VHDX region table (MS-VHDX 2.2.3).
 *
 * The spec knows two regions, the BAT and the metadata region, both
 * required.  Older qemu and FreeBSD mkimg write them with Required = 0;
 * a known region is used whatever its flag says.  An unknown region
 * marked required refuses the open (ENOTSUP, naming its GUID), as the
 * spec demands; an unknown optional one is kept in the table so that
 * allocations can keep clear of it.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "byteorder.h"
#include "checked-overflow.h"
#include "crc32c.h"
#include "header.h"
#include "internal.h"
#include "region.h"

const uint8_t vhdx_bat_guid[GUID_SIZE] = {
  0x2d, 0xc2, 0x77, 0x66, 0xf6, 0x23, 0x42, 0x00,
  0x9d, 0x64, 0x11, 0x5e, 0x9b, 0xfd, 0x4a, 0x08,
};
const uint8_t vhdx_metadata_guid[GUID_SIZE] = {
  0x8b, 0x7c, 0xa2, 0x06, 0x47, 0x90, 0x4b, 0x9a,
  0xb8, 0xfe, 0x57, 0x5f, 0x05, 0x0f, 0x88, 0x6e,
};

static int
check_header (const uint8_t *raw, uint32_t *count)
{
  uint32_t stored, computed;

  if (get_le32 (raw + VHDX_RGN_SIGNATURE) != VHDX_RGN_MAGIC) {
    set_error (EBADMSG, "VHDX region table: bad signature 0x%08" PRIx32
               " (expected \"regi\")", get_le32 (raw + VHDX_RGN_SIGNATURE));
    return -1;
  }
  stored = get_le32 (raw + VHDX_RGN_CHECKSUM);
  computed = vhdx_checksum (raw, VHDX_RGN_SIZE, VHDX_RGN_CHECKSUM);
  if (stored != computed) {
    set_error (EBADMSG, "VHDX region table: bad checksum (stored 0x%08"
               PRIx32 ", computed 0x%08" PRIx32 ")", stored, computed);
    return -1;
  }
  *count = get_le32 (raw + VHDX_RGN_COUNT);
  if (*count > VHDX_RGN_MAX_ENTRIES) {
    set_error (EBADMSG, "VHDX region table: %" PRIu32 " entries (at most "
               "%d allowed)", *count, VHDX_RGN_MAX_ENTRIES);
    return -1;
  }
  return 0;
}

static int
check_entry (const struct vhdx_region *e)
{
  char g[GUID_STR_SIZE];
  uint64_t end;

  guid_format (e->guid, false, g);
  if (e->offset % VHDX_MiB || e->offset < VHDX_HEADER_SECTION_SIZE) {
    set_error (EBADMSG, "VHDX region %s: offset %" PRIu64 " is not a "
               "multiple of 1 MiB past the header section", g, e->offset);
    return -1;
  }
  if (e->length % VHDX_MiB || e->length == 0) {
    set_error (EBADMSG, "VHDX region %s: length %" PRIu32 " is not a "
               "positive multiple of 1 MiB", g, e->length);
    return -1;
  }
  if (ADD_OVERFLOW (e->offset, (uint64_t) e->length, &end)) {
    set_error (EFBIG, "VHDX region %s: offset + length overflows", g);
    return -1;
  }
  return 0;
}

/* Entries must be unique and must not overlap one another. */
static int
check_pairs (const struct vhdx_regions *r)
{
  uint32_t i, j;
  char g[GUID_STR_SIZE], h[GUID_STR_SIZE];

  for (i = 0; i < r->count; i++)
    for (j = i + 1; j < r->count; j++) {
      const struct vhdx_region *a = &r->e[i], *b = &r->e[j];
      if (guid_eq (a->guid, b->guid)) {
        guid_format (a->guid, false, g);
        set_error (EBADMSG, "VHDX region table: region %s listed twice", g);
        return -1;
      }
      if (a->offset < b->offset + b->length
          && b->offset < a->offset + a->length) {
        guid_format (a->guid, false, g);
        guid_format (b->guid, false, h);
        set_error (EBADMSG, "VHDX region table: regions %s and %s overlap",
                   g, h);
        return -1;
      }
    }
  return 0;
}

int
vhdx_region_decode (const uint8_t raw[VHDX_RGN_SIZE], struct vhdx_regions *r)
{
  uint32_t i, count;
  char g[GUID_STR_SIZE];

  if (check_header (raw, &count) == -1)
    return -1;
  r->count = count;
  r->bat = r->metadata = NULL;
  for (i = 0; i < count; i++) {
    const uint8_t *p = raw + VHDX_RGN_ENTRIES + (size_t) i * VHDX_RGNE_SIZE;
    struct vhdx_region *e = &r->e[i];
    guid_decode (p + VHDX_RGNE_GUID, e->guid);
    e->offset = get_le64 (p + VHDX_RGNE_OFFSET);
    e->length = get_le32 (p + VHDX_RGNE_LENGTH);
    e->required = (get_le32 (p + VHDX_RGNE_REQUIRED) & 1) != 0;
    if (check_entry (e) == -1)
      return -1;
    if (guid_eq (e->guid, vhdx_bat_guid))
      r->bat = e;
    else if (guid_eq (e->guid, vhdx_metadata_guid))
      r->metadata = e;
    else if (e->required) {
      guid_format (e->guid, false, g);
      set_error (ENOTSUP, "VHDX region %s is required but not supported",
                 g);
      return -1;
    }
  }
  if (check_pairs (r) == -1)
    return -1;
  if (r->bat == NULL || r->metadata == NULL) {
    set_error (EBADMSG, "VHDX region table: no %s region",
               r->bat == NULL ? "BAT" : "metadata");
    return -1;
  }
  return 0;
}

void
vhdx_region_encode (const struct vhdx_region *e, uint32_t count,
                    uint8_t raw[VHDX_RGN_SIZE])
{
  uint32_t i;

  memset (raw, 0, VHDX_RGN_SIZE);
  put_le32 (raw + VHDX_RGN_SIGNATURE, VHDX_RGN_MAGIC);
  put_le32 (raw + VHDX_RGN_COUNT, count);
  for (i = 0; i < count; i++) {
    uint8_t *p = raw + VHDX_RGN_ENTRIES + (size_t) i * VHDX_RGNE_SIZE;
    guid_encode (e[i].guid, p + VHDX_RGNE_GUID);
    put_le64 (p + VHDX_RGNE_OFFSET, e[i].offset);
    put_le32 (p + VHDX_RGNE_LENGTH, e[i].length);
    put_le32 (p + VHDX_RGNE_REQUIRED, e[i].required ? 1 : 0);
  }
  put_le32 (raw + VHDX_RGN_CHECKSUM,
            vhdx_checksum (raw, VHDX_RGN_SIZE, VHDX_RGN_CHECKSUM));
}
