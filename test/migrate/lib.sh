# test/migrate/lib.sh: two "hosts" on one machine for migration tests (sourced).
#
# hosts_up creates two network namespaces joined by a veth pair (plus loopback in each):
#   $SRC_NS  10.231.$net.1/30  (the workload and migrate)
#   $DST_NS  10.231.$net.2/30  (the page server)
# 10.231.0.0/16 is private and the namespaces have no other interface or route, so
# nothing leaves the machine. Names carry our PID so parallel runs do not collide.
# run_src / run_dst CMD... run a command in one of them; only the network namespace is
# entered (nsenter --net), so both share ferry's mount and pid namespaces (`ip netns
# exec` would give every command its own mount namespace). hosts_down removes both
# (the veth pair goes with them); call it from an EXIT trap.

SRC_NS=ferry-src-$$
DST_NS=ferry-dst-$$
net=$(($$ % 250 + 1))
SRC_IP=10.231.$net.1
DST_IP=10.231.$net.2

hosts_up() {
	ip netns add "$SRC_NS" || return 1
	ip netns add "$DST_NS" || { ip netns del "$SRC_NS"; return 1; }
	ip link add "fs$$" type veth peer name "fd$$" || return 1
	ip link set "fs$$" netns "$SRC_NS" || return 1
	ip link set "fd$$" netns "$DST_NS" || return 1
	ip -n "$SRC_NS" addr add "$SRC_IP/30" dev "fs$$" || return 1
	ip -n "$DST_NS" addr add "$DST_IP/30" dev "fd$$" || return 1
	ip -n "$SRC_NS" link set lo up && ip -n "$DST_NS" link set lo up || return 1
	ip -n "$SRC_NS" link set "fs$$" up && ip -n "$DST_NS" link set "fd$$" up || return 1
}

hosts_down() {
	local p
	# whatever runs in our namespaces was started by this test (a migrated tree too)
	for p in $(ip netns pids "$SRC_NS" 2>/dev/null) $(ip netns pids "$DST_NS" 2>/dev/null); do
		kill -9 "$p" 2>/dev/null
	done
	ip netns del "$SRC_NS" 2>/dev/null
	ip netns del "$DST_NS" 2>/dev/null
	return 0
}

run_src() { nsenter --net="/run/netns/$SRC_NS" "$@"; }
run_dst() { nsenter --net="/run/netns/$DST_NS" "$@"; }

# wait_for CMD... : retry CMD every 10 ms for at most WAIT_S seconds (default 20).
wait_for() {
	local i
	for ((i = 0; i < ${WAIT_S:-20} * 100; i++)); do
		"$@" 2>/dev/null && return 0
		sleep 0.01
	done
	echo "timed out waiting for: $*" >&2
	return 1
}

# ---- test scaffolding (the t_*.sh scripts) -------------------------------------------
# Environment from test/lib/run-scripts.sh: BUILD, FERRY, TOP. Everything started here
# is remembered by PID and killed in the EXIT trap; namespaces and the work dir removed.
W=$(mktemp -d /tmp/ferry-mig.XXXXXX)
PIDS=()
SRV=""
PORT=""
KEY=$W/key

mig_cleanup() {
	local p
	for p in "${PIDS[@]}" $SRV; do kill -9 "$p" 2>/dev/null; done
	for p in "${PIDS[@]}" $SRV; do wait "$p" 2>/dev/null; done
	hosts_down
	rm -rf "$W"
}
trap mig_cleanup EXIT

die() {
	echo "FAIL: $*" >&2
	for f in "$W"/*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -n 15 "$f" >&2; }; done
	exit 1
}
alive() { kill -0 "$1" 2>/dev/null && [ "$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)" != Z ]; }
gone() { ! alive "$1"; }
nonempty() { [ -s "$1" ]; }

# dst_server [pageserver options...]: a keyed page server on $DST_IP in the destination
# namespace, on a random free port (retried); sets SRV and PORT
dst_server() {
	local try
	head -c 32 /dev/urandom >"$KEY" && chmod 600 "$KEY"
	mkdir -p "$W/srv"
	for ((try = 0; try < 10; try++)); do
		PORT=$((20000 + RANDOM % 40000))
		rm -f "$W/srv.pid"
		# nsenter directly (a backgrounded function would be a subshell: $! must be
		# the page server itself, to be signalled)
		nsenter --net="/run/netns/$DST_NS" "$FERRY" pageserver --address "$DST_IP" \
			--port "$PORT" -D "$W/srv" \
			--auth-key "$KEY" --pidfile "$W/srv.pid" -v4 -o "$W/srv.log" "$@" \
			</dev/null >"$W/srv.out" 2>&1 &
		SRV=$!
		WAIT_S=10 wait_for nonempty "$W/srv.pid" && return 0
		wait "$SRV" 2>/dev/null
		SRV=""
		grep -qi 'in use' "$W/srv.log" "$W/srv.out" 2>/dev/null || break
	done
	die "cannot start the page server in $DST_NS"
}

# src_zdtm NAME: start zdtm test NAME in the source namespace (own session); sets T
src_zdtm() {
	local bin=$BUILD/test/zdtm/$1
	[ -x "$bin" ] || die "$bin missing"
	rm -f "$W/ready"
	ZDTM_READY="$W/ready" setsid nsenter --net="/run/netns/$SRC_NS" "$bin" \
		>"$W/$1.out" 2>&1 </dev/null &
	T=$!
	PIDS+=("$T")
	WAIT_S=20 wait_for nonempty "$W/ready" || die "$1 not ready"
}

# migrate_src ARGS...: migrate in the source namespace with our key and work dir
migrate_src() {
	run_src "$FERRY" migrate --to "$DST_IP:$PORT" --auth-key "$KEY" --work-dir "$W/work" "$@"
}

# migrate_bg ARGS...: the same in the background, as our direct child (so that signals
# reach migrate itself, not a subshell); sets M
migrate_bg() {
	nsenter --net="/run/netns/$SRC_NS" "$FERRY" migrate --to "$DST_IP:$PORT" \
		--auth-key "$KEY" --work-dir "$W/work" "$@" &
	M=$!
	PIDS+=("$M")
}

# srv_kill: the page server dies whole (listener and connection children), like its host
srv_kill() {
	local kids
	kids=$(pgrep -P "$SRV")
	kill -9 "$SRV" $kids 2>/dev/null
	wait "$SRV" 2>/dev/null
	SRV=""
}

# json_num FILE KEY: a top-level number of migrate's --json summary
json_num() { sed -n "s/.*\"$2\": \([-0-9.]*\).*/\1/p" "$1" | head -n 1; }

# moved_verify LABEL JSON TEST: after a successful migrate --json of zdtm TEST ($T): the
# source is gone, the destination's pid runs, and the test verifies there
moved_verify() {
	WAIT_S=10 wait_for gone "$T" || die "$1: the source process $T still runs"
	local dpid
	dpid=$(json_num "$2" dest_pid)
	[ -n "$dpid" ] && alive "$dpid" || die "$1: no running destination pid ($dpid)"
	zdtm_verify "$3" "$dpid"
}

# zdtm_verify NAME PID: SIGTERM the (restored or original) test; it must print PASS
zdtm_verify() {
	kill -TERM "$2" 2>/dev/null || die "$1 ($2) is not running"
	WAIT_S=30 wait_for gone "$2" || die "$1 ($2) did not stop on SIGTERM"
	grep -q '^PASS' "$W/$1.out" || die "$1 did not verify: $(grep -m1 -v '^$' "$W/$1.out")"
}

# src_hog MIB: tools/bench/memhog (random pages, verifies them on SIGTERM: exit 0) in
# the source namespace; sets T
src_hog() {
	rm -f "$W/hog.ready"
	setsid nsenter --net="/run/netns/$SRC_NS" "$BUILD/tools/bench/memhog" "$1" \
		"$W/hog.ready" verify </dev/null >/dev/null 2>&1 &
	T=$!
	PIDS+=("$T")
	WAIT_S=60 wait_for nonempty "$W/hog.ready" || die "memhog not ready"
}

# hog_verify: SIGTERM the original memhog; it must exit 0 (its memory intact, it ran on)
hog_verify() {
	alive "$T" || die "the source memhog $T is gone"
	[ "$(awk '{ print $3 }' /proc/"$T"/stat)" != T ] || die "the source memhog $T is stopped"
	kill -TERM "$T"
	wait "$T"
	local rc=$?
	((rc == 0)) || die "the source memhog failed to verify its memory after the failed migration (exit $rc)"
}

# dst_empty: no process of the tree runs in the destination namespace (only the page
# server and its connection children may)
dst_empty() {
	local p
	for p in $(ip netns pids "$DST_NS"); do
		[ "$p" = "$SRV" ] && continue
		[ "$(cat /proc/"$p"/comm 2>/dev/null)" = ferry ] && continue
		echo "process $p ($(cat /proc/"$p"/comm 2>/dev/null)) runs in the destination" >&2
		return 1
	done
	return 0
}

# log_has FILE REGEX: the log names the cause
log_has() { grep -Eq "$2" "$1" || die "$1 does not say '$2': $(grep -m1 error "$1")"; }
