#!/bin/bash
# vhd-nbd-server --aio=native (reads and writes through the library's
# libaio API, completions on their own thread), with and without
# --cache=none (O_DIRECT), on a dynamic VHDX and a dynamic VHD:
#   nbdsh     every command and its errors (tests/tools/nbd-commands.py)
#   nbdcopy   whole-disk copies in and out, several connections at once
#   /proc     --cache=none really opens the image with O_DIRECT
# then SIGTERM (exit 0, every acknowledged write in the image, checked by
# vhdtool and qemu-img) and the option errors.
#
#   B=build tests/tools/test-nbd-server-aio.sh
. "$(dirname "$0")/../lib.sh"

# shellcheck source=tests/tools/nbd-lib.sh
. "$(dirname "$0")/nbd-lib.sh"
cd "$T"
MiB=1048576

# has_direct_fd PID FILE: PID holds FILE open with O_DIRECT (040000).
has_direct_fd () {
  local fd flags
  for fd in /proc/"$1"/fd/*; do
    [ "$(readlink "$fd")" = "$(readlink -f "$2")" ] || continue
    flags=$(awk '/^flags:/ {print $2}' /proc/"$1"/fdinfo/"${fd##*/}")
    (( 8#$flags & 8#040000 )) && return 0
  done
  return 1
}

mkraw src.raw $((64 * MiB)) 0:$MiB:1 $((5 * MiB + 512)):1536:2 \
  $((33 * MiB)):$((3 * MiB)):3 $((63 * MiB)):$MiB:4

for fmt in vhdx vhd; do
  for mode in "--aio=native" "--cache=none"; do
    note "$fmt, $mode: every command, errors, simple replies"
    rm -f a.$fmt
    "$VHDTOOL" create a.$fmt 64M
    # shellcheck disable=SC2086
    start_server "$URI" -k "$SOCK" $mode a.$fmt
    checks rw "$URI"
    checks errors "$URI"
    checks simple "$URI"

    note "$fmt, $mode: nbdcopy in and out, 4 connections"
    nbdcopy src.raw "$URI"
    nbdcopy "$URI" out.raw
    expect_same_file src.raw out.raw "nbdcopy in then out"
    checks multi "$URI" 4
    nbdcopy "$URI" served.raw
    nbdcopy --connections=4 --requests=16 "$URI" mc.raw
    expect_same_file served.raw mc.raw "nbdcopy --connections=4"
    if [[ $mode == *cache=none* ]]; then
      has_direct_fd "$SRV" a.$fmt || fail "--cache=none: no O_DIRECT descriptor of a.$fmt"
    fi

    note "$fmt, $mode: SIGTERM, then the image holds what was served"
    stop_server TERM
    stream_same a.$fmt served.raw "image after SIGTERM"
    rc=0; "$VHDTOOL" check a.$fmt > check.txt || rc=$?
    # 3: only space left unused (trimmed blocks), which is no damage
    [ $rc -eq 0 ] || [ $rc -eq 3 ] || fail "vhdtool check ($rc): $(cat check.txt)"
    if command -v qemu-img > /dev/null; then
      if [ $fmt = vhd ]; then
        qemu-img compare --image-opts "$(qemu_vpc_opts a.vhd)" \
          "driver=raw,file.filename=served.raw" \
          || fail "qemu-img (vpc) disagrees with what was served"
      else
        qemu-img compare -f vhdx -F raw a.vhdx served.raw \
          || fail "qemu-img (vhdx) disagrees with what was served"
      fi
    fi
  done
done

note "--cache=none --aio=native, read-only, a populated image"
"$VHDTOOL" convert -O vhdx src.raw b.vhdx
start_server "$URI" -k "$SOCK" --cache=none --aio=native -r b.vhdx
nbdcopy "$URI" ro.raw
expect_same_file src.raw ro.raw "read-only --cache=none copy"
nbdinfo --map "$URI" > map.txt
grep -q 'zero' map.txt || fail "no zero ranges in the map: $(cat map.txt)"
stop_server

note "option errors"
for bad in --aio=posix --cache=writethrough --aio= "--cache=none --aio=threads"; do
  # shellcheck disable=SC2086
  "$NBDSRV" -k "$SOCK" $bad b.vhdx > out.txt 2> err.txt && fail "$bad accepted"
  [ $? -eq 1 ] || fail "$bad: exit status not 1"
  grep -q "^vhd-nbd-server: " err.txt || fail "$bad: $(cat err.txt)"
done
"$NBDSRV" --help | grep -q -- '--cache=writeback|none' || fail "--help lacks --cache"
"$NBDSRV" --help | grep -q -- '--aio=threads|native' || fail "--help lacks --aio"

echo PASS
