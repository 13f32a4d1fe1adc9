/*
 * remote: execute system calls inside a ptrace-stopped task and access its memory
 * (see remote.h for the contract).
 *
 * Mechanics (kernel 6.18, x86_64). Each injected call loads the registers saved by
 * remote_init with rip = sc_ip, rax = nr, the six argument registers and
 * orig_rax = -1, then resumes with PTRACE_SINGLESTEP (or PTRACE_CONT when sc_ip is
 * followed by int3). Either way the call ends in a signal-delivery-stop for a
 * kernel-generated SIGTRAP right after the `syscall` instruction (single-step trap
 * reported at syscall exit, or the int3), where we read rax.
 *
 * Why single-step rather than PTRACE_SYSCALL entry/exit: the task is left in a
 * signal-delivery-stop, i.e. inside get_signal(). When remote_fini puts back the
 * saved registers (orig_rax = interrupted syscall, rax = -ERESTART*) and the caller
 * resumes or detaches with signal 0, the kernel's own restart logic runs on those
 * registers, exactly as it would have after the original interrupt-stop: the
 * interrupted syscall restarts by itself (or returns -EINTR if a handler runs). A
 * syscall-exit stop would skip that logic unless a signal happened to be pending.
 * It also costs one stop per call instead of two.
 *
 * Signals: remote_init blocks every signal except SIGTRAP. A blocked SIGTRAP would
 * be unblocked and its handler reset to SIG_DFL by the kernel when it forces our
 * trap (force_sig_info_to_task), a lasting change to the target; left unblocked, a
 * program's own SIGTRAP handler is untouched (our trap is consumed by the tracer and
 * never delivered). Unblockable or foreign signals that still arrive while we
 * inject (SIGSTOP, a SIGTRAP sent by someone) are suppressed at their
 * signal-delivery-stop and remembered in rt->stashed_sigs; remote_fini sends them
 * again to the process (kill from inside the target, so they keep their effect but
 * not their original sender). SIGKILL shows as the task dying: -ESRCH.
 *
 * Typical workload: tens of calls per process on dump, ~60 on restore.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "engine/remote.h"

#ifndef REMOTE_CALL_TIMEOUT_MS
#define REMOTE_CALL_TIMEOUT_MS 10000
#endif
#define REMOTE_MAX_FOREIGN 64
#ifndef PTRACE_EVENT_STOP
#define PTRACE_EVENT_STOP 128
#endif

int remote_find_syscall(pid_t tid, uint64_t *ip)
{
	unsigned long long start = 0, end = 0;
	char path[64], *maps, *line;
	int r, fd;

	snprintf(path, sizeof(path), "/proc/%d/maps", tid);
	r = read_file(path, &maps, NULL, 64u << 20);
	if (r < 0)
		return pr_err_ret(r == -ENOENT ? -ESRCH : r, "cannot read %s", path);
	for (line = maps; line && *line;
	     line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
		char *eol = strchr(line, '\n');
		size_t len = eol ? (size_t)(eol - line) : strlen(line);
		if (len >= 6 && !strncmp(line + len - 6, "[vdso]", 6) &&
		    sscanf(line, "%llx-%llx", &start, &end) == 2)
			break;
		start = end = 0;
	}
	free(maps);
	if (!end || end - start > (16u << 20))
		return pr_err_ret(-ENOENT, "task %d has no [vdso]", tid);

	size_t len = end - start;
	uint8_t *buf = malloc(len);
	if (!buf)
		return -ENOMEM;
	snprintf(path, sizeof(path), "/proc/%d/mem", tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		free(buf);
		return pr_perror("cannot open %s", path);
	}
	ssize_t n = pread_full(fd, buf, len, (off_t)start);
	close(fd);
	r = -ENOENT;
	for (ssize_t i = 0; n > 0 && i + 1 < n; i++)
		if (buf[i] == 0x0f && buf[i + 1] == 0x05) {
			*ip = start + i;
			r = 0;
			break;
		}
	free(buf);
	if (n < 0)
		return pr_err_ret((int)n, "cannot read the [vdso] of task %d", tid);
	if (r < 0)
		return pr_err_ret(r, "no syscall instruction in the [vdso] of task %d", tid);
	return 0;
}

int remote_read(struct remote *rt, uint64_t addr, void *buf, size_t len)
{
	ssize_t n = pread_full(rt->memfd, buf, len, (off_t)addr);
	if (n == -EIO || (n >= 0 && (size_t)n < len))
		return -EFAULT;
	return n < 0 ? (int)n : 0;
}

int remote_write(struct remote *rt, uint64_t addr, const void *buf, size_t len)
{
	int r = pwrite_full(rt->memfd, buf, len, (off_t)addr);
	return r == -EIO ? -EFAULT : r;
}

int remote_init(struct remote *rt, pid_t tid, uint64_t sc_ip)
{
	uint64_t all = ~0ull & ~(1ull << (SIGTRAP - 1));
	char path[64];
	uint8_t code[3];
	int r;

	memset(rt, 0, sizeof(*rt));
	rt->memfd = -1;
	rt->tid = tid;
	if (!sc_ip && (r = remote_find_syscall(tid, &sc_ip)) < 0)
		return r;
	snprintf(path, sizeof(path), "/proc/%d/mem", tid);
	rt->memfd = open(path, O_RDWR | O_CLOEXEC);
	if (rt->memfd < 0)
		return pr_perror("cannot open %s", path);
	if (rt->memfd == 0) {
		/* A zeroed struct's memfd 0 means "none": keep fd 0 out of it. */
		rt->memfd = fcntl(0, F_DUPFD_CLOEXEC, 3);
		close(0);
		if (rt->memfd < 0)
			return pr_perror("dup %s", path);
	}
	if ((r = remote_read(rt, sc_ip, code, sizeof(code))) < 0 || code[0] != 0x0f ||
	    code[1] != 0x05) {
		r = pr_err_ret(r < 0 ? r : -EINVAL, "task %d: no syscall instruction at %#llx", tid,
			       (unsigned long long)sc_ip);
		goto err;
	}
	rt->sc_ip = sc_ip;
	rt->sc_int3 = code[2] == 0xcc;
	if (ptrace(PTRACE_GETREGS, tid, 0, &rt->saved) < 0) {
		r = -errno;
		pr_err("task %d: PTRACE_GETREGS: %s (not a stopped tracee of ours?)", tid,
		       strerror(-r));
		goto err;
	}
	if (ptrace(PTRACE_GETSIGMASK, tid, (void *)sizeof(uint64_t), &rt->saved_sigmask) < 0 ||
	    ptrace(PTRACE_SETSIGMASK, tid, (void *)sizeof(uint64_t), &all) < 0) {
		r = pr_perror("task %d: PTRACE_{GET,SET}SIGMASK", tid);
		goto err;
	}
	rt->inited = true;
	return 0;
err:
	close(rt->memfd);
	rt->memfd = -1;
	return r;
}

static int remote_run(struct remote *rt, bool cont, struct user_regs_struct *regs);

/* An injected call that blocks (or a wait that failed): bring the task back to a
 * ptrace-stop if we can (PTRACE_INTERRUPT works on seized tasks: the call is
 * interrupted), so that remote_fini can still restore it. The interrupted call's
 * single-step trap may still be pending: one harmless call (getpid) consumes it.
 * Returns err. */
static int remote_timeout(struct remote *rt, int err)
{
	struct user_regs_struct regs = rt->saved;
	bool stopped = false;

	pr_err("task %d: remote call did not finish: %s", rt->tid, strerror(-err));
	if (err != -ETIMEDOUT || ptrace(PTRACE_INTERRUPT, rt->tid, 0, 0) < 0)
		return err;
	for (int i = 0; i < REMOTE_MAX_FOREIGN && !stopped; i++) {
		int status = ptrace_wait_stop(rt->tid, 1000);
		if (status < 0)
			return err;
		stopped = (status >> 16) == PTRACE_EVENT_STOP;
		if (!stopped && ptrace(PTRACE_CONT, rt->tid, 0, 0) < 0)
			return err; /* a trap of the interrupted call: dropped */
	}
	regs.rip = rt->sc_ip;
	regs.rax = __NR_getpid;
	regs.orig_rax = -1;
	if (stopped && ptrace(PTRACE_SETREGS, rt->tid, 0, &regs) == 0)
		(void)remote_run(rt, false, &regs);
	return err;
}

/* Classify a SIGTRAP stop: 1 = the end of our call, 0 = to be ignored (a stale
 * kernel trap, e.g. of an interrupted call; or a foreign SIGTRAP, stashed), -errno. */
static int remote_trap(struct remote *rt, const struct user_regs_struct *regs, bool cont)
{
	siginfo_t si;
	bool ours = regs->rip == rt->sc_ip + (cont ? 3 : 2);

	if (ptrace(PTRACE_GETSIGINFO, rt->tid, 0, &si) < 0)
		return errno == ESRCH ? -ESRCH : pr_perror("task %d: PTRACE_GETSIGINFO", rt->tid);
	if (si.si_code > 0) /* kernel-made: single-step (TRAP_*) or int3 (SI_KERNEL) */
		return ours;
	/* Sent by someone (kill, tgkill, sigqueue). If it came right after our call, our
	 * own trap merged into it (legacy signals are pending once): the call is done. */
	pr_debug("task %d: SIGTRAP from pid %d during a remote call, re-sent later", rt->tid,
		 si.si_pid);
	rt->stashed_sigs |= 1ull << (SIGTRAP - 1);
	return ours;
}

/* Resume for one injected call and wait for its trap. Foreign stops are absorbed:
 * signals stashed (suppressed now, re-sent by remote_fini), ptrace event stops
 * (a group-stop) just resumed. Returns 0 with *regs at the trap, or -errno. */
static int remote_run(struct remote *rt, bool cont, struct user_regs_struct *regs)
{
	int req = cont ? PTRACE_CONT : PTRACE_SINGLESTEP;

	for (int i = 0; i < REMOTE_MAX_FOREIGN; i++) {
		if (ptrace(req, rt->tid, 0, 0) < 0)
			return errno == ESRCH ? -ESRCH : pr_perror("task %d: resume", rt->tid);
		int status = ptrace_wait_stop(rt->tid, REMOTE_CALL_TIMEOUT_MS);
		if (status == -ESRCH)
			return pr_err_ret(-ESRCH, "task %d died during a remote call", rt->tid);
		if (status < 0)
			return remote_timeout(rt, status);
		if (ptrace(PTRACE_GETREGS, rt->tid, 0, regs) < 0)
			return errno == ESRCH ? -ESRCH
					      : pr_perror("task %d: PTRACE_GETREGS", rt->tid);
		int sig = WSTOPSIG(status);
		if (status >> 16) {
			pr_debug("task %d: ptrace event %d during a remote call", rt->tid,
				 status >> 16);
			continue;
		}
		if (sig == SIGTRAP) {
			int r = remote_trap(rt, regs, cont);
			if (r != 0)
				return r < 0 ? r : 0;
			continue;
		}
		pr_debug("task %d: signal %d during a remote call, re-sent later", rt->tid, sig);
		if (sig > 0 && sig <= 64)
			rt->stashed_sigs |= 1ull << (sig - 1);
	}
	return pr_err_ret(-EAGAIN, "task %d: too many foreign stops during a remote call", rt->tid);
}

int remote_syscall(struct remote *rt, long *res, long nr, unsigned long a1, unsigned long a2,
		   unsigned long a3, unsigned long a4, unsigned long a5, unsigned long a6)
{
	struct user_regs_struct regs = rt->saved;
	bool cont = rt->sc_int3;
	int r;

	if (!rt->inited)
		return pr_err_ret(-EINVAL, "remote call %ld on an uninitialized task", nr);
	/* Calls that may remove or move the code page must stop at syscall exit: an
	 * int3 after them may be gone. */
	if (nr == __NR_munmap || nr == __NR_mremap || nr == __NR_mprotect)
		cont = false;
	regs.rip = rt->sc_ip;
	regs.rax = nr;
	regs.orig_rax = -1; /* no syscall restart on the way out of this stop */
	regs.rdi = a1;
	regs.rsi = a2;
	regs.rdx = a3;
	regs.r10 = a4;
	regs.r8 = a5;
	regs.r9 = a6;
	if (ptrace(PTRACE_SETREGS, rt->tid, 0, &regs) < 0)
		return errno == ESRCH ? pr_err_ret(-ESRCH, "task %d is gone", rt->tid)
				      : pr_perror("task %d: PTRACE_SETREGS", rt->tid);
	r = remote_run(rt, cont, &regs);
	if (r < 0)
		return r;
	*res = (long)regs.rax;
	pr_trace("task %d: remote syscall %ld = %ld", rt->tid, nr, *res);
	return 0;
}

long remote_call(struct remote *rt, long nr, unsigned long a1, unsigned long a2, unsigned long a3,
		 unsigned long a4, unsigned long a5, unsigned long a6)
{
	long res = -EIO; /* defined even if an error path forgot to say so */
	int r = remote_syscall(rt, &res, nr, a1, a2, a3, a4, a5, a6);
	return r < 0 ? r : res;
}

int remote_scratch(struct remote *rt, size_t len, uint64_t *addr)
{
	long res;

	len = ROUND_UP(len ? len : 1, page_size);
	if (rt->scratch && rt->scratch_len >= len) {
		*addr = rt->scratch;
		return 0;
	}
	if (rt->scratch) {
		/* Grow: the old contents are not kept. */
		res = rcall2(rt, __NR_munmap, rt->scratch, rt->scratch_len);
		if (res < 0)
			return pr_err_ret((int)res, "task %d: munmap(scratch)", rt->tid);
		rt->scratch = 0;
		rt->scratch_len = 0;
	}
	res = rcall6(rt, __NR_mmap, 0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
		     0);
	if (res < 0 && res >= -4095)
		return pr_err_ret((int)res, "task %d: mmap(scratch, %zu)", rt->tid, len);
	rt->scratch = (uint64_t)res;
	rt->scratch_len = len;
	*addr = rt->scratch;
	return 0;
}

int remote_put(struct remote *rt, size_t off, const void *buf, size_t len, uint64_t *addr)
{
	int r;

	if (!rt->scratch || off > rt->scratch_len || len > rt->scratch_len - off)
		return pr_err_ret(-ENOSPC,
				  "task %d: %zu bytes at %zu do not fit the scratch area (%zu)",
				  rt->tid, len, off, rt->scratch_len);
	r = remote_write(rt, rt->scratch + off, buf, len);
	if (r < 0)
		return pr_err_ret(r, "task %d: write to scratch", rt->tid);
	*addr = rt->scratch + off;
	return 0;
}

/* Send the signals that arrived during injection again, from inside the target, so
 * they take effect once it resumes with its own mask. */
static int remote_resend(struct remote *rt)
{
	long tgid = rcall0(rt, __NR_getpid);
	int r = 0;

	if (tgid < 0)
		return (int)tgid;
	for (int sig = 1; sig <= 64; sig++) {
		if (!(rt->stashed_sigs & (1ull << (sig - 1))))
			continue;
		long res = rcall2(rt, __NR_kill, tgid, sig);
		if (res < 0 && !r)
			r = pr_err_ret((int)res, "task %d: cannot re-send signal %d", rt->tid, sig);
	}
	rt->stashed_sigs = 0;
	return r;
}

int remote_fini(struct remote *rt)
{
	int r = 0, e;

	if (rt->inited) {
		if (rt->scratch) {
			long res = rcall2(rt, __NR_munmap, rt->scratch, rt->scratch_len);
			if (res < 0)
				r = pr_err_ret((int)res, "task %d: munmap(scratch)", rt->tid);
			rt->scratch = 0;
			rt->scratch_len = 0;
		}
		if (rt->stashed_sigs && (e = remote_resend(rt)) < 0 && !r)
			r = e;
		if (ptrace(PTRACE_SETREGS, rt->tid, 0, &rt->saved) < 0 && !r)
			r = errno == ESRCH ? -ESRCH
					   : pr_perror("task %d: restore registers", rt->tid);
		if (ptrace(PTRACE_SETSIGMASK, rt->tid, (void *)sizeof(uint64_t),
			   &rt->saved_sigmask) < 0 &&
		    !r)
			r = errno == ESRCH ? -ESRCH
					   : pr_perror("task %d: restore signal mask", rt->tid);
		rt->inited = false;
	}
	if (rt->memfd > 0)
		close(rt->memfd);
	rt->memfd = -1;
	return r;
}

void remote_forget(struct remote *rt)
{
	if (rt->memfd > 0)
		close(rt->memfd);
	rt->memfd = -1;
	rt->scratch = 0;
	rt->scratch_len = 0;
	rt->inited = false;
}
