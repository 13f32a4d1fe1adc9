/*
 * dest: the destination's half of a migration hand-over (docs/migrate.md).
 *
 * mig_dest_restore() restores an images directory in a forked restorer process that
 * builds the whole tree and then holds it (ferry_opts.hold): nothing of the tree has run
 * yet. The caller then either lets it run (mig_dest_go) or discards it (mig_dest_discard:
 * the restorer kills what it built). If the caller dies, the restorer sees EOF and kills
 * the tree too: a held tree never runs without an explicit go.
 */
#ifndef FERRY_MIG_DEST_H
#define FERRY_MIG_DEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct mig_dest;

/* Start a warm restorer (rst-warm.h): a process that stages each pre-copy round given
 * to mig_dest_warm_round and, at mig_dest_restore, builds the tree from that staging.
 * 0 or -errno with the cause in err. */
int mig_dest_warm_start(struct mig_dest **out, char *err, size_t errlen);
/* Stage round DIR (within timeout_s): *bytes staged in *us. 0 or -errno with the cause
 * in err (the warm restorer goes on: the final restore is cold where it must be):
 * -EPIPE the warm restorer is gone, -ETIMEDOUT it hangs, -EIO staging failed. */
int mig_dest_warm_round(struct mig_dest *h, const char *dir, int timeout_s, uint64_t *bytes,
			uint64_t *us, char *err, size_t errlen);
/* The same in two halves: hand round DIR over (the warm restorer stages requests in
 * order, in the background), then later collect one answer per request sent, in order. */
int mig_dest_warm_send(struct mig_dest *h, const char *dir, char *err, size_t errlen);
int mig_dest_warm_reply(struct mig_dest *h, int timeout_s, uint64_t *bytes, uint64_t *us, char *err,
			size_t errlen);
/* Restore DIR held: by the warm restorer *warm if there is one (taken: *warm becomes
 * NULL; if it is gone or fails, short of a timeout, by a cold one after all), else by a
 * new restorer process. *pidns in: force a new pid namespace; out:
 * whether one was used (a pid of the tree taken here makes one too). On success *out
 * and *root (the root's host pid). On failure -errno and the cause in err (one line;
 * also logged by the restorer). timeout_s bounds the build. */
int mig_dest_restore(const char *dir, bool *pidns, int timeout_s, struct mig_dest **warm,
		     struct mig_dest **out, pid_t *root, char *err, size_t errlen);
/* Let the held tree run; waits for the restorer to detach it. 0 or -errno (logged). */
int mig_dest_go(struct mig_dest *h);
/* Kill the held tree (the restorer rolls back) and free h. NULL is fine. */
void mig_dest_discard(struct mig_dest *h);

#endif
