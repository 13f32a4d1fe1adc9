/*
 * mig-priv: state shared by migrate's source-side files (migrate.c: options and entry,
 * rounds.c: chain, pre-copy and final, handover.c: the exchange with the destination).
 */
#ifndef FERRY_MIG_PRIV_H
#define FERRY_MIG_PRIV_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "migrate/stoprule.h"

#define MIG_MAX_ROUNDS 64

struct ps_client;

struct mig_round_rec {
	char name[16]; /* r0001 ... */
	bool final;
	uint64_t bytes;	   /* page bytes streamed */
	uint64_t wire;	   /* bytes on the wire */
	double secs;	   /* the round, start to ROUND_DONE (and MIG_WARMED) */
	double stage_s;	   /* of which staging at the destination (MIG_WARMED) */
	uint64_t scan_ns;  /* its dirty scans (pre-copy rounds) */
	double since_prev; /* start of the previous round to this one's start */
	uint64_t t0_ns;	   /* the round's start (CLOCK_MONOTONIC) */
	struct mig_estimate est;
	enum mig_verdict verdict;
	int throttle; /* --auto-converge: the tree's throttle during the round, % */
	int parts;    /* pre-dump rounds it took (round 0 in parts: rounds.c) */
	bool partial; /* a --pre-dump --max-bytes round that stopped at its budget */
};

struct mig {
	/* options */
	pid_t pid;
	char host[256];
	int port;
	bool pre_only, pidns, json, tcp_established, auto_converge;
	const char *auth_key, *action, *work_arg, *source_id, *log_file;
	int compress, verbosity, timeout_s;
	uint64_t bandwidth;
	uint64_t part_size; /* --part-size (part_set: given; 0 = round 0 in one piece) */
	uint64_t cron_max;  /* --pre-dump --max-bytes: this run's round at most (0: all) */
	bool part_set;
	struct mig_rule rule;

	/* state */
	char source[64];
	char work[PATH_MAX];
	int last;	      /* number of the newest complete local round (0: none) */
	bool chain_from_cron; /* round 0 of this run is a delta on an earlier chain */
	struct ps_client *c;
	struct mig_throttle *thr; /* --auto-converge, once throttling began */
	struct mig_round_rec rounds[MIG_MAX_ROUNDS];
	int n_rounds;
	uint64_t t_start, t_freeze, t_running, t_end;
	pid_t dest_pid;
	bool dest_pidns;
	bool handed_over;  /* the destination runs the tree: success */
	bool restore_sent; /* MIG_RESTORE went out: a refusal makes the destination drop the
			    * final round (so we drop ours) */
	const char *stop_reason;
	char cause[512];
};

/* rounds.c */
int mig_run(struct mig *m);
void mig_summary(const struct mig *m, int r);
void mig_free(struct mig *m);

/* handover.c: dump's on_frozen hook (arg: struct mig) */
int mig_handover(void *arg);
/* A pre-copy round just committed (bytes of pages): have the destination stage it
 * (MIG_WARM), within --timeout plus the round at 50 MB/s. 0 (staged
 * or not: a refusal is only logged; *stage_s the destination's staging time) or -errno
 * when the connection failed (logged). */
int mig_warm(struct mig *m, const char *round, uint64_t bytes, bool queue, double *stage_s);
/* stage hook for the action script: 0 or -ECANCELED (logged) */
int mig_stage(struct mig *m, const char *stage);

#endif
