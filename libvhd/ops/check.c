/* check.c: vhd_check, the structure check behind `vhdtool check`.
 *
 * The driver's check reads the file's structures without trusting them
 * (the image may not open) and reports each finding.  When it finds no
 * corruption, the core then opens the image the normal way, parent chain
 * included, and walks its whole allocation map: anything a reader would
 * trip over is reported too.  Repairs happen only with VHD_CHECK_REPAIR
 * and only where the driver knows a safe fix.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

void
check_report (struct check_ctx *c, int severity, const char *fs, ...)
{
  char msg[1024];
  va_list args;

  va_start (args, fs);
  vsnprintf (msg, sizeof msg, fs, args);
  va_end (args);
  if (severity == VHD_CHECK_CORRUPT || severity == VHD_CHECK_LEAKS)
    c->found |= severity;
  if (c->fn)
    c->fn (c->opaque, severity, msg);
}

static int
count_extent (void *opaque, uint64_t offset, uint64_t length, unsigned state,
              unsigned depth)
{
  return 0;
}

/* Open through the normal path and walk the map: what a reader sees. */
static void
check_as_reader (const char *path, struct check_ctx *c)
{
  struct vhd_disk *d = disk_open_path (path, VHD_OPEN_RDONLY, NULL);

  if (d == NULL) {
    check_report (c, VHD_CHECK_CORRUPT, "cannot be opened: %s",
                  vhd_get_error ());
    return;
  }
  if (d->size > 0 && chain_block_status (d, 0, d->size, 0, count_extent, NULL))
    check_report (c, VHD_CHECK_CORRUPT, "allocation map: %s",
                  vhd_get_error ());
  disk_close (d);
}

int
vhd_check (const char *path, unsigned flags, vhd_check_fn fn, void *opaque)
{
  struct check_ctx c = { (flags & VHD_CHECK_REPAIR) != 0, 0, fn, opaque };
  const struct format_ops *ops;
  struct io *io;
  int r = 0;

  set_error_context ("vhd_check");
  if (path == NULL) {
    set_error (EFAULT, "path cannot be NULL");
    return -1;
  }
  if (flags & ~VHD_CHECK_REPAIR) {
    set_error (EINVAL, "unknown flags 0x%x", flags & ~VHD_CHECK_REPAIR);
    return -1;
  }
  io = io_file_open (path, !c.repair, false);
  if (io == NULL)
    return -1;
  ops = format_probe (io);
  if (ops == NULL)
    r = -1;
  else if (ops->check == NULL)
    check_report (&c, VHD_CHECK_INFO, "%s images have no structures to "
                  "check", ops->name);
  else
    r = ops->check (io, &c);
  io->ops->close (io);
  if (r == -1) {
    prefix_error ("%s", path);
    return -1;
  }
  set_error_context ("vhd_check");
  if (!(c.found & VHD_CHECK_CORRUPT))
    check_as_reader (path, &c);
  return c.found;
}
