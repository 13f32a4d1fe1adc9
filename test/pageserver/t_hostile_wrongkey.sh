#!/bin/bash
# Keys: a server with --auth-key accepts the right key only. A client with another key
# refuses the server (its proof is wrong) and the server logs the client's ERROR; a
# client that forges its proof is refused by the server; a client without a key is
# refused; a server without a key refuses a client that requires one.
. "$(dirname "$0")/lib-server.sh"
ps_init
head -c 32 /dev/urandom >"$T/k1"
head -c 48 /dev/urandom >"$T/k2"
chmod 600 "$T/k1" "$T/k2"
ps_start --auth-key "$T/k1"
out=$(peer --key "$T/k2" hello 2>&1) && fail "wrong key accepted: $out"
grep -q "proved another key" <<<"$out" || fail "client side does not name the cause: $out"
wait_log "server proof wrong"
out=$(peer hello-forged expect-error "client proof wrong") || fail "forged proof: $out"
wait_log "client proof does not match: wrong key"
out=$(peer hello 2>&1) && fail "no key accepted: $out"
grep -q "requires a key" <<<"$out" || fail "keyless client not told why: $out"
wait_log "client has no key, this server requires one"
out=$(peer --key "$T/k1" --source good hello round k-1 - 5000) || fail "right key refused: $out"
[[ -f $T/box/srv/good/k-1/inventory.img ]] || fail "keyed round not complete"
check_contained
ps_stop
# a server without a key and a client that requires one
ps_start
out=$(peer --key "$T/k1" hello 2>&1) && fail "keyed client accepted by a keyless server: $out"
grep -q "has no key" <<<"$out" || fail "keyed client not told why: $out"
check_serving
ps_stop
echo PASS
