#!/bin/bash
# --compress off, on and auto each store the same bytes: a heap-like workload (heaphog:
# lz4 shrinks it to about a third) is dumped --leave-running to a local directory and
# streamed three times; its arena does not change, so the arena's bytes in the page
# data of every streamed round must equal the local dump's, and the stored file must
# have the hash its manifest says. "on" must have
# sent lz4 blocks (fewer bytes on the wire than file bytes); "off" none. Then the "on"
# round is restored from the server's directory and the process verifies its memory.
. "$(dirname "$0")/stream_lib.sh"

server_start "$W/srv"
hog_start heaphog 128
fy dump -t "$HOG" -D "$W/local" --leave-running -o "$W/local.log" || die "local dump failed"
# the arena's place in the pages file: the longest PE_PRESENT run (at least its 32768
# pages: the arena's VMA may have merged with a neighbour); the few pages of libc and
# stack around it may change between two freezes
read -r off len < <(fy show "$W/local/pagemap-$HOG.img" | tr -d ' ,"' | awk -F: '
	$1 == "nr_pages" { n = $2 }
	$1 == "flags" && $2 % 2 == 1 { if (n > best) { best = n; at = o } o += n }
	END { print at, best }')
[ "${len:-0}" -ge 32768 ] || die "no run of 128 MiB in the local pagemap"
for m in off on auto; do
	fy dump -t "$HOG" -D "$W/$m/img" --leave-running --page-server --port "$PORT" \
		--source-id "c-$m" --compress "$m" --json -v4 -o "$W/$m.log" >"$W/$m.json" ||
		{ tail -n 5 "$W/$m.log"; die "streamed dump with --compress $m failed"; }
	alive "$HOG" || die "the process died in dump --leave-running --compress $m"
	f=pages-$HOG.img
	cmp -s -i $((off * 4096)) -n $((len * 4096)) "$W/local/$f" "$W/srv/c-$m/img/$f" ||
		die "--compress $m: the arena's bytes differ from the local dump's"
	want=$(manifest_hash "$W/srv/c-$m/img" "$f")
	got=$(xxhsum -H64 "$W/srv/c-$m/img/$f" 2>/dev/null | cut -d' ' -f1)
	# compared as numbers: xxhsum prints 16 digits, ferry show no leading zeros
	[ -z "$got" ] || [ "$((16#$got))" = "$((want))" ] ||
		die "--compress $m: stored $f hash 0x$got, manifest $want"
	[ "$(stat -c %s "$W/srv/c-$m/img/pages-$HOG.img")" = "$(stat -c %s "$W/local/pages-$HOG.img")" ] ||
		die "--compress $m: pages file size differs from the local dump"
done
bytes=$(json_field "$W/on.json" img bytes)
wire=$(json_field "$W/on.json" img wire_bytes)
lz=$(json_field "$W/on.json" img lz4_chunks)
[ "${lz:-0}" -gt 0 ] && [ "$wire" -lt $((bytes * 2 / 3)) ] ||
	die "--compress on: $lz lz4 chunks, $wire wire bytes for $bytes bytes"
[ "$(json_field "$W/off.json" img lz4_chunks)" = 0 ] || die "--compress off sent lz4 blocks"
grep -q '"decision":"auto: ' "$W/auto.json" || die "auto: no decision in the statistics"

kill -9 "$HOG"
wait "$HOG" 2>/dev/null
restore_verify "$W/srv/c-on/img"
server_stop
echo PASS
