/*
 * test_stoprule: the migrate pre-copy stop rule (src/migrate/stoprule.c) on measured
 * round series: converging, fitting at once, stalling, dirtying faster than the link,
 * max-iters, tiny processes. Exit 0 all passed, 1 any failed.
 */
#include <stdio.h>
#include <stdlib.h>

#include "migrate/stoprule.h"

#define CHECK(cond) do { if (!(cond)) { \
	fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); exit(1); } } while (0)

#define MB (1024.0 * 1024.0)

static struct mig_rule rule(void)
{
	struct mig_rule r;
	mig_rule_defaults(&r);
	return r;
}

/* 1 GiB at 1 GB/s, then a tree that dirties 1 MB/s: round 1 is ~1 MB, fits. */
static void test_converges(void)
{
	struct mig_rule r = rule();
	struct mig_round rs[] = {
		{ .bytes = 1024 * MB, .copy_s = 1.0, .since_prev_s = 0 },
		{ .bytes = 1 * MB, .copy_s = 0.001, .since_prev_s = 1.0 },
	};
	struct mig_estimate e;
	CHECK(mig_stop_rule(&r, rs, 1, &e) == MIG_CONTINUE);
	CHECK(e.bw > 1000 * MB && e.bw < 1100 * MB);
	CHECK(mig_stop_rule(&r, rs, 2, &e) == MIG_STOP_FITS);
	CHECK(e.dirty_rate > 0.9 * MB && e.dirty_rate < 1.1 * MB);
	CHECK(e.predicted_s < 0.05);
}

/* Dirtying 800 MB/s over a 1 GB/s link: the prediction never fits and the rounds
 * stop shrinking: stalled. */
static void test_stalls(void)
{
	struct mig_rule r = rule();
	struct mig_round rs[] = {
		{ .bytes = 1024 * MB, .copy_s = 1.0, .since_prev_s = 0 },
		{ .bytes = 800 * MB, .copy_s = 0.8, .since_prev_s = 1.0 },
		{ .bytes = 760 * MB, .copy_s = 0.76, .since_prev_s = 0.8 },
	};
	struct mig_estimate e;
	CHECK(mig_stop_rule(&r, rs, 2, &e) == MIG_CONTINUE);
	CHECK(e.predicted_s > 0.5);
	CHECK(mig_stop_rule(&r, rs, 3, &e) == MIG_STOP_STALLED);
	CHECK(e.dirty_rate > 900 * MB); /* 760 MB in 0.8 s */
}

/* Shrinking rounds that never fit: max-iters ends it. */
static void test_max_iters(void)
{
	struct mig_rule r = rule();
	r.max_iters = 3;
	r.max_downtime_s = 0.001;
	struct mig_round rs[] = {
		{ .bytes = 1024 * MB, .copy_s = 1.0 },
		{ .bytes = 400 * MB, .copy_s = 0.4, .since_prev_s = 1.0 },
		{ .bytes = 100 * MB, .copy_s = 0.1, .since_prev_s = 0.4 },
	};
	CHECK(mig_stop_rule(&r, rs, 2, NULL) == MIG_CONTINUE);
	CHECK(mig_stop_rule(&r, rs, 3, NULL) == MIG_STOP_MAX_ITERS);
	r.max_iters = 1;
	CHECK(mig_stop_rule(&r, rs, 1, NULL) == MIG_STOP_MAX_ITERS);
}

/* A tiny process: rounds too small to time the link still stop once nothing is dirty. */
static void test_tiny(void)
{
	struct mig_rule r = rule();
	struct mig_round rs[] = {
		{ .bytes = 40000, .copy_s = 0.00001 },
		{ .bytes = 8192, .copy_s = 0.00001, .since_prev_s = 0.01 },
	};
	struct mig_estimate e;
	CHECK(mig_stop_rule(&r, rs, 1, &e) == MIG_CONTINUE);
	CHECK(mig_stop_rule(&r, rs, 2, &e) == MIG_STOP_FITS);
	CHECK(e.predicted_s <= r.max_downtime_s);
}

/* A last round of scattered pages, slower per byte than the bulk first round: its own
 * rate is the bandwidth (the final delta looks like it), and the final dump's frozen
 * scan (as long as the last round's) is part of the prediction. */
static void test_scattered(void)
{
	struct mig_rule r = rule();
	struct mig_round rs[] = {
		{ .bytes = 4096 * MB, .copy_s = 4.0, .scan_s = 0.06 },
		{ .bytes = 400 * MB, .copy_s = 1.6, .since_prev_s = 4.0, .scan_s = 0.04 },
	};
	struct mig_estimate e;
	CHECK(mig_stop_rule(&r, rs, 2, &e) != MIG_STOP_FITS);
	CHECK(e.bw > 240 * MB && e.bw < 260 * MB); /* 400 MB in 1.6 s, not 4.5 GB in 5.6 s */
	/* 100 MB/s dirty for 1.6 s: 160 MB at 250 MB/s + 30 ms fixed + 40 ms scan */
	CHECK(e.predicted_s > 0.70 && e.predicted_s < 0.72);
	/* a small last round is not timed alone */
	rs[1] = (struct mig_round){ .bytes = 8 * MB, .copy_s = 0.1, .since_prev_s = 4.0 };
	CHECK(mig_stop_rule(&r, rs, 2, &e) == MIG_STOP_FITS);
	CHECK(e.bw > 700 * MB);
}

/* A big delta with no usable bandwidth figure never fits. */
static void test_unknown_bw(void)
{
	struct mig_rule r = rule();
	struct mig_round rs[] = {
		{ .bytes = 100 * MB, .copy_s = 0 },
		{ .bytes = 100 * MB, .copy_s = 0, .since_prev_s = 1 },
	};
	struct mig_estimate e;
	CHECK(mig_stop_rule(&r, rs, 2, &e) == MIG_CONTINUE);
	CHECK(e.bw == 0 && e.predicted_s > 1e6);
}

int main(void)
{
	test_converges();
	test_stalls();
	test_max_iters();
	test_tiny();
	test_unknown_bw();
	test_scattered();
	CHECK(mig_verdict_name(MIG_STOP_STALLED)[0] == 's');
	printf("test_stoprule: all passed\n");
	return 0;
}
