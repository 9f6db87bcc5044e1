/* bat-cache.h: the VHDX BAT, read from the file a 4 KiB page (512
 * entries) at a time when first needed and kept in a bounded cache, so
 * that a 64 TiB disk of 1 MiB blocks (a 512 MiB table) costs no more
 * memory than a small one.
 *
 * A page changed in memory is dirty: it stays in memory until the log
 * entry that writes it has been applied (vhdx_bat_clean), so the file
 * and the cache never disagree about a page the cache may drop.  Clean
 * pages are dropped second-chance (clock) once the cache is full; when
 * every page is dirty the cache grows past its limit rather than fail.
 */
#ifndef LIBVHD_VHDX_BAT_CACHE_H
#define LIBVHD_VHDX_BAT_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"

#define VHDX_BAT_PAGE_ENTRIES 512U
/* Pages held before clean ones are dropped: 8 MiB, a whole 1 TiB disk
 * of 1 MiB blocks or a 64 TiB one of 32 MiB blocks. */
#define VHDX_BAT_CACHE_PAGES 2048U
/* The limit new caches get (tests lower it to drop pages all the time). */
extern unsigned vhdx_bat_cache_pages;

struct vhdx_bat_frame;

/* Checks entries [first, first + n) of a page just read (e[] holds them
 * in host order); -1 with the error set rejects the page. */
typedef int (*vhdx_bat_check_fn) (void *opaque, const uint64_t *e,
                                  uint64_t first, uint64_t n);

struct vhdx_bat_cache {
  struct io *io;            /* where pages are read from */
  uint64_t offset;          /* of the table in the file */
  uint64_t entries;         /* in the table; the rest of a page is 0 */
  uint64_t pages;           /* that where[] has room for */
  uint32_t *where;          /* per page: its frame + 1, or 0 */
  struct vhdx_bat_frame *frames;
  size_t n_frames, cap_frames, limit, hand;
  vhdx_bat_check_fn check;  /* NULL: pages are taken as they are */
  void *opaque;
  uint64_t reads;           /* pages read from the file (tests) */
};

/* An empty cache of the entries-long table at offset in io. */
int vhdx_bat_cache_init (struct vhdx_bat_cache *c, struct io *io,
                         uint64_t offset, uint64_t entries,
                         vhdx_bat_check_fn check, void *opaque);
void vhdx_bat_cache_free (struct vhdx_bat_cache *c);

/* Entry i (< entries). */
int vhdx_bat_cache_get (struct vhdx_bat_cache *c, uint64_t i,
                        uint64_t *entry);
/* Change entry i in memory; its page becomes dirty. */
int vhdx_bat_cache_set (struct vhdx_bat_cache *c, uint64_t i,
                        uint64_t entry);
/* Keep entry i's page in memory (dirty) without changing it. */
int vhdx_bat_cache_pin (struct vhdx_bat_cache *c, uint64_t i);
/* The 4 KiB little-endian image of page p (zeros past the table). */
int vhdx_bat_cache_encode (struct vhdx_bat_cache *c, uint64_t p,
                           uint8_t *out);
/* Page p (or, for UINT64_MAX, every page) is as the file holds it. */
void vhdx_bat_cache_clean (struct vhdx_bat_cache *c, uint64_t p);
/* The table now holds entries entries (entries past the old end read as
 * 0: the caller makes the file agree before anything reads them back);
 * clean pages are dropped when it shrinks. */
int vhdx_bat_cache_resize (struct vhdx_bat_cache *c, uint64_t entries);

#endif /* LIBVHD_VHDX_BAT_CACHE_H */
