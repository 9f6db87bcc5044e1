/* header-only.c: libvhd.h compiles alone, as strict C99 and as C++
 * (the Makefile builds this file both ways with -Werror). */
#include <libvhd.h>

int vhd_compile_check (void);

int
vhd_compile_check (void)
{
  struct vhd_disk *d = vhd_open ("x", VHD_OPEN_RDONLY);
  int r = d ? (int) vhd_get_size (d) : vhd_get_errno ();
  vhd_close (d);
  return r + VHD_VERSION_MAJOR + VHD_STATE_HOLE + VHD_FORMAT_VHDX;
}
