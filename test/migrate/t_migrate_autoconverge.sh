#!/bin/bash
# --auto-converge: zdtm predump_ledger rewrites its 32 MB ledger many times a second
# (4 threads), far faster than a link capped at 20 MB/s (uncompressed): the rounds stop
# shrinking. With the option, every such round raises the tree's CPU throttle (20%, then
# +10%: a quota on a cgroup of its own, made for the migration) until --max-iters; the
# ledger verifies at the destination and the temporary cgroup is gone afterwards. (This
# workload touches its whole ledger in well under 1% of a CPU, so no throttle can make
# it converge: what is checked here is the mechanism and that it leaves no trace.)
. "$(dirname "$0")/lib.sh"

hosts_up || die "cannot create the namespaces"
dst_server
src_zdtm predump_ledger
migrate_src --bandwidth 20M --compress off --auto-converge --max-iters 5 --json -v4 \
	-o "$W/mig.log" "$T" >"$W/mig.json" || die "migrate failed"
log_has "$W/mig.log" "auto-converge: tree of $T throttled through .* cgroup"
log_has "$W/mig.log" "auto-converge: tree of $T throttled by 30%"
thr=$(grep -o '"throttle_pct": [0-9]*' "$W/mig.json" | grep -o '[0-9]*$' | sort -n | tail -n 1)
((thr >= 20)) || die "no round ran throttled (JSON: ${thr:-none})"
for d in /sys/fs/cgroup/cpu/ferry-converge-"$T" /sys/fs/cgroup/unified/ferry-converge-"$T"; do
	[ ! -e "$d" ] || die "the temporary cgroup $d is left behind"
done
WAIT_S=10 wait_for gone "$T" || die "the source still runs"
zdtm_verify predump_ledger "$(json_num "$W/mig.json" dest_pid)"
echo "PASS (throttled up to $thr%)"
