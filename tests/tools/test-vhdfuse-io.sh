#!/bin/bash
# vhdfuse on VHD images, through a real FUSE mount: MOUNT/disk reads what
# vhdtool convert reads; writes at unaligned offsets, across blocks and at
# the end land where qemu-img reads them after unmounting; writes past the
# end fail with ENOSPC; -r refuses writes with EROFS and leaves the file
# alone; SEEK_DATA/SEEK_HOLE follow vhdtool map; fallocate punch-hole and
# zero-range read back as zeros and change the map exactly as vhd_discard
# does; concurrent writers; differencing children; SIGTERM and daemon mode
# flush and close.  Skips (77) where FUSE mounts are impossible.
#
#   B=build tests/tools/test-vhdfuse-io.sh    (VHDFUSE overrides $B/vhdfuse)
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"

# shellcheck source=tests/tools/vhdfuse-lib.sh
. "$(dirname "$0")/vhdfuse-lib.sh"

cd "$T"
MiB=1048576
SIZE=$((64 * MiB))
M=$T/mnt

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

note "content: MOUNT/disk reads what vhdtool convert reads"
mkraw ref.raw $SIZE 0:65536:1 $((5 * MiB)):$((2 * MiB + 4096)):2 \
  $((20 * MiB)):1000:3 $((SIZE - 4096)):4096:4
"$VHDTOOL" convert ref.raw img.vhd
vf_mount img.vhd "$M"
[ "$(file_size "$M/disk")" = $SIZE ] || fail "size $(file_size "$M/disk")"
[ "$(ls "$M")" = disk ] || fail "unexpected files: $(ls "$M")"
[ "$(md5_file "$M/disk")" = "$(md5_raw img.vhd)" ] \
  || fail "MOUNT/disk differs from vhdtool convert"
expect_same_file "$M/disk" ref.raw "MOUNT/disk vs the source"
[ "$(stat -f -c %S "$M")" = 512 ] || fail "statfs block size $(stat -f -c %S "$M")"
[ "$(stat -f -c %b "$M")" = $((SIZE / 512)) ] || fail "statfs blocks"

note "SEEK_DATA/SEEK_HOLE follow vhdtool map"
seek_runs "$M/disk" > seek.txt
map_runs img.vhd > map.txt
cmp -s seek.txt map.txt \
  || fail "lseek runs differ from the map: $(paste -d'|' seek.txt map.txt)"
[ "$(tr '\n' ' ' < seek.txt)" = "0 $((2 * MiB)) $((4 * MiB)) $((4 * MiB)) \
$((20 * MiB)) $((2 * MiB)) $((SIZE - 2 * MiB)) $((2 * MiB)) " ] \
  || fail "data runs: $(cat seek.txt)"
pycheck '
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
assert os.lseek(fd, 100, os.SEEK_DATA) == 100
assert os.lseek(fd, 100, os.SEEK_HOLE) == 2 << 20, os.lseek(fd, 100, os.SEEK_HOLE)
assert os.lseek(fd, (2 << 20) + 1, os.SEEK_DATA) == 4 << 20
assert os.lseek(fd, 9 << 20, os.SEEK_DATA) == 20 << 20
try:
    os.lseek(fd, int(sys.argv[2]), os.SEEK_DATA); sys.exit("SEEK_DATA at EOF")
except OSError as e:
    assert e.errno == 6, e
' "$M/disk" $SIZE

note "writes: unaligned, across blocks, at the end"
"$PY" -c 'import random, sys; sys.stdout.buffer.write(random.Random(9).randbytes(4 << 20))' > src
writes="0:4096 1000:333 $((2 * MiB - 700)):1400 $((10 * MiB)):$((3 * MiB + 5)) \
  $((SIZE - 512)):512 $((32 * MiB - 1)):1 $((20 * MiB + 512)):$((MiB))"
i=0
for w in $writes; do
  off=${w%%:*} len=${w##*:}
  put src $((i * 4096)) "$M/disk" "$off" "$len"
  put src $((i * 4096)) ref.raw "$off" "$len"
  i=$((i + 1))
done
pycheck '
import errno, os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
size = int(sys.argv[2])
n = os.pwrite(fd, b"\xab" * 1024, size - 512)
assert n == 512, "write across the end: %d bytes" % n
for off in (size, size + 4096):
    try:
        os.pwrite(fd, b"x", off); sys.exit("write at %d past the end worked" % off)
    except OSError as e:
        assert e.errno == errno.ENOSPC, e
assert os.fstat(fd).st_size == size
os.close(fd)
' "$M/disk" $SIZE
"$PY" -c 'import sys; sys.stdout.buffer.write(b"\xab" * 512)' > tail512
put tail512 0 ref.raw $((SIZE - 512)) 512
# Shared writable mmap (needs the page cache: no direct_io by default).
for f in "$M/disk" ref.raw; do
  pycheck '
import mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
mm = mmap.mmap(fd, 1 << 20, offset=24 << 20)
mm[4000:4100] = bytes(range(100))
mm.flush(); mm.close(); os.close(fd)
' "$f"
done
expect_same_file "$M/disk" ref.raw "MOUNT/disk after the writes"
vf_unmount "$M"
stream_same img.vhd ref.raw "after unmount"
if command -v qemu-img >/dev/null; then
  out=$(qemu-img compare --image-opts "driver=raw,file.filename=ref.raw" \
        "$(qemu_vpc_opts img.vhd)" 2>&1) || fail "qemu-img compare: $out"
else
  note "qemu-img not installed: compared with vhdtool only"
fi

note "-o direct_io"
vf_mount img.vhd "$M" -o direct_io
expect_same_file "$M/disk" ref.raw "direct_io read"
put src 4096 "$M/disk" $((MiB + 3)) 9000
put src 4096 ref.raw $((MiB + 3)) 9000
expect_same_file "$M/disk" ref.raw "direct_io write"
vf_unmount "$M"

for mode in single -m; do
note "concurrent writers and readers ($mode threaded)"
vf_mount img.vhd "$M" $([ $mode = -m ] && echo -m)
for k in 0 1 2 3 4 5; do
  off=$((40 * MiB + k * 3 * MiB + k * 1000 + ${#mode} * 512))
  put src $((k * 65536)) "$M/disk" "$off" $((2 * MiB + 77)) &
  md5sum "$M/disk" > /dev/null &
  put src $((k * 65536)) ref.raw "$off" $((2 * MiB + 77))
done
wait_rc=0
for j in $(jobs -p); do
  [ "$j" = "$VF_PID" ] && continue
  wait "$j" || wait_rc=$?
done
[ $wait_rc -eq 0 ] || fail "a concurrent writer or reader failed"
expect_same_file "$M/disk" ref.raw "after concurrent writes"
vf_unmount "$M"
stream_same img.vhd ref.raw "concurrent writes after unmount ($mode)"
done

note "-r: reads work, writes fail with EROFS, the file is untouched"
before=$(md5_file img.vhd)
vf_mount img.vhd "$M" -r
expect_same_file "$M/disk" ref.raw "read-only mount"
pycheck '
import errno, os, sys
for flags in (os.O_WRONLY, os.O_RDWR):
    try:
        os.open(sys.argv[1], flags); sys.exit("open for writing worked")
    except OSError as e:
        assert e.errno == errno.EROFS, e
' "$M/disk"
if dd if=src of="$M/disk" bs=4096 count=1 conv=notrunc status=none 2> err; then
  fail "dd wrote to a read-only mount"
fi
grep -q "Read-only file system" err || fail "dd: $(cat err)"
if fallocate -p -o 0 -l $MiB "$M/disk" 2> err; then
  fail "fallocate worked on a read-only mount"
fi
vf_unmount "$M"
[ "$(md5_file img.vhd)" = "$before" ] || fail "-r changed the image file"

note "fallocate: punch hole and zero range"
cp img.vhd direct.vhd
vf_mount img.vhd "$M"
punches="$((2 * MiB)):$((2 * MiB)) $((10 * MiB + 4096)):$((MiB + 512))"
for p in $punches; do
  fallocate -p -o "${p%%:*}" -l "${p##*:}" "$M/disk" \
    || fail "fallocate -p -o ${p%%:*} -l ${p##*:}"
  raw_pwrite ref.raw "${p%%:*}:${p##*:}:z"
done
fallocate -z -o $((20 * MiB)) -l 3000 "$M/disk" || fail "fallocate -z"
raw_pwrite ref.raw "$((20 * MiB)):3000:z"
# Past the end with KEEP_SIZE (punch-hole implies it): cut at the end.
fallocate -p -o $((SIZE - 512)) -l $MiB "$M/disk" || fail "punch past the end"
raw_pwrite ref.raw "$((SIZE - 512)):512:z"
if fallocate -o 0 -l 4096 "$M/disk" 2> err; then
  fail "plain fallocate (mode 0) worked"
fi
grep -q "not supported" err || fail "fallocate mode 0: $(cat err)"
expect_same_file "$M/disk" ref.raw "after fallocate"
vf_unmount "$M"
stream_same img.vhd ref.raw "fallocate after unmount"
# The same calls straight through the library give the same map.
# shellcheck disable=SC2086 # $punches: one argument per range
py_libvhd - "$B/libvhd.so" direct.vhd $punches "$((SIZE - 512)):512" <<'PYEOF' || fail "vhd_discard through ctypes failed"
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1])
lib.vhd_open.restype = ctypes.c_void_p
lib.vhd_open.argtypes = [ctypes.c_char_p, ctypes.c_uint]
lib.vhd_discard.argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint64]
lib.vhd_write_zeroes.argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint64, ctypes.c_uint]
lib.vhd_close.argtypes = [ctypes.c_void_p]
d = lib.vhd_open(sys.argv[2].encode(), 0)
assert d
for spec in sys.argv[3:]:
    off, n = map(int, spec.split(":"))
    assert lib.vhd_discard(d, off, n) == 0
assert lib.vhd_write_zeroes(d, 20 << 20, 3000, 0) == 0
lib.vhd_close(d)
PYEOF
map_extents img.vhd > map-fuse.txt
map_extents direct.vhd > map-lib.txt
cmp -s map-fuse.txt map-lib.txt \
  || fail "map after fallocate differs from vhd_discard's: $(diff map-fuse.txt map-lib.txt | head -5)"
awk -v s=$((2 * MiB)) '$1 <= s && s < $1 + $2 && $3 == "zero"' map-fuse.txt \
  | grep -q . || fail "punch-hole did not free the block at 2 MiB"

note "differencing child: writes go to the child only"
parent_md5=$(md5_file img.vhd)
cp ref.raw child.raw
"$VHDTOOL" create --parent img.vhd child.vhd
vf_mount child.vhd "$M"
expect_same_file "$M/disk" child.raw "child before writing"
put src 0 "$M/disk" $((5 * MiB + 3)) 70000
put src 0 child.raw $((5 * MiB + 3)) 70000
vf_unmount "$M"
[ "$(md5_file img.vhd)" = "$parent_md5" ] || fail "writing the child changed the parent"
stream_same child.vhd child.raw "child after unmount"

note "SIGTERM flushes and closes"
vf_mount img.vhd "$M"
put src 8192 "$M/disk" $((30 * MiB)) 5000
put src 8192 ref.raw $((30 * MiB)) 5000
kill -TERM "$VF_PID"
rc=0
wait "$VF_PID" || rc=$?
[ $rc -eq 0 ] || fail "vhdfuse exited with status $rc on SIGTERM: $(tail -3 "$VF_LOG")"
! mountpoint -q "$M" || fail "still mounted after SIGTERM"
stream_same img.vhd ref.raw "after SIGTERM"

# The kernel never delivers the release of a file still open when the
# session ends: destroy must free it (AddressSanitizer reports a leak as
# a non-zero exit) and still flush what was written through it.
note "SIGTERM with a file still open"
vf_mount img.vhd "$M"
exec 7<> "$M/disk"
put src 16384 /dev/fd/7 $((31 * MiB)) 3000
put src 16384 ref.raw $((31 * MiB)) 3000
kill -TERM "$VF_PID"
rc=0
wait "$VF_PID" || rc=$?
exec 7>&-
[ $rc -eq 0 ] || fail "vhdfuse exited with status $rc on SIGTERM with a file open: $(tail -3 "$VF_LOG")"
! mountpoint -q "$M" || fail "still mounted after SIGTERM with a file open"
stream_same img.vhd ref.raw "after SIGTERM with a file open"

note "a damaged region: EIO for that read, the rest still works"
cp img.vhd cut.vhd
data_at=$(map_extents cut.vhd | awk '$3 == "data" { print $1; exit }')
zero_at=$(map_extents cut.vhd | awk '$3 == "zero" { print $1; exit }')
vf_mount cut.vhd "$M" -r
truncate -s 0 cut.vhd    # every stored block is lost, the BAT is in memory
pycheck '
import errno, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
data, zero = int(sys.argv[2]), int(sys.argv[3])
for off in (data, data + 4096):
    try:
        os.pread(fd, 4096, off); sys.exit("read of a lost block worked")
    except OSError as e:
        assert e.errno == errno.EIO, e
assert os.pread(fd, 4096, zero) == bytes(4096), "a hole did not read as zeros"
' "$M/disk" "$data_at" "$zero_at"
vf_unmount "$M"
grep -q "^vhdfuse: cut.vhd: " "$VF_LOG" || fail "no message for the EIO: $(cat "$VF_LOG")"

note "daemon mode: returns once mounted, exits after unmount"
"$VHDFUSE" img.vhd "$M" 2> err || fail "vhdfuse (daemon) failed: $(cat err)"
register_mount "$M"
mountpoint -q "$M" || fail "daemon mode: not mounted when vhdfuse returned"
# Our daemon: the process whose command line is exactly ours.
pid=
for c in /proc/[0-9]*/cmdline; do
  if [ "$(tr '\0' ' ' 2>/dev/null < "$c")" = "$VHDFUSE img.vhd $M " ]; then
    pid=${c#/proc/}; pid=${pid%/cmdline}
  fi
done
[ -n "$pid" ] || fail "daemon mode: no vhdfuse process found"
VF_PIDS+=("$pid")
expect_same_file "$M/disk" ref.raw "daemon mode read"
fusermount3 -u "$M"
# Gone, or a zombie where nothing reaps orphans.
running () {
  local st
  st=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
  [ "${st%% *}" != Z ]
}
for i in $(seq 100); do
  running "$pid" || break
  sleep 0.05
done
! running "$pid" || fail "daemon still running 5 s after unmount"

echo "PASS: $TEST_NAME"
