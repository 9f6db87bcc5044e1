#!/bin/bash
# vhdtool's image operations (DESIGN.md, "Command-line contracts"):
# check (exit codes 0 / 2 / 3 / 1, --repair, --json), compact, resize
# (absolute, +SIZE, -SIZE, --shrink, refused shrinks), compact --no-move
# (holes punched in place), commit (with the warning about other children
# of the parent), rebase (moved parent, wrong parent, --unsafe) and
# convert --cache (O_DIRECT output, and file systems without it), with
# qemu-img as an independent reader where it is installed.
#
#   B=build tests/tools/test-vhdtool-ops.sh      (VHDTOOL overrides $B/vhdtool)
. "$(dirname "$0")/../lib.sh"

need_vhdtool
cd "$T"

MiB=1048576

# ------------------------------------------------------------ helpers
# run ARG...: run vhdtool; stdout in $T/out, stderr in $T/err, status in $rc.
run () {
  rc=0
  "$VHDTOOL" "$@" > "$T/out" 2> "$T/err" || rc=$?
}

# expect RC ARG...: run vhdtool and require exit status RC.
expect () {
  local want=$1
  shift
  run "$@"
  [ "$rc" -eq "$want" ] \
    || fail "vhdtool $*: exit $rc, expected $want; stdout: $(head -c 400 out); stderr: $(head -c 600 err)"
}

# usage_err ARG...: exit 1, a message on stderr, nothing on stdout.
usage_err () {
  expect 1 "$@"
  [ ! -s out ] || fail "vhdtool $*: a usage error wrote to stdout: $(cat out)"
  [ -s err ] || fail "vhdtool $*: a usage error printed no message"
}

# runtime_err FILE ARG...: exit 1 and one line "vhdtool: FILE: ..." on stderr.
runtime_err () {
  local file=$1
  shift
  expect 1 "$@"
  [ "$(wc -l < err)" -eq 1 ] \
    || fail "vhdtool $*: want one error line, got: $(cat err)"
  [[ $(head -1 err) == "vhdtool: $file: "?* ]] \
    || fail "vhdtool $*: error does not start 'vhdtool: $file: ': $(cat err)"
}

stdout_has () {
  grep -qF -- "$1" out || fail "$2: stdout lacks '$1': $(head -c 600 out)"
}
stderr_has () {
  grep -qiF -- "$1" err || fail "$2: stderr lacks '$1': $(head -c 600 err)"
}

# jcheck JSONFILE PYEXPR WHAT: PYEXPR (over d, the parsed JSON) is true.
jcheck () {
  "$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
sys.exit(0 if eval(sys.argv[2]) else 1)
' "$1" "$2" || fail "$3: not true: $2 in $(cat "$1")"
}

info_to () {
  info_json "$1" > "$2" || fail "vhdtool info --json $1 failed"
}

# vsize IMAGE: virtual size as vhdtool info reports it.
vsize () {
  info_json "$1" | json_get virtual_size
}

have_qemu () {
  command -v qemu-img > /dev/null 2>&1
}

# qemu_opts IMAGE: qemu-img --image-opts for IMAGE at its recorded size.
qemu_opts () {
  case $1 in
    *.vhd) qemu_vpc_opts "$1" ;;
    *.vhdx) echo "driver=vhdx,file.filename=$1" ;;
    *) echo "driver=raw,file.filename=$1" ;;
  esac
}

# qemu_same IMAGE RAW WHAT: qemu-img reads IMAGE as RAW (same size too).
qemu_same () {
  have_qemu || return 0
  local qs
  qs=$(qemu-img info --output=json --image-opts "$(qemu_opts "$1")" \
         | json_get virtual-size) || fail "$3: qemu-img info $1 failed"
  [ "$qs" -eq "$(file_size "$2")" ] \
    || fail "$3: qemu-img sees $1 as $qs bytes, expected $(file_size "$2")"
  qemu-img compare --image-opts "$(qemu_opts "$1")" \
    "driver=raw,file.filename=$2" > /dev/null \
    || fail "$3: qemu-img compare $1 $2 differ"
}

# same_view IMAGE RAW WHAT: vhdtool (and qemu-img, for a base image) read
# IMAGE as RAW.
same_view () {
  stream_same "$1" "$2" "$3"
}

# human BYTES: BYTES as vhdtool prints sizes (three significant digits,
# no trailing zeros, binary units): 33566720 -> "32 MiB".
human () {
  "$PY" -c '
import sys
v, u = float(sys.argv[1]), 0
units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
while v >= 1024 and u + 1 < len(units):
    v /= 1024; u += 1
s = "%.*f" % (2 if v < 10 else 1 if v < 100 else 0, v)
if "." in s:
    s = s.rstrip("0").rstrip(".")
print(s, units[u])' "$1"
}

# qemu_compare A B WHAT: qemu-img reads A and B (formats from their names,
# never probed: a fixed VHD probes as raw) as the same disk.
qemu_compare () {
  have_qemu || return 0
  qemu-img compare --image-opts "$(qemu_opts "$1")" "$(qemu_opts "$2")" \
    > "$T/qcmp" 2>&1 || fail "$3: qemu-img compare $1 $2: $(cat "$T/qcmp")"
  grep -q "^Images are identical" "$T/qcmp" \
    || fail "$3: qemu-img compare $1 $2: $(cat "$T/qcmp")"
}

# direct_io_in DIR: libvhd does direct I/O on the file system of DIR (it
# takes O_DIRECT opens and reports their alignment: vhd_open with
# VHD_OPEN_DIRECT works).  tmpfs takes O_DIRECT since Linux 6.6 but
# reports no alignment.
direct_io_in () {
  local probe="$1/.direct-probe" r=0
  truncate -s $MiB "$probe"
  py_libvhd - "$B/libvhd.so" "$probe" <<'PYEOF' || r=$?
import ctypes, errno, sys
lib = ctypes.CDLL(sys.argv[1])
lib.vhd_open.restype = ctypes.c_void_p
lib.vhd_open.argtypes = [ctypes.c_char_p, ctypes.c_uint]
lib.vhd_close.argtypes = [ctypes.c_void_p]
lib.vhd_get_error.restype = ctypes.c_char_p
VHD_OPEN_DIRECT = 0x08
d = lib.vhd_open(sys.argv[2].encode(), VHD_OPEN_DIRECT)
if d:
    lib.vhd_close(d)
    sys.exit(0)
if lib.vhd_get_errno() == errno.ENOTSUP:
    sys.exit(1)
sys.exit("vhd_open %s direct: %s" % (sys.argv[2], lib.vhd_get_error().decode()))
PYEOF
  rm -f "$probe"
  [ $r -le 1 ] || fail "probing direct I/O in $1 failed"
  return $r
}

# corrupt FILE OFFSET: flip the byte at OFFSET (negative: from the end).
corrupt () {
  "$PY" - "$1" "$2" <<'PYEOF'
import os, sys
path, off = sys.argv[1], int(sys.argv[2])
with open(path, "r+b") as f:
    if off < 0:
        off += os.fstat(f.fileno()).st_size
    f.seek(off); b = f.read(1)
    f.seek(off); f.write(bytes([b[0] ^ 0xff]))
PYEOF
}

# junk_before_footer FILE BYTES: grow a VHD by BYTES of junk that nothing
# refers to, keeping its footer last.
junk_before_footer () {
  "$PY" - "$1" "$2" <<'PYEOF'
import os, random, sys
path, n = sys.argv[1], int(sys.argv[2])
with open(path, "r+b") as f:
    size = os.fstat(f.fileno()).st_size
    f.seek(size - 512); footer = f.read(512)
    f.seek(size - 512)
    f.write(random.Random(99).randbytes(n))
    f.write(footer)
PYEOF
}

# ------------------------------------------------------------ help, usage
note "--help and usage errors"
for c in check compact resize commit rebase; do
  for h in --help -h; do
    expect 0 $c $h
    head -1 out | grep -q "^Usage: vhdtool $c " \
      || fail "vhdtool $c $h: no usage line: $(head -3 out)"
    [ ! -s err ] || fail "vhdtool $c $h wrote to stderr: $(cat err)"
  done
  expect 0 help $c
  stdout_has "Usage: vhdtool $c" "vhdtool help $c"
  usage_err $c
  usage_err $c --no-such-option x.vhd
done
usage_err check a.vhd b.vhd
usage_err check --repair
usage_err check --json
usage_err compact a.vhd b.vhd
usage_err compact -p
usage_err compact --no-move
usage_err compact --no-move -p
usage_err compact --no-move a.vhd b.vhd
usage_err compact --no-move=yes a.vhd
expect 0 compact --help
stdout_has "--no-move" "compact --help"
usage_err resize a.vhd
usage_err resize --shrink a.vhd
usage_err resize a.vhd 1Q
usage_err resize a.vhd 0
usage_err resize a.vhd 1.5G
usage_err resize a.vhd +
usage_err resize a.vhd -1Q
usage_err resize a.vhd 1M 2M
usage_err resize a.vhd -1M extra
usage_err commit a.vhd b.vhd
usage_err rebase a.vhd
usage_err rebase --parent p.vhd
usage_err rebase --parent p.vhd a.vhd b.vhd
usage_err rebase --parent "" a.vhd
usage_err rebase --unsafe a.vhd
ls ./*.vhd ./*.vhdx 2>/dev/null && fail "a usage error created a file"

note "runtime errors on missing files"
runtime_err missing.vhd check missing.vhd
runtime_err missing.vhd check --json missing.vhd
[ ! -s out ] || fail "check --json of a missing file printed: $(cat out)"
runtime_err missing.vhd compact missing.vhd
runtime_err missing.vhd compact --no-move missing.vhd
runtime_err missing.vhd resize missing.vhd 1G
runtime_err missing.vhd resize missing.vhd -1M
runtime_err missing.vhd commit missing.vhd
runtime_err missing.vhd rebase --parent p.vhd missing.vhd
[ ! -e missing.vhd ] || fail "an operation created missing.vhd"

# ------------------------------------------------------------ check
note "check: fresh images are clean (exit 0)"
for fmt in vhd vhdx; do
  for type in dynamic fixed; do
    f=fresh-$type.$fmt
    expect 0 create -t $type $f 8M
    expect 0 check $f
    stdout_has "No errors were found on the image." "check $f"
    grep -Evq '^(info|corruption|leak|repaired): ' out \
      || fail "check $f: no summary line: $(cat out)"
    expect 0 check --json $f
    cp out check.json
    jcheck check.json "d['filename'] == '$f' and d['format'] == '$fmt'" \
      "check --json $f"
    jcheck check.json "d['result'] == 'clean' and d['corruptions'] == 0 and d['leaks'] == 0 and d['repaired'] == 0" \
      "check --json $f"
    jcheck check.json "isinstance(d['findings'], list) and all(set(x) == {'severity', 'message'} and x['severity'] == 'info' and isinstance(x['message'], str) for x in d['findings'])" \
      "check --json $f: findings"
  done
done
mkraw plain.img $((4 * MiB)) 0:4096:1
expect 0 check plain.img
expect 0 check --json plain.img
cp out check.json
jcheck check.json "d['format'] == 'raw' and d['result'] == 'clean'" \
  "check --json of a raw file"
expect 0 create --parent fresh-dynamic.vhd kid.vhd
expect 0 check kid.vhd

note "check: corrupt footer checksum (exit 2), --repair, then clean"
mkraw chk.raw $((8 * MiB)) 0:$MiB:11 $((5 * MiB)):4096:12
expect 0 convert chk.raw chk.vhd
cp chk.vhd bad.vhd
# The footer's checksum: bytes 64..67 of the last 512.
corrupt bad.vhd -445
expect 2 check bad.vhd
grep -q '^corruption: ' out || fail "check bad.vhd: no 'corruption:' line: $(cat out)"
grep -Eq '^[0-9]+ errors? (was|were) found on the image' out \
  || fail "check bad.vhd: no error count: $(cat out)"
expect 2 check --json bad.vhd
cp out bad.json
jcheck bad.json "d['result'] == 'corrupt' and d['corruptions'] >= 1 and d['format'] == 'vhd'" \
  "check --json bad.vhd"
jcheck bad.json "any(x['severity'] == 'corrupt' for x in d['findings'])" \
  "check --json bad.vhd: findings"
cp bad.vhd bad2.vhd
expect 0 check --repair bad.vhd
grep -q '^repaired: ' out || fail "check --repair: no 'repaired:' line: $(cat out)"
stdout_has "No errors were found on the image." "check --repair bad.vhd"
expect 0 check bad.vhd
expect 0 check --repair --json bad2.vhd
cp out rep.json
jcheck rep.json "d['result'] == 'clean' and d['repaired'] >= 1 and any(x['severity'] == 'repaired' for x in d['findings'])" \
  "check --repair --json"
expect 0 check bad2.vhd
same_view bad.vhd chk.raw "repaired image"
qemu_same bad.vhd chk.raw "repaired image (qemu-img)"

note "check: one corrupt VHDX header (exit 2), --repair, then clean"
expect 0 convert chk.raw chk.vhdx
cp chk.vhdx badx.vhdx
# The first header's checksum (64 KiB + 4): the second header is intact.
corrupt badx.vhdx $((65536 + 4))
expect 2 check badx.vhdx
grep -q '^corruption: ' out || fail "check badx.vhdx: no 'corruption:' line: $(cat out)"
expect 2 check --json badx.vhdx
cp out badx.json
jcheck badx.json "d['result'] == 'corrupt' and d['corruptions'] >= 1 and d['format'] == 'vhdx'" \
  "check --json badx.vhdx"
expect 0 check --repair badx.vhdx
grep -q '^repaired: ' out || fail "check --repair badx.vhdx: no 'repaired:' line: $(cat out)"
expect 0 check badx.vhdx
same_view badx.vhdx chk.raw "repaired VHDX"
qemu_same badx.vhdx chk.raw "repaired VHDX (qemu-img)"

note "check: leaked space (exit 3)"
cp chk.vhd leak.vhd
junk_before_footer leak.vhd $((2 * MiB))
expect 3 check leak.vhd
grep -q '^leak: ' out || fail "check leak.vhd: no 'leak:' line: $(cat out)"
grep -q '^corruption: ' out && fail "check leak.vhd: reports corruption: $(cat out)"
stdout_has "found on the image" "check leak.vhd"
expect 3 check --json leak.vhd
cp out leak.json
jcheck leak.json "d['result'] == 'leaks' and d['leaks'] >= 1 and d['corruptions'] == 0" \
  "check --json leak.vhd"
jcheck leak.json "any(x['severity'] == 'leak' for x in d['findings'])" \
  "check --json leak.vhd: findings"
same_view leak.vhd chk.raw "image with leaked space"
# Repairing leaks is allowed, not required; if done, it must stick.
run check --repair leak.vhd
case $rc in
  0) expect 0 check leak.vhd ;;
  3) ;;
  *) fail "check --repair leak.vhd: exit $rc: $(cat out err)" ;;
esac
same_view leak.vhd chk.raw "image after check --repair of leaks"

# ------------------------------------------------------------ compact
note "compact: fixed images and raw files are refused"
cp fresh-fixed.vhd fx.vhd
sum=$(md5_file fx.vhd)
runtime_err fx.vhd compact fx.vhd
stderr_has "fixed" "compact of a fixed image"
[ "$(md5_file fx.vhd)" = "$sum" ] || fail "compact changed a fixed image"
runtime_err plain.img compact plain.img
stderr_has "raw" "compact of a raw file"

# 16 MiB, 2 MiB blocks, all eight written, then four of them zeroed.
mkraw full.raw $((16 * MiB)) 0:$((16 * MiB)):21
cp full.raw half.raw
zeroed=()
for b in 1 3 4 6; do
  zeroed+=("$((b * 2 * MiB)):$((2 * MiB)):z")
done
raw_pwrite half.raw "${zeroed[@]}"
for fmt in vhd vhdx; do
  note "compact: dynamic $fmt with half its blocks zeroed"
  f=half.$fmt
  expect 0 convert -b 2M full.raw $f
  lib_pwrite $f "${zeroed[@]}"
  same_view $f half.raw "$f before compact"
  before=$(file_size $f)
  [ "$before" -ge $((16 * MiB)) ] || fail "$f: only $before bytes before compact"
  expect 0 compact $f
  grep -Eq '^compacted: [0-9.]+ [KMG]?i?B -> [0-9.]+ [KMG]?i?B$' out \
    || fail "compact $f: no 'compacted: X -> Y' line: $(cat out)"
  after=$(file_size $f)
  [ "$after" -le $((before - 8 * MiB)) ] \
    || fail "compact $f: file $before -> $after bytes, expected 8 MiB less"
  same_view $f half.raw "$f after compact"
  qemu_same $f half.raw "$f after compact (qemu-img)"
  expect 0 check $f
  info_to $f c.json
  jcheck c.json "d['allocated_bytes'] <= 8 * $MiB" "$f allocated after compact"
  # Again: nothing more to give back, nothing changes.
  expect 0 compact -p $f
  stdout_has "(100.00/100%)" "compact -p $f"
  stdout_has "compacted: " "compact -p $f"
  [ "$(file_size $f)" -le "$after" ] || fail "second compact grew $f"
  same_view $f half.raw "$f after a second compact"

  note "compact: differencing $fmt drops blocks equal to the parent's"
  expect 0 convert -b 2M full.raw base-c.$fmt
  expect 0 create -b 2M --parent base-c.$fmt diff-c.$fmt
  # Block 0: the parent's own bytes again; block 2: new data; block 5: zeros.
  lib_pwrite diff-c.$fmt 0:$((2 * MiB)):21 $((4 * MiB)):$MiB:22 \
    $((10 * MiB)):$((2 * MiB)):z
  cp full.raw diffview.raw
  raw_pwrite diffview.raw $((4 * MiB)):$MiB:22 $((10 * MiB)):$((2 * MiB)):z
  # Block 0 written with seed 21 from offset 0 is what full.raw holds.
  cmp -s <(head -c $((2 * MiB)) full.raw) <("$PY" -c "import random,sys; sys.stdout.buffer.write(random.Random(21).randbytes($((2 * MiB))))") \
    || fail "test setup: block 0 is not the parent's data"
  same_view diff-c.$fmt diffview.raw "diff-c.$fmt before compact"
  a1=$(info_json diff-c.$fmt | json_get allocated_bytes)
  expect 0 compact diff-c.$fmt
  a2=$(info_json diff-c.$fmt | json_get allocated_bytes)
  [ "$a2" -lt "$a1" ] \
    || fail "compact diff-c.$fmt: allocated $a1 -> $a2, expected less"
  same_view diff-c.$fmt diffview.raw "diff-c.$fmt after compact"
  same_view base-c.$fmt full.raw "compact of a child changed its parent"
done

# ------------------------------------------------------------ compact --no-move
note "compact --no-move: fixed images and raw files are refused as by compact"
for f in fx.vhd fresh-fixed.vhdx plain.img; do
  sum=$(md5_file $f)
  runtime_err $f compact $f
  cp err compact.err
  runtime_err $f compact --no-move $f
  cmp -s err compact.err \
    || fail "compact --no-move $f: error '$(cat err)' is not compact's '$(cat compact.err)'"
  runtime_err $f compact -p --no-move $f
  [ "$(md5_file $f)" = "$sum" ] || fail "compact --no-move changed $f"
done
stderr_has "raw" "compact --no-move of a raw file"
runtime_err fx.vhd compact --no-move fx.vhd
stderr_has "fixed" "compact --no-move of a fixed image"

# Whether this file system gives punched space back (the allocation
# checks need it; the content checks hold either way).
punch=yes
mkraw punch.probe $MiB 0:$MiB:1
if ! fallocate -p -o 0 -l $MiB punch.probe 2>/dev/null \
   || [ "$(alloc_bytes punch.probe)" -ge $MiB ]; then
  punch=
  note "no hole punching under $T: host allocation not checked"
fi

# 32 MiB, 16 blocks of 2 MiB: eight with data, eight written as real
# zero bytes (allocated in the image and on the host), the last among them.
nm_zero=(1 2 5 6 7 10 13 15)
nm_regions=()
for b in $(seq 0 15); do
  case " ${nm_zero[*]} " in
    *" $b "*) nm_regions+=("$((b * 2 * MiB)):$((2 * MiB)):z") ;;
    *) nm_regions+=("$((b * 2 * MiB)):$((2 * MiB)):$((70 + b))") ;;
  esac
done
mkraw nm.raw $((32 * MiB)) "${nm_regions[@]}"
zero_bytes=$((${#nm_zero[@]} * 2 * MiB))

for fmt in vhd vhdx; do
  note "compact --no-move: dynamic $fmt with allocated zero blocks"
  f=nm.$fmt
  if have_qemu; then
    case $fmt in
      vhd) qemu-img convert -q -S 0 -f raw -O vpc \
             -o subformat=dynamic,force_size=on nm.raw $f ;;
      vhdx) qemu-img convert -q -S 0 -f raw -O vhdx -o block_size=2M \
              nm.raw $f ;;
    esac
  else
    mkraw nm-full.raw $((32 * MiB)) 0:$((32 * MiB)):70
    expect 0 convert -b 2M nm-full.raw $f
    lib_pwrite $f "${nm_regions[@]}"
  fi
  cp $f pristine.$fmt
  same_view $f nm.raw "$f before compact --no-move"
  info_to $f nm.json
  jcheck nm.json "d['allocated_bytes'] == 32 * $MiB" \
    "$f: test setup, every block allocated"
  len0=$(file_size $f)
  alloc0=$(alloc_bytes $f)
  [ "$alloc0" -ge $((32 * MiB)) ] \
    || fail "$f: test setup, only $alloc0 bytes allocated on the host"

  expect 0 compact --no-move $f
  len1=$(file_size $f)
  alloc1=$(alloc_bytes $f)
  want="compacted in place: $(human $alloc0) -> $(human $alloc1) allocated on the host (file length $(human $len1))"
  [ "$(cat out)" = "$want" ] \
    || fail "compact --no-move $f: printed '$(cat out)', expected '$want'"
  [ ! -s err ] || fail "compact --no-move $f wrote to stderr: $(cat err)"
  # Nothing moves: the file never grows, and a VHDX keeps its length (a
  # VHD may cut dropped blocks at its very end).
  [ "$len1" -le "$len0" ] || fail "compact --no-move $f: file grew $len0 -> $len1"
  [ $fmt = vhd ] || [ "$len1" -eq "$len0" ] \
    || fail "compact --no-move $f: length $len0 -> $len1, expected unchanged"
  if [ -n "$punch" ]; then
    [ "$alloc1" -le $((alloc0 - zero_bytes * 7 / 8)) ] \
      || fail "compact --no-move $f: host allocation $alloc0 -> $alloc1, expected about $zero_bytes bytes less"
  fi
  info_to $f nm.json
  jcheck nm.json "d['allocated_bytes'] == 32 * $MiB - $zero_bytes" \
    "$f: the zero blocks are dropped"
  same_view $f nm.raw "$f after compact --no-move"
  qemu_same $f nm.raw "$f after compact --no-move (qemu-img)"
  qemu_compare $f pristine.$fmt "$f after compact --no-move"
  # Punched gaps are holes taking no space: information, not leaks.
  # (Where nothing can be punched they are leaks, exit 3.)
  if [ -n "$punch" ]; then
    expect 0 check $f
    grep -q '^leak: ' out && fail "check $f after compact --no-move: $(cat out)"
    expect 0 check --json $f
    cp out nmcheck.json
    jcheck nmcheck.json "d['result'] == 'clean' and d['leaks'] == 0" \
      "check --json $f after compact --no-move"
  else
    run check $f
    [ $rc -eq 0 ] || [ $rc -eq 3 ] \
      || fail "check $f after compact --no-move: exit $rc: $(cat out err)"
  fi
  if have_qemu && [ $fmt = vhdx ]; then
    qemu-img check -q -f vhdx $f || fail "qemu-img check $f after compact --no-move"
  fi

  note "compact --no-move: $fmt again changes nothing"
  sum=$(md5_file $f)
  expect 0 compact --no-move $f
  grep -q '^compacted in place: ' out || fail "second compact --no-move $f: $(cat out)"
  [ "$(md5_file $f)" = "$sum" ] || fail "a second compact --no-move changed $f"

  note "compact: $fmt after --no-move shortens the file"
  expect 0 compact $f
  grep -Eq '^compacted: [0-9.]+ [KMG]?i?B -> [0-9.]+ [KMG]?i?B$' out \
    || fail "compact $f after --no-move: $(cat out)"
  len2=$(file_size $f)
  [ "$len2" -le $((len0 - zero_bytes * 7 / 8)) ] \
    || fail "compact $f after --no-move: file $len0 -> $len1 -> $len2 bytes, expected about $zero_bytes less"
  same_view $f nm.raw "$f after compact --no-move, compact"
  qemu_compare $f pristine.$fmt "$f after compact --no-move, compact"
  expect 0 check $f
  if have_qemu && [ $fmt = vhdx ]; then
    qemu-img check -q -f vhdx $f || fail "qemu-img check $f after compact"
  fi

  note "compact --no-move -p: $fmt"
  cp pristine.$fmt p.$fmt
  expect 0 compact -p --no-move p.$fmt
  stdout_has "(100.00/100%)" "compact -p --no-move"
  stdout_has "compacted in place: " "compact -p --no-move"
  [ "$(file_size p.$fmt)" -le "$len0" ] || fail "compact -p --no-move grew p.$fmt"
  if [ -n "$punch" ]; then
    [ "$(alloc_bytes p.$fmt)" -le $((alloc0 - zero_bytes * 7 / 8)) ] \
      || fail "compact -p --no-move p.$fmt: host allocation $alloc0 -> $(alloc_bytes p.$fmt)"
  fi
  same_view p.$fmt nm.raw "compact -p --no-move p.$fmt"

  note "compact --no-move: differencing $fmt drops blocks equal to the parent's"
  expect 0 create -b 2M --parent base-c.$fmt diff-n.$fmt
  lib_pwrite diff-n.$fmt 0:$((2 * MiB)):21 $((4 * MiB)):$MiB:22 \
    $((10 * MiB)):$((2 * MiB)):z
  same_view diff-n.$fmt diffview.raw "diff-n.$fmt before compact --no-move"
  cp diff-n.$fmt diff-m.$fmt
  a0=$(info_json diff-n.$fmt | json_get allocated_bytes)
  dlen=$(file_size diff-n.$fmt)
  expect 0 compact --no-move diff-n.$fmt
  expect 0 compact diff-m.$fmt
  a1=$(info_json diff-n.$fmt | json_get allocated_bytes)
  a2=$(info_json diff-m.$fmt | json_get allocated_bytes)
  [ "$a1" -lt "$a0" ] && [ "$a1" -eq "$a2" ] \
    || fail "compact --no-move diff-n.$fmt: allocated $a0 -> $a1, expected less and what compact leaves ($a2)"
  [ "$(file_size diff-n.$fmt)" -le "$dlen" ] || fail "compact --no-move grew diff-n.$fmt"
  [ $fmt = vhd ] || [ "$(file_size diff-n.$fmt)" -eq "$dlen" ] \
    || fail "compact --no-move diff-n.$fmt: length changed"
  same_view diff-n.$fmt diffview.raw "diff-n.$fmt after compact --no-move"
  same_view base-c.$fmt full.raw "compact --no-move of a child changed its parent"
  expect 0 check diff-n.$fmt
done

# ------------------------------------------------------------ resize
note "resize: raw files, and -SIZE parsing"
truncate -s $((8 * MiB)) r.img
raw_pwrite r.img $((6 * MiB)):4096:31
expect 0 resize r.img +2M
stdout_has "resized" "resize r.img +2M"
[ "$(file_size r.img)" -eq $((10 * MiB)) ] || fail "resize r.img +2M: $(file_size r.img) bytes"
sum=$(md5_file r.img)
runtime_err r.img resize r.img -1M
stderr_has "use --shrink" "resize r.img -1M"
runtime_err r.img resize r.img 9M
stderr_has "use --shrink" "resize r.img 9M"
[ "$(md5_file r.img)" = "$sum" ] || fail "a refused shrink changed r.img"
expect 0 resize --shrink r.img -1M
[ "$(file_size r.img)" -eq $((9 * MiB)) ] || fail "resize --shrink r.img -1M"
expect 0 resize r.img -1M --shrink
[ "$(file_size r.img)" -eq $((8 * MiB)) ] || fail "resize r.img -1M --shrink"
expect 0 resize --shrink -- r.img -1M
[ "$(file_size r.img)" -eq $((7 * MiB)) ] || fail "resize --shrink -- r.img -1M"
sum=$(md5_file r.img)
runtime_err r.img resize --shrink r.img 4M
[ "$(md5_file r.img)" = "$sum" ] || fail "a refused shrink (data past the end) changed r.img"
runtime_err r.img resize --shrink r.img -7M
runtime_err r.img resize --shrink r.img -8M
[ "$(md5_file r.img)" = "$sum" ] || fail "an impossible shrink changed r.img"
expect 0 resize r.img 7M
[ "$(md5_file r.img)" = "$sum" ] || fail "resize to the same size changed r.img"

for fmt in vhd vhdx; do
  note "resize: dynamic $fmt grow, shrink, refused shrink"
  f=rs.$fmt
  mkraw rs.raw $((8 * MiB)) 0:$MiB:41 $((6 * MiB)):$MiB:42
  cp rs.raw rs8.raw
  expect 0 convert -b 2M rs.raw $f
  expect 0 resize $f 16M
  stdout_has "resized" "resize $f 16M"
  [ "$(vsize $f)" -eq $((16 * MiB)) ] || fail "resize $f 16M: size $(vsize $f)"
  truncate -s $((16 * MiB)) rs.raw
  same_view $f rs.raw "$f grown to 16 MiB"
  qemu_same $f rs.raw "$f grown to 16 MiB (qemu-img)"
  expect 0 resize $f +4M
  [ "$(vsize $f)" -eq $((20 * MiB)) ] || fail "resize $f +4M: size $(vsize $f)"
  truncate -s $((20 * MiB)) rs.raw
  same_view $f rs.raw "$f grown by 4 MiB"
  # Writes in the new space land there.
  lib_pwrite $f $((19 * MiB)):4096:43
  raw_pwrite rs.raw $((19 * MiB)):4096:43
  same_view $f rs.raw "$f written past the old end"
  qemu_same $f rs.raw "$f written past the old end (qemu-img)"
  expect 0 check $f

  sum=$(md5_file $f)
  runtime_err $f resize $f -1M
  stderr_has "use --shrink" "resize $f -1M"
  runtime_err $f resize $f 10M
  stderr_has "use --shrink" "resize $f 10M"
  [ "$(md5_file $f)" = "$sum" ] || fail "resize $f without --shrink changed it"
  runtime_err $f resize --shrink $f 4M
  [ "$(md5_file $f)" = "$sum" ] || fail "a refused shrink changed $f"
  # Data at 19 MiB: shrinking below it is refused too.
  runtime_err $f resize --shrink $f 16M
  runtime_err $f resize --shrink $f -2M
  [ "$(md5_file $f)" = "$sum" ] || fail "a refused shrink changed $f"
  [ "$(vsize $f)" -eq $((20 * MiB)) ] || fail "a refused shrink changed the size of $f"
  same_view $f rs.raw "$f after refused shrinks"

  note "resize: dynamic $fmt shrinks where no data lies"
  f=sh.$fmt
  expect 0 convert -b 2M rs8.raw $f
  expect 0 resize $f 20M
  expect 0 resize --shrink $f -4M
  [ "$(vsize $f)" -eq $((16 * MiB)) ] || fail "resize --shrink $f -4M: size $(vsize $f)"
  cp rs8.raw sh.raw
  truncate -s $((16 * MiB)) sh.raw
  same_view $f sh.raw "$f shrunk by 4 MiB"
  expect 0 resize $f -2M --shrink
  [ "$(vsize $f)" -eq $((14 * MiB)) ] || fail "resize $f -2M --shrink: size $(vsize $f)"
  expect 0 resize --shrink $f 8M
  [ "$(vsize $f)" -eq $((8 * MiB)) ] || fail "resize --shrink $f 8M: size $(vsize $f)"
  same_view $f rs8.raw "$f shrunk back to 8 MiB"
  qemu_same $f rs8.raw "$f shrunk back to 8 MiB (qemu-img)"
  expect 0 check $f
  expect 0 resize $f 12M
  cp rs8.raw sh.raw
  truncate -s $((12 * MiB)) sh.raw
  same_view $f sh.raw "$f shrunk then grown"

  note "resize: fixed $fmt grows"
  expect 0 convert -t fixed rs8.raw fx-rs.$fmt
  expect 0 resize fx-rs.$fmt 12M
  [ "$(vsize fx-rs.$fmt)" -eq $((12 * MiB)) ] || fail "resize fx-rs.$fmt 12M"
  cp rs8.raw fx-rs.raw
  truncate -s $((12 * MiB)) fx-rs.raw
  same_view fx-rs.$fmt fx-rs.raw "fixed $fmt grown"
  qemu_same fx-rs.$fmt fx-rs.raw "fixed $fmt grown (qemu-img)"
  info_to fx-rs.$fmt fx.json
  jcheck fx.json "d['type'] == 'fixed' and d['file_size'] >= 12 * $MiB" \
    "fixed $fmt grown: still fixed, fully allocated"
done

# ------------------------------------------------------------ commit
note "commit: a disk that is not differencing"
cp fresh-dynamic.vhd notdiff.vhd
runtime_err notdiff.vhd commit notdiff.vhd

for fmt in vhd vhdx; do
  note "commit: $fmt child into its parent"
  mkdir -p cm-$fmt
  mkraw cm-$fmt/base.raw $((8 * MiB)) 0:$((2 * MiB)):51 $((5 * MiB)):$MiB:52
  expect 0 convert -b 2M cm-$fmt/base.raw cm-$fmt/base.$fmt
  expect 0 create --parent cm-$fmt/base.$fmt cm-$fmt/child.$fmt
  expect 0 create --parent cm-$fmt/base.$fmt cm-$fmt/other.$fmt
  regions=("$((MiB / 2)):$MiB:53" "$((5 * MiB)):65536:z" "$((7 * MiB)):4096:54")
  lib_pwrite cm-$fmt/child.$fmt "${regions[@]}"
  # After the writes: a VHDX child's writes change the ID its children
  # record (DataWriteGuid); committing it must not.
  expect 0 create --parent cm-$fmt/child.$fmt cm-$fmt/grandchild.$fmt
  cp cm-$fmt/base.raw cm-$fmt/view.raw
  raw_pwrite cm-$fmt/view.raw "${regions[@]}"
  same_view cm-$fmt/child.$fmt cm-$fmt/view.raw "child before commit"
  base_before=$(md5_raw cm-$fmt/base.$fmt)

  expect 0 commit -p cm-$fmt/child.$fmt
  stdout_has "Image committed." "commit child.$fmt"
  stdout_has "(100.00/100%)" "commit -p child.$fmt"
  grep -Eq "^vhdtool: (.*/)?cm-$fmt/base\.$fmt: warning: .*other\.$fmt" err \
    || fail "commit: no warning about the other child: $(cat err)"
  grep -q "grandchild" err \
    && fail "commit: warned about a child of the committed disk: $(cat err)"
  [ "$(grep -c warning err)" -eq 1 ] || fail "commit: warnings: $(cat err)"

  same_view cm-$fmt/child.$fmt cm-$fmt/view.raw "child after commit"
  same_view cm-$fmt/base.$fmt cm-$fmt/view.raw "parent after commit"
  same_view cm-$fmt/grandchild.$fmt cm-$fmt/view.raw "grandchild after commit"
  [ "$(md5_raw cm-$fmt/base.$fmt)" != "$base_before" ] || fail "commit left the parent unchanged"
  qemu_same cm-$fmt/base.$fmt cm-$fmt/view.raw "parent after commit (qemu-img)"
  info_to cm-$fmt/child.$fmt cm.json
  jcheck cm.json "d['allocated_bytes'] == 0 and d['type'] == 'differencing'" \
    "child after commit: empty"
  jcheck cm.json "d['chain'][1].endswith('base.$fmt')" "child after commit: chain"
  # Valid afterwards; space the emptied child no longer uses may show as
  # leaked (exit 3), which only compact is asked to give back.
  for f in cm-$fmt/child.$fmt cm-$fmt/base.$fmt; do
    run check $f
    [ $rc -eq 0 ] || [ $rc -eq 3 ] \
      || fail "check $f after commit: exit $rc: $(cat out err)"
  done

  # A lone child: no warning at all.
  expect 0 create --parent cm-$fmt/base.$fmt cm-$fmt/lone.$fmt
  rm cm-$fmt/other.$fmt cm-$fmt/grandchild.$fmt cm-$fmt/child.$fmt
  lib_pwrite cm-$fmt/lone.$fmt 0:4096:55
  raw_pwrite cm-$fmt/view.raw 0:4096:55
  expect 0 commit cm-$fmt/lone.$fmt
  [ ! -s err ] || fail "commit of a lone child printed: $(cat err)"
  same_view cm-$fmt/base.$fmt cm-$fmt/view.raw "parent after the second commit"
done

# ------------------------------------------------------------ rebase
note "rebase: a disk that is not differencing"
runtime_err notdiff.vhd rebase --parent fresh-dynamic.vhd notdiff.vhd

for fmt in vhd vhdx; do
  note "rebase: $fmt child after its parent moved"
  mkdir -p rb-$fmt/sub
  mkraw rb-$fmt/base.raw $((8 * MiB)) 0:$MiB:61 $((3 * MiB)):$MiB:62
  expect 0 convert -b 2M rb-$fmt/base.raw rb-$fmt/base.$fmt
  expect 0 create --parent rb-$fmt/base.$fmt rb-$fmt/child.$fmt
  lib_pwrite rb-$fmt/child.$fmt $((3 * MiB)):4096:63
  cp rb-$fmt/base.raw rb-$fmt/view.raw
  raw_pwrite rb-$fmt/view.raw $((3 * MiB)):4096:63
  same_view rb-$fmt/child.$fmt rb-$fmt/view.raw "child before the move"
  expect 0 create rb-$fmt/stranger.$fmt 8M

  mv rb-$fmt/base.$fmt rb-$fmt/sub/moved.$fmt
  runtime_err rb-$fmt/child.$fmt convert rb-$fmt/child.$fmt x.raw

  note "rebase: $fmt to a wrong parent is refused"
  sum=$(md5_file rb-$fmt/child.$fmt)
  runtime_err rb-$fmt/child.$fmt rebase --parent rb-$fmt/stranger.$fmt rb-$fmt/child.$fmt
  stderr_has "ID" "rebase onto a stranger"
  [ "$(md5_file rb-$fmt/child.$fmt)" = "$sum" ] || fail "a refused rebase changed the child"
  runtime_err rb-$fmt/child.$fmt rebase --parent rb-$fmt/nothere.$fmt rb-$fmt/child.$fmt
  [ "$(md5_file rb-$fmt/child.$fmt)" = "$sum" ] || fail "a failed rebase changed the child"

  note "rebase: $fmt to the moved parent"
  expect 0 rebase --parent rb-$fmt/sub/moved.$fmt rb-$fmt/child.$fmt
  same_view rb-$fmt/child.$fmt rb-$fmt/view.raw "child after rebase"
  info_to rb-$fmt/child.$fmt rb.json
  jcheck rb.json "'moved.$fmt' in d['parent'] and d['parent_missing'] is False and d['chain'][1].endswith('sub/moved.$fmt')" \
    "info after rebase"
  expect 0 check rb-$fmt/child.$fmt
  # The link is relative: moving both together keeps the chain working.
  mv rb-$fmt rb2-$fmt
  same_view rb2-$fmt/child.$fmt rb2-$fmt/view.raw "child and parent moved together"
  mv rb2-$fmt rb-$fmt

  note "rebase: $fmt --unsafe accepts a different parent"
  expect 0 rebase --unsafe --parent rb-$fmt/stranger.$fmt rb-$fmt/child.$fmt
  info_to rb-$fmt/child.$fmt rb.json
  jcheck rb.json "'stranger.$fmt' in d['parent'] and d['parent_missing'] is False" \
    "info after rebase --unsafe"
  mkraw rb-$fmt/alone.raw $((8 * MiB)) $((3 * MiB)):4096:63
  same_view rb-$fmt/child.$fmt rb-$fmt/alone.raw "child over the stranger"
  # And back: the child now records the stranger's ID, so back needs -u.
  runtime_err rb-$fmt/child.$fmt rebase --parent rb-$fmt/sub/moved.$fmt rb-$fmt/child.$fmt
  expect 0 rebase -u --parent rb-$fmt/sub/moved.$fmt rb-$fmt/child.$fmt
  same_view rb-$fmt/child.$fmt rb-$fmt/view.raw "child back on its parent"
done

# ------------------------------------------------------------ convert --cache
# Default: a raw, VHDX or fixed DST is written with O_DIRECT where the file
# system allows it, else buffered; a dynamic VHD buffered.  --cache=none
# insists on O_DIRECT, --cache=writeback never uses it.
CACHE_MODES="default none writeback"
CACHE_OUTS="raw vhdx vhd fixed.vhd fixed.vhdx"

# cache_opts MODE OUT: the convert options for MODE and output kind OUT.
cache_opts () {
  case $1 in
    none) echo "--cache none" ;;         # the separate-argument form too
    writeback) echo "--cache=writeback" ;;
  esac
  case $2 in fixed.*) echo "-t fixed" ;; esac
}

# direct_opens ARG...: run vhdtool under strace; print how many files it
# opened with O_DIRECT.
direct_opens () {
  # LeakSanitizer cannot run under ptrace (make check-asan)
  ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
  strace -f -qq -o "$T/trace" -e trace=open,openat "$VHDTOOL" "$@" \
    > "$T/out" 2> "$T/err" || fail "vhdtool $* (under strace): $(cat "$T/err")"
  grep -c 'O_DIRECT' "$T/trace" || true
}

note "convert --cache: a qemu-img made image to raw, vhdx, vhd, fixed"
mkraw cs.raw $((16 * MiB)) 0:$MiB:81 $((3 * MiB)):$((2 * MiB)):82 \
  $((9 * MiB + 4096)):65536:83 $((16 * MiB - 4096)):4096:84
if have_qemu; then
  qemu-img convert -q -f raw -O vhdx -o block_size=2M cs.raw cs.vhdx
else
  expect 0 convert -b 2M cs.raw cs.vhdx
fi
direct_here=
if direct_io_in "$T"; then
  direct_here=yes
else
  note "no O_DIRECT under $T: --cache=none is expected to fail there"
fi
for mode in $CACHE_MODES; do
  for o in $CACHE_OUTS; do
    dst=c-$mode.$o
    # shellcheck disable=SC2046
    if [ $mode = none ] && [ -z "$direct_here" ]; then
      runtime_err $dst convert $(cache_opts $mode $o) cs.vhdx $dst
      stderr_has "O_DIRECT" "convert --cache=none -> $dst"
      [ ! -e $dst ] || fail "a failed convert --cache=none left $dst behind"
      continue
    fi
    # shellcheck disable=SC2046
    expect 0 convert $(cache_opts $mode $o) cs.vhdx $dst
    [ ! -s out ] && [ ! -s err ] || fail "convert -> $dst printed: $(cat out err)"
    same_view $dst cs.raw "convert --cache=$mode -> $dst"
    qemu_compare cs.vhdx $dst "convert --cache=$mode -> $dst"
    case $o in
      fixed.*) info_to $dst cf.json
               jcheck cf.json "d['type'] == 'fixed'" "convert -t fixed -> $dst" ;;
    esac
  done
done

if [ -n "$direct_here" ] && command -v strace > /dev/null 2>&1 \
   && strace -qq -o /dev/null true 2>/dev/null; then
  note "convert --cache: which outputs are opened with O_DIRECT (strace)"
  for mode in $CACHE_MODES; do
    for o in $CACHE_OUTS; do
      dst=s-$mode.$o
      # shellcheck disable=SC2046
      n=$(direct_opens convert $(cache_opts $mode $o) cs.vhdx $dst)
      case $mode:$o in
        default:vhd|writeback:*) want=no ;;
        *) want=yes ;;
      esac
      if [ $want = yes ]; then
        [ "$n" -ge 1 ] || fail "convert --cache=$mode -> $dst: not written with O_DIRECT"
      else
        [ "$n" -eq 0 ] || fail "convert --cache=$mode -> $dst: opened with O_DIRECT"
      fi
      same_view $dst cs.raw "convert --cache=$mode -> $dst (strace)"
      rm -f $dst
    done
  done
else
  note "strace unusable (or no O_DIRECT here): O_DIRECT use not traced"
fi

# nd.sh DIR SRC: convert SRC into DIR to each of raw, vhdx, vhd with each
# cache mode.  Records in the current directory nd-odirect ("no" when DIR
# refuses O_DIRECT opens), nd-MODE-EXT.{rc,out,err} and, for an output
# that was made, a copy nd-MODE.EXT (DIR may be a ramfs that vanishes
# afterwards).
cat > nd.sh <<'EOF'
set -u
dir=$1 src=$2
if dd if=/dev/zero of="$dir/probe" bs=4096 count=1 oflag=direct 2>/dev/null
then echo yes; else echo no; fi > nd-odirect
rm -f "$dir/probe" nd-*.raw nd-*.vhd nd-*.vhdx
for mode in default none writeback; do
  for ext in raw vhdx vhd; do
    opt=()
    [ $mode = default ] || opt=(--cache=$mode)
    rc=0
    "$VHDTOOL" convert "${opt[@]}" "$src" "$dir/$mode.$ext" \
      > nd-$mode-$ext.out 2> nd-$mode-$ext.err || rc=$?
    echo $rc > nd-$mode-$ext.rc
    if [ -e "$dir/$mode.$ext" ]; then
      cp --sparse=always "$dir/$mode.$ext" nd-$mode.$ext
      rm -f "$dir/$mode.$ext"
    fi
  done
done
EOF

# nd_check DIR WHAT DIRECT: what nd.sh recorded for DIR.  Without direct
# I/O there (DIRECT "no"), default and writeback still convert and
# --cache=none fails with one line about O_DIRECT, leaving no file; with
# it ("yes") all three convert; "unknown": --cache=none may do either.
nd_check () {
  local dir=$1 what=$2 direct=$3 mode ext rc
  for mode in $CACHE_MODES; do
    for ext in raw vhdx vhd; do
      rc=$(cat nd-$mode-$ext.rc)
      if [ $mode = none ] && { [ "$direct" = no ] \
           || { [ "$direct" = unknown ] && [ "$rc" -ne 0 ]; }; }; then
        [ "$rc" -eq 1 ] || fail "$what: convert --cache=none -> $ext: exit $rc"
        [ "$(wc -l < nd-$mode-$ext.err)" -eq 1 ] \
          && grep -q "^vhdtool: $dir/$mode\.$ext: .*O_DIRECT" nd-$mode-$ext.err \
          || fail "$what: convert --cache=none -> $ext: want one line about O_DIRECT: $(cat nd-$mode-$ext.err)"
        [ ! -s nd-$mode-$ext.out ] || fail "$what: convert --cache=none printed: $(cat nd-$mode-$ext.out)"
        [ ! -e nd-$mode.$ext ] || fail "$what: a failed convert --cache=none left its output behind"
        continue
      fi
      [ "$rc" -eq 0 ] || fail "$what: convert --cache=$mode -> $ext: exit $rc: $(cat nd-$mode-$ext.err)"
      [ ! -s nd-$mode-$ext.err ] || fail "$what: convert --cache=$mode -> $ext: $(cat nd-$mode-$ext.err)"
      same_view nd-$mode.$ext cs.raw "$what: convert --cache=$mode -> $ext"
      qemu_compare cs.vhdx nd-$mode.$ext "$what: convert --cache=$mode -> $ext"
    done
  done
}

note "convert --cache: on /dev/shm (tmpfs)"
nd_tested=
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
  shm=$(mktemp -d /dev/shm/vhdtest.XXXXXX)
  shm_direct=no
  direct_io_in "$shm" && shm_direct=yes
  rc=0
  bash nd.sh "$shm" "$T/cs.vhdx" || rc=$?
  rm -rf "$shm"
  [ $rc -eq 0 ] || fail "converting into /dev/shm: nd.sh exit $rc"
  nd_check "$shm" "/dev/shm" $shm_direct
  if [ $shm_direct = no ]; then
    nd_tested=yes
  else
    note "libvhd does direct I/O on tmpfs here: --cache=none worked on it"
  fi
else
  note "no writable /dev/shm: tmpfs part skipped"
fi

if [ -z "$nd_tested" ]; then
  note "convert --cache: on a private ramfs (no O_DIRECT)"
  mkdir ramfs
  if command -v unshare > /dev/null 2>&1 \
     && unshare -m true 2>/dev/null; then
    rc=0
    unshare -m bash -c 'mount -t ramfs ramfs "$1" && exec bash nd.sh "$1" "$2"' \
      _ "$T/ramfs" "$T/cs.vhdx" || rc=$?
    [ $rc -eq 0 ] || fail "converting into a ramfs: exit $rc"
    if [ "$(cat nd-odirect)" = no ]; then
      nd_check "$T/ramfs" "ramfs" no
    else
      nd_check "$T/ramfs" "ramfs" unknown
      note "ramfs takes O_DIRECT here: --cache=none may work on it"
    fi
  else
    note "cannot mount a private ramfs (unshare -m): no file system without O_DIRECT tested"
  fi
fi

# ------------------------------------------------------------ summary
note "all passed"
exit 0
