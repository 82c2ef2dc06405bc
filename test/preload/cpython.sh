#!/usr/bin/env bash
# The suite's slice of scripts/cpython-sqlite3.sh: CPython's test_sqlite3
# without the preload (the baseline), then under it on a 1-node and a
# 3-node cluster. Passes if at least 95 % of the tests pass in each, and the
# 3-node followers never saw a state hash differ.
set -uo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$here/build}
status=0
for mode in "--plain" "--nodes 1" "--nodes 3"; do
  # shellcheck disable=SC2086
  out=$("$here/scripts/cpython-sqlite3.sh" $mode --build "$build" 2>&1)
  echo "== test_sqlite3 $mode"
  echo "$out" | grep -v '\.\.\. \(FAIL\|ERROR\)$'
  ran=$(echo "$out" | sed -n 's/^Ran \([0-9]*\) tests.*/\1/p' | tail -1)
  failures=$(echo "$out" | sed -n 's/.*failures=\([0-9]*\).*/\1/p' | tail -1)
  errors=$(echo "$out" | sed -n 's/.*errors=\([0-9]*\).*/\1/p' | tail -1)
  skipped=$(echo "$out" | sed -n 's/.*skipped=\([0-9]*\).*/\1/p' | tail -1)
  ran=${ran:-0} failures=${failures:-0} errors=${errors:-0} skipped=${skipped:-0}
  passed=$((ran - failures - errors - skipped))
  counted=$((ran - skipped))
  echo "passed $passed of $counted run (skipped $skipped)"
  if echo "$out" | grep -q "preload is not in effect"; then
    echo "FAIL: the preload was not in effect ($mode)"
    status=1
  fi
  if [[ $ran -lt 400 ]] || ((passed * 100 < counted * 95)); then
    echo "FAIL: fewer than 95 % of test_sqlite3 passed ($mode)"
    status=1
  fi
  if echo "$out" | grep -q "STOPPED or diverged"; then
    echo "FAIL: a follower stopped or diverged ($mode)"
    status=1
  fi
done
exit $status
