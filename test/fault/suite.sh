#!/bin/sh
# The fault suite's slice in `meson test` (about two minutes): the checkers'
# own tests (positive controls included), the wire client against a real
# node, four nemesis × workload runs, the positive control for reads
# (a deposed leader that keeps answering must be caught by the register
# checker), and sampled crash points with their fsync positive control.
# The long runs are scripts/fault.sh's.
#   test/fault/suite.sh BUILD_DIR
set -eu
here=$(cd "$(dirname "$0")" && pwd)
bin=$1/sqraft
python3 "$here/checkers_test.py"
python3 "$here/wire_test.py" "$bin"
run() { python3 "$here/fault.py" --binary "$bin" --interval 4 "$@"; }
run --workload register --nemesis partition --partition isolate-leader --duration 20 --seed 11
run --workload set --nemesis kill --duration 15 --seed 12
run --workload bank --nemesis pause --duration 15 --seed 13
run --workload append --nemesis loss --duration 15 --seed 14
run --workload register --nemesis partition --partition isolate-leader --duration 20 --seed 15 \
  --unsafe-reads --expect-invalid
# Power loss at sampled fsync boundaries of a single node (and under
# eatmydata, the positive control: acknowledged writes must be found lost).
iorec=$1/test/libiorec.so
python3 "$here/crashpoints.py" --binary "$bin" --iorec "$iorec" --writes 40 --limit 12 --seed 16
# The same in disk storage: the database files and their records crash too.
python3 "$here/crashpoints.py" --binary "$bin" --iorec "$iorec" --writes 40 --limit 10 --seed 18 --storage disk
python3 "$here/crashpoints.py" --binary "$bin" --iorec "$iorec" --writes 40 --limit 3 --subsets 0 --seed 17 --no-fsync
