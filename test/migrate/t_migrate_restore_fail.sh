#!/bin/bash
# Fault: the destination cannot restore the tree (a file the process holds open does
# not exist there: the page server runs in its own mount namespace where the test's
# directory is an empty tmpfs). migrate exits non-zero quoting the destination's cause;
# the frozen source resumes and verifies its memory; nothing runs at the destination.
. "$(dirname "$0")/lib.sh"

hosts_up || die "cannot create the namespaces"
SRVDIR=$(mktemp -d /tmp/ferry-mig-srv.XXXXXX)
trap 'mig_cleanup; rm -rf "$SRVDIR"' EXIT
KEY=$SRVDIR/key # outside $W, which the server cannot see
head -c 32 /dev/urandom >"$KEY" && chmod 600 "$KEY"
PORT=$((20000 + RANDOM % 40000))
# the server's view: $W hidden under an empty tmpfs (its log goes to $SRVDIR)
nsenter --net="/run/netns/$DST_NS" unshare -m --propagation private sh -c 'mount -t tmpfs none "$1" && shift && exec "$@"' \
	sh "$W" "$FERRY" pageserver --address "$DST_IP" --port "$PORT" -D "$SRVDIR/srv" \
	--auth-key "$KEY" --pidfile "$SRVDIR/srv.pid" -v4 -o "$SRVDIR/srv.log" </dev/null \
	>"$SRVDIR/srv.out" 2>&1 &
SRV=$!
mkdir -p "$SRVDIR/srv"
WAIT_S=10 wait_for nonempty "$SRVDIR/srv.pid" || { cat "$SRVDIR"/srv.*; die "no page server"; }
src_zdtm fd_file_offset
migrate_src -v4 -o "$W/mig.log" "$T" && die "migrate succeeded though the destination cannot restore"
log_has "$W/mig.log" "error: .*(restore failed|cannot)"
dst_empty || die "something of the tree runs at the destination"
alive "$T" || die "the source died"
# the refused attempt's final round is gone on both sides, the decision recorded
src=$(ls "$SRVDIR/srv")
grep -q "^discarded restore failed" "$SRVDIR/srv/$src/"*.handover || die "no discarded decision"
for r in "$SRVDIR/srv/$src"/r[0-9][0-9][0-9][0-9]; do
	[ -f "$r/inventory.img" ] || die "$r is not complete"
done
[ "$(ls -d "$SRVDIR/srv/$src"/r[0-9][0-9][0-9][0-9] | wc -l)" = "$(ls "$W/work" | wc -l)" ] ||
	die "the server and the source disagree on the chain: $(ls "$SRVDIR/srv/$src") / $(ls "$W/work")"
zdtm_verify fd_file_offset "$T"
echo PASS
