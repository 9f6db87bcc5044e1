#!/bin/bash
# VHD interoperability with qemu-img / qemu-io and libvhdi (vhdiinfo,
# vhdimount):
#  (a) VHDs that qemu-img creates and qemu-io writes read back through
#      vhdtool byte-identical to qemu-img's own raw conversion;
#  (b) VHDs that vhdtool creates or converts open in qemu-img and libvhdi
#      with the right size and content, and pass the spec validator
#      (tests/vhd-validate.py: qemu-img has no `check` for vpc); qemu-io can
#      write into them and vhdtool reads qemu's blocks back;
#  (c) a differencing child made by `vhdtool create --parent` reads as its
#      parent through vhdtool, vhdiinfo and vhdimount.
#
# Sizes: qemu 7.2 sizes a VHD by its CHS geometry unless the creator is
# 'win '/'qem2' (and, for fixed images it made itself, reports the footer
# sector as part of the disk).  We, Hyper-V and libvhdi use the footer's
# current size, so every qemu read here goes through
# --image-opts driver=vpc,force_size_calc=current_size,file.filename=F.

# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"

need_vhdtool
need_cmd qemu-img qemu-io
VALIDATE=("$PY" "$ROOT/tests/vhd-validate.py")

# vt_size FILE: virtual_size from vhdtool info --json.
vt_size () {
  local j
  j=$(info_json "$1") || fail "vhdtool info --json $1 failed"
  json_get virtual_size <<<"$j"
}

# qemu_size FILE: qemu's virtual size at the footer's current size.
qemu_size () {
  qemu-img info --output=json --image-opts "$(qemu_vpc_opts "$1")" \
    | json_get virtual-size
}

# qemu_raw FILE OUT: qemu-img's raw conversion (footer current size).
qemu_raw () {
  qemu-img convert --image-opts "$(qemu_vpc_opts "$1")" -O raw "$2" \
    || fail "qemu-img convert $1 failed"
}

# vt_raw_both FILE OUT: vhdtool's raw through stdout into OUT, and to a
# file OUT.file; both must be identical.
vt_raw_both () {
  "$VHDTOOL" convert "$1" - > "$2" || fail "vhdtool convert $1 - failed"
  rm -f "${2%.raw}-file.raw"
  "$VHDTOOL" convert "$1" "${2%.raw}-file.raw" || fail "vhdtool convert $1 ${2%.raw}-file.raw failed"
  expect_same_file "$2" "${2%.raw}-file.raw" "$1: convert to stdout vs to a raw file"
  rm -f "${2%.raw}-file.raw"
}

# vt_compare_raw IMAGE RAW WHAT: vhdtool reads IMAGE as RAW's bytes.  Small
# disks stream through `convert IMAGE -`; large ones are converted to a
# sparse raw file and compared by qemu-img, which skips holes.
vt_compare_raw () {
  local out
  if [ "$(file_size "$2")" -le $((256 << 20)) ]; then
    stream_same "$1" "$2" "$3: vhdtool convert IMAGE - differs"
  else
    rm -f "$T/cmp.raw"
    "$VHDTOOL" convert "$1" "$T/cmp.raw" || fail "$3: vhdtool convert $1 $T/cmp.raw failed"
    out=$(qemu-img compare -f raw -F raw "$T/cmp.raw" "$2" 2>&1) \
      || fail "$3: vhdtool convert IMAGE out.raw differs: $out"
    rm -f "$T/cmp.raw"
  fi
}

# qemu_compare_raw RAW IMAGE WHAT: qemu-img compare, both at full size.
qemu_compare_raw () {
  local out
  out=$(qemu-img compare --image-opts "driver=raw,file.filename=$1" \
        "$(qemu_vpc_opts "$2")" 2>&1) || fail "$3: qemu-img compare: $out"
}

# vhdi_check FILE SIZE TYPE: vhdiinfo opens FILE and reports SIZE and TYPE.
vhdi_check () {
  command -v vhdiinfo >/dev/null 2>&1 || { note "vhdiinfo missing: not checked"; return 0; }
  local out
  out=$(vhdiinfo "$1" 2>&1) || fail "vhdiinfo $1 failed: $out"
  grep -q "Media size.*($2 bytes)" <<<"$out" \
    || fail "vhdiinfo $1: media size not $2: $(grep 'Media size' <<<"$out")"
  local want=$3
  [ "$want" = differencing ] && want=Differential   # libvhdi's word
  grep -qi "Disk type.*: *$want" <<<"$out" \
    || fail "vhdiinfo $1: disk type not $3: $(grep 'Disk type' <<<"$out")"
}

# qemu_check FILE: qemu-img check where qemu supports it (not for vpc in
# qemu 7.2: exit 63, "does not support checks").
qemu_check () {
  local rc=0 out
  out=$(qemu-img check --image-opts "$(qemu_vpc_opts "$1")" 2>&1) || rc=$?
  case $rc in
    0) ;;
    63) note "qemu-img check: vpc has no checks in this qemu" ;;
    *) fail "qemu-img check $1: exit $rc: $out" ;;
  esac
}

# ====================================================================== (a)
# Images made by qemu-img and written by qemu-io.
note "(a) qemu-created images"
for sub in dynamic fixed; do
  for force in off on; do
    for size in 64M 100000000; do
      f=$T/qemu-$sub-$force-$size.vhd
      qemu-img create -q -f vpc -o "subformat=$sub,force_size=$force" "$f" "$size" \
        || fail "qemu-img create $f failed"
      s=$(qemu_size "$f")
      # Writes: start, unaligned, across the first 2 MiB block boundary,
      # a whole aligned MiB, an unaligned run in the middle, the last bytes.
      writes=(
        "write -P 0x11 0 512"
        "write -P 0x22 1048573 10"
        "write -P 0x33 2097052 300"
        "write -P 0x44 5242880 1048576"
        "write -P 0x55 33554439 70000"
        "write -P 0x66 $((s - 1000)) 1000"
      )
      args=()
      for w in "${writes[@]}"; do args+=(-c "$w"); done
      qemu-io "${args[@]}" --image-opts "$(qemu_vpc_opts "$f")" >/dev/null \
        || fail "qemu-io writes into $f failed"
      v=$(vt_size "$f")
      [ "$v" = "$s" ] || fail "$f: vhdtool virtual_size $v, qemu (current size) $s"
      j=$(info_json "$f")
      t=$(json_get type <<<"$j")
      [ "$t" = "$sub" ] || fail "$f: vhdtool type $t, expected $sub"
      qemu_raw "$f" "$T/ref.raw"
      vt_raw_both "$f" "$T/out.raw"
      expect_same_file "$T/out.raw" "$T/ref.raw" "$f read by vhdtool vs qemu-img"
      # A block qemu never wrote must read as zeros: offset 20 MiB.
      cmp -s -n 4096 -i $((20 << 20)):0 "$T/out.raw" /dev/zero \
        || fail "$f: unwritten range at 20 MiB is not zero"
      note "PASS qemu $sub force_size=$force $size ($s bytes)"
      rm -f "$T/ref.raw" "$T/out.raw" "$f"
    done
  done
done

# ====================================================================== (b)
# Images made by vhdtool, read by qemu-img and libvhdi.
note "(b) vhdtool-created images"

# Empty images from `vhdtool create`.
for sub in dynamic fixed; do
  for size in 64M 100000256; do
    f=$T/vt-empty-$sub-$size.vhd
    "$VHDTOOL" create -f vhd -t "$sub" "$f" "$size" || fail "vhdtool create -t $sub $f $size failed"
    case $size in *M) bytes=$(( ${size%M} << 20 )) ;; *) bytes=$size ;; esac
    v=$(vt_size "$f")
    [ "$v" = "$bytes" ] || fail "$f: vhdtool virtual_size $v, created with $size = $bytes"
    s=$(qemu_size "$f")
    [ "$s" = "$bytes" ] || fail "$f: qemu-img (current size) sees $s bytes, expected $bytes"
    "${VALIDATE[@]}" --type "$sub" --size "$bytes" "$f" || fail "$f: spec validation failed"
    qemu_check "$f"
    truncate -s "$bytes" "$T/zero.raw"
    qemu_compare_raw "$T/zero.raw" "$f" "$f (new, must read as zeros)"
    vhdi_check "$f" "$bytes" "$sub"
    if [ "$sub" = fixed ]; then
      a=$(alloc_bytes "$f")
      [ "$a" -ge "$bytes" ] || fail "$f: fixed image host file only $a bytes allocated of $bytes (must not be sparse)"
    fi
    note "PASS vhdtool create -t $sub $size"
    rm -f "$f" "$T/zero.raw"
  done
done

# Images with data: vhdtool convert from a raw file, then qemu-io writes.
for size in 67108864 100000256 5000000000; do
  raw=$T/src-$size.raw
  regions=(
    "0:4096:1"
    "1048583:5000:2"                  # unaligned start and end
    "2097052:300:3"                   # across the first block boundary
    "6291456:2097152:4"               # exactly one 2 MiB block
    "10485760:2097152:z"              # a block of written zero bytes
    "$((size - 777)):777:5"           # the unaligned last bytes
  )
  if [ "$size" -gt $((4 << 30)) ]; then
    regions+=("$(( (4 << 30) - 100 )):200:6" "$(( (9 << 29) + 12345 )):65536:7")
  fi
  mkraw "$raw" "$size" "${regions[@]}"
  for sub in dynamic fixed; do
    # A 5 GB fixed image would write 5 GB: dynamic only at that size.
    [ "$sub" = fixed ] && [ "$size" -gt $((4 << 30)) ] && continue
    f=$T/vt-$sub-$size.vhd
    "$VHDTOOL" convert -O vhd -t "$sub" "$raw" "$f" || fail "vhdtool convert -O vhd -t $sub $raw $f failed"
    v=$(vt_size "$f")
    [ "$v" = "$size" ] || fail "$f: vhdtool virtual_size $v, raw source $size"
    s=$(qemu_size "$f")
    [ "$s" = "$size" ] || fail "$f: qemu-img (current size) sees $s bytes, raw source $size"
    "${VALIDATE[@]}" --type "$sub" --size "$size" "$f" || fail "$f: spec validation failed"
    qemu_check "$f"
    qemu_compare_raw "$raw" "$f" "$f vs its raw source"
    vhdi_check "$f" "$size" "$sub"
    vt_compare_raw "$f" "$raw" "$f vs its raw source"
    # qemu writes into our image (new blocks for dynamic), vhdtool reads them.
    cp --sparse=always "$raw" "$T/expect.raw"
    qemu-io -c "write -P 0x77 $((20 << 20)) 4096" -c "write -P 0x78 $((size - 8192)) 512" \
      -c "write -P 0x79 1048577 1000" --image-opts "$(qemu_vpc_opts "$f")" >/dev/null || fail "qemu-io write into $f failed"
    qemu-io -f raw -c "write -P 0x77 $((20 << 20)) 4096" -c "write -P 0x78 $((size - 8192)) 512" \
      -c "write -P 0x79 1048577 1000" "$T/expect.raw" >/dev/null || fail "qemu-io write into expect.raw failed"
    vt_compare_raw "$f" "$T/expect.raw" "$f after qemu-io writes (what qemu wrote)"
    "${VALIDATE[@]}" --type "$sub" --size "$size" "$f" >/dev/null \
      || fail "$f: spec validation failed after qemu-io writes"
    note "PASS vhdtool convert -t $sub, $size bytes"
    rm -f "$f" "$T/expect.raw"
  done
  [ "$size" = 67108864 ] || rm -f "$raw"
done

# ====================================================================== (c)
# A differencing child reads as its parent.
note "(c) differencing child"
base=$T/chain/base.vhd
child=$T/chain/child.vhd
mkdir -p "$T/chain"
"$VHDTOOL" convert -O vhd -t dynamic "$T/src-67108864.raw" "$base" || fail "vhdtool convert to $base failed"
"$VHDTOOL" create --parent "$base" "$child" || fail "vhdtool create --parent $base $child failed"
j=$(info_json "$child") || fail "vhdtool info --json $child failed"
[ "$(json_get type <<<"$j")" = differencing ] || fail "$child: type $(json_get type <<<"$j"), expected differencing"
[ "$(json_get virtual_size <<<"$j")" = 67108864 ] || fail "$child: virtual_size $(json_get virtual_size <<<"$j"), parent's is 67108864"
[ "$(json_get parent <<<"$j")" != null ] || fail "$child: parent null"
n=$(json_get chain <<<"$j" | "$PY" -c 'import json,sys; print(len(json.load(sys.stdin)))')
[ "$n" = 2 ] || fail "$child: chain of $n files, expected 2"
"${VALIDATE[@]}" --type differencing --size 67108864 "$child" || fail "$child: spec validation failed"
stream_same "$child" "$T/src-67108864.raw" "$child: vhdtool convert CHILD - differs from the parent's content"
vhdi_check "$child" 67108864 differencing

# The chain still resolves after moving both files together (relative locator).
mv "$T/chain" "$T/moved"
stream_same "$T/moved/child.vhd" "$T/src-67108864.raw" "child moved with its parent: content differs (relative parent locator not used?)"
mv "$T/moved" "$T/chain"

# Write into the child through libvhd (new blocks with partial sector
# bitmaps, a zero run over parent data, a block the parent lacks); the
# chain must then read as parent + writes through vhdtool and libvhdi, the
# parent unchanged.  These writes are 4 KiB-aligned: libvhdi 20210425 reads
# a VHD sector bitmap byte as "element = byte >> (7 - bit)" without "& 1",
# so in a byte whose high bit is set it takes the clear bits after it as
# present too (e.g. 0x80: sectors 1-7 read from the child, not the parent).
# With whole 8-sector runs every bitmap byte is 0x00 or 0xff and libvhdi
# reads correctly; the unaligned writes go into a second child below, read
# back through vhdtool only.
cp --sparse=always "$T/src-67108864.raw" "$T/child-expect.raw"
child_writes=(
  "0:4096:11"                   # over parent data
  "1048576:8192:12"             # over parent data, partly
  "2093056:8192:13"             # across a block boundary
  "$((40 << 20)):65536:14"      # a block the parent does not have
  "6291456:4096:z"              # zeros over parent data
  "$(( (64 << 20) - 4096 )):4096:15"
)
base_md5=$(md5_file "$base")
lib_pwrite "$child" "${child_writes[@]}" || fail "writing into $child through libvhd failed"
raw_pwrite "$T/child-expect.raw" "${child_writes[@]}"
[ "$(md5_file "$base")" = "$base_md5" ] || fail "writing into the child changed the parent $base"
"${VALIDATE[@]}" --type differencing --size 67108864 "$child" || fail "$child after writes: spec validation failed"
vt_compare_raw "$child" "$T/child-expect.raw" "$child after writes (parent + writes)"
vt_compare_raw "$base" "$T/src-67108864.raw" "$base after writes into its child"

# Unaligned writes: partial sectors, single sectors between parent data.
child2=$T/chain/child2.vhd
"$VHDTOOL" create --parent "$base" "$child2" || fail "vhdtool create --parent $base $child2 failed"
cp --sparse=always "$T/src-67108864.raw" "$T/child2-expect.raw"
child2_writes=(
  "0:512:21"
  "1048579:1000:22"
  "2097000:400:23"
  "$(( (40 << 20) + 1 )):3:24"
  "6291456:512:z"
  "$(( (64 << 20) - 512 )):512:25"
)
lib_pwrite "$child2" "${child2_writes[@]}" || fail "writing into $child2 through libvhd failed"
raw_pwrite "$T/child2-expect.raw" "${child2_writes[@]}"
[ "$(md5_file "$base")" = "$base_md5" ] || fail "writing into $child2 changed the parent $base"
"${VALIDATE[@]}" --type differencing --size 67108864 "$child2" || fail "$child2 after writes: spec validation failed"
vt_compare_raw "$child2" "$T/child2-expect.raw" "$child2 after unaligned writes (parent + writes)"

if ! command -v vhdimount >/dev/null 2>&1; then
  note "vhdimount missing: FUSE read of the chain not checked"
elif [ ! -c /dev/fuse ]; then
  note "/dev/fuse absent: FUSE read of the chain not checked"
else
  mnt=$T/mnt
  mkdir -p "$mnt"
  # First learn whether FUSE mounts work here at all, with the base image.
  if ! vhdimount "$base" "$mnt" > "$T/vhdimount.log" 2>&1; then
    note "vhdimount cannot mount here (no FUSE?): $(tail -1 "$T/vhdimount.log"); FUSE read not checked"
  else
    register_mount "$mnt"
    fuse_unmount "$mnt"
    vhdimount "$child" "$mnt" > "$T/vhdimount.log" 2>&1 \
      || fail "vhdimount $child failed (the base mounted): $(cat "$T/vhdimount.log")"
    # vhdimount exposes one node per layer, the base first: vhdi1 is the
    # parent, vhdi2 the child read through its chain.
    ls -la "$mnt"
    [ -e "$mnt/vhdi1" ] && [ -e "$mnt/vhdi2" ] \
      || fail "vhdimount $child: expected nodes vhdi1 (parent) and vhdi2 (child), got: $(ls "$mnt")"
    m1=$(md5_file "$mnt/vhdi2")
    m0=$(md5_file "$T/child-expect.raw")
    [ "$m1" = "$m0" ] || fail "vhdimount $child: vhdi2 (child) md5 $m1, expected (parent + child writes) $m0: $(first_diff "$mnt/vhdi2" "$T/child-expect.raw")"
    m2=$(md5_file "$mnt/vhdi1")
    m0=$(md5_file "$T/src-67108864.raw")
    [ "$m2" = "$m0" ] || fail "vhdimount $child: vhdi1 (the parent) md5 $m2, expected $m0"
    fuse_unmount "$mnt"
    note "PASS vhdimount reads the written child and its parent"
  fi
fi
note "PASS differencing child"
echo "test-qemu-vhd: all passed"
