#!/bin/bash
# Cron style with a bound per run: `migrate --pre-dump --max-bytes 100M` on zdtm mig_hog
# (256 MiB of cold memory, a small hot set rewritten all the time): the first runs are
# partial rounds (at most the bound plus one 64 MiB slice each), a later run finishes
# the copy, then `migrate` continues the chain: the final round is small and the
# migrated test verifies. --max-bytes without --pre-dump is a usage error.
. "$(dirname "$0")/lib.sh"

"$FERRY" migrate --to 127.0.0.1:1 --max-bytes 100M 1 >"$W/usage.out" 2>&1
rc=$?
[ "$rc" = 2 ] && grep -q -- "--max-bytes is for --pre-dump" "$W/usage.out" ||
	die "--max-bytes without --pre-dump: exit $rc: $(cat "$W/usage.out")"

hosts_up || die "cannot create the namespaces"
dst_server
ZDTM_HOG_MIB=256 src_zdtm mig_hog
limit=$(((100 + 64) << 20))
npartial=0
for k in 1 2 3 4; do
	migrate_src --pre-dump --max-bytes 100M --json -o "$W/cron$k.log" "$T" >"$W/cron$k.json" ||
		die "cron pre-dump $k failed"
	alive "$T" || die "the tree died in cron round $k"
	b=$(json_num "$W/cron$k.json" bytes)
	[ -n "$b" ] && ((b <= limit)) || die "cron run $k sent $b bytes, more than the bound"
	grep -q '"partial": true' "$W/cron$k.json" && npartial=$((npartial + 1))
done
((npartial >= 2)) || die "expected the first runs to be partial, $npartial were"
grep -q '"partial": false' "$W/cron4.json" || die "the fourth run did not finish the copy"
migrate_src --json -v4 -o "$W/mig.log" "$T" >"$W/mig.json" || die "migrate failed"
grep -q '"name": "r0005"' "$W/mig.json" || die "migrate did not continue the cron chain"
final=$(grep -o '"final": true, "bytes": [0-9]*' "$W/mig.json" | grep -o '[0-9]*$')
[ -n "$final" ] && ((final < (16 << 20))) || die "the final round is not small ($final bytes)"
WAIT_S=10 wait_for gone "$T" || die "the source still runs"
zdtm_verify mig_hog "$(json_num "$W/mig.json" dest_pid)"
echo "PASS ($npartial partial runs, final $final bytes)"
