#!/bin/bash
# Fault: the --action-script fails at pre-restore (the last moment the source can still
# back out). migrate exits non-zero naming the stage, the frozen source resumes and
# verifies its memory, the destination discards what it had (nothing runs there).
. "$(dirname "$0")/lib.sh"

hosts_up || die "cannot create the namespaces"
dst_server
src_hog 64
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
hog_verify
echo PASS
