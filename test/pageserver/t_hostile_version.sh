#!/bin/bash
# Hostile peer: an unknown protocol version. Refused with an ERROR naming both versions.
. "$(dirname "$0")/lib-server.sh"
ps_init
ps_start
out=$(peer hello-version 2 expect-error "protocol version 2 not supported (server speaks 1)") ||
	fail "version 2: $out"
wait_log "client speaks protocol version 2, server 1"
out=$(peer hello-version 0 expect-error "version 0") || fail "version 0: $out"
check_serving
check_contained
ps_stop
echo PASS
