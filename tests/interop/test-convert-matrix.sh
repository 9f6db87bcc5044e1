#!/bin/bash
# convert between every format and type, 512 <-> 4096 logical sectors
# included: raw -> A -> B -> raw must give back the original bytes, for
# every pair (A, B).  4096-byte-sector VHDX results are also read through
# libvhdi's vhdimount (qemu 7.2 cannot open them), an independent reader.
#
#   B=build tests/interop/test-convert-matrix.sh
. "$(dirname "$0")/../lib.sh"
need_vhdtool
cd "$T"

MiB=$((1024 * 1024))
SIZE=$((20 * MiB))
# Data at odd places: first sector, across a 1 MiB boundary, a whole
# 2 MiB block, the last sector; zeros written as data in between.
mkraw src.raw $SIZE 0:512:1 $((MiB - 700)):1500:2 $((4 * MiB)):$((2 * MiB)):3 \
  $((9 * MiB)):$((MiB)):z $((SIZE - 512)):512:4

# name: create-options for convert
kinds=(
  "vhd-dyn:-O vhd -t dynamic"
  "vhd-fixed:-O vhd -t fixed"
  "vhdx-dyn512:-O vhdx -t dynamic -b 1M --logical-sector 512"
  "vhdx-dyn4k:-O vhdx -t dynamic -b 2M --logical-sector 4096 --physical-sector 4096"
  "vhdx-fixed4k:-O vhdx -t fixed --logical-sector 4096"
  "raw:-O raw"
)

ext () { case $1 in vhd*) echo "${1%%-*}" ;; raw) echo img ;; esac; }

for a in "${kinds[@]}"; do
  an=${a%%:*}
  # shellcheck disable=SC2086
  "$VHDTOOL" convert ${a#*:} src.raw "A-$an.$(ext "$an")" \
    || fail "convert raw -> $an"
done

for a in "${kinds[@]}"; do
  an=${a%%:*}
  for b in "${kinds[@]}"; do
    bn=${b%%:*}
    out="B-$an-$bn.$(ext "$bn")"
    # shellcheck disable=SC2086
    "$VHDTOOL" convert ${b#*:} "A-$an.$(ext "$an")" "$out" \
      || fail "convert $an -> $bn"
    msg=$("$VHDTOOL" convert "$out" - | same_bytes src.raw - 2>&1) \
      || fail "$an -> $bn: $msg"
    rm -f "$out"
  done
  note "$an -> every kind: identical"
done

# The 4096-byte-sector images through an independent reader.
command -v vhdimount >/dev/null 2>&1 || skip "vhdimount not installed"
[ -e /dev/fuse ] || { note "no /dev/fuse: vhdimount part not run"; exit 0; }
for an in vhdx-dyn4k vhdx-fixed4k; do
  mkdir -p "mnt-$an"
  if ! vhdimount "A-$an.vhdx" "mnt-$an" >/dev/null 2>&1; then
    note "vhdimount could not mount here: $an not checked"
    continue
  fi
  register_mount "$T/mnt-$an"
  expect_same_file src.raw "mnt-$an/vhdi1" "vhdimount of $an"
  fuse_unmount "mnt-$an"
  note "$an through vhdimount: identical"
done
