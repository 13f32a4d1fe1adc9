#!/bin/bash
# Disk full on the server while a dump streams: the server's directory is a 16 MiB tmpfs
# and the round brings 64 MiB of pages. The server answers ERROR ENOSPC (naming the file)
# and closes; the client's dump fails with one error line that quotes the server's
# message and names the connection; the process is resumed (dump) or keeps running
# (pre-dump); no round looks complete; the server keeps serving (a small round then goes
# through and restores).
. "$(dirname "$0")/stream_lib.sh"

mkdir -p "$W/srv"
mount -t tmpfs -o size=16m,mode=0755 ferry-stream-test "$W/srv" || { echo "SKIP: cannot mount tmpfs"; exit 0; }
trap 'stream_cleanup_mount' EXIT
stream_cleanup_mount() {
	local p
	for p in "${PIDS[@]}" $SRV; do kill -9 "$p" 2>/dev/null; done
	for p in "${PIDS[@]}" $SRV; do wait "$p" 2>/dev/null; done
	umount "$W/srv" 2>/dev/null
	rm -rf "$W"
}
server_start "$W/srv"
hog_start memhog 64

# check_full WHAT: one error line, quoting the server, naming the connection
check_full() {
	local n
	n=$(grep -c 'error:' "$W/err")
	[ "$n" = 1 ] || { cat "$W/err"; die "$1: $n error lines, expected 1"; }
	grep 'error:' "$W/err" | grep "page server 127.0.0.1:$PORT" | grep -qi 'disk full\|no space' ||
		die "$1: the error does not quote the server's disk-full message: $(grep error: "$W/err")"
	echo "$1: $(grep 'error:' "$W/err")"
	[[ "$(awk '{ print $3 }' "/proc/$HOG/stat")" == [RS] ]] || die "$1: the process is not running"
	[ -z "$(find "$W/srv" -name inventory.img)" ] || die "$1: a round looks complete"
}

if fy pre-dump -t "$HOG" -D "$W/pre1" --page-server --port "$PORT" --compress off 2>"$W/err"; then
	die "pre-dump of 64 MiB onto a 16 MiB disk succeeded"
fi
check_full pre-dump
if fy dump -t "$HOG" -D "$W/img" --page-server --port "$PORT" --compress off 2>"$W/err"; then
	die "dump of 64 MiB onto a 16 MiB disk succeeded"
fi
check_full dump

# the server still serves, and the space of the removed rounds is free again: a small
# process's round fits and restores
hog_verify "after the disk-full dumps"
hog_start memhog 4
fy dump -t "$HOG" -D "$W/small" --page-server --port "$PORT" -o "$W/small.log" ||
	{ tail -n 3 "$W/small.log"; die "a small dump after disk full failed"; }
wait "$HOG" 2>/dev/null
restore_verify "$W/srv/$(hostname)-$HOG/small"
server_stop
echo PASS
