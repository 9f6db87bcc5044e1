/* seed-tool.c: helpers for make-seeds.sh that the command-line tools do
 * not offer.  Not a fuzzer; linked with the plain (unsanitized) library.
 *
 *   seed-tool write IMAGE OFFSET LENGTH SEED
 *       write LENGTH pattern bytes at OFFSET of IMAGE (read-write, with
 *       its parent chain) and flush: data in differencing disks.
 *   seed-tool make-vhd OUT SIZE BLOCK_SIZE [PARENT]
 *       a dynamic (differencing over PARENT) VHD with small blocks
 *   seed-tool sparse IMAGE OUT
 *       IMAGE in the open targets' sparse input form (fuzz-common.h)
 *   seed-tool dirty-vhdx IN OUT
 *       run a small workload over a copy of the VHDX IN, crashing it
 *       at successive writes, until an image is left whose log must be
 *       replayed; write that image to OUT.
 *   seed-tool extract-vhdx IMAGE PREFIX
 *       write the seeds of fuzz-vhdx-structures found in IMAGE (a
 *       selector byte, then the structure) to PREFIX-headers,
 *       PREFIX-regions, PREFIX-metadata, PREFIX-locator, PREFIX-log,
 *       PREFIX-bat.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "byteorder.h"
#include "internal.h"
#include "vhd/dynheader.h"
#include "vhd/footer.h"
#include "vhdx/bat.h"
#include "vhdx/header.h"
#include "vhdx/log.h"
#include "vhdx/metadata.h"
#include "vhdx/region.h"

#define MiB (UINT64_C (1) << 20)

/* The parent locator metadata item (MS-VHDX 2.6.2.6). */
static const uint8_t locator_item_guid[GUID_SIZE] = {
  0xa8, 0xd3, 0x5f, 0x2d, 0xb3, 0x0b, 0x45, 0x4d,
  0xab, 0xf7, 0xd3, 0xd8, 0x48, 0x34, 0xab, 0x0c,
};

static void
die (const char *what)
{
  fprintf (stderr, "seed-tool: %s: %s\n", what,
           vhd_get_error () ? vhd_get_error () : strerror (errno));
  exit (1);
}

static uint8_t *
slurp (const char *path, size_t *len)
{
  FILE *f = fopen (path, "rb");
  uint8_t *buf = NULL;
  size_t cap = 0, n = 0, r;

  if (f == NULL)
    die (path);
  for (;;) {
    if (n == cap) {
      cap = cap ? cap * 2 : 1 << 20;
      buf = realloc (buf, cap);
      if (buf == NULL)
        die ("realloc");
    }
    r = fread (buf + n, 1, cap - n, f);
    if (r == 0)
      break;
    n += r;
  }
  fclose (f);
  *len = n;
  return buf;
}

static void
spit (const char *path, uint8_t sel, const uint8_t *buf, size_t len)
{
  FILE *f = fopen (path, "wb");

  if (f == NULL)
    die (path);
  if (sel != 0xff)
    fputc (sel, f);
  if (fwrite (buf, 1, len, f) != len || fclose (f) != 0)
    die (path);
}

static void
pattern (uint8_t *buf, size_t len, unsigned seed)
{
  size_t i;

  for (i = 0; i < len; i++)
    buf[i] = (uint8_t) (seed * 31 + i * 13 + (i >> 9));
}

/* --- write ------------------------------------------------------------------ */

static int
cmd_write (char **argv)
{
  uint64_t off = strtoull (argv[1], NULL, 0);
  size_t len = strtoul (argv[2], NULL, 0);
  unsigned seed = (unsigned) strtoul (argv[3], NULL, 0);
  struct vhd_disk *d = vhd_open (argv[0], 0);
  uint8_t *buf = malloc (len ? len : 1);

  if (d == NULL)
    die (argv[0]);
  pattern (buf, len, seed);
  if (vhd_pwrite (d, buf, len, off) == -1 || vhd_flush (d) == -1)
    die ("write");
  vhd_close (d);
  free (buf);
  return 0;
}

/* --- make-vhd ---------------------------------------------------------------- */

/* A dynamic (or, given PARENT, differencing) VHD with blocks smaller than
 * vhdtool allows (it creates 512 KiB and up), so that images with
 * several blocks stay a few KiB: [footer copy][header][BAT][locator
 * data][footer].  IDs and times are fixed, so seeds are reproducible. */
static int
cmd_make_vhd (char **argv)
{
  uint64_t size = strtoull (argv[1], NULL, 0);
  uint32_t bs = (uint32_t) strtoul (argv[2], NULL, 0);
  const char *parent = argv[3];
  struct vhd_footer f, pf;
  struct vhd_dynheader h;
  uint32_t n = (uint32_t) ((size + bs - 1) / bs), i;
  uint64_t bat_bytes = ((uint64_t) n * 4 + 511) / 512 * 512, pos;
  uint8_t *img;
  size_t len = 1536 + bat_bytes + 2 * 1024 + 512;
  uint8_t loc[1024];

  memset (&f, 0, sizeof f);
  memset (&h, 0, sizeof h);
  f.features = VHD_FEATURES_RESERVED;
  f.version = VHD_FORMAT_VERSION;
  f.data_offset = 512;
  f.timestamp = 0x2a000000;
  memcpy (f.creator_app, "fuzz", 4);
  f.creator_version = 0x00010000;
  f.creator_host_os = VHD_HOST_OS_WINDOWS;
  f.original_size = f.current_size = size;
  vhd_geometry (size, &f.cylinders, &f.heads, &f.sectors_per_track);
  f.disk_type = parent ? VHD_DISK_DIFFERENCING : VHD_DISK_DYNAMIC;
  for (i = 0; i < 16; i++)
    f.unique_id[i] = (uint8_t) (i * 17 + (parent ? 5 : 3) + size);
  h.data_offset = UINT64_MAX;
  h.table_offset = 1536;
  h.header_version = 0x00010000;
  h.max_table_entries = n;
  h.block_size = bs;
  img = calloc (1, len);
  if (img == NULL)
    die ("calloc");
  memset (img + 1536, 0xff, bat_bytes);
  pos = 1536 + bat_bytes;
  if (parent) {
    size_t plen;
    uint8_t *p = slurp (parent, &plen);
    const char *base = strrchr (parent, '/') ? strrchr (parent, '/') + 1
                                             : parent;
    char abs[4096];
    ssize_t l;
    if (plen < 512 || vhd_footer_decode (p + plen - 512, &pf) == -1)
      die (parent);
    free (p);
    memcpy (h.parent_unique_id, pf.unique_id, 16);
    h.parent_timestamp = pf.timestamp;
    if (vhd_dynheader_set_parent_name (&h, base) == -1)
      die ("parent name");
    /* W2ru: the relative path; W2ku: an absolute one. */
    snprintf (abs, sizeof abs, "C:\\images\\%s", base);
    l = vhd_locator_encode_path (base, loc, sizeof loc);
    if (l < 0)
      die ("locator");
    memcpy (img + pos, loc, (size_t) l);
    h.locators[0] = (struct vhd_locator) { VHD_PLATFORM_W2RU, 1024,
                                           (uint32_t) l, pos };
    pos += 1024;
    l = vhd_locator_encode_path (abs, loc, sizeof loc);
    if (l < 0)
      die ("locator");
    memcpy (img + pos, loc, (size_t) l);
    h.locators[1] = (struct vhd_locator) { VHD_PLATFORM_W2KU, 1024,
                                           (uint32_t) l, pos };
    pos += 1024;
  }
  len = pos + 512;
  vhd_footer_encode (&f, img);
  vhd_dynheader_encode (&h, img + 512);
  vhd_footer_encode (&f, img + pos);
  spit (argv[0], 0xff, img, len);
  free (img);
  return 0;
}

/* --- dirty-vhdx -------------------------------------------------------------- */

static void
workload (struct vhd_disk *d)
{
  static const struct { uint64_t off; size_t len; } w[] = {
    { 0, 4096 }, { MiB + 512, 1000 }, { 2 * MiB - 4096, 8192 },
    { 3 * MiB, 512 },
  };
  uint8_t buf[8192];
  size_t i;

  for (i = 0; i < sizeof w / sizeof w[0]; i++) {
    if (w[i].off + w[i].len > d->size)
      continue;
    pattern (buf, w[i].len, (unsigned) i + 1);
    if (vhd_pwrite (d, buf, w[i].len, w[i].off) == -1)
      return;
  }
  if (vhd_flush (d) == -1)
    return;
}

static int
cmd_dirty_vhdx (char **argv)
{
  size_t len;
  uint8_t *img = slurp (argv[0], &len);
  long n;

  for (n = 0; n < 1000; n++) {
    struct vhd_disk *d = disk_open_io (io_mem_new (img, len), argv[0],
                                       VHD_OPEN_NO_PARENT, NULL);
    struct vhd_disk *ro;
    const uint8_t *p;
    uint8_t *snap;
    size_t snap_len;
    long total;

    if (d == NULL)
      die (argv[0]);
    io_mem_fail_after (d->io, n, false);
    workload (d);
    total = io_mem_write_count (d->io);
    p = io_mem_data (d->io, &snap_len);
    snap = malloc (snap_len);
    memcpy (snap, p, snap_len);
    vhd_close (d);
    if (total < n) {
      fprintf (stderr, "seed-tool: no crash point leaves a dirty log\n");
      return 1;
    }
    ro = disk_open_io (io_mem_new (snap, snap_len), "snapshot",
                       VHD_OPEN_RDONLY | VHD_OPEN_NO_PARENT, NULL);
    if (ro != NULL && vhd_get_log_dirty (ro) == 1) {
      vhd_close (ro);
      spit (argv[1], 0xff, snap, snap_len);
      free (snap);
      free (img);
      return 0;
    }
    vhd_close (ro);
    free (snap);
  }
  fprintf (stderr, "seed-tool: gave up looking for a dirty log\n");
  return 1;
}

/* --- sparse ------------------------------------------------------------------ */

static size_t trim (const uint8_t *buf, size_t len, size_t unit);

/* The open targets' sparse form of an image (fuzz-common.h): its
 * non-zero 512-byte sectors, runs merged across gaps of up to 4 KiB. */
static int
cmd_sparse (char **argv)
{
  size_t len, pos = 0;
  uint8_t *img = slurp (argv[0], &len);
  FILE *f = fopen (argv[1], "wb");
  uint8_t hdr[12];

  if (f == NULL)
    die (argv[1]);
  fwrite ("VHDFUZZ1", 1, 8, f);
  put_le64 (hdr, len);
  fwrite (hdr, 1, 8, f);
  while (pos < len) {
    size_t start, end, gap;
    while (pos < len && trim (img + pos, len - pos < 512 ? len - pos : 512,
                              len - pos < 512 ? len - pos : 512) == 0)
      pos += 512;
    if (pos >= len)
      break;
    start = end = pos;
    for (gap = 0; pos < len && gap <= 4096; pos += 512) {
      size_t n = len - pos < 512 ? len - pos : 512;
      if (trim (img + pos, n, n) == 0)
        gap += n;
      else {
        gap = 0;
        end = pos + n;
      }
    }
    pos = end;
    put_le64 (hdr, start);
    put_le32 (hdr + 8, (uint32_t) (end - start));
    fwrite (hdr, 1, 12, f);
    fwrite (img + start, 1, end - start, f);
  }
  if (fclose (f) != 0)
    die (argv[1]);
  free (img);
  return 0;
}

/* --- extract-vhdx ------------------------------------------------------------ */

static void
out_path (char *buf, size_t size, const char *prefix, const char *what)
{
  snprintf (buf, size, "%s-%s", prefix, what);
}

/* Length of buf without its trailing zero sectors of `unit` bytes. */
static size_t
trim (const uint8_t *buf, size_t len, size_t unit)
{
  while (len >= unit) {
    size_t i;
    for (i = len - unit; i < len && buf[i] == 0; i++)
      ;
    if (i < len)
      break;
    len -= unit;
  }
  return len;
}

static int
cmd_extract_vhdx (char **argv)
{
  size_t len, n;
  uint8_t *img = slurp (argv[0], &len), *p;
  const char *prefix = argv[1];
  char path[4096];
  struct vhdx_header h;
  struct vhdx_regions *r = malloc (sizeof *r);
  unsigned which;

  if (len < 5 * MiB / 4 || r == NULL)
    die ("image too small");
  /* 0: file identifier (first 4 KiB) and both headers. */
  p = calloc (1, 3 * VHDX_HDR_SIZE);
  memcpy (p, img, VHDX_HDR_SIZE);
  memcpy (p + VHDX_HDR_SIZE, img + VHDX_HEADER1_OFFSET, VHDX_HDR_SIZE);
  memcpy (p + 2 * VHDX_HDR_SIZE, img + VHDX_HEADER2_OFFSET, VHDX_HDR_SIZE);
  out_path (path, sizeof path, prefix, "headers");
  spit (path, 0, p, 3 * VHDX_HDR_SIZE);
  free (p);
  /* 1: region table, without its trailing zeros. */
  out_path (path, sizeof path, prefix, "regions");
  spit (path, 1, img + VHDX_REGION1_OFFSET,
        trim (img + VHDX_REGION1_OFFSET, VHDX_RGN_SIZE, 16));
  if (vhdx_header_select (img + VHDX_HEADER1_OFFSET,
                          img + VHDX_HEADER2_OFFSET, &h, &which) == -1
      || vhdx_region_decode (img + VHDX_REGION1_OFFSET, r) == -1)
    die ("decoding the image");
  /* 2: metadata region, up to its last item; 3: the parent locator. */
  if (r->metadata->offset + r->metadata->length <= len) {
    const uint8_t *m = img + r->metadata->offset;
    unsigned count = get_le16 (m + VHDX_MD_COUNT), i;
    size_t end = VHDX_MD_TABLE_SIZE;
    for (i = 0; i < count && i < VHDX_MD_MAX_ENTRIES; i++) {
      const uint8_t *e = m + VHDX_MD_ENTRIES + i * VHDX_MDE_SIZE;
      uint32_t off = get_le32 (e + VHDX_MDE_OFFSET);
      uint32_t l = get_le32 (e + VHDX_MDE_LENGTH);
      if ((uint64_t) off + l <= r->metadata->length && off + l > end)
        end = off + l;
      uint8_t g[GUID_SIZE];
      guid_decode (e + VHDX_MDE_ID, g);
      if (guid_eq (g, locator_item_guid) && l > 0
          && off + l <= r->metadata->length) {
        out_path (path, sizeof path, prefix, "locator");
        spit (path, 3, m + off, l);
      }
    }
    out_path (path, sizeof path, prefix, "metadata");
    spit (path, 2, m, end);
  }
  /* 4: the log, up to its last used sector. */
  if (h.log_length && h.log_offset + h.log_length <= len) {
    n = trim (img + h.log_offset, h.log_length, VHDX_LOG_SECTOR);
    if (n > 0) {
      out_path (path, sizeof path, prefix, "log");
      spit (path, 4, img + h.log_offset, n);
    }
  }
  /* 5: disk parameters as fuzz_bat reads them, then the BAT. */
  if (r->bat->offset + r->bat->length <= len) {
    struct vhdx_metadata md;
    struct vhdx_bat_geometry geo;
    uint8_t params[32] = { 0 };
    size_t bat_len;
    if (vhdx_metadata_decode (img + r->metadata->offset,
                              r->metadata->length, &md) == 0) {
      vhdx_bat_geometry (md.disk_size, md.block_size, md.logical_sector,
                         md.has_parent, &geo);
      bat_len = (size_t) geo.entries * 8;
      if (bat_len > r->bat->length)
        bat_len = r->bat->length;
      put_le64 (params, md.disk_size);
      params[8] = (uint8_t) (__builtin_ctz (md.block_size) - 20);
      params[9] = md.logical_sector == 4096;
      params[10] = md.has_parent;
      put_le64 (params + 16, len);
      put_le32 (params + 24, (uint32_t) (r->metadata->offset >> 20));
      put_le16 (params + 28, (uint16_t) (r->metadata->length >> 20));
      p = calloc (1, 32 + bat_len);
      memcpy (p, params, 32);
      memcpy (p + 32, img + r->bat->offset, bat_len);
      out_path (path, sizeof path, prefix, "bat");
      spit (path, 5, p, 32 + bat_len);
      free (p);
    }
    vhdx_metadata_free (&md);
  }
  free (r);
  free (img);
  return 0;
}

int
main (int argc, char **argv)
{
  if (argc == 6 && strcmp (argv[1], "write") == 0)
    return cmd_write (argv + 2);
  if ((argc == 5 || argc == 6) && strcmp (argv[1], "make-vhd") == 0) {
    argv[5] = argc == 6 ? argv[5] : NULL;
    return cmd_make_vhd (argv + 2);
  }
  if (argc == 4 && strcmp (argv[1], "sparse") == 0)
    return cmd_sparse (argv + 2);
  if (argc == 4 && strcmp (argv[1], "dirty-vhdx") == 0)
    return cmd_dirty_vhdx (argv + 2);
  if (argc == 4 && strcmp (argv[1], "extract-vhdx") == 0)
    return cmd_extract_vhdx (argv + 2);
  fprintf (stderr, "usage: seed-tool write IMAGE OFFSET LENGTH SEED\n"
                   "       seed-tool make-vhd OUT SIZE BLOCK_SIZE [PARENT]\n"
                   "       seed-tool sparse IMAGE OUT\n"
                   "       seed-tool dirty-vhdx IN OUT\n"
                   "       seed-tool extract-vhdx IMAGE PREFIX\n");
  return 2;
}
