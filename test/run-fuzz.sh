#!/usr/bin/env bash
# Smoke-run libFuzzer targets: test/run-fuzz.sh BUILD BIN...
# Each fuzzer runs for a bounded time (FUZZ_TIME seconds, default 20) with a fixed seed,
# on a temporary corpus seeded from test/fuzz/corpus/<name>/ (the seeds are never
# modified). A crash, leak, sanitizer report or timeout fails it; the reproducer is kept
# in BUILD/fuzz/artifacts/. Prints PASS/FAIL name, and last "N passed, N failed".
set -u
BUILD=${1:?usage: run-fuzz.sh BUILD BIN...}
shift
top=$(cd "$(dirname "$0")/.." && pwd)
time_s=${FUZZ_TIME:-20}
pass=0
fail=0
artifacts="$BUILD/fuzz/artifacts"
mkdir -p "$artifacts"
for bin in "$@"; do
	name=$(basename "$bin")
	if [[ ! -x $bin ]]; then
		echo "FAIL $name (not built: $bin)"
		fail=$((fail + 1))
		continue
	fi
	corpus=$(mktemp -d)
	log=$(mktemp)
	if [[ -d $top/test/fuzz/corpus/$name ]]; then
		cp "$top/test/fuzz/corpus/$name"/* "$corpus"/ 2>/dev/null
	fi
	timeout -k 10 $((time_s + 60)) "$bin" -max_total_time="$time_s" -rss_limit_mb=2048 \
		-seed=1 -timeout=10 -max_len=8192 -print_final_stats=1 \
		-artifact_prefix="$artifacts/$name-" "$corpus" >"$log" 2>&1
	rc=$?
	runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
	if ((rc == 0)); then
		echo "PASS $name (${runs:-?} runs in ${time_s} s)"
		pass=$((pass + 1))
	else
		echo "FAIL $name (exit $rc; reproducer in $artifacts)"
		grep -E 'ERROR|SUMMARY|#0 |#1 |#2 |#3 |Test unit written' "$log" | head -n 30 | sed 's/^/    /'
		fail=$((fail + 1))
	fi
	rm -rf "$corpus" "$log"
done
echo "$pass passed, $fail failed"
((fail == 0))
