#!/bin/bash
# Fault: migrate itself gets SIGTERM in the middle of pre-copy, then SIGINT in a second
# run. Each time it exits non-zero naming the signal; the source keeps running and
# verifies its memory; nothing runs at the destination.
. "$(dirname "$0")/lib.sh"

hosts_up || die "cannot create the namespaces"
dst_server
src_hog 512
for sig in TERM INT; do
	: >"$W/srv.log"
	migrate_bg --bandwidth 64M -v4 -o "$W/mig-$sig.log" "$T"
	WAIT_S=20 wait_for grep -q "round '.*' begins" "$W/srv.log" || die "no round began ($sig)"
	kill -"$sig" "$M"
	WAIT_S=30 wait_for gone "$M" || die "migrate ignores SIG$sig"
	wait "$M" && die "migrate succeeded after SIG$sig"
	log_has "$W/mig-$sig.log" "interrupted by signal"
	alive "$T" || die "the source died after SIG$sig to migrate"
done
dst_empty || die "something of the tree runs at the destination"
hog_verify
echo PASS
