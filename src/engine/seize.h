/*
 * seize: freeze and thaw the threads of one process with ptrace (PTRACE_SEIZE +
 * PTRACE_INTERRUPT), without signals visible to the process.
 *
 * Invariants: after seize_process() succeeds every thread is in a ptrace-stop and
 * traced by us; seize_release() detaches every thread exactly once (resuming it, or
 * leaving it stopped if it was stopped before we came), or kills the process. Threads
 * created while we were seizing are caught (the thread list is re-read until stable).
 * A process that cannot be seized (no permission, kernel thread, ourselves, a zombie,
 * already traced) fails with a one-line error naming the cause and is left untouched.
 */
#ifndef FERRY_SEIZE_H
#define FERRY_SEIZE_H

#include <stdbool.h>
#include <sys/types.h>

struct seized {
	pid_t pid;
	pid_t *tids; /* leader first */
	size_t n_tids;
	bool was_stopped; /* in group-stop (T) before we seized it */
	int pidfd;	  /* pidfd_open(pid), for pidfd_getfd */
};

/* 0 or -errno (logged, naming the cause: -ESRCH no such process, -EPERM not allowed,
 * -EINVAL kernel thread or ferry itself, -EBUSY already traced). */
int seize_process(pid_t pid, struct seized *s);

enum seize_end { SEIZE_RESUME, SEIZE_KILL, SEIZE_STOP };
/* Detach all threads (resume), SIGKILL the process (and reap nothing: it is not our
 * child), or detach it with a SIGSTOP pending so that it stays stopped without a tracer
 * (migrate's hand-over in doubt: SIGCONT resumes it). Safe on a partially seized or
 * zeroed struct. Frees s's arrays. */
void seize_release(struct seized *s, enum seize_end how);

#endif
