#!/bin/bash
# Hostile peer: unknown frame types (before and after the handshake, including the
# range reserved for migrate) and frames out of sequence.
. "$(dirname "$0")/lib-server.sh"
ps_init
ps_start
out=$(peer hdr 20 0 expect-error "unknown frame type 20") || fail "type 20: $out"
out=$(peer hello hdr 40 0 expect-error "unknown frame type 40") || fail "type 40: $out"
wait_log "unknown frame type 40"
out=$(peer hello hdr 2 0 expect-error "unexpected WELCOME") || fail "WELCOME from client: $out"
out=$(peer hello open 1 pstree.img expect-error "FILE_OPEN outside a round") || fail "no round: $out"
out=$(peer hello begin r1 data 1 10 expect-error "not open") || fail "data of no file: $out"
check_no_round peer/r1
check_serving
check_contained
ps_stop
echo PASS
