#!/bin/bash
# Fault: the destination's RUNNING answer is lost (the page server's fault injection
# FERRY_FAULT=drop-running: it lets the tree run, then drops the connection). migrate
# must ask the destination on a new connection, learn that the tree runs there, and only
# then kill the source: exactly one copy runs, on the destination, and it verifies.
. "$(dirname "$0")/lib.sh"

hosts_up || die "cannot create the namespaces"
FERRY_FAULT=drop-running dst_server
src_zdtm predump_ledger
migrate_src --json -v4 -o "$W/mig.log" "$T" >"$W/mig.json" || die "migrate failed"
log_has "$W/mig.log" "asking the destination"
WAIT_S=10 wait_for gone "$T" || die "two copies: the source still runs"
dpid=$(json_num "$W/mig.json" dest_pid)
alive "$dpid" || die "the destination's tree ($dpid) does not run"
zdtm_verify predump_ledger "$dpid"
echo PASS
