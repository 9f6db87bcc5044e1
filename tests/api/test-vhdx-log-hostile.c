/* test-vhdx-log-hostile.c: VHDX logs that are well-formed enough to be
 * replayed but ask for too much (MS-VHDX 2.3; the limits are in
 * libvhd/vhdx/log.h).  Each one must be refused with an errno and a
 * message naming the field, before anything is applied: a read-only open
 * and a refused read-write open leave the file byte-identical.
 *
 * The image is the 64 MiB dynamic one of test-vhdx-open.c (1 MiB log at
 * 1 MiB); entries are built here byte by byte, zero descriptors included
 * (vhdx_log_entry_encode writes data descriptors only). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "byteorder.h"
#include "internal.h"
#include "vhdx/crc32c.h"
#include "vhdx/header.h"
#include "vhdx/log.h"

#define MiB (UINT64_C (1) << 20)
#define LOG_OFFSET MiB
#define SECTOR VHDX_LOG_SECTOR

static uint8_t *img;
static size_t img_len;
static const uint8_t guid[16] = {
  0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
  0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
};

static void
setup (void)
{
  struct create_params p = { .type = VHD_TYPE_DYNAMIC, .size = 64 * MiB,
                             .block_size = MiB, .logical_sector = 512,
                             .physical_sector = 512 };
  struct io *io = io_mem_new (NULL, 0);
  const uint8_t *data;

  cr_assert_eq (vhdx_format_ops.create (io, &p), 0, "%s", vhd_get_error ());
  data = io_mem_data (io, &img_len);
  img = malloc (img_len);
  memcpy (img, data, img_len);
  io->ops->close (io);
}

static void
teardown (void)
{
  free (img);
}

TestSuite (vhdx_log_hostile, .init = setup, .fini = teardown);

/* One descriptor of an entry we build. */
struct desc {
  bool zero;
  uint64_t file_offset;
  uint64_t zero_length; /* zero descriptors */
};

static uint64_t
entry_length (const struct desc *d, unsigned n)
{
  uint64_t sectors = (64 + 32 * (uint64_t) n + SECTOR - 1) / SECTOR;

  for (unsigned k = 0; k < n; k++)
    sectors += !d[k].zero;
  return sectors * SECTOR;
}

/* Encode an entry (sequence seq, its own tail) into out. */
static void
build_entry (uint8_t *out, uint64_t seq, uint32_t tail, uint64_t flushed,
             uint64_t last, const struct desc *d, unsigned n)
{
  uint64_t len = entry_length (d, n);
  uint64_t data = len / SECTOR;
  unsigned k;

  for (k = 0; k < n; k++)
    data -= !d[k].zero;
  data *= SECTOR; /* offset of the first data sector */
  memset (out, 0, (size_t) len);
  put_le32 (out + VHDX_LOGE_SIGNATURE, VHDX_LOGE_MAGIC);
  put_le32 (out + VHDX_LOGE_LENGTH, (uint32_t) len);
  put_le32 (out + VHDX_LOGE_TAIL, tail);
  put_le64 (out + VHDX_LOGE_SEQUENCE, seq);
  put_le32 (out + VHDX_LOGE_DESC_COUNT, n);
  memcpy (out + VHDX_LOGE_LOG_GUID, guid, 16);
  put_le64 (out + VHDX_LOGE_FLUSHED_END, flushed);
  put_le64 (out + VHDX_LOGE_LAST_END, last);
  for (k = 0; k < n; k++) {
    uint8_t *p = out + 64 + 32 * (size_t) k;
    put_le32 (p + VHDX_LOGD_SIGNATURE,
              d[k].zero ? VHDX_LOGD_ZERO_MAGIC : VHDX_LOGD_DATA_MAGIC);
    if (d[k].zero)
      put_le64 (p + VHDX_LOGD_LEADING, d[k].zero_length);
    else {
      uint8_t *s = out + data;
      memset (s, 0xcd, SECTOR);
      put_le32 (s + VHDX_LOGS_SIGNATURE, VHDX_LOGS_MAGIC);
      put_le32 (s + VHDX_LOGS_SEQ_HIGH, (uint32_t) (seq >> 32));
      put_le32 (s + VHDX_LOGS_SEQ_LOW, (uint32_t) seq);
      data += SECTOR;
    }
    put_le64 (p + VHDX_LOGD_FILE_OFFSET, d[k].file_offset);
    put_le64 (p + VHDX_LOGD_SEQUENCE, seq);
  }
  put_le32 (out + VHDX_LOGE_CHECKSUM,
            vhdx_checksum (out, (size_t) len, VHDX_LOGE_CHECKSUM));
}

static void
set_log_guid (void)
{
  for (int i = 0; i < 2; i++) {
    uint8_t *h = img + (i ? VHDX_HEADER2_OFFSET : VHDX_HEADER1_OFFSET);
    memcpy (h + VHDX_HDR_LOG_GUID, guid, 16);
    put_le32 (h + VHDX_HDR_CHECKSUM,
              vhdx_checksum (h, VHDX_HDR_SIZE, VHDX_HDR_CHECKSUM));
  }
}

/* Put one entry at the start of the image's log. */
static void
add_entry (uint64_t flushed, uint64_t last, const struct desc *d,
           unsigned n)
{
  cr_assert_leq (entry_length (d, n), MiB);
  set_log_guid ();
  build_entry (img + LOG_OFFSET, 1, 0, flushed, last, d, n);
}

/* --- opening through a file: errno, message, bytes untouched ------------ */

static char path[64];

static void
write_image (void)
{
  int fd;

  strcpy (path, "/tmp/test-vhdx-log-hostile-XXXXXX");
  fd = mkstemp (path);
  cr_assert_geq (fd, 0);
  cr_assert_eq (write (fd, img, img_len), (ssize_t) img_len);
  close (fd);
}

/* The file still holds exactly img. */
static void
expect_untouched (void)
{
  FILE *f = fopen (path, "rb");
  uint8_t *now = malloc (img_len + 1);
  size_t got;

  cr_assert_not_null (f);
  got = fread (now, 1, img_len + 1, f);
  fclose (f);
  cr_expect_eq (got, img_len, "file is %zu bytes, was %zu", got, img_len);
  cr_expect (got == img_len && memcmp (now, img, img_len) == 0,
             "the file was written to");
  free (now);
}

/* Both a read-only and a read-write open refuse the image with errnum
 * and a message containing substring, and neither changes the file. */
static void
expect_refused (int errnum, const char *substring)
{
  static const unsigned flags[] = { VHD_OPEN_RDONLY, 0 };

  write_image ();
  for (unsigned i = 0; i < 2; i++) {
    struct vhd_disk *d = vhd_open (path, flags[i]);
    cr_expect_null (d, "flags %u: opened, want \"%s\"", flags[i],
                    substring);
    if (d) {
      vhd_close (d);
      continue;
    }
    cr_expect_eq (vhd_get_errno (), errnum, "flags %u: errno %d, want %d "
                  "(%s)", flags[i], vhd_get_errno (), errnum,
                  vhd_get_error ());
    cr_expect (strstr (vhd_get_error (), substring) != NULL,
               "flags %u: message \"%s\" lacks \"%s\"", flags[i],
               vhd_get_error (), substring);
    expect_untouched ();
  }
  unlink (path);
}

/* --- the entry header ----------------------------------------------------- */

Test (vhdx_log_hostile, last_file_offset_far_beyond_the_file)
{
  struct desc d = { false, 4 * MiB, 0 };

  add_entry (4 * MiB, UINT64_C (1) << 40, &d, 1);
  expect_refused (EFBIG, "LastFileOffset 1099511627776 is more than");
}

Test (vhdx_log_hostile, last_file_offset_just_within_the_growth_limit)
{
  struct desc d = { false, 4 * MiB, 0 };
  uint64_t last = (img_len + VHDX_LOG_MAX_GROWTH) / MiB * MiB;

  add_entry (4 * MiB, last, &d, 1);
  write_image ();
  struct vhd_disk *d1 = vhd_open (path, VHD_OPEN_RDONLY);
  cr_assert_not_null (d1, "%s", vhd_get_error ());
  cr_expect_eq (vhd_get_file_size (d1), (int64_t) last);
  vhd_close (d1);
  expect_untouched ();
  unlink (path);
}

Test (vhdx_log_hostile, flushed_file_offset_beyond_the_file)
{
  struct desc d = { false, 4 * MiB, 0 };

  add_entry (UINT64_C (1) << 50, 4 * MiB, &d, 1);
  expect_refused (EBADMSG, "FlushedFileOffset (1125899906842624)");
}

/* --- zero descriptors ----------------------------------------------------- */

Test (vhdx_log_hostile, zero_length_zero)
{
  struct desc d = { true, 4 * MiB, 0 };

  add_entry (4 * MiB, 4 * MiB, &d, 1);
  expect_refused (EBADMSG, "zero descriptor 0: ZeroLength is 0");
}

Test (vhdx_log_hostile, zero_length_huge)
{
  /* Would have zeroed (and, in place, written) 4 EiB. */
  struct desc d = { true, 4 * MiB, UINT64_C (1) << 62 };

  add_entry (4 * MiB, 4 * MiB, &d, 1);
  expect_refused (EBADMSG, "ZeroLength 4611686018427387904 runs past the "
                           "file's end and LastFileOffset");
}

Test (vhdx_log_hostile, zero_length_wraps)
{
  struct desc d = { true, 4 * MiB, UINT64_MAX - 4095 };

  add_entry (4 * MiB, 4 * MiB, &d, 1);
  expect_refused (EFBIG, "FileOffset 4194304 + ZeroLength");
}

Test (vhdx_log_hostile, zero_ranges_add_up_beyond_the_byte_limit)
{
  /* Each range lies inside LastFileOffset; together they pass 1 GiB. */
  struct desc d[5];
  uint64_t last = (img_len + 256 * MiB + MiB - 1) / MiB * MiB;

  for (unsigned k = 0; k < 5; k++)
    d[k] = (struct desc) { true, 4 * MiB, 256 * MiB };
  add_entry (4 * MiB, last, d, 5);
  expect_refused (EFBIG, "would write more than 1024 MiB (ZeroLength "
                         "268435456)");
}

Test (vhdx_log_hostile, zero_descriptor_replayed_read_only_in_memory)
{
  /* Within the limits: the read-only view sees zeros, the file stays. */
  struct desc d[2] = { { false, 8 * MiB, 0 }, { true, 8 * MiB, 2 * SECTOR } };
  uint8_t b[16];

  add_entry (4 * MiB, 12 * MiB, d, 2);
  write_image ();
  struct vhd_disk *disk = vhd_open (path, VHD_OPEN_RDONLY);
  cr_assert_not_null (disk, "%s", vhd_get_error ());
  cr_expect_eq (vhd_get_log_dirty (disk), 1);
  cr_expect_eq (vhd_get_file_size (disk), (int64_t) (12 * MiB));
  cr_assert_eq (disk->io->ops->pread (disk->io, b, 16, 8 * MiB), 0);
  for (int i = 0; i < 16; i++)
    cr_expect_eq (b[i], 0);
  vhd_close (disk);
  expect_untouched ();
  unlink (path);
}

/* --- data descriptors ----------------------------------------------------- */

Test (vhdx_log_hostile, data_file_offset_wraps)
{
  struct desc d = { false, UINT64_MAX - 4095, 0 };

  add_entry (4 * MiB, 4 * MiB, &d, 1);
  expect_refused (EFBIG, "FileOffset 18446744073709547520 + 4096 "
                         "overflows");
}

Test (vhdx_log_hostile, data_far_past_last_file_offset)
{
  struct desc d = { false, UINT64_C (1) << 40, 0 };

  add_entry (4 * MiB, 4 * MiB, &d, 1);
  expect_refused (EBADMSG, "FileOffset 1099511627776 + 4096 runs past");
}

/* --- the check reports it as corruption --------------------------------- */

static void
collect (void *opaque, int severity, const char *msg)
{
  if (severity == VHD_CHECK_CORRUPT && strstr (msg, "ZeroLength"))
    *(int *) opaque = 1;
}

Test (vhdx_log_hostile, check_reports_and_repair_refuses)
{
  struct desc d = { true, 4 * MiB, UINT64_C (1) << 62 };

  add_entry (4 * MiB, 4 * MiB, &d, 1);
  write_image ();
  for (unsigned flags = 0; flags <= VHD_CHECK_REPAIR; flags++) {
    int seen = 0;
    int r = vhd_check (path, flags, collect, &seen);
    cr_expect_eq (r & VHD_CHECK_CORRUPT, VHD_CHECK_CORRUPT,
                  "flags %u: check returned %d (%s)", flags, r,
                  vhd_get_error ());
    cr_expect (seen, "flags %u: no finding names ZeroLength", flags);
    expect_untouched ();
  }
  unlink (path);
}

/* --- limits that need a bigger log: the log functions directly ---------- */

static int
count_updates (void *opaque, uint64_t offset, const uint8_t *data,
               uint64_t length)
{
  ++*(long *) opaque;
  return 0;
}

Test (vhdx_log_hostile, too_many_descriptors)
{
  unsigned n = VHDX_LOG_MAX_UPDATES + 1;
  struct desc *d = calloc (n, sizeof *d);
  uint32_t len = 4 * MiB;
  uint8_t *log = calloc (1, len);
  struct vhdx_log_sequence seq;
  long calls = 0;

  for (unsigned k = 0; k < n; k++)
    d[k] = (struct desc) { true, 4 * MiB, SECTOR };
  cr_assert_leq (entry_length (d, n), len);
  build_entry (log, 1, 0, 4 * MiB, 4 * MiB, d, n);
  cr_assert_eq (vhdx_log_find_active (log, len, guid, &seq), 0, "%s",
                vhd_get_error ());
  cr_assert_eq (seq.count, 1);
  cr_expect_eq (vhdx_log_replay (log, len, &seq, count_updates, &calls), -1);
  cr_expect_eq (vhd_get_errno (), EFBIG);
  cr_expect (strstr (vhd_get_error (), "DescriptorCount 65537") != NULL,
             "%s", vhd_get_error ());
  cr_expect_eq (calls, 0, "applied %ld updates before refusing", calls);
  free (log);
  free (d);
}

Test (vhdx_log_hostile, replay_applies_nothing_when_a_later_entry_is_bad)
{
  struct desc good = { false, 8 * MiB, 0 }, bad = { true, 8 * MiB, 0 };
  uint32_t len = MiB;
  uint8_t *log = calloc (1, len);
  struct vhdx_log_sequence seq;
  long calls = 0;

  build_entry (log, 1, 0, 4 * MiB, 12 * MiB, &good, 1);
  build_entry (log + 2 * SECTOR, 2, 0, 4 * MiB, 12 * MiB, &bad, 1);
  cr_assert_eq (vhdx_log_find_active (log, len, guid, &seq), 0);
  cr_assert_eq (seq.count, 2);
  cr_expect_eq (vhdx_log_replay (log, len, &seq, count_updates, &calls), -1);
  cr_expect (strstr (vhd_get_error (), "ZeroLength is 0") != NULL, "%s",
             vhd_get_error ());
  cr_expect_eq (calls, 0);
  free (log);
}

Test (vhdx_log_hostile, scan_of_overlapping_long_entries_is_bounded)
{
  /* A "loge" header at every sector, each claiming the whole log and
   * failing only its checksum: unbounded, the scan would checksum
   * 256 x 1 MiB.  Refused once 8 x the log has been checksummed. */
  uint32_t len = MiB;
  uint8_t *log = calloc (1, len);
  struct vhdx_log_sequence seq;

  for (uint32_t off = 0; off < len; off += SECTOR) {
    uint8_t *h = log + off;
    put_le32 (h + VHDX_LOGE_SIGNATURE, VHDX_LOGE_MAGIC);
    put_le32 (h + VHDX_LOGE_CHECKSUM, 1);
    put_le32 (h + VHDX_LOGE_LENGTH, len);
    put_le32 (h + VHDX_LOGE_TAIL, off);
    put_le64 (h + VHDX_LOGE_SEQUENCE, 1);
    memcpy (h + VHDX_LOGE_LOG_GUID, guid, 16);
  }
  cr_expect_eq (vhdx_log_find_active (log, len, guid, &seq), -1);
  cr_expect_eq (vhd_get_errno (), EBADMSG);
  cr_expect (strstr (vhd_get_error (), "EntryLength") != NULL, "%s",
             vhd_get_error ());
  cr_expect_eq (seq.count, 0);
  free (log);
}

Test (vhdx_log_hostile, scan_refusal_fails_the_open)
{
  for (uint32_t off = 0; off < MiB; off += SECTOR) {
    uint8_t *h = img + LOG_OFFSET + off;
    memset (h, 0, SECTOR);
    put_le32 (h + VHDX_LOGE_SIGNATURE, VHDX_LOGE_MAGIC);
    put_le32 (h + VHDX_LOGE_CHECKSUM, 1);
    put_le32 (h + VHDX_LOGE_LENGTH, MiB);
    put_le32 (h + VHDX_LOGE_TAIL, off);
    put_le64 (h + VHDX_LOGE_SEQUENCE, 1);
    memcpy (h + VHDX_LOGE_LOG_GUID, guid, 16);
  }
  set_log_guid ();
  expect_refused (EBADMSG, "EntryLength of overlapping entries");
}
