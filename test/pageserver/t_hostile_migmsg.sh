#!/bin/bash
# Hostile peer, migrate's requests: MIG_WARM and MIG_RESTORE of a round name that tries
# to leave the directory or of a round that does not exist are refused with an ERROR
# naming the round, inside a round being written with an ERROR naming the frame (and
# the partial round is removed); MIG_RESTORE of a committed
# pre-dump round is refused ("not a final dump") and the round stays; MIG_WARM of a
# committed round the peer crafted (a tree without its layout) is answered (MIG_WARMED)
# and the server keeps serving. Queued MIG_WARMs (round 0 in parts): an unknown round
# is refused the same way; at most 8 are queued, the 9th waits for them (a flood does
# not pile up work), and the server keeps serving.
. "$(dirname "$0")/lib-server.sh"
ps_init
ps_start
out=$(peer hello mig-warm-queue ../x expect-error "MIG_WARM of unknown round") ||
	fail "queued MIG_WARM of '../x': $out"
for msg in warm restore; do
	up=${msg^^}
	for round in ../x .. nosuch; do
		out=$(peer hello mig-$msg "$round" expect-error "MIG_$up of unknown round") ||
			fail "MIG_$up of '$round': $out"
	done
	# a round in progress on this very connection: no migrate request inside a round
	out=$(peer hello begin open1 mig-$msg open1 expect-error "unexpected MIG_$up frame") ||
		fail "MIG_$up of a round in progress: $out"
	check_no_round peer/open1
done
wait_log "MIG_WARM of unknown round '../x'"

# a committed pre-dump round: never restored, never discarded
out=$(peer --kind 1 hello round p0 - 8192 mig-restore p0 expect-error "not a final dump") ||
	fail "MIG_RESTORE of a pre-dump round: $out"
[[ -f $T/box/srv/peer/p0/inventory.img ]] || fail "the pre-dump round was discarded"

# staging a committed round of the peer's making: answered, nothing breaks
out=$(peer --source warm --kind 1 hello round w0 - 8192 mig-warm w0 expect-warmed) ||
	fail "MIG_WARM of a crafted round: $out"
grep -q "^WARMED " <<<"$out" || fail "no MIG_WARMED: $out"
[[ -f $T/box/srv/warm/w0/inventory.img ]] || fail "the staged round is gone"

# a flood of queued MIG_WARMs of one committed round
args=()
for ((k = 0; k < 10; k++)); do args+=(mig-warm-queue q0 expect-warmed); done
out=$(peer --source flood --kind 1 hello round q0 - 8192 "${args[@]}" mig-warm q0 expect-warmed) ||
	fail "queued MIG_WARMs: $out"
[ "$(grep -c '^WARMED ok .*(queued)' <<<"$out")" = 9 ] ||
	fail "expected 8 queued, 1 waited for, 1 queued again, then 1 waited for: $out"
w9=$(grep '^WARMED' <<<"$out" | sed -n 9p)
[[ $w9 == WARMED* && $w9 != *queued* ]] || fail "the 9th queued MIG_WARM was not waited for: $out"
check_serving
check_contained
ps_stop
echo PASS
