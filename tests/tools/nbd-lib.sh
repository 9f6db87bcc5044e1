# shellcheck shell=bash
# Server control shared by the test-nbd-server*.sh scripts; source it after
# tests/lib.sh.  Gives $NBDSRV, $SOCK, $URI, start_server, stop_server and
# checks (tests/tools/nbd-commands.py), and kills every server it started
# on exit.
need_vhdtool
NBDSRV=$B/vhd-nbd-server
[ -x "$NBDSRV" ] || fail "vhd-nbd-server not built: $NBDSRV (run make)"
need_cmd nbdinfo nbdcopy
"$PY" -c 'import nbd' 2>/dev/null || skip "python3-libnbd (nbdsh) not installed"

SRV_PIDS=()
_srv_cleanup () {
  local rc=$? p
  for p in "${SRV_PIDS[@]+"${SRV_PIDS[@]}"}"; do kill -9 "$p" 2>/dev/null || true; done
  (exit $rc); _cleanup
}
trap _srv_cleanup EXIT

# start_server URI ARG...: start vhd-nbd-server ARG... ($SRV is its pid)
# and wait until URI answers.
start_server () {
  local uri=$1 i
  shift
  "$NBDSRV" "$@" 2>> server.log &
  SRV=$!
  SRV_PIDS+=("$SRV")
  for i in $(seq 200); do
    nbdinfo --list "$uri" > /dev/null 2>&1 && return 0
    kill -0 "$SRV" 2>/dev/null || fail "server exited: $(tail -3 server.log)"
    sleep 0.05
  done
  fail "server not answering on $uri"
}

# stop_server [SIGNAL]: the server must exit 0 within 20 seconds.
stop_server () {
  local rc=0 i
  kill -"${1:-TERM}" "$SRV"
  for i in $(seq 200); do kill -0 "$SRV" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$SRV" 2>/dev/null && { kill -9 "$SRV"; fail "server hung on exit"; }
  wait "$SRV" || rc=$?
  [ "$rc" -eq 0 ] || fail "server exit status $rc: $(tail -5 server.log)"
}

# checks NAME ARG...: one scenario of nbd-commands.py.
checks () {
  "$PY" "$ROOT/tests/tools/nbd-commands.py" "$@" \
    || fail "nbd-commands.py $1 failed"
}

SOCK=$T/s.sock
URI="nbd+unix:///?socket=$SOCK"
