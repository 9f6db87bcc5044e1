#!/bin/sh
# run-fuzz.sh: run one libFuzzer target (tests/fuzz/fuzz.mk calls this).
#
#   run-fuzz.sh replay TARGET BIN
#       run every fixtures/crashers/TARGET-* through BIN once
#   run-fuzz.sh fuzz TARGET BIN SEEDS SECONDS MAX_LEN WORKDIR
#       replay, then fuzz for SECONDS from WORKDIR/corpus/TARGET (kept
#       between runs) and SEEDS; a crash, leak, timeout or OOM is copied to
#       fixtures/crashers/TARGET-<sha1> and fails the run, and so does a
#       crasher that still crashes
#
# Exit status: 0 when nothing was found.
set -u

CRASHERS=${CRASHERS:-fixtures/crashers}
# A slow input counts as a hang; memory per input is capped.
COMMON="-timeout=10 -rss_limit_mb=2048"
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

mode=$1 target=$2 bin=$3

replay () {
  n=0 failed=0
  log=$(mktemp)
  for f in "$CRASHERS/$target"-*; do
    [ -f "$f" ] || continue
    n=$((n + 1))
    if "$bin" $COMMON "$f" >"$log" 2>&1; then
      continue
    fi
    failed=$((failed + 1))
    echo "$target: FAIL: $f still crashes:"
    grep -E 'contract broken|runtime error|Assertion|ERROR: AddressSanitizer|ERROR: LeakSanitizer|ERROR: libFuzzer: (timeout|out-of-memory)' \
      "$log" | head -n 3 | sed 's/^/    /'
  done
  rm -f "$log"
  if [ $failed -gt 0 ]; then
    echo "$target: $failed of $n crasher(s) still crash" \
      "(replay one with: $bin FILE)"
    return 1
  fi
  echo "$target: $n crasher(s) replayed: OK"
  return 0
}

case $mode in
replay)
  replay
  exit $?
  ;;
fuzz)
  seeds=$4 seconds=$5 max_len=$6 work=$7
  replay
  replay_rc=$?
  corpus=$work/corpus/$target
  artifacts=$work/artifacts/$target
  log=$work/logs/$target.log
  mkdir -p "$corpus" "$artifacts" "$work/logs"
  rm -f "$artifacts"/*
  dict=
  [ -f tests/fuzz/vhd.dict ] && dict=-dict=tests/fuzz/vhd.dict
  echo "$target: fuzzing for ${seconds}s (max_len $max_len, log in $log)"
  "$bin" $COMMON -max_total_time="$seconds" -max_len="$max_len" $dict \
    -artifact_prefix="$artifacts/" -print_final_stats=1 \
    "$corpus" "$seeds" >"$log" 2>&1
  rc=$?
  found=0
  for f in "$artifacts"/*; do
    [ -f "$f" ] || continue
    sum=$(sha1sum "$f" | cut -c1-40)
    found=1
    known=
    for k in "$CRASHERS/$target"-*; do
      [ -f "$k" ] && cmp -s "$f" "$k" && known=$k
    done
    if [ -n "$known" ]; then
      echo "$target: FOUND $(basename "$f"), the same as $known"
      continue
    fi
    mkdir -p "$CRASHERS"
    cp "$f" "$CRASHERS/$target-$sum"
    echo "$target: FOUND $(basename "$f") -> $CRASHERS/$target-$sum"
  done
  grep -E 'stat::number_of_executed_units|stat::average_exec_per_sec' "$log" \
    | sed "s/^/$target: /"
  if [ $rc -ne 0 ] || [ $found -ne 0 ]; then
    echo "$target: FAIL (exit $rc):"
    grep -E 'ERROR:|SUMMARY:|contract broken|runtime error|Assertion|#[0-9]+ ' \
      "$log" | grep -v -E 'in (fuzzer::|__sanitizer|__pthread|raise|abort|__assert)' \
      | head -n 20
    exit 1
  fi
  exit $replay_rc
  ;;
*)
  echo "usage: $0 replay|fuzz TARGET BIN ..." >&2
  exit 2
  ;;
esac
