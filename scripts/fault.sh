#!/bin/sh
# The fault suite: real `sqraft node` processes in network namespaces under a
# nemesis (kill, pause, partition, loss, disk-full, member, mixed) and a workload
# (set, bank, register, append), then a heal, convergence checks and the
# workload's checker. Root only. See docs/reliability.md.
#   scripts/fault.sh --nemesis partition --workload register --duration 60 --seed 7
#   scripts/fault.sh --nemesis all --workload all --duration 60     (a full round)
#   scripts/fault.sh --nemesis partition --partition isolate-leader --unsafe-reads --expect-invalid
#                                             (the positive control: must be caught)
# Crash points (power loss at every fsync boundary of one node):
#   python3 test/fault/crashpoints.py --binary build/sqraft --iorec build/test/libiorec.so --limit 0
set -eu
cd "$(dirname "$0")/.."
SQRAFT_WITH_PEERS=1 ./scripts/setup.sh
dir=$(./scripts/configure.sh)
ninja -C "$dir" sqraft >&2
exec python3 test/fault/fault.py --binary "$dir/sqraft" "$@"
