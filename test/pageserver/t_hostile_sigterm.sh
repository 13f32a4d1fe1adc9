#!/bin/bash
# SIGTERM stops the server cleanly while a client is mid-round: exit 0, the child is
# stopped too and its partial round removed, complete rounds stay, the pidfile goes.
. "$(dirname "$0")/lib-server.sh"
ps_init
ps_start
out=$(peer --source keep hello round done-1 - 10000) || fail "first round: $out"
peer --timeout-ms 15000 hello begin mid open 1 pages-1.img data 1 300000 hold 10000 >"$T/mid.out" 2>&1 &
EXTRA_PIDS+=($!)
wait_log "round 'peer/mid' begins"
# FILE_OPEN follows ROUND_BEGIN's log line: wait for the file (bounded), not just the line
for _ in $(seq 100); do
	[[ -e $T/box/srv/peer/mid/pages-1.img ]] && break
	sleep 0.05
done
[[ -e $T/box/srv/peer/mid/pages-1.img ]] || fail "round not started"
kids=$(cat /proc/"$PS_PID"/task/*/children)
[[ -n $kids ]] || fail "no child serving the connection"
ps_stop
for k in $kids; do
	[[ ! -e /proc/$k ]] || [[ $(awk '{print $3}' /proc/"$k"/stat 2>/dev/null) == Z ]] || fail "child $k survived"
done
grep -q "stopping on signal 15" "$PS_LOG" || fail "no stop line"
grep -q "stopped" "$PS_LOG" || fail "no stopped line"
grep -q "removed partial round 'peer/mid'" "$PS_LOG" || fail "partial round not removed"
check_no_round peer/mid
[[ -f $T/box/srv/keep/done-1/inventory.img ]] || fail "complete round lost"
[[ ! -e $T/pid ]] || fail "pidfile left"
check_contained
echo PASS
