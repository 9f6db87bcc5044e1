#!/bin/sh
# make-seeds.sh: generate the fuzzers' seed inputs (run by `make fuzz-seeds`
# and `make check-fuzz`; nothing generated here is committed).
#
#   tests/fuzz/make-seeds.sh OUTDIR VHDTOOL SEED_TOOL
#
# Makes small images with vhdtool, qemu-img/qemu-io (when installed) and
# seed-tool (data in differencing disks, a VHDX with a log to replay),
# then lays them out per target:
#   OUTDIR/fuzz-open-read/, fuzz-open-write/   images up to 100 KiB as
#       they are, and every image in sparse form (NAME.sparse: its non-zero
#       sectors; a VHDX is 4-6 MiB, its minimum being three 1 MiB areas)
#   OUTDIR/fuzz-vhd-footer/       the first 16 KiB of each VHD (footer
#       copy, dynamic header, locator data) and each trailing footer
#   OUTDIR/fuzz-vhdx-structures/  headers, region table, metadata,
#       parent locator, log and BAT of each VHDX, each behind its
#       selector byte (see fuzz-vhdx-structures.c)
#   OUTDIR/fuzz-nbd-server/       client byte streams (a control byte,
#       then handshake options and requests; see fuzz-nbd-server.c)
set -eu

out=$1 vhdtool=$2 seedtool=$3
work=$out/images
rm -rf "$out"
mkdir -p "$work" "$out/fuzz-open-read" "$out/fuzz-open-write" \
  "$out/fuzz-vhd-footer" "$out/fuzz-vhdx-structures" "$out/fuzz-nbd-server"

have () { command -v "$1" >/dev/null 2>&1; }

# A raw disk with a few patterned ranges and holes between them.
raw=$work/pattern.raw
: >"$raw"
truncate -s 4M "$raw"
for spec in 0:8 1032:3 2048:16 4090:6; do   # KiB offset:KiB length
  off=${spec%:*} len=${spec#*:}
  awk -v n=$((len * 1024)) -v s="$off" 'BEGIN {
    for (i = 0; i < n; i++) printf "%c", 33 + (i * 7 + s) % 90 }' |
    dd of="$raw" bs=1024 seek="$off" conv=notrunc status=none
done
small=$work/small.raw
head -c 65536 "$raw" >"$small"

vt () { "$vhdtool" "$@" >/dev/null; }

# --- VHD -------------------------------------------------------------------
# vhdtool makes blocks of 512 KiB and up; seed-tool make-vhd smaller ones,
# so that images of several blocks stay a few KiB.
st () { "$seedtool" "$@"; }
vt create -f vhd -t fixed "$work/fixed-empty.vhd" 64K
vt convert -O vhd -t fixed "$small" "$work/fixed-data.vhd"
vt convert -O vhd -t dynamic -b 512K "$small" "$work/dyn-data.vhd"
vt create -f vhd -b 512K "$work/dyn-empty.vhd" 3M
vt create -f vhd -b 512K --parent "$work/dyn-data.vhd" "$work/diff.vhd"
st write "$work/diff.vhd" 1536 2048 7
st make-vhd "$work/small-dyn.vhd" 65536 4096
st write "$work/small-dyn.vhd" 4096 6000 1
st write "$work/small-dyn.vhd" 40960 512 2
st make-vhd "$work/small-512.vhd" 8192 512
st write "$work/small-512.vhd" 1024 1024 3
st make-vhd "$work/small-base.vhd" 65536 4096
st write "$work/small-base.vhd" 0 16384 4
st make-vhd "$work/small-diff.vhd" 65536 4096 "$work/small-base.vhd"
st write "$work/small-diff.vhd" 1536 2048 7
st write "$work/small-diff.vhd" 40960 512 9
st make-vhd "$work/small-diff-empty.vhd" 65536 8192 "$work/small-base.vhd"
if have qemu-img; then
  qemu-img create -q -f vpc "$work/qemu-dyn.vhd" 1M
  qemu-img create -q -f vpc -o subformat=fixed "$work/qemu-fixed.vhd" 32K
  if have qemu-io; then
    qemu-io -f vpc -c 'write -P 0x5a 4096 4096' "$work/qemu-dyn.vhd" \
      >/dev/null
  fi
fi

# --- VHDX ------------------------------------------------------------------
vt create -f vhdx -b 1M "$work/vhdx-empty.vhdx" 4M
head -c 2097152 "$raw" >"$work/two-mib.raw"
vt convert -O vhdx -t dynamic -b 1M "$work/two-mib.raw" "$work/vhdx-data.vhdx"
vt create -f vhdx -t fixed -b 1M "$work/vhdx-fixed.vhdx" 1M
vt create -f vhdx -b 1M --logical-sector 4096 --physical-sector 4096 \
  "$work/vhdx-4k.vhdx" 2M
vt create -f vhdx -b 1M "$work/vhdx-base.vhdx" 4M
"$seedtool" write "$work/vhdx-base.vhdx" 0 8192 3
vt create -f vhdx -b 1M --parent "$work/vhdx-base.vhdx" "$work/vhdx-diff.vhdx"
"$seedtool" write "$work/vhdx-diff.vhdx" 1049088 1536 5
"$seedtool" dirty-vhdx "$work/vhdx-empty.vhdx" "$work/vhdx-dirty.vhdx"
if have qemu-img; then
  qemu-img create -q -f vhdx -o block_size=1M,log_size=1M \
    "$work/qemu.vhdx" 4M
  if have qemu-io; then
    qemu-io -f vhdx -c 'write -P 0xa5 1M 64k' "$work/qemu.vhdx" >/dev/null
  fi
  # qemu leaves the file longer than its last block: drop trailing zeros
  # (whole MiB) so the seed stays under the fuzzers' max_len.
  size=$(stat -c %s "$work/qemu.vhdx")
  while [ "$size" -gt 4194304 ] &&
        ! tail -c +$((size - 1048575)) "$work/qemu.vhdx" | head -c 1048576 |
          tr -d '\000' | grep -q .; do
    size=$((size - 1048576))
    truncate -s "$size" "$work/qemu.vhdx"
  done
fi

# --- per target ------------------------------------------------------------
# Images as they are when small, and every one in sparse form (non-zero
# sectors only, see fuzz-common.h): a VHDX is 4-6 MiB, mostly zeros.
for f in "$work"/*.vhd "$work"/*.vhdx; do
  [ -f "$f" ] || continue
  name=$(basename "$f")
  st sparse "$f" "$out/fuzz-open-read/$name.sparse"
  cp "$out/fuzz-open-read/$name.sparse" "$out/fuzz-open-write/"
  if [ "$(stat -c %s "$f")" -le 102400 ]; then
    cp "$f" "$out/fuzz-open-read/$name"
    cp "$f" "$out/fuzz-open-write/$name"
  fi
done
for f in "$work"/*.vhd; do
  [ -f "$f" ] || continue
  name=$(basename "$f" .vhd)
  case $name in
  *fixed*) ;;    # data at the start, not a header
  *) head -c 16384 "$f" >"$out/fuzz-vhd-footer/$name-head" ;;
  esac
  tail -c 512 "$f" >"$out/fuzz-vhd-footer/$name-footer"
done
for f in "$work"/*.vhdx; do
  [ -f "$f" ] || continue
  "$seedtool" extract-vhdx "$f" \
    "$out/fuzz-vhdx-structures/$(basename "$f" .vhdx)"
done

# --- NBD client streams ----------------------------------------------------
# Big-endian integers and the protocol's pieces, as bytes on stdout.
byte () { printf "\\$(printf %03o "$1")"; }
be16 () { byte $(($1 >> 8 & 255)); byte $(($1 & 255)); }
be32 () { be16 $(($1 >> 16 & 65535)); be16 $(($1 & 65535)); }
be64 () { be32 $(($1 >> 32 & 4294967295)); be32 $(($1 & 4294967295)); }
# opt OPTION then the data's length and the data on stdin
opt () { printf IHAVEOPT; be32 "$1"; be32 "$2"; }
go () { opt 7 8; be32 0; be16 1; be16 3; }        # "" + NBD_INFO_BLOCK_SIZE
structured () { opt 8 0; }
meta () {                                         # SET (10) or LIST (9)
  opt "$1" $((4 + 4 + 4 + ${#2})); be32 0; be32 1; be32 ${#2}; printf %s "$2"
}
# req TYPE FLAGS OFFSET COUNT
req () { be32 627086611; be16 "$2"; be16 "$1"; be64 7; be64 "$3"; be32 "$4"; }
payload () { head -c "$1" /dev/zero | tr '\000' "$2"; }
requests () {
  req 1 0 4096 512; payload 512 x                 # WRITE
  req 1 1 0 1024; payload 1024 y                  # WRITE, FUA
  req 0 0 0 8192                                  # READ
  req 0 4 0 65536                                 # READ, DF
  req 7 0 0 1048576                               # BLOCK_STATUS
  req 7 8 4096 8192                               # BLOCK_STATUS, REQ_ONE
  req 6 0 8192 4096                               # WRITE_ZEROES
  req 6 16 0 524288                               # WRITE_ZEROES, FAST_ZERO
  req 4 0 524288 524288                           # TRIM
  req 5 0 0 4096                                  # CACHE
  req 3 0 0 0                                     # FLUSH
  req 0 0 1048064 1024                            # READ past the end
  req 2 0 0 0                                     # DISC
}
n=$out/fuzz-nbd-server
{ byte 0; be32 3; go; requests; } >"$n/go-simple"
{ byte 0; be32 3; structured; meta 10 base:allocation; go; requests; } \
  >"$n/go-structured-meta"
{ byte 0; be32 1; structured; meta 10 qemu:allocation-depth; go; requests; } \
  >"$n/go-depth-zeroes"
{ byte 1; be32 3; structured; go; requests; } >"$n/readonly"
{ byte 0; be32 3; opt 3 0; meta 9 base:; opt 6 8; be32 0; be16 1; be16 0
  opt 99 0; opt 2 0; } >"$n/list-info-unknown-abort"
{ byte 0; be32 0; opt 1 0; requests; } >"$n/oldstyle-export-name"

rm -rf "$work"
for t in fuzz-open-read fuzz-vhd-footer fuzz-vhdx-structures \
         fuzz-nbd-server; do
  echo "make-seeds: $t: $(ls "$out/$t" | wc -l) seeds," \
    "$(du -sk "$out/$t" | cut -f1) KiB"
done
