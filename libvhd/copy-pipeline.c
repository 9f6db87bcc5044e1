/* copy-pipeline.c: the engine of vhd_copy, a read-ahead/write-behind
 * pipeline.
 *
 * A planner thread walks the source's allocation map (host holes count
 * as zeros) and cuts the data into chunks that end on 4 MiB boundaries
 * of the disk, each taking a slot of a small ring; fetcher threads read
 * the planned chunks, several at once (a source that is not in the page
 * cache is read at the disk's queue depth, not one request at a time),
 * and note which 64 KiB pieces hold a non-zero byte (one bit per piece,
 * a machine word at a time).  The calling thread takes the chunks in
 * order and writes the non-zero runs, so reading overlaps writing;
 * ranges that read as zeros pass through the ring as progress only.
 * Every so often the writer starts write-back of the destination file
 * (sync_file_range, without waiting), so the final flush finds little
 * left to write: the disk works while the copy goes on.
 *
 * The caller holds src's lock shared and dst's exclusive for the whole
 * copy, so the planner and the fetchers call chain_block_status and
 * chain_pread on src without locks of their own (reads of one handle may
 * run side by side: the driver maps under the layer's map_lock).  Errors
 * are per thread: the first error of a reading thread is recorded
 * (message and errno) and re-raised in the calling thread once all are
 * joined.  Without threads (src == dst, or thread creation failed) the
 * same steps run one after the other.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "copy-internal.h"
#include "minmax.h"
#include "zero.h"

#define COPY_CHUNK (4U << 20)
#define ZERO_PIECE (COPY_CHUNK / 64) /* one bit of a uint64_t per piece */
#define RING 5U                      /* buffers: written, read, planned */
#define FETCHERS 4U                  /* chunks read at once */
#define WRITE_BEHIND (32U << 20)     /* start write-back every 32 MiB */
#define MAX_MESSAGE 1024

/* One chunk of the copy, in disk order. */
struct item {
  uint64_t offset, length;
  bool data;          /* false: reads as zeros, only progress to report */
  bool taken;         /* a fetcher is reading it */
  bool ready;         /* read (or nothing to read): the writer's now */
  uint64_t nonzero;   /* data: bit i set if piece i has a non-zero byte */
  uint8_t *buf;       /* COPY_CHUNK bytes, owned by the ring slot */
};

struct pipeline {
  struct vhd_disk *src, *dst;
  vhd_progress_fn progress;
  void *opaque;
  bool threaded;
  int dst_fd;               /* for write-back; -1: none */
  uint64_t unsynced;        /* bytes written since write-back started */

  pthread_mutex_t lock;
  pthread_cond_t cond;
  struct item ring[RING];
  unsigned head, tail;      /* planned: [tail, head), at most RING */
  bool planner_done, cancel;
  int read_errno;           /* the first reading error, 0 if none */
  char read_msg[MAX_MESSAGE];
};

/* --- zero detection ------------------------------------------------------- */

/* Piece i of a chunk at offset covers [offset, offset + n) cut at the
 * 64 KiB boundaries of the disk (chunks never cross 4 MiB boundaries). */
static uint64_t
piece_end (uint64_t offset, uint64_t chunk_end)
{
  return MIN (chunk_end, (offset / ZERO_PIECE + 1) * ZERO_PIECE);
}

static uint64_t
nonzero_mask (const uint8_t *buf, uint64_t offset, uint64_t n)
{
  uint64_t mask = 0, at = offset, end = offset + n;
  unsigned i;

  for (i = 0; at < end; i++) {
    uint64_t e = piece_end (at, end);
    if (!buffer_is_zero (buf + (at - offset), (size_t) (e - at)))
      mask |= UINT64_C (1) << i;
    at = e;
  }
  return mask;
}

/* --- the writer (calling thread) ------------------------------------------ */

/* Start write-back of what was written so far, without waiting: the
 * final flush then has little left to do. */
static void
write_behind (struct pipeline *pl, uint64_t written)
{
  pl->unsynced += written;
  if (pl->dst_fd < 0 || pl->unsynced < WRITE_BEHIND)
    return;
  pl->unsynced = 0;
  (void) sync_file_range (pl->dst_fd, 0, 0, SYNC_FILE_RANGE_WRITE);
}

static int
write_run (struct pipeline *pl, const struct item *it, uint64_t start,
           uint64_t end)
{
  if (chain_pwrite (pl->dst, it->buf + (start - it->offset),
                    (size_t) (end - start), start) == -1)
    return -1;
  write_behind (pl, end - start);
  return 0;
}

/* Write the runs of non-zero pieces of a data item. */
static int
write_item (struct pipeline *pl, const struct item *it)
{
  uint64_t end = it->offset + it->length, at = it->offset, run = at;
  unsigned i;

  for (i = 0; at < end; i++) {
    uint64_t e = piece_end (at, end);
    if (!((it->nonzero >> i) & 1)) {
      if (run < at && write_run (pl, it, run, at) == -1)
        return -1;
      run = e;
    }
    at = e;
  }
  return run < end ? write_run (pl, it, run, end) : 0;
}

static int
consume (struct pipeline *pl, const struct item *it)
{
  if (it->data && it->nonzero && write_item (pl, it) == -1)
    return -1;
  if (pl->progress)
    pl->progress (pl->opaque, it->offset + it->length, pl->src->size);
  return 0;
}

/* --- reading -------------------------------------------------------------- */

static int
fetch (struct pipeline *pl, struct item *it)
{
  if (chain_pread (pl->src, it->buf, (size_t) it->length, it->offset) == -1)
    return -1;
  it->nonzero = nonzero_mask (it->buf, it->offset, it->length);
  return 0;
}

/* Record this thread's error as the copy's, unless one is recorded or
 * the writer gave up; stop everyone.  Lock held. */
static void
record_error (struct pipeline *pl)
{
  const char *msg = vhd_get_error ();

  if (!pl->cancel && pl->read_errno == 0) {
    pl->read_errno = vhd_get_errno () ? vhd_get_errno () : EIO;
    snprintf (pl->read_msg, sizeof pl->read_msg, "%s",
              msg ? msg : "reading the source failed");
  }
  pl->cancel = true;
  pthread_cond_broadcast (&pl->cond);
}

/* --- the planner ---------------------------------------------------------- */

/* Give [offset, offset + length) the next slot: for the fetchers (data)
 * or straight for the writer; unthreaded, read and write it now. */
static int
plan (struct pipeline *pl, uint64_t offset, uint64_t length, bool data)
{
  struct item *it;

  if (!pl->threaded) {
    it = &pl->ring[0];
    it->offset = offset, it->length = length, it->data = data;
    if (data && fetch (pl, it) == -1)
      return -1;
    return consume (pl, it);
  }
  pthread_mutex_lock (&pl->lock);
  while (pl->head - pl->tail == RING && !pl->cancel)
    pthread_cond_wait (&pl->cond, &pl->lock);
  if (pl->cancel) {
    pthread_mutex_unlock (&pl->lock);
    return -1;
  }
  it = &pl->ring[pl->head % RING];
  it->offset = offset, it->length = length, it->data = data;
  it->taken = false;
  it->ready = !data;
  pl->head++;
  pthread_cond_broadcast (&pl->cond);
  pthread_mutex_unlock (&pl->lock);
  return 0;
}

static int
plan_extent (void *opaque, uint64_t offset, uint64_t length, unsigned state,
             unsigned depth)
{
  struct pipeline *pl = opaque;

  if (state & VHD_STATE_ZERO)
    return plan (pl, offset, length, false);
  while (length > 0) {
    uint64_t n = MIN (length, COPY_CHUNK - offset % COPY_CHUNK);
    if (plan (pl, offset, n, true) == -1)
      return -1;
    offset += n, length -= n;
  }
  return 0;
}

static int
plan_all (struct pipeline *pl)
{
  if (pl->src->size == 0)
    return 0;
  return chain_block_status (pl->src, 0, pl->src->size, VHD_STATUS_HOST_HOLES,
                             plan_extent, pl);
}

static void *
planner_main (void *arg)
{
  struct pipeline *pl = arg;
  int r = plan_all (pl);

  pthread_mutex_lock (&pl->lock);
  if (r != 0)
    record_error (pl);
  pl->planner_done = true;
  pthread_cond_broadcast (&pl->cond);
  pthread_mutex_unlock (&pl->lock);
  return NULL;
}

/* --- the fetchers --------------------------------------------------------- */

/* The first planned chunk nobody reads yet, or NULL.  Lock held. */
static struct item *
next_to_fetch (struct pipeline *pl)
{
  unsigned k;

  for (k = pl->tail; k != pl->head; k++) {
    struct item *it = &pl->ring[k % RING];
    if (!it->ready && !it->taken)
      return it;
  }
  return NULL;
}

static void *
fetcher_main (void *arg)
{
  struct pipeline *pl = arg;
  struct item *it;

  pthread_mutex_lock (&pl->lock);
  while (!pl->cancel) {
    if ((it = next_to_fetch (pl)) == NULL) {
      if (pl->planner_done)
        break;
      pthread_cond_wait (&pl->cond, &pl->lock);
      continue;
    }
    it->taken = true;
    pthread_mutex_unlock (&pl->lock);
    if (fetch (pl, it) == -1) {
      pthread_mutex_lock (&pl->lock);
      record_error (pl);
      break;
    }
    pthread_mutex_lock (&pl->lock);
    it->ready = true;
    pthread_cond_broadcast (&pl->cond);
  }
  pthread_mutex_unlock (&pl->lock);
  return NULL;
}

/* --- the writer (calling thread) ------------------------------------------ */

/* Write the chunks in order until all are written (0), a reading thread
 * failed (0: its error is raised later) or writing fails (-1). */
static int
write_all (struct pipeline *pl)
{
  for (;;) {
    struct item *it = &pl->ring[pl->tail % RING];
    pthread_mutex_lock (&pl->lock);
    while (!pl->cancel && (pl->head == pl->tail ? !pl->planner_done
                                                : !it->ready))
      pthread_cond_wait (&pl->cond, &pl->lock);
    if (pl->cancel || pl->head == pl->tail) {
      pthread_mutex_unlock (&pl->lock);
      return 0;
    }
    pthread_mutex_unlock (&pl->lock);
    if (consume (pl, it) == -1) {
      pthread_mutex_lock (&pl->lock);
      pl->cancel = true;
      pthread_cond_broadcast (&pl->cond);
      pthread_mutex_unlock (&pl->lock);
      return -1;
    }
    pthread_mutex_lock (&pl->lock);
    it->ready = false;
    pl->tail++;
    pthread_cond_broadcast (&pl->cond);
    pthread_mutex_unlock (&pl->lock);
  }
}

/* Fetchers first: without any, nothing would read what is planned. */
static int
run_threaded (struct pipeline *pl)
{
  pthread_t planner, fetchers[FETCHERS];
  unsigned n = 0, i;
  int r;

  while (n < FETCHERS
         && pthread_create (&fetchers[n], NULL, fetcher_main, pl) == 0)
    n++;
  if (n > 0 && pthread_create (&planner, NULL, planner_main, pl) == 0) {
    r = write_all (pl);
    pthread_join (planner, NULL);
  }
  else {
    pthread_mutex_lock (&pl->lock);
    pl->planner_done = true; /* no planner: the fetchers stop */
    pthread_cond_broadcast (&pl->cond);
    pthread_mutex_unlock (&pl->lock);
    r = 1;
  }
  for (i = 0; i < n; i++)
    pthread_join (fetchers[i], NULL);
  if (r == 1) { /* no threads: the same, one step after the other */
    pl->threaded = false;
    return plan_all (pl);
  }
  if (r == 0 && pl->read_errno) {
    set_error (pl->read_errno, "%s", pl->read_msg);
    r = -1;
  }
  return r;
}

/* --- entry point ---------------------------------------------------------- */

static void
free_ring (struct pipeline *pl)
{
  unsigned i;

  for (i = 0; i < RING; i++)
    free (pl->ring[i].buf);
}

static int
alloc_ring (struct pipeline *pl)
{
  unsigned i, n = pl->threaded ? RING : 1;

  for (i = 0; i < n; i++) {
    /* Page-aligned: the file layer may take such transfers directly. */
    if (posix_memalign ((void **) &pl->ring[i].buf, 4096, COPY_CHUNK) != 0) {
      set_error (ENOMEM, "out of memory");
      return -1;
    }
  }
  return 0;
}

int
copy_pipeline (struct vhd_disk *src, struct vhd_disk *dst,
               vhd_progress_fn progress, void *opaque)
{
  struct pipeline pl = {
    .src = src, .dst = dst, .progress = progress, .opaque = opaque,
    .threaded = src != dst, .dst_fd = io_fd (dst->io),
  };
  int r = -1;

  if (alloc_ring (&pl) == 0) {
    if (pl.threaded) {
      pthread_mutex_init (&pl.lock, NULL);
      pthread_cond_init (&pl.cond, NULL);
      r = run_threaded (&pl);
      pthread_cond_destroy (&pl.cond);
      pthread_mutex_destroy (&pl.lock);
    } else
      r = plan_all (&pl);
  }
  free_ring (&pl);
  return r == 0 ? 0 : -1;
}
