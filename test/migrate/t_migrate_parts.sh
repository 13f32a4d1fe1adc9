#!/bin/bash
# Round 0 in parts (docs/migrate.md "Round 0 in parts"): a migration without a chain
# copies its first round as several partial pre-dump rounds (pre-dump --max-bytes),
# each queued for staging at the destination at once (MIG_WARM queue) while the next is
# copied. --part-size 4M makes zdtm predump_ledger (32 MiB, 4 threads stamping
# pages) take several parts. The migration must succeed with the memory built from the
# staging, the source gone, the destination's tree verifying every page; then the same
# with a warm restorer that dies after the first part it staged (FERRY_FAULT=warm-exit):
# the queued parts find it gone, a new one stages the chain, the tree still verifies;
# and without --part-size, zdtm mig_hog with 576 MiB (parts by default from 512 MiB).
. "$(dirname "$0")/lib.sh"

# one FAULT|none|auto TEST [MIGRATE-ARGS...]: a migration in parts; checks the parts and the
# result
one() {
	local fault=$1 test=$2
	shift 2
	case $fault in
	none | auto) dst_server ;; # (names of runs without a fault)
	*) FERRY_FAULT=$fault dst_server ;;
	esac
	src_zdtm "$test"
	migrate_src "$@" --json -v4 -o "$W/mig-$fault.log" "$T" >"$W/mig-$fault.json" ||
		die "$fault: migrate failed"
	grep -q '"ok": true' "$W/mig-$fault.json" || die "$fault: migrate did not report success"
	local parts
	parts=$(sed -n 's/.*"rounds": \[{[^}]*"parts": \([0-9]*\).*/\1/p' "$W/mig-$fault.json")
	[ -n "$parts" ] && ((parts >= 2)) || die "$fault: round 0 was not copied in parts ($parts)"
	log_has "$W/mig-$fault.log" "partial: --max-bytes reached"
	log_has "$W/srv.log" "queued for staging"
	moved_verify "$fault" "$W/mig-$fault.json" "$test"
	echo "$fault $test: round 0 in $parts parts"
	cp "$W/srv.log" "$W/srv-$fault.log"
	srv_kill
	rm -f "$W/srv.log"
}

# a bad size is a usage error naming the option (exit 2), nothing started
"$FERRY" migrate --to 127.0.0.1:1 --part-size 12X 1 >"$W/usage.out" 2>&1
rc=$?
[ "$rc" = 2 ] && grep -q -- "--part-size needs a size" "$W/usage.out" ||
	die "--part-size 12X: exit $rc: $(cat "$W/usage.out")"

hosts_up || die "cannot create the namespaces"
one none predump_ledger --part-size 4M
log_has "$W/srv-none.log" "memory from the warm staging"
one warm-exit predump_ledger --part-size 4M
log_has "$W/srv-warm-exit.log" "warm restorer is gone: restoring cold"
# the default: a tree with 512 MiB resident or more goes in parts of a quarter
ZDTM_HOG_MIB=576 one auto mig_hog
echo PASS
