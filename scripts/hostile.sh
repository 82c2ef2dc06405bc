#!/bin/sh
# The hostile-SQL run: random and adversarial SQL from several clients against
# a 3-node cluster of real `sqraft node` processes, then checks (no crash, no
# election, identical databases on every node, writable at the end).
#   scripts/hostile.sh --duration 1200 --seed 7 [--clients 4] [--verbose]
#   scripts/hostile.sh --sanitize --duration 120    (ASan + UBSan build)
# See docs/reliability.md.
set -eu
cd "$(dirname "$0")/.."
./scripts/setup.sh
sanitize=""
if [ "${1:-}" = "--sanitize" ]; then
  shift
  sanitize=--sanitize
fi
dir=$(./scripts/configure.sh $sanitize)
ninja -C "$dir" sqraft test/sqraft-hostile >&2
SQRAFT_BIN="$dir/sqraft" exec "$dir/test/sqraft-hostile" "$@"
