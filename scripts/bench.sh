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
#   compact  vhdtool compact (and compact --no-move, when this vhdtool has it),
#            from a warm page cache and (as root) a cold one,
#            vs qemu-img convert (qemu-img has no in-place compact: a compacted
#            copy, + fsync, is what its users do) on a 2 GiB vhdx and vhd whose
#            odd 16 MiB blocks are allocated zeros, next to `cat` of the image
#            as the "read the data once" reference (the goal: ours <= ~1x it)
#   memory   the memory it costs to serve a 2 TiB dynamic vhdx (1 MiB blocks,
#            2048 writes of 64 KiB scattered over the whole disk; made once by
#            qemu-img/qemu-io): vhd-nbd-server -r vs qemu-nbd -r -t -e 8, each
#            serving fio random 4k reads (qd16, 10 s, QUICK=1: 4 s) over the
#            whole export, then nbdcopy of the export to null: (capped: 60 s
#            for ours, 10 s (QUICK=1: 5 s) for qemu-nbd, whose vhdx driver has
#            no allocation map, so it would read all 2 TiB); the server's peak
#            RSS (VmHWM) is read before it is stopped.  The goal: ours <= 64 MiB
#   flush    vhd-nbd-server vs qemu-nbd -t -e 8 on a fully allocated 2 GiB
#            dynamic vhdx (16 MiB blocks, made once by qemu-img/qemu-io, a
#            fresh copy per server): fio 4k random writes, and a 50/50 random
#            read/write mix, qd16, with a flush after every 16 writes (10 s
#            each, QUICK=1: 4 s), as a VM's guest sends them
#
# Output: build/bench/results.tsv (peerbench's raw TSV, plus "# bench"/"# pair"
# comment lines that describe the run), build/bench/table.md (markdown table,
# also printed).  Regenerate the table alone with
#   scripts/bench-table.py build/bench/results.tsv
#
# Environment:
#   BENCH_RUNS [3]        runs per row (medians over them)
#   BENCH_ONLY [all]      convert, nbd, fuse, compact, memory or flush (comma/space separated list)
#   QUICK=1               shorter fio runs (passed to peerbench)
#   BENCH_NBD_DIRECT=1    nbd also: vhd-nbd-server --cache=none vs qemu-nbd
#                         --cache=none --aio=native on vhdx
#   BENCH_DATA            data directory [${TMPDIR:-/var/tmp}/libvhd-bench.UID.HASH]
#                         (~3.3 GiB allocated: 4 GiB sparse raw + vhd + vhdx + work files;
#                         compact adds ~4 GiB: its 2 GiB vhdx and vhd, and ~3 GiB more
#                         while it runs: a 2 GiB work copy and a 1 GiB qemu-img output;
#                         memory adds a 2 GiB sparse file, ~150 MiB allocated;
#                         flush 2 GiB, and 2 GiB more while it runs)
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
ONLY=${BENCH_ONLY:-convert nbd fuse compact memory flush}
ONLY=" ${ONLY//,/ } "
for s in $ONLY; do
  case $s in convert|nbd|fuse|compact|memory|flush) ;; *) echo "bench: BENCH_ONLY: unknown suite '$s' (convert, nbd, fuse, compact, memory, flush)" >&2; exit 2;; esac
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
# (compact and memory) busy and steal jiffies of the machine; one row of
# FIELDS... in peerbench's format, to the results and the log
cpustat() { awk '/^cpu /{print $2+$3+$4+$7+$8, $9; exit}' /proc/stat; }
crow() { local IFS=$'\t'; echo "$*" | tee -a "$OUT" "$LOG"; }
say() { echo "[bench $(date +%T)] $*" | tee -a "$LOG" >&2; }

pb() { # peerbench MODE ARGS...: rows go to $OUT (and the terminal)
  say "peerbench $*"
  "$PB" "$@" 2>&1 | tee -a "$LOG"
}

T0=$(date +%s)
meta "date=$(date -u +%FT%TZ) host=$(hostname) nproc=$(nproc) runs=$RUNS quick=${QUICK:-0} only=$(echo $ONLY | tr ' ' ,)"
meta "rev=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown) tools=$TOOLS data=$DATA"
meta "load_start=$(cut -d' ' -f1-3 /proc/loadavg)"
# A guest that gives free memory back to its host pays a host fault for
# each fresh page-cache page: rows that write where the page cache held
# nothing are slower for it (docs/performance.md, fifth round).
if grep -q 'page_reporting' /proc/cmdline 2>/dev/null; then
  meta "host memory: free page reporting on ($(tr ' ' '\n' < /proc/cmdline | grep -m1 page_reporting)): writes into uncached file ranges pay host faults"
fi
meta "versions: $($VHDTOOL --version 2>&1 | head -1); $(qemu-img --version 2>/dev/null | head -1); $(nbdkit --version 2>/dev/null | head -1); $(vhdimount -V 2>&1 | head -1); $(fio --version 2>/dev/null); kernel $(uname -r)"

# (1) the data set, once (peerbench keeps it when its parameters are unchanged;
# compact makes its own below)
if want convert || want nbd || want fuse; then
  say "data set in $DATA"
  "$PB" build 2>&1 | tee -a "$LOG" || { echo "bench: peerbench build failed" >&2; exit 1; }
fi

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

# compact is not a peerbench workload: bench.sh times it itself, in
# peerbench's row format so that bench-table.py reads it like the others.
if want compact; then
  CDIR=$DATA/compact CLOG=$DATA/logs/compact.log
  mkdir -p "$CDIR" "$DATA/logs"
  # The issue's image: 2 GiB, 128 blocks of 16 MiB (the vhdx block size; the
  # vhd gets qemu's 2 MiB ones), even blocks seeded random, odd ones zeros
  # written out; -S 0 stops qemu-img from skipping them, so half the blocks
  # of both images are allocated zeros.  The raw file is only a step.
  CBLOCK=16777216 CBLOCKS=128
  cstamp="blocks=$CBLOCKS block=$CBLOCK seed=1 odd=zero"
  if [ "$(cat "$CDIR/half.stamp" 2>/dev/null)" != "$cstamp" ] ||
     [ ! -f "$CDIR/half.vhdx" ] || [ ! -f "$CDIR/half.vhd" ]; then
    say "compact data set in $CDIR ($cstamp)"
    rm -f "$CDIR"/half.*
    python3 - "$CDIR/half.raw" "$CBLOCK" "$CBLOCKS" <<'EOF' &&
import random, sys
path, block, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
r, zero = random.Random(1), bytes(block)
with open(path, 'wb') as f:
    for i in range(n):
        f.write(r.randbytes(block) if i % 2 == 0 else zero)
EOF
    qemu-img convert -S 0 -f raw -O vhdx -o block_size=$CBLOCK,subformat=dynamic \
      "$CDIR/half.raw" "$CDIR/half.vhdx" >>"$CLOG" 2>&1 &&
    qemu-img convert -S 0 -f raw -O vpc -o subformat=dynamic \
      "$CDIR/half.raw" "$CDIR/half.vhd" >>"$CLOG" 2>&1 &&
    echo "$cstamp" >"$CDIR/half.stamp" ||
      { rm -f "$CDIR/half.raw"; echo "bench: cannot make the compact data set (log: $CLOG)" >&2; exit 1; }
    rm -f "$CDIR/half.raw"
  fi
  meta "compact images: $(cd "$CDIR" && stat -c '%n %s bytes, %b*%B allocated' half.vhdx half.vhd | paste -sd ';') ($cstamp)"

  # The mode being added; an older vhdtool only loses that row.
  nomove=
  if "$VHDTOOL" compact --help 2>&1 | grep -q -- --no-move; then
    nomove=vhdtool-compact-no-move nmnote=''
  else
    nmnote='not measured: this vhdtool compact has no --no-move'
    say "compact: $nmnote"
  fi
  # Targets are named apart from the convert suite's (vhdtool, qemu-img):
  # pairs match rows by target.  read-once is the reference of every pair.
  # Warm (the copy just made is in the page cache) and, where this user
  # may drop the page cache, cold (dropped after the copy: what compacting
  # an image that is not in use looks like).
  caches=warm
  if [ -w /proc/sys/vm/drop_caches ]; then caches="warm cold"
  else say "compact: cannot drop the page cache here: warm rows only"; fi
  for fmt in vhdx vhd; do
    for cache in $caches; do
      wl=$fmt; [ "$cache" = cold ] && wl=$fmt-cold
      pair compact vhdtool-compact qemu-img-convert "^$wl\$"
      pair "compact --no-move" vhdtool-compact-no-move qemu-img-convert "^$wl\$" "$nmnote"
    done
  done

  # ctime STDOUT CMD...: run CMD (stderr to CLOG) under /usr/bin/time; sets
  # C_RC, C_WALL (s, from date: cat takes a fraction of a second), C_CPU
  # (user+sys s), C_RSS (KB), C_OTHER (% of a core used meanwhile by the rest
  # of the machine: the noise indicator) and C_STEAL (s).
  ctime() {
    local o=$1 tf=$DATA/logs/compact.time s0 s1 t0 t1; shift
    echo "## $(date -u +%T) $*" >>"$CLOG"; rm -f "$tf"
    s0=$(cpustat); t0=$(date +%s.%N)
    /usr/bin/time -f '%U %S %M' -o "$tf" "$@" >>"$o" 2>>"$CLOG"; C_RC=$?
    t1=$(date +%s.%N); s1=$(cpustat)
    read -r C_WALL C_CPU C_RSS C_OTHER C_STEAL < <(awk -v t0="$t0" -v t1="$t1" \
      -v s="$s0 $s1" -v tck="$(getconf CLK_TCK)" '
      END { split(s, a, " "); w = t1 - t0; c = $1 + $2; o = (a[3] - a[1]) / tck - c
            printf "%.3f %.2f %s %.0f %.2f\n", w, c, $3, (o > 0 ? o : 0) * 100 / w, (a[4] - a[2]) / tck }' "$tf")
  }

  # compact_one FMT TARGET CACHE: one timed run on a fresh copy of half.FMT
  # (CACHE cold: the page cache dropped first) -> a row.
  compact_one() {
    local fmt=$1 t=$2 cache=$3 qf=vhdx opts=() fsync=- v= wl=$1
    [ "$fmt" = vhd ] && qf=vpc opts=(-o subformat=dynamic)
    local img=$CDIR/half.$fmt work=$CDIR/work.$fmt out=$CDIR/out.$fmt
    local res=$work sz=(- -)
    rm -f "$work" "$out"
    # --sparse=never: qemu-img leaves a few holes in its images, so cp's
    # default takes them for sparse and would turn the zero blocks into
    # holes.  After cp and sync the copy is in the page cache, all clean.
    cp --sparse=never --reflink=never "$img" "$work" && sync ||
      { echo "bench: cannot copy $img to $work" >&2; exit 1; }
    if [ "$cache" = cold ]; then
      echo 1 >/proc/sys/vm/drop_caches; wl=$fmt-cold
    fi
    case $t in
      read-once) ctime /dev/null cat "$work";;
      qemu-img-convert)
        ctime "$CLOG" qemu-img convert -f "$qf" -O "$qf" "${opts[@]}" "$work" "$out"; res=$out
        # Durability as in the convert rows; ours flushes before it exits.
        local f0; f0=$(date +%s.%N); sync "$out"
        fsync=$(awk -v a="$f0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.3f", b-a}');;
      vhdtool-compact) ctime "$CLOG" "$VHDTOOL" compact "$work";;
      vhdtool-compact-no-move) ctime "$CLOG" "$VHDTOOL" compact --no-move "$work";;
    esac
    if [ "$C_RC" != 0 ]; then v="verify=rc$C_RC;"
    elif [ "$t" != read-once ]; then
      if qemu-img compare -q -f "$qf" -F "$qf" "$img" "$res" >>"$CLOG" 2>&1
      then v="verify=ok;"; else v="verify=FAIL;"; fi
    fi
    [ "$fsync" = - ] || v="${v}fsync_after=${fsync}s;"
    [ -f "$res" ] && sz=($(stat -c '%s %b %B' "$res" | awk '{printf "%s %.0f\n", $1, $2 * $3}'))
    # MB/s over the 2 GiB of disk content and over its 1 GiB of data;
    # out_* = the file after the run (read-once: the image it read).
    crow compact "$t" "$wl" "$C_WALL" \
      "$(awk -v w="$C_WALL" -v b=$((CBLOCK * CBLOCKS)) 'BEGIN{printf "%.0f", b/w/1e6}')" \
      "$(awk -v w="$C_WALL" -v b=$((CBLOCK * CBLOCKS / 2)) 'BEGIN{printf "%.0f", b/w/1e6}')" \
      - - - - - "$(awk -v c="$C_CPU" -v w="$C_WALL" 'BEGIN{printf "%.0f", 100*c/w}')" "$C_OTHER" \
      "${sz[@]}" \
      "${v}maxrss=${C_RSS}KB;steal=${C_STEAL}s"
    rm -f "$work" "$out"
  }

  for fmt in vhdx vhd; do
    for i in $(seq "$RUNS"); do
      say "compact $fmt run $i/$RUNS"
      # (the load on peerbench's comment lines, for bench-table.py's range)
      echo "# $(date -u +%FT%TZ) $(hostname) nproc=$(nproc) load=$(cut -d' ' -f1-3 /proc/loadavg) mode=compact $fmt run $i/$RUNS" >>"$OUT"
      for cache in $caches; do
        for t in read-once qemu-img-convert vhdtool-compact $nomove; do
          compact_one "$fmt" "$t" "$cache"
        done
      done
    done
  done
fi

# memory is not a peerbench workload either: bench.sh starts the servers
# itself, to read their peak RSS (VmHWM) from /proc before it stops them;
# rows in peerbench's format, suite "memory".
# The server of the moment (memory and flush suites, bench.sh's own rows):
# MSRV its pid, serving on MSOCK (MURI), logging to MLOG.  A server of ours
# is never left behind: stopped on every exit path.
MSRV= MSOCK= MURI= MLOG=/dev/null
alive() { local s; s=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1); [ -n "$s" ] && [ "$s" != Z ]; }
mstop() { # stop MSRV: TERM, up to 5 s, then KILL
  local i
  if [ -n "$MSRV" ]; then
    kill -TERM "$MSRV" 2>/dev/null
    for i in $(seq 50); do alive "$MSRV" || break; sleep 0.1; done
    alive "$MSRV" && { echo "bench: server $MSRV ignored SIGTERM: killed" >>"$MLOG"; kill -KILL "$MSRV" 2>/dev/null; }
    wait "$MSRV" 2>/dev/null
  fi
  MSRV=; rm -f "$MSOCK"
}
mstart() { # CMD...: the server in the background, MSRV its pid -> 0 once it serves
  local i
  rm -f "$MSOCK"
  echo "## $(date -u +%T) $*" >>"$MLOG"
  "$@" </dev/null >>"$MLOG" 2>&1 &
  MSRV=$!
  for i in $(seq 300); do
    alive "$MSRV" || { wait "$MSRV" 2>/dev/null; echo "## server exited" >>"$MLOG"; MSRV=; return 1; }
    [ -S "$MSOCK" ] && nbdinfo --size "$MURI" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "## server not ready after 30 s" >>"$MLOG"; mstop; return 1
}
pstat() { # PID -> "cpu_s VmHWM_KB VmRSS_KB" (the whole process: all threads)
  awk -v tck="$(getconf CLK_TCK)" '
    FNR == 1 && FILENAME ~ /stat$/ { sub(/.*\) /, ""); cpu = ($12 + $13) / tck }
    /^VmHWM:/ { h = $2 } /^VmRSS:/ { r = $2 }
    END { printf "%.2f %s %s\n", cpu, h, r }' "/proc/$1/stat" "/proc/$1/status"
}

# mcpu SRV_CPU0 SRV_CPU1 CLIENT_CPU STAT0 STAT1 T0 T1 -> "server_cpu_s
# other_pct steal_s" (as peerbench: other = the rest of the machine, % of
# a core over the wall time T1-T0; STAT = cpustat's "busy steal")
mcpu() {
  awk -v a="$1" -v b="$2" -v c="$3" -v x0="$4" -v x1="$5" -v t0="$6" -v t1="$7" \
      -v tck="$(getconf CLK_TCK)" 'BEGIN { s = b - a; split(x0, p, " "); split(x1, q, " ")
    o = (q[1] - p[1]) / tck - s - c; w = t1 - t0
    printf "%.2f %.0f %.2f\n", s, (o > 0 ? o : 0) * 100 / w, (q[2] - p[2]) / tck }'
}
mpct() { awk -v c="$1" -v w="$2" 'BEGIN{ if (w > 0) printf "%.0f", 100*c/w; else print "-"}'; }

# fio_sum JSON -> "iops bw_Bps lat_us p99_us runtime_s client_cpu_s" of one
# job, reads and writes together (latency: their mean weighted by I/Os).
fio_sum() {
  python3 - "$1" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))['jobs'][0]
d = [j[k] for k in ('read', 'write') if j[k]['total_ios']]
n = sum(x['total_ios'] for x in d) or 1
print('%.0f %.0f %.1f %.1f %.2f %.2f' % (
    sum(x['iops'] for x in d), sum(x['bw_bytes'] for x in d),
    sum(x['lat_ns']['mean'] * x['total_ios'] for x in d) / n / 1000,
    max([x['clat_ns'].get('percentile', {}).get('99.000000', 0) for x in d] or [0]) / 1000,
    j['job_runtime'] / 1000, (j['usr_cpu'] + j['sys_cpu']) * j['job_runtime'] / 1000 / 100))
EOF
}

trap mstop EXIT
trap 'exit 130' INT TERM HUP

if want memory; then
  MDIR=$DATA/memory MLOG=$DATA/logs/memory.log
  mkdir -p "$MDIR" "$DATA/logs"
  # The issue's image: 2 TiB dynamic vhdx with 1 MiB blocks (2 Mi BAT
  # entries: a 16 MiB BAT) and 2048 writes of 64 KiB at seeded random 64 KiB
  # slots over the whole disk, i.e. ~2048 allocated blocks spread everywhere:
  # a 2 GiB file, sparse (qemu writes only the 64 KiB of a new block: ~150 MiB
  # allocated).  big.writes lists "offset pattern" of the writes, big.qemu-io
  # is them as qemu-io arguments and big.verify, qemu-io reads that check a
  # sample of them and a few unwritten slots (through the exports too).
  MDISK=$((2 << 40)) MBLOCK=1048576 MWRITES=2048 MLEN=65536
  mstamp="size=$MDISK block=$MBLOCK writes=$MWRITES len=$MLEN seed=1"
  if [ "$(cat "$MDIR/big.stamp" 2>/dev/null)" != "$mstamp" ] || [ ! -f "$MDIR/big.vhdx" ]; then
    say "memory data set in $MDIR ($mstamp)"
    rm -f "$MDIR"/big.*
    python3 - "$MDIR/big" "$MDISK" "$MWRITES" "$MLEN" <<'EOF' &&
import random, sys
base, disk, n, ln = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
r = random.Random(1)
slots = sorted(r.sample(range(disk // ln), n))
w = [(s * ln, i % 255 + 1) for i, s in enumerate(slots)]
with open(base + '.writes', 'w') as f:
    f.writelines('%d %d\n' % x for x in w)
with open(base + '.qemu-io', 'w') as f:
    f.writelines('-c\nwrite -q -P %d %d %d\n' % (p, o, ln) for o, p in w)
with open(base + '.verify', 'w') as f:
    f.writelines('-c\nread -q -P %d %d %d\n' % (p, o, ln) for o, p in w[::max(1, n // 8)] + w[-1:])
    taken = set(slots)
    for s in (0, disk // ln - 1, (slots[0] + slots[1]) // 2):
        if s not in taken:
            f.write('-c\nread -q -P 0 %d %d\n' % (s * ln, ln))
EOF
    qemu-img create -q -f vhdx -o block_size=$MBLOCK,subformat=dynamic \
      "$MDIR/big.vhdx" "$MDISK" >>"$MLOG" 2>&1 &&
    # -n 512 (even): an invocation never splits a "-c" from its command;
    # -t unsafe: no flush per write (the sync below makes it durable).
    xargs -d '\n' -n 512 -a "$MDIR/big.qemu-io" \
      qemu-io -t unsafe -f vhdx "$MDIR/big.vhdx" >>"$MLOG" 2>&1 &&
    sync "$MDIR/big.vhdx" &&
    xargs -d '\n' -a "$MDIR/big.verify" qemu-io -r -f vhdx "$MDIR/big.vhdx" >>"$MLOG" 2>&1 &&
    echo "$mstamp" >"$MDIR/big.stamp" ||
      { rm -f "$MDIR"/big.*; echo "bench: cannot make the memory data set (log: $MLOG)" >&2; exit 1; }
  fi
  read -r msize malloc < <(stat -c '%s %b %B' "$MDIR/big.vhdx" | awk '{printf "%s %.0f\n", $1, $2 * $3}')
  meta "memory image big.vhdx: memory_image_bytes=$msize memory_image_alloc=$malloc ($(echo "$mstamp" | tr ' =' ',:'))"

  MRT=10 OCAP=60 PCAP=10
  [ -n "${QUICK:-}" ] && MRT=4 OCAP=30 PCAP=5
  meta "memory: memory_fio_runtime=${MRT}s memory_nbdcopy_cap=${OCAP}s/${PCAP}s (ours/qemu-nbd)"
  MSOCK=$MDIR/nbd.sock
  MURI="nbd+unix:///?socket=$MSOCK"
  # memory_one TARGET NBDCOPY_CAP CMD...: one server lifetime -> 3 rows.
  memory_one() {
    local t=$1 cap=$2 v=verify=FAIL c0 h0 r0 c1 h1 r1 c2 h2 r2 s0 s1 t0 t1 tl rc res
    local scpu oth steal wall cli pr note mbl=- mbd=-
    local jf=$DATA/logs/memory.fio.json tf=$DATA/logs/memory.time pf=$DATA/logs/memory.progress
    shift 2
    tl=$(date +%s.%N)
    if ! mstart "$@"; then
      crow memory "$t" "  (server lifetime, 2 TiB vhdx)" - - - - - - - - - - - - "server failed (log: $MLOG)"
      return
    fi
    read -r c0 h0 r0 < <(pstat "$MSRV")      # serving, after one connection (nbdinfo)
    xargs -d '\n' -a "$MDIR/big.verify" qemu-io -r -f raw "$MURI" >>"$MLOG" 2>&1 && v=verify=ok

    # fio random 4k reads over the whole export (fio takes its size from
    # the server); --norandommap: no 2 TiB/4k-bit map in fio.
    read -r c1 _ < <(pstat "$MSRV"); s0=$(cpustat); t0=$(date +%s.%N)
    fio --name=randread4k-qd16 --ioengine=nbd --uri="$MURI" --rw=randread --bs=4k \
        --iodepth=16 --norandommap --time_based --runtime="$MRT" \
        --output-format=json --output="$jf" >>"$MLOG" 2>&1; rc=$?
    t1=$(date +%s.%N); s1=$(cpustat); read -r c2 h1 r1 < <(pstat "$MSRV")
    res=
    [ $rc = 0 ] && res=$(fio_sum "$jf")
    if [ -n "$res" ]; then
      set -- $res     # iops bw_Bps lat_us p99_us runtime_s client_cpu_s
      read -r scpu oth steal < <(mcpu "$c1" "$c2" "$6" "$s0" "$s1" "$t0" "$t1")
      crow memory "$t" randread4k-qd16 "$5" "$(awk -v b="$2" 'BEGIN{printf "%.0f", b/1e6}')" - "$1" "$3" "$4" \
        "$scpu" "$(mpct "$scpu" "$5")" "$(mpct "$6" "$5")" "$oth" - - \
        "fio nbd engine, 1 connection, whole 2 TiB export; steal=${steal}s"
    else
      crow memory "$t" randread4k-qd16 - - - - - - - - - - - - "fio failed rc=$rc (log: $MLOG)"
    fi

    # nbdcopy of the whole export to null: (extent-aware: reads what the
    # server's base:allocation calls data), capped at CAP seconds.
    read -r c1 _ < <(pstat "$MSRV"); s0=$(cpustat); t0=$(date +%s.%N)
    /usr/bin/time -f '%U %S' -o "$tf" timeout "$cap" nbdcopy --progress=3 "$MURI" null: \
      3>"$pf" >>"$MLOG" 2>&1; rc=$?
    t1=$(date +%s.%N); s1=$(cpustat); read -r c2 _ < <(pstat "$MSRV")
    wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}')
    cli=$(awk 'END{print $1+$2}' "$tf")
    read -r scpu oth steal < <(mcpu "$c1" "$c2" "$cli" "$s0" "$s1" "$t0" "$t1")
    pr=$(tail -n 1 "$pf" 2>/dev/null)
    case $rc in
      0) note="export -> null: (extent-aware), cap ${cap}s"
         mbl=$(awk -v w="$wall" -v b="$MDISK" 'BEGIN{printf "%.0f", b/w/1e6}')
         mbd=$(awk -v w="$wall" -v b=$((MWRITES * MLEN)) 'BEGIN{printf "%.0f", b/w/1e6}');;
      124) note="export -> null: not finished in ${cap}s (progress ${pr:-?})";;
      *) note="nbdcopy rc=$rc (log: $MLOG)";;
    esac
    crow memory "$t" nbdcopy-read "$wall" "$mbl" "$mbd" - - - \
      "$scpu" "$(mpct "$scpu" "$wall")" "$(mpct "$cli" "$wall")" "$oth" - - "$note; steal=${steal}s"

    # The peak over the server's life (both workloads), read while it runs.
    if ! alive "$MSRV"; then
      mstop
      crow memory "$t" "  (server lifetime, 2 TiB vhdx)" - - - - - - - - - - - - "server failed: exited while serving (log: $MLOG)"
      return
    fi
    read -r c2 h2 r2 < <(pstat "$MSRV")
    mstop
    crow memory "$t" "  (server lifetime, 2 TiB vhdx)" \
      "$(awk -v a="$tl" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')" - - - - - "$c2" - - - "$msize" "$malloc" \
      "maxrss=${h2}KB (VmHWM); rss_serving=${r0}KB; hwm_after_randread=${h1}KB; $v"
  }

  # Targets named apart from the nbd suite's: pairs match rows by target.
  pair memory vhd-nbd-server-2tib-vhdx qemu-nbd-2tib-vhdx ''
  for i in $(seq "$RUNS"); do
    say "memory run $i/$RUNS"
    echo "# $(date -u +%FT%TZ) $(hostname) nproc=$(nproc) load=$(cut -d' ' -f1-3 /proc/loadavg) mode=memory run $i/$RUNS" >>"$OUT"
    have qemu-nbd && memory_one qemu-nbd-2tib-vhdx "$PCAP" qemu-nbd -r -f vhdx -t -e 8 -k "$MSOCK" "$MDIR/big.vhdx"
    memory_one vhd-nbd-server-2tib-vhdx "$OCAP" "$NBDSRV" -r -k "$MSOCK" "$MDIR/big.vhdx"
  done
fi

# flush: what a VM's guest sends, 4k random I/O qd16 with a flush after
# every 16 writes, on a fully allocated dynamic vhdx (every write in place,
# so the flushes only make data durable); a fresh copy for each server.
if want flush; then
  FDIR=$DATA/flush MLOG=$DATA/logs/flush.log
  MSOCK=$FDIR/nbd.sock MURI="nbd+unix:///?socket=$FDIR/nbd.sock"
  mkdir -p "$FDIR" "$DATA/logs"
  if [ ! -f "$FDIR/full.vhdx" ]; then
    say "flush data set in $FDIR (2 GiB dynamic vhdx, 16 MiB blocks, all written)"
    qemu-img create -q -f vhdx -o subformat=dynamic,block_size=16M "$FDIR/full.tmp" 2G >>"$MLOG" 2>&1 &&
    qemu-io -f vhdx -c 'write -P 0x5a 0 1G' -c 'write -P 0x5a 1G 1G' "$FDIR/full.tmp" >>"$MLOG" 2>&1 &&
    mv "$FDIR/full.tmp" "$FDIR/full.vhdx" ||
      { rm -f "$FDIR/full.tmp"; echo "bench: cannot make the flush data set (log: $MLOG)" >&2; exit 1; }
  fi
  FRT=10; [ -n "${QUICK:-}" ] && FRT=4
  meta "flush: fio_runtime=${FRT}s image=2 GiB dynamic vhdx, 16 MiB blocks, fully allocated"

  # flush_one TARGET CMD...: one server, both workloads.
  flush_one() {
    local t=$1 wl rw mix rc res c1 c2 s0 s1 t0 t1 scpu oth steal
    local jf=$DATA/logs/flush.fio.json
    shift
    cp --sparse=always "$FDIR/full.vhdx" "$FDIR/work.vhdx" && sync "$FDIR/work.vhdx"
    if ! mstart "$@"; then
      crow nbd "$t" randwrite4k-qd16-flush16 - - - - - - - - - - - - "server failed (log: $MLOG)"
      return
    fi
    for wl in randwrite4k-qd16-flush16 randrw4k-qd16-flush16; do
      rw=randwrite mix=; [ "$wl" = randrw4k-qd16-flush16 ] && rw=randrw mix=--rwmixread=50
      read -r c1 _ < <(pstat "$MSRV"); s0=$(cpustat); t0=$(date +%s.%N)
      fio --name="$wl" --ioengine=nbd --uri="$MURI" --rw="$rw" $mix --bs=4k \
          --iodepth=16 --fsync=16 --time_based --runtime="$FRT" \
          --output-format=json --output="$jf" >>"$MLOG" 2>&1; rc=$?
      t1=$(date +%s.%N); s1=$(cpustat); read -r c2 _ < <(pstat "$MSRV")
      res=; [ $rc = 0 ] && res=$(fio_sum "$jf")
      if [ -z "$res" ]; then
        crow nbd "$t" "$wl" - - - - - - - - - - - - "fio failed rc=$rc (log: $MLOG)"
        continue
      fi
      set -- $res     # iops bw_Bps lat_us p99_us runtime_s client_cpu_s
      read -r scpu oth steal < <(mcpu "$c1" "$c2" "$6" "$s0" "$s1" "$t0" "$t1")
      crow nbd "$t" "$wl" "$5" "$(awk -v b="$2" 'BEGIN{printf "%.0f", b/1e6}')" - "$1" "$3" "$4" \
        "$scpu" "$(mpct "$scpu" "$5")" "$(mpct "$6" "$5")" "$oth" - - \
        "fio nbd engine, 1 connection, flush every 16 writes, IOPS = reads + writes; steal=${steal}s"
    done
    mstop
    rm -f "$FDIR/work.vhdx"
  }

  pair "NBD vhdx flush" vhd-nbd-server-vhdx-flush qemu-nbd-vhdx-flush '' \
       '2 GiB vhdx, fully allocated'
  for i in $(seq "$RUNS"); do
    say "flush run $i/$RUNS"
    echo "# $(date -u +%FT%TZ) $(hostname) nproc=$(nproc) load=$(cut -d' ' -f1-3 /proc/loadavg) mode=flush run $i/$RUNS" >>"$OUT"
    have qemu-nbd && flush_one qemu-nbd-vhdx-flush qemu-nbd -f vhdx -t -e 8 -k "$MSOCK" "$FDIR/work.vhdx"
    flush_one vhd-nbd-server-vhdx-flush "$NBDSRV" -k "$MSOCK" "$FDIR/work.vhdx"
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
ours_re='^[^#	]*	(vhdtool|vhdtool-compact[a-z-]*|vhd-nbd-server-[a-z0-9-]*|vhdfuse-[a-z]*)	'
bad=$(grep -E "$ours_re" "$OUT" | grep -E 'verify=(FAIL|rc[1-9])|server failed|mount failed|fio failed|nbdcopy rc=' || true)
if [ -n "$bad" ]; then
  echo "bench: FAILED rows of our tools (logs in $DATA/logs):" >&2
  echo "$bad" >&2
  exit 1
fi
exit 0
