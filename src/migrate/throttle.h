/*
 * throttle: --auto-converge (docs/migrate.md "Stop rule"): a CPU quota on the tree
 * while pre-copy rounds do not converge. See throttle.c for the mechanism.
 */
#ifndef FERRY_MIG_THROTTLE_H
#define FERRY_MIG_THROTTLE_H

#include <sys/types.h>

struct mig_throttle;

/* Take control of the tree's cpu quota (moving it into a cgroup of its own when it
 * shares one). Nothing is throttled yet. 0 and *out, or -errno (logged). */
int mig_throttle_start(pid_t root, struct mig_throttle **out);
/* Throttle by pct percent (0..99) of the machine's CPU time. 0 or -errno (logged). */
int mig_throttle_set(struct mig_throttle *t, int pct);
int mig_throttle_pct(const struct mig_throttle *t);
/* Restore the quota and membership we changed; frees t (NULL is fine). */
void mig_throttle_stop(struct mig_throttle *t);

#endif
