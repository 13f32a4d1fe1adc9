/*
 * rst-core: the task and thread state of the restored process, set by remote syscalls
 * in the stub (signals, timers, names, futex/rseq registrations, prctls, credentials)
 * or by ptrace from outside (rlimits, registers, xstate, signal mask).
 *
 * Invariants: rst_core_validate() runs before the stub exists and bounds every value
 * used here; signals stay blocked (remote_init) until rst_regs() sets the dumped mask,
 * so queued pending signals are delivered only once the task resumes; credentials
 * change last, after everything that needs our privileges over the task.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <fcntl.h>
#include <unistd.h>
#include <linux/prctl.h>
#include <linux/capability.h>
#include <linux/securebits.h>

#include "common/log.h"
#include "common/util.h"
#include "engine/restore.h"
#include "engine/rst-tree.h"

#define NT_X86_XSTATE_		       0x202
#define PTRACE_GET_RSEQ_CONFIGURATION_ 0x420f
#define PTRACE_SETSIGMASK_	       0x420b
#define RSEQ_FLAG_UNREGISTER_	       1
#define ERESTARTSYS_		       512
#define ERESTARTNOINTR_		       513
#define ERESTARTNOHAND_		       514
#define ERESTART_RESTARTBLOCK_	       516
#define MAX_PENDING		       4096
#define SCHED_DEADLINE_		       6
#define MAX_TIMERS		       4096
#define CLOCK_TAI_		       11
#define PR_TIMER_CREATE_RESTORE_IDS_   77
#define IOPRIO_WHO_PROCESS_	       1
#ifndef SS_AUTODISARM
#define SS_AUTODISARM (1U << 31)
#endif
#define XSTATE_MAX (64u << 10)

struct kernel_sigaction_ {
	uint64_t handler, flags, restorer, mask;
};

struct rseq_conf_ {
	uint64_t ptr;
	uint32_t size, sig, flags, pad;
};

static int siginfo_check(const SiginfoEntry *s)
{
	int signo;
	if (s->siginfo.len != 128)
		return -EINVAL;
	memcpy(&signo, s->siginfo.data, sizeof(signo));
	return signo >= 1 && signo <= 64 ? signo : -EINVAL;
}

static int sched_validate(const ThreadCoreEntry *t)
{
	uint32_t pol = t->sched_policy & ~(uint32_t)SCHED_RESET_ON_FORK;
	bool rt = pol == SCHED_FIFO || pol == SCHED_RR;

	if (t->has_nice && (t->nice < -20 || t->nice > 19))
		return pr_err_ret(-EINVAL, "core image: nice %d", t->nice);
	if (t->has_sched_policy && pol == SCHED_DEADLINE_)
		return pr_err_ret(-EOPNOTSUPP, "SCHED_DEADLINE tasks cannot be restored yet");
	if (t->has_sched_policy &&
	    ((pol != SCHED_OTHER && pol != SCHED_BATCH && pol != SCHED_IDLE && !rt) ||
	     (rt ? t->sched_priority < 1 || t->sched_priority > 99 : t->sched_priority != 0)))
		return pr_err_ret(-EINVAL, "core image: sched policy %#x priority %u",
				  t->sched_policy, t->sched_priority);
	if (t->n_cpu_affinity > 128 || (t->has_ioprio && t->ioprio > 0xffff) ||
	    (t->has_timerslack_ns && t->timerslack_ns > (1ULL << 40)))
		return pr_err_ret(-EINVAL, "core image: bad affinity, ioprio or timer slack");
	return 0;
}

int rst_thread_validate(const ThreadCoreEntry *t, pid_t pid)
{
	const UserRegsEntry *g = t->regs;
	if (t->tid != (uint32_t)pid)
		return pr_err_ret(-EINVAL, "core image: tid %u, expected %d", t->tid, pid);
	if (g->cs != 0x33 || g->ss != 0x2b || g->rip >= RST_TASK_SIZE || g->sp >= RST_TASK_SIZE ||
	    g->fs_base >= RST_TASK_SIZE || g->gs_base >= RST_TASK_SIZE)
		return pr_err_ret(-EINVAL,
				  "core image: registers are not a 64-bit user state "
				  "(cs %#llx ss %#llx rip %#llx)",
				  (unsigned long long)g->cs, (unsigned long long)g->ss,
				  (unsigned long long)g->rip);
	if (t->xsave.len < 576 || t->xsave.len > XSTATE_MAX)
		return pr_err_ret(-EINVAL, "core image: xsave area of %zu bytes", t->xsave.len);
	if (t->n_pending > MAX_PENDING)
		return pr_err_ret(-EINVAL, "core image: %zu pending signals", t->n_pending);
	for (size_t i = 0; i < t->n_pending; i++)
		if (siginfo_check(t->pending[i]) < 0)
			return pr_err_ret(-EINVAL, "core image: pending siginfo %zu is invalid", i);
	if (t->sas && ((t->sas->flags & ~(uint32_t)(SS_ONSTACK | SS_DISABLE | SS_AUTODISARM)) ||
		       t->sas->sp >= RST_TASK_SIZE || t->sas->size > RST_TASK_SIZE))
		return pr_err_ret(-EINVAL, "core image: bad sigaltstack");
	if (t->clear_tid_addr >= RST_TASK_SIZE || t->robust_list >= RST_TASK_SIZE ||
	    (t->robust_list && t->robust_list_len != 24))
		return pr_err_ret(-EINVAL, "core image: bad clear-tid or robust-list address");
	if (t->has_rseq_abi_pointer && t->rseq_abi_pointer &&
	    (t->rseq_abi_pointer >= RST_TASK_SIZE || t->rseq_abi_size < 32 ||
	     t->rseq_abi_size > 1024))
		return pr_err_ret(-EINVAL, "core image: bad rseq registration");
	return sched_validate(t);
}

static int creds_validate(const CredsEntry *c)
{
	if (c->n_groups > 65536 || c->secbits & ~0xffu || c->no_new_privs > 1)
		return pr_err_ret(-EINVAL, "core image: bad credentials");
	return 0;
}

/* Index of tid among the process's threads (pstree order), or -1. */
static ssize_t thread_index(const struct rst *r, uint32_t tid)
{
	for (size_t k = 0; k < r->pst->n_threads; k++)
		if (r->pst->threads[k] == tid)
			return (ssize_t)k;
	return -1;
}

static int posix_timers_validate(const struct rst *r)
{
	const TaskCoreEntry *t = r->core->task;
	if (t->n_posix_timers > MAX_TIMERS)
		return pr_err_ret(-EINVAL, "core image: %zu POSIX timers", t->n_posix_timers);
	for (size_t i = 0; i < t->n_posix_timers; i++) {
		const PosixTimerEntry *p = t->posix_timers[i];
		uint32_t how = p->notify & ~(uint32_t)SIGEV_THREAD_ID;
		if (p->id > INT32_MAX || p->clock > CLOCK_TAI_ || p->insec >= 1000000000 ||
		    p->vnsec >= 1000000000 || p->isec > (1ULL << 40) || p->vsec > (1ULL << 40) ||
		    (how != SIGEV_SIGNAL && how != SIGEV_NONE) ||
		    (p->notify != SIGEV_NONE && (p->signo < 1 || p->signo > 64)) ||
		    ((p->notify & SIGEV_THREAD_ID) && thread_index(r, p->notify_tid) < 0))
			return pr_err_ret(-EINVAL, "core image: POSIX timer %zu (id %u) is invalid",
					  i, p->id);
		for (size_t j = 0; j < i; j++)
			if (t->posix_timers[j]->id == p->id)
				return pr_err_ret(-EINVAL, "core image: POSIX timer id %u twice",
						  p->id);
	}
	return 0;
}

static bool cap_sys_resource(void)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];
	return syscall(SYS_capget, &h, d) == 0 && (d[0].effective & (1u << CAP_SYS_RESOURCE));
}

static int task_validate(const TaskCoreEntry *t)
{
	uint64_t seen = 0;
	if (t->umask & ~0777u || !t->cwd || t->cwd[0] != '/' || !t->root || t->root[0] != '/' ||
	    strlen(t->cwd) >= 4096 || strlen(t->root) >= 4096)
		return pr_err_ret(-EINVAL, "core image: bad umask, cwd or root");
	for (size_t i = 0; i < t->n_sigactions; i++) {
		uint32_t s = t->sigactions[i]->sig;
		if (s < 1 || s > 64 || s == SIGKILL || s == SIGSTOP || (seen & (1ULL << (s - 1))))
			return pr_err_ret(-EINVAL, "core image: bad sigaction for signal %u", s);
		seen |= 1ULL << (s - 1);
	}
	for (size_t i = 0; i < t->n_itimers; i++) {
		const ItimerEntry *it = t->itimers[i];
		if (it->which > ITIMER_PROF || it->iusec >= 1000000 || it->vusec >= 1000000 ||
		    it->isec > (1ULL << 40) || it->vsec > (1ULL << 40))
			return pr_err_ret(-EINVAL, "core image: bad itimer %zu", i);
	}
	for (size_t i = 0; i < t->n_rlimits; i++) {
		const RlimitEntry *l = t->rlimits[i];
		struct rlimit ours;
		if (l->resource >= RLIM_NLIMITS || l->cur > l->max)
			return pr_err_ret(-EINVAL, "core image: bad rlimit %u", l->resource);
		/* raising a hard limit needs CAP_SYS_RESOURCE, which we lack: say so now */
		if (getrlimit((__rlimit_resource_t)l->resource, &ours) == 0 &&
		    l->max > ours.rlim_max && !cap_sys_resource())
			return pr_err_ret(-EPERM,
					  "rlimit %u: hard limit %llu is above ours (%llu) and "
					  "cannot be raised without CAP_SYS_RESOURCE",
					  l->resource, (unsigned long long)l->max,
					  (unsigned long long)ours.rlim_max);
	}
	if (t->n_shared_pending > MAX_PENDING)
		return pr_err_ret(-EINVAL, "core image: %zu pending signals", t->n_shared_pending);
	for (size_t i = 0; i < t->n_shared_pending; i++)
		if (siginfo_check(t->shared_pending[i]) < 0)
			return pr_err_ret(-EINVAL, "core image: shared siginfo %zu is invalid", i);
	if (t->dumpable > 2 || t->pdeath_sig > 64 || t->child_subreaper > 1 || t->thp_disabled > 1)
		return pr_err_ret(-EINVAL, "core image: bad prctl values");
	return creds_validate(t->creds);
}

static int mm_fields_validate(const MmEntry *mm)
{
	const uint64_t v[] = { mm->start_code,	mm->end_code,  mm->start_data, mm->end_data,
			       mm->start_stack, mm->start_brk, mm->brk,	       mm->arg_start,
			       mm->arg_end,	mm->env_start, mm->env_end };
	for (size_t i = 0; i < ARRAY_SIZE(v); i++)
		if (v[i] >= RST_TASK_SIZE || v[i] < RST_PAGE)
			return pr_err_ret(-EINVAL, "mm image: field %zu (%#llx) out of range", i,
					  (unsigned long long)v[i]);
	if (mm->start_code >= mm->end_code || mm->start_data > mm->end_data ||
	    mm->start_brk > mm->brk || mm->arg_start > mm->arg_end || mm->env_start > mm->env_end)
		return pr_err_ret(-EINVAL, "mm image: code/data/brk/arg/env bounds are unordered");
	if (mm->n_auxv < 2 || mm->n_auxv % 2 || mm->n_auxv > RST_MAX_AUXV ||
	    mm->auxv[mm->n_auxv - 2] != 0)
		return pr_err_ret(-EINVAL, "mm image: bad auxv (%zu words)", mm->n_auxv);
	if (!mm->exe_path || mm->exe_path[0] != '/' || strlen(mm->exe_path) >= RST_SCRATCH_LEN / 2)
		return pr_err_ret(-EINVAL, "mm image: bad exe path");
	return 0;
}

int rst_core_validate(struct rst *r)
{
	int e;
	if (!r->core->thread || !r->core->task)
		return pr_err_ret(-EINVAL, "core image of %d lacks thread or task state", r->pid);
	if ((e = mm_fields_validate(r->mm)) < 0 ||
	    (e = rst_thread_validate(r->core->thread, r->pid)) < 0 ||
	    (e = posix_timers_validate(r)) < 0)
		return e;
	return task_validate(r->core->task);
}

int rst_rseq_unregister(struct rst *r, struct rst_batch *b)
{
	struct rseq_conf_ c = { 0 };
	if (ptrace(PTRACE_GET_RSEQ_CONFIGURATION_, r->pid, sizeof(c), &c) < 0)
		return pr_perror("PTRACE_GET_RSEQ_CONFIGURATION on %d", r->pid);
	if (!c.ptr)
		return 0;
	int i = rst_batch_add(b, "rseq unregister", __NR_rseq, c.ptr, c.size, RSEQ_FLAG_UNREGISTER_,
			      c.sig, 0, 0);
	return i < 0 ? i : 0;
}

/* Queue a call whose argument arg (1..6) points to a copy of len bytes of p. */
static int add_with(struct rst_batch *b, const char *what, long nr, int arg, const void *p,
		    size_t len, unsigned long a1, unsigned long a2, unsigned long a3,
		    unsigned long a4)
{
	unsigned long a[7] = { 0, a1, a2, a3, a4, 0, 0 };
	int e = rst_batch_room(b, 1, len);
	uint64_t addr = e < 0 ? 0 : rst_batch_put(b, p, len);
	if (!addr)
		return e < 0 ? e : -EFAULT;
	a[arg] = addr;
	return rst_batch_add(b, what, nr, a[1], a[2], a[3], a[4], a[5], a[6]);
}

/* The stub reset every action to SIG_DFL with no flags or mask: only others are set. */
static int sigactions_set(struct rst *r, struct rst_batch *b)
{
	const TaskCoreEntry *t = r->core->task;
	for (size_t i = 0; i < t->n_sigactions; i++) {
		const SigactionEntry *s = t->sigactions[i];
		struct kernel_sigaction_ ka = { s->handler, s->flags, s->restorer, s->mask };
		if (!ka.handler && !ka.flags && !ka.restorer && !ka.mask)
			continue;
		int k = add_with(b, "rt_sigaction", __NR_rt_sigaction, 2, &ka, sizeof(ka), s->sig,
				 0, 0, 8);
		if (k < 0)
			return k;
		rst_batch_whatf(b, k, "restoring the action of signal %u", s->sig);
	}
	return 0;
}

static int timers_set(struct rst *r, struct rst_batch *b)
{
	const TaskCoreEntry *t = r->core->task;
	for (size_t i = 0; i < t->n_itimers; i++) {
		const ItimerEntry *it = t->itimers[i];
		struct itimerval v = {
			.it_interval = { (time_t)it->isec, (suseconds_t)it->iusec },
			.it_value = { (time_t)it->vsec, (suseconds_t)it->vusec },
		};
		if (!it->vsec && !it->vusec)
			continue;
		int k = add_with(b, "setitimer", __NR_setitimer, 2, &v, sizeof(v), it->which, 0, 0,
				 0);
		if (k < 0)
			return k;
		rst_batch_whatf(b, k, "restoring itimer %u", it->which);
	}
	return 0;
}

struct ksigevent_ {
	uint64_t value;
	int32_t signo, notify, tid, pad[11];
};

static int posix_timer_create(struct rst *r, struct rst_batch *b, const PosixTimerEntry *p)
{
	struct ksigevent_ se = { .value = p->value,
				 .signo = (int32_t)p->signo,
				 .notify = (int32_t)p->notify };
	int32_t id = (int32_t)p->id;
	int e = rst_batch_room(b, 1, sizeof(se) + sizeof(id)), k;
	if (e < 0)
		return e;
	if (p->notify & SIGEV_THREAD_ID) /* the target as the task names it */
		se.tid = rst_tree_inner_tid(r, (size_t)thread_index(r, p->notify_tid));
	uint64_t a = rst_batch_put(b, &se, sizeof(se)), ia = rst_batch_put(b, &id, sizeof(id));
	if (!a || !ia)
		return -EFAULT;
	if ((k = rst_batch_add(b, "timer_create", __NR_timer_create, p->clock, a, ia, 0, 0, 0)) < 0)
		return k;
	rst_batch_whatf(b, k, "recreating POSIX timer %u", p->id);
	return 0;
}

int rst_posix_timers(struct rst *r, struct rst_batch *b)
{
	const TaskCoreEntry *t = r->core->task;
	int k;

	if (!t->n_posix_timers)
		return 0;
	if ((k = rst_batch_add(b, "PR_TIMER_CREATE_RESTORE_IDS", __NR_prctl,
			       PR_TIMER_CREATE_RESTORE_IDS_, 1, 0, 0, 0, 0)) < 0)
		return k;
	for (size_t i = 0; i < t->n_posix_timers && k >= 0; i++)
		k = posix_timer_create(r, b, t->posix_timers[i]);
	if (k < 0 || (k = rst_batch_add(b, "PR_TIMER_CREATE_RESTORE_IDS", __NR_prctl,
					PR_TIMER_CREATE_RESTORE_IDS_, 0, 0, 0, 0, 0)) < 0)
		return k;
	rst_batch_ignore(b, k);
	for (size_t i = 0; i < t->n_posix_timers; i++) {
		const PosixTimerEntry *p = t->posix_timers[i];
		struct timespec its[2] = { { (time_t)p->isec, (long)p->insec },
					   { (time_t)p->vsec, (long)p->vnsec } };
		if (!p->vsec && !p->vnsec)
			continue;
		k = add_with(b, "timer_settime", __NR_timer_settime, 3, its, sizeof(its), p->id, 0,
			     0, 0);
		if (k < 0)
			return k;
		rst_batch_whatf(b, k, "arming POSIX timer %u", p->id);
	}
	return 0;
}

int rst_thread_state(struct rst *r, struct rst_batch *b, const ThreadCoreEntry *th)
{
	const char *comm = th->comm ? th->comm : r->core->task->comm;
	char name[16] = { 0 };
	int k = 0;

	if (th->sas && !(th->sas->flags & SS_DISABLE)) {
		stack_t ss = { .ss_sp = (void *)th->sas->sp,
			       .ss_flags = (int)(th->sas->flags & SS_AUTODISARM),
			       .ss_size = th->sas->size };
		if ((k = add_with(b, "sigaltstack", __NR_sigaltstack, 1, &ss, sizeof(ss), 0, 0, 0,
				  0)) < 0)
			return k;
	}
	strncpy(name, comm ? comm : "", sizeof(name) - 1);
	if ((k = add_with(b, "prctl(PR_SET_NAME)", __NR_prctl, 2, name, sizeof(name), PR_SET_NAME,
			  0, 0, 0)) < 0)
		return k;
	if (th->robust_list &&
	    (k = rst_batch_add(b, "set_robust_list", __NR_set_robust_list, th->robust_list,
			       th->robust_list_len, 0, 0, 0, 0)) < 0)
		return k;
	/* a stub has no clear-tid address (clone3 without CLONE_CHILD_CLEARTID) */
	if (th->clear_tid_addr && (k = rst_batch_add(b, "set_tid_address", __NR_set_tid_address,
						     th->clear_tid_addr, 0, 0, 0, 0, 0)) < 0)
		return k;
	if (th->has_rseq_abi_pointer && th->rseq_abi_pointer &&
	    (k = rst_batch_add(b, "rseq", __NR_rseq, th->rseq_abi_pointer, th->rseq_abi_size, 0,
			       th->rseq_signature, 0, 0)) < 0)
		return k;
	return 0;
}

static int prctls_set(struct rst *r, struct rst_batch *b)
{
	const TaskCoreEntry *t = r->core->task;
	int k = 0;
	if (t->has_pdeath_sig && t->pdeath_sig &&
	    (k = rst_batch_add(b, "PR_SET_PDEATHSIG", __NR_prctl, PR_SET_PDEATHSIG, t->pdeath_sig,
			       0, 0, 0, 0)) < 0)
		return k;
	if (t->has_child_subreaper && t->child_subreaper &&
	    (k = rst_batch_add(b, "PR_SET_CHILD_SUBREAPER", __NR_prctl, PR_SET_CHILD_SUBREAPER, 1,
			       0, 0, 0, 0)) < 0)
		return k;
	if (t->has_thp_disabled && t->thp_disabled &&
	    (k = rst_batch_add(b, "PR_SET_THP_DISABLE", __NR_prctl, PR_SET_THP_DISABLE, 1, 0, 0, 0,
			       0)) < 0)
		return k;
	return 0;
}

/* Queue the saved siginfos: from inside the task, so kernel si_codes are accepted. */
static int pending_queue(struct rst *r, struct rst_batch *b, SiginfoEntry **si, size_t n, pid_t tid)
{
	for (size_t i = 0; i < n; i++) {
		int sig = siginfo_check(si[i]), k;
		k = tid ? add_with(b, "rt_tgsigqueueinfo", __NR_rt_tgsigqueueinfo, 4,
				   si[i]->siginfo.data, 128, (unsigned long)r->npid,
				   (unsigned long)tid, (unsigned long)sig, 0)
			: add_with(b, "rt_sigqueueinfo", __NR_rt_sigqueueinfo, 3,
				   si[i]->siginfo.data, 128, (unsigned long)r->npid,
				   (unsigned long)sig, 0, 0);
		if (k < 0)
			return k;
		rst_batch_whatf(b, k, "queueing pending signal %d", sig);
	}
	return 0;
}

int rst_task_state(struct rst *r, struct rst_batch *b)
{
	const TaskCoreEntry *t = r->core->task;
	const ThreadCoreEntry *th = r->core->thread;
	int e;
	if ((e = sigactions_set(r, b)) < 0 || (e = timers_set(r, b)) < 0 ||
	    (e = rst_thread_state(r, b, th)) < 0 || (e = prctls_set(r, b)) < 0)
		return e;
	if ((e = rst_thread_pending(r, b, r->npid, th)) < 0)
		return e;
	return pending_queue(r, b, t->shared_pending, t->n_shared_pending, 0);
}

int rst_thread_pending(struct rst *r, struct rst_batch *b, pid_t tid, const ThreadCoreEntry *th)
{
	return pending_queue(r, b, th->pending, th->n_pending, tid);
}

int rst_rlimits(struct rst *r)
{
	const TaskCoreEntry *t = r->core->task;
	for (size_t i = 0; i < t->n_rlimits; i++) {
		const RlimitEntry *l = t->rlimits[i];
		struct rlimit v = { .rlim_cur = l->cur, .rlim_max = l->max };
		if (prlimit(r->pid, (__rlimit_resource_t)l->resource, &v, NULL) < 0)
			return pr_perror("cannot set rlimit %u to %llu/%llu", l->resource,
					 (unsigned long long)l->cur, (unsigned long long)l->max);
	}
	return 0;
}

int rst_sched(struct rst *r, struct rst_batch *b)
{
	return rst_thread_sched(r, b, r->pid, r->core->thread);
}

/* Scheduling state, from outside (we have CAP_SYS_NICE) except the timer slack. */
int rst_thread_sched(struct rst *r, struct rst_batch *b, pid_t tid, const ThreadCoreEntry *t)
{
	if (t->has_sched_policy) {
		struct sched_param sp = { .sched_priority = (int)t->sched_priority };
		if (sched_setscheduler(tid, (int)t->sched_policy, &sp) < 0)
			return pr_perror("cannot set scheduling policy %#x/%u", t->sched_policy,
					 t->sched_priority);
	}
	if (t->has_nice && setpriority(PRIO_PROCESS, (id_t)tid, t->nice) < 0)
		return pr_perror("cannot set nice %d", t->nice);
	if (t->n_cpu_affinity) {
		size_t sz = t->n_cpu_affinity * sizeof(uint64_t);
		/* another machine may lack those CPUs: not a reason to fail a migration */
		if (syscall(SYS_sched_setaffinity, tid, sz, t->cpu_affinity) < 0)
			pr_warn("cannot restore the CPU affinity of %d: %s", tid, strerror(errno));
	}
	if (t->has_ioprio && syscall(SYS_ioprio_set, IOPRIO_WHO_PROCESS_, tid, t->ioprio) < 0)
		return pr_perror("cannot set ioprio %#x", t->ioprio);
	int k = 0;
	(void)r;
	if (t->has_timerslack_ns &&
	    (k = rst_batch_add(b, "PR_SET_TIMERSLACK", __NR_prctl, PR_SET_TIMERSLACK,
			       t->timerslack_ns, 0, 0, 0, 0)) < 0)
		return k;
	return 0;
}

/* ---- credentials ----------------------------------------------------------------- */

static bool creds_same_as_ours(const CredsEntry *c)
{
	uid_t u[3];
	gid_t g[3];
	gid_t groups[256];
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];
	int n = getgroups(ARRAY_SIZE(groups), groups);

	getresuid(&u[0], &u[1], &u[2]);
	getresgid(&g[0], &g[1], &g[2]);
	if (n < 0 || (size_t)n != c->n_groups || syscall(SYS_capget, &h, d) < 0)
		return false;
	for (int i = 0; i < n; i++)
		if (groups[i] != c->groups[i])
			return false;
	return u[0] == c->uid && u[1] == c->euid && u[2] == c->suid && c->fsuid == c->euid &&
	       g[0] == c->gid && g[1] == c->egid && g[2] == c->sgid && c->fsgid == c->egid &&
	       (d[0].effective | (uint64_t)d[1].effective << 32) == c->cap_eff &&
	       (d[0].permitted | (uint64_t)d[1].permitted << 32) == c->cap_prm &&
	       (d[0].inheritable | (uint64_t)d[1].inheritable << 32) == c->cap_inh &&
	       (uint32_t)prctl(PR_GET_SECUREBITS) == c->secbits;
}

#define RC(what, nr, ...)                                                                          \
	do {                                                                                       \
		int k_ = rst_batch_add(b, what, nr, __VA_ARGS__);                                  \
		if (k_ < 0)                                                                        \
			return k_;                                                                 \
	} while (0)

static int creds_ids(struct rst_batch *b, const CredsEntry *c)
{
	uint64_t a = 0;
	int k;
	if (c->n_groups) {
		gid_t *gl = calloc(c->n_groups, sizeof(gid_t));
		size_t len = c->n_groups * sizeof(gid_t);
		int e = 0;
		if (!gl)
			return -ENOMEM;
		for (size_t i = 0; i < c->n_groups; i++)
			gl[i] = c->groups[i];
		if (len <= RST_SCRATCH_LEN && (e = rst_batch_room(b, 1, len)) == 0)
			a = rst_batch_put(b, gl, len);
		free(gl);
		if (e < 0)
			return e;
		if (!a)
			return pr_err_ret(-E2BIG, "too many supplementary groups (%zu)",
					  c->n_groups);
	}
	RC("setgroups", __NR_setgroups, c->n_groups, a, 0, 0, 0, 0);
	RC("setresgid", __NR_setresgid, c->gid, c->egid, c->sgid, 0, 0, 0);
	if ((k = rst_batch_add(b, "setfsgid", __NR_setfsgid, c->fsgid, 0, 0, 0, 0, 0)) < 0)
		return k;
	rst_batch_ignore(b, k); /* returns the previous fsgid */
	RC("setresuid", __NR_setresuid, c->uid, c->euid, c->suid, 0, 0, 0);
	if ((k = rst_batch_add(b, "setfsuid", __NR_setfsuid, c->fsuid, 0, 0, 0, 0, 0)) < 0)
		return k;
	rst_batch_ignore(b, k);
	return 0;
}

static int creds_caps(struct rst_batch *b, const CredsEntry *c)
{
	struct {
		struct __user_cap_header_struct h;
		struct __user_cap_data_struct d[2];
	} cap = { { _LINUX_CAPABILITY_VERSION_3, 0 },
		  { { (uint32_t)c->cap_eff, (uint32_t)c->cap_prm, (uint32_t)c->cap_inh },
		    { (uint32_t)(c->cap_eff >> 32), (uint32_t)(c->cap_prm >> 32),
		      (uint32_t)(c->cap_inh >> 32) } } };
	int e = rst_batch_room(b, 1, sizeof(cap));
	uint64_t a = e < 0 ? 0 : rst_batch_put(b, &cap, sizeof(cap));
	if (!a)
		return e < 0 ? e : -EFAULT;
	RC("capset", __NR_capset, a, a + sizeof(cap.h), 0, 0, 0, 0);
	for (int bit = 0; bit < 64; bit++)
		if (c->cap_amb & (1ULL << bit))
			RC("PR_CAP_AMBIENT_RAISE", __NR_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE,
			   bit, 0, 0, 0);
	if (c->secbits & ~(uint32_t)SECBIT_KEEP_CAPS)
		RC("PR_SET_SECUREBITS", __NR_prctl, PR_SET_SECUREBITS, c->secbits, 0, 0, 0, 0);
	else
		RC("PR_SET_KEEPCAPS", __NR_prctl, PR_SET_KEEPCAPS,
		   !!(c->secbits & SECBIT_KEEP_CAPS), 0, 0, 0, 0);
	return 0;
}

int rst_creds(struct rst *r, struct rst_batch *b)
{
	const TaskCoreEntry *t = r->core->task;
	const CredsEntry *c = t->creds;
	bool same = creds_same_as_ours(c);
	int e;

	if (!same) {
		/* bounding set first: dropping needs CAP_SETPCAP, which we still have */
		for (int bit = 0; bit < 64; bit++)
			if (!(c->cap_bnd & (1ULL << bit)) && prctl(PR_CAPBSET_READ, bit) == 1)
				RC("PR_CAPBSET_DROP", __NR_prctl, PR_CAPBSET_DROP, bit, 0, 0, 0, 0);
		RC("PR_SET_KEEPCAPS", __NR_prctl, PR_SET_KEEPCAPS, 1, 0, 0, 0, 0);
		if ((e = creds_ids(b, c)) < 0 || (e = creds_caps(b, c)) < 0)
			return e;
	}
	if (c->no_new_privs)
		RC("PR_SET_NO_NEW_PRIVS", __NR_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0, 0);
	/* a uid change resets dumpable; 2 (suid_dumpable) cannot be set by prctl. It is
	 * per mm, inherited from us by the stub: unchanged creds and ours equal, nothing */
	if (t->dumpable <= 1 && (!same || (int)t->dumpable != prctl(PR_GET_DUMPABLE)))
		RC("PR_SET_DUMPABLE", __NR_prctl, PR_SET_DUMPABLE, t->dumpable, 0, 0, 0, 0);
	return 0;
}

/* ---- registers ------------------------------------------------------------------- */

static void regs_from_image(const UserRegsEntry *g, struct user_regs_struct *x)
{
	*x = (struct user_regs_struct){
		.r15 = g->r15,
		.r14 = g->r14,
		.r13 = g->r13,
		.r12 = g->r12,
		.rbp = g->rbp,
		.rbx = g->rbx,
		.r11 = g->r11,
		.r10 = g->r10,
		.r9 = g->r9,
		.r8 = g->r8,
		.rax = g->rax,
		.rcx = g->rcx,
		.rdx = g->rdx,
		.rsi = g->rsi,
		.rdi = g->rdi,
		.orig_rax = g->orig_rax,
		.rip = g->rip,
		.cs = g->cs,
		.eflags = g->flags,
		.rsp = g->sp,
		.ss = g->ss,
		.fs_base = g->fs_base,
		.gs_base = g->gs_base,
		.ds = g->ds,
		.es = g->es,
		.fs = g->fs,
		.gs = g->gs,
	};
}

/* A task stopped inside an interrupted syscall: make it re-enter the syscall. */
static void regs_restart_fixup(struct user_regs_struct *x)
{
	long rax = (long)x->rax;
	if ((long)x->orig_rax < 0)
		return;
	switch (-rax) {
	case ERESTARTSYS_:
	case ERESTARTNOINTR_:
	case ERESTARTNOHAND_:
		x->rax = x->orig_rax;
		x->rip -= 2;
		break;
	case ERESTART_RESTARTBLOCK_:
		/* a new task has no restart block: run the original syscall again */
		if (x->orig_rax == __NR_restart_syscall) {
			pr_warn("interrupted restart_syscall cannot be resumed: it returns EINTR");
			x->rax = (uint64_t)-EINTR;
		} else {
			x->rax = x->orig_rax;
			x->rip -= 2;
		}
		break;
	}
	x->orig_rax = (uint64_t)-1;
}

int rst_regs(struct rst *r)
{
	return rst_thread_regs(r, r->pid, r->core->thread);
}

int rst_thread_regs(struct rst *r, pid_t tid, const ThreadCoreEntry *th)
{
	struct user_regs_struct x;
	uint8_t *cur = malloc(XSTATE_MAX);
	struct iovec iov = { cur, XSTATE_MAX };

	if (!cur)
		return -ENOMEM;
	if (ptrace(PTRACE_GETREGSET, tid, NT_X86_XSTATE_, &iov) < 0) {
		free(cur);
		return pr_perror("PTRACE_GETREGSET(NT_X86_XSTATE) on %d", tid);
	}
	free(cur);
	if (iov.iov_len != th->xsave.len)
		return pr_err_ret(-EXDEV,
				  "xsave area is %zu bytes here, %zu in the image "
				  "(different CPU features)",
				  iov.iov_len, th->xsave.len);
	regs_from_image(th->regs, &x);
	regs_restart_fixup(&x);
	if (ptrace(PTRACE_SETREGS, tid, NULL, &x) < 0)
		return pr_perror("PTRACE_SETREGS on %d", tid);
	iov = (struct iovec){ th->xsave.data, th->xsave.len };
	if (ptrace(PTRACE_SETREGSET, tid, NT_X86_XSTATE_, &iov) < 0)
		return pr_perror("PTRACE_SETREGSET(NT_X86_XSTATE) on %d", tid);
	uint64_t mask = th->sigmask;
	if (ptrace(PTRACE_SETSIGMASK_, tid, sizeof(mask), &mask) < 0)
		return pr_perror("PTRACE_SETSIGMASK on %d", tid);
	return 0;
}

/* ---- mm fields ------------------------------------------------------------------- */

int rst_mm_fields(struct rst *r, struct rst_batch *b)
{
	const MmEntry *mm = r->mm;
	struct prctl_mm_map map = {
		.start_code = mm->start_code,
		.end_code = mm->end_code,
		.start_data = mm->start_data,
		.end_data = mm->end_data,
		.start_brk = mm->start_brk,
		.brk = mm->brk,
		.start_stack = mm->start_stack,
		.arg_start = mm->arg_start,
		.arg_end = mm->arg_end,
		.env_start = mm->env_start,
		.env_end = mm->env_end,
		.auxv_size = (uint32_t)(mm->n_auxv * sizeof(uint64_t)),
		.exe_fd = (uint32_t)r->exe_fd, /* opened by rst_vmas_map's run */
	};
	int e = rst_batch_room(b, 2, map.auxv_size + sizeof(map)), k;
	uint64_t m = 0;

	if (e < 0)
		return e;
	map.auxv = (__u64 *)rst_batch_put(b, mm->auxv, map.auxv_size);
	if (map.auxv)
		m = rst_batch_put(b, &map, sizeof(map));
	if (!m)
		return -EFAULT;
	if ((k = rst_batch_add(b, "prctl(PR_SET_MM_MAP)", __NR_prctl, PR_SET_MM, PR_SET_MM_MAP, m,
			       sizeof(map), 0, 0)) < 0 ||
	    (k = rst_batch_add(b, "close(exe)", __NR_close, (unsigned long)r->exe_fd, 0, 0, 0, 0,
			       0)) < 0)
		return k;
	r->exe_fd = -1;
	return 0;
}
