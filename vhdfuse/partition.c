/* partition.c: the partitions of the disk, from its MBR or GPT.
 *
 * What the Linux msdos and efi partition parsers do (block/partitions/),
 * cut down to what vhdfuse needs: each partition's number, start and size.
 * Every number comes from the image and is checked before use: a damaged
 * table gives fewer partitions or none, never a crash.
 *
 *   MBR  sector 0: four 16-byte entries at 446, 55 AA at 510.  A boot
 *        indicator other than 0x00 or 0x80 means the sector is not a
 *        partition table (a FAT boot sector also ends in 55 AA).  Any
 *        entry of type 0xEE (protective or hybrid MBR) hands over to the
 *        GPT.  Primary partitions are numbered 1-4 by their slot.  The
 *        logical partitions of an extended partition (type 0x05, 0x0F or
 *        0x85: a chain of EBRs, each holding partitions relative to
 *        itself and a link relative to the extended partition) are
 *        numbered from 5 on in chain order, as Linux numbers them; the
 *        extended partition itself is not exposed.
 *   GPT  header at LBA 1, or the backup at the last LBA when the primary
 *        is damaged: signature, header CRC32, its own LBA; then the entry
 *        array's CRC32.  Entry i with a non-zero type GUID is partition
 *        i + 1.  Entries reaching past the disk are skipped.
 *
 * LBAs count logical sectors.  The GPT header is looked for at the image's
 * logical sector size first, then at the other of 512 and 4096 (a table
 * written by a tool that assumed the other size).  MBR LBAs use the
 * logical sector size.  Partitions reaching past the end of the disk are
 * cut at the end, as Linux does.
 *
 * Every range the scan reads is recorded in the table, with the first
 * 8 KiB where a new table would appear, so that files.c knows which
 * writes may change the result.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "vhdfuse.h"

#define MAX_PARTITIONS 256       /* Linux's DISK_MAX_PARTS */
#define MAX_EBRS 128             /* EBRs followed in one extended partition */
#define MAX_GPT_ARRAY (1U << 20) /* bytes of GPT entries read at most */
#define MAX_SECTOR 4096
#define HEAD_BYTES 8192          /* LBA 0 and LBA 1 at either sector size */

/* MBR and EBR layout. */
enum {
  MBR_ENTRIES = 446,
  MBR_ENTRY_SIZE = 16,
  MBR_SIGNATURE = 510,
  MBR_SIZE = 512,
  MBR_E_BOOT = 0,   /* u8: 0x00, or 0x80 active */
  MBR_E_TYPE = 4,   /* u8: 0 unused */
  MBR_E_LBA = 8,    /* le32 */
  MBR_E_COUNT = 12, /* le32 sectors */
};

/* GPT header and entry layout (UEFI 2.x, "GUID Partition Table"). */
enum {
  GPT_H_SIGNATURE = 0,    /* "EFI PART" */
  GPT_H_SIZE = 12,        /* le32, 92 .. sector size */
  GPT_H_CRC = 16,         /* le32, CRC32 of the header with this zeroed */
  GPT_H_MY_LBA = 24,      /* le64 */
  GPT_H_ENTRIES_LBA = 72, /* le64 */
  GPT_H_N_ENTRIES = 80,   /* le32 */
  GPT_H_ENTRY_SIZE = 84,  /* le32, 128 * 2^n */
  GPT_H_ENTRIES_CRC = 88, /* le32 */
  GPT_H_MIN_SIZE = 92,
  GPT_E_TYPE = 0,         /* GUID, all zero: unused */
  GPT_E_FIRST = 32,       /* le64 LBA */
  GPT_E_LAST = 40,        /* le64 LBA, inclusive */
  GPT_E_MIN_SIZE = 128,
};

struct mbr_entry {
  uint8_t boot, type;
  uint32_t lba, count;
};

struct gpt_header {
  uint64_t entries_lba;
  uint32_t n_entries, entry_size, entries_crc;
};

struct scan {
  struct vhd_disk *disk;
  uint64_t size;
  unsigned ss;            /* logical sector size */
  unsigned next_logical;  /* number of the next logical partition */
  struct part_table *t;
};

static uint32_t
get_le32 (const uint8_t *p)
{
  return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16
         | (uint32_t) p[3] << 24;
}

static uint64_t
get_le64 (const uint8_t *p)
{
  return (uint64_t) get_le32 (p) | (uint64_t) get_le32 (p + 4) << 32;
}

static int
note_range (struct part_table *t, uint64_t start, uint64_t length)
{
  struct byte_range *r = reallocarray (t->read, t->n_read + 1, sizeof *r);

  if (r == NULL)
    return -1;
  t->read = r;
  r[t->n_read++] = (struct byte_range) { start, length };
  return 0;
}

/* Add a partition, cut at the end of the disk.  Partitions starting past
 * the end, empty ones and those past MAX_PARTITIONS are left out. */
static int
add_part (struct scan *s, unsigned number, uint64_t start, uint64_t size)
{
  struct part_table *t = s->t;
  struct partition *p;

  if (start >= s->size || size == 0 || t->n_parts >= MAX_PARTITIONS)
    return 0;
  if (size > s->size - start)
    size = s->size - start;
  p = reallocarray (t->parts, t->n_parts + 1, sizeof *p);
  if (p == NULL)
    return -1;
  t->parts = p;
  p[t->n_parts++] = (struct partition) { number, start, size };
  return 0;
}

/* Read len bytes at offset: 1 done, 0 outside the disk (the table that
 * points there is invalid), -1 error. */
static int
scan_read (struct scan *s, void *buf, size_t len, uint64_t offset)
{
  if (offset > s->size || len > s->size - offset)
    return 0;
  if (note_range (s->t, offset, len) == -1)
    return -1;
  if (vhd_pread (s->disk, buf, len, offset) == -1)
    return -1;
  return 1;
}

/* ------------------------------------------------------------------ GPT */

/* Decode the GPT header read from lba (a sector of ss bytes); -1 if it is
 * not a valid one. */
static int
gpt_header_decode (const uint8_t *p, unsigned ss, uint64_t lba,
                   struct gpt_header *h)
{
  static const uint8_t zero_crc[4];
  uint32_t hsize = get_le32 (p + GPT_H_SIZE);
  uLong crc;

  if (memcmp (p + GPT_H_SIGNATURE, "EFI PART", 8) != 0)
    return -1;
  if (hsize < GPT_H_MIN_SIZE || hsize > ss)
    return -1;
  crc = crc32 (0, p, GPT_H_CRC);
  crc = crc32 (crc, zero_crc, sizeof zero_crc);
  crc = crc32 (crc, p + GPT_H_CRC + 4, hsize - GPT_H_CRC - 4);
  if (crc != get_le32 (p + GPT_H_CRC) || get_le64 (p + GPT_H_MY_LBA) != lba)
    return -1;
  h->entries_lba = get_le64 (p + GPT_H_ENTRIES_LBA);
  h->n_entries = get_le32 (p + GPT_H_N_ENTRIES);
  h->entry_size = get_le32 (p + GPT_H_ENTRY_SIZE);
  h->entries_crc = get_le32 (p + GPT_H_ENTRIES_CRC);
  if (h->entry_size < GPT_E_MIN_SIZE || h->entry_size % 8 != 0
      || h->n_entries > MAX_GPT_ARRAY / h->entry_size)
    return -1;
  return 0;
}

static bool
all_zero (const uint8_t *p, size_t n)
{
  return n == 0 || (p[0] == 0 && memcmp (p, p + 1, n - 1) == 0);
}

static int
add_gpt_entries (struct scan *s, unsigned ss, const struct gpt_header *h,
                 const uint8_t *array)
{
  uint64_t sectors = s->size / ss;
  uint32_t i;

  for (i = 0; i < h->n_entries; i++) {
    const uint8_t *e = array + (size_t) i * h->entry_size;
    uint64_t first = get_le64 (e + GPT_E_FIRST);
    uint64_t last = get_le64 (e + GPT_E_LAST);

    if (all_zero (e + GPT_E_TYPE, 16) || first > last || last >= sectors)
      continue;
    if (add_part (s, i + 1, first * ss, (last - first + 1) * ss) == -1)
      return -1;
  }
  return 1;
}

/* Look for a GPT whose header is at lba, in sectors of ss bytes: 1 found
 * (its partitions added), 0 none valid there, -1 error. */
static int
try_gpt (struct scan *s, unsigned ss, uint64_t lba)
{
  uint8_t hdr[MAX_SECTOR];
  struct gpt_header h;
  uint8_t *array;
  size_t bytes;
  int r;

  r = scan_read (s, hdr, ss, lba * ss);
  if (r <= 0 || gpt_header_decode (hdr, ss, lba, &h) == -1)
    return r <= 0 ? r : 0;
  bytes = (size_t) h.n_entries * h.entry_size;
  if (bytes == 0)
    return 1;
  if (h.entries_lba > s->size / ss)
    return 0;
  array = malloc (bytes);
  if (array == NULL)
    return -1;
  r = scan_read (s, array, bytes, h.entries_lba * ss);
  if (r > 0 && crc32 (0, array, (uInt) bytes) != h.entries_crc)
    r = 0;
  if (r > 0)
    r = add_gpt_entries (s, ss, &h, array);
  free (array);
  return r;
}

/* The primary header at either sector size, then the backup. */
static int
scan_gpt (struct scan *s)
{
  const unsigned sizes[2] = { s->ss, s->ss == 512 ? 4096 : 512 };
  int backup, i, r;

  for (backup = 0; backup < 2; backup++) {
    for (i = 0; i < 2; i++) {
      uint64_t sectors = s->size / sizes[i];
      if (sectors < 3)
        continue;
      r = try_gpt (s, sizes[i], backup ? sectors - 1 : 1);
      if (r != 0)
        return r;
    }
  }
  return 0;
}

/* ------------------------------------------------------------------ MBR */

/* Decode the four entries of an MBR or EBR; false when the sector is not
 * a partition table. */
static bool
mbr_decode (const uint8_t *sector, struct mbr_entry e[4])
{
  int i;

  if (sector[MBR_SIGNATURE] != 0x55 || sector[MBR_SIGNATURE + 1] != 0xAA)
    return false;
  for (i = 0; i < 4; i++) {
    const uint8_t *p = sector + MBR_ENTRIES + i * MBR_ENTRY_SIZE;
    e[i].boot = p[MBR_E_BOOT];
    e[i].type = p[MBR_E_TYPE];
    e[i].lba = get_le32 (p + MBR_E_LBA);
    e[i].count = get_le32 (p + MBR_E_COUNT);
    if (e[i].boot != 0x00 && e[i].boot != 0x80)
      return false;
  }
  return true;
}

static bool
is_extended (uint8_t type)
{
  return type == 0x05 || type == 0x0F || type == 0x85;
}

/* Follow the EBR chain of the extended partition starting at ext_lba. */
static int
scan_extended (struct scan *s, uint64_t ext_lba)
{
  uint64_t ebr = ext_lba;
  int hops, i;

  for (hops = 0; hops < MAX_EBRS; hops++) {
    uint8_t sector[MBR_SIZE];
    struct mbr_entry e[4];
    uint64_t next = 0;
    int r = scan_read (s, sector, sizeof sector, ebr * s->ss);

    if (r <= 0 || !mbr_decode (sector, e))
      return r;
    for (i = 0; i < 4; i++) {
      if (e[i].type == 0 || e[i].count == 0)
        continue;
      if (is_extended (e[i].type)) {
        if (next == 0)
          next = ext_lba + e[i].lba;
      }
      else if (add_part (s, s->next_logical++, (ebr + e[i].lba) * s->ss,
                         (uint64_t) e[i].count * s->ss) == -1)
        return -1;
    }
    if (next == 0 || next == ebr)
      return 0;
    ebr = next;
  }
  return 0;
}

static int
scan_mbr (struct scan *s)
{
  uint8_t sector[MBR_SIZE];
  struct mbr_entry e[4];
  int i, r;

  r = scan_read (s, sector, sizeof sector, 0);
  if (r <= 0 || !mbr_decode (sector, e))
    return r;
  for (i = 0; i < 4; i++)
    if (e[i].type == 0xEE)
      return scan_gpt (s);
  for (i = 0; i < 4; i++) {
    if (e[i].type == 0 || e[i].count == 0)
      continue;
    if (is_extended (e[i].type))
      r = scan_extended (s, e[i].lba);
    else
      r = add_part (s, (unsigned) i + 1, (uint64_t) e[i].lba * s->ss,
                    (uint64_t) e[i].count * s->ss);
    if (r == -1)
      return -1;
  }
  return 1;
}

static int
by_number (const void *a, const void *b)
{
  const struct partition *pa = a, *pb = b;

  return (pa->number > pb->number) - (pa->number < pb->number);
}

int
partition_scan (struct vhd_disk *disk, uint64_t size, unsigned sector_size,
                struct part_table *t)
{
  struct scan s = { disk, size, sector_size, 5, t };
  int r;

  memset (t, 0, sizeof *t);
  if (sector_size != 512 && sector_size != 4096)
    s.ss = 512;
  if (note_range (t, 0, HEAD_BYTES) == -1)
    return -1;
  r = scan_mbr (&s);
  if (t->n_parts > 1)
    qsort (t->parts, t->n_parts, sizeof *t->parts, by_number);
  return r == -1 ? -1 : 0;
}

void
part_table_free (struct part_table *t)
{
  free (t->parts);
  free (t->read);
  memset (t, 0, sizeof *t);
}
