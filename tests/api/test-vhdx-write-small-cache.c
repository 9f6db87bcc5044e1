/* test-vhdx-write-small-cache.c: the tests of test-vhdx-write.c (writes
 * through the log, their crash tests, reopening) again with a BAT cache
 * of one page (see test-vhdx-ops-small-cache.c). */
#include "test-vhdx-write.c"
#include "vhdx/bat-cache.h"

static void __attribute__ ((constructor))
one_page_bat_cache (void)
{
  vhdx_bat_cache_pages = 1;
}
