#!/usr/bin/env bash
# Run every test suite of ferry: unit tests, fuzz smoke runs, the zdtm suite in all its
# flavours, and the bad-input tests. Each suite prints its own results and ends with a
# line "N passed, N failed"; this script adds them up and ends with the same line.
# Usage: test/run-all.sh [BUILD]        (exit 1 if anything failed)
set -u
BUILD=${1:-build}
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1

total_pass=0
total_fail=0
failed_suites=()

run_suite() {
	local name=$1
	shift
	local log
	log=$(mktemp)
	echo "=== $name"
	"$@" 2>&1 | tee "$log"
	local rc=${PIPESTATUS[0]}
	local line
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
	rm -f "$log"
	if [[ -z $line ]]; then
		echo "=== $name: no summary line (exit $rc): counted as 1 failure"
		total_fail=$((total_fail + 1))
		failed_suites+=("$name")
		return
	fi
	local p f
	p=$(echo "$line" | sed -E 's/^([0-9]+) passed.*/\1/')
	f=$(echo "$line" | sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/')
	total_pass=$((total_pass + p))
	total_fail=$((total_fail + f))
	if ((f > 0 || rc != 0)); then
		failed_suites+=("$name")
		if ((f == 0)); then
			total_fail=$((total_fail + 1))
		fi
	fi
}

start=$(date +%s)
make -s BUILD="$BUILD" all || exit 1

run_suite unit make -s --no-print-directory BUILD="$BUILD" unit
run_suite fuzz make -s --no-print-directory BUILD="$BUILD" fuzz
run_suite zdtm make -s --no-print-directory BUILD="$BUILD" zdtm
run_suite negative make -s --no-print-directory BUILD="$BUILD" negative
run_suite pageserver make -s --no-print-directory BUILD="$BUILD" pstest
run_suite migrate make -s --no-print-directory BUILD="$BUILD" mtest
end=$(date +%s)

echo "=== all suites done in $((end - start)) s"
if ((${#failed_suites[@]})); then
	echo "=== failing suites: ${failed_suites[*]}"
fi
echo "$total_pass passed, $total_fail failed"
((total_fail == 0))
