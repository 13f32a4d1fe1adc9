#!/bin/bash
# Cron style: three `migrate --pre-dump` runs two seconds apart (each a new process; the
# tracking survives in the target between them), then `migrate`: its rounds are deltas
# on the warm chain, the final round is small, and the migrated test verifies (zdtm
# mig_hog: 256 MiB of cold memory and a small hot set rewritten all the time).
. "$(dirname "$0")/lib.sh"

hosts_up || die "cannot create the namespaces"
dst_server
ZDTM_HOG_MIB=256 src_zdtm mig_hog
for k in 1 2 3; do
	migrate_src --pre-dump --json -o "$W/cron$k.log" "$T" >"$W/cron$k.json" ||
		die "cron pre-dump $k failed"
	alive "$T" || die "the tree died in cron round $k"
	((k < 3)) && sleep 2 # the cron interval (not a synchronization)
done
b1=$(sed -n 's/.*"rounds": \[{"name": "r0001"[^}]*"bytes": \([0-9]*\).*/\1/p' "$W/cron1.json")
migrate_src --json -v4 -o "$W/mig.log" "$T" >"$W/mig.json" || die "migrate failed"
grep -q '"name": "r0004"' "$W/mig.json" || die "migrate did not continue the cron chain"
final=$(grep -o '"final": true, "bytes": [0-9]*' "$W/mig.json" | grep -o '[0-9]*$')
[ -n "$b1" ] && [ -n "$final" ] || die "no round sizes (first $b1, final $final)"
((final * 10 < b1)) || die "the final round ($final bytes) is not small next to round 0 ($b1)"
WAIT_S=10 wait_for gone "$T" || die "the source still runs"
zdtm_verify mig_hog "$(json_num "$W/mig.json" dest_pid)"
echo "PASS (round 0 $b1 bytes, final $final bytes)"
