/*
 * seize: freeze and thaw every thread of one process with PTRACE_SEIZE +
 * PTRACE_INTERRUPT (see seize.h). Also home of ptrace_wait_stop() (remote.h), the
 * bounded waitpid both modules use.
 *
 * Invariants:
 *  - The target is checked before anything is done to it (kernel thread, ourselves or
 *    an ancestor or one of our threads, a non-leader thread id, a zombie, already
 *    traced); a refusal leaves it untouched.
 *  - Every thread we seized is in s->tids; on any failure midway all of them are
 *    detached again before returning.
 *  - A signal that arrives while we wait for a thread's interrupt-stop is delivered to
 *    the process as it would have been without us (PTRACE_CONT with that signal), and
 *    we wait again for the still-pending interrupt.
 *  - Release detaches with signal 0: a thread that was running continues, and a
 *    process that was in group-stop goes back to group-stop (the kernel re-enters it
 *    on detach while SIGNAL_STOP_STOPPED is set).
 *
 * Typical workload: one process of a few threads, seized for a few milliseconds.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "engine/proc.h"
#include "engine/remote.h"
#include "engine/seize.h"

#define PF_KTHREAD	      0x00200000u
#define SEIZE_STOP_TIMEOUT_MS 5000
#define SEIZE_MAX_ROUNDS      64
#ifndef PTRACE_EVENT_STOP
#define PTRACE_EVENT_STOP 128
#endif

int ptrace_wait_stop(pid_t tid, int timeout_ms)
{
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000ull;
	long sleep_ns = 5000;
	int status, spins = 0;

	for (;;) {
		pid_t r = waitpid(tid, &status, __WALL | WNOHANG);
		if (r == tid) {
			if (WIFSTOPPED(status))
				return status;
			return -ESRCH; /* exited or killed */
		}
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return errno == ECHILD ? -ESRCH : -errno;
		}
		if (now_ns() > deadline)
			return -ETIMEDOUT;
		/* Most stops we wait for come within microseconds (a syscall stop on the
		 * other core): spin briefly before sleeping, then back off up to 1 ms. */
		if (spins++ < 50) {
			sched_yield();
			continue;
		}
		struct timespec ts = { 0, sleep_ns };
		nanosleep(&ts, NULL);
		if (sleep_ns < 1000000)
			sleep_ns *= 2;
	}
}

/* Tgid of pid from its status file, or -errno. */
static int read_tgid(pid_t pid)
{
	char path[64], *buf, *p;
	int r, tgid = -EINVAL;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	r = read_file(path, &buf, NULL, 1 << 16);
	if (r < 0)
		return r == -ENOENT ? -ESRCH : r;
	p = strstr(buf, "\nTgid:");
	if (p)
		tgid = atoi(p + 6);
	free(buf);
	return tgid;
}

/* Is pid this process, one of its threads, or one of its ancestors? */
static bool is_self_or_ancestor(pid_t pid)
{
	char path[64];
	pid_t p = getpid();

	snprintf(path, sizeof(path), "/proc/self/task/%d", pid);
	if (access(path, F_OK) == 0)
		return true;
	for (int depth = 0; p > 0 && depth < 4096; depth++) {
		struct proc_stat st;
		if (p == pid)
			return true;
		if (p == 1 || proc_parse_stat(p, 0, &st) < 0)
			break;
		p = st.ppid;
	}
	return false;
}

/* Refuse targets we must not or cannot seize; log the cause. Sets *stopped. */
static int seize_check(pid_t pid, bool *stopped)
{
	struct proc_status ss;
	struct proc_stat st;
	int r, tgid;

	if (pid <= 0)
		return pr_err_ret(-ESRCH, "seize %d: no such process", pid);
	r = proc_parse_stat(pid, 0, &st);
	if (r == -ESRCH || r == -ENOENT)
		return pr_err_ret(-ESRCH, "seize %d: no such process", pid);
	if (r < 0)
		return pr_err_ret(r, "seize %d: cannot read /proc/%d/stat", pid, pid);
	if (st.flags & PF_KTHREAD)
		return pr_err_ret(-EINVAL, "seize %d: '%s' is a kernel thread", pid, st.comm);
	if (is_self_or_ancestor(pid))
		return pr_err_ret(-EINVAL,
				  "seize %d: is ferry itself, one of its threads or an ancestor",
				  pid);
	if ((st.state == 'Z' || st.state == 'X') && st.num_threads > 1)
		return pr_err_ret(-EINVAL,
				  "seize %d: '%s': its main thread has exited while %ld threads "
				  "run: not supported",
				  pid, st.comm, st.num_threads - 1);
	if (st.state == 'Z' || st.state == 'X')
		return pr_err_ret(-EINVAL, "seize %d: '%s' is a zombie", pid, st.comm);
	tgid = read_tgid(pid);
	if (tgid < 0)
		return pr_err_ret(tgid == -ESRCH ? -ESRCH : tgid, "seize %d: cannot read status",
				  pid);
	if (tgid != pid)
		return pr_err_ret(-EINVAL, "seize %d: is a thread of process %d, not a process",
				  pid, tgid);
	r = proc_parse_status(pid, 0, &ss);
	if (r < 0)
		return pr_err_ret(r == -ENOENT ? -ESRCH : r, "seize %d: cannot read status", pid);
	if (ss.tracer_pid)
		return pr_err_ret(-EBUSY, "seize %d: already traced by process %d", pid,
				  ss.tracer_pid);
	*stopped = st.state == 'T';
	return 0;
}

/* Wait for tid's interrupt-stop. Signal-delivery-stops on the way are passed through
 * to the task (it handles the signal as without us). 0, -ESRCH if it exited, -errno. */
static int seize_wait_interrupt(pid_t tid)
{
	for (int i = 0; i < 256; i++) {
		int status = ptrace_wait_stop(tid, SEIZE_STOP_TIMEOUT_MS);
		if (status < 0)
			return status;
		if ((status >> 16) == PTRACE_EVENT_STOP)
			return 0;
		int sig = WSTOPSIG(status);
		if ((status >> 16) || sig == (SIGTRAP | 0x80))
			sig = 0; /* another ptrace event: nothing to deliver */
		pr_debug("seize %d: passing signal %d through", tid, sig);
		if (ptrace(PTRACE_CONT, tid, 0, (void *)(long)sig) < 0)
			return -errno;
	}
	return -EAGAIN;
}

/* Has thread tid of pid begun to exit (zombie, dead or gone)? */
static bool thread_exiting(pid_t pid, pid_t tid)
{
	struct proc_stat st;
	int r = proc_parse_stat(pid, tid, &st);
	return r == -ESRCH || r == -ENOENT || (r == 0 && (st.state == 'Z' || st.state == 'X'));
}

/* SEIZE + INTERRUPT one thread (its stop is waited for later, so that all threads
 * of a pass stop in parallel). 0; -ESRCH if the thread is gone (not logged: the
 * caller re-reads the list); other -errno logged. */
static int seize_attach(pid_t pid, pid_t tid)
{
	int r;

	if (ptrace(PTRACE_SEIZE, tid, 0, (void *)(long)PTRACE_O_TRACESYSGOOD) < 0) {
		r = -errno;
		if (r == -ESRCH)
			return r;
		if (r == -EPERM && tid != pid && thread_exiting(pid, tid))
			return -ESRCH; /* the kernel refuses to attach to an exiting thread */
		if (r == -EPERM)
			return pr_err_ret(r, "seize %d: thread %d: permission denied", pid, tid);
		return pr_err_ret(r, "seize %d: PTRACE_SEIZE thread %d", pid, tid);
	}
	if (ptrace(PTRACE_INTERRUPT, tid, 0, 0) < 0) {
		r = -errno;
		(void)ptrace(PTRACE_DETACH, tid, 0, 0);
		return r == -ESRCH
			       ? r
			       : pr_err_ret(r, "seize %d: PTRACE_INTERRUPT thread %d", pid, tid);
	}
	return 0;
}

static bool has_tid(const struct seized *s, pid_t tid)
{
	for (size_t i = 0; i < s->n_tids; i++)
		if (s->tids[i] == tid)
			return true;
	return false;
}

static void drop_tid(struct seized *s, size_t i)
{
	memmove(s->tids + i, s->tids + i + 1, (s->n_tids - i - 1) * sizeof(*s->tids));
	s->n_tids--;
}

/* Wait for the interrupt-stops of s->tids[from..]; drop threads that exited. A thread
 * that does not stop stays in the list: seize_release() deals with it. */
static int seize_wait_new(struct seized *s, size_t from)
{
	for (size_t i = from; i < s->n_tids;) {
		pid_t tid = s->tids[i];
		int r = seize_wait_interrupt(tid);
		if (r == -ESRCH && tid != s->pid) {
			drop_tid(s, i); /* the thread exited meanwhile */
			continue;
		}
		if (r == -ESRCH)
			return pr_err_ret(r, "seize %d: process exited while being seized", s->pid);
		if (r == -ETIMEDOUT)
			return pr_err_ret(r,
					  "seize %d: thread %d did not stop within %d ms "
					  "(uninterruptible sleep?)",
					  s->pid, tid, SEIZE_STOP_TIMEOUT_MS);
		if (r < 0)
			return pr_err_ret(r, "seize %d: waiting for thread %d", s->pid, tid);
		i++;
	}
	return 0;
}

/* One pass over the thread list: seize the threads not seized yet. Returns the number
 * of threads newly seized (0: the list is stable) or -errno. */
static int seize_pass(struct seized *s)
{
	size_t n, from = s->n_tids;
	pid_t *tids;
	int r;

	r = proc_list_tids(s->pid, &tids, &n);
	if (r < 0)
		return r == -ESRCH ? pr_err_ret(r, "seize %d: process vanished", s->pid) : r;
	for (size_t i = 0; i < n; i++) {
		if (has_tid(s, tids[i]))
			continue;
		pid_t *nt = realloc(s->tids, (s->n_tids + 1) * sizeof(*nt));
		if (!nt) {
			r = -ENOMEM;
			break;
		}
		s->tids = nt;
		r = seize_attach(s->pid, tids[i]);
		if (r == -ESRCH && tids[i] != s->pid) {
			r = 0; /* the thread exited meanwhile */
			continue;
		}
		if (r < 0) {
			if (r == -ESRCH)
				pr_err("seize %d: process exited while being seized", s->pid);
			break;
		}
		s->tids[s->n_tids++] = tids[i];
	}
	free(tids);
	if (r == 0)
		r = seize_wait_new(s, from);
	return r < 0 ? r : (int)(s->n_tids - from);
}

int seize_process(pid_t pid, struct seized *s)
{
	bool stopped = false;
	int r, round;

	memset(s, 0, sizeof(*s));
	s->pidfd = -1;
	r = seize_check(pid, &stopped);
	if (r < 0)
		return r;
	s->pid = pid;
	s->was_stopped = stopped;
	for (round = 0; round < SEIZE_MAX_ROUNDS; round++) {
		r = seize_pass(s);
		if (r <= 0)
			break;
	}
	if (r == 0 && round == SEIZE_MAX_ROUNDS)
		r = pr_err_ret(-EAGAIN, "seize %d: thread list never settled", pid);
	if (r == 0 && (!s->n_tids || s->tids[0] != pid))
		r = pr_err_ret(-ESRCH, "seize %d: leader not seized", pid);
	if (r == 0) {
		s->pidfd = sys_pidfd_open(pid, 0);
		if (s->pidfd < 0)
			r = pr_err_ret(s->pidfd, "seize %d: pidfd_open", pid);
		else if (s->pidfd == 0) {
			/* Keep fd 0 free: a zeroed struct's pidfd 0 means "none". */
			s->pidfd = fcntl(0, F_DUPFD_CLOEXEC, 3);
			close(0);
			if (s->pidfd < 0)
				r = pr_perror("seize %d: dup pidfd", pid);
		}
	}
	if (r < 0) {
		seize_release(s, SEIZE_RESUME);
		return r;
	}
	pr_debug("seized %d: %zu threads%s", pid, s->n_tids, stopped ? " (was stopped)" : "");
	return 0;
}

/* Detach one thread; if it is not in a ptrace-stop (ESRCH from DETACH while it still
 * exists), stop it first. */
static void detach_thread(pid_t tid)
{
	if (ptrace(PTRACE_DETACH, tid, 0, 0) == 0 || errno != ESRCH)
		return;
	if (ptrace(PTRACE_INTERRUPT, tid, 0, 0) < 0)
		return; /* not traced by us, or gone */
	if (seize_wait_interrupt(tid) == 0 && ptrace(PTRACE_DETACH, tid, 0, 0) < 0)
		pr_warn("detach %d: %s", tid, strerror(errno));
}

/* After SIGKILL: collect each traced thread's exit so the zombie goes to its real
 * parent (a traced task's exit is reported to the tracer first). Our own child's
 * leader is left unreaped for the caller (WNOWAIT). */
static void collect_killed(const struct seized *s)
{
	for (size_t i = s->n_tids; i-- > 0;) {
		pid_t tid = s->tids[i];
		siginfo_t si;
		int opts = WEXITED | __WALL | WNOHANG;
		uint64_t deadline = now_ns() + 2000000000ull;
		struct proc_stat st;

		if (tid == s->pid && proc_parse_stat(tid, 0, &st) == 0 && st.ppid == getpid())
			opts |= WNOWAIT;
		for (;;) {
			memset(&si, 0, sizeof(si));
			if (waitid(P_PID, tid, &si, opts) < 0) {
				if (errno == EINTR)
					continue;
				break; /* ECHILD: not ours any more */
			}
			if (si.si_pid == tid &&
			    (si.si_code == CLD_KILLED || si.si_code == CLD_EXITED ||
			     si.si_code == CLD_DUMPED))
				break;
			if (now_ns() > deadline) {
				pr_warn("kill %d: thread %d did not exit in time", s->pid, tid);
				break;
			}
			struct timespec ts = { 0, 200000 };
			nanosleep(&ts, NULL);
		}
	}
}

void seize_release(struct seized *s, enum seize_end how)
{
	if (!s)
		return;
	if (how == SEIZE_KILL && s->pid > 0 && s->n_tids) {
		if (kill(s->pid, SIGKILL) < 0 && errno != ESRCH)
			pr_perror("kill %d", s->pid);
		collect_killed(s);
	} else {
		/* queued before the detach: no thread runs an instruction before it stops */
		if (how == SEIZE_STOP && s->pid > 0 && s->n_tids && kill(s->pid, SIGSTOP) < 0)
			pr_perror("kill -STOP %d", s->pid);
		for (size_t i = 0; i < s->n_tids; i++)
			detach_thread(s->tids[i]);
	}
	if (s->pidfd > 0)
		close(s->pidfd);
	free(s->tids);
	memset(s, 0, sizeof(*s));
	s->pidfd = -1;
}
