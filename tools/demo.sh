#!/usr/bin/env bash
# make demo: checkpoint a running process, kill it, restore it, and show that it
# continued where it was (same PID, counter keeps counting, memory checksum intact).
set -u
# Children must not inherit fds our caller leaked to us (a pipe to elsewhere would make
# them unsupported for dump): keep 0-2 and bash's own script fd (255).
for fd in /proc/$$/fd/*; do
	fd=${fd##*/}
	((fd > 2 && fd != 255)) && eval "exec $fd>&-" 2>/dev/null
done
BUILD=${1:-build}
top=$(cd "$(dirname "$0")/.." && pwd)
FERRY=$top/$BUILD/ferry
COUNTER=$top/$BUILD/tools/demo/counter
work=$(mktemp -d /tmp/ferry-demo.XXXXXX)
pid=
cleanup() {
	[[ -n $pid ]] && kill -9 "$pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# wait_for FILE PATTERN SECONDS: wait until a line matching PATTERN appears (bounded)
wait_for() {
	local i
	for ((i = 0; i < $3 * 100; i++)); do
		grep -qE "$2" "$1" 2>/dev/null && return 0
		sleep 0.01
	done
	echo "demo: timed out waiting for '$2' in $1" >&2
	return 1
}

say "starting the demo workload: a counter that rewrites and verifies 64 MiB of memory"
# start it with only stdin/stdout/stderr open (whatever else the caller leaked stays here)
(
	for fd in /proc/$BASHPID/fd/*; do
		fd=${fd##*/}
		((fd > 2)) && eval "exec $fd>&-"
	done
	exec setsid "$COUNTER" >"$work/counter.out" 2>&1 </dev/null
) &
pid=$!
wait_for "$work/counter.out" '^tick 5 ' 20 || exit 1
tail -n 3 "$work/counter.out"

say "ferry dump -t $pid -D $work/img   (freezes it, writes images, kills it)"
"$FERRY" dump -t "$pid" -D "$work/img" || exit 1
{ wait "$pid"; } 2>/dev/null
last=$(tail -n 1 "$work/counter.out")
echo "last line before the checkpoint: $last"
kill -0 "$pid" 2>/dev/null && { echo "demo: process still alive after dump" >&2; exit 1; }
echo "process $pid is gone. Images:"
ls -l "$work/img" | sed 1d
du -sh "$work/img"

say "ferry restore -D $work/img -d   (recreates it with the same PID)"
"$FERRY" restore -D "$work/img" -d --pidfile "$work/rpid" || exit 1
rpid=$(cat "$work/rpid")
pid=$rpid
echo "restored PID: $rpid"
lastn=$(echo "$last" | awk '{print $2}')
wait_for "$work/counter.out" "^tick $((lastn + 5)) " 20 || exit 1
tail -n 4 "$work/counter.out"
if grep -q BAD "$work/counter.out"; then
	echo "demo: FAILED: memory checksum mismatch after restore" >&2
	exit 1
fi
say "it continued: ticks went on from $lastn with the same PID and an intact checksum"
kill -9 "$rpid"
pid=
echo "demo: OK"
