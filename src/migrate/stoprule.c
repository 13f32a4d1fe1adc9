/*
 * stoprule: the pre-copy stop rule (stoprule.h, docs/migrate.md "Stop rule").
 *
 * Bandwidth is taken over the last two rounds (one short round alone is noisy), or over
 * the last one alone when it is large enough to time (16 MiB) and slower: a delta of
 * scattered pages costs more per byte than the first round's bulk copy, and the final
 * delta looks like the last one. The dirty rate is the last round's bytes over the time
 * between its scan and the previous one; the final delta is what that rate dirties
 * during one more copy of the last round's length (the time between the last scan and
 * the freeze). The final dump also scans the whole memory for that delta, frozen: the
 * last round's scan time is added.
 */
#include <stddef.h>

#include "migrate/stoprule.h"

void mig_rule_defaults(struct mig_rule *r)
{
	r->max_downtime_s = 0.300;
	r->max_iters = 10;
	r->min_shrink = 0.10;
	r->fixed_s = 0.030;
}

const char *mig_verdict_name(enum mig_verdict v)
{
	switch (v) {
	case MIG_CONTINUE:
		return "continue";
	case MIG_STOP_FITS:
		return "fits";
	case MIG_STOP_STALLED:
		return "stalled";
	case MIG_STOP_MAX_ITERS:
		return "max-iters";
	}
	return "unknown";
}

#define LAST_ALONE (16ULL << 20) /* a round this large is timed on its own */

static double bandwidth(const struct mig_round *rounds, int n)
{
	const struct mig_round *last = &rounds[n - 1];
	double b = 0, t = 0;
	for (int i = n - 1; i >= 0 && i >= n - 2; i--) {
		b += (double)rounds[i].bytes;
		t += rounds[i].copy_s;
	}
	/* A round too small to time (all in socket buffers) says nothing about the link. */
	if (t <= 1e-4 || b < 65536)
		return 0;
	if (n >= 2 && last->bytes >= LAST_ALONE && last->copy_s > 1e-4 &&
	    (double)last->bytes / last->copy_s < b / t)
		return (double)last->bytes / last->copy_s;
	return b / t;
}

enum mig_verdict mig_stop_rule(const struct mig_rule *r, const struct mig_round *rounds, int n,
			       struct mig_estimate *est)
{
	struct mig_estimate e = { 0 };
	const struct mig_round *last = &rounds[n - 1];
	enum mig_verdict v = MIG_CONTINUE;

	e.bw = bandwidth(rounds, n);
	if (n >= 2 && last->since_prev_s > 0)
		e.dirty_rate = (double)last->bytes / last->since_prev_s;
	if (n >= 2) {
		e.next_bytes = (uint64_t)(e.dirty_rate * last->copy_s);
		/* No bandwidth figure: only a delta too small to matter may be called fast. */
		if (e.bw > 0)
			e.predicted_s = r->fixed_s + last->scan_s + (double)e.next_bytes / e.bw;
		else if (last->bytes < 65536)
			e.predicted_s = r->fixed_s; /* nothing left to measure: tiny */
		else
			e.predicted_s = 1e9;
	} else {
		e.next_bytes = last->bytes;
		e.predicted_s = e.bw > 0 ? r->fixed_s + (double)last->bytes / e.bw : 1e9;
	}

	if (n >= 2 && e.predicted_s <= r->max_downtime_s)
		v = MIG_STOP_FITS;
	else if (n >= r->max_iters)
		v = MIG_STOP_MAX_ITERS;
	else if (n >= 3 &&
		 (double)last->bytes > (1.0 - r->min_shrink) * (double)rounds[n - 2].bytes)
		v = MIG_STOP_STALLED;
	if (est)
		*est = e;
	return v;
}
