#!/bin/bash
# Live migration between two "hosts" (network namespaces joined by a veth pair, a keyed
# page server in the destination): zdtm predump_ledger (4 threads stamping pages all
# the time, a ledger of every page's generation) migrates with pre-copy rounds; the
# source is gone afterwards, the destination's tree runs in the destination namespace
# and verifies every page after the move. migrate --json reports the rounds and a
# measured downtime. The destination staged the rounds as they came and built the
# memory from that staging (the warm destination).
. "$(dirname "$0")/lib.sh"

hosts_up || die "cannot create the namespaces"
dst_server
src_zdtm predump_ledger
migrate_src --json -v4 -o "$W/mig.log" "$T" >"$W/mig.json" || die "migrate failed"
grep -q '"ok": true' "$W/mig.json" || die "migrate did not report success"
WAIT_S=10 wait_for gone "$T" || die "the source process $T still runs"
dpid=$(json_num "$W/mig.json" dest_pid)
[ -n "$dpid" ] && alive "$dpid" || die "no running destination pid ($dpid)"
[ "$(readlink /proc/"$dpid"/ns/net)" = "$(run_dst readlink /proc/self/ns/net)" ] ||
	die "the migrated tree is not in the destination namespace"
n=$(grep -o '"name"' "$W/mig.json" | wc -l)
((n >= 2)) || die "expected pre-copy rounds and a final round, got $n rounds"
dt=$(json_num "$W/mig.json" downtime_ms)
awk -v d="$dt" 'BEGIN { exit !(d > 0) }' || die "no measured downtime ($dt)"
# the destination built the memory from the rounds it staged (docs/warm.md)
log_has "$W/srv.log" "round 'r0001' staged"
log_has "$W/srv.log" "memory from the warm staging"
zdtm_verify predump_ledger "$dpid"
echo "PASS ($n rounds, downtime $dt ms)"
