#!/bin/bash
# vhd-nbd-server against broken and hostile clients, and shutdown under
# load:
#   - tests/tools/nbd-hostile.py (raw sockets: garbage, short and malformed
#     handshakes, unknown options and commands, out-of-range and oversized
#     requests, clients vanishing mid-request or never reading replies)
#     while a well-behaved libnbd client works on the same export: the
#     server answers each as the protocol says, drops only that client,
#     and keeps serving the others;
#   - SIGTERM while a client has writes in flight: exit 0, and every write
#     the client saw acknowledged is in the image afterwards.
#
#   B=build tests/tools/test-nbd-server-hostile.sh
. "$(dirname "$0")/../lib.sh"

# shellcheck source=tests/tools/nbd-lib.sh
. "$(dirname "$0")/nbd-lib.sh"
cd "$T"
MiB=1048576

note "hostile clients, with a good client working alongside"
"$VHDTOOL" create a.vhd 64M
start_server "$URI" -k "$SOCK" a.vhd
checks multi "$URI" 2 &
good=$!
"$PY" "$ROOT/tests/tools/nbd-hostile.py" "$SOCK" $((64 * MiB)) > hostile.log 2>&1 \
  || fail "hostile client checks: $(tail -5 hostile.log)"
wait $good || fail "the good client failed while hostile clients ran"
kill -0 "$SRV" || fail "the server died"

note "the server still serves everyone"
checks errors "$URI"
mkraw src.raw $((64 * MiB)) 0:$MiB:1 $((20 * MiB)):$((5 * MiB)):2
nbdcopy src.raw "$URI"
nbdcopy "$URI" out.raw
expect_same_file src.raw out.raw "nbdcopy after the hostile clients"
grep -q 'bad request magic' server.log \
  || fail "protocol violations were not logged: $(cat server.log)"
stop_server
stream_same a.vhd src.raw "image after the hostile clients"

note "SIGTERM with writes in flight: everything acknowledged survives"
"$VHDTOOL" create b.vhd 64M
start_server "$URI" -k "$SOCK" b.vhd
"$PY" "$ROOT/tests/tools/nbd-commands.py" ack "$URI" acked.json > ack.log 2>&1 &
client=$!
for _ in $(seq 400); do
  grep -q started ack.log && break
  kill -0 $client 2>/dev/null || fail "writer died: $(cat ack.log)"
  sleep 0.05
done
grep -q started ack.log || fail "writer did not start: $(cat ack.log)"
stop_server
wait $client || fail "writer: $(cat ack.log)"
"$VHDTOOL" convert b.vhd b.raw
checks ack-verify b.raw acked.json
if command -v qemu-img > /dev/null; then
  qemu-img compare --image-opts "$(qemu_vpc_opts b.vhd)" \
    "driver=raw,file.filename=b.raw" || fail "qemu-img reads b.vhd differently"
fi

echo PASS
