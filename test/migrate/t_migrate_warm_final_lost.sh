#!/bin/bash
# Fault: the destination's warm restorer stages every pre-copy round, then dies when the
# final round is handed to it (the page server's fault injection
# FERRY_FAULT=warm-final-exit), before it reported anything. The destination must
# restore the same final round cold, and the migration succeed: the source gone, the
# destination's tree verifying every page.
. "$(dirname "$0")/lib.sh"

hosts_up || die "cannot create the namespaces"
FERRY_FAULT=warm-final-exit dst_server
src_zdtm predump_ledger
migrate_src --json -v4 -o "$W/mig.log" "$T" >"$W/mig.json" || die "migrate failed"
grep -q '"ok": true' "$W/mig.json" || die "migrate did not report success"
log_has "$W/srv.log" "round 'r0001' staged"
log_has "$W/srv.log" "warm restorer failed .*: restoring cold"
WAIT_S=10 wait_for gone "$T" || die "the source process $T still runs"
dpid=$(json_num "$W/mig.json" dest_pid)
[ -n "$dpid" ] && alive "$dpid" || die "no running destination pid ($dpid)"
zdtm_verify predump_ledger "$dpid"
echo PASS
