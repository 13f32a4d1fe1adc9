#!/bin/bash
# Fault: the page server stops answering (SIGSTOP) in the middle of a round; migrate
# gives up after --timeout with one line naming the stall, the source keeps running and
# verifies its memory, nothing runs at the destination.
. "$(dirname "$0")/lib.sh"

hosts_up || die "cannot create the namespaces"
dst_server
src_hog 512
migrate_bg --bandwidth 64M --timeout 3 -v4 -o "$W/mig.log" "$T"
WAIT_S=20 wait_for grep -q "round '.*r0001' begins" "$W/srv.log" || die "round 0 never began"
for p in $SRV $(pgrep -P "$SRV"); do kill -STOP "$p"; done
WAIT_S=60 wait_for gone "$M" || die "migrate hangs on a stalled server"
wait "$M" && die "migrate succeeded with a stalled page server"
log_has "$W/mig.log" "error: .*(timed out|timeout|no progress|stall)"
for p in $SRV $(pgrep -P "$SRV"); do kill -CONT "$p"; done
dst_empty || die "something of the tree runs at the destination"
hog_verify
echo PASS
