#!/bin/bash
# vhdfuse's partition files: MOUNT/disk-partN for each MBR (primary and
# logical) and GPT partition, numbered as in the table; found again when
# the table is written through MOUNT/disk (sgdisk, a hand-made MBR);
# windows that read and write exactly the partition's bytes and refuse to
# write past it; a damaged table (bad boot flag, GPT header CRC) handled
# as Linux does, falling back to the backup GPT.  Then file systems:
# mkfs.ext4 on a partition and on the whole disk, e2fsck clean after a
# remount, and mount -o loop of a partition file where loop devices work.
#
#   B=build tests/tools/test-vhdfuse-part.sh    (VHDFUSE overrides $B/vhdfuse)
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"

# shellcheck source=tests/tools/vhdfuse-lib.sh
. "$(dirname "$0")/vhdfuse-lib.sh"

cd "$T"
MiB=1048576
SIZE=$((64 * MiB))
M=$T/mnt

# parts: the partition files, by name, one line.
parts () {
  # shellcheck disable=SC2012 # names are disk-partN
  (cd "$M" && ls -d disk-part* 2>/dev/null | sort -V | tr '\n' ' ')
}

# window_check FILE START SIZE: FILE is SIZE bytes and reads what MOUNT/disk
# holds at START; a write at FILE's offset 1000 shows up in MOUNT/disk at
# START + 1000; writes past its end fail with ENOSPC and leave the next
# byte of the disk alone.
window_check () {
  "$PY" - "$M/disk" "$@" <<'PYEOF' || fail "window $2 (${3}+${4}) is wrong"
import errno, os, random, sys
disk, part = sys.argv[1], sys.argv[2]
start, size = int(sys.argv[3]), int(sys.argv[4])
assert os.stat(part).st_size == size, (os.stat(part).st_size, size)
d = os.open(disk, os.O_RDWR); p = os.open(part, os.O_RDWR)
assert os.pread(p, size, 0) == os.pread(d, size, start), "content differs"
data = random.Random(start).randbytes(5000)
assert os.pwrite(p, data, 1000) == 5000
os.fsync(p)
# The disk's own page cache may hold the old bytes: reopen to see them.
os.close(d); d = os.open(disk, os.O_RDWR)
assert os.pread(d, 5000, start + 1000) == data, "write landed elsewhere"
after = os.pread(d, 1, start + size) if start + size < os.fstat(d).st_size else b""
assert os.pwrite(p, b"\xee" * 4096, size - 512) == 512, "write across the end"
try:
    os.pwrite(p, b"\xee", size); sys.exit("write past the end worked")
except OSError as e:
    assert e.errno == errno.ENOSPC, e
os.close(d); d = os.open(disk, os.O_RDONLY)
assert os.pread(d, 1, start + size) == after, "write past the partition's end"
PYEOF
}

note "GPT written by sgdisk through MOUNT/disk"
need_cmd sgdisk
"$VHDTOOL" create gpt.vhd $SIZE
vf_mount gpt.vhd "$M"
[ "$(parts)" = "" ] || fail "a blank disk has partitions: $(parts)"
sgdisk -n 1:2048:+20M -n 3:0:+8M -t 1:8300 "$M/disk" > sgdisk.log 2>&1 \
  || fail "sgdisk: $(cat sgdisk.log)"
[ "$(parts)" = "disk-part1 disk-part3 " ] || fail "GPT partitions: $(parts)"
# sgdisk -i N: "First sector: 2048 (at 1024.0 KiB)", "Last sector: ..."
for n in 1 3; do
  first=$(sgdisk -i $n "$M/disk" | sed -n 's/^First sector: \([0-9]*\).*/\1/p')
  last=$(sgdisk -i $n "$M/disk" | sed -n 's/^Last sector: \([0-9]*\).*/\1/p')
  window_check "$M/disk-part$n" $((first * 512)) $(((last - first + 1) * 512))
done

note "damaged primary GPT header: the backup; both damaged: no partitions"
printf '\xff' | dd of="$M/disk" bs=1 seek=$((512 + 40)) conv=notrunc status=none
[ "$(parts)" = "disk-part1 disk-part3 " ] || fail "backup GPT not used: $(parts)"
printf '\xff' | dd of="$M/disk" bs=1 seek=$((SIZE - 512 + 40)) conv=notrunc status=none
[ "$(parts)" = "" ] || fail "a GPT with two bad headers gave: $(parts)"
vf_unmount "$M"

note "MBR with primary and logical partitions"
"$VHDTOOL" create mbr.vhd $SIZE
vf_mount mbr.vhd "$M"
"$PY" - "$M/disk" <<'PYEOF' || fail "writing the MBR failed"
import os, struct, sys
def table(entries):
    s = bytearray(512)
    for i, (boot, typ, lba, count) in enumerate(entries):
        s[446 + 16 * i: 462 + 16 * i] = struct.pack("<B3xB3xII", boot, typ, lba, count)
    s[510:512] = b"\x55\xaa"
    return bytes(s)
fd = os.open(sys.argv[1], os.O_WRONLY)
# 1: 1 MiB + 4 MiB; 2: 5 MiB + 2 MiB; extended at 8 MiB (16 MiB long)
# holding 5: 9 MiB + 1 MiB and 6: 13 MiB + 2 MiB.
os.pwrite(fd, table([(0x80, 0x83, 2048, 8192), (0, 0x83, 10240, 4096),
                     (0, 0x05, 16384, 32768)]), 0)
os.pwrite(fd, table([(0, 0x83, 2048, 2048), (0, 0x05, 8192, 8192)]), 16384 * 512)
os.pwrite(fd, table([(0, 0x83, 2048, 4096)]), 24576 * 512)
os.close(fd)
PYEOF
[ "$(parts)" = "disk-part1 disk-part2 disk-part5 disk-part6 " ] \
  || fail "MBR partitions: $(parts)"
window_check "$M/disk-part1" $((1 * MiB)) $((4 * MiB))
window_check "$M/disk-part2" $((5 * MiB)) $((2 * MiB))
window_check "$M/disk-part5" $((9 * MiB)) $((1 * MiB))
window_check "$M/disk-part6" $((13 * MiB)) $((2 * MiB))
if [ -e "$M/disk-part3" ] || [ -e "$M/disk-part05" ]; then
  fail "phantom partition"
fi

note "not a partition table: a boot flag other than 0x00/0x80"
printf '\x12' | dd of="$M/disk" bs=1 seek=462 conv=notrunc status=none
[ "$(parts)" = "" ] || fail "a bad boot flag still gave: $(parts)"
printf '\x00' | dd of="$M/disk" bs=1 seek=462 conv=notrunc status=none
[ "$(parts)" = "disk-part1 disk-part2 disk-part5 disk-part6 " ] \
  || fail "MBR not found again: $(parts)"
vf_unmount "$M"
vf_mount mbr.vhd "$M" -r
[ "$(parts)" = "disk-part1 disk-part2 disk-part5 disk-part6 " ] \
  || fail "MBR partitions after remount: $(parts)"
vf_unmount "$M"

note "mkfs.ext4 on a partition, e2fsck after remount, mount -o loop"
need_cmd mkfs.ext4 e2fsck
vf_mount gpt.vhd "$M"
sgdisk -Z "$M/disk" > /dev/null 2>&1 || true
sgdisk -n 1:2048:+40M "$M/disk" > sgdisk.log 2>&1 || fail "sgdisk: $(cat sgdisk.log)"
[ "$(parts)" = "disk-part1 " ] || fail "after repartitioning: $(parts)"
mkfs.ext4 -q -F "$M/disk-part1" || fail "mkfs.ext4 on disk-part1"
vf_unmount "$M"
vf_mount gpt.vhd "$M"
e2fsck -fn "$M/disk-part1" > fsck.log 2>&1 || fail "e2fsck: $(tail -5 fsck.log)"
if [ "$(id -u)" = 0 ] && losetup -f > /dev/null 2>&1; then
  mkdir -p fs
  LOOP_FS=$T/fs
  if mount -o loop "$M/disk-part1" fs 2> mount.err; then
    mkraw payload $((3 * MiB)) 0:$((3 * MiB)):7
    cp payload fs/copy && sync fs/copy
    cmp -s payload fs/copy || { umount fs; fail "file copied into the loop mount differs"; }
    umount fs || fail "umount of the loop mount failed"
    e2fsck -fn "$M/disk-part1" > fsck.log 2>&1 \
      || fail "e2fsck after the loop mount: $(tail -5 fsck.log)"
  else
    note "mount -o loop impossible here, not tested: $(cat mount.err)"
  fi
else
  note "no loop devices (or not root): mount -o loop not tested"
fi
vf_unmount "$M"

note "mkfs.ext4 on the whole disk"
"$VHDTOOL" create whole.vhd $SIZE
vf_mount whole.vhd "$M"
mkfs.ext4 -q -F "$M/disk" || fail "mkfs.ext4 on MOUNT/disk"
vf_unmount "$M"
vf_mount whole.vhd "$M"
e2fsck -fn "$M/disk" > fsck.log 2>&1 || fail "e2fsck: $(tail -5 fsck.log)"
[ "$(parts)" = "" ] || fail "an ext4 disk shows partitions: $(parts)"
vf_unmount "$M"

echo "PASS: $TEST_NAME"
