#!/bin/bash
# Script suites (test/pageserver, test/migrate): runs every SUITE/t_*.sh [TEST...] with
# a bounded time each and reports PASS/FAIL per script. Each script gets BUILD (absolute
# build dir), FERRY (the binary) and TOP (the source tree) in its environment, exits 0
# on success, and cleans up what it started (its own PIDs, temp dirs, namespaces) in a
# trap, even on failure.
#   test/lib/run-scripts.sh SUITE [--build DIR] [--timeout SEC] [NAME...]
# Last line: "N passed, N failed"; exit 1 if anything failed.
set -u
TOP=$(cd "$(dirname "$0")/../.." && pwd)
SUITE=${1:?usage: run-scripts.sh SUITE [--build DIR] [--timeout SEC] [NAME...]}
shift
BUILD=build
TIMEOUT=300
while (($#)); do
	case $1 in
	--build) BUILD=$2; shift 2 ;;
	--timeout) TIMEOUT=$2; shift 2 ;;
	*) break ;;
	esac
done
[[ $BUILD == /* ]] || BUILD=$TOP/$BUILD
export BUILD TOP FERRY=$BUILD/ferry
# Children must not inherit fds our caller leaked (keep 0-2 and bash's script fd 255).
for fd in /proc/$$/fd/*; do
	fd=${fd##*/}
	((fd > 2 && fd != 255)) && eval "exec $fd>&-" 2>/dev/null
done

tests=()
if (($#)); then
	for n in "$@"; do tests+=("$TOP/test/$SUITE/${n%.sh}.sh"); done
else
	for t in "$TOP"/test/"$SUITE"/t_*.sh; do [[ -e $t ]] && tests+=("$t"); done
fi
pass=0 fail=0
for t in "${tests[@]}"; do
	name=$(basename "$t" .sh)
	log=$(mktemp)
	start=$(date +%s.%N)
	timeout -k 10 "$TIMEOUT" bash "$t" >"$log" 2>&1
	rc=$?
	dt=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
	if ((rc == 0)); then
		echo "PASS $name (${dt} s)"
		pass=$((pass + 1))
	else
		((rc == 124)) && echo "FAIL $name: timed out after $TIMEOUT s" || echo "FAIL $name (exit $rc)"
		sed 's/^/    /' "$log" | tail -n 30
		fail=$((fail + 1))
	fi
	rm -f "$log"
done
echo "$pass passed, $fail failed"
((fail == 0))
