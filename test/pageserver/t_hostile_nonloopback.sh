#!/bin/bash
# The server refuses to listen on a non-loopback address without --auth-key (exit 1,
# a clear error), and starts with one; --port is required; a taken port is an error.
. "$(dirname "$0")/lib-server.sh"
ps_init
for a in 0.0.0.0 :: 10.1.2.3; do
	st=0
	out=$(timeout 10 "$FERRY" pageserver --port 45678 --address "$a" -D "$T/box/srv" 2>&1) || st=$?
	((st == 1)) || fail "address $a without key: exit $st: $out"
	grep -q "refusing to listen on non-loopback address '$a' without --auth-key" <<<"$out" ||
		fail "no clear error for $a: $out"
done
st=0
out=$(timeout 10 "$FERRY" pageserver -D "$T/box/srv" 2>&1) || st=$?
((st == 2)) && grep -q -- "--port N is required" <<<"$out" || fail "missing --port: $st $out"
head -c 32 /dev/urandom >"$T/key"
chmod 600 "$T/key"
ps_start --address 0.0.0.0 --auth-key "$T/key"
wait_log "listening on 0.0.0.0 port $PORT.*key required"
out=$(peer --key "$T/key" --source good hello round k-1 - 1000) || fail "keyed round: $out"
# the same port again: a clear bind error
st=0
out=$(timeout 10 "$FERRY" pageserver --port "$PORT" --address 0.0.0.0 --auth-key "$T/key" -D "$T/box/srv" 2>&1) || st=$?
((st == 1)) && grep -q "cannot bind 0.0.0.0 port $PORT: Address already in use" <<<"$out" ||
	fail "second bind: $st $out"
check_contained
ps_stop
echo PASS
