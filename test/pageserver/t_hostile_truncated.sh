#!/bin/bash
# Hostile peer: a truncated frame (half a header before the handshake; a FILE_DATA frame
# whose payload stops short mid-round). The server drops the peer, removes the partial
# round, keeps serving.
. "$(dirname "$0")/lib-server.sh"
ps_init
ps_start
peer truncated expect-close || fail "server kept a truncated connection"
wait_log "waiting for HELLO from client"
out=$(peer hello begin r1 open 1 pages-1.img data 1 5000 data-short 1 65536 1000 shut expect-close) ||
	fail "truncated FILE_DATA: $out"
wait_log "connection reset|reading data of 'pages-1.img'"
wait_log "removed partial round 'peer/r1'"
check_no_round peer/r1
check_serving
check_contained
ps_stop
echo PASS
