#!/bin/bash
# Hostile peer: garbage bytes instead of a HELLO, and garbage in the middle of a round.
# The server answers ERROR naming the cause, logs it, drops the peer, removes the
# partial round and keeps serving.
. "$(dirname "$0")/lib-server.sh"
ps_init
ps_start
out=$(peer garbage 4096 expect-error "bad frame magic") || fail "no ERROR for garbage: $out"
wait_log "bad frame magic"
out=$(peer hello begin r1 open 1 pstree.img data 1 100 garbage 8192 expect-error "bad frame magic") ||
	fail "no ERROR for garbage mid-round: $out"
wait_log "removed partial round 'peer/r1'"
check_no_round peer/r1
check_serving
check_contained
ps_stop
echo PASS
