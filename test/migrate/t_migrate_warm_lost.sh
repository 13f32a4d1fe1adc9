#!/bin/bash
# Faults of the destination's warm restorer (the process that stages each pre-copy
# round, docs/warm.md), injected by the page server (FERRY_FAULT), each a migration of
# zdtm predump_ledger that must succeed as without staging: the source gone, the
# destination's tree verifying every page.
#  - warm-exit: each warm restorer dies after the first round it staged; the next round
#    starts a new one (which stages the chain again); at the final round it is gone
#    too: the destination restores cold.
#  - warm-final-exit: it dies when the final round is handed to it, before reporting
#    anything: the destination restores the same round cold.
. "$(dirname "$0")/lib.sh"

# one FAULT EXPECTED-LOG-LINE
one() {
	FERRY_FAULT=$1 dst_server
	src_zdtm predump_ledger
	migrate_src --json -v4 -o "$W/mig-$1.log" "$T" >"$W/mig-$1.json" ||
		die "$1: migrate failed"
	grep -q '"ok": true' "$W/mig-$1.json" || die "$1: migrate did not report success"
	log_has "$W/srv.log" "round 'r[0-9]*' staged"
	log_has "$W/srv.log" "$2"
	moved_verify "$1" "$W/mig-$1.json" predump_ledger
	cp "$W/srv.log" "$W/srv-$1.log"
	srv_kill
	rm -f "$W/srv.log"
}

hosts_up || die "cannot create the namespaces"
one warm-exit "warm restorer is gone: restoring cold"
one warm-final-exit "warm restorer failed .*: restoring cold"
echo PASS
