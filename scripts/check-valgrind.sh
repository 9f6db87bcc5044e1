#!/bin/bash
# `make check-valgrind`: memory errors and definite leaks under valgrind.
#
# Every Criterion binary runs one test at a time (Criterion execs a worker
# per test, which --trace-children follows), then vhdtool on a few
# commands.  Each process logs to $B/valgrind/; any error or definite leak
# in any log fails.  A worker killed by Criterion writes no ERROR SUMMARY,
# so the error lines themselves are searched for too.  Helpers the tests
# run (qemu-img, sh) are not traced.  Slow (the crash tests dominate):
# VG_TESTS="build/tests/api/test-chain ..." narrows the binaries.
set -u
B=${B:-build}
VG_TESTS=${VG_TESTS:-$(ls "$B"/tests/unit/test-* "$B"/tests/api/test-* | grep -v '\.d$')}
VALGRIND=(valgrind --error-exitcode=1 --leak-check=full
          --show-leak-kinds=definite --errors-for-leak-kinds=definite
          --trace-children=yes --trace-children-skip='/usr/*,/bin/*,/sbin/*')
LOGS=$B/valgrind
rm -rf "$LOGS"
mkdir -p "$LOGS/img"
fail=0

for t in $VG_TESTS; do
  n=$(echo "${t#"$B"/tests/}" | tr / -)
  echo "valgrind $n"
  "${VALGRIND[@]}" --log-file="$LOGS/$n.%p.log" "$t" --jobs 1 -S \
    > "$LOGS/$n.out" 2>&1 || { fail=1; tail -n 20 "$LOGS/$n.out"; }
done

echo "valgrind vhdtool"
d=$LOGS/img
V() { "${VALGRIND[@]}" --log-file="$LOGS/vhdtool.%p.log" "$B/vhdtool" "$@"; }
{ head -c 3M /dev/urandom > "$d/src.raw" && truncate -s 16M "$d/src.raw" \
  && V create "$d/a.vhd" 16M && V create -t fixed "$d/f.vhdx" 4M \
  && V convert "$d/src.raw" "$d/b.vhd" && V convert -p "$d/b.vhd" "$d/c.vhdx" \
  && V create --parent "$d/c.vhdx" "$d/d.avhdx" && V convert "$d/d.avhdx" "$d/e.raw" \
  && V convert -O vhd -t fixed "$d/d.avhdx" "$d/g.vhd" \
  && V convert "$d/g.vhd" - > /dev/null \
  && V info "$d/b.vhd" > /dev/null && V info --json "$d/d.avhdx" > /dev/null \
  && V map "$d/c.vhdx" > /dev/null && V map --json "$d/d.avhdx" > /dev/null \
  && V check "$d/b.vhd" > /dev/null && V check --json "$d/d.avhdx" > /dev/null \
  && V resize "$d/a.vhd" 32M && V compact "$d/b.vhd" && V commit "$d/d.avhdx" \
  && cmp "$d/src.raw" "$d/e.raw"; } || { fail=1; echo "vhdtool under valgrind failed"; }
# Failing commands must not leak either.
V info "$d/missing.vhd" 2> /dev/null
head -c 1M /dev/urandom > "$d/junk.vhd"
V check "$d/junk.vhd" > /dev/null 2>&1

if grep -lE 'ERROR SUMMARY: [1-9]|== (Invalid|Conditional|Use of uninit|Syscall param|Mismatched)|definitely lost in' \
     "$LOGS"/*.log; then
  echo "valgrind found errors: see the logs listed above"
  fail=1
fi
[ $fail -eq 0 ] && echo "valgrind: clean"
exit $fail
