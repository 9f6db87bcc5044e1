/* bat-cache.c: the VHDX BAT paged in from the file (see bat-cache.h).
 *
 * where[] maps a page to its frame in O(1): 4 bytes a page, 0.5 MiB for
 * the largest table the format allows.  The caller serializes every
 * call (the handle's locks: maps run under the layer's map_lock, changes
 * under the exclusive lock).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "bat-cache.h"
#include "byteorder.h"
#include "minmax.h"

struct vhdx_bat_frame {
  uint64_t page;
  bool dirty;               /* memory is ahead of the file */
  bool referenced;          /* used since the clock hand last passed */
  uint64_t e[VHDX_BAT_PAGE_ENTRIES];
};

#define PAGE_BYTES (VHDX_BAT_PAGE_ENTRIES * 8)

unsigned vhdx_bat_cache_pages = VHDX_BAT_CACHE_PAGES;

int
vhdx_bat_cache_init (struct vhdx_bat_cache *c, struct io *io,
                     uint64_t offset, uint64_t entries,
                     vhdx_bat_check_fn check, void *opaque)
{
  memset (c, 0, sizeof *c);
  c->io = io;
  c->offset = offset;
  c->limit = vhdx_bat_cache_pages;
  c->check = check;
  c->opaque = opaque;
  return vhdx_bat_cache_resize (c, entries);
}

void
vhdx_bat_cache_free (struct vhdx_bat_cache *c)
{
  free (c->where);
  free (c->frames);
  memset (c, 0, sizeof *c);
}

/* Entries of page p that lie in the table. */
static uint64_t
page_entries (const struct vhdx_bat_cache *c, uint64_t p)
{
  uint64_t first = p * VHDX_BAT_PAGE_ENTRIES;

  return first >= c->entries ? 0
         : MIN ((uint64_t) VHDX_BAT_PAGE_ENTRIES, c->entries - first);
}

static void
drop_frame (struct vhdx_bat_cache *c, size_t f)
{
  c->where[c->frames[f].page] = 0;
  c->frames[f].page = UINT64_MAX;
}

/* A frame to fill: a new one below the limit, else the first clean one
 * the clock hand finds unreferenced, else a new one past the limit. */
static struct vhdx_bat_frame *
free_frame (struct vhdx_bat_cache *c)
{
  size_t sweep;

  for (sweep = 0; c->n_frames >= c->limit && sweep < 2 * c->n_frames;
       sweep++) {
    struct vhdx_bat_frame *f = &c->frames[c->hand];
    size_t at = c->hand;
    c->hand = (c->hand + 1) % c->n_frames;
    if (f->page == UINT64_MAX)
      return f;
    if (f->dirty)
      continue;
    if (f->referenced) {
      f->referenced = false;
      continue;
    }
    drop_frame (c, at);
    return f;
  }
  if (c->n_frames == c->cap_frames) {
    size_t cap = c->cap_frames ? 2 * c->cap_frames : 16;
    struct vhdx_bat_frame *n = realloc (c->frames, cap * sizeof *n);
    if (n == NULL) {
      set_error (ENOMEM, "out of memory for the VHDX BAT cache");
      return NULL;
    }
    c->frames = n;
    c->cap_frames = cap;
  }
  c->frames[c->n_frames].page = UINT64_MAX;
  return &c->frames[c->n_frames++];
}

/* Page p's frame, read from the file when it is not in memory. */
static struct vhdx_bat_frame *
frame_of (struct vhdx_bat_cache *c, uint64_t p)
{
  uint8_t raw[PAGE_BYTES];
  uint64_t n = page_entries (c, p), k;
  struct vhdx_bat_frame *f;

  if (c->where[p])
    return &c->frames[c->where[p] - 1];
  if (io_pread (c->io, raw, (size_t) n * 8,
                c->offset + p * PAGE_BYTES) == -1) {
    prefix_error ("reading VHDX BAT entries %" PRIu64 "..%" PRIu64,
                  p * VHDX_BAT_PAGE_ENTRIES, p * VHDX_BAT_PAGE_ENTRIES + n);
    return NULL;
  }
  c->reads++;
  f = free_frame (c);
  if (f == NULL)
    return NULL;
  for (k = 0; k < VHDX_BAT_PAGE_ENTRIES; k++)
    f->e[k] = k < n ? get_le64 (raw + k * 8) : 0;
  if (c->check
      && c->check (c->opaque, f->e, p * VHDX_BAT_PAGE_ENTRIES, n) == -1)
    return NULL; /* the frame stays free */
  f->page = p;
  f->dirty = false;
  f->referenced = false; /* a scan read once does not push out hot pages */
  c->where[p] = (uint32_t) (f - c->frames) + 1;
  return f;
}

/* The frame holding entry i; a page found in memory counts as used. */
static struct vhdx_bat_frame *
entry_frame (struct vhdx_bat_cache *c, uint64_t i)
{
  uint64_t p = i / VHDX_BAT_PAGE_ENTRIES;

  if (i >= c->entries) {
    set_error (EIO, "VHDX BAT entry %" PRIu64 " past the table's %" PRIu64
               " (driver bug)", i, c->entries);
    return NULL;
  }
  if (c->where[p] == 0)
    return frame_of (c, p);
  c->frames[c->where[p] - 1].referenced = true;
  return &c->frames[c->where[p] - 1];
}

int
vhdx_bat_cache_get (struct vhdx_bat_cache *c, uint64_t i, uint64_t *entry)
{
  struct vhdx_bat_frame *f = entry_frame (c, i);

  if (f == NULL)
    return -1;
  *entry = f->e[i % VHDX_BAT_PAGE_ENTRIES];
  return 0;
}

int
vhdx_bat_cache_pin (struct vhdx_bat_cache *c, uint64_t i)
{
  struct vhdx_bat_frame *f = entry_frame (c, i);

  if (f == NULL)
    return -1;
  f->dirty = true;
  return 0;
}

int
vhdx_bat_cache_set (struct vhdx_bat_cache *c, uint64_t i, uint64_t entry)
{
  struct vhdx_bat_frame *f = entry_frame (c, i);

  if (f == NULL)
    return -1;
  f->dirty = true;
  f->e[i % VHDX_BAT_PAGE_ENTRIES] = entry;
  return 0;
}

int
vhdx_bat_cache_encode (struct vhdx_bat_cache *c, uint64_t p, uint8_t *out)
{
  struct vhdx_bat_frame *f;
  uint64_t k;

  memset (out, 0, PAGE_BYTES);
  if (page_entries (c, p) == 0)
    return 0;
  f = frame_of (c, p);
  if (f == NULL)
    return -1;
  for (k = 0; k < VHDX_BAT_PAGE_ENTRIES; k++)
    put_le64 (out + k * 8, f->e[k]);
  return 0;
}

void
vhdx_bat_cache_clean (struct vhdx_bat_cache *c, uint64_t p)
{
  size_t f;

  if (p != UINT64_MAX) {
    if (p < c->pages && c->where[p])
      c->frames[c->where[p] - 1].dirty = false;
    return;
  }
  for (f = 0; f < c->n_frames; f++)
    c->frames[f].dirty = false;
}

int
vhdx_bat_cache_resize (struct vhdx_bat_cache *c, uint64_t entries)
{
  uint64_t pages = DIV_ROUND_UP (entries, (uint64_t) VHDX_BAT_PAGE_ENTRIES);
  size_t f;

  if (pages > UINT32_MAX) {
    set_error (EFBIG, "a VHDX BAT of %" PRIu64 " entries", entries);
    return -1;
  }
  if (pages > c->pages) {
    uint32_t *w = realloc (c->where, (size_t) pages * sizeof *w);
    if (w == NULL) {
      set_error (ENOMEM, "out of memory for a VHDX BAT of %" PRIu64
                 " entries", entries);
      return -1;
    }
    memset (w + c->pages, 0, (size_t) (pages - c->pages) * sizeof *w);
    c->where = w;
    c->pages = pages;
  }
  c->entries = entries;
  /* Frames keep zeros past the table's end, so it can grow again. */
  for (f = 0; f < c->n_frames; f++) {
    struct vhdx_bat_frame *fr = &c->frames[f];
    uint64_t keep;
    if (fr->page == UINT64_MAX)
      continue;
    keep = page_entries (c, fr->page);
    if (keep == 0 && !fr->dirty) {
      drop_frame (c, f);
      continue;
    }
    memset (fr->e + keep, 0, (VHDX_BAT_PAGE_ENTRIES - keep) * 8);
  }
  return 0;
}
