# Shared by the interop scripts: TAP-like checks and their counters.
# Each check prints `ok - ...` or `not ok - ...`.
export TZ=UTC # the shells print times in local time
export LC_ALL=C.UTF-8

PASS=0
FAIL=0
ok() { PASS=$((PASS + 1)); echo "ok - $*"; }
nok() { FAIL=$((FAIL + 1)); echo "not ok - $*"; }
note() { echo "# $*"; }

# check_eq DESCRIPTION GOT WANT
check_eq() {
  if [[ "$2" == "$3" ]]; then
    ok "$1"
  else
    nok "$1"
    echo "#   got:  $(printf '%s' "$2" | sed '2,$s/^/#         /')"
    echo "#   want: $(printf '%s' "$3" | sed '2,$s/^/#         /')"
  fi
}
