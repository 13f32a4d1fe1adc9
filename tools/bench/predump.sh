#!/usr/bin/env bash
# make bench section "predump" (BENCH_ONLY=predump make BUILD=... bench): iterative
# pre-dumps of tools/bench/dirtier (N MiB of touched private anonymous memory) dirtying
# memory at a few rates, to a tmpfs images directory. Per case:
#   BENCH_PD_ROUNDS pre-dump rounds (default 3), BENCH_PD_GAP s apart (default 1), then
#   the final dump over the chain (the target is killed by it);
#   each round: freeze, track (attach/arm inside the freeze), scan, copy, total (ms),
#   pages copied and left in the chain, MB written (from `--json`);
#   the final dump's size as a fraction of a full dump (pages a plain dump would write:
#   its own pages plus those it refers to in the chain);
#   the target's slowdown while tracked, same run: the per-page cost of a burst of
#   writes (probe: 4096 consecutive pages) before the first round (untracked) and
#   before the last round (tracked; BENCH_PD_ROUNDS >= 2), and for rate modes the writer's own ns per page written
#   during the untracked window and during the rounds.
# Sizes: BENCH_PD_SIZES (default "1024 4096", MiB); rates: BENCH_PD_RATES (default
# "0 1 50 round:1": MB/s, or round:PCT = PCT% of the pages written right before each
# round). Targets (issue 4): final dump < 3% of a full dump for round:1; a round's
# freeze < 5 ms for 4 GiB.
set -u
BENCH_NAME=predump
. "$(dirname "$0")/../bench-lib.sh"
DIRTIER=$top/$BUILD/tools/bench/dirtier
SIZES=${BENCH_PD_SIZES:-1024 4096}
RATES=${BENCH_PD_RATES:-0 1 50 round:1}
ROUNDS=${BENCH_PD_ROUNDS:-3}
GAP=${BENCH_PD_GAP:-1}
work=$(mktemp -d /dev/shm/ferry-bench-pd.XXXXXX)
pid=
cleanup() {
	[[ -n $pid ]] && kill -9 "$pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

# st KEY: a field of the dirtier's status line
st() { awk -v k="$1" '{ for (i = 1; i < NF; i += 2) if ($i == k) print $(i + 1) }' "$work/status"; }
# wait_count KEY N: until the status field KEY reaches N (10 s at most)
wait_count() {
	local i
	for ((i = 0; i < 1000; i++)); do
		(($(st "$1") >= $2)) && return 0
		sleep 0.01
	done
	die "dirtier: $1 did not reach $2"
}
probe() { # -> "ns/page" of a fresh probe
	local n
	n=$(st probes)
	kill -USR2 "$pid"
	wait_count probes $((n + 1))
	awk -v a="$(st probe_ns)" -v b="$(st probe_pages)" 'BEGIN { printf "%.0f", a / b }'
}
# row CASE ROUND JSON: one line of the round table
row() {
	echo "$3" | jq -r --arg c "$1" --arg r "$2" '.round |
		[$c, $r, .kind, ((.images_ms // .freeze_ms) | tostring), ((.track_ms // 0) | tostring),
		 (.scan_ms | tostring), (.copy_ms | tostring), (.total_ms | tostring),
		 (.pages_written | tostring), (.pages_parent | tostring),
		 ((.bytes / 1e6) | tostring)] | @tsv' |
		awk -F'\t' '{ printf "%-16s %-5s %-8s %8.2f %8.2f %8.2f %9.1f %9.1f %9d %9d %9.1f\n",
			$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 }'
}
# between MODE: what happens before a round (round mode: the fraction is written)
between() {
	if [[ $1 == round:* ]]; then
		local n
		n=$(st rounds)
		kill -USR1 "$pid"
		wait_count rounds $((n + 1))
	else
		sleep "$GAP"
	fi
}
rate_of() { # PAGES0 NS0 PAGES1 NS1 -> "ns/page" of the writer between two snapshots
	awk -v p0="$1" -v n0="$2" -v p1="$3" -v n1="$4" \
		'BEGIN { if (p1 > p0) printf "%.0f", (n1 - n0) / (p1 - p0); else printf "-" }'
}

command -v jq >/dev/null || die "needs jq"
printf '%-16s %-5s %-8s %8s %8s %8s %9s %9s %9s %9s %9s\n' case round kind freeze_ms \
	track_ms scan_ms copy_ms total_ms pages parent MB
summary=()
for size in $SIZES; do
	for mode in $RATES; do
		[[ $mode == round:* ]] || mode="rate:$mode"
		case="${size}M/${mode#rate:}"
		[[ $mode == rate:* ]] && case="$case MB/s"
		rm -rf "$work/img" "$work/ready" "$work/status"
		mkdir -p "$work/img"
		setsid -f "$DIRTIER" "$size" "$work/ready" "$work/status" "$mode" \
			</dev/null >/dev/null 2>&1
		wait_file "$work/ready" 120
		pid=$(cat "$work/ready")
		p0=$(st pages) n0=$(st busy_ns)
		sleep "$GAP" # the writer's untracked window
		p1=$(st pages) n1=$(st busy_ns)
		probe_untracked=$(probe)
		prev=
		maxfreeze=0
		probe_tracked=-
		for ((k = 0; k < ROUNDS; k++)); do
			# tracked probe before the last round's dirtying: its writes are copied
			# by that round, not counted in the final dump
			((k > 0 && k == ROUNDS - 1)) && probe_tracked=$(probe)
			((k > 0)) && between "$mode"
			out=$("$FERRY" pre-dump --json -v1 -t "$pid" -D "$work/img/pre$k" \
				${prev:+--prev-images-dir "$prev"}) || die "pre-dump $k of $case failed"
			out=$(echo "$out" | grep '^{"round"')
			row "$case" "$k" "$out"
			((k > 0)) && maxfreeze=$(echo "$out" | jq -r --arg m "$maxfreeze" \
				'[.round.freeze_ms, ($m | tonumber)] | max')
			prev="../pre$k"
		done
		p2=$(st pages) n2=$(st busy_ns)
		between "$mode"
		out=$("$FERRY" dump --json -v1 -t "$pid" -D "$work/img/final" \
			--prev-images-dir "$prev") || die "final dump of $case failed"
		out=$(echo "$out" | grep '^{"round"')
		row "$case" final "$out"
		wait_gone "$pid" 30
		pid=
		frac=$(echo "$out" | jq -r '.round | 100 * .pages_written /
			(.pages_written + .pages_parent) | . * 100 | round / 100')
		summary+=("$(printf '%-16s final %6s%% of a full dump; later rounds freeze max %6.2f ms; write ns/page untracked %6s tracked %6s (probe), writer %6s / %6s' \
			"$case" "$frac" "$maxfreeze" "$probe_untracked" "$probe_tracked" \
			"$(rate_of "$p0" "$n0" "$p1" "$n1")" "$(rate_of "$p1" "$n1" "$p2" "$n2")")")
		rm -rf "$work/img"
	done
done
echo
printf '%s\n' "${summary[@]}"
echo "(freeze: seize to release of the tree (final dump: to the images committed, before"
echo " the kill); track: attach or arm inside the freeze; scan and copy run while the"
echo " target runs (pre-dump) or frozen (final dump); a full dump"
echo " stores pages + parent of the final dump; slowdown: ns per page written without"
echo " tracking and while tracked, same run; writer: rate modes, the writer's own ns/page)"
