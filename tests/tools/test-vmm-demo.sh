#!/bin/bash
# examples/vmm-demo: a VMM-style event loop on the asynchronous API.  It
# creates a dynamic VHDX, runs random 4 KiB reads and writes at queue
# depth 16, checks every read against a shadow copy, flushes, reopens and
# compares the whole disk; then again on the now populated image, with
# O_DIRECT, and at queue depth 1.  qemu-img check, when installed, must
# find the image clean.
#
#   B=build tests/tools/test-vmm-demo.sh
. "$(dirname "$0")/../lib.sh"

DEMO=$B/examples/vmm-demo
[ -x "$DEMO" ] || fail "not built: $DEMO (run make tests)"
cd "$T"

note "new image"
"$DEMO" -n 20000 disk.vhdx || fail "vmm-demo on a new image"
note "populated image, O_DIRECT"
"$DEMO" -n 20000 -D disk.vhdx || fail "vmm-demo -D"
note "queue depth 1"
"$DEMO" -n 2000 -q 1 disk.vhdx || fail "vmm-demo -q 1"
"$DEMO" -q 0 disk.vhdx 2>/dev/null && fail "vmm-demo -q 0 accepted"

if command -v qemu-img >/dev/null 2>&1; then
  note "qemu-img check"
  qemu-img check -q -f vhdx disk.vhdx || fail "qemu-img check"
fi
exit 0
