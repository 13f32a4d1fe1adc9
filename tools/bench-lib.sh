# tools/bench-lib.sh: helpers shared by tools/bench.sh and its sections
# (tools/bench/<name>.sh), sourced after setting BENCH_NAME. Not a section itself.
# Sets BUILD (the caller's first argument, default build), top (the repository) and
# FERRY.
BUILD=${1:-build}
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FERRY=$top/$BUILD/ferry

# The workloads must not inherit a pipe our caller leaked to us (the dump would find an
# unsupported fd): keep 0-2 and bash's own script fd (255).
for fd in /proc/$$/fd/*; do
	fd=${fd##*/}
	((fd > 2 && fd != 255)) && eval "exec $fd>&-" 2>/dev/null
done

die() { echo "bench${BENCH_NAME:+ $BENCH_NAME}: $*" >&2; exit 1; }
# wait_file FILE SECONDS: until FILE is not empty (bounded), else die
wait_file() {
	local i
	for ((i = 0; i < $2 * 100; i++)); do
		[[ -s $1 ]] && return 0
		sleep 0.01
	done
	die "timed out waiting for $1"
}
# wait_gone PID SECONDS: until PID no longer exists (bounded), else die
wait_gone() {
	local i
	for ((i = 0; i < $2 * 100; i++)); do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.01
	done
	die "process $1 still alive"
}
now() { date +%s.%N; }
best() { printf '%s\n' "$@" | sort -g | head -n 1; }
