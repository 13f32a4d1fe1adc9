#!/bin/bash
# A multi-process, multi-threaded tree migrates: zdtm prefork_server (a parent with an
# epoll on a listening unix socket and worker children sharing it, workers with threads,
# eventfds and timerfds). Everything arrives in the destination namespace and verifies.
. "$(dirname "$0")/lib.sh"

hosts_up || die "cannot create the namespaces"
dst_server
src_zdtm prefork_server
kids=$(cat /proc/"$T"/task/*/children | wc -w)
((kids >= 2)) || die "prefork_server has $kids children"
migrate_src --json -v4 -o "$W/mig.log" "$T" >"$W/mig.json" || die "migrate failed"
WAIT_S=10 wait_for gone "$T" || die "the source tree still runs"
dpid=$(json_num "$W/mig.json" dest_pid)
alive "$dpid" || die "no destination tree ($dpid)"
n=$(ip netns pids "$DST_NS" | while read -r p; do
	[ "$(cat /proc/"$p"/comm 2>/dev/null)" = prefork_server ] && echo "$p"; done | wc -l)
((n == kids + 1)) || die "$n prefork_server processes at the destination, expected $((kids + 1))"
zdtm_verify prefork_server "$dpid"
echo "PASS ($n processes)"
