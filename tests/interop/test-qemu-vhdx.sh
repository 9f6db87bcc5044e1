#!/bin/bash
# VHDX interoperability with qemu-img / qemu-io and libvhdi (vhdiinfo,
# vhdimount):
#  (a) VHDX images that qemu-img creates (dynamic and fixed, block sizes
#      1 MiB to 256 MiB, logs of 1 and 4 MiB) and qemu-io fills read back
#      through vhdtool byte-identical to qemu-img's own raw conversion;
#  (b) VHDX images that vhdtool creates or converts pass `qemu-img check`,
#      compare equal to their raw source in qemu-img, and vhdiinfo
#      describes them; qemu-io can write into them and vhdtool reads qemu's
#      blocks back (qemu 7.2 does not open 4096-byte logical sectors: those
#      are checked through libvhdi only);
#  (c) a differencing child made by `vhdtool create --parent` reads as its
#      parent through vhdtool and vhdimount.

. "$(dirname "$0")/../lib.sh"

need_vhdtool
need_cmd qemu-img qemu-io
cd "$T"

MiB=$((1024 * 1024))

# vt_raw IMAGE OUT: vhdtool's raw conversion through standard output.
vt_raw () {
  "$VHDTOOL" convert "$1" - > "$2" || fail "vhdtool convert $1 - failed"
}

qemu_io_write () { # IMAGE PATTERN OFFSET LENGTH
  qemu-io -f vhdx -c "write -P $2 $3 $4" "$1" >/dev/null \
    || fail "qemu-io write $2 $3 $4 into $1 failed"
}

vhdi_check () { # FILE SIZE TYPE
  command -v vhdiinfo >/dev/null 2>&1 || { note "vhdiinfo missing: not checked"; return 0; }
  local out
  out=$(vhdiinfo "$1" 2>&1) || fail "vhdiinfo $1 failed: $out"
  grep -q "Media size.*($2 bytes)" <<<"$out" \
    || fail "vhdiinfo $1: media size not $2: $(grep 'Media size' <<<"$out")"
  grep -qi "Disk type.*: *$3" <<<"$out" \
    || fail "vhdiinfo $1: disk type not $3: $(grep 'Disk type' <<<"$out")"
}

# ------------------------------------------------------------ (a) qemu -> us
note "(a) qemu-img created, qemu-io written"
size=$((72 * MiB + 512 * 3))   # not a multiple of any block size
for sub in dynamic fixed; do
  for bs in 1M 2M 8M 32M 256M; do
    for log in 1M 4M; do
      img=q-$sub-$bs-$log.vhdx
      qemu-img create -q -f vhdx -o subformat=$sub,block_size=$bs,log_size=$log \
        "$img" "$size" || fail "qemu-img create $img failed"
      qemu_io_write "$img" 0x11 0 4096
      qemu_io_write "$img" 0x22 $((MiB - 512)) 1024          # across 1 MiB
      qemu_io_write "$img" 0x33 $((2 * MiB - 4096)) $((2 * MiB + 8192))
      qemu_io_write "$img" 0x44 $((40 * MiB + 512)) 512
      qemu_io_write "$img" 0x55 $((size - 1536)) 1536         # the tail
      qemu-img convert -O raw "$img" qemu.raw || fail "qemu-img convert $img"
      vt_raw "$img" ours.raw
      expect_same_file qemu.raw ours.raw "$img: vhdtool vs qemu-img raw"
      j=$(info_json "$img") || fail "info $img"
      [ "$(json_get virtual_size <<<"$j")" = "$size" ] || fail "$img: size"
      [ "$(json_get format <<<"$j")" = vhdx ] || fail "$img: format"
      rm -f "$img" qemu.raw ours.raw
    done
  done
done

# ------------------------------------------------------------ (b) us -> qemu
note "(b) vhdtool created and converted"
mkraw src.raw $((100 * MiB)) 0:4096:1 $((MiB - 100)):300:2 \
  $((33 * MiB)):$((3 * MiB)):3 $((99 * MiB)):$MiB:4 $((50 * MiB)):8192:z
for spec in "dynamic 0 512 512" "dynamic 1M 512 4096" "dynamic 8M 4096 4096" \
            "fixed 2M 512 512" "fixed 0 4096 512" "dynamic 256M 512 512"; do
  set -- $spec
  img=v-$1-$2-$3-$4.vhdx
  args=(-O vhdx -t "$1" --logical-sector "$3" --physical-sector "$4")
  [ "$2" = 0 ] || args+=(-b "$2")
  "$VHDTOOL" convert "${args[@]}" src.raw "$img" || fail "vhdtool convert to $img"
  vt_raw "$img" ours.raw
  expect_same_file src.raw ours.raw "$img: read back"
  vhdi_check "$img" $((100 * MiB)) "$1"
  if [ "$3" = 512 ]; then
    out=$(qemu-img check "$img" 2>&1) || fail "qemu-img check $img: $out"
    out=$(qemu-img compare -f raw -F vhdx src.raw "$img" 2>&1) \
      || fail "qemu-img compare $img: $out"
    # qemu writes into our image (a new block and an allocated one)
    qemu_io_write "$img" 0x5a $((70 * MiB)) 4096
    qemu_io_write "$img" 0xa5 4096 4096
    qemu-img convert -O raw "$img" qemu.raw || fail "qemu-img convert $img"
    vt_raw "$img" ours.raw
    expect_same_file qemu.raw ours.raw "$img: after qemu-io writes"
    rm -f qemu.raw
  fi
  rm -f "$img" ours.raw
done

note "(b) an empty image"
"$VHDTOOL" create -f vhdx empty.vhdx 1G || fail "vhdtool create empty.vhdx"
out=$(qemu-img check empty.vhdx 2>&1) || fail "qemu-img check empty.vhdx: $out"
qemu-img compare -f raw -F vhdx <(true) empty.vhdx >/dev/null 2>&1 || true
vhdi_check empty.vhdx $((1024 * MiB)) dynamic
[ "$(file_size empty.vhdx)" -le $((8 * MiB)) ] \
  || fail "empty.vhdx is $(file_size empty.vhdx) bytes"

# ------------------------------------------------------------ (c) differencing
note "(c) differencing child of a vhdtool VHDX parent"
"$VHDTOOL" convert -O vhdx src.raw parent.vhdx || fail "convert parent"
"$VHDTOOL" create --parent parent.vhdx child.vhdx || fail "create child"
j=$(info_json child.vhdx) || fail "info child"
[ "$(json_get type <<<"$j")" = differencing ] || fail "child type: $j"
vt_raw child.vhdx ours.raw
expect_same_file src.raw ours.raw "child.vhdx reads as its parent"
vhdi_check child.vhdx $((100 * MiB)) differential
if command -v vhdimount >/dev/null 2>&1 && [ -e /dev/fuse ]; then
  mkdir mnt
  if vhdimount child.vhdx mnt >/dev/null 2>&1; then
    register_mount "$T/mnt"
    # libvhdi numbers the chain from the base: the last node is the child
    node=$(ls mnt | sort -V | tail -1)
    expect_same_file src.raw "mnt/$node" "vhdimount of child.vhdx"
    fuse_unmount "$T/mnt"
  else
    note "vhdimount could not mount (no FUSE here?): not checked"
  fi
fi
echo "PASS"
