#!/bin/bash
# The page server goes away in the middle of a big round:
#  - pre-dump, the server and its connection process SIGKILLed: the pre-dump fails with
#    one error line naming the connection, the process keeps running untouched;
#  - dump, the server stopped with SIGTERM (its connection process removes the partial
#    round and closes): the dump fails with one error line naming the connection, the
#    process is resumed (running, not stopped) and later verifies its memory.
# Neither leaves a round that looks complete on the server.
. "$(dirname "$0")/stream_lib.sh"

# pages_at_least FILE MIB: FILE exists with at least MIB MiB
pages_at_least() { [ "$(stat -c %s "$1" 2>/dev/null || echo 0)" -ge $(($2 << 20)) ]; }

# stream CMD...: run a streamed ferry command in the background; sets F
stream() {
	fy "$@" --page-server --port "$PORT" -v2 2>"$W/err" &
	F=$!
	PIDS+=("$F")
}

# check_failed WHAT: ferry $F exited non-zero with exactly one error line naming the
# server's address
check_failed() {
	wait_for 60 gone "$F" || die "$1: ferry still running 60 s after the server went away"
	wait "$F"
	local rc=$? n
	[ "$rc" != 0 ] && [ "$rc" -lt 128 ] || die "$1: ferry exited with $rc"
	n=$(grep -c 'error:' "$W/err")
	[ "$n" = 1 ] || { cat "$W/err"; die "$1: $n error lines, expected 1"; }
	grep 'error:' "$W/err" | grep -q "page server 127.0.0.1:$PORT" ||
		die "$1: the error does not name the connection: $(cat "$W/err")"
	echo "$1: $(grep 'error:' "$W/err")"
}

# running PID: alive and not stopped (state R/S/D, not T/t)
running() { alive "$1" && [[ "$(awk '{ print $3 }' "/proc/$1/stat")" == [RSD] ]]; }

hog_start memhog 1024

# pre-dump, server killed
server_start "$W/srv"
src=$W/srv/$(hostname)-$HOG
stream pre-dump -t "$HOG" -D "$W/pre1" --track-mem
wait_for 60 pages_at_least "$src/pre1/pages-$HOG.img" 64 || die "pre-dump did not start streaming"
kids=$(cat /proc/"$SRV"/task/*/children)
[ -n "$kids" ] || die "no connection process under the pageserver"
kill -9 "$SRV" $kids
wait "$SRV" 2>/dev/null
SRV=""
check_failed pre-dump
running "$HOG" || die "the process is not running after the failed pre-dump"
[ -e "$src/pre1/inventory.img" ] && die "the killed round looks complete"

# dump, server stopped cleanly
server_start "$W/srv2"
src=$W/srv2/$(hostname)-$HOG
stream dump -t "$HOG" -D "$W/img"
wait_for 60 pages_at_least "$src/img/pages-$HOG.img" 64 || die "dump did not start streaming"
kill -TERM "$SRV"
check_failed dump
running "$HOG" || die "the process was not resumed after the failed dump"
[ -e "$src/img/inventory.img" ] && die "the stopped round looks complete"
server_stop
hog_verify "after the failed dump"
echo PASS
