# Helpers for the streaming tests (test/pageserver/t_stream_*.sh), sourced by them.
# Environment from test/pageserver/run.sh: BUILD, FERRY, TOP.
# Everything started here is remembered by PID and stopped in the EXIT trap; the work
# directory is removed. Waits poll a condition with a deadline, never a bare sleep.
set -u
W=$(mktemp -d /tmp/ps-stream.XXXXXX)
PIDS=()	# processes of ours to kill at exit
SRV=""	# pageserver pid
PORT=""

stream_cleanup() {
	local p
	for p in "${PIDS[@]}" $SRV; do kill -9 "$p" 2>/dev/null; done
	for p in "${PIDS[@]}" $SRV; do wait "$p" 2>/dev/null; done
	rm -rf "$W"
}
trap stream_cleanup EXIT

die() { echo "FAIL: $*" >&2; exit 1; }
# fy ARGS...: ferry with a deadline (a hang fails the step, with status 124, instead of
# the whole script timing out silently)
fy() { timeout -k 5 120 "$FERRY" "$@"; }
tick() { sleep 0.02; }

# wait_for SEC CMD...: poll CMD until it succeeds; 1 after SEC seconds
wait_for() {
	local n=$(($1 * 50)) i
	shift
	for ((i = 0; i < n; i++)); do
		"$@" && return 0
		tick
	done
	return 1
}
alive() { kill -0 "$1" 2>/dev/null && [ "$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)" != Z ]; }
gone() { ! alive "$1"; }
nonempty() { [ -s "$1" ]; }

# server_start DIR [pageserver options...]: a pageserver on a free loopback port
# (random, retried when taken); sets SRV and PORT
server_start() {
	local dir=$1 try
	shift
	mkdir -p "$dir"
	for ((try = 0; try < 10; try++)); do
		PORT=$((20000 + RANDOM % 40000))
		rm -f "$W/srv.pid"
		"$FERRY" pageserver --port "$PORT" -D "$dir" --pidfile "$W/srv.pid" -v4 \
			-o "$W/srv.log" "$@" </dev/null >"$W/srv.out" 2>&1 &
		SRV=$!
		wait_for 10 nonempty "$W/srv.pid" && return 0
		wait "$SRV" 2>/dev/null
		SRV=""
		grep -qi 'in use' "$W/srv.log" "$W/srv.out" 2>/dev/null || break
	done
	cat "$W/srv.out" "$W/srv.log" >&2 2>/dev/null
	die "cannot start the pageserver"
}

# server_stop: SIGTERM, bounded wait
server_stop() {
	[ -n "$SRV" ] || return 0
	kill -TERM "$SRV"
	wait_for 10 gone "$SRV" || die "pageserver $SRV did not stop on SIGTERM"
	wait "$SRV" 2>/dev/null
	SRV=""
}

# hog_start KIND MIB: tools/bench/KIND (memhog/heaphog) with verify, our child in its
# own session; sets HOG
hog_start() {
	rm -f "$W/hog.ready"
	setsid "$BUILD/tools/bench/$1" "$2" "$W/hog.ready" verify </dev/null >/dev/null 2>&1 &
	HOG=$!
	PIDS+=("$HOG")
	wait_for 60 nonempty "$W/hog.ready" || die "$1 not ready"
	[ "$(cat "$W/hog.ready")" = "$HOG" ] || die "$1 pid mismatch"
}

# hog_verify: SIGTERM our (original, still running) hog; it must exit 0 (memory intact)
hog_verify() {
	kill -TERM "$HOG"
	wait "$HOG"
	local rc=$?
	[ "$rc" = 0 ] || die "$1: the process's memory check failed (exit $rc)"
}

# restore_verify DIR: restore DIR (ferry waits for the restored hog and exits with its
# status), SIGTERM the hog, expect 0
restore_verify() {
	rm -f "$W/rpid"
	fy restore -D "$1" --pidfile "$W/rpid" -v4 -o "$W/restore.log" &
	local r=$!
	PIDS+=("$r")
	wait_for 60 nonempty "$W/rpid" || { cat "$W/restore.log" >&2; die "restore of $1: no pidfile"; }
	kill -TERM "$(cat "$W/rpid")"
	wait "$r"
	local rc=$?
	[ "$rc" = 0 ] || { tail -n 5 "$W/restore.log" >&2; die "restored process from $1 failed to verify (exit $rc)"; }
}

# manifest_hash DIR NAME: the xxh64 of NAME in DIR's inventory
manifest_hash() {
	"$FERRY" show "$1/inventory.img" | tr -d ' \n' |
		grep -o "\"name\":\"$2\",\"size\":[0-9]*,\"xxh64\":\"0x[0-9a-f]*\"" | grep -o '0x[0-9a-f]*'
}

# json_field FILE ROUND KEY: a number from the {"transport"...} line of FILE, round ROUND
json_field() {
	grep '^{"transport"' "$1" | grep -o "{\"round\":\"$2\"[^}]*}" | head -n 1 |
		grep -o "\"$3\":[0-9.a-z\"]*" | head -n 1 | cut -d: -f2 | tr -d '"'
}
