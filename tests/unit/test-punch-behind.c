/* test-punch-behind.c: the hole-punching thread of compact --no-move
 * (libvhd/ops/punch-behind.c) on a real file: queued ranges become
 * holes by the time their ticket is waited for, the bytes around them
 * stay, adjacent ranges merge, and a NULL punch_behind does nothing. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ops/punch-behind.h"

#define MiB (1U << 20)
#define FILE_MIB 16U

static char path[] = "/tmp/libvhd-punch-XXXXXX";
static int fd = -1;

static void
setup (void)
{
  uint8_t *buf = malloc (MiB);
  unsigned i;

  fd = mkstemp (path);
  cr_assert_geq (fd, 0);
  for (i = 0; i < FILE_MIB; i++) {
    memset (buf, (int) i + 1, MiB);
    cr_assert_eq (pwrite (fd, buf, MiB, (off_t) i * MiB), (ssize_t) MiB);
  }
  free (buf);
  cr_assert_eq (fsync (fd), 0);
}

static void
teardown (void)
{
  close (fd);
  unlink (path);
}

/* Whether MiB i of the file is a hole (when the file system can tell). */
static bool
hole_at (unsigned i)
{
  off_t next = lseek (fd, (off_t) i * MiB, SEEK_DATA);

  return next == -1 || next >= (off_t) (i + 1) * MiB;
}

/* MiB i holds what setup wrote. */
static bool
intact (unsigned i)
{
  uint8_t *buf = malloc (MiB), *want = malloc (MiB);
  bool same;

  memset (want, (int) i + 1, MiB);
  cr_assert_eq (pread (fd, buf, MiB, (off_t) i * MiB), (ssize_t) MiB);
  same = memcmp (buf, want, MiB) == 0;
  free (buf);
  free (want);
  return same;
}

static bool
can_punch (void)
{
  char probe[] = "/tmp/libvhd-punch-probe-XXXXXX";
  int p = mkstemp (probe);
  bool ok = p >= 0 && ftruncate (p, MiB) == 0
            && fallocate (p, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
                          MiB) == 0;

  if (p >= 0) {
    close (p);
    unlink (probe);
  }
  return ok;
}

/* A punching thread on the file, or NULL when /tmp cannot punch (the
 * test is then skipped). */
static struct punch_behind *
started (void)
{
  struct punch_behind *p;

  if (!can_punch ()) {
    cr_log_warn ("no hole punching under /tmp: skipped");
    return NULL;
  }
  p = punch_behind_start (fd);
  cr_assert_not_null (p);
  return p;
}

TestSuite (punch_behind, .init = setup, .fini = teardown);

Test (punch_behind, queued_ranges_are_holes_once_their_ticket_is_done)
{
  struct punch_behind *p = started ();
  uint64_t t1, t2, t3;
  unsigned i;

  if (p == NULL)
    return;
  t1 = punch_behind_add (p, 2 * MiB, MiB);
  t2 = punch_behind_add (p, 3 * MiB, 2 * MiB); /* merges with the first */
  t3 = punch_behind_add (p, 10 * MiB, MiB);
  cr_expect (t1 < t2 && t2 < t3, "tickets grow: %lu %lu %lu",
             (unsigned long) t1, (unsigned long) t2, (unsigned long) t3);
  punch_behind_wait (p, t2);
  for (i = 2; i < 5; i++)
    cr_expect (hole_at (i), "MiB %u punched by ticket %lu", i,
               (unsigned long) t2);
  punch_behind_wait (p, t3);
  cr_expect (hole_at (10));
  punch_behind_finish (p);
  for (i = 0; i < FILE_MIB; i++)
    if (!(i >= 2 && i < 5) && i != 10)
      cr_expect (intact (i), "MiB %u untouched", i);
}

Test (punch_behind, finish_punches_what_is_still_queued)
{
  struct punch_behind *p = started ();
  unsigned i;

  if (p == NULL)
    return;
  for (i = 0; i < FILE_MIB; i += 2)
    punch_behind_add (p, (uint64_t) i * MiB, MiB);
  punch_behind_finish (p);
  for (i = 0; i < FILE_MIB; i++)
    cr_expect (i % 2 ? intact (i) : hole_at (i), "MiB %u", i);
}

Test (punch_behind, nothing_without_a_descriptor)
{
  cr_expect_null (punch_behind_start (-1));
  cr_expect_eq (punch_behind_add (NULL, 0, MiB), 0);
  punch_behind_wait (NULL, 5); /* returns at once */
  punch_behind_finish (NULL);
  cr_expect (intact (0));
}
