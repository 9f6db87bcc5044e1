/* metadata.h: the VHDX metadata region (MS-VHDX 2.6): a 64 KiB table
 * followed by items, of which the spec defines six system items.
 */
#ifndef LIBVHD_VHDX_METADATA_H
#define LIBVHD_VHDX_METADATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "guid.h"

enum {
  VHDX_MD_SIGNATURE = 0,  /* char[8] "metadata" */
  VHDX_MD_COUNT = 10,     /* u16, <= 2047 */
  VHDX_MD_ENTRIES = 32,
  /* Table entry, 32 bytes. */
  VHDX_MDE_ID = 0,        /* GUID */
  VHDX_MDE_OFFSET = 16,   /* u32, >= 64 KiB, from the region's start */
  VHDX_MDE_LENGTH = 20,   /* u32, <= 1 MiB */
  VHDX_MDE_FLAGS = 24,    /* u32: bit 0 IsUser, 1 IsVirtualDisk, 2 IsRequired */
  VHDX_MDE_SIZE = 32,
  VHDX_MD_TABLE_SIZE = 65536,
  VHDX_MD_MAX_ENTRIES = 2047,
  VHDX_MD_ITEM_MAX = 1048576,
  /* Parent locator item. */
  VHDX_PL_TYPE = 0,       /* GUID */
  VHDX_PL_COUNT = 18,     /* u16 key-value count */
  VHDX_PL_ENTRIES = 20,
  VHDX_PLE_KEY_OFFSET = 0,    /* u32, from the item's start */
  VHDX_PLE_VALUE_OFFSET = 4,  /* u32 */
  VHDX_PLE_KEY_LENGTH = 8,    /* u16, bytes of UTF-16LE */
  VHDX_PLE_VALUE_LENGTH = 10, /* u16 */
  VHDX_PLE_SIZE = 12,
};

#define VHDX_MD_FLAG_USER 1U
#define VHDX_MD_FLAG_VIRTUAL_DISK 2U
#define VHDX_MD_FLAG_REQUIRED 4U

#define VHDX_MIN_BLOCK_SIZE (UINT32_C (1) << 20)
#define VHDX_MAX_BLOCK_SIZE (UINT32_C (256) << 20)
#define VHDX_MAX_DISK_SIZE (UINT64_C (64) << 40)

extern const uint8_t vhdx_parent_locator_vhdx_type[GUID_SIZE];

/* The VHDX parent locator's keys we know; each malloc'd UTF-8 or NULL. */
struct vhdx_parent_locator {
  uint8_t type[GUID_SIZE];
  char *parent_linkage, *parent_linkage2;
  char *relative_path, *volume_path, *absolute_win32_path;
};

struct vhdx_metadata {
  uint32_t block_size;
  bool leave_blocks_allocated, has_parent;
  uint64_t disk_size;
  uint8_t disk_id[GUID_SIZE];   /* RFC order */
  uint32_t logical_sector, physical_sector;
  bool have_locator;
  struct vhdx_parent_locator locator;
};

/* Decode a whole metadata region held in memory (len bytes, the region
 * length or less when the caller capped it).  Checks the table, every
 * entry's placement, each system item's value, and refuses unknown
 * required items (ENOTSUP naming the GUID).  On failure md may hold
 * allocations: call vhdx_metadata_free either way. */
int vhdx_metadata_decode (const uint8_t *region, size_t len,
                          struct vhdx_metadata *md);
void vhdx_metadata_free (struct vhdx_metadata *md);

/* Decode one parent locator item (also used by vhdx_metadata_decode). */
int vhdx_locator_decode (const uint8_t *p, uint32_t len,
                         struct vhdx_parent_locator *pl);

/* Write a metadata region for md into region[0..len) (len >= 128 KiB):
 * the table and the system items (the locator when md->has_parent). */
int vhdx_metadata_encode (const struct vhdx_metadata *md, uint8_t *region,
                          size_t len);

/* Encode a parent locator item into item[0..cap); its length or -1. */
ssize_t vhdx_locator_encode (const struct vhdx_parent_locator *pl,
                             uint8_t *item, size_t cap);

/* Editing an existing region (resize, set_parent).  table holds the
 * region's first VHDX_MD_TABLE_SIZE bytes, decoded before. */
enum vhdx_md_item {
  VHDX_MD_ITEM_DISK_SIZE = 1,
  VHDX_MD_ITEM_PARENT_LOCATOR = 5,
};

struct vhdx_md_entry {
  unsigned index;
  uint8_t id[GUID_SIZE];
  uint32_t offset, length, flags;
};

/* Entries in the table (at most VHDX_MD_MAX_ENTRIES). */
unsigned vhdx_metadata_count (const uint8_t *table);
void vhdx_metadata_entry (const uint8_t *table, unsigned i,
                          struct vhdx_md_entry *e);
/* The entry of a system item; -1 after set_error when there is none. */
int vhdx_metadata_find (const uint8_t *table, enum vhdx_md_item which,
                        struct vhdx_md_entry *e);

#endif /* LIBVHD_VHDX_METADATA_H */
