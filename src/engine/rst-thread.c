/*
 * rst-thread: the threads of a restored process other than its leader.
 *
 * They are created after the address space is complete, by clone3s (CLONE_VM|FS|
 * FILES|SIGHAND|THREAD|SYSVSEM, set_tid = the thread's id inside the task's pid
 * namespace, no stack) queued in the leader's batch (rst-batch.c): the new thread, not
 * traced, sees 0 and jumps to the interpreter's `pause` loop with every signal blocked
 * (inherited from the leader under remote control), touching no memory. We then
 * PTRACE_SEIZE + INTERRUPT it (by its host tid: the same id unless the tree lives in a
 * new pid namespace) and run batches in it like in the leader: its own state
 * (altstack, name, robust list, tid address, rseq, timer slack, credentials) is per
 * thread in the kernel, so it is injected in it. Its final registers discard the pause
 * (orig_rax = -1).
 *
 * Invariants: a seized thread is reaped by us (its tracer) before its leader on
 * rollback; t->tid is the host tid once created, the image tid before.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "common/log.h"
#include "common/util.h"
#include "engine/restore.h"
#include "engine/rst-tree.h"
#include "img/img.h"

struct rst_clone_args_t {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
	uint64_t set_tid, set_tid_size, cgroup;
};

int rst_threads_load(struct rst *r)
{
	size_t n = r->pst->n_threads;
	const PstreeEntry *p = r->pst;
	int e;

	if (n < 1 || n > RST_MAX_THREADS || p->threads[0] != (uint32_t)r->ipid)
		return pr_err_ret(-EINVAL,
				  "pstree.img: process %d: %zu threads, the leader not first",
				  r->ipid, n);
	if (p->n_ns_threads && p->n_ns_threads != n)
		return pr_err_ret(-EINVAL,
				  "pstree.img: process %d: ns_threads do not match threads",
				  r->ipid);
	r->thr = calloc(n, sizeof(*r->thr));
	if (!r->thr)
		return -ENOMEM;
	for (size_t i = 1; i < n; i++) {
		uint32_t tid = p->threads[i];
		struct rst_thread *t = &r->thr[r->n_thr];
		char name[64];
		for (size_t j = 0; j < i; j++)
			if (p->threads[j] == tid || tid < 2 || tid > 4194304)
				return pr_err_ret(-EINVAL,
						  "pstree.img: bad or repeated thread id %u", tid);
		e = img_read_one(r->d, img_name(name, "core-%u.img", tid), IMG_MAGIC_CORE,
				 &core_entry__descriptor, (ProtobufCMessage **)&t->core);
		if (e < 0)
			return e == -ENOENT ? pr_err_ret(e, "'%s' is missing", name) : e;
		t->tid = t->itid = (pid_t)tid;
		t->ntid = rst_tree_inner_tid(r, i);
		r->n_thr++;
		if (!t->core->thread)
			return pr_err_ret(-EINVAL, "'%s' lacks thread state", name);
		if ((e = rst_thread_validate(t->core->thread, t->itid)) < 0)
			return e;
	}
	return 0;
}

/* Queue the clone3 of every thread in the leader's batch: each new thread, not traced,
 * parks in the interpreter's pause() loop with every signal blocked (inherited). */
int rst_threads_clone(struct rst *r, struct rst_batch *b)
{
	for (size_t i = 0; i < r->n_thr; i++) {
		struct rst_thread *t = &r->thr[i];
		uint64_t tid = (uint64_t)t->ntid, ta, a;
		struct rst_clone_args_t ca = {
			.flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD |
				 CLONE_SYSVSEM,
			.set_tid_size = 1,
		};
		int e = rst_batch_room(b, 1, sizeof(tid) + sizeof(ca)), k;
		if (e < 0)
			return e;
		if (!(ta = rst_batch_put(b, &tid, sizeof(tid))))
			return -EFAULT;
		ca.set_tid = ta;
		if (!(a = rst_batch_put(b, &ca, sizeof(ca))))
			return -EFAULT;
		if ((k = rst_batch_add(b, "clone3", __NR_clone3, a, sizeof(ca), 0, 0, 0, 0)) < 0)
			return k;
		rst_batch_clone(b, k);
		rst_batch_allow(b, k, EEXIST);
		rst_batch_out(b, k, &t->res);
		rst_batch_whatf(b, k, "creating thread %d", t->ntid);
	}
	return 0;
}

/* Seize thread t, created by the leader's batch run. */
static int thread_seize(struct rst *r, struct rst_thread *t)
{
	int st;
	pid_t h;

	if (t->res == -EEXIST)
		return pr_err_ret(-EEXIST, "thread id %d is already in use", t->ntid);
	if (t->res != t->ntid)
		return pr_err_ret(-EINVAL, "thread %d was created as %ld", t->ntid, t->res);
	if ((h = rst_tree_host_tid(r, t->ntid)) < 0)
		return (int)h;
	t->tid = h;
	if (ptrace(PTRACE_SEIZE, t->tid, 0, (void *)(long)PTRACE_O_EXITKILL) < 0)
		return pr_perror("PTRACE_SEIZE thread %d", t->tid);
	t->seized = true;
	if (ptrace(PTRACE_INTERRUPT, t->tid, 0, 0) < 0)
		return pr_perror("PTRACE_INTERRUPT thread %d", t->tid);
	if ((st = rst_wait_stop(t->tid, RST_STOP_TIMEOUT_MS)) < 0)
		return pr_err_ret(st, "thread %d did not stop", t->tid);
	return 0;
}

int rst_threads_setup(struct rst *r, struct rst_batch *b)
{
	int e = 0;
	for (size_t i = 0; i < r->n_thr && e == 0; i++) {
		struct rst_thread *t = &r->thr[i];
		const ThreadCoreEntry *th = t->core->thread;
		/* its own state from inside the thread itself: the kernel refuses to queue a
		 * kill()-like siginfo (si_code >= 0) for another thread (rt_tgsigqueueinfo,
		 * EPERM) */
		if ((e = thread_seize(r, t)) == 0 && (e = rst_batch_on(b, t->tid)) == 0 &&
		    (e = rst_thread_state(r, b, th)) == 0 &&
		    (e = rst_thread_sched(r, b, t->tid, th)) == 0)
			e = rst_thread_pending(r, b, t->ntid, th);
	}
	if (e == 0)
		e = rst_batch_on(b, r->pid);
	return e;
}

/* Credentials are per thread: the leader's, then each thread's, in its own run. */
int rst_threads_creds(struct rst *r, struct rst_batch *b)
{
	int e = rst_creds(r, b);
	for (size_t i = 0; i < r->n_thr && e == 0; i++)
		if ((e = rst_batch_on(b, r->thr[i].tid)) == 0)
			e = rst_creds(r, b);
	if (e == 0)
		e = rst_batch_on(b, r->pid);
	return e;
}

int rst_threads_regs(struct rst *r)
{
	int e = rst_regs(r);
	for (size_t i = 0; i < r->n_thr && e == 0; i++)
		e = rst_thread_regs(r, r->thr[i].tid, r->thr[i].core->thread);
	return e;
}

int rst_threads_detach(struct rst *r)
{
	for (size_t i = 0; i < r->n_thr; i++) {
		struct rst_thread *t = &r->thr[i];
		if (!t->seized)
			continue;
		if (ptrace(PTRACE_DETACH, t->tid, NULL, NULL) < 0)
			return pr_perror("PTRACE_DETACH from thread %d", t->tid);
		t->seized = false;
	}
	return 0;
}

void rst_threads_free(struct rst *r, bool killed)
{
	for (size_t i = 0; i < r->n_thr; i++) {
		struct rst_thread *t = &r->thr[i];
		int st;
		while (killed && t->seized && waitpid(t->tid, &st, __WALL) < 0 && errno == EINTR)
			;
		if (t->core)
			core_entry__free_unpacked(t->core, NULL);
	}
	free(r->thr);
	r->thr = NULL;
	r->n_thr = 0;
}
