#!/bin/bash
# `make demo`: the main job on a small built-in example.  Makes a raw disk
# with a text banner at 1 MiB, converts it into a 64 MiB dynamic VHD, shows
# the image and its allocation map, converts it back to raw and checks that
# the round trip is byte-identical.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${B:-build}
case $B in /*) ;; *) B=$ROOT/$B ;; esac
VHDTOOL=${VHDTOOL:-$B/vhdtool}
[ -x "$VHDTOOL" ] || { echo "demo: $VHDTOOL not built (run make)" >&2; exit 1; }

dir=$(mktemp -d "${TMPDIR:-/tmp}/vhd-demo.XXXXXX")
trap 'rm -rf "$dir"' EXIT

run () {
  echo "\$ ${*/#$VHDTOOL/vhdtool}"
  "$@"
}

cd "$dir"

# A 64 MiB raw disk: all holes except a banner at 1 MiB and a sector at 40 MiB.
truncate -s 64M example.raw
printf 'Hello from libvhd!  This banner lives at offset 1 MiB of the virtual disk.\n' \
  | dd of=example.raw bs=1M seek=1 conv=notrunc status=none
printf 'and this line at 40 MiB.\n' \
  | dd of=example.raw bs=1M seek=40 conv=notrunc status=none

echo "== raw disk -> 64 MiB dynamic VHD"
run "$VHDTOOL" convert -O vhd -t dynamic example.raw example.vhd
echo
echo "== the image"
run "$VHDTOOL" info example.vhd
echo
echo "== its allocation map (only the two blocks with data are stored)"
run "$VHDTOOL" map example.vhd
echo
echo "== file sizes: raw (apparent) vs VHD"
ls -l example.raw example.vhd | awk '{ print "  " $5 "\t" $NF }'
echo
echo "== back to raw, compared with the original"
run "$VHDTOOL" convert example.vhd roundtrip.raw
run cmp example.raw roundtrip.raw
echo "== the text on the disk, read from the VHD to standard output (zeros dropped)"
run "$VHDTOOL" convert example.vhd - | tr -d '\0'
echo "demo: OK"
