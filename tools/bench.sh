#!/usr/bin/env bash
# make bench: dump and restore speed of processes with SIZE MiB of touched anonymous
# memory, to a tmpfs images directory, next to baselines measured in the same run:
#   dump    vs process_vm_readv into a preallocated buffer   (target: ratio >= 0.60)
#   restore vs memcpy into freshly mapped memory               (target: ratio >= 0.70)
# plus, for information, write() of the same bytes into a new file of the images
# directory's filesystem (file_write): what storing them costs one thread; its ratio
# is the best a dump with a single writer could reach.
# Sizes: BENCH_SIZES="1024 4096" (MiB) by default. Not part of `make test`: timings on a
# shared machine are noisy, so each figure is the best of BENCH_REPS runs (default 2).
set -u
BENCH_NAME=
. "$(dirname "$0")/bench-lib.sh"
MEMHOG=$top/$BUILD/tools/bench/memhog
BASELINE=$top/$BUILD/tools/bench/baseline
SIZES=${BENCH_SIZES:-1024 4096}
REPS=${BENCH_REPS:-2}
work=$(mktemp -d /dev/shm/ferry-bench.XXXXXX)
pid=
rst=
cleanup() {
	[[ -n $pid ]] && kill -9 "$pid" 2>/dev/null
	[[ -n $rst ]] && kill -9 "$rst" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
gbps() { awk -v mb="$1" -v t="$2" 'BEGIN { printf "%.3f", mb * 1048576 / t / 1e9 }'; }

# BENCH_ONLY="mem tree predump pageserver ..." runs only those sections (default: all).
want() { [[ -z ${BENCH_ONLY:-} || " $BENCH_ONLY " == *" $1 "* ]]; }

if want mem; then
printf '%-8s %-10s %10s %10s %10s %8s\n' size what seconds GB/s baseline ratio
for size in $SIZES; do
	bl=$("$BASELINE" "$size" "$work") || exit 1
	memcpy_fresh=$(echo "$bl" | awk '$1 == "memcpy_fresh" { print $2 }')
	pvr=$(echo "$bl" | awk '$1 == "pvr_prealloc" { print $2 }')
	fwrite=$(echo "$bl" | awk '$1 == "file_write" { print $2 }')
	dumps=() restores=()
	for ((rep = 0; rep < REPS; rep++)); do
		rm -rf "$work/img" "$work/ready" "$work/rpid"
		# not a job of ours (no "Killed" notices): memhog reports its pid in the ready file
		setsid -f "$MEMHOG" "$size" "$work/ready" verify </dev/null >/dev/null 2>&1
		wait_file "$work/ready" 120 || exit 1
		pid=$(cat "$work/ready")
		t0=$(now)
		"$FERRY" dump -v1 -t "$pid" -D "$work/img" || { echo "bench: dump failed" >&2; exit 1; }
		t_dump_end=$(now)
		# the killed memhog is a zombie until this VM's PID 1 reaps it (1-2 s here): the
		# restore needs its pid free, but that wait is not restore work
		wait_gone "$pid" 30 || exit 1
		pid=
		t1=$(now)
		"$FERRY" restore -v1 -D "$work/img" --pidfile "$work/rpid" &
		rst=$!
		wait_file "$work/rpid" 120 || exit 1
		t2=$(now)
		rpid=$(cat "$work/rpid")
		kill -TERM "$rpid"
		wait "$rst"
		rc=$?
		rst=
		if ((rc != 0)); then
			echo "bench: restored memhog of $size MiB failed to verify its memory (exit $rc)" >&2
			exit 1
		fi
		dumps+=("$(awk -v a="$t0" -v b="$t_dump_end" 'BEGIN { print b - a }')")
		restores+=("$(awk -v a="$t1" -v b="$t2" 'BEGIN { print b - a }')")
	done
	d=$(best "${dumps[@]}")
	r=$(best "${restores[@]}")
	printf '%-8s %-10s %10.3f %10s %10s %8s\n' "${size}M" dump "$d" "$(gbps "$size" "$d")" \
		"$(gbps "$size" "$pvr")" "$(ratio "$pvr" "$d")"
	printf '%-8s %-10s %10.3f %10s %10s %8s\n' "${size}M" restore "$r" "$(gbps "$size" "$r")" \
		"$(gbps "$size" "$memcpy_fresh")" "$(ratio "$memcpy_fresh" "$r")"
	printf '%-8s %-10s %10.3f %10s %10s %8s\n' "${size}M" file_write "$fwrite" \
		"$(gbps "$size" "$fwrite")" "$(gbps "$size" "$pvr")" "$(ratio "$pvr" "$fwrite")"
	rm -rf "$work/img"
done
echo "(dump baseline: process_vm_readv into a preallocated buffer; restore baseline: memcpy"
echo " into freshly mapped memory; ratio = baseline time / ferry time, higher is better;"
echo " file_write: write() of the same bytes into a new file in the images directory's"
echo " filesystem, one thread, against the dump baseline: not ferry, a bound on it)"
fi

# Process trees: a root and TREE_PROCS-1 children with TREE_THREADS threads each.
if want tree; then
FOREST=$top/$BUILD/tools/bench/forest
nproc=${TREE_PROCS:-100}
nthr=${TREE_THREADS:-4}
base_us=$("$FOREST" --baseline "$nproc" | awk '{ print $2 }')
dts=() rts=()
for ((rep = 0; rep < REPS; rep++)); do
	rm -rf "$work/img" "$work/ready" "$work/rpid"
	setsid -f "$FOREST" "$nproc" "$nthr" "$work/ready" </dev/null >/dev/null 2>&1
	wait_file "$work/ready" 60 || exit 1
	pid=$(cat "$work/ready")
	members=$(cat /proc/"$pid"/task/*/children)
	t0=$(now)
	"$FERRY" dump -v1 -t "$pid" -D "$work/img" || { echo "bench: tree dump failed" >&2; exit 1; }
	t1=$(now)
	for m in $pid $members; do wait_gone "$m" 30 || exit 1; done
	pid=
	t1r=$(now) # the restore starts once the dumped tree's pids are free
	"$FERRY" restore -v1 -d -D "$work/img" --pidfile "$work/rpid" ||
		{ echo "bench: tree restore failed" >&2; exit 1; }
	t2=$(now)
	pid=$(cat "$work/rpid")
	kill -9 "$pid"	# the children follow through their parent-death signal
	wait_gone "$pid" 30 || exit 1
	pid=
	dts+=("$(awk -v a="$t0" -v b="$t1" -v n="$nproc" 'BEGIN { print (b - a) * 1e6 / n }')")
	rts+=("$(awk -v a="$t1r" -v b="$t2" -v n="$nproc" 'BEGIN { print (b - a) * 1e6 / n }')")
done
d=$(best "${dts[@]}")
r=$(best "${rts[@]}")
printf '\n%-24s %12s %14s %8s\n' "tree ${nproc}x${nthr} threads" "us/process" "fork+exit us" ratio
printf '%-24s %12.0f %14.0f %8s\n' dump "$d" "$base_us" "$(ratio "$d" "$base_us")"
printf '%-24s %12.0f %14.0f %8s\n' restore "$r" "$base_us" "$(ratio "$r" "$base_us")"
echo "(tree ratio = ferry time per process / fork+exit time per process, lower is better;"
echo " target: under 5000 us per process for dump and for restore)"
fi

# Further sections: tools/bench/<name>.sh BUILD (each prints its own table and baseline).
for sec in "$top"/tools/bench/*.sh; do
	[[ -e $sec ]] || continue
	name=$(basename "$sec" .sh)
	want "$name" || continue
	echo
	bash "$sec" "$BUILD" || { echo "bench: section $name failed" >&2; exit 1; }
done
