#!/bin/bash
# lz4 FILE_DATA: valid blocks are decompressed into the right bytes (the size and hash
# checks at FILE_CLOSE pass); a junk block, a block that decompresses to another size
# than raw_len, and a raw_len above PS_MAX_CHUNK are refused with an ERROR, the partial
# round removed, the server keeps serving.
. "$(dirname "$0")/lib-server.sh"
ps_init
ps_start
# 3 MiB + 5 bytes of pattern as lz4 blocks, closed with the raw size and hash
out=$(peer hello begin z1 open 1 pages-7.img data-lz4 1 3145733 close 1 hold 300 shut expect-close) ||
	fail "valid lz4 stream: $out"
# the only error is the dropped connection: FILE_CLOSE's size and hash matched
wait_log "connection lost in round 'peer/z1'"
[[ $(grep -c "error" "$PS_LOG") == 1 ]] || fail "valid lz4 blocks refused: $(grep error "$PS_LOG")"
out=$(peer hello begin z2 open 1 pages-1.img lz4-bad 1 4096 expect-error "bad lz4 block for 'pages-1.img'") ||
	fail "junk lz4: $out"
wait_log "bad lz4 block for 'pages-1.img' \(0 bytes in\)"
check_no_round peer/z2
# a real block of 1 MiB that claims 1000 bytes
out=$(peer hello begin z3 open 1 pages-1.img lz4-bad 1 1000 expect-error "bad lz4 block") || fail "size: $out"
out=$(peer hello begin z4 open 1 pages-1.img lz4-bad 1 1048577 expect-error "FILE_DATA of 1048577 bytes") ||
	fail "raw_len above the chunk bound: $out"
for r in z1 z3 z4; do check_no_round "peer/$r"; done # z1 never committed: dropped at close
check_serving
check_contained
ps_stop
echo PASS
