/*
 * action: --action-script hooks of migrate (docs/migrate.md "Action scripts").
 *
 * The script runs with FERRY_STAGE=<stage> and the variables given, its stdin on
 * /dev/null, its output on ours, no fds of ours beyond 0-2, and a bounded time (killed
 * after the timeout). Invariant: a stage whose failure must abort (pre-dump,
 * pre-restore) reports it; the caller rolls back. Never run when no script is set.
 */
#ifndef FERRY_MIG_ACTION_H
#define FERRY_MIG_ACTION_H

/* Stages, in the order migrate reaches them. */
#define MIG_STAGE_PRE_DUMP	 "pre-dump"
#define MIG_STAGE_POST_DUMP	 "post-dump"
#define MIG_STAGE_NETWORK_LOCK	 "network-lock"
#define MIG_STAGE_PRE_RESTORE	 "pre-restore"
#define MIG_STAGE_POST_RESTORE	 "post-restore"
#define MIG_STAGE_PRE_RESUME	 "pre-resume"
#define MIG_STAGE_POST_RESUME	 "post-resume"
#define MIG_STAGE_NETWORK_UNLOCK "network-unlock"

/* Run SCRIPT (NULL: nothing, 0) for STAGE with extra environment ENV ("K=V" strings,
 * NULL-terminated, may be NULL), at most timeout_s seconds. 0 when it exited 0;
 * -ECANCELED when it exited non-zero or was killed (logged with the stage and status);
 * -errno when it could not run (logged). */
int mig_action(const char *script, const char *stage, char *const env[], int timeout_s);

#endif
