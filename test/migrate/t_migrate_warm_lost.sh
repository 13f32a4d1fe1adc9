#!/bin/bash
# Fault: the destination's warm restorer (the process that stages each pre-copy round,
# docs/warm.md) dies after each round it staged (the page server's fault injection
# FERRY_FAULT=warm-exit). The next round starts a new one, which stages the chain again;
# at the final round it is gone too: the destination must restore cold, and the
# migration succeed as without staging: the source gone, the destination's tree
# verifying every page.
. "$(dirname "$0")/lib.sh"

hosts_up || die "cannot create the namespaces"
FERRY_FAULT=warm-exit dst_server
src_zdtm predump_ledger
migrate_src --json -v4 -o "$W/mig.log" "$T" >"$W/mig.json" || die "migrate failed"
grep -q '"ok": true' "$W/mig.json" || die "migrate did not report success"
log_has "$W/srv.log" "warm restorer exits"
log_has "$W/srv.log" "warm restorer is gone: restoring cold"
WAIT_S=10 wait_for gone "$T" || die "the source process $T still runs"
dpid=$(json_num "$W/mig.json" dest_pid)
[ -n "$dpid" ] && alive "$dpid" || die "no running destination pid ($dpid)"
zdtm_verify predump_ledger "$dpid"
echo PASS
