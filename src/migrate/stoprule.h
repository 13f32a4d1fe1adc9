/*
 * stoprule: when migrate stops pre-copying and does the final freeze (docs/migrate.md).
 *
 * Pure code (no I/O, no clock): the caller measures each round and asks for a verdict.
 * Invariants: a verdict never depends on anything but the rounds given; the prediction
 * is pessimistic when data is missing (no bandwidth figure yet: continue).
 */
#ifndef FERRY_MIG_STOPRULE_H
#define FERRY_MIG_STOPRULE_H

#include <stdint.h>

struct mig_round {
	uint64_t bytes;	     /* page bytes the round sent (after zero-page squeeze) */
	double copy_s;	     /* seconds from the round's scan to its last byte acknowledged */
	double since_prev_s; /* seconds between the previous round's scan and this one's */
	double scan_s;	     /* its dirty scan (0: unknown); the final one runs frozen */
};

struct mig_rule {
	double max_downtime_s; /* --max-downtime */
	int max_iters;	       /* --max-iters: pre-copy rounds at most (>= 1) */
	double min_shrink;     /* a round must be this fraction smaller than the one before */
	double fixed_s;	       /* the freeze's cost that depends on neither memory nor delta */
};

enum mig_verdict {
	MIG_CONTINUE,
	MIG_STOP_FITS,	    /* predicted downtime fits max_downtime */
	MIG_STOP_STALLED,   /* rounds stopped shrinking: more would not converge */
	MIG_STOP_MAX_ITERS, /* max_iters rounds done */
};

struct mig_estimate {
	double bw;	     /* bytes/s of the link, as the last rounds measured it (0: unknown) */
	double dirty_rate;   /* bytes/s the tree dirties (0: unknown, round 0 only) */
	uint64_t next_bytes; /* predicted size of the final delta */
	double predicted_s;  /* predicted downtime of stopping now */
};

/* Defaults: 300 ms, 10 rounds, 10%, 30 ms. */
void mig_rule_defaults(struct mig_rule *r);
/* Verdict after rounds[0..n-1] (n >= 1); *est filled when not NULL. */
enum mig_verdict mig_stop_rule(const struct mig_rule *r, const struct mig_round *rounds, int n,
			       struct mig_estimate *est);
/* "continue", "fits", "stalled", "max-iters". */
const char *mig_verdict_name(enum mig_verdict v);

#endif
