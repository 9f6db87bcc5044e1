/* test-vhd-check.c: vhd_check on VHD images (libvhd/vhd/vhd-check.c):
 * clean images report nothing but information; each kind of damage is
 * reported with the right severity, repaired where a safe repair exists
 * (and then reported as repaired, not as corruption), and a repaired image
 * checks clean and reads as before.
 */
#undef NDEBUG /* Keep test strong */
#include "api/vhd-ops-helpers.h"

#define DISK (8 * MiB)
#define BLOCK (2 * MiB)

TestSuite (check, .init = dir_setup, .fini = dir_teardown);

struct findings {
  unsigned n[16];
  char text[4096];
};

static void
on_finding (void *opaque, int severity, const char *message)
{
  struct findings *f = opaque;
  size_t len = strlen (f->text);

  f->n[severity & 15]++;
  snprintf (f->text + len, sizeof f->text - len, "%d: %s\n", severity,
            message);
}

static int
check (const char *name, unsigned flags, struct findings *f)
{
  memset (f, 0, sizeof *f);
  return vhd_check (path_of (name), flags, on_finding, f);
}

static void
expect_clean (const char *name)
{
  struct findings f;

  cr_expect_eq (check (name, 0, &f), 0, "%s: %s", name, f.text);
  cr_expect_eq (f.n[VHD_CHECK_CORRUPT] + f.n[VHD_CHECK_LEAKS]
                + f.n[VHD_CHECK_REPAIRED], 0, "%s: %s", name, f.text);
}

/* image.vhd: 8 MiB, blocks 0, 1 and 3 written; its view. */
static uint8_t *
checked_image (void)
{
  uint8_t *view = calloc (1, DISK);
  struct vhd_disk *d = create_file ("image.vhd", VHD_TYPE_DYNAMIC, DISK,
                                    BLOCK, NULL);

  fill (d, view, 0, 3 * MiB, 25);
  fill (d, view, 7 * MiB, MiB, 26);
  vhd_close (d);
  return view;
}

static void
expect_image (const char *name, const uint8_t *view)
{
  struct vhd_disk *d = vhd_open (path_of (name), VHD_OPEN_RDONLY);

  cr_assert_not_null (d, "%s: %s", name, vhd_get_error ());
  expect_view (d, view, DISK, name);
  vhd_close (d);
}

static void
patch (const char *name, int64_t offset, const void *p, size_t len)
{
  size_t n;
  uint8_t *bytes = file_bytes (name, &n);

  if (offset < 0)
    offset += (int64_t) n;
  memcpy (bytes + offset, p, len);
  write_file (name, bytes, n);
  free (bytes);
}

Test (check, clean_images)
{
  uint8_t *view = checked_image ();

  vhd_close (create_file ("fixed.vhd", VHD_TYPE_FIXED, 3 * MiB, 0, NULL));
  vhd_close (create_file ("empty.vhd", VHD_TYPE_DYNAMIC, DISK, 0, NULL));
  vhd_close (create_file ("kid.vhd", 0, 0, 0, "image.vhd"));
  expect_clean ("image.vhd");
  expect_clean ("fixed.vhd");
  expect_clean ("empty.vhd");
  expect_clean ("kid.vhd");
  free (view);
}

Test (check, bad_trailing_footer_checksum_is_restored_from_the_copy)
{
  uint8_t *view = checked_image ();
  uint8_t b = 0x5a;
  struct findings f;

  patch ("image.vhd", -512 + 66, &b, 1);
  cr_expect_eq (check ("image.vhd", 0, &f), VHD_CHECK_CORRUPT, "%s", f.text);
  cr_expect (strstr (f.text, "footer at the end") != NULL, "%s", f.text);
  cr_expect_eq (check ("image.vhd", VHD_CHECK_REPAIR, &f), 0, "%s", f.text);
  cr_expect_eq (f.n[VHD_CHECK_REPAIRED], 1, "%s", f.text);
  cr_expect_eq (f.n[VHD_CHECK_CORRUPT], 0, "%s", f.text);
  expect_clean ("image.vhd");
  expect_image ("image.vhd", view);
  qemu_compare ("image.vhd", view, DISK);
  free (view);
}

Test (check, damaged_copy_at_offset_0_is_rewritten)
{
  uint8_t *view = checked_image ();
  uint8_t b = 0x5a;
  struct findings f;

  patch ("image.vhd", 50, &b, 1);
  cr_expect_eq (check ("image.vhd", 0, &f), VHD_CHECK_CORRUPT, "%s", f.text);
  cr_expect_eq (check ("image.vhd", VHD_CHECK_REPAIR, &f), 0, "%s", f.text);
  cr_expect_eq (f.n[VHD_CHECK_REPAIRED], 1, "%s", f.text);
  expect_clean ("image.vhd");
  expect_image ("image.vhd", view);
  free (view);
}

Test (check, missing_trailing_footer_is_restored)
{
  uint8_t *view = checked_image ();
  size_t n;
  uint8_t *bytes = file_bytes ("image.vhd", &n);
  struct findings f;

  write_file ("image.vhd", bytes, n - 512); /* ends in block data */
  cr_expect_eq (check ("image.vhd", 0, &f), VHD_CHECK_CORRUPT, "%s", f.text);
  cr_expect_eq (check ("image.vhd", VHD_CHECK_REPAIR, &f), 0, "%s", f.text);
  cr_expect_eq (file_size_of ("image.vhd"), n);
  expect_clean ("image.vhd");
  expect_image ("image.vhd", view);
  free (bytes);
  free (view);
}

Test (check, bat_entry_past_the_end_is_dropped)
{
  uint8_t *view = checked_image ();
  uint8_t entry[4];
  struct findings f;
  struct vhd_disk *d;

  put_be32 (entry, (uint32_t) (file_size_of ("image.vhd") / 512 + 100));
  patch ("image.vhd", 1536 + 4 * 1, entry, 4);
  /* The block it pointed at before is leaked space now. */
  cr_expect_eq (check ("image.vhd", 0, &f),
                VHD_CHECK_CORRUPT | VHD_CHECK_LEAKS, "%s", f.text);
  cr_expect (strstr (f.text, "BAT entry 1") != NULL, "%s", f.text);
  cr_expect (strstr (f.text, "2097152-4194303") != NULL, "%s", f.text);
  cr_expect_eq (check ("image.vhd", VHD_CHECK_REPAIR, &f), VHD_CHECK_LEAKS,
                "%s", f.text);
  cr_expect (strstr (f.text, "dropped") != NULL, "%s", f.text);
  cr_expect_eq (f.n[VHD_CHECK_CORRUPT], 0, "%s", f.text);
  memset (view + BLOCK, 0, BLOCK);
  expect_image ("image.vhd", view);
  d = vhd_open (path_of ("image.vhd"), 0);
  cr_assert_eq (vhd_compact (d, NULL, NULL), 0, "%s", vhd_get_error ());
  vhd_close (d);
  expect_clean ("image.vhd");
  expect_image ("image.vhd", view);
  free (view);
}

Test (check, overlapping_blocks_are_corrupt)
{
  uint8_t *view = checked_image ();
  uint8_t entry[4];
  struct findings f;
  size_t n;
  uint8_t *bytes = file_bytes ("image.vhd", &n);

  put_be32 (entry, get_be32 (bytes + 1536 + 4) + 8);
  patch ("image.vhd", 1536 + 4 * 3, entry, 4);
  cr_expect_eq (check ("image.vhd", 0, &f) & VHD_CHECK_CORRUPT,
                VHD_CHECK_CORRUPT, "%s", f.text);
  cr_expect (strstr (f.text, "overlap") != NULL, "%s", f.text);
  cr_expect_eq (check ("image.vhd", VHD_CHECK_REPAIR, &f) & VHD_CHECK_CORRUPT,
                VHD_CHECK_CORRUPT, "not repairable: %s", f.text);
  cr_expect_null (vhd_open (path_of ("image.vhd"), VHD_OPEN_RDONLY));
  free (bytes);
  free (view);
}

Test (check, leaked_space_at_the_end_is_cut_off)
{
  uint8_t *view = checked_image ();
  size_t n;
  uint8_t *bytes = file_bytes ("image.vhd", &n), *grown = malloc (n + MiB);
  struct findings f;

  memcpy (grown, bytes, n - 512);
  memset (grown + n - 512, 0x77, MiB);
  memcpy (grown + n - 512 + MiB, bytes + n - 512, 512);
  write_file ("image.vhd", grown, n + MiB);
  cr_expect_eq (check ("image.vhd", 0, &f), VHD_CHECK_LEAKS, "%s", f.text);
  cr_expect (strstr (f.text, "1048576 unused bytes") != NULL, "%s", f.text);
  expect_image ("image.vhd", view);
  cr_expect_eq (check ("image.vhd", VHD_CHECK_REPAIR, &f), 0, "%s", f.text);
  cr_expect_eq (f.n[VHD_CHECK_REPAIRED], 1, "%s", f.text);
  cr_expect_eq (file_size_of ("image.vhd"), n);
  expect_clean ("image.vhd");
  expect_image ("image.vhd", view);
  free (grown);
  free (bytes);
  free (view);
}

/* A discarded block is punched: a hole of the host file takes no space,
 * so check reports it as information; the same gap holding allocated
 * bytes (the file copied without holes) is a leak.  Compact packs it. */
Test (check, freed_block_is_a_hole_or_a_leak_until_compact)
{
  uint8_t *view = checked_image ();
  struct vhd_disk *d = vhd_open (path_of ("image.vhd"), 0);
  struct findings f;
  uint8_t *bytes;
  size_t n;

  cr_assert_eq (vhd_discard (d, 0, BLOCK), 0);
  memset (view, 0, BLOCK);
  vhd_close (d);
  cr_expect_eq (check ("image.vhd", 0, &f), 0, "%s", f.text);
  cr_expect (strstr (f.text, "holes of the host file") != NULL, "%s",
             f.text);
  bytes = file_bytes ("image.vhd", &n);
  write_file ("image.vhd", bytes, n); /* every byte allocated again */
  free (bytes);
  cr_expect_eq (check ("image.vhd", 0, &f), VHD_CHECK_LEAKS, "%s", f.text);
  cr_expect (strstr (f.text, "among the blocks") != NULL, "%s", f.text);
  d = vhd_open (path_of ("image.vhd"), 0);
  cr_assert_eq (vhd_compact (d, NULL, NULL), 0, "%s", vhd_get_error ());
  vhd_close (d);
  expect_clean ("image.vhd");
  expect_image ("image.vhd", view);
  free (view);
}

Test (check, fixed_disk_with_space_before_its_footer)
{
  uint8_t *view = malloc (3 * MiB);
  struct vhd_disk *d = create_file ("fixed.vhd", VHD_TYPE_FIXED, 3 * MiB, 0,
                                    NULL);
  size_t n;
  uint8_t *bytes, *grown;
  struct findings f;

  fill (d, view, 0, 3 * MiB, 27);
  vhd_close (d);
  bytes = file_bytes ("fixed.vhd", &n);
  grown = calloc (1, n + 4096);
  memcpy (grown, bytes, n - 512);
  memcpy (grown + n - 512 + 4096, bytes + n - 512, 512);
  write_file ("fixed.vhd", grown, n + 4096);
  cr_expect_eq (check ("fixed.vhd", 0, &f), VHD_CHECK_LEAKS, "%s", f.text);
  cr_expect_eq (check ("fixed.vhd", VHD_CHECK_REPAIR, &f), 0, "%s", f.text);
  cr_expect_eq (file_size_of ("fixed.vhd"), n);
  expect_clean ("fixed.vhd");
  d = vhd_open (path_of ("fixed.vhd"), VHD_OPEN_RDONLY);
  expect_view (d, view, 3 * MiB, "fixed after repair");
  vhd_close (d);
  free (grown);
  free (bytes);
  free (view);
}

Test (check, no_footer_at_all)
{
  struct findings f;
  uint8_t junk[4096];

  memset (junk, 0x33, sizeof junk);
  write_file ("junk.vhd", junk, sizeof junk);
  memcpy (junk, "conectix", 8);
  write_file ("junk.vhd", junk, sizeof junk);
  cr_expect_eq (check ("junk.vhd", VHD_CHECK_REPAIR, &f), VHD_CHECK_CORRUPT,
                "%s", f.text);
  cr_expect (strstr (f.text, "no usable footer") != NULL, "%s", f.text);
}

/* As the hand-edited dfvfs images of the corpus: both footer copies
 * changed alike, and the header, without updating their checksums. */
Test (check, hand_edited_stale_checksums)
{
  uint8_t *view = checked_image ();
  uint8_t b = 'X';
  struct findings f;

  patch ("image.vhd", 28, &b, 1);        /* creator application */
  patch ("image.vhd", -512 + 28, &b, 1);
  patch ("image.vhd", 512 + 64, &b, 1);  /* parent name, unused */
  expect_image ("image.vhd", view);
  cr_expect_eq (check ("image.vhd", 0, &f), VHD_CHECK_CORRUPT, "%s", f.text);
  cr_expect (strstr (f.text, "hand-edited") != NULL, "%s", f.text);
  cr_expect_eq (check ("image.vhd", VHD_CHECK_REPAIR, &f), 0, "%s", f.text);
  cr_expect_eq (f.n[VHD_CHECK_REPAIRED], 2, "%s", f.text);
  expect_clean ("image.vhd");
  expect_image ("image.vhd", view);
  qemu_compare ("image.vhd", view, DISK);
  free (view);
}

/* Blocks 4 KiB aligned with 3584 bytes between them, as node-vhd and
 * dissect write: alignment padding, not leaks. */
Test (check, alignment_padding_is_no_leak)
{
  uint8_t *view = checked_image ();
  const uint64_t stride = BLOCK + 4096;
  const uint64_t at[] = { 7680, 7680 + stride, 7680 + 2 * stride,
                          7680 + 3 * stride };
  struct image img = { 0 };
  struct vhd_disk *d;
  size_t n;

  img.bytes = file_bytes ("image.vhd", &n);
  img.len = n;
  d = must_open (&img, 0);
  fill (d, view, 5 * MiB, 4096, 28); /* allocate block 2 as well */
  cr_assert_eq (vhd_flush (d), 0);
  snapshot (d, &img);
  vhd_close (d);
  relayout (&img, at, 4);
  write_file ("aligned.vhd", img.bytes, img.len);
  expect_clean ("aligned.vhd");
  expect_image ("aligned.vhd", view);
  free_image (&img);
  free (view);
}
