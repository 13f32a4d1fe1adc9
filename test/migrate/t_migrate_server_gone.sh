#!/bin/bash
# Fault: the page server dies (SIGKILL) while a pre-copy round streams. migrate must
# exit non-zero with one line naming the lost connection; the source memhog keeps
# running and verifies all of its memory; nothing of the tree runs at the destination.
. "$(dirname "$0")/lib.sh"

hosts_up || die "cannot create the namespaces"
dst_server
src_hog 512
# 64 MB/s: round 0 takes ~8 s, time enough to kill the server in the middle of it
migrate_bg --bandwidth 64M -v4 -o "$W/mig.log" "$T"
WAIT_S=20 wait_for grep -q "round '.*r0001' begins" "$W/srv.log" || die "round 0 never began"
srv_kill
WAIT_S=60 wait_for gone "$M" || die "migrate hangs after the server died"
wait "$M" && die "migrate succeeded without its page server"
log_has "$W/mig.log" "error: .*(page server|connection|reset|closed|Broken pipe)"
dst_empty || die "something of the tree runs at the destination"
hog_verify
echo PASS
