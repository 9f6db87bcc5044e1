#!/bin/bash
# raw <-> VHD conversions through vhdtool, checked against the raw source
# byte for byte, and against the VHD spec by tests/vhd-validate.py:
#  - raw -> dynamic VHD -> raw (to a file and to stdout) is identical;
#  - the dynamic VHD allocates exactly the blocks that hold non-zero data
#    (zero bytes written in the raw source stay unallocated), so its file is
#    much smaller than the raw;
#  - VHD -> raw output is sparse where the disk has holes;
#  - fixed VHD, other block sizes, raw -> raw, an all-zero disk.

# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"

need_vhdtool
VALIDATE=("$PY" "$ROOT/tests/vhd-validate.py")
MiB=$((1 << 20))

# blocks_for BLOCK_SIZE REGION...: comma-separated indices of the blocks
# that hold non-zero bytes of the mkraw regions (seed "z" is zeros).
blocks_for () {
  "$PY" - "$@" <<'PYEOF'
import sys
bs = int(sys.argv[1]); out = set()
for spec in sys.argv[2:]:
    off, length, seed = spec.split(":")
    off, length = int(off), int(length)
    if seed == "z" or length == 0:
        continue
    out.update(range(off // bs, (off + length - 1) // bs + 1))
print(",".join(str(b) for b in sorted(out)))
PYEOF
}

# check_map IMAGE BLOCK_SIZE BLOCKS REGION...: `vhdtool map --json` data
# extents cover every non-zero region and lie inside the allocated blocks.
check_map () {
  local img=$1 bs=$2 blocks=$3 ext msg
  shift 3
  ext=$(map_extents "$img") || fail "vhdtool map --json $img failed"
  msg=$("$PY" -c '
import sys
size, bs = int(sys.argv[1]), int(sys.argv[2])
blocks = set(int(x) for x in sys.argv[3].split(",") if x)
regions = [tuple(r.split(":")) for r in sys.argv[4:]]
pos = 0; data = []
for line in sys.stdin.read().splitlines():
    s, l, t, d = line.split()
    s, l = int(s), int(l)
    if s != pos: sys.exit("extents not contiguous at %d (next starts at %d)" % (pos, s))
    if t not in ("data", "zero"): sys.exit("extent type %r" % t)
    if t == "data": data.append((s, s + l))
    pos = s + l
if pos != size: sys.exit("extents end at %d, disk size %d" % (pos, size))
def covered(a, b):
    for s, e in data:
        if s <= a < e: a = e
        if a >= b: return True
    return a >= b
for off, length, seed in regions:
    off, length = int(off), int(length)
    if seed != "z" and not covered(off, off + length):
        sys.exit("non-zero region %d+%d not inside data extents %s" % (off, length, data))
for s, e in data:
    for b in range(s // bs, (e - 1) // bs + 1):
        if b not in blocks:
            sys.exit("data extent %d-%d lies in unallocated block %d" % (s, e, b))
' "$(file_size "$T/src.raw")" "$bs" "$blocks" "$@" <<<"$ext" 2>&1) \
    || fail "$img: map --json: $msg"
}

# --------------------------------------------------------------- the source
S=$((256 * MiB + 1024))     # not a multiple of the block size
regions=(
  "0:1000:1"
  "5242880:4096:2"
  "16777216:33554432:z"     # 32 MiB of written zero bytes
  "100663296:2097152:3"     # exactly block 48
  "134217727:2:4"           # straddles the block 63/64 boundary
  "$((S - 100)):100:5"      # the last, partial block
)
mkraw "$T/src.raw" "$S" "${regions[@]}"
blocks=$(blocks_for $((2 * MiB)) "${regions[@]}")
nblocks=$(tr ',' '\n' <<<"$blocks" | grep -c .)
note "source: $S bytes, non-zero data in 2 MiB blocks $blocks"

# --------------------------------------------------- raw -> dynamic -> raw
note "raw -> dynamic VHD"
dyn=$T/dyn.vhd
"$VHDTOOL" convert -O vhd -t dynamic "$T/src.raw" "$dyn" || fail "vhdtool convert -O vhd -t dynamic failed"
"${VALIDATE[@]}" --type dynamic --size "$S" --block-size $((2 * MiB)) --blocks "$blocks" "$dyn" \
  || fail "$dyn: spec validation / allocated blocks wrong"
fs=$(file_size "$dyn")
max=$(( nblocks * (2 * MiB + 512) + 4 * MiB ))
[ "$fs" -le "$max" ] || fail "$dyn: $fs bytes for $nblocks data blocks (expected <= $max)"
[ "$fs" -lt $((S / 8)) ] || fail "$dyn: $fs bytes, not much smaller than the $S-byte raw"
j=$(info_json "$dyn") || fail "vhdtool info --json $dyn failed"
ab=$(json_get allocated_bytes <<<"$j")
# Bytes of the virtual disk the allocated blocks hold (the last block is partial).
want=$("$PY" -c 'import sys; s, bs = int(sys.argv[1]), int(sys.argv[2]); print(sum(min(bs, s - int(b) * bs) for b in sys.argv[3].split(",") if b))' "$S" $((2 * MiB)) "$blocks")
[ "$ab" = "$want" ] || fail "$dyn: allocated_bytes $ab, expected $want ($nblocks blocks, the last one partial)"
[ "$(json_get virtual_size <<<"$j")" = "$S" ] || fail "$dyn: virtual_size $(json_get virtual_size <<<"$j"), expected $S"
check_map "$dyn" $((2 * MiB)) "$blocks" "${regions[@]}"

note "dynamic VHD -> raw (file, .img, stdout)"
"$VHDTOOL" convert "$dyn" "$T/back.raw" || fail "vhdtool convert $dyn back.raw failed"
expect_same_file "$T/back.raw" "$T/src.raw" "dynamic VHD -> raw file"
a=$(alloc_bytes "$T/back.raw")
[ "$a" -le $(( nblocks * 2 * MiB + MiB )) ] \
  || fail "back.raw: $a bytes allocated on disk for $nblocks blocks of data: raw output not sparse"
"$VHDTOOL" convert "$dyn" "$T/back.img" || fail "vhdtool convert $dyn back.img failed"
expect_same_file "$T/back.img" "$T/src.raw" "dynamic VHD -> .img (raw by extension)"
"$VHDTOOL" convert "$dyn" - > "$T/stdout.raw" || fail "vhdtool convert $dyn - failed"
expect_same_file "$T/stdout.raw" "$T/src.raw" "dynamic VHD -> stdout"
rm -f "$T/back.img" "$T/stdout.raw"
stream_same "$dyn" "$T/src.raw" "dynamic VHD -> stdout through a pipe differs"

# ------------------------------------------------------------ fixed VHDs
note "raw -> fixed VHD -> dynamic VHD -> raw"
fixed=$T/fixed.vhd
"$VHDTOOL" convert -O vhd -t fixed "$T/src.raw" "$fixed" || fail "vhdtool convert -O vhd -t fixed failed"
"${VALIDATE[@]}" --type fixed --size "$S" "$fixed" || fail "$fixed: spec validation failed"
msg=$(head -c "$S" "$fixed" | same_bytes - "$T/src.raw" 2>&1) || fail "$fixed: data area differs from the raw source: $msg"
stream_same "$fixed" "$T/src.raw" "$fixed -> stdout differs"
"$VHDTOOL" convert -O vhd -t dynamic "$fixed" "$T/dyn2.vhd" || fail "vhdtool convert fixed -> dynamic failed"
"${VALIDATE[@]}" --type dynamic --size "$S" --blocks "$blocks" "$T/dyn2.vhd" \
  || fail "fixed -> dynamic: allocated blocks wrong (zeros of the fixed disk must stay unallocated)"
stream_same "$T/dyn2.vhd" "$T/src.raw" "fixed -> dynamic -> stdout differs"
rm -f "$fixed" "$T/dyn2.vhd"

# -------------------------------------------------------- other block sizes
for bs in $((512 << 10)) $((16 * MiB)); do
  note "raw -> dynamic VHD, -b $bs"
  b2=$(blocks_for "$bs" "${regions[@]}")
  "$VHDTOOL" convert -O vhd -t dynamic -b "$bs" "$T/src.raw" "$T/bs.vhd" \
    || fail "vhdtool convert -b $bs failed"
  "${VALIDATE[@]}" --type dynamic --size "$S" --block-size "$bs" --blocks "$b2" "$T/bs.vhd" \
    || fail "-b $bs: spec validation / allocated blocks wrong"
  stream_same "$T/bs.vhd" "$T/src.raw" "-b $bs: content differs"
  if command -v qemu-img >/dev/null 2>&1; then
    out=$(qemu-img compare --image-opts "driver=raw,file.filename=$T/src.raw" \
          "$(qemu_vpc_opts "$T/bs.vhd")" 2>&1) || fail "-b $bs: qemu-img compare: $out"
  fi
  rm -f "$T/bs.vhd"
done

# ---------------------------------------------------------------- raw -> raw
note "raw -> raw"
"$VHDTOOL" convert "$T/src.raw" "$T/copy.raw" || fail "vhdtool convert raw -> raw failed"
expect_same_file "$T/copy.raw" "$T/src.raw" "raw -> raw"
a=$(alloc_bytes "$T/copy.raw")
[ "$a" -le $(( nblocks * 2 * MiB + MiB )) ] \
  || fail "raw -> raw: $a bytes allocated: the 32 MiB of zero bytes were written, not skipped"
rm -f "$T/copy.raw"

# ---------------------------------------------------------- all-zero disk
note "all-zero disk"
truncate -s $((64 * MiB)) "$T/zero.raw"
"$VHDTOOL" convert -O vhd "$T/zero.raw" "$T/zero.vhd" || fail "vhdtool convert zero.raw zero.vhd failed"
"${VALIDATE[@]}" --type dynamic --size $((64 * MiB)) --blocks "" "$T/zero.vhd" \
  || fail "all-zero raw -> VHD (default type dynamic) allocated blocks"
"$VHDTOOL" convert "$T/zero.vhd" "$T/zero2.raw" || fail "vhdtool convert zero.vhd zero2.raw failed"
[ "$(file_size "$T/zero2.raw")" = $((64 * MiB)) ] || fail "zero2.raw: size $(file_size "$T/zero2.raw")"
a=$(alloc_bytes "$T/zero2.raw")
[ "$a" -le 65536 ] || fail "all-zero VHD -> raw: $a bytes allocated, expected a hole"
msg=$(same_bytes "$T/zero2.raw" "$T/zero.raw" 2>&1) || fail "all-zero VHD -> raw: not all zero: $msg"

echo "test-raw-convert: all passed"
