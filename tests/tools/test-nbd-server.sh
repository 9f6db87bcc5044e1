#!/bin/bash
# vhd-nbd-server serving a dynamic VHD to real NBD clients:
#   nbdinfo   export flags, sizes, block sizes and contexts (--json, --can)
#   nbdsh     every command and its errors (tests/tools/nbd-commands.py,
#             run by nbdsh's Python module), structured and simple replies
#   nbdcopy   whole-disk copies in and out
#   qemu-img  convert into the server, compare against it
# then several connections at once, SIGTERM (exit 0, data flushed) and the
# image checked afterwards by vhdtool and by qemu-img's vpc driver; a raw
# export's trims and zeroes against its host allocation; and the same
# over TCP (IPv4 and, where the host has it, IPv6).
#
#   B=build tests/tools/test-nbd-server.sh
. "$(dirname "$0")/../lib.sh"

# shellcheck source=tests/tools/nbd-lib.sh
. "$(dirname "$0")/nbd-lib.sh"
cd "$T"
MiB=1048576

nbdsh () { "$PY" -m nbd "$@"; }

# jq_like JSONFILE PYEXPR WHAT: PYEXPR over d (the parsed JSON) is true.
jcheck () {
  "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if eval(sys.argv[2]) else 1)' \
    "$1" "$2" || fail "$3: $2 is false in $(cat "$1")"
}

# ------------------------------------------------------------ Unix socket
note "nbdinfo: flags, sizes and contexts of a writable VHD"
"$VHDTOOL" create a.vhd 64M
start_server "$URI" -k "$SOCK" a.vhd
nbdinfo --json "$URI" > info.json
jcheck info.json 'd["protocol"] == "newstyle-fixed" and d["structured"]' structured
e='d["exports"][0]'
jcheck info.json "$e[\"export-size\"] == 64 * $MiB" size
jcheck info.json "$e[\"export-name\"] == ''" "default export name"
jcheck info.json "not $e[\"is_read_only\"] and $e[\"can_multi_conn\"]" flags
jcheck info.json "all($e[k] for k in ('can_flush','can_fua','can_trim','can_zero','can_fast_zero','can_cache','can_df'))" flags
jcheck info.json "$e[\"block_size_minimum\"] == 512 and $e[\"block_size_preferred\"] >= 4096 and $e[\"block_size_maximum\"] == 32 * $MiB" "block sizes"
jcheck info.json "set($e[\"contexts\"]) >= {'base:allocation', 'qemu:allocation-depth'}" contexts
nbdinfo --can multi-conn "$URI" || fail "nbdinfo --can multi-conn"
nbdinfo --is read-only "$URI" && fail "nbdinfo --is read-only on a writable export"
nbdsh -u "$URI" -c 'assert h.get_size() == 64 * 2**20' -c 'assert h.can_fua()' \
  || fail "nbdsh one-liners"

note "nbdsh: every command, sparse reads, block status (fresh image)"
checks rw "$URI"
note "nbdsh: error replies (out of range, misaligned, oversized, bad flags)"
checks errors "$URI"
note "nbdsh: a client without structured replies"
checks simple "$URI"

note "nbdcopy in and out"
mkraw src.raw $((64 * MiB)) 0:$MiB:1 $((5 * MiB + 512)):1536:2 \
  $((33 * MiB)):$((3 * MiB)):3 $((63 * MiB)):$MiB:4
nbdcopy src.raw "$URI"
nbdcopy "$URI" out.raw
expect_same_file src.raw out.raw "nbdcopy in then out"
nbdcopy --flush src.raw "$URI"
nbdinfo --map "$URI" > map.txt
grep -q 'hole,zero' map.txt || fail "no holes in the map: $(cat map.txt)"

if command -v qemu-img > /dev/null; then
  note "qemu-img convert into the server, compare against it"
  cp src.raw src2.raw
  raw_pwrite src2.raw $((10 * MiB)):$((2 * MiB)):5 $((20 * MiB + 4096)):4096:6
  qemu-img convert -n -f raw -O raw src2.raw "$URI"
  qemu-img compare -f raw -F raw src2.raw "$URI" \
    || fail "qemu-img compare after qemu-img convert"
  qemu-img convert -f raw -O raw "$URI" out2.raw
  expect_same_file src2.raw out2.raw "qemu-img convert out of the server"
  cp src2.raw src.raw
fi

note "several connections at once (4 x 32 requests in flight)"
checks multi "$URI" 4
nbdcopy "$URI" served.raw
pids=()
for i in 1 2 3 4; do
  nbdcopy "$URI" "par$i.raw" & pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail "parallel nbdcopy failed"; done
for i in 1 2 3 4; do expect_same_file served.raw "par$i.raw" "parallel read $i"; done
nbdcopy --connections=4 --requests=16 "$URI" mc.raw
expect_same_file served.raw mc.raw "nbdcopy --connections=4"

note "SIGTERM: exit 0, data flushed, socket removed"
stop_server TERM
[ ! -e "$SOCK" ] || fail "socket left behind"
stream_same a.vhd served.raw "image after SIGTERM"
if command -v qemu-img > /dev/null; then
  qemu-img compare --image-opts "$(qemu_vpc_opts a.vhd)" \
    "driver=raw,file.filename=served.raw" \
    || fail "qemu-img (vpc) disagrees with what was served"
fi

note "SIGINT also exits 0 with data flushed"
start_server "$URI" -k "$SOCK" a.vhd
nbdcopy src.raw "$URI"               # no flush by the client
stop_server INT
stream_same a.vhd src.raw "image after SIGINT"

# A raw export: the file is the disk, so its allocation tells what a
# trim, a zero and a NO_HOLE zero did to the host's space.
note "raw export: trim frees space, NO_HOLE zero keeps it, fast zero works"
mkraw r.raw $((32 * MiB)) 0:$((32 * MiB)):7
cp r.raw r-want.raw
start_server "$URI" -k "$SOCK" r.raw
nbdsh -u "$URI" -c '
M = 2**20
h.trim(4 * M, 4 * M)                              # [4, 8) MiB
h.zero(16 * M, 8 * M, nbd.CMD_FLAG_NO_HOLE)       # [8, 24)
h.zero(M, 28 * M, nbd.CMD_FLAG_FAST_ZERO)         # [28, 29)
h.flush()
' || fail "nbdsh trim/zero on a raw export"
stop_server
dd if=/dev/zero of=r-want.raw bs=1M seek=4 count=20 conv=notrunc status=none
dd if=/dev/zero of=r-want.raw bs=1M seek=28 count=1 conv=notrunc status=none
expect_same_file r-want.raw r.raw "raw export after trim and zeroes"
used=$(( $(stat -c '%b * %B' r.raw) ))
# 32 MiB written; the trim (4 MiB) and the fast zero (1 MiB at 28 MiB,
# without NO_HOLE: it may punch) gave space back, the NO_HOLE zero not.
[ $used -le $((27 * MiB)) ] && [ $used -ge $((27 * MiB - 64 * 1024)) ] \
  || fail "raw export: $used bytes allocated after the trim and zeroes, want ~27 MiB"

# ------------------------------------------------------------ TCP
free_port () {
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

note "TCP on 127.0.0.1"
port=$(free_port)
start_server "nbd://127.0.0.1:$port" -b 127.0.0.1 -p "$port" a.vhd
nbdcopy "nbd://127.0.0.1:$port" tcp.raw
expect_same_file src.raw tcp.raw "read over TCP"
stop_server

if "$PY" -c 'import socket; s=socket.socket(socket.AF_INET6); s.bind(("::1", 0))' 2>/dev/null; then
  note "TCP on all addresses: IPv4 and IPv6"
  port=$(free_port)
  start_server "nbd://127.0.0.1:$port" -p "$port" -x disk a.vhd
  [ "$(nbdinfo --size "nbd://[::1]:$port/disk")" = $((64 * MiB)) ] \
    || fail "IPv6 client"
  [ "$(nbdinfo --size "nbd://127.0.0.1:$port/disk")" = $((64 * MiB)) ] \
    || fail "IPv4 client"
  checks errors "nbd://[::1]:$port/disk"
  stop_server
else
  note "no IPv6 on this host: IPv6 not tested"
fi

echo PASS
