#!/bin/bash
# Round 0 in parts (docs/migrate.md "Round 0 in parts"): a migration without a chain
# copies its first round as several partial pre-dump rounds (pre-dump --max-bytes),
# each queued for staging at the destination at once (MIG_WARM queue) while the next is
# copied. --part-size 4M makes zdtm predump_ledger (32 MiB, 4 threads stamping
# pages) take several parts. The migration must succeed with the memory built from the
# staging, the source gone, the destination's tree verifying every page; then the same
# with a warm restorer that dies after the first part it staged (FERRY_FAULT=warm-exit):
# the queued parts find it gone, a new one stages the chain, the tree still verifies.
. "$(dirname "$0")/lib.sh"

# one FAULT|none: a migration in parts; checks the parts and the result
one() {
	if [ "$1" = none ]; then dst_server; else FERRY_FAULT=$1 dst_server; fi
	src_zdtm predump_ledger
	migrate_src --part-size 4M --json -v4 -o "$W/mig-$1.log" "$T" >"$W/mig-$1.json" ||
		die "$1: migrate failed"
	grep -q '"ok": true' "$W/mig-$1.json" || die "$1: migrate did not report success"
	local parts
	parts=$(sed -n 's/.*"rounds": \[{[^}]*"parts": \([0-9]*\).*/\1/p' "$W/mig-$1.json")
	[ -n "$parts" ] && ((parts >= 2)) || die "$1: round 0 was not copied in parts ($parts)"
	log_has "$W/mig-$1.log" "partial: --max-bytes reached"
	log_has "$W/srv.log" "queued for staging"
	WAIT_S=10 wait_for gone "$T" || die "$1: the source process $T still runs"
	local dpid
	dpid=$(json_num "$W/mig-$1.json" dest_pid)
	[ -n "$dpid" ] && alive "$dpid" || die "$1: no running destination pid ($dpid)"
	zdtm_verify predump_ledger "$dpid"
	echo "$1: round 0 in $parts parts"
	cp "$W/srv.log" "$W/srv-$1.log"
	srv_kill
	rm -f "$W/srv.log"
}

# a bad size is a usage error naming the option (exit 2), nothing started
"$FERRY" migrate --to 127.0.0.1:1 --part-size 12X 1 >"$W/usage.out" 2>&1
rc=$?
[ "$rc" = 2 ] && grep -q -- "--part-size needs a size" "$W/usage.out" ||
	die "--part-size 12X: exit $rc: $(cat "$W/usage.out")"

hosts_up || die "cannot create the namespaces"
one none
log_has "$W/srv-none.log" "memory from the warm staging"
one warm-exit
log_has "$W/srv-warm-exit.log" "warm restorer is gone: restoring cold"
echo PASS
