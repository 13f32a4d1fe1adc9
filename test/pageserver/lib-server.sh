#!/bin/bash
# Shared helpers of the page-server tests (t_hostile_*.sh, t_server_*.sh); sourced, not
# run (test/pageserver/run.sh runs only t_*.sh). Needs BUILD, FERRY, TOP from run.sh.
#
#   ps_init               temp layout: $T/box/srv is the server's -D, $T/box is its parent
#                         (watched: nothing may appear there), $T/loc the peer's local dirs
#   ps_start [ARGS...]    start `ferry pageserver` on a free random loopback port ($PORT),
#                         ready when its --pidfile exists; $PS_PID, log in $PS_LOG
#   ps_stop               SIGTERM, wait (bounded), require exit status 0 and no sanitizer
#                         report on the server's stderr ($T/server.err)
#   peer ARGS...          run ps_peer against $PORT
#   wait_log REGEX        until the server log matches (bounded)
#   check_serving         the server is alive and a full valid round still works
#   check_contained       nothing outside $T/box/srv changed, and the tree under it is
#                         only <source>/<round>/<name> (plus .lock)
# Everything started is killed by PID in the EXIT trap; temp dirs are removed.
set -u
: "${BUILD:?run through test/pageserver/run.sh}" "${FERRY:?}" "${TOP:?}"
PEER=$BUILD/test/zdtm/tools/ps_peer
T=
PS_PID=
PORT=
PS_LOG=
GOOD_N=0
EXTRA_PIDS=()
CLEANUPS=()

fail() {
	echo "FAIL: $*" >&2
	if [[ -n $PS_LOG && -f $PS_LOG ]]; then
		echo "--- server log (tail):" >&2
		tail -n 20 "$PS_LOG" >&2
	fi
	exit 1
}

ps_cleanup() {
	local p
	for p in "${EXTRA_PIDS[@]}"; do
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	if [[ -n $PS_PID ]] && kill -0 "$PS_PID" 2>/dev/null; then
		kill -TERM "$PS_PID" 2>/dev/null
		for _ in $(seq 100); do kill -0 "$PS_PID" 2>/dev/null || break; sleep 0.05; done
		kill -KILL "$PS_PID" 2>/dev/null
		wait "$PS_PID" 2>/dev/null
	fi
	for c in "${CLEANUPS[@]}"; do eval "$c"; done
	[[ -n $T ]] && rm -rf "$T"
}
trap ps_cleanup EXIT

[[ -x $PEER ]] || fail "ps_peer not built: $PEER (make $BUILD/test/zdtm/tools/ps_peer)"

ps_init() {
	T=$(mktemp -d /tmp/ferry-ps-test.XXXXXX)
	mkdir -p "$T/box/srv" "$T/loc"
	(cd "$T/box" && find . -path ./srv -prune -o -print | sort) >"$T/box.before"
}

# ps_start [ARGS...]: retries with another port when the chosen one is taken.
ps_start() {
	local try
	for try in $(seq 10); do
		PORT=$((20000 + RANDOM % 40000))
		PS_LOG=$T/server.log
		rm -f "$T/pid"
		"$FERRY" pageserver --port "$PORT" -D "$T/box/srv" --pidfile "$T/pid" -o "$PS_LOG" \
			"$@" 2>>"$T/server.err" &
		PS_PID=$!
		for _ in $(seq 200); do
			[[ -s $T/pid ]] && return 0
			kill -0 "$PS_PID" 2>/dev/null || break
			sleep 0.05
		done
		wait "$PS_PID" 2>/dev/null
		PS_PID=
		grep -q "Address already in use" "$PS_LOG" 2>/dev/null || fail "pageserver did not start"
	done
	fail "no free port after 10 tries"
}

ps_stop() {
	kill -TERM "$PS_PID" || fail "server already gone"
	local st=0
	for _ in $(seq 200); do kill -0 "$PS_PID" 2>/dev/null || break; sleep 0.05; done
	kill -0 "$PS_PID" 2>/dev/null && fail "server did not stop within 10 s of SIGTERM"
	wait "$PS_PID" || st=$?
	PS_PID=
	((st == 0)) || fail "server exit status $st after SIGTERM"
	check_sanitizer
}

# make SANITIZE=1 builds: any ASan/UBSan report of the server (or a child) fails
check_sanitizer() {
	if grep -qE "Sanitizer|runtime error" "$T/server.err" 2>/dev/null; then
		head -n 40 "$T/server.err" >&2
		fail "sanitizer report from the server"
	fi
}

peer() {
	"$PEER" --port "$PORT" --local "$T/loc" "$@"
}

wait_log() {
	for _ in $(seq 100); do
		grep -qE "$1" "$PS_LOG" && return 0
		sleep 0.05
	done
	fail "server log lacks /$1/"
}

check_serving() {
	kill -0 "$PS_PID" 2>/dev/null || fail "server died"
	GOOD_N=$((GOOD_N + 1))
	local out
	out=$(peer --source good hello round "good-$GOOD_N" - 20000) || fail "good round after the attack failed"
	grep -q "ROUND_DONE good/good-$GOOD_N" <<<"$out" || fail "no ROUND_DONE: $out"
	[[ -f $T/box/srv/good/good-$GOOD_N/inventory.img ]] || fail "good round not complete"
}

check_contained() {
	(cd "$T/box" && find . -path ./srv -prune -o -print | sort) >"$T/box.after"
	diff -u "$T/box.before" "$T/box.after" || fail "files appeared outside the server directory"
	local bad
	bad=$(cd "$T/box/srv" && find . -mindepth 1 | awk -F/ '
		NF == 2 { next }                                 # ./<source>
		NF == 3 && ($3 == ".lock" || $3 !~ /^\./) { next } # ./<source>/<round> or .lock
		NF == 4 && $4 !~ /^\./ { next }                  # ./<source>/<round>/<file>
		{ print }')
	[[ -z $bad ]] || fail "unexpected paths in the server directory: $bad"
}

# No round directory of SOURCE/ROUND left (partial rounds are removed).
check_no_round() {
	[[ ! -e $T/box/srv/$1 ]] || fail "partial round '$1' left: $(ls -la "$T/box/srv/$1")"
}
