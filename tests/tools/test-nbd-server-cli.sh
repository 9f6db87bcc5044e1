#!/bin/bash
# vhd-nbd-server's command-line contract (DESIGN.md): --help on stdout with
# exit 0, --version with the tool's and the library's versions, usage
# errors on stderr with exit 1, an unopenable image as one error line with
# exit 1, and SIGINT/SIGTERM on an idle server as exit 0.
#
#   B=build tests/tools/test-nbd-server-cli.sh
. "$(dirname "$0")/../lib.sh"

need_vhdtool
NBDSRV=$B/vhd-nbd-server
[ -x "$NBDSRV" ] || fail "vhd-nbd-server not built: $NBDSRV (run make)"
cd "$T"

# run ARG...: stdout in out, stderr in err, status in $rc.
run () {
  rc=0
  timeout 10 "$NBDSRV" "$@" > out 2> err || rc=$?
}

usage_err () {
  run "$@"
  [ "$rc" -eq 1 ] || fail "vhd-nbd-server $*: exit $rc, expected 1"
  [ ! -s out ] || fail "vhd-nbd-server $*: usage error wrote to stdout"
  [ -s err ] || fail "vhd-nbd-server $*: usage error printed nothing"
}

note "--help and --version"
run --help
[ "$rc" -eq 0 ] || fail "--help: exit $rc"
grep -q '^Usage: vhd-nbd-server' out || fail "--help: no usage line"
grep -q -- '--export' out || fail "--help does not mention --export"
[ ! -s err ] || fail "--help wrote to stderr"
run -h
[ "$rc" -eq 0 ] || fail "-h: exit $rc"
run --version
[ "$rc" -eq 0 ] || fail "--version: exit $rc"
grep -q '^vhd-nbd-server [0-9]' out || fail "--version: $(cat out)"
grep -q '^libvhd [0-9]' out || fail "--version lacks the library version"

note "usage errors"
"$VHDTOOL" create a.vhd 1M
usage_err
usage_err --no-such-option a.vhd
usage_err a.vhd b.vhd
usage_err -x name
usage_err -k s.sock -p 10809 a.vhd
usage_err -k s.sock -b 127.0.0.1 a.vhd
usage_err -p 0 a.vhd
usage_err -p 70000 a.vhd
usage_err -p http a.vhd
usage_err --export noequals
usage_err --export a=
usage_err --export a=a.vhd --export a=a.vhd
usage_err -x a --export a=a.vhd a.vhd

note "images that cannot be opened"
run -k s.sock missing.vhd
[ "$rc" -eq 1 ] || fail "missing image: exit $rc"
grep -q '^vhd-nbd-server: missing.vhd: ' err \
  || fail "missing image: message: $(cat err)"
mkdir notasocket.d
run -k notasocket.d a.vhd
[ "$rc" -eq 1 ] || fail "-k on a directory: exit $rc"

note "SIGTERM and SIGINT on an idle server exit 0"
for sig in TERM INT; do
  "$NBDSRV" -k "$T/s.sock" a.vhd 2> err &
  pid=$!
  for _ in $(seq 100); do [ -S s.sock ] && break; sleep 0.05; done
  [ -S s.sock ] || fail "no socket"
  sleep 0.1
  kill -$sig $pid
  rc=0
  wait $pid || rc=$?
  [ "$rc" -eq 0 ] || fail "SIG$sig: exit $rc: $(cat err)"
  [ ! -e s.sock ] || fail "SIG$sig: socket left behind"
done

echo PASS
