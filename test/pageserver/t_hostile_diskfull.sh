#!/bin/bash
# Disk full: the server's directory is a 2 MiB tmpfs and a round brings 4 MB of pages.
# The client gets ERROR ENOSPC naming the file, the server logs it, no inventory.img is
# written, the partial round is removed (the tmpfs is empty again), it keeps serving.
. "$(dirname "$0")/lib-server.sh"
ps_init
mount -t tmpfs -o size=2m,mode=0755 ferry-ps-test "$T/box/srv" || { echo "SKIP: cannot mount tmpfs"; exit 0; }
CLEANUPS+=("umount '$T/box/srv' 2>/dev/null")
ps_start
st=0
out=$(peer --source full hello round big - 4000000 2>&1) || st=$?
((st != 0)) || fail "4 MB round on a 2 MiB disk succeeded: $out"
grep -q "ERROR 28: disk full writing 'full/big/pages-1.img'" <<<"$out" || fail "client not told: $out"
wait_log "error: disk full writing 'full/big/pages-1.img' on the page server"
wait_log "removed partial round 'full/big'"
check_no_round full/big
[[ -z $(find "$T/box/srv" -name inventory.img) ]] || fail "an inventory.img exists"
used=$(df --output=used -k "$T/box/srv" | tail -n 1)
((used < 64)) || fail "tmpfs still holds ${used} KiB"
check_serving
check_contained
ps_stop
echo PASS
