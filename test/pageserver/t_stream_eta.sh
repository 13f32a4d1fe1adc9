#!/bin/bash
# The progress line of a real streamed pre-dump, engine to sender: the dump announces
# each process's page selection through the image sink (img_sink_expect ->
# ps_progress_expect), so with stderr a terminal (script(1) gives it a pty) a 256 MiB
# memhog's first round shows "X of TOTAL (P%)" with a total of about its memory (the
# ETA needs 0.2 s of copy to show: not asserted, the round may be faster here).
. "$(dirname "$0")/stream_lib.sh"
command -v script >/dev/null || die "script(1) (util-linux) is needed for a pty"

server_start "$W/srv"
hog_start memhog 256
timeout -k 5 120 script -qec "$FERRY pre-dump -t $HOG -D $W/pre1 --page-server --port $PORT \
	--address 127.0.0.1 --source-id eta -v1" /dev/null </dev/null | tr '\r' '\n' >"$W/tty.out" ||
	die "pre-dump under script failed: $(tail -c 300 "$W/tty.out")"
grep -a 'page server:' "$W/tty.out" | sed 's/\x1b\[K//' | head -n 4
grep -aq 'page server: .* of 2[0-9][0-9]\.[0-9] MiB ([0-9]*%)' "$W/tty.out" ||
	die "no progress line with the round's total (about 256 MiB)"
[ -f "$W/srv/eta/pre1/inventory.img" ] || die "the round is not complete on the server"
hog_verify memhog
server_stop
echo PASS
