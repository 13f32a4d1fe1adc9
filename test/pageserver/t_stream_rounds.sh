#!/bin/bash
# Pre-dump rounds and a final dump of a live workload streamed to a page server on
# loopback, then a restore from the server's directory: zdtm predump_ledger (4 threads
# stamping pages all the time; after the restore every page must match its ledger, so a
# round missing a write or a wrong parent chain fails) and a 256 MiB memhog with
# compression auto. Checks: the server holds the complete rounds with their parent
# links, the local -D holds only metadata, and the restored processes verify.
. "$(dirname "$0")/stream_lib.sh"

server_start "$W/srv"
BIN=$BUILD/test/zdtm/predump_ledger
[ -x "$BIN" ] || die "$BIN missing (make pstest builds it)"

# predump_ledger: 2 pre-dump rounds, then the dump on top of them
mkdir -p "$W/t"
ZDTM_READY="$W/t/ready" setsid "$BIN" >"$W/t/predump_ledger.out" 2>&1 </dev/null &
T=$!
PIDS+=("$T")
wait_for 10 nonempty "$W/t/ready" || die "predump_ledger not ready"
prev=()
for k in 1 2; do
	fy pre-dump -t "$T" -D "$W/t/pre$k" --track-mem "${prev[@]}" --page-server \
		--port "$PORT" --json -v4 -o "$W/pre$k.log" >"$W/pre$k.json" ||
		{ tail -n 5 "$W/pre$k.log"; die "streamed pre-dump $k failed"; }
	alive "$T" || die "predump_ledger died in pre-dump $k"
	prev=(--prev-images-dir "../pre$k")
done
fy dump -t "$T" -D "$W/t/img" --track-mem "${prev[@]}" --page-server --port "$PORT" \
	--json -v4 -o "$W/dump.log" >"$W/dump.json" || { tail -n 5 "$W/dump.log"; die "streamed dump failed"; }
wait "$T" 2>/dev/null	# the dump killed it
src=$W/srv/$(hostname)-$T
for r in pre1 pre2 img; do
	[ -f "$src/$r/inventory.img" ] || die "round $r is not complete on the server"
	ls "$W/t/$r"/pages-*.img >/dev/null 2>&1 && die "round $r: page data was written locally"
	[ -f "$W/t/$r/inventory.img" ] || die "round $r: no local inventory (metadata half)"
	cmp -s "$src/$r/inventory.img" "$W/t/$r/inventory.img" || die "round $r: inventories differ"
done
[ "$(readlink "$src/pre2/parent")" = ../pre1 ] || die "pre2 has no parent link to pre1"
[ "$(readlink "$src/img/parent")" = ../pre2 ] || die "img has no parent link to pre2"
grep -q '^{"transport"' "$W/dump.json" || die "no transport JSON line from the dump"
[ "$(json_field "$W/pre1.json" pre1 committed)" = true ] || die "pre1 not reported committed"
b=$(json_field "$W/pre1.json" pre1 bytes)
[ "${b:-0}" -gt $((32 << 20)) ] || die "pre1 streamed only ${b:-0} bytes"

rm -f "$W/rpid"
fy restore -D "$src/img" --pidfile "$W/rpid" -v4 -o "$W/restore.log" &
R=$!
PIDS+=("$R")
wait_for 30 nonempty "$W/rpid" || { tail -n 5 "$W/restore.log"; die "restore: no pidfile"; }
[ "$(cat "$W/rpid")" = "$T" ] || die "restored pid differs"
kill -TERM "$T"
wait "$R"
rc=$?
grep -q '^PASS' "$W/t/predump_ledger.out" && [ "$rc" = 0 ] ||
	die "restored predump_ledger: exit $rc, $(grep -m1 FAIL "$W/t/predump_ledger.out")"

# memhog, compression auto: pre-dump, dump, restore, verify
hog_start memhog 256
fy pre-dump -t "$HOG" -D "$W/h/pre1" --track-mem --page-server --port "$PORT" \
	--compress auto -o "$W/hpre.log" || die "memhog pre-dump failed"
fy dump -t "$HOG" -D "$W/h/img" --track-mem --prev-images-dir ../pre1 --page-server \
	--port "$PORT" --compress auto -o "$W/hdump.log" || die "memhog dump failed"
wait "$HOG" 2>/dev/null
restore_verify "$W/srv/$(hostname)-$HOG/img"
server_stop
echo PASS
