#!/usr/bin/env bash
# make bench section "pageserver" (BENCH_ONLY=pageserver make BUILD=... bench): streaming
# throughput of one pre-dump round of BENCH_PS_SIZE MiB (default 4096) to a page server
# on loopback whose directory is on tmpfs, for two workloads:
#   random  tools/bench/memhog: incompressible pages
#   heap    tools/bench/heaphog: heap-like objects (pointers, small ints, strings; lz4
#           shrinks them to ~0.38)
# each with --compress off, auto and on. Per run: the round's file bytes, bytes on the
# wire, seconds from ROUND_BEGIN to ROUND_DONE (from the client's --json statistics),
# the rate, the auto decision, the CPU time of the server's connection process, and the
# ratio to a plain send() loop of the same number of bytes over loopback
# (tools/bench/sendloop baseline) measured in the same run, in the same repetitions,
# two ways:
#   store    the receiver stores the bytes: one write() per 1 MiB payload into a file
#            in the same tmpfs as the page server's directory (what any receiver that
#            keeps the data must do at least; no hash, no protocol)
#   discard  the receiver reads and drops them (the link alone)
# Also the page server's peak RSS (the largest VmHWM of its connection processes,
# sampled while they run). Each figure is the best of BENCH_REPS (default 3)
# repetitions; within a repetition the runs take turns in a rotating order (baselines
# and modes), so that a drift of the machine does not favour one of them.
# Targets (issue 5): off >= 0.90 of send(); auto never slower than off.
set -u
BENCH_NAME=pageserver
. "$(dirname "$0")/../bench-lib.sh"
TOOLS=$top/$BUILD/tools/bench
SIZE=${BENCH_PS_SIZE:-4096}
REPS=${BENCH_REPS:-3}
((REPS >= 1)) || die "BENCH_REPS must be at least 1"
work=$(mktemp -d /dev/shm/ferry-bench-ps.XXXXXX)
pid= srv= sampler=
cleanup() {
	[[ -n $sampler ]] && kill "$sampler" 2>/dev/null
	[[ -n $pid ]] && kill -9 "$pid" 2>/dev/null
	[[ -n $srv ]] && kill -TERM "$srv" 2>/dev/null && wait "$srv" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT
trap "exit 130" INT TERM

# the workload and one round on tmpfs must fit (the machine may be shared)
avail=$(awk '/^MemAvailable:/ { print int($2 / 1024) }' /proc/meminfo)
((avail > SIZE * 5 / 2)) || die "needs ~$((SIZE * 5 / 2)) MiB of available memory, $avail MiB free (set BENCH_PS_SIZE)"
# the CPU seconds (user + system) of the server's last connection process, from its log
srv_cpu() {
	grep "closed the connection" "$work/srv.out" | tail -n 1 |
		sed -n 's/.*cpu \([0-9.]*\) s user \([0-9.]*\) s system.*/\1 \2/p' |
		awk '{ printf "%.2f", $1 + $2 }'
}
field() { # JSON-LINE KEY: a number or string value
	echo "$1" | grep -o "\"$2\":\"\{0,1\}[^,\"}]*" | head -n 1 | sed 's/.*:"\{0,1\}//'
}

# the page server, on a free port
for ((try = 0; try < 10; try++)); do
	port=$((20000 + RANDOM % 40000))
	rm -f "$work/srv.pid"
	"$FERRY" pageserver --port "$port" -D "$work/srv" --pidfile "$work/srv.pid" -v2 \
		</dev/null >"$work/srv.out" 2>&1 &
	srv=$!
	for ((i = 0; i < 500; i++)); do
		[[ -s $work/srv.pid ]] && break
		kill -0 "$srv" 2>/dev/null || break
		sleep 0.01
	done
	[[ -s $work/srv.pid ]] && break
	wait "$srv" 2>/dev/null
	srv=
done
[[ -n $srv ]] || die "cannot start the pageserver: $(cat "$work/srv.out")"
mkdir -p "$work/srv"

# peak RSS of the server's connection processes, sampled every 50 ms into $work/hwm
# with shell builtins only (a sampler that forks would steal the CPU it measures)
(
	max=0
	while [[ -d /proc/$srv ]]; do
		kids=
		read -r kids <"/proc/$srv/task/$srv/children" 2>/dev/null
		for k in $kids $srv; do
			while read -r key v _; do
				[[ $key == VmHWM: ]] && ((v > max)) && max=$v && echo "$max" >"$work/hwm"
			done <"/proc/$k/status" 2>/dev/null
		done
		sleep 0.05
	done
) &
sampler=$!

mkdir -p "$work/base"
declare -A bl=() blcpu=()
# baseline store|discard: one send() loop run; keeps the best ("SECONDS SENDER_CPU
# RECEIVER_CPU") in bl[MODE]
baseline() {
	local out
	if [[ $1 == store ]]; then
		out=$("$TOOLS/sendloop" baseline "$SIZE" "$work/base") || die "sendloop baseline (store) failed"
	else
		out=$("$TOOLS/sendloop" baseline "$SIZE") || die "sendloop baseline failed"
	fi
	read -r _ t _ sc rc <<<"$out"
	if [[ -z ${bl[$1]:-} || $(best "$t" "${bl[$1]}") == "$t" ]]; then
		bl[$1]=$t
		blcpu[$1]="$sc $rc"
	fi
	nbl=$((nbl + 1))
}
nbl=0
# timed CMD...: CMD's CPU seconds (user + system) into $work/cpu ("-" without time(1))
timed() {
	if [[ -x /usr/bin/time ]]; then
		/usr/bin/time -f '%U %S' -o "$work/cpu.raw" "$@" || return
		awk '{ printf "%.2f", $1 + $2 }' "$work/cpu.raw" >"$work/cpu"
	else
		echo - >"$work/cpu"
		"$@"
	fi
}
rate_of() { awk -v s="$SIZE" -v t="$1" 'BEGIN { printf "%.0f", s * 1048576 / t }'; }

declare -A rows=()
n=0
for data in random heap; do
	hog=memhog
	[[ $data == heap ]] && hog=heaphog
	rm -f "$work/ready"
	setsid -f "$TOOLS/$hog" "$SIZE" "$work/ready" </dev/null >/dev/null 2>&1
	wait_file "$work/ready" 300
	pid=$(cat "$work/ready")
	# runs take turns in an order that rotates each repetition (off auto on store
	# discard, then auto on store discard off, ...): a drift of the machine or of the
	# process over the repetitions favours none of them
	declare -A bsec=() bline=() bcpu=()
	runs=(off auto on store discard)
	for ((rep = 0; rep < REPS; rep++)); do
		for ((k = 0; k < ${#runs[@]}; k++)); do
			mode=${runs[$(((k + rep) % ${#runs[@]}))]}
			if [[ $mode == store || $mode == discard ]]; then
				baseline "$mode"
				continue
			fi
			n=$((n + 1))
			out=$(timed "$FERRY" pre-dump -v1 -t "$pid" -D "$work/local/r$n" --page-server \
				--port "$port" --source-id bench --compress "$mode" --json) ||
				die "pre-dump --compress $mode of $data failed"
			l=$(echo "$out" | grep '^{"transport"')
			s=$(field "$l" seconds)
			if [[ -z ${bsec[$mode]:-} || $(best "$s" "${bsec[$mode]}") == "$s" ]]; then
				bsec[$mode]=$s
				bline[$mode]=$l
				bcpu[$mode]="$(cat "$work/cpu") $(srv_cpu)"
			fi
			rm -rf "$work/srv/bench/r$n" "$work/local/r$n"
		done
	done
	for mode in off auto on; do
		rows[$data.$mode]="${bline[$mode]}|${bcpu[$mode]}"
	done
	if [[ $data == random ]]; then
		# the same pre-dump into a local tmpfs directory: the dump's own ceiling
		secs=()
		for ((rep = 0; rep < REPS; rep++)); do
			n=$((n + 1))
			t0=$(now)
			"$FERRY" pre-dump -v1 -t "$pid" -D "$work/local/r$n" || die "local pre-dump failed"
			secs+=("$(awk -v a="$t0" -v b="$(now)" 'BEGIN { print b - a }')")
			rm -rf "$work/local/r$n"
		done
		local_s=$(best "${secs[@]}")
		# the same round to a receiver that discards (sendloop sink): the sender
		# without the server's writes
		secs=()
		for ((rep = 0; rep < REPS; rep++)); do
			n=$((n + 1))
			rm -f "$work/sink.port"
			"$TOOLS/sendloop" sink "$work/sink.port" >/dev/null &
			sk=$!
			wait_file "$work/sink.port" 10
			out=$("$FERRY" pre-dump -v1 -t "$pid" -D "$work/local/r$n" --page-server \
				--port "$(cat "$work/sink.port")" --compress off --json) ||
				die "pre-dump to the discarding sink failed"
			wait "$sk"
			secs+=("$(field "$(echo "$out" | grep '^{"transport"')" seconds)")
			rm -rf "$work/local/r$n"
		done
		sink_s=$(best "${secs[@]}")
	fi
	kill -9 "$pid"
	pid=
done

store_rate=$(rate_of "${bl[store]}")
disc_rate=$(rate_of "${bl[discard]}")
echo "plain send() loop of $SIZE MiB in 1 MiB frames over loopback, best of $((nbl / 2)) each:"
for m in store discard; do
	read -r sc rc <<<"${blcpu[$m]}"
	awk -v m="$m" -v t="${bl[$m]}" -v z="$SIZE" -v sc="$sc" -v rc="$rc" 'BEGIN {
		w = m == "store" ? "(the receiver writes each 1 MiB to a tmpfs file)" : "(the receiver drops it)"
		printf "  %-7s %8.3f s %7.3f GB/s  cpu: sender %.2f s, receiver %.2f s  %s\n", m, t,
			z * 1048576 / t / 1e9, sc, rc, w }'
done
printf '%-7s %-5s %6s %8s %8s %7s %6s %6s %7s %8s  %s\n' data mode MiB wire_MiB seconds GB/s \
	cpu_d cpu_s /store /discard "lz4 decision (chunks compressed)"
for data in random heap; do
	for mode in off auto on; do
		line=${rows[$data.$mode]%|*}
		read -r cd cs <<<"${rows[$data.$mode]##*|}"
		awk -v d="$data" -v m="$mode" -v b="$(field "$line" bytes)" \
			-v w="$(field "$line" wire_bytes)" -v s="$(field "$line" seconds)" \
			-v sr="$store_rate" -v dr="$disc_rate" -v cd="${cd:--}" -v cs="${cs:--}" \
			-v dec="$(echo "$line" | grep -o '"decision":"[^"]*' | cut -d'"' -f4)" \
			-v c="$(field "$line" lz4_chunks)" -v ch="$(field "$line" chunks)" 'BEGIN {
			r = b / s
			printf "%-7s %-5s %6.0f %8.0f %8.3f %7.3f %6s %6s %7.2f %8.2f  %s (%d of %d)\n",
				d, m, b / 1048576, w / 1048576, s, r / 1e9, cd, cs, r / sr, r / dr, dec, c, ch }'
	done
	if [[ $data == random ]]; then
		for x in "local:$local_s:(local pre-dump to tmpfs, no page server: wall time of ferry)" \
			"sink:$sink_s:(off, to a discarding receiver instead of the page server)"; do
			IFS=: read -r _ t what <<<"$x"
			awk -v m="$SIZE" -v t="$t" -v sr="$store_rate" -v dr="$disc_rate" -v w="$what" 'BEGIN {
				r = m * 1048576 / t
				printf "%-7s %-5s %6.0f %8s %8.3f %7.3f %6s %6s %7.2f %8.2f  %s\n", "random", "-",
					m, "-", t, r / 1e9, "-", "-", r / sr, r / dr, w }'
		done
	fi
done
for data in random heap; do
	awk -v d="$data" -v off="$(field "${rows[$data.off]%|*}" seconds)" \
		-v auto="$(field "${rows[$data.auto]%|*}" seconds)" 'BEGIN {
		v = auto <= off ? "not slower" : sprintf("slower by %.1f%%", (auto / off - 1) * 100)
		printf "auto vs off, %s: best %.3f s vs %.3f s: auto takes %.3f of off'"'"'s time (%s)\n",
			d, auto, off, auto / off, v }'
done
echo "page server peak RSS: $(($(cat "$work/hwm" 2>/dev/null || echo 0) / 1024)) MiB (VmHWM, largest process)"
echo "(/store, /discard: ferry's streaming rate / the send() loop's rate, best against best."
echo " cpu_d, cpu_s: CPU seconds (user + system) of the dump (ferry pre-dump) and of the page"
echo " server's connection process in that run. The round's time includes reading the"
echo " process's memory (process_vm_readv), hashing it, and the server receiving, hashing and"
echo " writing to tmpfs; targets: off >= 0.90, auto >= off)"
