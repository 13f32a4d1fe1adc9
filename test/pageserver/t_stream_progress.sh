#!/bin/bash
# The progress line on stderr, through the real sender (tools/bench/sendloop sender:
# src/pageserver/sender.c to a discarding receiver, link limited to 50 MB/s so that a
# 64 MiB round lasts ~1.3 s and the line is redrawn several times), stderr a terminal
# (script(1) gives it a pty):
#  - with an expected total announced (ps_sender_expect, what the dump announces per
#    process through ps_progress_expect), the line shows "X of TOTAL (P%)" and an ETA
#    that falls to 0 as the round ends;
#  - without one, bytes and rate only (no ETA: nothing to base it on);
#  - when stderr is not a terminal, nothing at all.
# The line is cleared at the end (\r ESC[K).
. "$(dirname "$0")/stream_lib.sh"
SL=$BUILD/tools/bench/sendloop
[ -x "$SL" ] || die "$SL missing (make pstest builds it)"
command -v script >/dev/null || die "script(1) (util-linux) is needed for a pty"

# tty RUN-OUTPUT ENV...: sendloop sender 64 MiB at 50 MB/s with a pty as stderr
tty() {
	local out=$1
	shift
	timeout -k 5 60 script -qec "env $* $SL sender 64 off 50 random" /dev/null </dev/null |
		tr '\r' '\n' >"$out" || die "sendloop sender under script failed"
}

tty "$W/eta.out" SENDLOOP_PROGRESS=1 SENDLOOP_EXPECT=$((64 << 20))
grep -a 'page server:' "$W/eta.out" | sed 's/\x1b\[K//' | head -n 8
n=$(grep -ac 'of 64.0 MiB (.*%), .*/s, ETA [0-9]* s' "$W/eta.out")
((n >= 3)) || die "with a total: $n lines with 'of 64.0 MiB' and an ETA (want >= 3)"
first=$(grep -ao 'ETA [0-9]* s' "$W/eta.out" | head -n 1 | tr -dc 0-9)
last=$(grep -ao 'ETA [0-9]* s' "$W/eta.out" | tail -n 1 | tr -dc 0-9)
((first >= 1 && first <= 5)) || die "first ETA $first s for 64 MiB at 50 MB/s (want 1-5)"
((last <= first && last <= 1)) || die "last ETA $last s (first $first s): it should fall to 0-1"
grep -aq $'\x1b\\[K$' "$W/eta.out" || die "the line is not cleared at the end"

tty "$W/plain.out" SENDLOOP_PROGRESS=1
grep -aq 'page server: .* sent, .*/s' "$W/plain.out" || die "without a total: no 'sent' line"
! grep -a 'page server:' "$W/plain.out" | grep -q 'ETA\| of ' ||
	die "without a total: an ETA or a total was shown"

SENDLOOP_PROGRESS=1 SENDLOOP_EXPECT=$((64 << 20)) timeout -k 5 60 "$SL" sender 16 off 50 random \
	2>"$W/notty.err" >/dev/null || die "sendloop sender failed"
[ ! -s "$W/notty.err" ] || die "stderr not a terminal, yet: $(head -c 200 "$W/notty.err")"
echo PASS
