/* test-vhdx-qemu.c: our writes into images qemu-img made (dynamic and
 * fixed, 1 MiB blocks, a 4 MiB log), read back by qemu-io and accepted
 * by `qemu-img check`.  Skipped when qemu-img or qemu-io is missing. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libvhd.h"

#define MiB (UINT64_C (1) << 20)

static char dir[] = "/tmp/libvhd-vhdx-qemu-XXXXXX";

static int
sh (const char *fmt, const char *arg)
{
  char cmd[1024];
  snprintf (cmd, sizeof cmd, fmt, arg, arg, arg, arg, arg, arg);
  return system (cmd);
}

static void
write_byte (struct vhd_disk *d, uint8_t byte, size_t len, uint64_t off)
{
  uint8_t *b = malloc (len);
  memset (b, byte, len);
  cr_assert_eq (vhd_pwrite (d, b, len, off), 0, "%s", vhd_get_error ());
  free (b);
}

static void
qemu_reads_our_writes (const char *sub)
{
  char path[256];
  struct vhd_disk *d;

  if (system ("command -v qemu-img >/dev/null && "
              "command -v qemu-io >/dev/null") != 0) {
    cr_log_warn ("qemu-img or qemu-io missing: skipped");
    return;
  }
  cr_assert_not_null (mkdtemp (dir));
  snprintf (path, sizeof path, "%s/q-%s.vhdx", dir, sub);
  char create[600];
  snprintf (create, sizeof create, "qemu-img create -q -f vhdx -o "
            "subformat=%s,block_size=1M,log_size=4M %s 64M", sub, path);
  cr_assert_eq (system (create), 0);
  cr_assert_eq (sh ("qemu-io -f vhdx -c 'write -P 0x11 0 1M' %s >/dev/null",
                    path), 0);
  d = vhd_open (path, 0);
  cr_assert_not_null (d, "%s", vhd_get_error ());
  write_byte (d, 0x22, 8192, 5 * MiB);   /* a new block */
  write_byte (d, 0x33, 512, 4096);        /* into qemu's block */
  write_byte (d, 0x44, MiB, 63 * MiB);    /* the last block */
  cr_assert_eq (vhd_flush (d), 0);
  vhd_close (d);
  cr_expect_eq (sh ("qemu-img check %s >/dev/null", path), 0,
                "qemu-img check failed");
  cr_expect_eq (sh ("qemu-io -f vhdx -c 'read -P 0x22 5M 8k' "
                    "-c 'read -P 0x33 4096 512' -c 'read -P 0x11 0 4096' "
                    "-c 'read -P 0x11 4608 1043968' -c 'read -P 0x44 63M 1M' "
                    "-c 'read -P 0 6M 1M' %s | grep -q 'Pattern verification"
                    " failed' && exit 1 || exit 0", path), 0,
                "qemu-io reads other data");
  snprintf (create, sizeof create, "rm -rf %s", dir);
  cr_expect_eq (system (create), 0);
}

Test (vhdx_qemu, dynamic, .timeout = 120)
{
  qemu_reads_our_writes ("dynamic");
}

Test (vhdx_qemu, fixed, .timeout = 120)
{
  qemu_reads_our_writes ("fixed");
}
