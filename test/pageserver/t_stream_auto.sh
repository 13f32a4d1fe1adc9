#!/bin/bash
# --compress auto decides by measurement: through the real sender (tools/bench/sendloop
# sender: src/pageserver/sender.c to a discarding receiver) on a link limited to 50 MB/s
# (the rate-limit hook migrate --bandwidth uses), heap-like data gets compressed (lz4 at
# hundreds of MB/s and a ratio ~0.38 beat 50 MB/s: most chunks go as lz4 blocks and the
# data moves faster than the link), random data does not (it would not shrink: the round
# takes the link's time, not more). On an unlimited loopback link auto is held off
# without sampling (the peer is on the same host).
. "$(dirname "$0")/stream_lib.sh"
SL=$BUILD/tools/bench/sendloop
[ -x "$SL" ] || die "$SL missing (make pstest builds it)"

# sender output: sender SECONDS RATE WIRE LZ4_CHUNKS CHUNKS SWITCHES ON LINK LZ4 RATIO PROBES IDLE
read -r _ secs rate wire lz chunks _ on _ <<<"$("$SL" sender 128 auto 50 heap)"
echo "heap, auto, 50 MB/s: $rate B/s, $lz of $chunks chunks lz4, $wire wire bytes"
[ "$on" = 1 ] && [ "$lz" -ge $((chunks * 8 / 10)) ] || die "auto did not compress heap-like data on a 50 MB/s link"
[ "${rate%.*}" -gt 75000000 ] || die "auto on heap-like data: $rate B/s, not faster than the 50 MB/s link"

read -r _ secs rate wire lz chunks _ on _ <<<"$("$SL" sender 64 auto 50 random)"
echo "random, auto, 50 MB/s: $rate B/s, $lz of $chunks chunks lz4"
[ "$lz" -le 2 ] && [ "$on" = 0 ] || die "auto compressed random data ($lz of $chunks chunks)"
[ "${rate%.*}" -gt 45000000 ] || die "auto on random data: $rate B/s, slower than the link"
# same host, no rate limit: auto is held off without sampling (the loopback "link" is
# a copy on the same CPUs; lz4 can only add work to them)
read -r _ secs rate wire lz chunks _ on _ _ _ probes idle <<<"$("$SL" sender 64 auto 0 heap)"
echo "heap, auto, loopback unlimited: $rate B/s, $lz of $chunks chunks lz4, $probes samples"
[ "$lz" = 0 ] && [ "$probes" = 0 ] && [ "$on" = 0 ] ||
	die "auto on an unlimited loopback link: $lz chunks compressed, $probes samples (want 0, 0)"
echo PASS
