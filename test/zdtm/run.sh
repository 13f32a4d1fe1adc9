#!/bin/bash
# zdtm runner: drive each test program of test/zdtm/static through a checkpoint and a
# restore with ferry, in one or more flavours, and report PASS/FAIL per test+flavour.
#
#   test/zdtm/run.sh [--build DIR] [--flavor plain|detach|leave-running|pre|warm|partial|pidns|page-server|migrate|none|all]
#                    [--keep] [--timeout SEC] [--pre N] [TEST...]
#
# Flavours: none (no checkpoint: start, ready, SIGTERM, PASS), plain (dump kills the
# original, restore waits for the restored process), detach (restore -d; the restored
# process is reparented to this runner), leave-running (dump --leave-running, then the
# original is killed and the images restored), pre (N pre-dump rounds, --pre N, default
# 2, then a dump on top of them and a restore), warm (pre, restored with --warm: the
# memory staged from the chain first, as a migration's warm destination builds it; a test
# allowed in pre runs in warm too), pidns (dump kills the original, restore
# --pidns puts the tree in a new pid namespace under a ferry init: it keeps its PIDs
# inside, the runner follows the root by its host pid; the tree has its own /proc),
# page-server (one pageserver per run on a free loopback port; a test that may be
# pre-dumped gets one pre-dump round, then the dump, both streamed with --page-server
# under its own --source-id; the restore reads the server's directory), migrate
# (`ferry migrate` to that page server: pre-copy rounds, the final dump held frozen, the
# server restores the tree into a new pid namespace (the original still holds the
# pids) and confirms; the runner follows the root by its host pid; a test expected to
# fail its dump must fail its migration the same way and keep running, untouched).
# "all" = plain detach leave-running pre warm pidns page-server migrate (pre and warm
# only once ferry implements pre-dump).
# A test's <name>.desc (key: value lines) may say: skip: REASON, opts: EXTRA OPTIONS,
# flavors: LIST, expect: dump-fail, timeout: SEC, blocked: SYSCALL-NRS, pidns-root: yes
# (run as PID 1 of its own pid namespace), pre-gap: SEC (pre: rounds SEC s apart),
# maps: volatile (pre: no /proc comparison, the test checks itself), no-migrate: REASON
# (the migrate flavour on one host cannot run it). See docs/testing.md.
#
# The runner re-executes itself under tools/subreaper (PR_SET_CHILD_SUBREAPER) so that
# detached restored processes become its children and are reaped by bash.
# Exit: 0 when every test passed, 1 otherwise. Last line: "N passed, N failed".
set -u

SELF=$(readlink -f "$0")
ROOT=$(cd "$(dirname "$SELF")/../.." && pwd)
BUILD=build
FLAVOR=all
KEEP=0
TIMEOUT=30
NPRE=2
TESTS=()
ARGS=("$@")

while [ $# -gt 0 ]; do
	case "$1" in
	--build) BUILD=$2; shift 2 ;;
	--flavor|--flavour) FLAVOR=$2; shift 2 ;;
	--keep) KEEP=1; shift ;;
	--timeout) TIMEOUT=$2; shift 2 ;;
	--pre) NPRE=$2; shift 2 ;;
	-h|--help) sed -n '2,/^set -u/p' "$SELF" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0 ;;
	-*) echo "run.sh: unknown option '$1'" >&2; exit 2 ;;
	*) TESTS+=("$1"); shift ;;
	esac
done

case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
FERRY="$BUILD/ferry"
ZBIN="$BUILD/test/zdtm"
SUBREAPER="$ZBIN/tools/subreaper"

case "$FLAVOR" in
all) FLAVORS=(plain detach leave-running pre warm partial pidns page-server migrate) ;;
plain|detach|leave-running|none|pre|warm|partial|pidns|page-server|migrate) FLAVORS=("$FLAVOR") ;;
*) echo "run.sh: unknown flavour '$FLAVOR'" >&2; exit 2 ;;
esac

if [ "${ZDTM_SUBREAPER:-}" != "$$" ]; then
	if [ ! -x "$SUBREAPER" ]; then
		echo "run.sh: $SUBREAPER missing (make BUILD=... $SUBREAPER)" >&2
		exit 2
	fi
	# exec keeps our pid, so the child can recognise it is already under the reaper
	export ZDTM_SUBREAPER=$$
	exec "$SUBREAPER" /bin/bash "$SELF" "${ARGS[@]}"
fi

if [ "$FLAVOR" != none ] && [ ! -x "$FERRY" ]; then
	echo "run.sh: $FERRY missing (build first)" >&2
	exit 2
fi
# "all" includes pre only once ferry has a pre-dump command (asked explicitly, it runs)
if [ "$FLAVOR" = all ] && "$FERRY" pre-dump 2>&1 | grep -q 'not implemented'; then
	FLAVORS=(plain detach leave-running pidns page-server migrate)
	echo "note: ferry pre-dump is not implemented yet: flavour pre left out of 'all'"
fi

# Tests must start with a clean fd table: close whatever our caller leaked to us
# (bash keeps the script itself open on a high fd; leave that one).
for fd in /proc/$$/fd/*; do
	fd=${fd##*/}
	[ "$fd" -gt 2 ] && [ "$fd" -lt 255 ] || continue
	[ "$(readlink "/proc/$$/fd/$fd")" = "$SELF" ] && continue
	eval "exec $fd>&-"
done

# ---- state and cleanup ------------------------------------------------------------
LIVE_PIDS=()		# pids we started (tests, restores) that may still run
DIRS=()			# temp dirs to remove
NPASS=0
NFAIL=0
NSKIP=0

cleanup() {
	local p
	ps_stop
	for p in "${LIVE_PIDS[@]}"; do
		alive "$p" && kill -9 "$p" 2>/dev/null
	done
	# a killed ferry may still be writing its images: let it go before removing them
	for p in "${LIVE_PIDS[@]}"; do wait_gone "$p" 5; done
	if [ "$KEEP" = 0 ]; then
		rm -rf "${DIRS[@]}" 2>/dev/null
	else
		[ ${#DIRS[@]} -gt 0 ] && echo "kept: ${DIRS[*]}"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 10 ms pause. Not `read -t`: bash 5.2 can abort when a trapped signal lands inside a
# timed read, and the cleanup trap would not run.
tick() { sleep 0.01; } 2>/dev/null	# (mutes "Killed" job notes too)

# alive PID: running, not a zombie
alive() {
	local st
	kill -0 "$1" 2>/dev/null || return 1
	st=$(sed -E 's/.*\) (.) .*/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
	[ "$st" != Z ] && [ -n "$st" ]
} 2>/dev/null	# also mutes bash's "Killed" notes for jobs reaped meanwhile

# wait_gone PID SEC: poll until PID is gone; 0 if gone in time
wait_gone() {
	local i n=$(($2 * 100))
	for ((i = 0; i < n; i++)); do
		alive "$1" || return 0
		tick
	done
	return 1
}

# wait_file FILE SEC [PID]: poll until FILE exists (non-empty); stop early when PID dies
wait_file() {
	local i n=$(($2 * 100))
	for ((i = 0; i < n; i++)); do
		[ -s "$1" ] && return 0
		if [ -n "${3:-}" ] && ! alive "$3"; then
			[ -s "$1" ] && return 0
			return 1
		fi
		tick
	done
	return 1
}

forget() {
	local p keep=()
	for p in "${LIVE_PIDS[@]}"; do [ "$p" != "$1" ] && keep+=("$p"); done
	LIVE_PIDS=("${keep[@]}")
}

# descendants PID: every descendant of PID (children first found, recursively)
descendants() {
	local c
	for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do
		echo "$c"
		descendants "$c"
	done
}

# kill_tree PID: SIGKILL PID and all its descendants (collected first: once PID dies they
# are reparented to us), then wait until none is alive, so that their PIDs are free for
# the restore that follows. 1 if one survives 5 s.
kill_tree() {
	local p pids
	pids=("$1" $(descendants "$1"))
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
	for p in "${pids[@]}"; do wait_gone "$p" 5 || return 1; done
}

# reap PID SEC: wait for our child PID (bounded; kill -9 after SEC); sets RC
reap() {
	if ! wait_gone "$1" "$2"; then
		kill -9 "$1" 2>/dev/null
		wait "$1" 2>/dev/null
		RC=timeout
		forget "$1"
		return 1
	fi
	wait "$1" 2>/dev/null
	RC=$?
	forget "$1"
	return 0
}

# desc_get NAME KEY: value of KEY in NAME.desc (empty if none)
desc_get() {
	local f="$ROOT/test/zdtm/static/$1.desc"
	[ -f "$f" ] || return 0
	sed -n "s/^$2:[[:space:]]*//p" "$f" | head -n1
}

# ---- the page server (page-server flavour) ------------------------------------------
PS_PID=""		# the pageserver of this run
PS_PORT=""
PS_DIR=""		# its -D
PS_RUNS=0		# source ids: one per test run

# ps_start: a pageserver on a free loopback port (a random one; bounded retries when
# it is taken), ready once its pidfile exists. 0 or 1 (message printed).
ps_start() {
	local try port log
	PS_DIR=$(mktemp -d /tmp/zdtm-pageserver.XXXXXX)
	DIRS+=("$PS_DIR")
	mkdir -p "$PS_DIR/images"
	for ((try = 0; try < 10; try++)); do
		port=$((20000 + RANDOM % 40000))
		log="$PS_DIR/server.log"
		rm -f "$PS_DIR/pid"
		"$FERRY" pageserver --port "$port" -D "$PS_DIR/images" --pidfile "$PS_DIR/pid" \
			-v4 -o "$log" </dev/null >"$PS_DIR/server.stdout" 2>&1 &
		PS_PID=$!
		if wait_file "$PS_DIR/pid" 10 "$PS_PID"; then
			PS_PORT=$port
			return 0
		fi
		wait "$PS_PID" 2>/dev/null
		PS_PID=""
		grep -qi 'in use' "$log" "$PS_DIR/server.stdout" 2>/dev/null || break
	done
	echo "run.sh: cannot start a pageserver: $(tail -n 3 "$PS_DIR/server.stdout" "$log" 2>/dev/null | tr '\n' ' ')" >&2
	return 1
}

# ps_stop: SIGTERM our pageserver (by PID), SIGKILL after 10 s
ps_stop() {
	[ -n "$PS_PID" ] || return 0
	kill -TERM "$PS_PID" 2>/dev/null
	wait_gone "$PS_PID" 10 || kill -9 "$PS_PID" 2>/dev/null
	wait "$PS_PID" 2>/dev/null
	PS_PID=""
}

# ---- generic state check ----------------------------------------------------------
# Besides what each test verifies itself, the runner compares what /proc shows of the
# process before the dump and after the restore: its whole maps and the task-state
# fields of status below. Both snapshots are taken with the process in the same
# syscall (or running): the restored process is given a few seconds to get back there.
STATUS_KEYS='Name|Umask|Uid|Gid|Groups|NSpgid|NSsid|THP_enabled|Threads|SigPnd|ShdPnd|SigBlk|SigIgn|SigCgt|CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp|Seccomp_filters|Speculation_Store_Bypass|SpeculationIndirectBranch|Cpus_allowed_list|Mems_allowed_list'

# snap_state FILE: maps + status keys of $PID; records its syscall in SNAPNR. The inode
# of a shared anonymous mapping ("/dev/zero (deleted)") or of a memfd is a new shmem
# object after a restore by nature: it is blanked.
# In the pidns flavour the NS* ids are compared as seen inside the tree's namespace
# (the last field).
snap_state() {
	SNAPNR=$(cut -d' ' -f1 "/proc/$PID/syscall" 2>/dev/null)
	awk '$6 == "/dev/zero" || $6 ~ /^\/memfd:/ { $5 = "-" } { print }' "/proc/$PID/maps" >"$1.maps" 2>/dev/null
	grep -E "^($STATUS_KEYS):" "/proc/$PID/status" 2>/dev/null |
		awk '/^NS/ { print $1 "\t" $NF; next } { print }' >"$1.status"
}

# same_syscall NR: NR is where the process was at the snapshot ($SYSNR), or
# restart_syscall (219: an interrupted sleep continuing), or one of the test's blocked:
same_syscall() {
	[ "$1" = "$SYSNR" ] || [ "$1" = 219 ] || { [ -n "$BLOCKED" ] && [[ " $BLOCKED " == *" $1 "* ]]; }
}

# check_state WHAT: the process ($PID) must show the state of $DIR/state.before again.
# The status fields are compared only when it is in the very same syscall as before
# (sigsuspend, for one, shows a temporary mask).
check_state() {
	local i nr
	for ((i = 0; i < 500; i++)); do
		nr=$(cut -d' ' -f1 "/proc/$PID/syscall" 2>/dev/null)
		[ "$nr" = "$SYSNR" ] && break
		# restart_syscall etc.: acceptable, but give the exact one half a second
		[ $i -ge 50 ] && same_syscall "$nr" && break
		alive "$PID" || break
		tick
	done
	same_syscall "$nr" || { failed "$1: in syscall '$nr', was in '$SYSNR' before the dump"; return 1; }
	snap_state "$DIR/state.after"
	diff_state "$1" maps || return 1
	# still (or again) in the same syscall while the status was read?
	[ "$nr" = "$SYSNR" ] && [ "$SNAPNR" = "$SYSNR" ] || return 0
	diff_state "$1" status
}

diff_state() {	# WHAT maps|status
	cmp -s "$DIR/state.before.$2" "$DIR/state.after.$2" && return 0
	failed "$1: /proc $2 differs: $(diff "$DIR/state.before.$2" "$DIR/state.after.$2" |
		grep '^[<>]' | head -n 6 | tr -s ' \t' ' ' | tr '\n' '|')"
	return 1
}

# ---- one test run -----------------------------------------------------------------
REASON=""
failed() { REASON="$*"; return 1; }

start_test() {
	[ "$PIDNS_ROOT" = yes ] && { start_pidns_root || return 1; }
	if [ "$PIDNS_ROOT" != yes ]; then
		ZDTM_READY="$DIR/ready" setsid "$BIN" >"$DIR/$NAME.out" 2>&1 </dev/null &
		PID=$!
		LIVE_PIDS+=("$PID")
		wait_file "$DIR/ready" 10 "$PID" || { reap "$PID" 1; failed "not ready in 10 s (status $RC)"; return 1; }
		local rp
		rp=$(cat "$DIR/ready")
		[ "$rp" = "$PID" ] || { failed "ready file says pid '$rp', started $PID"; return 1; }
	fi
	wait_blocked || return 1
	snap_state "$DIR/state.before"
	SYSNR=$SNAPNR
}

# "pidns-root: yes" in the .desc: the test runs as PID 1 of its own pid namespace
# (unshare -pf; UPID is unshare, our child; PID the test's host pid). A dump records
# that, and the restore makes it PID 1 of a new namespace again.
start_pidns_root() {
	ZDTM_READY="$DIR/ready" setsid unshare -pf "$BIN" >"$DIR/$NAME.out" 2>&1 </dev/null &
	UPID=$!
	LIVE_PIDS+=("$UPID")
	wait_file "$DIR/ready" 10 "$UPID" || { reap "$UPID" 1; failed "not ready in 10 s (status $RC)"; return 1; }
	[ "$(cat "$DIR/ready")" = 1 ] || { failed "ready file says pid '$(cat "$DIR/ready")', want 1"; return 1; }
	PID=$(awk '{ print $1 }' "/proc/$UPID/task/$UPID/children" 2>/dev/null)
	[ -n "$PID" ] || { failed "no test process under unshare $UPID"; return 1; }
	LIVE_PIDS+=("$PID")
}

# wait_blocked: with "blocked: NR..." in the .desc, wait (10 s at most) until the test
# sits in one of those syscalls (/proc/PID/syscall), so that the dump and the SIGTERM
# find it blocked there and not on the way in
wait_blocked() {
	local i nr
	[ -n "$BLOCKED" ] || return 0
	for ((i = 0; i < 1000; i++)); do
		nr=$(cut -d' ' -f1 "/proc/$PID/syscall" 2>/dev/null)
		[[ " $BLOCKED " == *" $nr "* ]] && return 0
		alive "$PID" || break
		tick
	done
	failed "not blocked in syscall $BLOCKED (last: '${nr:-gone}')"
}

# check_out: the .out file has PASS and no FAIL
check_out() {
	grep -q '^FAIL' "$DIR/$NAME.out" && { failed "test says: $(grep -m1 '^FAIL' "$DIR/$NAME.out")"; return 1; }
	grep -q '^PASS' "$DIR/$NAME.out" || { failed "no PASS line in $NAME.out"; return 1; }
	return 0
}

# log_error FILE: ": <first error line of a ferry log>" (empty if none)
log_error() {
	local l
	l=$(grep -m1 ': error: ' "$1" 2>/dev/null | sed 's/^([ 0-9.]*) //')
	[ -n "$l" ] && echo ": $l"
}

# bad_exit WHAT: the process ended wrongly; add what its .out says
bad_exit() {
	if check_out; then failed "$1"; else failed "$1; $REASON"; fi
}

# finish_original: SIGTERM the (original or restored) child PID and expect PASS
finish_child() {
	wait_blocked || return 1
	kill -TERM "$PID" 2>/dev/null
	# a pidns-root test is unshare's child: unshare exits with its status
	[ "$PIDNS_ROOT" = yes ] && { forget "$PID"; PID=$UPID; }
	reap "$PID" "$TTIME" || { failed "no exit ${TTIME} s after SIGTERM"; return 1; }
	[ "$RC" = 0 ] || { [ "$RC" = 77 ] && return 77; bad_exit "exit status $RC"; return 1; }
	check_out
}

run_none() {
	start_test || return 1
	finish_child
}

do_dump() {	# extra dump options in "$@"
	"$FERRY" dump -t "$PID" -D "$DIR/img" -v4 -o "$DIR/dump.log" $OPTS "${PSARGS[@]}" "$@" \
		>"$DIR/dump.stdout" 2>&1 &
	local d=$!
	LIVE_PIDS+=("$d")
	reap "$d" "$TTIME" || { failed "dump hung (killed after ${TTIME} s)"; return 1; }
	DUMP_RC=$RC
	return 0
}

# restore in the background as a child of ours; sets RST
do_restore() {	# extra restore options in "$@"
	rm -f "$DIR/rpid"
	"$FERRY" restore -D "$RSTDIR" -v4 -o "$DIR/restore.log" --pidfile "$DIR/rpid" $OPTS "$@" \
		>"$DIR/restore.stdout" 2>&1 &
	RST=$!
	LIVE_PIDS+=("$RST")
	if ! wait_file "$DIR/rpid" "$TTIME" "$RST"; then
		if alive "$RST"; then
			reap "$RST" 0; failed "restore: no pidfile in ${TTIME} s"
		else
			reap "$RST" 1; failed "restore exited with $RC, no pidfile$(log_error "$DIR/restore.log")"
		fi
		return 1
	fi
	local rp
	rp=$(cat "$DIR/rpid")
	if [ "${FL:-}" = pidns ] || [ "$PIDNS_ROOT" = yes ]; then
		# the host pid of the root; inside its namespace it has the original one
		[ -n "$rp" ] && [ -d "/proc/$rp" ] || { failed "restored pid '$rp' does not exist"; return 1; }
		local inner want=$PID
		[ "$PIDNS_ROOT" = yes ] && want=1
		inner=$(awk '/^NSpid:/ { print $NF }' "/proc/$rp/status")
		[ "$inner" = "$want" ] || { failed "restored root has pid $inner in its namespace, not $want"; return 1; }
		PID=$rp
	fi
	[ "$rp" = "$PID" ] || { failed "restored pid $rp != original $PID"; LIVE_PIDS+=("$rp"); return 1; }
	LIVE_PIDS+=("$PID")
}

# after dump (which must succeed): the original must be gone (killed by dump)
expect_dumped_and_killed() {
	[ "$DUMP_RC" = 0 ] || { failed "dump exited with $DUMP_RC$(log_error "$DIR/dump.log")"; return 1; }
	[ -f "$DIR/img/inventory.img" ] || { failed "dump succeeded but no inventory.img"; return 1; }
	reap "$PID" 5 || { failed "original still alive 5 s after dump"; return 1; }
	return 0
}

# stop_restored: SIGTERM the restored test, wait for the waiting `ferry restore` ($RST),
# whose exit status is the test's, and check its verdict (plain, pidns, pre, leave-running)
stop_restored() {
	kill -TERM "$PID" 2>/dev/null
	reap "$RST" "$TTIME" || { failed "restored process: no exit ${TTIME} s after SIGTERM"; return 1; }
	forget "$PID"
	[ "$RC" = 0 ] || { [ "$RC" = 77 ] && return 77; bad_exit "restore exited with $RC"; return 1; }
	check_out
}

run_plain() {
	start_test || return 1
	do_dump || return 1
	expect_dumped_and_killed || return 1
	do_restore || return 1
	wait_blocked || return 1
	check_state "after restore" || return 1
	stop_restored
}

run_pidns() {
	start_test || return 1
	do_dump || return 1
	expect_dumped_and_killed || return 1
	do_restore --pidns || return 1
	wait_blocked || return 1
	check_state "after restore --pidns" || return 1
	stop_restored	# ferry waits for its init, which exits with the root's status
}

run_detach() {
	start_test || return 1
	do_dump || return 1
	expect_dumped_and_killed || return 1
	do_restore -d || return 1
	reap "$RST" "$TTIME" || { failed "restore -d did not exit in ${TTIME} s"; return 1; }
	[ "$RC" = 0 ] || { failed "restore -d exited with $RC$(log_error "$DIR/restore.log")"; return 1; }
	alive "$PID" || { bad_exit "restored process died before SIGTERM"; return 1; }
	wait_blocked || return 1
	check_state "after restore -d" || return 1
	kill -TERM "$PID" 2>/dev/null
	# reparented to us (subreaper): bash reaps it, we only see it vanish
	wait_gone "$PID" "$TTIME" || { failed "restored process: no exit ${TTIME} s after SIGTERM"; return 1; }
	forget "$PID"
	check_out
}

# pre: NPRE pre-dump rounds (the process keeps running and must look unchanged after
# each), then a dump on top of the last round, then a restore as in plain (with the
# extra restore options given: warm's --warm). partial: the same with every pre-dump
# stopped by --max-bytes 4K (PRE_OPTS) after its first page: the rounds are partial
# (pagemap partial_from), the next round and the final dump copy what they left
run_pre() {
	local k prev=""
	start_test || return 1
	for ((k = 1; k <= NPRE; k++)); do
		"$FERRY" pre-dump -t "$PID" -D "$DIR/pre$k" -v4 -o "$DIR/pre$k.log" --track-mem \
			${prev:+--prev-images-dir "$prev"} $OPTS ${PRE_OPTS:-} >"$DIR/pre$k.stdout" 2>&1 &
		local d=$!
		LIVE_PIDS+=("$d")
		reap "$d" "$TTIME" || { failed "pre-dump $k hung (killed after ${TTIME} s)"; return 1; }
		[ "$RC" = 0 ] || { failed "pre-dump $k exited with $RC$(log_error "$DIR/pre$k.log")$(log_error "$DIR/pre$k.stdout")"; return 1; }
		alive "$PID" || { failed "original died in pre-dump $k"; return 1; }
		# "maps: volatile": the test changes its own layout all the time and checks
		# itself (predump_newmem); /proc states cannot be compared
		[ "$(desc_get "$NAME" maps)" = volatile ] ||
			check_state "original after pre-dump $k" || return 1
		prev="../pre$k"
		# "pre-gap: SEC": cron style, rounds at least SEC seconds apart (a bounded
		# wait on the clock, while the test keeps running)
		local gap t0=$SECONDS
		gap=$(desc_get "$NAME" pre-gap)
		while [ -n "$gap" ] && [ $((SECONDS - t0)) -lt "$gap" ] && alive "$PID"; do tick; done
	done
	do_dump --track-mem --prev-images-dir "$prev" || return 1
	expect_dumped_and_killed || return 1
	do_restore "$@" || return 1
	wait_blocked || return 1
	[ "$(desc_get "$NAME" maps)" = volatile ] || check_state "after restore" || return 1
	stop_restored
}

# page-server: a test the pre flavour may run gets one pre-dump round first; then the
# dump, both streamed; the server's round must be complete and the local half too;
# restore from the server's directory, verify as plain does
run_page_server() {
	local allowed prev=()
	allowed=$(desc_get "$NAME" flavors | tr ',' ' ')
	start_test || return 1
	if [ -z "$allowed" ] || [[ " $allowed " == *" pre "* ]]; then
		"$FERRY" pre-dump -t "$PID" -D "$DIR/pre1" -v4 -o "$DIR/pre1.log" --track-mem \
			$OPTS "${PSARGS[@]}" >"$DIR/pre1.stdout" 2>&1 &
		local d=$!
		LIVE_PIDS+=("$d")
		reap "$d" "$TTIME" || { failed "pre-dump hung (killed after ${TTIME} s)"; return 1; }
		[ "$RC" = 0 ] || { failed "pre-dump exited with $RC$(log_error "$DIR/pre1.log")"; return 1; }
		alive "$PID" || { failed "original died in the streamed pre-dump"; return 1; }
		[ -f "$PS_DIR/images/$PS_SRC/pre1/inventory.img" ] ||
			{ failed "no complete round pre1 on the page server"; return 1; }
		prev=(--track-mem --prev-images-dir ../pre1)
	fi
	do_dump "${prev[@]}" || return 1
	expect_dumped_and_killed || return 1
	[ -f "$RSTDIR/inventory.img" ] || { failed "no complete round on the page server"; return 1; }
	ls "$DIR/img"/pages-*.img >/dev/null 2>&1 && { failed "page data written locally too"; return 1; }
	do_restore || return 1
	wait_blocked || return 1
	[ "$(desc_get "$NAME" maps)" = volatile ] || check_state "after restore" || return 1
	stop_restored
}

# migrate: `ferry migrate` to our page server; the original must be gone, the tree run
# at the destination (a new pid namespace: the original held the pids at restore time)
# with the original's pid inside; then verify as detach does (reparented to us)
do_migrate() {
	"$FERRY" migrate --to "127.0.0.1:$PS_PORT" --source-id "$PS_SRC" --work-dir "$DIR/mig" \
		--json -v4 -o "$DIR/migrate.log" $MOPTS "$PID" >"$DIR/migrate.stdout" 2>&1 &
	local d=$!
	LIVE_PIDS+=("$d")
	reap "$d" "$TTIME" || { failed "migrate hung (killed after ${TTIME} s)"; return 1; }
	MIG_RC=$RC
}

run_migrate() {
	start_test || return 1
	do_migrate || return 1
	[ "$MIG_RC" = 0 ] || { failed "migrate exited with $MIG_RC$(log_error "$DIR/migrate.log")"; return 1; }
	reap "$PID" 5 || { failed "original still alive 5 s after migrate"; return 1; }
	forget "$PID"
	local rp inner
	rp=$(sed -n 's/.*"dest_pid": \([0-9]*\).*/\1/p' "$DIR/migrate.stdout")
	[ -n "$rp" ] && alive "$rp" || { failed "no running tree at the destination ('$rp')"; return 1; }
	LIVE_PIDS+=("$rp")
	local want=$PID
	[ "$PIDNS_ROOT" = yes ] && want=1
	inner=$(awk '/^NSpid:/ { print $NF }' "/proc/$rp/status")
	[ "$inner" = "$want" ] || { failed "migrated root has pid $inner in its namespace, not $want"; return 1; }
	PID=$rp
	wait_blocked || return 1
	[ "$(desc_get "$NAME" maps)" = volatile ] || check_state "after migrate" || return 1
	kill -TERM "$PID" 2>/dev/null
	wait_gone "$PID" "$TTIME" || { failed "migrated process: no exit ${TTIME} s after SIGTERM"; return 1; }
	forget "$PID"
	check_out
}

# expect: dump-fail, migrate flavour: migrate fails naming the cause, the original
# resumes untouched and PASSes, nothing runs at the destination
run_migrate_fail() {
	start_test || return 1
	do_migrate || return 1
	[ "$MIG_RC" != 0 ] || { failed "migrate succeeded but the dump was expected to fail"; return 1; }
	[ "$MIG_RC" -lt 128 ] 2>/dev/null || { failed "migrate crashed (status $MIG_RC)"; return 1; }
	grep -q ': error: ' "$DIR/migrate.log" || { failed "migrate failed without an error line"; return 1; }
	alive "$PID" || { failed "original died in a failed migration"; return 1; }
	check_state "original after the failed migration" || return 1
	finish_child
}

run_leave_running() {
	start_test || return 1
	do_dump --leave-running || return 1
	[ "$DUMP_RC" = 0 ] || { failed "dump --leave-running exited with $DUMP_RC$(log_error "$DIR/dump.log")"; return 1; }
	alive "$PID" || { failed "original died in dump --leave-running"; return 1; }
	check_state "original after dump --leave-running" || return 1
	kill_tree "$PID" || { failed "original tree survived kill -9"; return 1; }
	reap "$PID" 5 || { failed "original survived kill -9"; return 1; }
	do_restore || return 1
	wait_blocked || return 1
	check_state "after restore" || return 1
	stop_restored
}

# expect: dump-fail: dump fails with one error line, the original survives and PASSes
run_dump_fail() {
	start_test || return 1
	do_dump || return 1
	[ "$DUMP_RC" != 0 ] || { failed "dump succeeded but was expected to fail"; return 1; }
	[ "$DUMP_RC" -lt 128 ] 2>/dev/null || { failed "dump crashed (status $DUMP_RC)"; return 1; }
	local n
	n=$(grep -c ': error: ' "$DIR/dump.log" "$DIR/dump.stdout" | awk -F: '{s+=$NF} END {print s}')
	[ "$n" = 1 ] || { failed "dump printed $n error lines, expected 1"; return 1; }
	[ ! -f "$DIR/img/inventory.img" ] || { failed "failed dump left an inventory.img"; return 1; }
	if [ "$FL" = page-server ]; then
		# never complete; removed by the server once it read ROUND_ABORT (no reply)
		[ ! -e "$RSTDIR/inventory.img" ] || { failed "failed dump left a complete round on the page server"; return 1; }
		local i
		for ((i = 0; i < 500; i++)); do [ -e "$RSTDIR" ] || break; tick; done
		[ ! -e "$RSTDIR" ] || { failed "the page server kept the failed dump's round 5 s"; return 1; }
	fi
	alive "$PID" || { failed "original died in a failed dump"; return 1; }
	check_state "original after the failed dump" || return 1
	finish_child
}

show_logs() {
	local f
	local srvlog=""
	[ "${FL:-}" = page-server ] && srvlog="$PS_DIR/server.log"
	for f in "$DIR/$NAME.out" "$DIR/dump.log" "$DIR/dump.stdout" "$DIR/restore.log" \
		"$DIR/restore.stdout" $srvlog; do
		[ -s "$f" ] || continue
		echo "  --- tail $(basename "$f")"
		tail -n 12 "$f" | sed 's/^/  | /'
	done
}

run_one() {	# NAME FLAVOR
	NAME=$1
	local fl=$2 r
	FL=$fl
	BIN="$ZBIN/$NAME"
	DIR=$(mktemp -d "/tmp/zdtm-$NAME-$fl.XXXXXX")
	DIRS+=("$DIR")
	OPTS=$(desc_get "$NAME" opts)
	TTIME=$(desc_get "$NAME" timeout)
	TTIME=${TTIME:-$TIMEOUT}
	BLOCKED=$(desc_get "$NAME" blocked | tr ',' ' ')
	PIDNS_ROOT=$(desc_get "$NAME" pidns-root)
	REASON=""
	RSTDIR="$DIR/img"
	PSARGS=()
	if [ "$fl" = page-server ]; then
		PS_RUNS=$((PS_RUNS + 1))
		PS_SRC="zdtm-$PS_RUNS"
		PSARGS=(--page-server --port "$PS_PORT" --source-id "$PS_SRC")
		RSTDIR="$PS_DIR/images/$PS_SRC/img"
	fi
	# migrate takes only the dump options it knows (a test needing others is not run)
	MOPTS=""
	[[ " $OPTS " == *" --tcp-established "* ]] && MOPTS="--tcp-established"
	if [ "$fl" = migrate ] && [ -n "$(echo " $OPTS " | sed 's/ --tcp-established / /g' | tr -d ' ')" ]; then
		echo "SKIP $NAME ($fl): needs dump options migrate does not take ($OPTS)"
		NSKIP=$((NSKIP + 1))
		return 0
	fi
	# "no-migrate: REASON": the test holds something only one process on a host may hold
	# (a bound socket name, a listening port, a FIFO's buffer): on one machine the frozen
	# original and the migrated copy collide, between two hosts they would not
	if [ "$fl" = migrate ] && [ -n "$(desc_get "$NAME" no-migrate)" ]; then
		echo "SKIP $NAME ($fl): $(desc_get "$NAME" no-migrate)"
		NSKIP=$((NSKIP + 1))
		return 0
	fi
	if [ "$fl" = migrate ]; then
		PS_RUNS=$((PS_RUNS + 1))
		PS_SRC="zdtm-$PS_RUNS"
	fi
	if [ "$(desc_get "$NAME" expect)" = dump-fail ] && [ "$fl" = migrate ]; then
		run_migrate_fail
	elif [ "$(desc_get "$NAME" expect)" = dump-fail ] && [ "$fl" != none ]; then
		run_dump_fail
	else
		case "$fl" in
		none) run_none ;;
		plain) run_plain ;;
		detach) run_detach ;;
		leave-running) run_leave_running ;;
		pre) run_pre ;;
		warm) run_pre --warm ;;
		partial) PRE_OPTS="--max-bytes 4K" run_pre --warm ;;
		pidns) run_pidns ;;
		page-server) run_page_server ;;
		migrate) run_migrate ;;
		esac
	fi
	r=$?
	if [ $r = 0 ]; then
		echo "PASS $NAME ($fl)"
		NPASS=$((NPASS + 1))
	elif [ $r = 77 ]; then
		echo "SKIP $NAME ($fl): $(grep -m1 '^SKIP' "$DIR/$NAME.out" 2>/dev/null)"
		NSKIP=$((NSKIP + 1))
	else
		echo "FAIL $NAME ($fl): ${REASON:-unknown}"
		show_logs
		NFAIL=$((NFAIL + 1))
	fi
	# nothing of this run may survive it (a test's children included: a failed run can
	# leave the tree running)
	for r in "${LIVE_PIDS[@]}"; do alive "$r" && { kill_tree "$r" || kill -9 "$r"; } 2>/dev/null; done
	for r in "${LIVE_PIDS[@]}"; do wait "$r" 2>/dev/null; done
	LIVE_PIDS=()
	if [ "$KEEP" = 0 ]; then rm -rf "$DIR"; fi
	if [[ $fl == page-server || $fl == migrate ]] && [ "$KEEP" = 0 ]; then
		rm -rf "${PS_DIR:?}/images/$PS_SRC"
	fi
}

# ---- main ---------------------------------------------------------------------------
if [ ${#TESTS[@]} -eq 0 ]; then
	for b in "$ZBIN"/*; do
		[ -f "$b" ] && [ -x "$b" ] && TESTS+=("$(basename "$b")")
	done
fi
[ ${#TESTS[@]} -gt 0 ] || { echo "run.sh: no tests in $ZBIN (make zdtm binaries first)" >&2; exit 2; }

if [[ " ${FLAVORS[*]} " == *" page-server "* || " ${FLAVORS[*]} " == *" migrate "* ]]; then
	ps_start || exit 1
fi

for t in "${TESTS[@]}"; do
	if [ ! -x "$ZBIN/$t" ]; then
		echo "FAIL $t: no binary $ZBIN/$t"
		NFAIL=$((NFAIL + 1))
		continue
	fi
	skip=$(desc_get "$t" skip)
	if [ -n "$skip" ]; then
		echo "SKIP $t: $skip"
		NSKIP=$((NSKIP + 1))
		continue
	fi
	allowed=$(desc_get "$t" flavors | tr ',' ' ')
	for fl in "${FLAVORS[@]}"; do
		local_fl=$fl
		[ "$fl" = warm ] || [ "$fl" = partial ] && local_fl=pre
		if [ -n "$allowed" ] && [ "$fl" != none ] && ! [[ " $allowed " == *" $local_fl "* ]]; then
			continue
		fi
		run_one "$t" "$fl"
	done
done

[ "$NSKIP" -gt 0 ] && echo "$NSKIP skipped"
echo "$NPASS passed, $NFAIL failed"
[ "$NFAIL" = 0 ]
