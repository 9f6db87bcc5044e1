# shellcheck shell=bash
# Helpers for the shell tests: source it from tests/*/test-*.sh.
#
#   . "$(dirname "$0")/../lib.sh"
#
# Gives: $ROOT (repo root), $B (build dir, absolute), $VHDTOOL (absolute),
# $T (a private temp dir removed on exit), $PY (a python3 for small helpers),
# and the functions below.  Exit status 77 means "skipped" to run-tests.sh.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
B=${B:-build}
case $B in /*) ;; *) B=$ROOT/$B ;; esac
VHDTOOL=${VHDTOOL:-$B/vhdtool}
case $VHDTOOL in /*) ;; *) VHDTOOL=$PWD/$VHDTOOL ;; esac
export B VHDTOOL

# Debian's python3 (python3-libnbd lives there); fall back to PATH.
if [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3; else PY=python3; fi

TEST_NAME=$(basename "$0" .sh)

# ---------------------------------------------------------------- outcome

# skip "reason": this test cannot run here (exit 77).
skip () {
  echo "SKIP: $*"
  exit 77
}

# fail "message": this test failed.
fail () {
  echo "FAIL: $TEST_NAME: $*" >&2
  exit 1
}

# note "message": progress line into the log.
note () {
  echo "== $*"
}

# need_cmd CMD...: skip unless every command is on PATH.
need_cmd () {
  local c
  for c in "$@"; do
    command -v "$c" >/dev/null 2>&1 || skip "$c not installed"
  done
}

# need_vhdtool: vhdtool is what is under test; its absence is a failure.
need_vhdtool () {
  [ -x "$VHDTOOL" ] || fail "vhdtool not built: $VHDTOOL (run make)"
}

# ---------------------------------------------------------------- temp dir

_mounts=()
_cleanup () {
  local rc=$? m
  for m in "${_mounts[@]+"${_mounts[@]}"}"; do
    fusermount3 -u "$m" 2>/dev/null || fusermount -u "$m" 2>/dev/null \
      || umount -l "$m" 2>/dev/null || true
  done
  if [ -n "${T:-}" ] && [ -d "$T" ]; then
    if [ -n "${KEEP_TMP:-}" ]; then
      echo "keeping $T" >&2
    else
      rm -rf "$T"
    fi
  fi
  exit $rc
}
T=$(mktemp -d "${TMPDIR:-/tmp}/vhdtest.$TEST_NAME.XXXXXX")
trap _cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# register_mount DIR: unmount DIR (FUSE) on exit.
register_mount () {
  _mounts+=("$1")
}

# fuse_unmount DIR
fuse_unmount () {
  fusermount3 -u "$1" 2>/dev/null || fusermount -u "$1" 2>/dev/null \
    || umount "$1"
}

# ---------------------------------------------------------------- helpers

# md5_raw IMAGE: md5 of the raw virtual disk as vhdtool reads it.
# Returns non-zero (with vhdtool's error on stderr) when vhdtool fails.
md5_raw () {
  local out
  out=$("$VHDTOOL" convert "$1" - | md5sum) || return 1
  echo "${out%% *}"
}

# md5_file FILE
md5_file () {
  local out
  out=$(md5sum < "$1") || return 1
  echo "${out%% *}"
}

# file_size FILE (apparent size in bytes)
file_size () {
  stat -c %s "$1"
}

# alloc_bytes FILE (bytes the host file system allocated)
alloc_bytes () {
  echo $(( $(stat -c %b "$1") * $(stat -c %B "$1") ))
}

# qemu_vpc_opts FILE: --image-opts string under which qemu-img reads a VHD
# at its footer's current size, as Hyper-V, libvhdi and we do.  qemu (< 10)
# sizes VHDs whose creator is not 'win '/'qem2' by their CHS geometry, which
# can be smaller than the disk.
qemu_vpc_opts () {
  echo "driver=vpc,force_size_calc=current_size,file.filename=$1"
}

# info_json FILE: vhdtool info --json FILE, validated as JSON.
info_json () {
  local out
  out=$("$VHDTOOL" info --json "$1") || return 1
  printf '%s' "$out" | "$PY" -c 'import json,sys; json.load(sys.stdin)' \
    || { echo "vhdtool info --json $1: not valid JSON: $out" >&2; return 1; }
  printf '%s\n' "$out"
}

# json_get KEY [KEY...] < JSON: print a value ("null" for None, JSON for
# lists and objects, the plain string otherwise).  Fails if a key is absent.
json_get () {
  "$PY" -c '
import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1:]:
    if isinstance(v, list):
        v = v[int(k)]
    else:
        if k not in v:
            sys.stderr.write("key %r missing\n" % k); sys.exit(1)
        v = v[k]
if v is None: print("null")
elif isinstance(v, bool): print("true" if v else "false")
elif isinstance(v, (dict, list)): print(json.dumps(v))
else: print(v)
' "$@"
}

# map_extents FILE: vhdtool map --json FILE, normalised to one extent a line:
# "START LENGTH TYPE DEPTH".  Accepts a list of extents or an object with
# an "extents" list; TYPE from "type" (or "state"), "data" or "zero".
map_extents () {
  local out
  out=$("$VHDTOOL" map --json "$1") || return 1
  printf '%s' "$out" | "$PY" -c '
import json, sys
v = json.load(sys.stdin)
if isinstance(v, dict):
    v = v.get("extents", v.get("map"))
for e in v:
    t = e.get("type", e.get("state"))
    if t is None:
        t = "zero" if e.get("zero") else "data"
    print(e["start"], e["length"], t, e.get("depth", 0))
' || { echo "vhdtool map --json $1: unexpected output: $out" >&2; return 1; }
}

# mkraw FILE SIZE [OFFSET:LENGTH:SEED]...: a sparse raw file of SIZE bytes,
# zero except for the listed regions, each filled with pseudo-random bytes
# from SEED (so misplaced data is always detected).  SEED "z" writes real
# zero bytes (allocated on disk, reads as zeros).
mkraw () {
  "$PY" - "$@" <<'PYEOF'
import random, sys
path, size = sys.argv[1], int(sys.argv[2])
with open(path, "wb") as f:
    f.truncate(size)
    for spec in sys.argv[3:]:
        off, length, seed = spec.split(":")
        off, length = int(off), int(length)
        if off + length > size:
            sys.exit("mkraw: region %s past the end" % spec)
        f.seek(off)
        if seed == "z":
            f.write(bytes(length))
        else:
            f.write(random.Random(int(seed)).randbytes(length))
PYEOF
}

# same_bytes A B: succeed when A and B (either may be "-", standard input)
# hold the same bytes; otherwise print where they first differ and fail.
# (cmp(1) reads sparse files 4 KiB at a time: ten seconds a GiB.)
same_bytes () {
  # The script comes from -c: standard input may be the data.
  "$PY" -c '
import sys
def op(p):
    return sys.stdin.buffer if p == "-" else open(p, "rb", buffering=0)
def readfull(f, n):
    out = []
    while n:
        b = f.read(n)
        if not b: break
        out.append(b); n -= len(b)
    return b"".join(out)
a, b = op(sys.argv[1]), op(sys.argv[2])
pos = 0
while True:
    x = readfull(a, 4 << 20); y = readfull(b, 4 << 20)
    if x != y:
        n = min(len(x), len(y))
        i = next((i for i in range(n) if x[i] != y[i]), n)
        if i == n:
            short = sys.argv[1] if len(x) < len(y) else sys.argv[2]
            sys.exit("%s ends first, at byte %d" % (short, pos + n))
        sys.exit("first difference at byte offset %d (0x%x): %02x vs %02x"
                 % (pos + i, pos + i, x[i], y[i]))
    if not x:
        break
    pos += len(x)
' "$1" "$2"
}

# first_diff A B: describe where two files first differ (for messages).
first_diff () {
  same_bytes "$1" "$2" 2>&1 | tail -1 || true
}

# expect_same_file A B WHAT: fail with the first differing byte.
expect_same_file () {
  local sa sb msg
  sa=$(file_size "$1"); sb=$(file_size "$2")
  [ "$sa" = "$sb" ] || fail "$3: sizes differ: $1 is $sa bytes, $2 is $sb bytes"
  msg=$(same_bytes "$1" "$2" 2>&1) || fail "$3: content differs: $msg"
}

# md5_count < DATA: prints "MD5 BYTECOUNT" of standard input.
md5_count () {
  "$PY" -c '
import hashlib, sys
h = hashlib.md5(); n = 0
r = sys.stdin.buffer
while True:
    b = r.read(1 << 20)
    if not b: break
    h.update(b); n += len(b)
print(h.hexdigest(), n)'
}

# py_libvhd ARGS...: run python with $B/libvhd.so loadable through ctypes.
# A sanitizer build (make check-asan) must have its runtime loaded first.
py_libvhd () {
  local preload
  preload=$(ldd "$B/libvhd.so" 2>/dev/null | awk '/lib(asan|ubsan)\.so/ { printf "%s ", $3 }')
  LD_PRELOAD="$preload" ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
    "$PY" "$@"
}

# lib_pwrite IMAGE OFFSET:LENGTH:SEED...: write pseudo-random regions (as
# mkraw makes them) into IMAGE through libvhd's vhd_pwrite, via ctypes on
# $B/libvhd.so: vhdtool has no write command, qemu no VHD differencing.
lib_pwrite () {
  py_libvhd - "$B/libvhd.so" "$@" <<'PYEOF'
import ctypes, random, sys
lib = ctypes.CDLL(sys.argv[1])
lib.vhd_open.restype = ctypes.c_void_p
lib.vhd_open.argtypes = [ctypes.c_char_p, ctypes.c_uint]
lib.vhd_pwrite.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint64]
lib.vhd_flush.argtypes = [ctypes.c_void_p]
lib.vhd_close.argtypes = [ctypes.c_void_p]
lib.vhd_get_error.restype = ctypes.c_char_p
d = lib.vhd_open(sys.argv[2].encode(), 0)
if not d:
    sys.exit("vhd_open %s: %s" % (sys.argv[2], lib.vhd_get_error().decode()))
for spec in sys.argv[3:]:
    off, length, seed = spec.split(":")
    off, length = int(off), int(length)
    buf = bytes(length) if seed == "z" else random.Random(int(seed)).randbytes(length)
    if lib.vhd_pwrite(d, buf, length, off) != 0:
        sys.exit("vhd_pwrite %s at %d: %s" % (sys.argv[2], off, lib.vhd_get_error().decode()))
if lib.vhd_flush(d) != 0:
    sys.exit("vhd_flush: %s" % lib.vhd_get_error().decode())
lib.vhd_close(d)
PYEOF
}

# raw_pwrite FILE OFFSET:LENGTH:SEED...: the same regions into a raw file.
raw_pwrite () {
  "$PY" - "$@" <<'PYEOF'
import random, sys
with open(sys.argv[1], "r+b") as f:
    for spec in sys.argv[2:]:
        off, length, seed = spec.split(":")
        off, length = int(off), int(length)
        f.seek(off)
        f.write(bytes(length) if seed == "z" else random.Random(int(seed)).randbytes(length))
PYEOF
}

# stream_same IMAGE RAW WHAT: `vhdtool convert IMAGE -` gives RAW's bytes.
stream_same () {
  local msg
  msg=$("$VHDTOOL" convert "$1" - | same_bytes - "$2" 2>&1) \
    || fail "$3: vhdtool convert $1 - differs from $2: ${msg:-vhdtool failed}"
}
