#!/bin/bash
# vhdtool's command-line contract (DESIGN.md, "Command-line contracts"):
# --help / --version / usage errors / exit codes of every subcommand, and
# create, info, map and convert (and its --cache option) on small images,
# with qemu-img as an independent reader and writer where it is installed.
#
#   B=build tests/tools/test-vhdtool-cli.sh      (VHDTOOL overrides $B/vhdtool)
. "$(dirname "$0")/../lib.sh"

need_vhdtool
cd "$T"

COMMANDS="create info convert map check compact resize commit rebase"
MiB=1048576

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
    || fail "vhdtool $*: exit $rc, expected $want; stderr: $(head -c 600 err)"
}

# usage_err ARG...: exit 1, a message on stderr, nothing on stdout.
usage_err () {
  expect 1 "$@"
  [ ! -s out ] || fail "vhdtool $*: a usage error wrote to stdout"
  [ -s err ] || fail "vhdtool $*: a usage error printed no message"
}

# runtime_err FILE ARG...: exit 1 and one line "vhdtool: FILE: ..." on stderr.
runtime_err () {
  local file=$1
  shift
  expect 1 "$@"
  [ "$(wc -l < err)" -eq 1 ] \
    || fail "vhdtool $*: want one error line, got: $(cat err)"
  grep -q "^vhdtool: $file: ." err \
    || fail "vhdtool $*: error does not start 'vhdtool: $file: ': $(cat err)"
}

# stdout_has TEXT WHAT / stderr_has TEXT WHAT: fixed-string search.
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

# info_to FILE JSONFILE: vhdtool info --json FILE, validated, into JSONFILE.
info_to () {
  info_json "$1" > "$2" || fail "vhdtool info --json $1 failed"
}

# ------------------------------------------------------------ top level
note "top level: usage, help, version"
usage_err
stderr_has "Usage:" "vhdtool (no arguments)"
for h in --help -h help; do
  expect 0 $h
  [ ! -s err ] || fail "vhdtool $h wrote to stderr: $(cat err)"
  for c in $COMMANDS; do
    grep -q "^  $c " out || fail "vhdtool $h does not list '$c'"
  done
done
expect 0 --version
grep -Eq '^vhdtool [0-9]+\.[0-9]+\.[0-9]+$' out \
  || fail "--version: no 'vhdtool X.Y.Z' line: $(cat out)"
grep -Eq '^libvhd [0-9]+\.[0-9]+\.[0-9]+$' out \
  || fail "--version: no 'libvhd X.Y.Z' line: $(cat out)"
usage_err no-such-command
stderr_has "no-such-command" "unknown command"
usage_err --no-such-option
usage_err help no-such-command
expect 0 help create
stdout_has "Usage: vhdtool create" "vhdtool help create"

note "every command: --help, -h, bad options"
for c in $COMMANDS; do
  for h in --help -h; do
    expect 0 "$c" $h
    head -1 out | grep -q "^Usage: vhdtool $c" \
      || fail "vhdtool $c $h: no usage line: $(head -3 out)"
    [ ! -s err ] || fail "vhdtool $c $h wrote to stderr: $(cat err)"
  done
  usage_err "$c" --no-such-option
done

# ------------------------------------------------------------ usage errors
note "usage errors"
usage_err create
usage_err create a.vhd
usage_err create a.vhd 1Q
usage_err create a.vhd -- -1
usage_err create a.vhd 1.5G
usage_err create a.vhd 99999999999T
usage_err create a.vhd 1M extra
usage_err create a.qcow2 1M
usage_err create noext 1M
usage_err create -f qcow2 a.vhd 1M
usage_err create -f raw a.img 1M
usage_err create -t sparse a.vhd 1M
usage_err create -b 0 a.vhdx 1M
usage_err create -b 1X a.vhdx 1M
usage_err create --logical-sector 1024 a.vhdx 1M
usage_err create --physical-sector 2048 a.vhdx 1M
usage_err create --parent p.vhd c.vhd 1M
usage_err create -t fixed --parent p.vhd c.vhd
ls a.* c.* noext 2>/dev/null && fail "a usage error created a file"
usage_err info
usage_err info a.vhd b.vhd
usage_err map
usage_err map a.vhd b.vhd
usage_err convert
usage_err convert a.vhd
usage_err convert a.vhd b.vhd c.vhd
usage_err convert a.vhd b.qcow2
usage_err convert a.vhd noext
usage_err convert -O qcow2 a.vhd b.vhd
usage_err convert -O vhd a.vhd -
usage_err convert -t sparse a.vhd b.vhd

# ------------------------------------------------------------ runtime errors
note "runtime errors: one line naming the file"
runtime_err missing.vhd info missing.vhd
runtime_err missing.vhd info --json missing.vhd
[ ! -s out ] || fail "info of a missing file printed: $(cat out)"
runtime_err missing.vhdx map missing.vhdx
runtime_err missing.vhd convert missing.vhd out.raw
[ ! -e out.raw ] || fail "convert of a missing SRC left out.raw behind"

# ------------------------------------------------------------ create + info
# FORMATS: the formats vhdtool creates; X: the one the data tests use.
FORMATS="vhd vhdx"
X=vhdx

note "create and info"
for fmt in $FORMATS; do
  for type in dynamic fixed; do
    f=$type.$fmt
    expect 0 create -t $type $f 8M
    [ ! -s out ] && [ ! -s err ] || fail "create $f printed: $(cat out err)"
    info_to $f $f.json
    jcheck $f.json "d['format'] == '$fmt' and d['type'] == '$type'" "info $f"
    jcheck $f.json "d['virtual_size'] == 8 * $MiB" "info $f"
    jcheck $f.json "d['file_size'] > 0 and d['allocated_bytes'] >= 0" "info $f"
    jcheck $f.json "d['logical_sector_size'] == 512" "info $f"
    jcheck $f.json "d['physical_sector_size'] in (512, 4096)" "info $f"
    jcheck $f.json "d['parent'] is None and d['parent_missing'] is False" \
      "info $f"
    jcheck $f.json "len(d['chain']) == 1 and d['chain'][0].endswith('$f')" \
      "info $f"
    jcheck $f.json "isinstance(d['creator'], str) and d['creator'] != ''" \
      "info $f"
    jcheck $f.json "isinstance(d['block_size'], int)" "info $f"
    jcheck $f.json "__import__('re').fullmatch('[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}', d['id'].lower())" \
      "info $f: id is a UUID"
    if [ $fmt = vhdx ]; then
      jcheck $f.json "d['log_dirty'] is False" "info $f"
    fi
    expect 0 info $f
    for key in "image:" "format:" "type:" "virtual size:" "file size:" \
               "allocated:" "logical sector size:" "id:" "chain:"; do
      grep -q "^$key  *[^ ]" out || fail "info $f: no '$key' line: $(cat out)"
    done
    stdout_has "8 MiB (8388608 bytes)" "info $f"
  done
done
jcheck dynamic.$X.json "d['block_size'] > 0" "info dynamic.$X"
jcheck fixed.vhd.json "d['file_size'] >= 8 * $MiB" "info fixed.vhd"

note "create options"
expect 0 create -b 1M b1.$X 16M
info_to b1.$X b1.json
jcheck b1.json "d['block_size'] == $MiB" "create -b 1M"
if [ $X = vhdx ]; then
  expect 0 create --logical-sector 4096 --physical-sector 4096 s4k.vhdx 16M
  info_to s4k.vhdx s4k.json
  jcheck s4k.json "d['logical_sector_size'] == 4096" "create --logical-sector"
  jcheck s4k.json "d['physical_sector_size'] == 4096" "create --physical-sector"
  expect 0 create --physical-sector 4096 p4k.vhdx 16M
  info_to p4k.vhdx p4k.json
  jcheck p4k.json "d['logical_sector_size'] == 512" "create --physical-sector"
  jcheck p4k.json "d['physical_sector_size'] == 4096" "create --physical-sector"
  expect 0 create x.avhdx 4194304
  info_to x.avhdx x.json
  jcheck x.json "d['format'] == 'vhdx' and d['virtual_size'] == 4 * $MiB" \
    "create x.avhdx"
fi
expect 0 create -f $X noext 4MiB
info_to noext noext.json
jcheck noext.json "d['format'] == '$X' and d['virtual_size'] == 4 * $MiB" \
  "create -f $X noext 4MiB"
expect 0 create x.avhd 4MB
info_to x.avhd x.json
jcheck x.json "d['format'] == 'vhd' and d['virtual_size'] == 4 * $MiB" \
  "create x.avhd"
expect 0 create -f VHD UPPER.VHD 2M
info_to UPPER.VHD x.json
jcheck x.json "d['format'] == 'vhd'" "create -f VHD UPPER.VHD"

note "create refuses an existing file"
sum=$(md5_file dynamic.vhd)
runtime_err dynamic.vhd create dynamic.vhd 8M
stderr_has "exists" "create over an existing file"
[ "$(md5_file dynamic.vhd)" = "$sum" ] || fail "create modified an existing file"
runtime_err nodir/x.$X create nodir/x.$X 8M

# ------------------------------------------------------------ differencing
note "differencing disks"
for fmt in $FORMATS; do
  expect 0 create base.$fmt 8M
  expect 0 create --parent base.$fmt child.$fmt
  info_to child.$fmt child.json
  jcheck child.json "d['type'] == 'differencing'" "info child.$fmt"
  jcheck child.json "d['virtual_size'] == 8 * $MiB" "info child.$fmt"
  jcheck child.json "d['parent'] is not None and 'base.$fmt' in d['parent']" \
    "info child.$fmt"
  jcheck child.json "d['parent_missing'] is False" "info child.$fmt"
  jcheck child.json "len(d['chain']) == 2 and d['chain'][0].endswith('child.$fmt') and d['chain'][1].endswith('base.$fmt')" \
    "info child.$fmt: chain"
  expect 0 info child.$fmt
  grep -q "^parent:  *[^ ]*base.$fmt" out \
    || fail "info child.$fmt: no parent line: $(cat out)"

  mv base.$fmt moved.$fmt
  expect 0 info --json child.$fmt
  cp out child-alone.json
  stderr_has "warning" "info child.$fmt without its parent"
  [ "$(wc -l < err)" -eq 1 ] || fail "info without parent: $(cat err)"
  jcheck child-alone.json "d['parent_missing'] is True" "info, parent missing"
  jcheck child-alone.json "d['type'] == 'differencing' and len(d['chain']) == 1" \
    "info, parent missing"
  expect 0 info child.$fmt
  runtime_err child.$fmt map child.$fmt
  mv moved.$fmt base.$fmt
done

# ------------------------------------------------------------ map + convert
note "convert raw -> $X, map"
# Data in 1 MiB blocks 0, 4 and 7 (the last), nothing elsewhere.
mkraw data.raw $((8 * MiB)) 0:65536:1 $((4 * MiB + 512 * 1024)):4096:2 \
  $((8 * MiB - 512)):512:3
expect 0 convert -b 1M data.raw d.$X
[ ! -s out ] || fail "convert without -p printed: $(cat out)"
info_to d.$X d.json
jcheck d.json "d['virtual_size'] == 8 * $MiB and d['type'] == 'dynamic'" \
  "convert -> d.$X"
jcheck d.json "0 < d['allocated_bytes'] < 8 * $MiB" "convert -> d.$X allocated"

expect 0 map --json d.$X
cp out map.json
jcheck map.json "isinstance(d, list) and len(d) >= 3" "map --json d.$X"
jcheck map.json "d[0]['start'] == 0 and all(a['start'] + a['length'] == b['start'] for a, b in zip(d, d[1:])) and d[-1]['start'] + d[-1]['length'] == 8 * $MiB" \
  "map --json covers the disk"
jcheck map.json "all((a['type'], a['zero'], a['hole'], a['depth']) != (b['type'], b['zero'], b['hole'], b['depth']) for a, b in zip(d, d[1:]))" \
  "map --json merges adjacent equal extents"
jcheck map.json "all(e['type'] in ('data', 'zero') and e['data'] == (e['type'] == 'data') and e['length'] > 0 for e in d)" \
  "map --json extent fields"
# Every byte with data must lie in a data extent of depth 0.
jcheck map.json "all(any(e['data'] and e['depth'] == 0 and e['start'] <= o < e['start'] + e['length'] for e in d) for o in (0, 65535, 4 * $MiB + 524288, 8 * $MiB - 1))" \
  "map --json: data where data was written"
jcheck map.json "any(not e['data'] for e in d)" "map --json: zero extents"
expect 0 map d.$X
head -1 out | grep -Eq '^Offset +Length +Type +Depth$' \
  || fail "map: no table header: $(head -2 out)"
[ $(($(wc -l < out) - 1)) -eq "$("$PY" -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' map.json)" ] \
  || fail "map: human and JSON extent counts differ"
grep -Eq '^0 +0x[0-9a-f]+ +data +0$' out || fail "map: first line: $(cat out)"

expect 0 create empty.$X 4M
expect 0 map --json empty.$X
cp out empty.json
jcheck empty.json "len(d) == 1 and d[0]['start'] == 0 and d[0]['length'] == 4 * $MiB and d[0]['type'] == 'zero'" \
  "map of an empty disk"

note "convert back and between formats"
expect 0 convert d.$X back.raw
expect_same_file data.raw back.raw "$X -> raw"
[ "$(alloc_bytes back.raw)" -lt $((4 * MiB)) ] \
  || fail "convert -> raw: not sparse ($(alloc_bytes back.raw) bytes allocated)"
for fmt in $FORMATS; do
  expect 0 convert d.$X d2.$fmt
  expect 0 convert -O raw d2.$fmt back-$fmt.bin
  expect_same_file data.raw back-$fmt.bin "$X -> $fmt -> raw"
  expect 0 convert -t fixed d2.$fmt f2.$fmt
  info_to f2.$fmt f.json
  jcheck f.json "d['type'] == 'fixed' and d['virtual_size'] == 8 * $MiB" \
    "convert -t fixed -> $fmt"
  [ "$(md5_raw f2.$fmt)" = "$(md5_file data.raw)" ] || fail "-> fixed $fmt"
done
if [ $X = vhdx ]; then
  expect 0 convert --logical-sector 4096 data.raw d4k.vhdx
  info_to d4k.vhdx d4k.json
  jcheck d4k.json "d['logical_sector_size'] == 4096" "convert --logical-sector"
  expect 0 convert d4k.vhdx d4k-copy.vhdx
  info_to d4k-copy.vhdx d4k-copy.json
  jcheck d4k-copy.json "d['logical_sector_size'] == 4096" \
    "convert vhdx -> vhdx keeps 4096-byte sectors"
  [ "$(md5_raw d4k-copy.vhdx)" = "$(md5_file data.raw)" ] || fail "4k vhdx copy"
fi

note "convert to standard output"
rc=0
"$VHDTOOL" convert d.$X - > stream.raw 2> err || rc=$?
[ $rc -eq 0 ] || fail "convert d.$X -: exit $rc: $(cat err)"
expect_same_file data.raw stream.raw "convert to stdout"
rc=0
"$VHDTOOL" convert -p d.$X - > stream2.raw 2> err || rc=$?
[ $rc -eq 0 ] || fail "convert -p d.$X -: exit $rc: $(cat err)"
expect_same_file data.raw stream2.raw "convert -p to stdout"
grep -qF "(100.00/100%)" err || fail "convert -p -: no progress on stderr"
{ rc=0; "$VHDTOOL" convert d.$X - 2> err || rc=$?; echo $rc > rc.txt; } \
  | head -c 1 > /dev/null
rc=$(cat rc.txt)
[ "$rc" -eq 1 ] || fail "convert to a closed pipe: exit $rc, expected 1"
grep -q "^vhdtool: standard output: .*broken pipe" err \
  || fail "convert to a closed pipe: message: $(cat err)"

note "convert -p, existing DST, failures"
expect 0 convert -p d.$X p.$X
stdout_has "(100.00/100%)" "convert -p"
sum=$(md5_file back.raw)
runtime_err back.raw convert d.$X back.raw
stderr_has "exists" "convert over an existing DST"
[ "$(md5_file back.raw)" = "$sum" ] || fail "convert modified an existing DST"
runtime_err nodir/x.$X convert d.$X nodir/x.$X
mv base.$X gone.$X
runtime_err child.$X convert child.$X orphan.raw
[ ! -e orphan.raw ] || fail "failed convert left orphan.raw behind"
mv gone.$X base.$X

note "convert --cache: option parsing"
expect 0 convert --help
stdout_has "--cache MODE" "convert --help"
for bad in bogus "" NONE writethrough; do
  usage_err convert --cache="$bad" d.$X cache.raw
  stderr_has "invalid cache mode '$bad' (none or writeback)" "convert --cache=$bad"
  stderr_has "Try 'vhdtool convert --help'" "convert --cache=$bad"
  [ ! -e cache.raw ] || fail "convert --cache=$bad created its DST"
done
usage_err convert d.$X cache.raw --cache
usage_err convert --cache none d.$X
usage_err convert --cache=none d.$X -
stderr_has "not standard output" "convert --cache=none to stdout"
[ ! -e cache.raw ] || fail "a convert usage error created its DST"
for mode in none writeback; do
  expect 0 convert --cache=$mode d.$X cache-$mode.raw
  expect_same_file data.raw cache-$mode.raw "convert --cache=$mode -> raw"
  expect 0 convert d.$X --cache $mode cache-$mode.vhd
  [ "$(md5_raw cache-$mode.vhd)" = "$(md5_file data.raw)" ] \
    || fail "convert --cache $mode (after SRC) -> vhd"
done
# The existing-DST check comes first, whatever the cache mode.
sum=$(md5_file cache-none.raw)
for mode in none writeback; do
  runtime_err cache-none.raw convert --cache=$mode d.$X cache-none.raw
  stderr_has "exists" "convert --cache=$mode over an existing DST"
done
runtime_err cache-none.raw convert d.$X cache-none.raw
[ "$(md5_file cache-none.raw)" = "$sum" ] || fail "convert --cache modified an existing DST"

note "differencing chain with data"
expect 0 convert -b 1M data.raw base-data.$X
expect 0 create --parent base-data.$X over.$X
expect 0 map --json over.$X
cp out over.json
jcheck over.json "all(e['depth'] == 1 for e in d if e['data'])" \
  "map of a child: data comes from depth 1"
jcheck over.json "any(e['data'] for e in d)" "map of a child: has data"
[ "$(md5_raw over.$X)" = "$(md5_file data.raw)" ] \
  || fail "child reads differ from its parent"
expect 0 convert over.$X flat.vhd
[ "$(md5_raw flat.vhd)" = "$(md5_file data.raw)" ] || fail "child -> flat vhd"
info_to flat.vhd flat.json
jcheck flat.json "d['type'] == 'dynamic' and d['parent'] is None" \
  "convert flattens the chain"

# ------------------------------------------------------------ qemu-img
if command -v qemu-img > /dev/null 2>&1; then
  note "qemu-img reads what vhdtool writes"
  qemu-img compare --image-opts "$(qemu_vpc_opts d2.vhd)" \
    "driver=raw,file.filename=data.raw" > /dev/null \
    || fail "qemu-img compare d2.vhd data.raw"
  qemu_made="q.vhd"
  if [ $X = vhdx ]; then
    qemu-img info --output=json d.vhdx > q.json
    jcheck q.json "d['format'] == 'vhdx' and d['virtual-size'] == 8 * $MiB" \
      "qemu-img info d.vhdx"
    qemu-img compare -f vhdx -F raw d.vhdx data.raw > /dev/null \
      || fail "qemu-img compare d.vhdx data.raw"
    qemu-img convert -f raw -O vhdx data.raw q.vhdx
    qemu_made="q.vhd q.vhdx"
  fi

  note "vhdtool reads what qemu-img writes"
  qemu-img convert -f raw -O vpc -o subformat=dynamic,force_size=on \
    data.raw q.vhd
  for f in $qemu_made; do
    info_to $f qi.json
    jcheck qi.json "d['virtual_size'] == 8 * $MiB" "info $f (qemu-img made)"
    expect 0 map $f
    [ "$(md5_raw $f)" = "$(md5_file data.raw)" ] || fail "reading $f"
  done
else
  note "qemu-img not installed: interop part skipped"
fi

note "all passed"
exit 0
