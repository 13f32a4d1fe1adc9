#!/bin/bash
# Live migration of TCP connections between two "hosts": zdtm sock_tcp_loop,
# sock_tcp_ipv6 and sock_tcp_inflight (loopback pairs with both ends in the tree, queues
# full both ways; the last one dumped with in-flight bytes the receiver already holds)
# migrate with --tcp-established from the source namespace to the destination's; the
# 4-tuples are free there (each namespace has its own loopback), the connections are
# rebuilt and the streams complete byte for byte after the move (each test verifies its
# stream on SIGTERM). The source's network lock must not outlive the migration.
. "$(dirname "$0")/lib.sh"

hosts_up || die "cannot create the namespaces"
dst_server
for t in sock_tcp_loop sock_tcp_ipv6 sock_tcp_inflight; do
	src_zdtm "$t"
	migrate_src --tcp-established --json -v4 -o "$W/mig-$t.log" "$T" >"$W/mig-$t.json" ||
		die "$t: migrate failed"
	WAIT_S=10 wait_for gone "$T" || die "$t: the source process $T still runs"
	dpid=$(json_num "$W/mig-$t.json" dest_pid)
	[ -n "$dpid" ] && alive "$dpid" || die "$t: no running destination pid ($dpid)"
	zdtm_verify "$t" "$dpid"
	left=$(run_src nft list tables 2>/dev/null | grep ferry_)
	[ -z "$left" ] || die "$t: network lock left in the source namespace: $left"
done
echo PASS
