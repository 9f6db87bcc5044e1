#!/bin/bash
# vhdfuse's command-line contract (DESIGN.md): --help on stdout with exit
# 0, --version naming the tool's and the library's versions, usage errors
# on stderr with exit 1, and failures before mounting (missing image,
# missing mount point, a bad -o option) exiting 1 with one message and
# leaving the image untouched.  Needs no FUSE mount.
#
#   B=build tests/tools/test-vhdfuse-cli.sh    (VHDFUSE overrides $B/vhdfuse)
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"

need_vhdtool
VHDFUSE=${VHDFUSE:-$B/vhdfuse}
[ -x "$VHDFUSE" ] || fail "vhdfuse not built: $VHDFUSE (run make)"
cd "$T"

# run ARG...: stdout in out, stderr in err, status in $rc.
run () {
  rc=0
  timeout 20 "$VHDFUSE" "$@" > out 2> err || rc=$?
}

expect () {
  local want=$1
  shift
  run "$@"
  [ "$rc" -eq "$want" ] \
    || fail "vhdfuse $*: exit $rc, expected $want; stderr: $(head -c 600 err)"
}

usage_err () {
  expect 1 "$@"
  [ ! -s out ] || fail "vhdfuse $*: a usage error wrote to stdout"
  [ -s err ] || fail "vhdfuse $*: a usage error printed no message"
}

note "--help and --version"
expect 0 --help
grep -q '^Usage: vhdfuse .*IMAGE MOUNTPOINT' out || fail "--help: no usage line"
for opt in -r -f -o --version; do
  grep -q -- "$opt" out || fail "--help does not mention $opt"
done
[ ! -s err ] || fail "--help wrote to stderr"
expect 0 --version
grep -q '^vhdfuse [0-9]' out || fail "--version: no vhdfuse version: $(cat out)"
grep -q '^libvhd [0-9]' out || fail "--version: no libvhd version: $(cat out)"
expect 0 -V
grep -q '^vhdfuse [0-9]' out || fail "-V: no version"

note "usage errors"
"$VHDTOOL" create img.vhd 4M
mkdir mnt
usage_err
usage_err img.vhd
usage_err img.vhd mnt extra
usage_err --no-such-option img.vhd mnt
usage_err -x img.vhd mnt
usage_err -o
grep -q "Try 'vhdfuse --help'" err || fail "usage error without a hint"

note "failures before mounting leave the image alone"
before=$(md5_file img.vhd)
stamp=$(stat -c %Y.%y img.vhd)
expect 1 "$T/missing.vhd" mnt
grep -q "^vhdfuse: .*missing.vhd: " err || fail "missing image: $(cat err)"
[ "$(wc -l < err)" -eq 1 ] || fail "missing image: not one line: $(cat err)"
expect 1 img.vhd "$T/no-such-dir"
grep -q "no-such-dir" err || fail "missing mount point: $(cat err)"
expect 1 -o no_such_fuse_option img.vhd mnt
grep -q "no_such_fuse_option" err || fail "bad -o: message does not name it"
[ "$(md5_file img.vhd)" = "$before" ] || fail "a failed start changed the image"
[ "$(stat -c %Y.%y img.vhd)" = "$stamp" ] \
  || fail "a failed start wrote to the image"
! mountpoint -q mnt || fail "a failed start left a mount"

note "not an image at all: a directory"
expect 1 mnt mnt
grep -q "^vhdfuse: mnt: " err || fail "directory as image: $(cat err)"

echo "PASS: $TEST_NAME"
