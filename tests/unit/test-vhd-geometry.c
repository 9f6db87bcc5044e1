/* test-vhd-geometry.c: CHS geometry by the spec's algorithm (appendix
 * "CHS Calculation"), against geometries real tools wrote: Windows
 * (corpus images), qemu-img and Hyper-V. */
#undef NDEBUG /* Keep test strong */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdint.h>

#include "vhd/footer.h"

struct chs_case {
  uint64_t size;
  uint16_t cylinders;
  uint8_t heads, sectors;
};

ParameterizedTestParameters (vhd_geometry, spec_vectors)
{
  static struct chs_case cases[] = {
    /* Windows: corpus dissect-fixed.vhd, imhex-fixed.vhd,
     * dfvfs-fat-differential.vhd, nodevhd-dynamic.vhd */
    { 10485760, 301, 4, 17 },
    { 3145728, 90, 4, 17 },
    { 4194304, 120, 4, 17 },
    { 536870912, 1040, 16, 63 },
    /* Hyper-V 2012 R2 and Virtual PC: 127 GiB disks */
    { 136365211648ULL, 65278, 16, 255 },
    /* qemu-img: corpus dfvfs-ext2.vhd and dfvfs-image-2013.vhd, and the
     * 64M/8M images of golden-vhd.h */
    { 4212736, 121, 4, 17 },
    { 104448, 3, 4, 17 },
    { 67125248, 964, 8, 17 },
    { 8390656, 241, 4, 17 },
    { 142467072, 1023, 16, 17 },
    { 33822351360ULL, 16191, 16, 255 },
    /* Branches of the algorithm: 17 spt with more than 4 heads, 31 spt,
     * the 63-spt boundary, and the cap at 65535/16/255. */
    { 1024ULL * 16 * 17 * 512 - 512, 1023, 16, 17 },
    { 1024ULL * 16 * 17 * 512, 561, 16, 31 },
    { 65535ULL * 16 * 63 * 512 - 512, 65534, 16, 63 },
    { 65535ULL * 16 * 63 * 512, 16191, 16, 255 },
    { 2040ULL << 30, 65535, 16, 255 },
    { UINT64_C (1) << 45, 65535, 16, 255 },
    { 0, 0, 4, 17 },
  };

  return cr_make_param_array (struct chs_case, cases,
                              sizeof cases / sizeof cases[0]);
}

ParameterizedTest (struct chs_case *c, vhd_geometry, spec_vectors)
{
  uint16_t cyl;
  uint8_t heads, spt;

  vhd_geometry (c->size, &cyl, &heads, &spt);
  cr_expect (cyl == c->cylinders && heads == c->heads && spt == c->sectors,
             "size %llu: got %u/%u/%u, want %u/%u/%u",
             (unsigned long long) c->size, cyl, heads, spt, c->cylinders,
             c->heads, c->sectors);
}

Test (vhd_geometry, never_exceeds_the_size)
{
  uint64_t size;

  for (size = 512; size < (UINT64_C (1) << 40); size = size * 3 + 512) {
    uint16_t cyl;
    uint8_t heads, spt;
    vhd_geometry (size, &cyl, &heads, &spt);
    cr_expect ((uint64_t) cyl * heads * spt * 512 <= size
                 || size > 65535ULL * 16 * 255 * 512,
               "size %llu: CHS %u/%u/%u is larger",
               (unsigned long long) size, cyl, heads, spt);
  }
}
