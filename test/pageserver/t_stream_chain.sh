#!/bin/bash
# A chain across connections: a pre-dump in one ferry invocation and the final dump in
# another, with the default source id (<hostname>-<pid>), land in the same chain on the
# server (the dump's round links to the pre-dump's); the server is even restarted in
# between (chains persist on disk). A dump naming a parent that another source owns is
# refused (the parent must be a round of the same source) and leaves the process running.
. "$(dirname "$0")/stream_lib.sh"

server_start "$W/srv"
hog_start memhog 64
fy pre-dump -t "$HOG" -D "$W/pre1" --track-mem --page-server --port "$PORT" \
	-o "$W/pre1.log" || die "pre-dump failed"
server_stop
server_start "$W/srv"
src=$W/srv/$(hostname)-$HOG
[ -f "$src/pre1/inventory.img" ] || die "no complete pre1 round under $src"

# another source cannot chain onto it
if fy dump -t "$HOG" -D "$W/bad" --track-mem --prev-images-dir ../pre1 --page-server \
	--port "$PORT" --source-id other-source -o "$W/bad.log" 2>"$W/bad.err"; then
	die "a dump chained to another source's round succeeded"
fi
alive "$HOG" || die "the process died in the refused dump"
[ -e "$W/srv/other-source/bad/inventory.img" ] && die "the refused round looks complete"
grep -q 'page server' "$W/bad.log" || die "refused dump: no error naming the page server: $(cat "$W/bad.log")"

rm -rf "$W/bad"
fy dump -t "$HOG" -D "$W/img" --track-mem --prev-images-dir ../pre1 --page-server \
	--port "$PORT" -o "$W/dump.log" || { tail -n 5 "$W/dump.log"; die "dump failed"; }
wait "$HOG" 2>/dev/null
[ "$(readlink "$src/img/parent")" = ../pre1 ] || die "img is not chained to pre1"
restore_verify "$src/img"
server_stop
echo PASS
