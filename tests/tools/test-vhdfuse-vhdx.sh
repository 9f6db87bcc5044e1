#!/bin/bash
# vhdfuse on VHDX images (guarded: skipped while `vhdtool create x.vhdx`
# does not work): content against vhdtool convert, writes read back by
# qemu-img's vhdx driver after unmounting, SEEK_DATA/SEEK_HOLE against
# vhdtool map, punch-hole against vhd_discard, a differencing child, and
# a 4096-byte-sector disk (statfs block size, a GPT that sgdisk wrote
# with 512-byte LBAs, mkfs.ext4 + e2fsck).
#
#   B=build tests/tools/test-vhdfuse-vhdx.sh    (VHDFUSE overrides $B/vhdfuse)
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"

# shellcheck source=tests/tools/vhdfuse-lib.sh
. "$(dirname "$0")/vhdfuse-lib.sh"

cd "$T"
MiB=1048576
SIZE=$((64 * MiB))
M=$T/mnt

"$VHDTOOL" create probe.vhdx 1M > probe.log 2>&1 \
  || skip "vhdtool cannot create VHDX images yet: $(head -1 probe.log)"

# pycheck SCRIPT ARG...: a python snippet, failing the test on error.
pycheck () {
  local script=$1 out
  shift
  out=$("$PY" -c "$script" "$@" 2>&1) || fail "$out"
  [ -z "$out" ] || echo "$out"
}

# seek_runs FILE: the data runs "START LENGTH" found by SEEK_DATA/SEEK_HOLE.
seek_runs () {
  "$PY" -c '
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
size = os.fstat(fd).st_size
pos = 0
while pos < size:
    try:
        data = os.lseek(fd, pos, os.SEEK_DATA)
    except OSError as e:
        if e.errno == 6: break
        raise
    hole = os.lseek(fd, data, os.SEEK_HOLE)
    print(data, hole - data)
    pos = hole
' "$1"
}

# map_runs IMAGE: the data runs of vhdtool map, adjacent extents merged.
map_runs () {
  map_extents "$1" | awk '
    $3 == "data" { if (n && s + l == $1) l += $2; else { if (n) print s, l; s = $1; l = $2; n = 1 } }
    END { if (n) print s, l }'
}

# qemu_same RAW IMAGE WHAT: qemu-img reads IMAGE as RAW (when installed).
qemu_same () {
  local out
  command -v qemu-img > /dev/null || return 0
  out=$(qemu-img compare -f raw -F vhdx "$1" "$2" 2>&1) \
    || fail "$3: qemu-img compare: $out"
}

note "content, map and writes on a dynamic VHDX"
mkraw ref.raw $SIZE 0:65536:1 $((5 * MiB)):$((2 * MiB + 4096)):2 \
  $((40 * MiB)):1000:3 $((SIZE - 4096)):4096:4
"$VHDTOOL" convert -b 1M ref.raw img.vhdx
vf_mount img.vhdx "$M"
[ "$(file_size "$M/disk")" = $SIZE ] || fail "size $(file_size "$M/disk")"
[ "$(md5_file "$M/disk")" = "$(md5_raw img.vhdx)" ] \
  || fail "MOUNT/disk differs from vhdtool convert"
seek_runs "$M/disk" > seek.txt
map_runs img.vhdx > map.txt
cmp -s seek.txt map.txt \
  || fail "lseek runs differ from the map: $(paste -d'|' seek.txt map.txt)"
"$PY" -c 'import random, sys; sys.stdout.buffer.write(random.Random(9).randbytes(4 << 20))' > src
writes="1000:333 $((MiB - 700)):1400 $((10 * MiB)):$((3 * MiB + 5)) \
  $((SIZE - 512)):512 $((33 * MiB - 1)):1"
i=0
for w in $writes; do
  put src $((i * 4096)) "$M/disk" "${w%%:*}" "${w##*:}"
  put src $((i * 4096)) ref.raw "${w%%:*}" "${w##*:}"
  i=$((i + 1))
done
expect_same_file "$M/disk" ref.raw "MOUNT/disk after the writes"
vf_unmount "$M"
stream_same img.vhdx ref.raw "after unmount"
qemu_same ref.raw img.vhdx "after unmount"

note "punch hole and zero range, as vhd_discard does them"
cp img.vhdx direct.vhdx
vf_mount img.vhdx "$M"
fallocate -p -o $((8 * MiB)) -l $((8 * MiB)) "$M/disk" || fail "fallocate -p"
fallocate -p -o $((1000)) -l $((MiB)) "$M/disk" || fail "fallocate -p unaligned"
fallocate -z -o $((40 * MiB)) -l 700 "$M/disk" || fail "fallocate -z"
raw_pwrite ref.raw "$((8 * MiB)):$((8 * MiB)):z" "1000:$MiB:z" "$((40 * MiB)):700:z"
expect_same_file "$M/disk" ref.raw "after fallocate"
vf_unmount "$M"
stream_same img.vhdx ref.raw "fallocate after unmount"
qemu_same ref.raw img.vhdx "fallocate after unmount"
py_libvhd - "$B/libvhd.so" direct.vhdx <<'PYEOF' || fail "vhd_discard through ctypes failed"
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1])
lib.vhd_open.restype = ctypes.c_void_p
lib.vhd_open.argtypes = [ctypes.c_char_p, ctypes.c_uint]
lib.vhd_discard.argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint64]
lib.vhd_write_zeroes.argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint64, ctypes.c_uint]
lib.vhd_close.argtypes = [ctypes.c_void_p]
d = lib.vhd_open(sys.argv[2].encode(), 0)
assert d
assert lib.vhd_discard(d, 8 << 20, 8 << 20) == 0
assert lib.vhd_discard(d, 1000, 1 << 20) == 0
assert lib.vhd_write_zeroes(d, 40 << 20, 700, 0) == 0
lib.vhd_close(d)
PYEOF
map_extents img.vhdx > map-fuse.txt
map_extents direct.vhdx > map-lib.txt
cmp -s map-fuse.txt map-lib.txt \
  || fail "map after fallocate differs from vhd_discard's: $(diff map-fuse.txt map-lib.txt | head -5)"
awk -v s=$((8 * MiB)) '$1 <= s && s < $1 + $2 && $3 == "zero"' map-fuse.txt \
  | grep -q . || fail "punch-hole did not free the 1 MiB blocks at 8 MiB"

note "differencing VHDX child"
parent_md5=$(md5_file img.vhdx)
"$VHDTOOL" create --parent img.vhdx child.vhdx
cp ref.raw child.raw
vf_mount child.vhdx "$M"
expect_same_file "$M/disk" child.raw "child before writing"
put src 100 "$M/disk" $((6 * MiB + 5)) 300000
put src 100 child.raw $((6 * MiB + 5)) 300000
vf_unmount "$M"
[ "$(md5_file img.vhdx)" = "$parent_md5" ] || fail "writing the child changed the parent"
stream_same child.vhdx child.raw "child after unmount"

note "4096-byte logical sectors"
"$VHDTOOL" create --logical-sector 4096 --physical-sector 4096 k4.vhdx $SIZE \
  > k4.log 2>&1 || skip "no 4096-byte-sector VHDX yet: $(head -1 k4.log)"
vf_mount k4.vhdx "$M"
[ "$(stat -f -c %S "$M")" = 4096 ] || fail "statfs block size $(stat -f -c %S "$M")"
[ "$(stat -f -c %b "$M")" = $((SIZE / 4096)) ] || fail "statfs blocks"
mkraw k4.raw $SIZE
put src 0 "$M/disk" 512 1000        # part of a sector
put src 0 k4.raw 512 1000
expect_same_file "$M/disk" k4.raw "a partial sector write"
if command -v sgdisk > /dev/null && command -v mkfs.ext4 > /dev/null; then
  # sgdisk sees a regular file: it writes 512-byte LBAs, found by the
  # fallback to the other sector size.
  sgdisk -n 1:2048:+30M "$M/disk" > sgdisk.log 2>&1 || fail "sgdisk: $(cat sgdisk.log)"
  [ -e "$M/disk-part1" ] || fail "no disk-part1 on the 4096-byte-sector disk: $(ls "$M")"
  [ "$(file_size "$M/disk-part1")" = $((30 * MiB)) ] || fail "disk-part1 size"
  mkfs.ext4 -q -F "$M/disk-part1" || fail "mkfs.ext4"
  vf_unmount "$M"
  vf_mount k4.vhdx "$M" -r
  e2fsck -fn "$M/disk-part1" > fsck.log 2>&1 || fail "e2fsck: $(tail -5 fsck.log)"
fi
vf_unmount "$M"

echo "PASS: $TEST_NAME"
