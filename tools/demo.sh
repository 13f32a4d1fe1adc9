#!/usr/bin/env bash
# make demo: (1) checkpoint a running process, kill it, restore it, and show that it
# continued where it was (same PID, counter keeps counting, memory checksum intact);
# (2) live-migrate it between two "hosts" on this machine (network namespaces joined by a
# veth pair, a keyed page server on the destination) and show it running there.
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
srv=
SRC_NS=ferry-demo-src-$$
DST_NS=ferry-demo-dst-$$
cleanup() {
	local p
	[[ -n $pid ]] && kill -9 "$pid" 2>/dev/null
	[[ -n $srv ]] && kill -9 "$srv" 2>/dev/null
	for p in $(ip netns pids "$SRC_NS" 2>/dev/null) $(ip netns pids "$DST_NS" 2>/dev/null); do
		kill -9 "$p" 2>/dev/null
	done
	ip netns del "$SRC_NS" 2>/dev/null
	ip netns del "$DST_NS" 2>/dev/null
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

# ---- part 2: live migration -------------------------------------------------------
say "two hosts on this machine: network namespaces $SRC_NS and $DST_NS, a veth pair"
ip netns add "$SRC_NS" && ip netns add "$DST_NS" || exit 1
ip link add "dms$$" type veth peer name "dmd$$" || exit 1
ip link set "dms$$" netns "$SRC_NS" && ip link set "dmd$$" netns "$DST_NS" || exit 1
ip -n "$SRC_NS" addr add 10.239.0.1/30 dev "dms$$" && ip -n "$DST_NS" addr add 10.239.0.2/30 dev "dmd$$" || exit 1
for ns in "$SRC_NS" "$DST_NS"; do ip -n "$ns" link set lo up; done
ip -n "$SRC_NS" link set "dms$$" up && ip -n "$DST_NS" link set "dmd$$" up || exit 1
ip -n "$SRC_NS" -br addr show "dms$$"
ip -n "$DST_NS" -br addr show "dmd$$"

say "destination: pageserver --address 10.239.0.2 --port 4750 --auth-key KEY   (in $DST_NS)"
head -c 32 /dev/urandom >"$work/key"
chmod 600 "$work/key"
nsenter --net="/run/netns/$DST_NS" "$FERRY" pageserver --address 10.239.0.2 --port 4750 \
	-D "$work/dst" --auth-key "$work/key" --pidfile "$work/srv.pid" -o "$work/srv.log" \
	</dev/null >/dev/null 2>&1 &
srv=$!
disown "$srv" # no job notices: we watch its log and signal it by pid
wait_for "$work/srv.log" 'listening on' 20 || exit 1

say "source: the counter again, started in $SRC_NS"
kill -9 "$rpid"
pid=
: >"$work/counter.out"
(
	for fd in /proc/$BASHPID/fd/*; do
		fd=${fd##*/}
		((fd > 2)) && eval "exec $fd>&-"
	done
	exec setsid nsenter --net="/run/netns/$SRC_NS" "$COUNTER" >"$work/counter.out" 2>&1 </dev/null
) &
pid=$!
disown "$pid"
wait_for "$work/counter.out" '^tick 3 ' 20 || exit 1
echo "counter pid $pid, network namespace: $(ip netns identify "$pid")"

say "source: migrate --to 10.239.0.2:4750 --auth-key KEY $pid"
nsenter --net="/run/netns/$SRC_NS" "$FERRY" migrate --to 10.239.0.2:4750 \
	--auth-key "$work/key" --work-dir "$work/src" "$pid" || exit 1
for ((i = 0; i < 500; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.01; done
kill -0 "$pid" 2>/dev/null && { echo "demo: the source still runs after migrate" >&2; exit 1; }
pid=
last=$(tail -n 1 "$work/counter.out" | awk '{print $2}')
mpid=$(awk '/round .* tree restored as pid/ { for (i = 1; i <= NF; i++) if ($i == "pid") print $(i + 1) }' "$work/srv.log" | tail -n 1)
wait_for "$work/counter.out" "^tick $((last + 5)) " 20 || exit 1
say "the destination staged each pre-copy round as it arrived, then built the tree from it"
grep -E "round '[^']*' staged|memory from the warm staging|tree restored as" "$work/srv.log" |
	sed 's/^.*info: //; s/ (src\/.*//'
say "it runs on the destination: host pid $mpid, network namespace $(ip netns identify "$mpid")"
tail -n 3 "$work/counter.out"
grep -q BAD "$work/counter.out" && { echo "demo: FAILED: checksum mismatch after migration" >&2; exit 1; }
kill -9 "$mpid"
kill -TERM "$srv"
srv=
echo "demo: OK"
