#!/bin/bash
# Hostile peer: names that try to leave the directory or forge a round: image names
# "../x", "a/b", "inventory.img", "parent"; round and source names "../x", "..". All
# refused with an ERROR naming the name; nothing is written outside the server dir.
. "$(dirname "$0")/lib-server.sh"
ps_init
ps_start
for name in ../x ../../escape a/b inventory.img parent .lock /etc/passwd; do
	out=$(peer hello begin r1 open 1 "$name" expect-error "refused image name") ||
		fail "image name '$name' not refused: $out"
	check_no_round peer/r1
done
wait_log "refused image name '../x'"
for round in ../x .. . a/b; do
	out=$(peer hello begin "$round" expect-error "bad round name") || fail "round '$round': $out"
done
out=$(peer --source ../x hello 2>&1) && fail "source '../x' accepted: $out"
wait_log "bad source name '../x'"
[[ ! -e $T/box/x && ! -e $T/x && ! -e $T/escape && ! -e $T/box/escape ]] || fail "escaped"
check_serving
check_contained
ps_stop
echo PASS
