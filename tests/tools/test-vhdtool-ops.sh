#!/bin/bash
# vhdtool's image operations (DESIGN.md, "Command-line contracts"):
# check (exit codes 0 / 2 / 3 / 1, --repair, --json), compact, resize
# (absolute, +SIZE, -SIZE, --shrink, refused shrinks), commit (with the
# warning about other children of the parent) and rebase (moved parent,
# wrong parent, --unsafe), with qemu-img as an independent reader where
# it is installed.
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

# ------------------------------------------------------------ summary
note "all passed"
exit 0
