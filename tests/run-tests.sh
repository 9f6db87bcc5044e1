#!/bin/bash
# Test driver for `make check`:
#
#   B=build tests/run-tests.sh [CRITERION_BINARY...] [SCRIPT.sh...]
#
# Runs each Criterion binary given, then every executable script in
# tests/interop/, tests/tools/ and tests/corpus/ (or only the scripts given
# on the command line).  A script exiting 77 is skipped, with the reason it
# printed.  Output of each test goes to $B/test-logs/NAME.log and is shown
# (last 60 lines) only when the test fails.  Exit 1 if anything failed.
#
# Environment: B (build dir, default build), TEST_TIMEOUT (seconds per test,
# default 600), VHDTOOL (default $B/vhdtool).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
B=${B:-build}
case $B in /*) ;; *) B=$ROOT/$B ;; esac
VHDTOOL=${VHDTOOL:-$B/vhdtool}
case $VHDTOOL in /*) ;; *) VHDTOOL=$ROOT/$VHDTOOL ;; esac
export B VHDTOOL LC_ALL=C
TEST_TIMEOUT=${TEST_TIMEOUT:-600}
LOGDIR=$B/test-logs
mkdir -p "$LOGDIR"

binaries=()
scripts=()
for a in "$@"; do
  case $a in
    *.sh) scripts+=("$a") ;;
    *) binaries+=("$a") ;;
  esac
done
if [ ${#scripts[@]} -eq 0 ]; then
  shopt -s nullglob
  scripts=(tests/interop/test-*.sh tests/tools/test-*.sh tests/corpus/test-*.sh)
  shopt -u nullglob
fi

if [ -t 1 ]; then
  c_pass=$'\e[32m' c_fail=$'\e[31m' c_skip=$'\e[33m' c_off=$'\e[0m'
else
  c_pass="" c_fail="" c_skip="" c_off=""
fi

npass=0 nfail=0 nskip=0
failed=()

result () { # STATUS NAME DETAIL
  local col
  case $1 in
    PASS) col=$c_pass ;; FAIL) col=$c_fail ;; *) col=$c_skip ;;
  esac
  printf '%s%-4s%s %s%s\n' "$col" "$1" "$c_off" "$2" "${3:+ ($3)}"
}

show_log () { # LOG
  echo "---- last 60 lines of $1 ----"
  tail -n 60 "$1"
  echo "----"
}

# Log name: the path after its last "tests/", / turned into -, no .sh:
# build/tests/unit/test-vhd -> unit-test-vhd, tests/interop/x.sh -> interop-x.
log_name () {
  local n=${1##*tests/}
  [ "$n" = "$1" ] && n=$(basename "$1")
  n=${n%.sh}
  echo "${n//\//-}"
}

# ---------------------------------------------------------- Criterion tests
# Under LeakSanitizer (make check-asan), leaks of Criterion's own runner
# are not ours (tests/lsan.supp); everything else still fails.
export LSAN_OPTIONS="suppressions=$ROOT/tests/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
for bin in ${binaries[@]+"${binaries[@]}"}; do
  name=$(log_name "$bin")
  log=$LOGDIR/$name.log
  if [ ! -x "$bin" ]; then
    echo "not built: $bin" > "$log"
    result FAIL "$name" "binary not built: $bin"
    nfail=$((nfail + 1)); failed+=("$name")
    continue
  fi
  start=$SECONDS
  timeout -k 10 "$TEST_TIMEOUT" "$bin" --jobs 2 > "$log" 2>&1
  rc=$?
  secs=$((SECONDS - start))
  # [====] Synthesis: Tested: 5 | Passing: 4 | Failing: 1 | Crashing: 0
  synth=$(sed 's/\x1b\[[0-9;]*m//g' "$log" | grep 'Synthesis:' | tail -1)
  tested=$(sed -n 's/.*Tested: *\([0-9]*\).*/\1/p' <<<"$synth")
  passing=$(sed -n 's/.*Passing: *\([0-9]*\).*/\1/p' <<<"$synth")
  if [ -z "$tested" ]; then tested=1; passing=0; fi
  if [ $rc -eq 0 ] && [ "$passing" = "$tested" ] && [ "$tested" -gt 0 ]; then
    result PASS "$name" "$tested tests, ${secs}s"
    npass=$((npass + tested))
  else
    case $rc in
      124|137) why="timed out after ${TEST_TIMEOUT}s" ;;
      *) why="exit $rc, ${synth#*Synthesis: }" ;;
    esac
    [ "$tested" -eq 0 ] && why="$why, no test ran"
    result FAIL "$name" "$why"
    show_log "$log"
    bad=$((tested - passing))
    [ $bad -lt 1 ] && bad=1
    npass=$((npass + passing)); nfail=$((nfail + bad)); failed+=("$name")
  fi
done

# ---------------------------------------------------------- shell tests
for s in ${scripts[@]+"${scripts[@]}"}; do
  name=$(log_name "$s")
  log=$LOGDIR/$name.log
  if [ ! -x "$s" ]; then
    echo "not executable: $s" > "$log"
    result FAIL "$name" "not executable: chmod +x $s"
    nfail=$((nfail + 1)); failed+=("$name")
    continue
  fi
  start=$SECONDS
  timeout -k 10 "$TEST_TIMEOUT" "$s" < /dev/null > "$log" 2>&1
  rc=$?
  secs=$((SECONDS - start))
  case $rc in
    0)
      result PASS "$name" "${secs}s"
      npass=$((npass + 1)) ;;
    77)
      reason=$(grep -m1 '^SKIP' "$log" | sed 's/^SKIP:* *//')
      result SKIP "$name" "${reason:-no reason given}"
      nskip=$((nskip + 1)) ;;
    124|137)
      result FAIL "$name" "timed out after ${TEST_TIMEOUT}s"
      show_log "$log"
      nfail=$((nfail + 1)); failed+=("$name") ;;
    *)
      result FAIL "$name" "exit $rc, ${secs}s"
      show_log "$log"
      nfail=$((nfail + 1)); failed+=("$name") ;;
  esac
done

echo
[ ${#failed[@]} -gt 0 ] && echo "failed: ${failed[*]}"
echo "logs in $LOGDIR"
echo "$npass passed, $nfail failed, $nskip skipped"
[ $nfail -eq 0 ] && [ $((npass + nskip)) -gt 0 ] || exit 1
exit 0
