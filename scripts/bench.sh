#!/usr/bin/env bash
# `make bench`: libvhd's tools side by side with the peers (qemu-img, qemu-nbd,
# nbdkit, vhdimount) on the same machine, the same data and in one run, through
# the shared workloads of ../shared/bench/peerbench.sh (one timing and
# verification path for both sides).  Minutes; never part of `make check`.
#
# For every row the peer and ours run back to back, BENCH_RUNS times,
# alternating peer/ours; scripts/bench-table.py takes the medians.
#
#   convert  raw->vhd raw->vhdx vhdx->raw vhd->vhdx: vhdtool vs qemu-img
#            (time = wall + fsync of the output, so both pay for durability)
#   nbd      vhd-nbd-server vs qemu-nbd on vhdx and on vhd, plus nbdkit's file
#            plugin on raw as the allocated-data read reference
#   fuse     vhdfuse vs vhdimount on vhdx
#
# Output: build/bench/results.tsv (peerbench's raw TSV, plus "# bench"/"# pair"
# comment lines that describe the run), build/bench/table.md (markdown table,
# also printed).  Regenerate the table alone with
#   scripts/bench-table.py build/bench/results.tsv
#
# Environment:
#   BENCH_RUNS [3]        runs per row (medians over them)
#   BENCH_ONLY [all]      convert, nbd or fuse (comma/space separated list)
#   QUICK=1               shorter fio runs (passed to peerbench)
#   BENCH_NBD_DIRECT=1    nbd also: vhd-nbd-server --cache=none vs qemu-nbd
#                         --cache=none --aio=native on vhdx
#   BENCH_DATA            data directory [${TMPDIR:-/var/tmp}/libvhd-bench.UID.HASH]
#                         (~3.3 GiB allocated: 4 GiB sparse raw + vhd + vhdx + work files)
#   PEERBENCH             path of peerbench.sh [../shared/bench/peerbench.sh]
#   B [build]             build directory: tools, and build/bench for the output
#   BENCH_BIN [$B]        take vhdtool, vhd-nbd-server and vhdfuse from this directory
# Exit status: 0, or 1 when one of OUR rows failed (verify=FAIL, tool error,
# server/mount failure); peer failures are only reported.
set -u -o pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
B=${B:-build}
case $B in /*) ;; *) B=$ROOT/$B ;; esac

PB=${PEERBENCH:-$ROOT/../shared/bench/peerbench.sh}
if [ ! -f "$PB" ]; then
  echo "bench: $PB not found: the benchmarks need the shared peer workloads" \
       "(../shared/bench); nothing to do." >&2
  exit 0
fi

RUNS=${BENCH_RUNS:-3}
case $RUNS in ''|*[!0-9]*|0) echo "bench: BENCH_RUNS must be a positive integer" >&2; exit 2;; esac
ONLY=${BENCH_ONLY:-convert nbd fuse}
ONLY=" ${ONLY//,/ } "
for s in $ONLY; do
  case $s in convert|nbd|fuse) ;; *) echo "bench: BENCH_ONLY: unknown suite '$s' (convert, nbd, fuse)" >&2; exit 2;; esac
done
want() { [[ $ONLY == *" $1 "* ]]; }

TOOLS=${BENCH_BIN:-$B}
for t in vhdtool vhd-nbd-server vhdfuse; do
  [ -x "$TOOLS/$t" ] || { echo "bench: $TOOLS/$t not built (run make)" >&2; exit 1; }
done

# Our own data directory: peerbench's NBD socket lives in it, so sharing it
# with another run (another checkout, or the peers-only runs) would collide.
hash=$(printf '%s' "$ROOT" | cksum | cut -d' ' -f1)
export DATA=${BENCH_DATA:-${TMPDIR:-/var/tmp}/libvhd-bench.$(id -u).$hash}
mkdir -p "$DATA"
exec 9>"$DATA/.bench.lock"
if ! flock -n 9; then
  echo "bench: another bench run is using $DATA (set BENCH_DATA to use another directory)" >&2
  exit 1
fi

# Run a private copy of the tools: every run then measures the same binaries,
# even if the tree is rebuilt meanwhile.
BIN=$DATA/bin
mkdir -p "$BIN"
for t in vhdtool vhd-nbd-server vhdfuse; do
  cp "$TOOLS/$t" "$BIN/$t.new" && mv -f "$BIN/$t.new" "$BIN/$t" ||
    { echo "bench: cannot copy $TOOLS/$t to $BIN" >&2; exit 1; }
done
VHDTOOL=$BIN/vhdtool NBDSRV=$BIN/vhd-nbd-server VHDFUSE=$BIN/vhdfuse

# Rows are collected in DATA (a `make clean` meanwhile cannot lose them) and
# copied to build/bench at the end.
export OUT=$DATA/results.tsv
LOG=$DATA/bench.log
RES=$B/bench/results.tsv TABLE=$B/bench/table.md
: >"$OUT"; : >"$LOG"
[ -n "${QUICK:-}" ] && export QUICK

meta() { printf '# bench\t%s\n' "$*" >>"$OUT"; }
pair() { # GROUP OURS PEER FILTER(regex on workload, '' = all) [NOTE]
  printf '# pair\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "${5:-}" >>"$OUT"
}
have() { command -v "$1" >/dev/null 2>&1; }
say() { echo "[bench $(date +%T)] $*" | tee -a "$LOG" >&2; }

pb() { # peerbench MODE ARGS...: rows go to $OUT (and the terminal)
  say "peerbench $*"
  "$PB" "$@" 2>&1 | tee -a "$LOG"
}

T0=$(date +%s)
meta "date=$(date -u +%FT%TZ) host=$(hostname) nproc=$(nproc) runs=$RUNS quick=${QUICK:-0} only=$(echo $ONLY | tr ' ' ,)"
meta "rev=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown) tools=$TOOLS data=$DATA"
meta "load_start=$(cut -d' ' -f1-3 /proc/loadavg)"
meta "versions: $($VHDTOOL --version 2>&1 | head -1); $(qemu-img --version 2>/dev/null | head -1); $(nbdkit --version 2>/dev/null | head -1); $(vhdimount -V 2>&1 | head -1); $(fio --version 2>/dev/null); kernel $(uname -r)"

# (1) the data set, once (peerbench keeps it when its parameters are unchanged)
say "data set in $DATA"
"$PB" build 2>&1 | tee -a "$LOG" || { echo "bench: peerbench build failed" >&2; exit 1; }

# (2) the rows: peer then ours, RUNS times
if want convert; then
  pair convert vhdtool qemu-img '' 'time = wall + fsync of the output'
  rows=(
    "raw vhd|qemu-img convert -f raw -O vpc -o subformat=dynamic {IN} {OUT}"
    "raw vhdx|qemu-img convert -f raw -O vhdx -o subformat=dynamic {IN} {OUT}"
    "vhdx raw|qemu-img convert -f vhdx -O raw {IN} {OUT}"
    "vhd vhdx|qemu-img convert -f vpc -O vhdx -o subformat=dynamic {IN} {OUT}"
  )
  for r in "${rows[@]}"; do
    set -- ${r%%|*}; src=$1 dst=$2; peer=${r#*|}
    for i in $(seq "$RUNS"); do
      say "convert $src->$dst run $i/$RUNS"
      have qemu-img && pb convert qemu-img "$src" "$dst" "$peer"
      pb convert vhdtool "$src" "$dst" "$VHDTOOL convert -O $dst {IN} {OUT}"
    done
  done
fi

if want nbd; then
  pair "NBD vhdx" vhd-nbd-server-vhdx qemu-nbd-vhdx ''
  pair "NBD vhd" vhd-nbd-server-vhd qemu-nbd-vhd ''
  pair "NBD vhdx vs raw ref" vhd-nbd-server-vhdx nbdkit-file-raw '^(nbdcopy-read|randread|seqread)' \
       'reference: nbdkit file plugin serving the raw image'
  ours_nbd="$NBDSRV -k {SOCKET} {FILE}"
  for i in $(seq "$RUNS"); do
    say "NBD vhdx run $i/$RUNS"
    have qemu-nbd && pb nbd qemu-nbd-vhdx vhdx 'qemu-nbd -f vhdx -t -e 8 -k {SOCKET} {FILE}'
    pb nbd vhd-nbd-server-vhdx vhdx "$ours_nbd"
    have nbdkit && pb nbd nbdkit-file-raw raw 'nbdkit -f -U {SOCKET} file {FILE}'
  done
  for i in $(seq "$RUNS"); do
    say "NBD vhd run $i/$RUNS"
    have qemu-nbd && pb nbd qemu-nbd-vhd vhd 'qemu-nbd -f vpc -t -e 8 -k {SOCKET} {FILE}'
    pb nbd vhd-nbd-server-vhd vhd "$ours_nbd"
  done
  # BENCH_NBD_DIRECT=1: also both servers past the page cache (O_DIRECT,
  # Linux native AIO) on vhdx.
  if [ -n "${BENCH_NBD_DIRECT:-}" ]; then
    pair "NBD vhdx O_DIRECT" vhd-nbd-server-vhdx-direct qemu-nbd-vhdx-native '' \
         '--cache=none (--aio=native) on both sides'
    for i in $(seq "$RUNS"); do
      say "NBD vhdx O_DIRECT run $i/$RUNS"
      have qemu-nbd && pb nbd qemu-nbd-vhdx-native vhdx 'qemu-nbd -f vhdx -t -e 8 --cache=none --aio=native -k {SOCKET} {FILE}'
      pb nbd vhd-nbd-server-vhdx-direct vhdx "$NBDSRV --cache=none -k {SOCKET} {FILE}"
    done
  fi
fi

if want fuse; then
  pair "FUSE vhdx" vhdfuse-vhdx vhdimount-vhdx ''
  for i in $(seq "$RUNS"); do
    say "FUSE vhdx run $i/$RUNS"
    have vhdimount && pb fuse vhdimount-vhdx vhdx 'vhdimount -v {FILE} {MNT}' vhdi1
    pb fuse vhdfuse-vhdx vhdx "$VHDFUSE -f {FILE} {MNT}" disk
  done
fi

meta "load_end=$(cut -d' ' -f1-3 /proc/loadavg)"
meta "elapsed=$(( $(date +%s) - T0 ))s"

# (3) the table
mkdir -p "$B/bench"
cp "$OUT" "$RES"; cp "$LOG" "$B/bench/bench.log"
python3 "$ROOT/scripts/bench-table.py" "$RES" >"$TABLE" || { echo "bench: bench-table.py failed" >&2; exit 1; }
echo
cat "$TABLE"
echo
echo "bench: raw rows in ${RES#$ROOT/}, table in ${TABLE#$ROOT/}, log in ${B#$ROOT/}/bench/bench.log"

# Our failures make the run fail (peer failures are only in the table).
ours_re='^[^#	]*	(vhdtool|vhd-nbd-server-[a-z-]*|vhdfuse-[a-z]*)	'
bad=$(grep -E "$ours_re" "$OUT" | grep -E 'verify=(FAIL|rc[1-9])|server failed|mount failed|fio failed|nbdcopy rc=' || true)
if [ -n "$bad" ]; then
  echo "bench: FAILED rows of our tools (logs in $DATA/logs):" >&2
  echo "$bad" >&2
  exit 1
fi
exit 0
