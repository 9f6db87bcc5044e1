/* test-vhdx-log.c: BAT geometry and validation, and the log: the active
 * sequence of a qemu image's log (vhdx-golden.h), entries we encode
 * (wrapping at the log's end), and the damage that must invalidate an
 * entry. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <string.h>

#include "byteorder.h"
#include "internal.h"
#include "vhdx-golden.h"
#include "vhdx/bat.h"
#include "vhdx/crc32c.h"
#include "vhdx/header.h"
#include "vhdx/log.h"

#define MiB (UINT64_C (1) << 20)

static void
expect_error (int r, int errnum, const char *substring)
{
  cr_assert_eq (r, -1);
  cr_expect_eq (vhd_get_errno (), errnum, "errno %d, want %d (%s)",
                vhd_get_errno (), errnum, vhd_get_error ());
  cr_expect (strstr (vhd_get_error (), substring) != NULL,
             "message \"%s\" lacks \"%s\"", vhd_get_error (), substring);
}

/* --- BAT ------------------------------------------------------------------ */

struct geo_case {
  uint64_t size;
  uint32_t bs, ls;
  bool parent;
  uint64_t ratio, data, bitmaps, entries;
};

ParameterizedTestParameters (bat, geometry)
{
  static struct geo_case cases[] = {
    /* dissect-dynamic.vhdx: one block */
    { 10 * MiB, 32 * MiB, 512, false, 128, 1, 1, 1 },
    /* dissect-differencing.avhdx: 8 GiB, 2 MiB blocks */
    { 8192 * MiB, 2 * MiB, 512, true, 2048, 4096, 2, 4098 },
    { 8192 * MiB, 2 * MiB, 512, false, 2048, 4096, 2, 4097 },
    /* iotest-dirtylog: 10 GiB, 1 MiB blocks */
    { 10240 * MiB, MiB, 512, false, 4096, 10240, 3, 10242 },
    { 10240 * MiB, MiB, 4096, true, 32768, 10240, 1, 32769 },
    { 64 * MiB * 1024 * 1024, 256 * MiB, 4096, false, 128, 262144, 2048,
      264191 },
  };
  return cr_make_param_array (struct geo_case, cases,
                              sizeof cases / sizeof cases[0]);
}

ParameterizedTest (struct geo_case *c, bat, geometry)
{
  struct vhdx_bat_geometry g;

  vhdx_bat_geometry (c->size, c->bs, c->ls, c->parent, &g);
  cr_expect_eq (g.chunk_ratio, c->ratio);
  cr_expect_eq (g.data_blocks, c->data);
  cr_expect_eq (g.bitmap_blocks, c->bitmaps);
  cr_expect_eq (g.entries, c->entries);
}

Test (bat, entry_fields)
{
  uint64_t e = vhdx_bat_entry (VHDX_PAYLOAD_FULLY_PRESENT, 7 * MiB);
  struct vhdx_bat_geometry g = { .chunk_ratio = 4 };

  cr_expect_eq (e, 7 * MiB | 6);
  cr_expect_eq (vhdx_bat_state (e), 6);
  cr_expect_eq (vhdx_bat_offset (e | 0xff8), 7 * MiB); /* reserved bits */
  cr_expect_eq (vhdx_bat_payload_index (&g, 0), 0);
  cr_expect_eq (vhdx_bat_payload_index (&g, 4), 5);
  cr_expect_eq (vhdx_bat_payload_index (&g, 9), 11);
  cr_expect_eq (vhdx_bat_bitmap_index (&g, 1), 9);
}

/* A differencing 16 MiB disk of 1 MiB blocks, 4 MiB file. */
static uint64_t *bat;
static struct vhdx_bat_geometry geo;
static const struct vhdx_range avoid[] = {
  { MiB, 2 * MiB, "log" }, { 2 * MiB, 3 * MiB, "BAT" },
};

static int
validate (void)
{
  return vhdx_bat_validate (bat, &geo, 16 * MiB, MiB, 8 * MiB, avoid, 2);
}

static void
bat_setup (void)
{
  vhdx_bat_geometry (16 * MiB, MiB, 512, true, &geo);
  cr_assert_eq (geo.entries, 4097);
  bat = calloc (geo.entries, sizeof *bat);
  cr_assert_not_null (bat);
}

Test (bat, validation, .init = bat_setup)
{
  uint64_t sb = vhdx_bat_bitmap_index (&geo, 0);

  cr_expect_eq (validate (), 0);
  bat[0] = vhdx_bat_entry (VHDX_PAYLOAD_FULLY_PRESENT, 3 * MiB);
  bat[1] = vhdx_bat_entry (VHDX_PAYLOAD_ZERO, 0);
  bat[2] = vhdx_bat_entry (VHDX_PAYLOAD_UNMAPPED, 5 * MiB);
  cr_expect_eq (validate (), 0, "%s", vhd_get_error ());
  bat[3] = 4;
  expect_error (validate (), EBADMSG, "reserved state 4");
  bat[3] = vhdx_bat_entry (VHDX_PAYLOAD_FULLY_PRESENT, 8 * MiB);
  expect_error (validate (), EBADMSG, "past the end of the file");
  bat[3] = vhdx_bat_entry (VHDX_PAYLOAD_FULLY_PRESENT, 0);
  expect_error (validate (), EBADMSG, "header section");
  bat[3] = vhdx_bat_entry (VHDX_PAYLOAD_FULLY_PRESENT, MiB);
  expect_error (validate (), EBADMSG, "overlaps the log");
  bat[3] = vhdx_bat_entry (VHDX_PAYLOAD_PARTIALLY_PRESENT, 4 * MiB);
  expect_error (validate (), EBADMSG, "no sector bitmap");
  bat[sb] = vhdx_bat_entry (VHDX_SB_PRESENT, 5 * MiB);
  cr_expect_eq (validate (), 0, "%s", vhd_get_error ());
  bat[sb] = vhdx_bat_entry (VHDX_SB_PRESENT, 2 * MiB);
  expect_error (validate (), EBADMSG, "overlaps the BAT");
  bat[3] = 0;
  bat[sb] = 3;
  expect_error (validate (), EBADMSG, "sector bitmap in reserved state 3");
}

/* --- log ------------------------------------------------------------------ */

static uint8_t log_guid[16];

static void
dirty_guid (void)
{
  uint8_t *h = GOLDEN (dirty_header1);
  struct vhdx_header hdr;

  cr_assert_eq (vhdx_header_decode (h, &hdr), 0);
  memcpy (log_guid, hdr.log_guid, 16);
  free (h);
}

struct applied {
  unsigned n;
  uint64_t offset[8], length[8];
  uint8_t first[8];
};

static int
record (void *opaque, uint64_t offset, const uint8_t *data, uint64_t length)
{
  struct applied *a = opaque;

  cr_assert_lt (a->n, 8);
  a->offset[a->n] = offset;
  a->length[a->n] = length;
  a->first[a->n] = data ? data[8] : 0;
  a->n++;
  return 0;
}

Test (log, qemu_dirty_log_active_sequence, .init = dirty_guid)
{
  uint8_t *log = GOLDEN (dirty_log);
  struct vhdx_log_sequence seq;
  struct applied a = { 0 };

  cr_assert_eq (vhdx_log_find_active (log, MiB, log_guid, &seq), 0);
  cr_expect_eq (seq.count, 1);
  cr_expect_eq (seq.tail, 49152);
  cr_expect_eq (seq.sequence, 7);
  cr_expect_eq (seq.flushed_file_offset % MiB, 0);
  cr_assert_eq (vhdx_log_replay (log, MiB, &seq, record, &a), 0);
  cr_expect_eq (a.n, 1);
  cr_expect_eq (a.length[0], 4096);
  cr_expect_eq (a.offset[0] % 4096, 0);
  /* another GUID: no valid entry */
  log_guid[0] ^= 1;
  cr_assert_eq (vhdx_log_find_active (log, MiB, log_guid, &seq), 0);
  cr_expect_eq (seq.count, 0);
  free (log);
}

Test (log, damaged_entries_are_invalid, .init = dirty_guid)
{
  static const size_t damage[] = {
    49152 + 4,            /* checksum */
    49152 + 16,           /* sequence number in the header */
    49152 + 64 + 24,      /* descriptor's sequence number */
    49152 + 4096 + 4,     /* data sector's SequenceHigh */
    49152 + 4096 + 4092,  /* data sector's SequenceLow */
    49152 + 4096 + 100,   /* data (caught by the checksum) */
    49152 + 8,            /* entry length */
  };
  struct vhdx_log_sequence seq;

  for (size_t i = 0; i < sizeof damage / sizeof damage[0]; i++) {
    uint8_t *log = GOLDEN (dirty_log);
    log[damage[i]] ^= 0x10;
    cr_assert_eq (vhdx_log_find_active (log, MiB, log_guid, &seq), 0);
    cr_expect_eq (seq.count, 0, "damage at %zu not detected", damage[i]);
    free (log);
  }
}

static void
encode_at (uint8_t *log, uint32_t len, uint32_t at, uint64_t seq,
           uint32_t tail, const struct vhdx_log_page *p, unsigned n)
{
  uint64_t elen = vhdx_log_entry_length (n);
  uint8_t *e = malloc (elen);

  vhdx_log_entry_encode (e, seq, tail, log_guid, 4 * MiB, 5 * MiB, p, n);
  for (uint64_t i = 0; i < elen; i++)
    log[(at + i) % len] = e[i];
  free (e);
}

Test (log, our_entries_wrap_and_chain)
{
  uint8_t page1[4096], page2[4096];
  struct vhdx_log_page p[2] = { { 8 * MiB, page1 }, { 3 * MiB + 4096, page2 } };
  uint32_t len = MiB;
  uint8_t *log = calloc (1, len);
  struct vhdx_log_sequence seq;
  struct applied a = { 0 };

  memset (log_guid, 0x5a, 16);
  memset (page1, 0x11, sizeof page1);
  memset (page2, 0x22, sizeof page2);
  cr_expect_eq (vhdx_log_entry_length (2), 3 * 4096);
  /* entry 9 wraps: its data sectors are at the log's start */
  encode_at (log, len, len - 4096, 9, len - 4096, p, 2);
  cr_assert_eq (vhdx_log_find_active (log, len, log_guid, &seq), 0);
  cr_expect_eq (seq.count, 1);
  cr_expect_eq (seq.tail, len - 4096);
  cr_expect_eq (seq.last_file_offset, 5 * MiB);
  /* entry 10 follows, its tail at entry 9: both are replayed, in order */
  encode_at (log, len, 2 * 4096, 10, len - 4096, p + 1, 1);
  cr_assert_eq (vhdx_log_find_active (log, len, log_guid, &seq), 0);
  cr_expect_eq (seq.count, 2);
  cr_expect_eq (seq.sequence, 10);
  cr_assert_eq (vhdx_log_replay (log, len, &seq, record, &a), 0);
  cr_assert_eq (a.n, 3);
  cr_expect_eq (a.offset[0], 8 * MiB);
  cr_expect_eq (a.first[0], 0x11);
  cr_expect_eq (a.offset[2], 3 * MiB + 4096);
  cr_expect_eq (a.first[2], 0x22);
  /* a head whose tail lies outside its run: the run 9-10 is not a
   * complete sequence, and (runs being extended as far as they go) no
   * other one is there */
  encode_at (log, len, 2 * 4096, 10, 100 * 4096, p + 1, 1);
  cr_assert_eq (vhdx_log_find_active (log, len, log_guid, &seq), 0);
  cr_expect_eq (seq.count, 0);
  free (log);
}

Test (log, zero_descriptors)
{
  uint32_t len = MiB;
  uint8_t *log = calloc (1, len);
  struct vhdx_log_sequence seq;
  struct applied a = { 0 };

  memset (log_guid, 0x33, 16);
  encode_at (log, len, 0, 4, 0, NULL, 0);
  /* turn the entry into one zero descriptor of 2 MiB at 6 MiB */
  put_le32 (log + VHDX_LOGE_DESC_COUNT, 1);
  uint8_t *d = log + VHDX_LOGE_HEADER_SIZE;
  put_le32 (d + VHDX_LOGD_SIGNATURE, VHDX_LOGD_ZERO_MAGIC);
  put_le64 (d + VHDX_LOGD_LEADING, 2 * MiB);
  put_le64 (d + VHDX_LOGD_FILE_OFFSET, 6 * MiB);
  put_le64 (d + VHDX_LOGD_SEQUENCE, 4);
  put_le32 (log + VHDX_LOGE_CHECKSUM,
            vhdx_checksum (log, 4096, VHDX_LOGE_CHECKSUM));
  cr_assert_eq (vhdx_log_find_active (log, len, log_guid, &seq), 0);
  cr_assert_eq (seq.count, 1);
  cr_assert_eq (vhdx_log_replay (log, len, &seq, record, &a), 0);
  cr_expect_eq (a.n, 1);
  cr_expect_eq (a.offset[0], 6 * MiB);
  cr_expect_eq (a.length[0], 2 * MiB);
  free (log);
}
