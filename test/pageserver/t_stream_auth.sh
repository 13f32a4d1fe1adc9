#!/bin/bash
# Keys: a server started with --auth-key K1; a pre-dump and a dump with the same key
# stream fine; with another key (K2) or none, pre-dump and dump fail at the handshake
# with one clear error line, before anything is frozen: the process keeps running
# untouched and verifies its memory. A key file shorter than 32 bytes is refused.
. "$(dirname "$0")/stream_lib.sh"

head -c 32 /dev/urandom >"$W/k1"
head -c 32 /dev/urandom >"$W/k2"
head -c 16 /dev/urandom >"$W/short"
chmod 600 "$W/k1" "$W/k2" "$W/short"
server_start "$W/srv" --auth-key "$W/k1"
hog_start memhog 32

# expect_refused WHAT ARGS...: ferry fails, one error line matching the key problem
expect_refused() {
	local what=$1 n
	shift
	if fy "$@" 2>"$W/err"; then die "$what: succeeded"; fi
	n=$(grep -c 'error:' "$W/err")
	[ "$n" = 1 ] || { cat "$W/err"; die "$what: $n error lines, expected 1"; }
	grep 'error:' "$W/err" | grep -qiE 'key|auth|proof' || die "$what: unclear error: $(cat "$W/err")"
	echo "$what: $(grep 'error:' "$W/err")"
	alive "$HOG" || die "$what: the process died"
	[[ "$(awk '{ print $3 }' "/proc/$HOG/stat")" == [RS] ]] || die "$what: the process is not running"
}
ps=(--page-server --port "$PORT")
expect_refused "pre-dump, wrong key" pre-dump -t "$HOG" -D "$W/a" "${ps[@]}" --auth-key "$W/k2"
expect_refused "dump, wrong key" dump -t "$HOG" -D "$W/b" "${ps[@]}" --auth-key "$W/k2"
expect_refused "dump, no key" dump -t "$HOG" -D "$W/c" "${ps[@]}"
expect_refused "dump, short key" dump -t "$HOG" -D "$W/d" "${ps[@]}" --auth-key "$W/short"
ls "$W/srv"/*/ 2>/dev/null | grep -q . && die "a refused client created a round"

fy dump -t "$HOG" -D "$W/img" --leave-running "${ps[@]}" --auth-key "$W/k1" -o "$W/ok.log" ||
	{ tail -n 5 "$W/ok.log"; die "dump with the right key failed"; }
[ -f "$W/srv/$(hostname)-$HOG/img/inventory.img" ] || die "keyed round not complete"
hog_verify "after the refused dumps"
server_stop
echo PASS
