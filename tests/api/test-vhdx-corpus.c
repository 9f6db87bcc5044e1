/* test-vhdx-corpus.c: the two corpus images with a pending log
 * (../shared/corpus; skipped when absent), replayed both ways: read-only
 * (in memory, file untouched) and read-write (in place, log retired).
 * Both must read the same, and the replayed file must need no replay. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "libvhd.h"

#define CHUNK (4U << 20)

static char dir[] = "/tmp/libvhd-vhdx-corpus-XXXXXX";

static const char *
corpus_dir (void)
{
  const char *d = getenv ("CORPUS_DIR");
  return d ? d : "../shared/corpus";
}

/* Unpack corpus image NAME.gz into dir/OUT; false when absent. */
static bool
unpack (const char *name, const char *out)
{
  char in[512], path[512];
  gzFile g;
  FILE *f;
  int n;
  static char buf[1 << 16];

  snprintf (in, sizeof in, "%s/images/%s.gz", corpus_dir (), name);
  if (access (in, R_OK) != 0)
    return false;
  snprintf (path, sizeof path, "%s/%s", dir, out);
  g = gzopen (in, "rb");
  f = fopen (path, "wb");
  cr_assert (g && f);
  while ((n = gzread (g, buf, sizeof buf)) > 0)
    cr_assert_eq (fwrite (buf, 1, (size_t) n, f), (size_t) n);
  gzclose (g);
  fclose (f);
  return true;
}

static void
file_md5ish (const char *path, unsigned long *sum, off_t *size)
{
  FILE *f = fopen (path, "rb");
  static unsigned char buf[1 << 16];
  size_t n;

  cr_assert_not_null (f);
  *sum = adler32 (0, NULL, 0);
  *size = 0;
  while ((n = fread (buf, 1, sizeof buf, f)) > 0) {
    *sum = adler32 (*sum, buf, (uInt) n);
    *size += (off_t) n;
  }
  fclose (f);
}

static void
replay_both_ways (const char *name)
{
  char a[600], b[600];
  unsigned long sum0, sum1;
  off_t size0, size1;
  struct vhd_disk *ro, *rw;
  uint8_t *x = malloc (CHUNK), *y = malloc (CHUNK);

  cr_assert_not_null (mkdtemp (dir));
  if (!unpack (name, "a.vhdx") || !unpack (name, "b.vhdx")) {
    cr_log_warn ("corpus image %s not found under %s: skipped", name,
                 corpus_dir ());
    return;
  }
  snprintf (a, sizeof a, "%s/a.vhdx", dir);
  snprintf (b, sizeof b, "%s/b.vhdx", dir);
  file_md5ish (a, &sum0, &size0);
  ro = vhd_open (a, VHD_OPEN_RDONLY);
  cr_assert_not_null (ro, "%s", vhd_get_error ());
  cr_expect_eq (vhd_get_log_dirty (ro), 1);
  rw = vhd_open (b, 0);
  cr_assert_not_null (rw, "%s", vhd_get_error ());
  cr_expect_eq (vhd_get_log_dirty (rw), 1);
  cr_assert_eq (vhd_get_size (ro), vhd_get_size (rw));
  for (int64_t off = 0; off < vhd_get_size (ro); off += CHUNK) {
    size_t n = (size_t) (vhd_get_size (ro) - off < CHUNK
                           ? vhd_get_size (ro) - off : CHUNK);
    cr_assert_eq (vhd_pread (ro, x, n, (uint64_t) off), 0);
    cr_assert_eq (vhd_pread (rw, y, n, (uint64_t) off), 0);
    cr_assert_eq (memcmp (x, y, n), 0, "differ in %lld+%zu",
                  (long long) off, n);
  }
  vhd_close (ro);
  vhd_close (rw);
  file_md5ish (a, &sum1, &size1);
  cr_expect (sum0 == sum1 && size0 == size1,
             "read-only open changed the file");
  rw = vhd_open (b, VHD_OPEN_RDONLY);
  cr_assert_not_null (rw, "%s", vhd_get_error ());
  cr_expect_eq (vhd_get_log_dirty (rw), 0, "replayed file still dirty");
  vhd_close (rw);
  free (x), free (y);
  snprintf (a, sizeof a, "rm -rf %s", dir);
  cr_expect_eq (system (a), 0);
}

Test (vhdx_corpus, qemu_dirty_log, .timeout = 300)
{
  replay_both_ways ("iotest-dirtylog-10G-4M.vhdx");
}

Test (vhdx_corpus, discutils_log_replay, .timeout = 300)
{
  replay_both_ways ("discutils/vhdx-log-replay.vhdx");
}
