#!/bin/sh
# Installs what is missing, builds sqraft and runs every test.
#   scripts/test.sh              the normal build (build/)
#   scripts/test.sh --sanitize   the same suite under ASan + UBSan (build-asan/)
# Extra arguments after the option go to `meson test` (e.g. --suite unit).
set -eu
cd "$(dirname "$0")/.."

SQRAFT_WITH_PEERS=1 ./scripts/setup.sh

sanitize=""
if [ "${1:-}" = "--sanitize" ]; then
  shift
  sanitize=--sanitize
fi
dir=$(./scripts/configure.sh $sanitize)
ninja -C "$dir"
meson test -C "$dir" --print-errorlogs "$@"
