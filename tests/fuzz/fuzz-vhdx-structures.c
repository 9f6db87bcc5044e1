/* fuzz-vhdx-structures.c: the VHDX structure decoders on raw bytes.
 *
 * The first input byte picks the structure (low 3 bits) and whether its
 * checksums are recomputed first (bit 7, so mutations get past them); the
 * rest is the structure's bytes, zero-padded where a fixed size is read:
 *
 *   0  file identifier (4 KiB), header 1 (4 KiB), header 2 (4 KiB):
 *      vhdx_fileid_decode, vhdx_header_decode of each, vhdx_header_select
 *   1  region table (64 KiB): vhdx_region_decode
 *   2  metadata region: vhdx_metadata_decode
 *   3  parent locator item: vhdx_locator_decode
 *   4  log (padded to 4 KiB sectors), with the LogGuid of its first
 *      sector: vhdx_log_find_active, vhdx_log_replay
 *   5  BAT: 32 bytes of disk parameters, then entries:
 *      vhdx_bat_geometry, vhdx_bat_validate
 *
 * Checked besides "no crash": decoders that succeed return values within
 * their documented limits, encode (decode (x)) decodes to the same
 * fields (and for a header with zero reserved bytes, to the same bytes),
 * and a replayed log stays inside what it claims.
 */
#include "fuzz-common.h"
#include "vhdx/bat.h"
#include "vhdx/metadata.h"

#define SEL_FIX 0x80

static uint8_t *
padded (const uint8_t *data, size_t size, size_t len)
{
  uint8_t *p = calloc (1, len ? len : 1);

  if (p == NULL)
    abort ();
  memcpy (p, data, size < len ? size : len);
  return p;
}

static bool
all_zero (const uint8_t *p, size_t n)
{
  size_t i;

  for (i = 0; i < n; i++)
    if (p[i])
      return false;
  return true;
}

/* --- 0: file identifier and headers ---------------------------------------- */

static void
header_equal (const struct vhdx_header *a, const struct vhdx_header *b)
{
  FUZZ_ASSERT (a->sequence == b->sequence && a->version == b->version
               && a->log_version == b->log_version
               && a->log_length == b->log_length
               && a->log_offset == b->log_offset
               && memcmp (a->file_write_guid, b->file_write_guid, 16) == 0
               && memcmp (a->data_write_guid, b->data_write_guid, 16) == 0
               && memcmp (a->log_guid, b->log_guid, 16) == 0,
               "header fields change through encode and decode");
}

static bool
fuzz_one_header (const uint8_t *raw, struct vhdx_header *h)
{
  struct vhdx_header g;
  uint8_t enc[VHDX_HDR_SIZE];

  clear_error ();
  if (vhdx_header_decode (raw, h) == -1) {
    check_failure ("vhdx_header_decode");
    return false;
  }
  FUZZ_ASSERT (h->version == 1, "version %u", h->version);
  vhdx_header_encode (h, enc);
  FUZZ_ASSERT (vhdx_header_decode (enc, &g) == 0, "re-encoded header does "
               "not decode");
  header_equal (h, &g);
  if (all_zero (raw + VHDX_HDR_LOG_OFFSET + 8,
                VHDX_HDR_SIZE - VHDX_HDR_LOG_OFFSET - 8))
    FUZZ_ASSERT (memcmp (raw, enc, VHDX_HDR_SIZE) == 0,
                 "header does not round-trip byte for byte");
  return true;
}

static void
fuzz_headers (const uint8_t *data, size_t size, bool fix)
{
  uint8_t *p = padded (data, size, 3 * VHDX_HDR_SIZE);
  uint8_t *h1 = p + VHDX_HDR_SIZE, *h2 = p + 2 * VHDX_HDR_SIZE;
  struct vhdx_header a, b, h;
  char creator[64];
  size_t sizes[] = { 1, 2, 5, sizeof creator }, i;
  unsigned which = 9;
  bool ok1, ok2;

  if (fix) {
    fix_vhdx_crc (p, 3 * VHDX_HDR_SIZE, VHDX_HDR_SIZE, VHDX_HDR_MAGIC,
                  VHDX_HDR_SIZE, VHDX_HDR_CHECKSUM);
    fix_vhdx_crc (p, 3 * VHDX_HDR_SIZE, 2 * VHDX_HDR_SIZE, VHDX_HDR_MAGIC,
                  VHDX_HDR_SIZE, VHDX_HDR_CHECKSUM);
  }
  for (i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    memset (creator, 'X', sizeof creator);
    clear_error ();
    if (vhdx_fileid_decode (p, creator, sizes[i]) == 0)
      FUZZ_ASSERT (memchr (creator, '\0', sizes[i]) != NULL,
                   "creator string not terminated within %zu bytes",
                   sizes[i]);
    else
      check_failure ("vhdx_fileid_decode");
  }
  ok1 = fuzz_one_header (h1, &a);
  ok2 = fuzz_one_header (h2, &b);
  clear_error ();
  if (vhdx_header_select (h1, h2, &h, &which) == 0) {
    FUZZ_ASSERT (which <= 1 && (which == 0 ? ok1 : ok2),
                 "selected header %u is not a valid one", which);
    header_equal (&h, which == 0 ? &a : &b);
    if (ok1 && ok2)
      FUZZ_ASSERT ((which == 0 ? a.sequence >= b.sequence
                               : b.sequence >= a.sequence),
                   "the header with the lower sequence number won");
  }
  else {
    check_failure ("vhdx_header_select");
    FUZZ_ASSERT (!ok1 || !ok2 || a.sequence == b.sequence,
                 "two valid headers with different sequence numbers "
                 "refused");
  }
  free (p);
}

/* --- 1: region table ------------------------------------------------------ */

static void
fuzz_regions (const uint8_t *data, size_t size, bool fix)
{
  uint8_t *p = padded (data, size, VHDX_RGN_SIZE);
  struct vhdx_regions *r = malloc (sizeof *r), *s = malloc (sizeof *s);
  uint32_t i;

  if (r == NULL || s == NULL)
    abort ();
  if (fix)
    fix_vhdx_crc (p, VHDX_RGN_SIZE, 0, VHDX_RGN_MAGIC, VHDX_RGN_SIZE,
                  VHDX_RGN_CHECKSUM);
  clear_error ();
  if (vhdx_region_decode (p, r) == 0) {
    FUZZ_ASSERT (r->count <= VHDX_RGN_MAX_ENTRIES, "%" PRIu32 " regions",
                 r->count);
    FUZZ_ASSERT (r->bat >= r->e && r->bat < r->e + r->count
                 && r->metadata >= r->e && r->metadata < r->e + r->count,
                 "BAT or metadata region outside the table");
    for (i = 0; i < r->count; i++)
      FUZZ_ASSERT (r->e[i].offset % FUZZ_MiB == 0
                   && r->e[i].offset >= FUZZ_MiB
                   && r->e[i].length % FUZZ_MiB == 0
                   && r->e[i].length > 0
                   && r->e[i].offset + r->e[i].length > r->e[i].offset,
                   "region %" PRIu32 " misplaced", i);
    vhdx_region_encode (r->e, r->count, p);
    clear_error ();
    FUZZ_ASSERT (vhdx_region_decode (p, s) == 0, "re-encoded region table "
                 "does not decode");
    FUZZ_ASSERT (s->count == r->count && s->bat - s->e == r->bat - r->e
                 && s->metadata - s->e == r->metadata - r->e,
                 "region table changes through encode and decode");
    for (i = 0; i < r->count; i++)
      FUZZ_ASSERT (memcmp (r->e[i].guid, s->e[i].guid, GUID_SIZE) == 0
                   && r->e[i].offset == s->e[i].offset
                   && r->e[i].length == s->e[i].length
                   && r->e[i].required == s->e[i].required,
                   "region %" PRIu32 " changes through encode and decode", i);
  }
  else
    check_failure ("vhdx_region_decode");
  free (r);
  free (s);
  free (p);
}

/* --- 2, 3: metadata and parent locator ------------------------------------- */

static bool
str_eq (const char *a, const char *b)
{
  return (a == NULL && b == NULL) || (a && b && strcmp (a, b) == 0);
}

static bool
nonempty_or_null (const char *s)
{
  return s == NULL || s[0] != '\0';
}

static void
metadata_roundtrip (const struct vhdx_metadata *md)
{
  const struct vhdx_parent_locator *pl = &md->locator;
  size_t len = VHDX_MD_TABLE_SIZE + VHDX_MD_ITEM_MAX;
  uint8_t *buf;
  struct vhdx_metadata m2;

  /* Empty strings (a value starting with a NUL unit) cannot be encoded. */
  if (md->has_parent
      && !(nonempty_or_null (pl->parent_linkage)
           && nonempty_or_null (pl->parent_linkage2)
           && nonempty_or_null (pl->relative_path)
           && nonempty_or_null (pl->volume_path)
           && nonempty_or_null (pl->absolute_win32_path)))
    return;
  buf = malloc (len);
  if (buf == NULL)
    abort ();
  clear_error ();
  if (vhdx_metadata_encode (md, buf, len) == -1) {
    check_failure ("vhdx_metadata_encode");
    free (buf);
    return;
  }
  clear_error ();
  FUZZ_ASSERT (vhdx_metadata_decode (buf, len, &m2) == 0,
               "re-encoded metadata does not decode");
  FUZZ_ASSERT (m2.block_size == md->block_size
               && m2.leave_blocks_allocated == md->leave_blocks_allocated
               && m2.has_parent == md->has_parent
               && m2.disk_size == md->disk_size
               && memcmp (m2.disk_id, md->disk_id, GUID_SIZE) == 0
               && m2.logical_sector == md->logical_sector
               && m2.physical_sector == md->physical_sector,
               "metadata changes through encode and decode");
  if (md->has_parent)
    FUZZ_ASSERT (str_eq (pl->parent_linkage, m2.locator.parent_linkage)
                 && str_eq (pl->parent_linkage2, m2.locator.parent_linkage2)
                 && str_eq (pl->relative_path, m2.locator.relative_path)
                 && str_eq (pl->volume_path, m2.locator.volume_path)
                 && str_eq (pl->absolute_win32_path,
                            m2.locator.absolute_win32_path),
                 "parent locator changes through encode and decode");
  vhdx_metadata_free (&m2);
  free (buf);
}

static void
fuzz_metadata (const uint8_t *data, size_t size)
{
  struct vhdx_metadata md;

  clear_error ();
  if (vhdx_metadata_decode (data, size, &md) == 0) {
    FUZZ_ASSERT (md.block_size >= VHDX_MIN_BLOCK_SIZE
                 && md.block_size <= VHDX_MAX_BLOCK_SIZE
                 && (md.block_size & (md.block_size - 1)) == 0,
                 "block size %" PRIu32, md.block_size);
    FUZZ_ASSERT ((md.logical_sector == 512 || md.logical_sector == 4096)
                 && (md.physical_sector == 512
                     || md.physical_sector == 4096),
                 "sector sizes %" PRIu32 "/%" PRIu32, md.logical_sector,
                 md.physical_sector);
    FUZZ_ASSERT (md.disk_size > 0 && md.disk_size <= VHDX_MAX_DISK_SIZE
                 && md.disk_size % md.logical_sector == 0,
                 "disk size %" PRIu64, md.disk_size);
    FUZZ_ASSERT (!md.has_parent || (md.have_locator
                                    && md.locator.parent_linkage != NULL),
                 "differencing disk without a parent locator");
    metadata_roundtrip (&md);
  }
  else
    check_failure ("vhdx_metadata_decode");
  vhdx_metadata_free (&md);
}

static void
fuzz_locator (const uint8_t *data, size_t size)
{
  struct vhdx_metadata md;

  memset (&md, 0, sizeof md);
  clear_error ();
  if (vhdx_locator_decode (data, (uint32_t) size, &md.locator) == 0)
    FUZZ_ASSERT (md.locator.parent_linkage != NULL
                 && (md.locator.relative_path || md.locator.volume_path
                     || md.locator.absolute_win32_path),
                 "locator without linkage or path accepted");
  else
    check_failure ("vhdx_locator_decode");
  vhdx_metadata_free (&md);
}

/* --- 4: log --------------------------------------------------------------- */

struct replay {
  uint32_t calls;
  uint32_t sum;
};

static int
on_update (void *opaque, uint64_t offset, const uint8_t *data,
           uint64_t length)
{
  struct replay *r = opaque;
  uint64_t i;

  FUZZ_ASSERT (offset % VHDX_LOG_SECTOR == 0, "update at %" PRIu64, offset);
  FUZZ_ASSERT (data == NULL ? length % VHDX_LOG_SECTOR == 0
                            : length == VHDX_LOG_SECTOR,
               "update of %" PRIu64 " bytes", length);
  if (data)
    for (i = 0; i < length; i++)
      r->sum += data[i]; /* touch every byte */
  r->calls++;
  return 0;
}

static void
fuzz_log (const uint8_t *data, size_t size, bool fix)
{
  size_t len = (size + VHDX_LOG_SECTOR - 1) / VHDX_LOG_SECTOR
               * VHDX_LOG_SECTOR;
  uint8_t *log, guid[GUID_SIZE];
  struct vhdx_log_sequence seq;
  struct replay r = { 0, 0 };

  if (len == 0)
    len = VHDX_LOG_SECTOR;
  log = padded (data, size, len);
  if (fix)
    fix_vhdx_log (log, len);
  guid_decode (log + VHDX_LOGE_LOG_GUID, guid);
  clear_error ();
  if (vhdx_log_find_active (log, (uint32_t) len, guid, &seq) == -1) {
    check_failure ("vhdx_log_find_active");
    free (log);
    return;
  }
  if (seq.count > 0) {
    FUZZ_ASSERT (seq.tail < len && seq.tail % VHDX_LOG_SECTOR == 0
                 && seq.count <= len / VHDX_LOG_SECTOR && seq.sequence > 0,
                 "active sequence: tail %" PRIu32 ", %" PRIu32 " entries",
                 seq.tail, seq.count);
    clear_error ();
    if (vhdx_log_replay (log, (uint32_t) len, &seq, on_update, &r) == -1)
      check_failure ("vhdx_log_replay");
  }
  free (log);
}

/* --- 5: BAT --------------------------------------------------------------- */

static void
fuzz_bat (const uint8_t *data, size_t size)
{
  const uint8_t *p = data;
  uint64_t disk_size, file_size, n, i;
  uint32_t block_size, logical;
  bool has_parent;
  struct vhdx_bat_geometry g;
  struct vhdx_range avoid[2];
  uint64_t *bat;

  if (size < 32)
    return;
  /* Parameters as the metadata decoder would let them through. */
  block_size = VHDX_MIN_BLOCK_SIZE << (p[8] % 9);
  logical = p[9] & 1 ? 4096 : 512;
  has_parent = p[10] & 1;
  disk_size = get_le64 (p) % (VHDX_MAX_DISK_SIZE + 1) / logical * logical;
  if (disk_size == 0)
    return;
  file_size = get_le64 (p + 16) % (UINT64_C (1) << 44);
  avoid[0] = (struct vhdx_range) { FUZZ_MiB, 2 * FUZZ_MiB, "log" };
  avoid[1] = (struct vhdx_range) { (uint64_t) get_le32 (p + 24) << 20,
                                   ((uint64_t) get_le32 (p + 24) << 20)
                                   + ((uint64_t) get_le16 (p + 28) << 20),
                                   "region" };
  vhdx_bat_geometry (disk_size, block_size, logical, has_parent, &g);
  FUZZ_ASSERT (g.chunk_ratio > 0 && g.data_blocks > 0, "geometry");
  FUZZ_ASSERT (vhdx_bat_payload_index (&g, g.data_blocks - 1) < g.entries,
               "the last payload entry lies past the BAT's %" PRIu64
               " entries", g.entries);
  if (has_parent)
    FUZZ_ASSERT (vhdx_bat_bitmap_index (&g, g.bitmap_blocks - 1)
                 < g.entries, "the last bitmap entry lies past the BAT");
  n = (size - 32) / 8;
  if (g.entries > n)
    return;
  bat = malloc (g.entries * sizeof *bat + 1);
  if (bat == NULL)
    abort ();
  for (i = 0; i < g.entries; i++)
    bat[i] = get_le64 (p + 32 + 8 * i);
  clear_error ();
  if (vhdx_bat_validate (bat, &g, disk_size, block_size, file_size, avoid,
                         2) == -1)
    check_failure ("vhdx_bat_validate");
  free (bat);
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  uint8_t sel;
  bool fix;

  if (size < 1)
    return 0;
  sel = data[0];
  fix = (sel & SEL_FIX) != 0;
  data++, size--;
  switch (sel & 7) {
  case 0: fuzz_headers (data, size, fix); break;
  case 1: fuzz_regions (data, size, fix); break;
  case 2: {
    /* A copy of exactly size bytes, so ASan sees reads past the end. */
    uint8_t *copy = padded (data, size, size);
    fuzz_metadata (copy, size);
    free (copy);
    break;
  }
  case 3: {
    uint8_t *copy = padded (data, size, size);
    fuzz_locator (copy, size);
    free (copy);
    break;
  }
  case 4: fuzz_log (data, size, fix); break;
  case 5: fuzz_bat (data, size); break;
  default: break;
  }
  return 0;
}
