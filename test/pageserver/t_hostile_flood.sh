#!/bin/bash
# Hostile peers: 100 connections at once against --max-clients 16. Every one gets either
# READY or ERROR "busy" (none hangs or fails otherwise), the server logs the refusals,
# keeps serving afterwards, and its children are all reaped.
. "$(dirname "$0")/lib-server.sh"
ps_init
ps_start --max-clients 16
out=$(peer --timeout-ms 20000 flood 100 1500) || fail "flood: $out"
echo "$out"
ready=$(sed -n 's/.*ready \([0-9]*\) busy \([0-9]*\) failed 0/\1/p' <<<"$out")
busy=$(sed -n 's/.*ready \([0-9]*\) busy \([0-9]*\) failed 0/\2/p' <<<"$out")
((ready + busy == 100)) || fail "ready $ready + busy $busy != 100"
((busy > 0)) && wait_log "busy"
# children exit once their peers close: none left
for _ in $(seq 100); do
	kids=$(cat /proc/"$PS_PID"/task/*/children 2>/dev/null | wc -w)
	((kids == 0)) && break
	sleep 0.05
done
((kids == 0)) || fail "$kids children left"
check_serving
check_contained
ps_stop
echo PASS
