/*
 * dump-core: the CPU and task state of one single-threaded process -> core-<pid>.img.
 *
 * Three phases, in this order (see dump.h):
 *  1. dump_thread_collect: ptrace reads from outside (registers exactly as the kernel
 *     reports them, including an interrupted syscall's rax = -ERESTART* / orig_rax = nr,
 *     which restore fixes up; xsave; the real blocked mask, read before remote_init blocks
 *     everything; signal queues; robust list; rseq).
 *  2. dump_core_remote: queries that only the task itself can answer, injected in the
 *     one remote session (brk, tid address, sigaltstack, sigactions, itimers, prctls).
 *  3. dump_core_write: assemble CoreEntry with /proc data and write it.
 * Nothing here changes the target: injected calls only read, into the scratch area.
 */
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <elf.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "engine/dump.h"
#include "img/img.h"

#ifndef PTRACE_GET_RSEQ_CONFIGURATION
#define PTRACE_GET_RSEQ_CONFIGURATION 0x420f
#endif
#ifndef PR_GET_TID_ADDRESS
#define PR_GET_TID_ADDRESS 40
#endif
#ifndef PR_GET_THP_DISABLE
#define PR_GET_THP_DISABLE 42
#endif
#define IOPRIO_WHO_PROCESS_ 1

#define SIGINFO_SIZE 128
#define XSAVE_BUF    (64u << 10) /* larger than any xstate (AMX is ~11 KiB) */
#define PEEK_BATCH   32

struct rseq_conf {
	uint64_t rseq_abi_pointer;
	uint32_t rseq_abi_size;
	uint32_t signature;
	uint32_t flags;
	uint32_t pad;
};

struct peek_args {
	uint64_t off;
	uint32_t flags;
	int32_t nr;
};

/* Append every queued siginfo of tid (thread queue, or the shared one) to *buf. */
static int peek_siginfo(pid_t tid, bool shared, uint8_t **buf, size_t *n)
{
	uint8_t batch[PEEK_BATCH * SIGINFO_SIZE];
	struct peek_args a = { .off = 0, .flags = shared ? 1 : 0, .nr = PEEK_BATCH };

	*buf = NULL;
	*n = 0;
	for (;;) {
		long r = ptrace(PTRACE_PEEKSIGINFO, tid, &a, batch);
		if (r < 0)
			return pr_perror("PTRACE_PEEKSIGINFO%s of %d", shared ? " (shared)" : "",
					 tid);
		if (r == 0)
			return 0;
		uint8_t *nb = realloc(*buf, (*n + r) * SIGINFO_SIZE);
		if (!nb)
			return -ENOMEM;
		*buf = nb;
		memcpy(nb + *n * SIGINFO_SIZE, batch, r * SIGINFO_SIZE);
		*n += r;
		a.off += r;
	}
}

static int collect_regs(pid_t tid, struct dump_thread *th)
{
	if (ptrace(PTRACE_GETREGS, tid, NULL, &th->regs) < 0)
		return pr_perror("PTRACE_GETREGS of %d", tid);
	th->xsave = malloc(XSAVE_BUF);
	if (!th->xsave)
		return -ENOMEM;
	struct iovec iov = { .iov_base = th->xsave, .iov_len = XSAVE_BUF };
	if (ptrace(PTRACE_GETREGSET, tid, (void *)NT_X86_XSTATE, &iov) < 0)
		return pr_perror("PTRACE_GETREGSET NT_X86_XSTATE of %d", tid);
	th->xsave_len = iov.iov_len;
	if (ptrace(PTRACE_GETSIGMASK, tid, (void *)sizeof(uint64_t), &th->sigmask) < 0)
		return pr_perror("PTRACE_GETSIGMASK of %d", tid);
	return 0;
}

/* Scheduling state of tid, all readable from outside (sched_*, getpriority, ioprio). */
static int collect_sched(pid_t tid, struct dump_thread *th)
{
	struct sched_param sp = { 0 };
	long n;
	int v;

	errno = 0;
	v = getpriority(PRIO_PROCESS, (id_t)tid);
	if (v == -1 && errno)
		return pr_perror("getpriority of thread %d", tid);
	th->nice = v;
	if ((v = sched_getscheduler(tid)) < 0 || sched_getparam(tid, &sp) < 0)
		return pr_perror("sched_getscheduler/param of thread %d", tid);
	th->sched_policy = v;
	th->sched_priority = sp.sched_priority;
	n = syscall(SYS_sched_getaffinity, tid, sizeof(th->affinity), th->affinity);
	if (n < 0)
		return pr_perror("sched_getaffinity of thread %d", tid);
	th->n_affinity = (size_t)n / sizeof(uint64_t);
	n = syscall(SYS_ioprio_get, IOPRIO_WHO_PROCESS_, tid);
	if (n < 0)
		return pr_perror("ioprio_get of thread %d", tid);
	th->ioprio = n;
	return 0;
}

/* Everything of one thread that ptrace and /proc show from outside. */
static int collect_one(pid_t pid, struct dump_thread *th)
{
	pid_t tid = th->tid;
	char path[64];
	size_t len;
	int r = collect_regs(tid, th);
	if (r == 0)
		r = peek_siginfo(tid, false, &th->pending, &th->n_pending);
	if (r == 0)
		r = collect_sched(tid, th);
	if (r < 0)
		return r;

	void *head = NULL;
	len = 0;
	if (syscall(SYS_get_robust_list, tid, &head, &len) < 0)
		return pr_perror("get_robust_list of %d", tid);
	th->robust_list = (uint64_t)(uintptr_t)head;
	th->robust_len = len;

	struct rseq_conf rc = { 0 };
	long n = ptrace(PTRACE_GET_RSEQ_CONFIGURATION, tid, (void *)sizeof(rc), &rc);
	if (n < 0)
		return pr_perror("PTRACE_GET_RSEQ_CONFIGURATION of %d", tid);
	th->rseq_ptr = rc.rseq_abi_pointer;
	th->rseq_size = rc.rseq_abi_size;
	th->rseq_sig = rc.signature;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/comm", pid, tid);
	if ((r = read_file(path, &th->comm, &len, 4096)) < 0)
		return pr_err_ret(r, "cannot read %s", path);
	while (len && th->comm[len - 1] == '\n')
		th->comm[--len] = 0;
	pr_debug("thread %d: rip %#llx orig_rax %lld rax %lld, xsave %zu bytes, %zu pending, rseq "
		 "%#llx",
		 tid, th->regs.rip, (long long)th->regs.orig_rax, (long long)th->regs.rax,
		 th->xsave_len, th->n_pending, (unsigned long long)th->rseq_ptr);
	return 0;
}

int dump_thread_collect(struct dump_ctx *c)
{
	c->th = calloc(c->sz.n_tids, sizeof(*c->th));
	if (!c->th)
		return -ENOMEM;
	c->n_th = c->sz.n_tids;
	for (size_t i = 0; i < c->n_th; i++) {
		c->th[i].tid = c->sz.tids[i];
		int r = collect_one(c->pid, &c->th[i]);
		if (r < 0)
			return r;
	}
	return 0;
}

void dump_threads_free(struct dump_ctx *c)
{
	for (size_t i = 0; c->th && i < c->n_th; i++) {
		free(c->th[i].xsave);
		free(c->th[i].pending);
		free(c->th[i].comm);
	}
	free(c->th);
	c->th = NULL;
	c->n_th = 0;
	free(c->rs.ptimers);
	c->rs.ptimers = NULL;
	c->rs.n_ptimers = 0;
}

/* Injected call whose result must not be an errno; name is for the error line. */
static int rcheck(long v, const char *name, pid_t pid)
{
	if (v < 0 && v >= -4095)
		return pr_err_ret((int)v, "injected %s in process %d failed", name, pid);
	return 0;
}

/* prctl(op, scratch) that stores an int at scratch. */
static int rprctl_int(struct dump_ctx *c, int op, uint64_t scratch, const char *name, uint32_t *out)
{
	int v = 0;
	int r = rcheck(rcall2(&c->rt, SYS_prctl, op, scratch), name, c->pid);
	if (r == 0)
		r = remote_read(&c->rt, scratch, &v, sizeof(v));
	if (r < 0)
		return r == -ESRCH ? r : pr_err_ret(r, "reading result of %s in %d", name, c->pid);
	*out = v;
	return 0;
}

static int remote_sigactions(struct dump_ctx *c, uint64_t scratch)
{
	struct dump_remote_state *rs = &c->rs;
	struct {
		uint64_t handler, flags, restorer, mask;
	} ka;
	/* Only signals whose handler is not SIG_DFL (SigCgt, SigIgn of status, read before
	 * any injection), and SIGCHLD, whose SA_NOCLDWAIT/SA_NOCLDSTOP act even with SIG_DFL:
	 * flags and mask of another SIG_DFL action have no effect. Saves ~60 injected calls. */
	uint64_t want = c->status.sig_cgt | c->status.sig_ign | (1ull << (SIGCHLD - 1));

	rs->n_sigact = 0;
	for (int sig = 1; sig <= 64; sig++) {
		if (sig == SIGKILL || sig == SIGSTOP || !(want & (1ull << (sig - 1))))
			continue;
		long v = rcall4(&c->rt, SYS_rt_sigaction, sig, 0, scratch, 8);
		if (v == -EINVAL && (sig == 32 || sig == 33))
			continue;
		int r = rcheck(v, "rt_sigaction", c->pid);
		if (r == 0)
			r = remote_read(&c->rt, scratch, &ka, sizeof(ka));
		if (r < 0)
			return r;
		if (ka.handler == (uint64_t)(uintptr_t)SIG_DFL && !ka.flags && !ka.mask)
			continue;
		rs->sigact[rs->n_sigact].sig = sig;
		rs->sigact[rs->n_sigact].handler = ka.handler;
		rs->sigact[rs->n_sigact].flags = ka.flags;
		rs->sigact[rs->n_sigact].restorer = ka.restorer;
		rs->sigact[rs->n_sigact].mask = ka.mask;
		rs->n_sigact++;
	}
	return 0;
}

static int remote_itimers(struct dump_ctx *c, uint64_t scratch)
{
	struct dump_remote_state *rs = &c->rs;

	for (int w = 0; w < 3; w++) {
		struct itimerval it;
		int r = rcheck(rcall2(&c->rt, SYS_getitimer, w, scratch), "getitimer", c->pid);
		if (r == 0)
			r = remote_read(&c->rt, scratch, &it, sizeof(it));
		if (r < 0)
			return r;
		rs->itimer[w].isec = it.it_interval.tv_sec;
		rs->itimer[w].iusec = it.it_interval.tv_usec;
		rs->itimer[w].vsec = it.it_value.tv_sec;
		rs->itimer[w].vusec = it.it_value.tv_usec;
	}
	return 0;
}

/* Per-thread values only the thread itself can report: tid address, sigaltstack,
 * timer slack. c->rt drives th->tid. */
static int remote_thread_state(struct dump_ctx *c, struct dump_thread *th, uint64_t scratch)
{
	stack_t ss;
	long v;
	int r;

	if ((r = rcheck(rcall2(&c->rt, SYS_prctl, PR_GET_TID_ADDRESS, scratch),
			"prctl(PR_GET_TID_ADDRESS)", th->tid)) < 0)
		return r;
	if ((r = remote_read(&c->rt, scratch, &th->clear_tid_addr, 8)) < 0)
		return pr_err_ret(r, "reading the tid address of %d", th->tid);
	r = rcheck(rcall2(&c->rt, SYS_sigaltstack, 0, scratch), "sigaltstack", th->tid);
	if (r == 0)
		r = remote_read(&c->rt, scratch, &ss, sizeof(ss));
	if (r < 0)
		return r;
	th->has_sas = !(ss.ss_flags & SS_DISABLE);
	th->sas_sp = (uint64_t)(uintptr_t)ss.ss_sp;
	th->sas_size = ss.ss_size;
	th->sas_flags = ss.ss_flags;
	v = rcall1(&c->rt, SYS_prctl, PR_GET_TIMERSLACK);
	if ((r = rcheck(v, "prctl(PR_GET_TIMERSLACK)", th->tid)) < 0)
		return r;
	th->timerslack_ns = (uint64_t)v;
	return 0;
}

/* prlimit from outside; a process that changed its uids refuses that to us (no
 * CAP_SYS_RESOURCE here: EPERM even for reading), so then ask it from inside. */
static int remote_rlimits(struct dump_ctx *c, uint64_t scratch)
{
	_Static_assert(RLIM_NLIMITS <= ARRAY_SIZE(c->rs.rlim), "rlim too small");
	for (int i = 0; i < RLIM_NLIMITS; i++) {
		struct rlimit old;
		int r = 0;
		if (prlimit(c->pid, i, NULL, &old) < 0) {
			if (errno != EPERM)
				return pr_perror("prlimit(%d, %d) failed", c->pid, i);
			r = rcheck(rcall4(&c->rt, SYS_prlimit64, 0, i, 0, scratch), "prlimit64",
				   c->pid);
			if (r == 0)
				r = remote_read(&c->rt, scratch, &old, sizeof(old));
		}
		if (r < 0)
			return r;
		c->rs.rlim[i].cur = old.rlim_cur;
		c->rs.rlim[i].max = old.rlim_max;
	}
	return 0;
}

/* The process-wide queries, in the leader's session. */
static int remote_process_state(struct dump_ctx *c, uint64_t scratch)
{
	struct dump_remote_state *rs = &c->rs;
	long v;
	int r;

	v = rcall1(&c->rt, SYS_brk, 0);
	if ((r = rcheck(v, "brk(0)", c->pid)) < 0)
		return r;
	rs->brk = (uint64_t)v;
	v = rcall1(&c->rt, SYS_prctl, PR_GET_SECUREBITS);
	if ((r = rcheck(v, "prctl(PR_GET_SECUREBITS)", c->pid)) < 0)
		return r;
	rs->secbits = v;
	v = rcall1(&c->rt, SYS_prctl, PR_GET_DUMPABLE);
	if ((r = rcheck(v, "prctl(PR_GET_DUMPABLE)", c->pid)) < 0)
		return r;
	rs->dumpable = v;
	v = rcall1(&c->rt, SYS_prctl, PR_GET_THP_DISABLE);
	if ((r = rcheck(v, "prctl(PR_GET_THP_DISABLE)", c->pid)) < 0)
		return r;
	rs->thp_disabled = v;
	if ((r = rprctl_int(c, PR_GET_PDEATHSIG, scratch, "prctl(PR_GET_PDEATHSIG)",
			    &rs->pdeath_sig)) < 0)
		return r;
	if ((r = rprctl_int(c, PR_GET_CHILD_SUBREAPER, scratch, "prctl(PR_GET_CHILD_SUBREAPER)",
			    &rs->child_subreaper)) < 0)
		return r;
	if ((r = remote_sigactions(c, scratch)) < 0)
		return r;
	if ((r = remote_rlimits(c, scratch)) < 0)
		return r;
	if ((r = remote_itimers(c, scratch)) < 0)
		return r;
	return dump_ptimers(c, scratch);
}

/* One remote session in thread i; the leader's (i == 0) also runs the process queries.
 * The session always ends here (remote_fini), also on error. */
static int thread_session(struct dump_ctx *c, size_t i, uint64_t *sc_ip)
{
	uint64_t scratch;
	int r = remote_init(&c->rt, c->th[i].tid, *sc_ip);
	if (r == 0) {
		*sc_ip = c->rt.sc_ip;
		r = remote_scratch(&c->rt, page_size, &scratch);
	}
	if (r == 0)
		r = remote_thread_state(c, &c->th[i], scratch);
	if (r == 0 && i == 0)
		r = remote_process_state(c, scratch);
	int f = remote_fini(&c->rt);
	memset(&c->rt, 0, sizeof(c->rt));
	return r < 0 ? r : f;
}

int dump_core_remote(struct dump_ctx *c)
{
	uint64_t sc_ip = 0;
	for (size_t i = 0; i < c->n_th; i++) {
		int r = thread_session(c, i, &sc_ip);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- assembling the CoreEntry ---------------------------------------------------- */

/* Read a one-line /proc file of pid without its newline into a malloc'd string. */
static int read_line(pid_t pid, const char *what, char **out)
{
	char path[64];
	size_t len;
	snprintf(path, sizeof(path), "/proc/%d/%s", pid, what);
	int r = read_file(path, out, &len, 4096);
	if (r < 0)
		return pr_err_ret(r, "cannot read %s", path);
	while (len && ((*out)[len - 1] == '\n'))
		(*out)[--len] = 0;
	return 0;
}

static int read_link(pid_t pid, const char *what, char **out)
{
	char path[64], buf[PATH_MAX];
	snprintf(path, sizeof(path), "/proc/%d/%s", pid, what);
	ssize_t n = readlink(path, buf, sizeof(buf) - 1);
	if (n < 0)
		return pr_perror("cannot read link %s", path);
	buf[n] = 0;
	*out = strdup(buf);
	return *out ? 0 : -ENOMEM;
}

/* Owned allocations of one process's CoreEntries, freed by core_bufs_free. */
struct core_bufs {
	char *comm, *pers, *cwd, *root;
	SiginfoEntry *si, **sip;
	SigactionEntry *sa, **sap;
	PosixTimerEntry *pt, **ptp;
	ItimerEntry it[3], *itp[3];
	RlimitEntry rl[RLIM_NLIMITS], *rlp[RLIM_NLIMITS];
};

static void core_bufs_free(struct core_bufs *b)
{
	free(b->comm);
	free(b->pers);
	free(b->cwd);
	free(b->root);
	free(b->si);
	free(b->sip);
	free(b->sa);
	free(b->sap);
	free(b->pt);
	free(b->ptp);
}

/* Fill n SiginfoEntry (pointing into raw) starting at index base of b->si. */
static void fill_siginfo(struct core_bufs *b, size_t base, const uint8_t *raw, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		siginfo_entry__init(&b->si[base + i]);
		b->si[base + i].siginfo.data = (uint8_t *)raw + i * SIGINFO_SIZE;
		b->si[base + i].siginfo.len = SIGINFO_SIZE;
		b->sip[base + i] = &b->si[base + i];
	}
}

static void fill_regs(const struct user_regs_struct *r, UserRegsEntry *g)
{
	user_regs_entry__init(g);
	g->r15 = r->r15;
	g->r14 = r->r14;
	g->r13 = r->r13;
	g->r12 = r->r12;
	g->rbp = r->rbp;
	g->rbx = r->rbx;
	g->r11 = r->r11;
	g->r10 = r->r10;
	g->r9 = r->r9;
	g->r8 = r->r8;
	g->rax = r->rax;
	g->rcx = r->rcx;
	g->rdx = r->rdx;
	g->rsi = r->rsi;
	g->rdi = r->rdi;
	g->orig_rax = r->orig_rax;
	g->rip = r->rip;
	g->cs = r->cs;
	g->flags = r->eflags;
	g->sp = r->rsp;
	g->ss = r->ss;
	g->fs_base = r->fs_base;
	g->gs_base = r->gs_base;
	g->ds = r->ds;
	g->es = r->es;
	g->fs = r->fs;
	g->gs = r->gs;
}

/* ThreadCoreEntry of th; its pending signals are the n SiginfoEntry pointers at sip. */
static void fill_thread(struct dump_thread *th, ThreadCoreEntry *t, UserRegsEntry *g,
			SigaltstackEntry *sas, SiginfoEntry **sip)
{
	fill_regs(&th->regs, g);
	thread_core_entry__init(t);
	t->tid = th->tid;
	t->regs = g;
	t->xsave.data = th->xsave;
	t->xsave.len = th->xsave_len;
	t->sigmask = th->sigmask;
	t->n_pending = th->n_pending;
	t->pending = sip;
	if (th->has_sas) {
		sigaltstack_entry__init(sas);
		sas->sp = th->sas_sp;
		sas->flags = th->sas_flags;
		sas->size = th->sas_size;
		t->sas = sas;
	}
	t->clear_tid_addr = th->clear_tid_addr;
	t->robust_list = th->robust_list;
	t->robust_list_len = th->robust_len;
	if (th->rseq_ptr) {
		t->has_rseq_abi_pointer = t->has_rseq_abi_size = t->has_rseq_signature = 1;
		t->rseq_abi_pointer = th->rseq_ptr;
		t->rseq_abi_size = th->rseq_size;
		t->rseq_signature = th->rseq_sig;
	}
	t->comm = th->comm;
	t->has_nice = t->has_sched_policy = t->has_sched_priority = 1;
	t->nice = th->nice;
	t->sched_policy = th->sched_policy;
	t->sched_priority = th->sched_priority;
	t->n_cpu_affinity = th->n_affinity;
	t->cpu_affinity = th->affinity;
	t->has_ioprio = t->has_timerslack_ns = 1;
	t->ioprio = th->ioprio;
	t->timerslack_ns = th->timerslack_ns;
}

static void fill_rlimits(struct dump_ctx *c, TaskCoreEntry *k, struct core_bufs *b)
{
	for (int i = 0; i < RLIM_NLIMITS; i++) {
		rlimit_entry__init(&b->rl[i]);
		b->rl[i].resource = i;
		b->rl[i].cur = c->rs.rlim[i].cur;
		b->rl[i].max = c->rs.rlim[i].max;
		b->rlp[i] = &b->rl[i];
	}
	k->n_rlimits = RLIM_NLIMITS;
	k->rlimits = b->rlp;
}

static void fill_ptimers(struct dump_ctx *c, TaskCoreEntry *k, struct core_bufs *b)
{
	for (size_t i = 0; i < c->rs.n_ptimers; i++) {
		const struct dump_ptimer *s = &c->rs.ptimers[i];
		PosixTimerEntry *e = &b->pt[i];
		posix_timer_entry__init(e);
		e->id = s->id;
		e->clock = s->clock;
		e->notify = s->notify;
		e->signo = s->signo;
		e->value = s->value;
		if (s->notify & 4 /* SIGEV_THREAD_ID */) {
			e->has_notify_tid = 1;
			e->notify_tid = s->notify_tid;
		}
		e->isec = s->isec;
		e->insec = s->insec;
		e->vsec = s->vsec;
		e->vnsec = s->vnsec;
		e->has_overrun = 1;
		e->overrun = s->overrun;
		b->ptp[i] = e;
	}
	k->n_posix_timers = c->rs.n_ptimers;
	k->posix_timers = b->ptp;
}

static void fill_sig_timers(struct dump_ctx *c, TaskCoreEntry *k, struct core_bufs *b)
{
	for (size_t i = 0; i < c->rs.n_sigact; i++) {
		SigactionEntry *s = &b->sa[i];
		sigaction_entry__init(s);
		s->sig = c->rs.sigact[i].sig;
		s->handler = c->rs.sigact[i].handler;
		s->flags = c->rs.sigact[i].flags;
		s->restorer = c->rs.sigact[i].restorer;
		s->mask = c->rs.sigact[i].mask;
		b->sap[i] = s;
	}
	k->n_sigactions = c->rs.n_sigact;
	k->sigactions = b->sap;
	for (int w = 0; w < 3; w++) {
		itimer_entry__init(&b->it[w]);
		b->it[w].which = w;
		b->it[w].isec = c->rs.itimer[w].isec;
		b->it[w].iusec = c->rs.itimer[w].iusec;
		b->it[w].vsec = c->rs.itimer[w].vsec;
		b->it[w].vusec = c->rs.itimer[w].vusec;
		b->itp[w] = &b->it[w];
	}
	k->n_itimers = 3;
	k->itimers = b->itp;
	fill_ptimers(c, k, b);
}

static void fill_creds(struct dump_ctx *c, CredsEntry *cr)
{
	const struct proc_status *s = &c->status;
	creds_entry__init(cr);
	cr->uid = s->uid[0];
	cr->euid = s->uid[1];
	cr->suid = s->uid[2];
	cr->fsuid = s->uid[3];
	cr->gid = s->gid[0];
	cr->egid = s->gid[1];
	cr->sgid = s->gid[2];
	cr->fsgid = s->gid[3];
	cr->n_groups = s->ngroups;
	cr->groups = (uint32_t *)s->groups;
	cr->cap_inh = s->cap_inh;
	cr->cap_prm = s->cap_prm;
	cr->cap_eff = s->cap_eff;
	cr->cap_bnd = s->cap_bnd;
	cr->cap_amb = s->cap_amb;
	cr->secbits = c->rs.secbits;
	cr->no_new_privs = s->no_new_privs;
}

static int fill_task(struct dump_ctx *c, TaskCoreEntry *k, CredsEntry *cr, struct core_bufs *b)
{
	uint64_t pers;
	int r;

	if ((r = read_line(c->pid, "comm", &b->comm)) < 0 ||
	    (r = read_line(c->pid, "personality", &b->pers)) < 0 ||
	    (r = read_link(c->pid, "cwd", &b->cwd)) < 0 ||
	    (r = read_link(c->pid, "root", &b->root)) < 0)
		return r;
	if (parse_u64(b->pers, 16, &pers) < 0 || pers > UINT32_MAX)
		return pr_err_ret(-EINVAL, "bad /proc/%d/personality '%s'", c->pid, b->pers);

	task_core_entry__init(k);
	k->comm = b->comm;
	k->personality = pers;
	k->umask = c->status.umask;
	k->cwd = b->cwd;
	k->root = b->root;
	fill_sig_timers(c, k, b);
	fill_rlimits(c, k, b);
	fill_creds(c, cr);
	k->creds = cr;
	k->dumpable = c->rs.dumpable;
	k->has_pdeath_sig = k->has_child_subreaper = k->has_exit_signal = k->has_thp_disabled = 1;
	k->pdeath_sig = c->rs.pdeath_sig;
	k->child_subreaper = c->rs.child_subreaper;
	k->exit_signal = c->st.exit_signal;
	k->thp_disabled = c->rs.thp_disabled;
	return 0;
}

static int write_core(struct dump_ctx *c, pid_t tid, CoreEntry *ce)
{
	char name[64];
	struct img_writer *w;
	int r = img_writer_open(c->d, img_name(name, "core-%d.img", tid), IMG_MAGIC_CORE, &w);
	if (r < 0)
		return r;
	r = img_write_pb(w, &ce->base);
	if (r < 0) {
		img_writer_abort(w);
		return r;
	}
	return img_writer_close(w);
}

/* Allocate the arrays of b: nsi siginfo entries, sigactions, POSIX timers. */
static int core_bufs_alloc(struct dump_ctx *c, struct core_bufs *b, size_t nsi)
{
	b->si = calloc(nsi + 1, sizeof(*b->si));
	b->sip = calloc(nsi + 1, sizeof(*b->sip));
	b->sa = calloc(c->rs.n_sigact + 1, sizeof(*b->sa));
	b->sap = calloc(c->rs.n_sigact + 1, sizeof(*b->sap));
	b->pt = calloc(c->rs.n_ptimers + 1, sizeof(*b->pt));
	b->ptp = calloc(c->rs.n_ptimers + 1, sizeof(*b->ptp));
	return (b->si && b->sip && b->sa && b->sap && b->pt && b->ptp) ? 0 : -ENOMEM;
}

int dump_core_write(struct dump_ctx *c)
{
	struct core_bufs b = { 0 };
	uint8_t *shared = NULL;
	size_t n_shared = 0, nsi = 0, base;
	ThreadCoreEntry t;
	UserRegsEntry g;
	SigaltstackEntry sas;
	TaskCoreEntry k;
	CredsEntry cr;
	CoreEntry ce;

	int r = peek_siginfo(c->pid, true, &shared, &n_shared);
	if (r < 0)
		goto out;
	for (size_t i = 0; i < c->n_th; i++)
		nsi += c->th[i].n_pending;
	if ((r = core_bufs_alloc(c, &b, nsi + n_shared)) < 0)
		goto out;
	fill_siginfo(&b, 0, shared, n_shared);
	if ((r = fill_task(c, &k, &cr, &b)) < 0)
		goto out;
	k.n_shared_pending = n_shared;
	k.shared_pending = b.sip;
	base = n_shared;
	for (size_t i = 0; r == 0 && i < c->n_th; i++) {
		struct dump_thread *th = &c->th[i];
		fill_siginfo(&b, base, th->pending, th->n_pending);
		fill_thread(th, &t, &g, &sas, b.sip + base);
		base += th->n_pending;
		core_entry__init(&ce);
		ce.thread = &t;
		ce.task = i == 0 ? &k : NULL;
		r = write_core(c, th->tid, &ce);
	}
	if (r == 0)
		pr_debug("core of %d: %zu threads, %zu sigactions, %zu+%zu pending signals, %zu "
			 "POSIX timers",
			 c->pid, c->n_th, c->rs.n_sigact, nsi, n_shared, c->rs.n_ptimers);
out:
	free(shared);
	core_bufs_free(&b);
	return r;
}
