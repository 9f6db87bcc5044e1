/* fuzz-vhd-footer.c: the VHD structure decoders (footer, dynamic disk
 * header, parent locators) on the start of a VHD file.
 *
 * The input is laid out like the start of a dynamic VHD: the footer copy
 * at 0, the dynamic disk header at 512, and whatever follows, where the
 * locators' data usually lies (read at each locator's data offset when
 * inside the input).  Short inputs are zero-padded.  Checked besides "no
 * crash":
 *   - encode (decode (x)) decodes again to the same fields, and is x byte
 *     for byte when x's reserved bytes are zero;
 *   - a footer decoded without its checksum encodes to one that decodes
 *     with it;
 *   - CHS geometry never exceeds the disk;
 *   - a parent name and a W2ku/W2ru path survive UTF-16 and back.
 * Each input runs as it is, then with both checksums recomputed.
 */
#include "fuzz-common.h"
#include "vhd/locator.h"

#define HEAD_SIZE (VHD_FTR_SIZE + VHD_DYN_SIZE)

static void
footer_fields_equal (const struct vhd_footer *a, const struct vhd_footer *b)
{
  struct vhd_footer x = *a, y = *b;

  x.checksum = y.checksum = 0;
  FUZZ_ASSERT (memcmp (&x, &y, sizeof x) == 0,
               "footer fields change through encode and decode");
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

static void
check_geometry (uint64_t size)
{
  uint16_t c;
  uint8_t h, s;
  uint64_t total = size / 512, max = 65535ULL * 16 * 255;

  vhd_geometry (size, &c, &h, &s);
  FUZZ_ASSERT ((uint64_t) c * h * s <= (total < max ? total : max),
               "geometry %u/%u/%u exceeds %" PRIu64 " bytes", c, h, s, size);
  FUZZ_ASSERT (h <= 16 && (s == 17 || s == 31 || s == 63 || s == 255),
               "geometry %u/%u/%u", c, h, s);
}

static void
fuzz_footer (const uint8_t *raw)
{
  struct vhd_footer f, g;
  uint8_t enc[VHD_FTR_SIZE];

  clear_error ();
  if (vhd_footer_decode (raw, &f) == 0) {
    FUZZ_ASSERT (f.disk_type >= 2 && f.disk_type <= 4, "disk type %u",
                 f.disk_type);
    vhd_footer_encode (&f, enc);
    FUZZ_ASSERT (vhd_footer_decode (enc, &g) == 0, "re-encoded footer "
                 "does not decode");
    footer_fields_equal (&f, &g);
    if (all_zero (raw + VHD_FTR_RESERVED, VHD_FTR_SIZE - VHD_FTR_RESERVED))
      FUZZ_ASSERT (memcmp (raw, enc, VHD_FTR_SIZE) == 0,
                   "footer does not round-trip byte for byte");
    check_geometry (f.current_size);
  }
  else
    check_failure ("vhd_footer_decode");
  if (vhd_footer_decode_unverified (raw, &f) == 0) {
    vhd_footer_encode (&f, enc);
    FUZZ_ASSERT (vhd_footer_decode (enc, &g) == 0, "footer decoded without "
                 "its checksum does not re-encode to a valid one");
    footer_fields_equal (&f, &g);
  }
}

/* UTF-8 -> UTF-16 -> UTF-8 of the parent name. */
static void
fuzz_parent_name (const struct vhd_dynheader *h)
{
  struct vhd_dynheader h2;
  char *name, *again;

  clear_error ();
  name = vhd_dynheader_parent_name (h);
  if (name == NULL) {
    check_failure ("vhd_dynheader_parent_name");
    return;
  }
  memset (&h2, 0, sizeof h2);
  FUZZ_ASSERT (vhd_dynheader_set_parent_name (&h2, name) == 0,
               "decoded parent name \"%s\" does not encode", name);
  again = vhd_dynheader_parent_name (&h2);
  FUZZ_ASSERT (again != NULL && strcmp (again, name) == 0,
               "parent name \"%s\" does not round-trip", name);
  free (again);
  free (name);
}

static void
fuzz_dynheader (const uint8_t *raw)
{
  struct vhd_dynheader h, g;
  uint8_t enc[VHD_DYN_SIZE];
  unsigned i;
  bool reserved_zero;

  clear_error ();
  if (vhd_dynheader_decode (raw, &h) == -1) {
    check_failure ("vhd_dynheader_decode");
    if (vhd_dynheader_decode_unverified (raw, &h) == -1)
      return;
  }
  FUZZ_ASSERT (h.block_size >= 512 && (h.block_size & (h.block_size - 1))
               == 0, "block size %" PRIu32, h.block_size);
  vhd_dynheader_encode (&h, enc);
  FUZZ_ASSERT (vhd_dynheader_decode (enc, &g) == 0, "re-encoded dynamic "
               "header does not decode");
  h.checksum = g.checksum = 0;
  FUZZ_ASSERT (memcmp (&h, &g, sizeof h) == 0,
               "dynamic header fields change through encode and decode");
  reserved_zero = all_zero (raw + VHD_DYN_RESERVED1, 4)
                  && all_zero (raw + VHD_DYN_RESERVED2,
                               VHD_DYN_SIZE - VHD_DYN_RESERVED2)
                  && get_be32 (raw + VHD_DYN_CHECKSUM)
                       == vhd_dynheader_checksum (raw);
  for (i = 0; i < VHD_LOCATOR_COUNT; i++)
    reserved_zero &= all_zero (raw + VHD_DYN_PARENT_LOCATORS
                               + i * VHD_LOC_SIZE + VHD_LOC_RESERVED, 4);
  if (reserved_zero)
    FUZZ_ASSERT (memcmp (raw, enc, VHD_DYN_SIZE) == 0,
                 "dynamic header does not round-trip byte for byte");
  fuzz_parent_name (&h);
}

static void
fuzz_path (uint32_t code, const uint8_t *data, size_t len)
{
  char *path, *again, *c;
  uint8_t *enc;
  size_t cap;
  ssize_t n;

  clear_error ();
  path = vhd_locator_path (code, data, len);
  if (path == NULL) {
    check_failure ("vhd_locator_path");
    return;
  }
  if (code == VHD_PLATFORM_W2KU || code == VHD_PLATFORM_W2RU) {
    /* Encoding turns slashes into backslashes. */
    for (c = path; *c; c++)
      if (*c == '/')
        *c = '\\';
    cap = 2 * strlen (path) + 2;
    enc = malloc (cap);
    if (enc == NULL)
      abort ();
    n = vhd_locator_encode_path (path, enc, cap);
    FUZZ_ASSERT (n >= 0, "decoded path \"%s\" does not encode", path);
    again = vhd_locator_path (code, enc, (size_t) n);
    FUZZ_ASSERT (again != NULL && strcmp (again, path) == 0,
                 "path \"%s\" does not round-trip", path);
    free (again);
    free (enc);
  }
  free (path);
}

static void
fuzz_locators (const uint8_t *head, const uint8_t *data, size_t size)
{
  static const uint32_t codes[] = {
    VHD_PLATFORM_W2KU, VHD_PLATFORM_W2RU, VHD_PLATFORM_MACX,
    VHD_PLATFORM_WI2K,
  };
  const uint8_t *rest = size > HEAD_SIZE ? data + HEAD_SIZE : data;
  size_t rest_len = size > HEAD_SIZE ? size - HEAD_SIZE : 0;
  unsigned i;

  for (i = 0; i < VHD_LOCATOR_COUNT; i++) {
    const uint8_t *raw = head + VHD_FTR_SIZE + VHD_DYN_PARENT_LOCATORS
                         + i * VHD_LOC_SIZE;
    struct vhd_locator l, m;
    uint8_t enc[VHD_LOC_SIZE];
    char name[5];
    uint64_t off, len;

    memset (&l, 0, sizeof l);
    memset (&m, 0, sizeof m);
    vhd_locator_decode (raw, &l);
    vhd_locator_encode (&l, enc);
    vhd_locator_decode (enc, &m);
    FUZZ_ASSERT (memcmp (&l, &m, sizeof l) == 0, "locator round trip");
    vhd_platform_name (l.platform_code, name);
    FUZZ_ASSERT (strlen (name) == 4, "platform name");
    FUZZ_ASSERT (vhd_locator_space_bytes (l.data_space) % 512 == 0,
                 "locator space %" PRIu32, l.data_space);
    /* The data where the locator says, else at the same offset into
     * what follows the header. */
    off = l.data_offset;
    len = l.data_length;
    if (off < size && len <= size - off)
      fuzz_path (l.platform_code, data + off, (size_t) len);
    else if (rest_len > 0) {
      off = l.data_offset % rest_len;
      len = len < rest_len - off ? len : rest_len - off;
      fuzz_path (l.platform_code, rest + off, (size_t) len);
    }
  }
  for (i = 0; i < sizeof codes / sizeof codes[0]; i++)
    fuzz_path (codes[i], rest, rest_len);
}

static void
run (const uint8_t *data, size_t size)
{
  uint8_t head[HEAD_SIZE] = { 0 };

  memcpy (head, data, size < HEAD_SIZE ? size : HEAD_SIZE);
  fuzz_footer (head);
  fuzz_dynheader (head + VHD_FTR_SIZE);
  fuzz_locators (head, data, size);
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  uint8_t *fixed;
  bool changed;

  run (data, size);
  fixed = malloc (size > HEAD_SIZE ? size : HEAD_SIZE);
  if (fixed == NULL)
    return 0;
  memset (fixed, 0, size > HEAD_SIZE ? size : HEAD_SIZE);
  memcpy (fixed, data, size);
  changed = fix_vhd_footer (fixed);
  changed |= fix_vhd_dynheader (fixed, HEAD_SIZE, VHD_FTR_SIZE);
  if (changed)
    run (fixed, size > HEAD_SIZE ? size : HEAD_SIZE);
  free (fixed);
  return 0;
}
