#!/bin/bash
# Hostile peer: a client that stops sending mid-batch (inside a FILE_DATA payload) and
# holds the socket. With --timeout 2 the server drops it with an ERROR naming the idle
# timeout and removes the partial round; meanwhile other clients are served.
. "$(dirname "$0")/lib-server.sh"
ps_init
ps_start --timeout 2
# a FILE_DATA header of 65536 bytes, 1000 of them, then silence for 6 s
peer --timeout-ms 8000 hello begin r1 open 1 pages-1.img data 1 4096 data-short 1 65536 1000 \
	hold 6000 expect-error "idle timeout" >"$T/stall.out" 2>&1 &
stall=$!
EXTRA_PIDS+=($stall)
wait_log "round 'peer/r1' begins"
check_serving # served while the staller holds its socket
wait "$stall" || fail "staller did not get the idle-timeout ERROR: $(cat "$T/stall.out")"
grep -q "ERROR 110: " "$T/stall.out" || fail "not ETIMEDOUT: $(cat "$T/stall.out")"
wait_log "reading data of 'pages-1.img' \(4096 bytes in\): idle timeout \(nothing for 2 s\)"
wait_log "removed partial round 'peer/r1'"
check_no_round peer/r1
# idle between frames in a round, too
out=$(peer --timeout-ms 8000 hello begin r2 hold 3000 expect-error "idle timeout") || fail "idle: $out"
wait_log "no frame for 2 s \(idle timeout\) in round r2"
check_no_round peer/r2
check_serving
check_contained
ps_stop
echo PASS
