#!/usr/bin/env bash
# Run unit test binaries: test/run-unit.sh BUILD BIN...
# Each binary runs alone with a 120 s timeout; its exit status says the result
# (0 pass, 77 skip, anything else fail). Prints PASS/FAIL/SKIP name per test, the
# output of failing tests, and last "N passed, N failed" (skips are not failures).
# Exit 1 if any test failed.
set -u
BUILD=${1:?usage: run-unit.sh BUILD BIN...}
shift
pass=0
fail=0
skip=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for bin in "$@"; do
	name=$(basename "$bin")
	if [[ ! -x $bin ]]; then
		echo "FAIL $name (not built: $bin)"
		fail=$((fail + 1))
		continue
	fi
	timeout -k 5 120 "$bin" >"$log" 2>&1
	rc=$?
	case $rc in
	0) echo "PASS $name"; pass=$((pass + 1)) ;;
	77) echo "SKIP $name"; skip=$((skip + 1)) ;;
	*)
		if ((rc == 124)); then
			echo "FAIL $name (timeout after 120 s)"
		else
			echo "FAIL $name (exit $rc)"
		fi
		sed 's/^/    /' "$log" | tail -n 40
		fail=$((fail + 1))
		;;
	esac
done
if ((skip)); then
	echo "$pass passed, $fail failed, $skip skipped"
else
	echo "$pass passed, $fail failed"
fi
((fail == 0))
