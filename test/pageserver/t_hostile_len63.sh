#!/bin/bash
# Hostile peer: frames claiming 2^63 bytes, before the handshake and in a round (as a
# FILE_DATA and as a ROUND_COMMIT). Refused from the header, before any allocation.
. "$(dirname "$0")/lib-server.sh"
ps_init
ps_start
out=$(peer hdr 1 9223372036854775808 expect-error "9223372036854775808") || fail "HELLO 2^63: $out"
wait_log "HELLO frame of 9223372036854775808 bytes"
out=$(peer hello begin r1 hdr 10 9223372036854775808 expect-error "FILE_DATA frame of 9223372036854775808") ||
	fail "FILE_DATA 2^63: $out"
out=$(peer hello begin r2 hdr 13 9223372036854775808 expect-error "ROUND_COMMIT frame of 9223372036854775808") ||
	fail "ROUND_COMMIT 2^63: $out"
wait_log "ROUND_COMMIT frame of 9223372036854775808 bytes"
check_no_round peer/r1
check_no_round peer/r2
check_serving
check_contained
ps_stop
echo PASS
