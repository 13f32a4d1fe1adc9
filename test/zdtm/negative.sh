#!/bin/bash
# Bad-input tests for ferry dump/restore.
#
#   test/zdtm/negative.sh [--build DIR] [--keep] [CASE-PREFIX...]
#
# Each case runs one ferry command that must fail: non-zero exit below 128 (>= 128 is a
# crash), within 30 s (no hang), with exactly one stderr line starting with
# "ferry: error:" whose text names the cause (a regex per case). Cases that target a
# live process also check that the process survives unchanged and still PASSes when
# sent SIGTERM. Targets are the zdtm test binaries. Prints PASS/FAIL per case and
# finally "N passed, N failed"; exit 1 if any failed.
# Runs itself under tools/subreaper (restored -d processes are reparented to it).
set -u

SELF=$(readlink -f "$0")
ROOT=$(cd "$(dirname "$SELF")/../.." && pwd)
BUILD=build
KEEP=0
ONLY=()
ARGS=("$@")
while [ $# -gt 0 ]; do
	case "$1" in
	--build) BUILD=$2; shift 2 ;;
	--keep) KEEP=1; shift ;;
	-h|--help) sed -n '2,13p' "$SELF" | sed 's/^# \{0,1\}//'; exit 0 ;;
	-*) echo "negative.sh: unknown option '$1'" >&2; exit 2 ;;
	*) ONLY+=("$1"); shift ;;
	esac
done
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
FERRY="$BUILD/ferry"
ZBIN="$BUILD/test/zdtm"
SETVER="$ZBIN/tools/img_set_version"
SUBREAPER="$ZBIN/tools/subreaper"

for f in "$FERRY" "$SETVER" "$SUBREAPER" "$ZBIN/maps_anon" "$ZBIN/heap_brk"; do
	[ -x "$f" ] || { echo "negative.sh: $f missing (build first)" >&2; exit 2; }
done
if [ "${ZDTM_SUBREAPER:-}" != "$$" ]; then
	export ZDTM_SUBREAPER=$$
	exec "$SUBREAPER" /bin/bash "$SELF" "${ARGS[@]}"
fi

# Tests must start with a clean fd table: close whatever our caller leaked to us
# (bash keeps the script itself open on a high fd; leave that one).
for fd in /proc/$$/fd/*; do
	fd=${fd##*/}
	[ "$fd" -gt 2 ] && [ "$fd" -lt 255 ] || continue
	[ "$(readlink "/proc/$$/fd/$fd")" = "$SELF" ] && continue
	eval "exec $fd>&-"
done

W=$(mktemp -d /tmp/zdtm-neg.XXXXXX)
chmod 755 "$W"
PIDS=()
MNT=""
NPASS=0
NFAIL=0

cleanup() {
	local p
	for p in "${PIDS[@]}"; do alive "$p" && kill -9 "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait_gone "$p" 5; done
	[ -n "$MNT" ] && umount "$MNT" 2>/dev/null
	if [ "$KEEP" = 0 ]; then rm -rf "$W"; else echo "kept $W"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 10 ms pause. Not `read -t`: bash 5.2 can abort when a trapped signal lands inside a
# timed read, and the cleanup trap would not run.
tick() { sleep 0.01; } 2>/dev/null	# (mutes "Killed" job notes too)
alive() {
	local st
	kill -0 "$1" 2>/dev/null || return 1
	st=$(sed -E 's/.*\) (.) .*/\1/' "/proc/$1/stat" 2>/dev/null)	# comm may hold blanks
	[ -n "$st" ] && [ "$st" != Z ]
} 2>/dev/null	# also mutes bash's "Killed" notes for jobs reaped meanwhile
wait_gone() {	# PID SEC
	local i
	for ((i = 0; i < $2 * 100; i++)); do alive "$1" || return 0; tick; done
	return 1
}
wanted() {	# CASE: selected on the command line?
	local p
	[ ${#ONLY[@]} -eq 0 ] && return 0
	for p in "${ONLY[@]}"; do [[ "$1" == "$p"* ]] && return 0; done
	return 1
}

pass() { echo "PASS $CASE${1:+: $1}"; NPASS=$((NPASS + 1)); }
fail() {
	echo "FAIL $CASE: $1"
	[ -s "$W/$CASE.err" ] && tail -n 5 "$W/$CASE.err" | sed 's/^/  | /'
	NFAIL=$((NFAIL + 1))
}

# start_target NAME: run a zdtm test binary like run.sh does; sets TPID, TDIR
start_target() {
	local i
	TDIR=$(mktemp -d "$W/t-$1.XXXXXX")
	ZDTM_READY="$TDIR/ready" setsid "$ZBIN/$1" >"$TDIR/$1.out" 2>&1 </dev/null &
	TPID=$!
	TNAME=$1
	PIDS+=("$TPID")
	for ((i = 0; i < 1000; i++)); do
		[ -s "$TDIR/ready" ] && return 0
		alive "$TPID" || break
		tick
	done
	return 1
}

# finish_target: SIGTERM the target (our child); it must exit 0 with PASS (else WHY)
finish_target() {
	kill -TERM "$TPID" 2>/dev/null
	if ! wait_gone "$TPID" 10; then
		kill -9 "$TPID"; wait "$TPID" 2>/dev/null
		WHY="no exit after SIGTERM"
		return 1
	fi
	wait "$TPID"
	local rc=$?
	[ "$rc" = 0 ] && grep -q '^PASS' "$TDIR/$TNAME.out" && return 0
	WHY="target exit $rc: $(tail -n1 "$TDIR/$TNAME.out")"
	return 1
}

# run_ferry ARGS...: run with a 30 s bound; sets RC, stderr in $W/$CASE.err
run_ferry() {
	timeout -k 5 30 "$@" >"$W/$CASE.out" 2>"$W/$CASE.err"
	RC=$?
}

# judge REGEX: the last run_ferry must have failed cleanly naming the cause
judge() {
	local n line
	case "$RC" in
	0) fail "succeeded, expected a failure"; return 1 ;;
	124|137) fail "hung (killed after 30 s)"; return 1 ;;
	esac
	if [ "$RC" -ge 128 ]; then fail "crashed (exit $RC)"; return 1; fi
	n=$(grep -c '^ferry: error:' "$W/$CASE.err")
	if [ "$n" != 1 ]; then fail "exit $RC with $n 'ferry: error:' lines, expected 1"; return 1; fi
	line=$(grep '^ferry: error:' "$W/$CASE.err")
	if ! grep -Eiq -- "$1" <<<"$line"; then
		fail "message does not name the cause (/$1/): $line"
		return 1
	fi
	LINE=$line
	return 0
}

# ---- dump cases --------------------------------------------------------------------
case_dump_nopid() {
	local p=$(( $(cat /proc/sys/kernel/pid_max) - 1 ))
	while kill -0 "$p" 2>/dev/null; do p=$((p - 1)); done
	run_ferry "$FERRY" dump -t "$p" -D "$W/$CASE.img"
	judge "no such process|not exist|not found|ESRCH|$p" && pass "$LINE"
}

case_dump_self() {
	# shellcheck disable=SC2016
	run_ferry sh -c 'exec "$0" dump -t $$ -D "$1"' "$FERRY" "$W/$CASE.img"
	judge "itself|self|own" && pass "$LINE"
}

case_dump_kthread() {
	run_ferry "$FERRY" dump -t 2 -D "$W/$CASE.img"
	judge "kernel thread|kthread" && pass "$LINE"
}

case_dump_unprivileged() {
	local d="$W/$CASE.img" before after
	start_target sleep_pause || { fail "target not ready"; return; }
	before=$(grep -E '^(State|TracerPid|SigBlk|SigPnd|ShdPnd)' "/proc/$TPID/status")
	mkdir -p "$d" && chmod 777 "$d"
	run_ferry setpriv --reuid=65534 --regid=65534 --clear-groups "$FERRY" dump -t "$TPID" -D "$d"
	judge "permission|not permitted|EPERM|access" || { finish_target; return; }
	after=$(grep -E '^(State|TracerPid|SigBlk|SigPnd|ShdPnd)' "/proc/$TPID/status")
	[ "$before" = "$after" ] || { fail "target changed: $before / $after"; finish_target; return; }
	finish_target || { fail "target after the refused dump: $WHY"; return; }
	pass "$LINE"
}

case_predump_max_bytes() {	# a bad size, and the option where it does not belong
	run_ferry "$FERRY" pre-dump -t 1 -D "$W/$CASE.img" --max-bytes 12X
	judge "max-bytes.*12X" || return
	[ "$RC" = 2 ] || { fail "exit $RC for a usage error, expected 2"; return; }
	run_ferry "$FERRY" dump -t 1 -D "$W/$CASE.img" --max-bytes 1M
	judge "max-bytes is a pre-dump option" && pass "$LINE"
}

# ---- restore cases ------------------------------------------------------------------
case_restore_missing_dir() {
	run_ferry "$FERRY" restore -d -D "$W/does-not-exist"
	judge "no such file|not exist|missing|cannot open" && pass "$LINE"
}

case_restore_empty_dir() {
	mkdir -p "$W/empty"
	run_ferry "$FERRY" restore -d -D "$W/empty"
	judge "empty|incomplete|inventory" && pass "$LINE"
}

GOOD=""	# images of maps_anon, dumped once; GOOD_PID is its pid
GOOD_ERR=""
# make_good: dump the images once; on failure GOOD_ERR says why (and stays so)
make_good() {
	[ -n "$GOOD" ] && return 0
	[ -n "$GOOD_ERR" ] && return 1
	start_target maps_anon || { GOOD_ERR="target not ready"; return 1; }
	timeout -k 5 60 "$FERRY" dump -t "$TPID" -D "$W/good" >"$W/good.log" 2>&1
	local rc=$?
	if [ $rc != 0 ]; then
		kill -9 "$TPID"; { wait "$TPID"; } 2>/dev/null
		GOOD_ERR="cannot make images: dump exited $rc: $(tail -n1 "$W/good.log")"
		return 1
	fi
	{ wait "$TPID"; } 2>/dev/null	# killed by the dump: no job message
	GOOD="$W/good"
	GOOD_PID=$TPID
	GOOD_OUT="$TDIR/$TNAME.out"
	return 0
}

# restore_bad DIR REGEX: restore -d must fail naming the cause; no process left behind
restore_bad() {
	make_good 2>/dev/null || { fail "$GOOD_ERR"; return; }
	run_ferry "$FERRY" restore -d -D "$1" --pidfile "$W/$CASE.pid"
	if alive "$GOOD_PID"; then
		kill -9 "$GOOD_PID"
		wait_gone "$GOOD_PID" 5
		[ "$RC" = 0 ] || { fail "exit $RC but the process was created and left running"; return; }
	fi
	judge "$2" && pass "$LINE"
}

copy_good() {	# NAME: a fresh copy of the good images; prints its path
	rm -rf "$W/$1"
	cp -a "$GOOD" "$W/$1"
	echo "$W/$1"
}

flip() {	# FILE OFFSET: xor one byte
	local b
	b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
	printf "\\$(printf %03o $((b ^ 0x5a)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

image_files() {	# the files of the good dump, pages first
	(cd "$GOOD" && ls pages-*.img 2>/dev/null; ls ./*.img | sed 's#^\./##' | grep -v '^pages-')
}

case_restore_truncated() {
	local f d sz
	make_good 2>/dev/null || { fail "$GOOD_ERR"; return; }
	local base=$CASE files
	files=$(image_files)
	# the pages file, and every other image but the inventory (truncated to half)
	for f in $files; do
		[ "$f" = inventory.img ] && continue
		CASE="$base:$f"
		wanted "$CASE" || continue
		d=$(copy_good "$CASE")
		sz=$(stat -c %s "$d/$f")
		truncate -s $((sz / 2)) "$d/$f"
		restore_bad "$d" "truncat|short|size|corrupt|checksum|hash|mismatch"
	done
	CASE="$base:inventory.img"
	if wanted "$CASE"; then
		d=$(copy_good "$CASE")
		truncate -s $(( $(stat -c %s "$d/inventory.img") - 3 )) "$d/inventory.img"
		restore_bad "$d" "truncat|short|corrupt|checksum|inventory"
	fi
}

case_restore_corrupted() {
	local f d sz off
	make_good 2>/dev/null || { fail "$GOOD_ERR"; return; }
	local base=$CASE
	for f in $(image_files); do
		sz=$(stat -c %s "$GOOD/$f")
		[ "$sz" -gt 0 ] || continue
		for off in 0 $((sz / 2)) $((sz - 1)); do
			CASE="$base:$f@$off"
			wanted "$CASE" || continue
			d=$(copy_good "$CASE")
			flip "$d/$f" "$off"
			restore_bad "$d" "corrupt|checksum|hash|mismatch|magic|bad|invalid"
		done
	done
}

case_restore_version() {
	local d
	make_good 2>/dev/null || { fail "$GOOD_ERR"; return; }
	d=$(copy_good "$CASE")
	"$SETVER" "$d" 99 || { fail "img_set_version failed"; return; }
	restore_bad "$d" "version"
}

case_restore_pid_taken() {
	local d
	make_good 2>/dev/null || { fail "$GOOD_ERR"; return; }
	d=$(copy_good "$CASE")
	if ! timeout -k 5 30 "$FERRY" restore -d -D "$d" --pidfile "$W/$CASE.pid1" >"$W/$CASE.first" 2>&1; then
		fail "first restore failed: $(tail -n1 "$W/$CASE.first")"
		return
	fi
	PIDS+=("$GOOD_PID")
	alive "$GOOD_PID" || { fail "first restore: pid $GOOD_PID not running"; return; }
	run_ferry "$FERRY" restore -d -D "$d" --pidfile "$W/$CASE.pid2"
	judge "already in use|in use|taken|exists" && pass "$LINE"
	# clean up the first one: it must still PASS
	kill -TERM "$GOOD_PID"
	if ! wait_gone "$GOOD_PID" 10; then
		kill -9 "$GOOD_PID"
		echo "  (note: the first restored process did not exit on SIGTERM)"
	elif [ "$(tail -n1 "$GOOD_OUT")" != PASS ]; then
		echo "  (note: the first restored process ended with: $(tail -n1 "$GOOD_OUT"))"
	fi
}

# a mapping the restorer cannot create (a 64 GiB reservation under a 16 GiB soft
# address space limit; the hard limit stays what the image asks): the error names the
# mmap and its errno, nothing is left running
nomem_images() {	# (stderr muted by the caller: bash's note of the dumped target's death)
	start_target maps_noreserve || { WHY="target not ready"; return 1; }
	timeout -k 5 60 "$FERRY" dump -t "$TPID" -D "$W/nomem" >"$W/nomem.log" 2>&1
	local rc=$?
	[ $rc = 0 ] || kill -9 "$TPID"
	wait "$TPID"
	[ $rc = 0 ] || { WHY="cannot make images: $(tail -n1 "$W/nomem.log")"; return 1; }
}
case_restore_nomem() {
	nomem_images 2>/dev/null || { fail "$WHY"; return; }
	run_ferry bash -c 'ulimit -S -v 16777216 && exec "$0" restore -d -D "$1" --pidfile "$2"' \
		"$FERRY" "$W/nomem" "$W/$CASE.pid"
	if alive "$TPID"; then
		kill -9 "$TPID"
		wait_gone "$TPID" 5
		fail "exit $RC but the process was restored beyond the limit"
		return
	fi
	judge "mmap 0x[0-9a-f]+-0x[0-9a-f]+ .*failed: Cannot allocate memory" && pass "$LINE"
}

# restore_tolerant DIR: a damaged but consistently hashed image: restore -d may fail
# (one error line, exit 1..127) or succeed when the byte was harmless (then the restored
# process is killed); it must never crash nor hang
restore_tolerant() {
	local rp
	rm -f "$W/$CASE.pid"
	run_ferry "$FERRY" restore -d -D "$1" --pidfile "$W/$CASE.pid"
	rp=$(cat "$W/$CASE.pid" 2>/dev/null)
	if [ -n "$rp" ] && alive "$rp"; then
		PIDS+=("$rp")
		kill -9 "$rp"
		wait_gone "$rp" 5
	fi
	alive "$GOOD_PID" && { kill -9 "$GOOD_PID"; wait_gone "$GOOD_PID" 5; }
	case "$RC" in
	0) pass "restored (a harmless byte)"; return ;;
	124|137) fail "hung (killed after 30 s)"; return ;;
	esac
	[ "$RC" -ge 128 ] && { fail "crashed (exit $RC)"; return; }
	judge "." && pass "$LINE"
}

# metadata files damaged behind valid checksums (tools/img_set_version --rehash):
# the decoders and the restore logic see the bad bytes
case_restore_rehashed() {
	local f d sz off k base=$CASE
	make_good 2>/dev/null || { fail "$GOOD_ERR"; return; }
	for f in $(cd "$GOOD" && ls core-*.img mm-*.img pagemap-*.img pstree.img 2>/dev/null); do
		sz=$(stat -c %s "$GOOD/$f")
		for k in 1 2 3 4 5 6 7; do
			off=$((sz * k / 8))
			CASE="$base:$f@$off"
			wanted "$CASE" || continue
			d=$(copy_good "$CASE")
			flip "$d/$f" "$off"
			"$SETVER" --rehash "$d" || { fail "img_set_version --rehash failed"; continue; }
			restore_tolerant "$d"
		done
		CASE="$base:$f-truncated"
		wanted "$CASE" || continue
		d=$(copy_good "$CASE")
		truncate -s $((sz - 3)) "$d/$f"
		"$SETVER" --rehash "$d" || { fail "img_set_version --rehash failed"; continue; }
		restore_bad "$d" "truncat|short|corrupt|bad|invalid|decode|record"
	done
}

case_dump_enospc() {
	local maps0 fds0 maps1 fds1
	MNT="$W/tiny"
	mkdir -p "$MNT"
	mount -t tmpfs -o size=64k tmpfs "$MNT" || { MNT=""; fail "cannot mount a tmpfs"; return; }
	start_target heap_brk || { fail "target not ready"; return; }
	maps0=$(cat "/proc/$TPID/maps")
	fds0=$(cd "/proc/$TPID/fd" && for f in *; do echo "$f $(readlink "$f")"; done)
	run_ferry "$FERRY" dump -t "$TPID" -D "$MNT/img"
	if judge "no space left on device"; then
		if ! alive "$TPID"; then
			fail "the target died in the failed dump"
		else
			maps1=$(cat "/proc/$TPID/maps")
			fds1=$(cd "/proc/$TPID/fd" && for f in *; do echo "$f $(readlink "$f")"; done)
			if [ "$maps0" != "$maps1" ]; then
				fail "maps changed: $(diff <(echo "$maps0") <(echo "$maps1") | head -5 | tr '\n' ' ')"
			elif [ "$fds0" != "$fds1" ]; then
				fail "fds changed: $(diff <(echo "$fds0") <(echo "$fds1") | tr '\n' ' ')"
			elif [ -e "$MNT/img/inventory.img" ]; then
				fail "a partial images dir has an inventory.img"
			elif ! finish_target; then
				fail "target after the failed dump: $WHY"
			else
				pass "$LINE"
			fi
		fi
	fi
	alive "$TPID" && { kill -9 "$TPID"; wait "$TPID" 2>/dev/null; }
	umount "$MNT" && MNT=""
}

CASES=(dump_nopid dump_self dump_kthread dump_unprivileged dump_enospc predump_max_bytes restore_missing_dir
	restore_empty_dir restore_truncated restore_corrupted restore_version restore_pid_taken
	restore_rehashed restore_nomem)
# a case runs when a selector is a prefix of its name, or names one of its sub-cases
selected() {
	local p
	[ ${#ONLY[@]} -eq 0 ] && return 0
	for p in "${ONLY[@]}"; do [[ "$1" == "$p"* || "$p" == "$1:"* ]] && return 0; done
	return 1
}
for c in "${CASES[@]}"; do
	CASE=$c
	selected "$c" && "case_$c"
done

echo "$NPASS passed, $NFAIL failed"
[ "$NFAIL" = 0 ]
