/* files.c: the namespace of the mount.
 *
 *   /             the root directory
 *   /disk         the whole virtual disk
 *   /disk-partN   partition N of the disk's MBR or GPT (partition.c)
 *
 * The partition list is read when the image is opened, and read again
 * when a write may have changed it: files_note_write () marks it stale
 * when a write touches any range the last scan read (which always
 * includes the first 8 KiB), and the next lookup of a partition or
 * listing of the directory scans again.  So a disk partitioned through
 * MOUNTPOINT/disk (sgdisk, sfdisk, parted) shows its partitions without
 * a remount.  A file already open keeps the window it was opened with,
 * as an open partition device does when the table changes under it.
 *
 * Locking: a read-write lock guards the table.  Lookups, listings and
 * the write check take it shared; a rescan takes it exclusive, so scans
 * never overlap and nobody sees a half-built table.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vhdfuse.h"

#define PART_PREFIX "/disk-part"

static pthread_rwlock_t lock = PTHREAD_RWLOCK_INITIALIZER;
static struct part_table table;
static atomic_bool stale;

/* Replace the table by a fresh scan.  The caller holds the lock
 * exclusively.  A scan that fails keeps what it found, with a warning:
 * a damaged first sector must not stop the disk itself from working. */
static void
rescan (void)
{
  struct part_table t;
  int saved;

  atomic_store (&stale, false);
  if (partition_scan (vf.disk, vf.size, vf.sector_size, &t) == -1) {
    saved = errno;
    fprintf (stderr, "%s: %s: cannot read the partition table: %s\n",
             PROGRAM_NAME, vf.name,
             saved == ENOMEM ? strerror (saved) : lib_message ());
  }
  part_table_free (&table);
  table = t;
}

static void
refresh (void)
{
  if (!atomic_load (&stale))
    return;
  pthread_rwlock_wrlock (&lock);
  if (atomic_load (&stale))
    rescan ();
  pthread_rwlock_unlock (&lock);
}

void
files_init (void)
{
  pthread_rwlock_wrlock (&lock);
  rescan ();
  pthread_rwlock_unlock (&lock);
}

void
files_free (void)
{
  pthread_rwlock_wrlock (&lock);
  part_table_free (&table);
  pthread_rwlock_unlock (&lock);
}

/* "N" of "/disk-partN" (digits only, no leading zero); 0 if not one. */
static unsigned
part_number (const char *path)
{
  const char *p = path + strlen (PART_PREFIX);
  unsigned long n;
  char *end;

  if (strncmp (path, PART_PREFIX, strlen (PART_PREFIX)) != 0
      || *p < '1' || *p > '9')
    return 0;
  errno = 0;
  n = strtoul (p, &end, 10);
  if (*end != '\0' || errno != 0 || n > UINT_MAX)
    return 0;
  return (unsigned) n;
}

static enum file_kind
lookup_part (unsigned number, struct window *w)
{
  enum file_kind kind = FILE_NONE;
  size_t i;

  refresh ();
  pthread_rwlock_rdlock (&lock);
  for (i = 0; i < table.n_parts; i++) {
    if (table.parts[i].number == number) {
      *w = (struct window) { table.parts[i].start, table.parts[i].size };
      kind = FILE_PART;
      break;
    }
  }
  pthread_rwlock_unlock (&lock);
  return kind;
}

enum file_kind
files_lookup (const char *path, struct window *w)
{
  unsigned number;

  if (strcmp (path, "/") == 0)
    return FILE_ROOT;
  if (strcmp (path, "/disk") == 0) {
    *w = (struct window) { 0, vf.size };
    return FILE_DISK;
  }
  number = part_number (path);
  return number ? lookup_part (number, w) : FILE_NONE;
}

int
files_list (void *buf, fuse_fill_dir_t filler)
{
  char name[32];
  size_t i;
  int r = 0;

  refresh ();
  if (filler (buf, ".", NULL, 0, 0) || filler (buf, "..", NULL, 0, 0)
      || filler (buf, "disk", NULL, 0, 0))
    return -ENOMEM;
  pthread_rwlock_rdlock (&lock);
  for (i = 0; r == 0 && i < table.n_parts; i++) {
    snprintf (name, sizeof name, "disk-part%u", table.parts[i].number);
    if (filler (buf, name, NULL, 0, 0))
      r = -ENOMEM;
  }
  pthread_rwlock_unlock (&lock);
  return r;
}

size_t
files_count (void)
{
  size_t n;

  pthread_rwlock_rdlock (&lock);
  n = 1 + table.n_parts;
  pthread_rwlock_unlock (&lock);
  return n;
}

void
files_note_write (uint64_t offset, uint64_t length)
{
  size_t i;

  if (length == 0 || atomic_load (&stale))
    return;
  pthread_rwlock_rdlock (&lock);
  for (i = 0; i < table.n_read; i++) {
    const struct byte_range *r = &table.read[i];
    if (offset < r->start + r->length && r->start < offset + length) {
      atomic_store (&stale, true);
      break;
    }
  }
  pthread_rwlock_unlock (&lock);
}
