/* test-vhdx-ops-small-cache.c: every test of test-vhdx-ops.c (discard,
 * zeroes, compact, resize, commit, rebase, check, and their crash tests)
 * again with a BAT cache of one page, so that nearly every BAT access
 * drops a page and reads one back: what must stay in memory (pages
 * changed until their log entry is applied) has to. */
#include "test-vhdx-ops.c"
#include "vhdx/bat-cache.h"

static void __attribute__ ((constructor))
one_page_bat_cache (void)
{
  vhdx_bat_cache_pages = 1;
}
