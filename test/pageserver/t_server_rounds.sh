#!/bin/bash
# Server rounds (ps_peer through img_* and a sink): a chain across connections with
# parent links; a complete round is never overwritten (EEXIST); a leftover partial round
# is removed first; one session per source at a time (EBUSY); a parent that is missing,
# incomplete or not "../<round>" is refused; a manifest that does not match the files
# received is refused; a FILE_CLOSE with a wrong size is refused; peak RSS of a 256 MiB
# round stays under 64 MiB; --once exits after one connection.
. "$(dirname "$0")/lib-server.sh"
ps_init
ps_start
S=$T/box/srv/chain
peer --source chain hello round r0 - 100000 round r1 ../r0 200000 >/dev/null || fail "rounds r0 r1"
peer --source chain hello round r2 ../r1 300000 >/dev/null || fail "round r2 in a new connection"
[[ $(readlink "$S/r1/parent") == ../r0 && $(readlink "$S/r2/parent") == ../r1 ]] || fail "parent links"
for r in r0 r1 r2; do
	[[ -f $S/$r/inventory.img ]] || fail "$r incomplete"
	# the server's copy is the same as the local half for the files that stay local
	cmp -s "$S/$r/inventory.img" "$T/loc/$r/inventory.img" || fail "$r inventory differs"
	cmp -s "$S/$r/pstree.img" "$T/loc/$r/pstree.img" || fail "$r pstree differs"
	[[ ! -e $T/loc/$r/pages-1.img ]] || fail "$r page data was written locally"
done
[[ $(stat -c %s "$S/r2/pages-1.img") == 300000 ]] || fail "r2 pages size"
"$FERRY" show "$S/r2" >/dev/null 2>&1 || fail "ferry show does not accept the round the server wrote"

# a complete round is not overwritten
rm -rf "$T/loc/r1"
out=$(peer --source chain hello round r1 ../r0 1000 2>&1) && fail "complete round overwritten"
grep -q "ERROR 17: round 'chain/r1' is complete already" <<<"$out" || fail "EEXIST: $out"
[[ $(stat -c %s "$S/r1/pages-1.img") == 200000 ]] || fail "r1 was touched"

# a leftover partial round (crashed session) is removed first
mkdir "$S/r3" && echo junk >"$S/r3/pages-1.img" && ln -s /etc/passwd "$S/r3/core-1.img"
peer --source chain hello round r3 ../r2 1000 >/dev/null || fail "round over a leftover"
wait_log "removing leftover partial round 'chain/r3'"
[[ -f /etc/passwd && $(stat -c %s "$S/r3/pages-1.img") == 1000 ]] || fail "leftover handling"

# one session per source
peer --source chain hello begin r9 hold 3000 >/dev/null 2>&1 &
holder=$!
EXTRA_PIDS+=($holder)
wait_log "round 'chain/r9' begins"
out=$(peer --source chain hello begin r10 expect-error "in use by another session") || fail "lock: $out"
wait "$holder"
check_no_round chain/r9
check_no_round chain/r10

# parents: missing, incomplete, malformed
out=$(peer --source chain hello round r4 ../nothere 1000 2>&1) && fail "missing parent accepted"
grep -q "parent round 'chain/nothere' is not on this server" <<<"$out" || fail "missing parent: $out"
mkdir "$S/half"
out=$(peer --source chain hello round r5 ../half 1000 2>&1) && fail "incomplete parent accepted"
grep -q "parent round 'chain/half' is incomplete" <<<"$out" || fail "incomplete parent: $out"
rmdir "$S/half"
for p in ../../x /abs r0 ../r6; do
	rm -rf "$T/loc/r6"
	out=$(peer --source chain hello round r6 "$p" 1000 2>&1) && fail "parent '$p' accepted"
	grep -q "parent '$p' is not ../<another round>" <<<"$out" || fail "parent '$p': $out"
done
for r in r4 r5 r6; do check_no_round "chain/$r"; done

# manifest and file checks
out=$(peer hello begin m1 open 1 pstree.img data 1 100 close 1 commit-garbage expect-error "is corrupt") ||
	fail "garbage inventory: $out"
check_no_round peer/m1
out=$(peer hello begin m2 open 1 pstree.img data 1 100 close 1 open 1 files.img data 1 10 close 1 \
	open 2 files.img expect-error "cannot create 'peer/m2/files.img': File exists") || fail "duplicate: $out"
check_no_round peer/m2
out=$(peer hello begin m3 open 1 pstree.img data 1 100 close-bad 1 expect-error "'pstree.img' differs: received 100 bytes") ||
	fail "size mismatch: $out"
check_no_round peer/m3

# memory: a 256 MiB round, the connection's peak RSS stays under 64 MiB
peer --source big hello round huge - $((256 << 20)) >/dev/null || fail "256 MiB round"
wait_log "client 'big' closed the connection"
rss=$(sed -n "s/.*client 'big' closed the connection (peak RSS \([0-9]*\) KiB[,)].*/\1/p" "$PS_LOG")
echo "peak RSS of a 256 MiB round: $rss KiB"
((rss > 0 && rss < 65536)) || fail "peak RSS $rss KiB"
rm -rf "$T/box/srv/big" "$T/loc/huge"
check_contained
ps_stop

# --once: one connection, then exit 0
ps_start --once
peer --source once hello round o1 - 1000 >/dev/null || fail "--once round"
for _ in $(seq 100); do kill -0 "$PS_PID" 2>/dev/null || break; sleep 0.05; done
kill -0 "$PS_PID" 2>/dev/null && fail "--once server still running"
wait "$PS_PID" || fail "--once exit status $?"
PS_PID=
check_sanitizer
echo PASS
