#!/bin/bash
# Fault: the --action-script fails at pre-restore (the last moment the source can still
# back out). migrate exits non-zero naming the stage, the frozen source resumes, nothing
# runs at the destination, both sides keep the complete final round (the destination was
# not asked to restore it); a second attempt then continues the same chain and the
# migrated zdtm mig_hog verifies all of its memory.
. "$(dirname "$0")/lib.sh"

hosts_up || die "cannot create the namespaces"
dst_server
ZDTM_HOG_MIB=64 src_zdtm mig_hog
cat >"$W/action.sh" <<'SH'
#!/bin/sh
echo "$FERRY_STAGE" >>"$(dirname "$0")/stages"
[ "$FERRY_STAGE" != pre-restore ]
SH
chmod +x "$W/action.sh"
migrate_src --action-script "$W/action.sh" -v4 -o "$W/mig.log" "$T" && die "migrate succeeded"
log_has "$W/mig.log" "action script .* failed at stage pre-restore"
grep -qx pre-dump "$W/stages" && grep -qx network-lock "$W/stages" &&
	grep -qx network-unlock "$W/stages" || die "stages run: $(tr '\n' ' ' <"$W/stages")"
dst_empty || die "something of the tree runs at the destination"
# failing before the destination was asked to restore, both sides keep the complete
# final round (a valid parent); a second attempt (no failing stage) continues the chain
last=$(ls "$W/work" | sort | tail -n 1)
src=$(ls "$W/srv")
[ -f "$W/srv/$src/$last/inventory.img" ] || die "the chain's last round $last is not on the server"
[ -f "$W/work/$last/inventory.img" ] || die "the chain's last round $last is not here"
alive "$T" && [ "$(awk '{ print $3 }' /proc/"$T"/stat)" != T ] || die "the source is not running"
migrate_src --json -o "$W/mig2.log" "$T" >"$W/mig2.json" || die "the second attempt failed"
grep -q "\"name\": \"$(printf 'r%04d' $((10#${last#r} + 1)))\"" "$W/mig2.json" ||
	die "the second attempt did not continue the chain"
WAIT_S=10 wait_for gone "$T" || die "the source still runs after the second attempt"
# its memory, across the failed attempt, the resume and the migration, verifies
zdtm_verify mig_hog "$(json_num "$W/mig2.json" dest_pid)"
echo PASS
