/*
 * rst-stub: the code that runs in the new tasks of a restored tree before the restorer
 * takes them over (copies of the restorer's memory: no logging, no allocation; errors
 * are reported as one STUB_ERROR message on the report pipe, then the stub exits).
 *
 * Each stub, in order:
 *  1. resets every signal action to SIG_DFL (so zombies are not auto-reaped and nothing
 *     of ferry's leaks) and drops the altstack (the root; the others inherit that);
 *  2. becomes a group leader (setpgid(0,0)) if it led its group without leading a session;
 *  3. creates, with clone3(set_tid = its inner pid), the children that inherit its
 *     session as it is now, then setsid() if it led a session, then the other children
 *     (sessions only pass by inheritance, so this order recreates every session that
 *     the restore plan accepted; an orphan in a sibling's session is created by that
 *     sibling with CLONE_PARENT, a CLONE_FILES sharer with CLONE_FILES); a zombie
 *     (no children) reports CREATED and exits
 *     now with its recorded status (RLIMIT_CORE 0 first), its parent never reaps it;
 *  4. reports CREATED and waits for one byte on the go pipe: the restorer sends one per
 *     live process once every process exists and every zombie has exited, so every
 *     group leader exists when
 *  5. it joins its process group (setpgid), then sets umask, cwd, root, personality and
 *     its fds (fs_rst_tree_in_stub: shared descriptions are inherited from the
 *     restorer, which is why children are created first);
 *  6. reports READY (with the numbers of its hold and report fds) and blocks in read()
 *     on the hold pipe, which nobody writes: the restorer PTRACE_SEIZEs and interrupts it
 *     there (maybe before the stub closed its report fd: the restorer closes both), and
 *     the final registers (orig_rax = -1) discard that read. If ferry dies first, the
 *     read returns EOF and the stub exits.
 *
 * The ferry init of --pidns (PID 1 of the new namespace) creates the root like a stub
 * creates a child, then closes every fd, unmaps the warm staging (rst-warm.h), forwards
 * SIGTERM/SIGINT/SIGHUP/SIGUSR1/SIGUSR2 to the root, reaps every child and exits with
 * the root's status (128+signal when the root was killed: an init cannot kill itself
 * with a signal).
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/rseq.h>
#include <sys/personality.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "engine/rst-tree.h"
#include "engine/rst-warm.h"
#include "fs/fs.h"

#ifndef CLONE_NEWPID
#define CLONE_NEWPID 0x20000000
#endif

struct stub_clone_args {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
	uint64_t set_tid, set_tid_size, cgroup;
};

static void stub_msg(struct rst_tree *t, int idx, int kind, int err, int hold, const char *text,
		     const int *mfd, struct rst_stub_msg *m)
{
	*m = (struct rst_stub_msg){
		.idx = idx, .kind = kind, .err = err, .hold_fd = hold, .rep_fd = t->rep[1]
	};
	for (size_t k = 0; mfd && k < t->t[idx].n_mfd; k++)
		m->mfd[k] = mfd[k];
	char self[32] = "";
	ssize_t n = t->hostproc >= 0 ? readlinkat(t->hostproc, "self", self, sizeof(self) - 1)
				     : readlink("/proc/self", self, sizeof(self) - 1);

	/* ferry's /proc names us by our host pid (fs_rst_tree_in_stub closes hostproc: only
	 * CREATED needs it) */
	if (n > 0) {
		self[n] = 0;
		(void)parse_int(self, &m->hpid);
	}
	if (text)
		snprintf(m->text, sizeof(m->text), "%s", text);
}

static void stub_send(struct rst_tree *t, int idx, int kind, int err, int hold, const char *text,
		      const int *mfd)
{
	struct rst_stub_msg m;
	stub_msg(t, idx, kind, err, hold, text, mfd, &m);
	(void)!write(t->rep[1], &m, sizeof(m));
}

static void __attribute__((noreturn))
stub_fail(struct rst_tree *t, int idx, const char *what, int err)
{
	stub_send(t, idx, STUB_ERROR, err, -1, what, NULL);
	_exit(1);
}

/* Close the restorer's ends of the pipes; -1 in our copy of t, so that our children do
 * not close again numbers that may have been reused meanwhile (hostproc). */
static void stub_close_ours(struct rst_tree *t)
{
	int *fds[] = { &t->rep[0], &t->go[1], &t->hold[1] };
	for (size_t i = 0; i < ARRAY_SIZE(fds); i++) {
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
}

/* Raw syscall: glibc refuses signals 32/33. */
static void stub_signals_reset(void)
{
	struct {
		uint64_t handler, flags, restorer, mask;
	} dfl = { 0 };
	stack_t ss = { .ss_flags = SS_DISABLE };
	sigset_t none;

	for (int sig = 1; sig <= 64; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			syscall(SYS_rt_sigaction, sig, &dfl, NULL, 8);
	sigaltstack(&ss, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

static void __attribute__((noreturn)) stub_run(struct rst_tree *t, int idx);

/* clone3 the task of process idx (inner pid set_tid; new_ns: PID 1 of a new pid
 * namespace). Returns the child's pid in our namespace or -errno; never returns in
 * the child. */
static long stub_spawn(struct rst_tree *t, int idx, bool new_ns, bool init)
{
	uint64_t tid = (uint64_t)t->id[idx].pid;
	struct stub_clone_args ca = { .exit_signal = SIGCHLD };
	long ret;

	if (new_ns)
		ca.flags = CLONE_NEWPID;
	else {
		if (t->id[idx].files_shared)
			ca.flags = CLONE_FILES;
		if (t->id[idx].creator != t->id[idx].parent) {
			/* its parent is our parent; clone3 wants exit_signal 0 then (the
			 * kernel uses ours, SIGCHLD) */
			ca.flags |= CLONE_PARENT;
			ca.exit_signal = 0;
		}
		ca.set_tid = (uint64_t)&tid;
		ca.set_tid_size = 1;
	}
	ret = sys_clone3(&ca, sizeof(ca));
	if (ret == 0) {
		if (init)
			return 0;
		stub_run(t, idx);
	}
	return ret;
}

static void __attribute__((noreturn)) stub_run_sharer(struct rst_tree *t, int idx);

static void stub_spawn_kids(struct rst_tree *t, int idx, bool before)
{
	char what[64];
	for (int *k = t->kids[idx]; *k >= 0; k++) {
		if (t->id[*k].before_setsid != before)
			continue;
		long r = stub_spawn(t, *k, false, false);
		if (r < 0) {
			snprintf(what, sizeof(what), "clone3 with pid %d", t->id[*k].pid);
			stub_fail(t, idx, what, (int)-r);
		}
	}
}

static void __attribute__((noreturn)) stub_zombie(struct rst_tree *t, int idx)
{
	uint32_t st = t->pst[idx]->exit_status;
	struct rlimit nocore = { 0, 0 };

	stub_send(t, idx, STUB_CREATED, 0, -1, NULL, NULL);
	if (WIFSIGNALED(st)) {
		setrlimit(RLIMIT_CORE, &nocore);
		syscall(SYS_kill, syscall(SYS_getpid), WTERMSIG(st));
	}
	_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 1);
}

/* Join the process group (its leader exists: after the go byte, or retried by a
 * CLONE_FILES sharer, which does not wait for it). */
static void stub_group(struct rst_tree *t, int idx, bool retry)
{
	const struct rst_ids *me = &t->id[idx];
	char what[64];

	if (me->pgid == me->pid || me->sid == me->pid)
		return;
	pid_t g = rst_tree_find(t, me->pgid) >= 0 ? me->pgid : idx ? getpgid(t->id[0].pid) : 0;
	for (int i = 0; g > 0 && g != getpgrp() && setpgid(0, g) < 0; i++) {
		if (!retry || errno != EPERM || i > 50000) {
			snprintf(what, sizeof(what), "setpgid(%d)", g);
			stub_fail(t, idx, what, errno);
		}
		usleep(200);
	}
}

/* Step 5: umask, cwd, root, personality, fds (keep == NULL: a CLONE_FILES sharer,
 * whose table its owner sets up). */
static void stub_setup(struct rst_tree *t, int idx, int *keep)
{
	const TaskCoreEntry *tc = t->t[idx].core->task;
	char what[300], err[256] = "";

	umask(tc->umask);
	if (chdir(tc->cwd) < 0) {
		snprintf(what, sizeof(what), "cannot chdir to '%.250s'", tc->cwd);
		stub_fail(t, idx, what, errno);
	}
	if (strcmp(tc->root, "/") && chroot(tc->root) < 0) {
		snprintf(what, sizeof(what), "cannot chroot to '%.250s'", tc->root);
		stub_fail(t, idx, what, errno);
	}
	if (personality(tc->personality) < 0)
		stub_fail(t, idx, "personality", errno);
	if (!keep)
		return;
	int e = fs_rst_tree_in_stub(t->fs, t->t[idx].ipid, keep, 3 + t->t[idx].n_mfd, err,
				    sizeof(err));
	if (e < 0) {
		snprintf(what, sizeof(what), "restoring fds: %.256s", err);
		stub_fail(t, idx, what, -e);
	}
}

/* PID 1 of the tree's new pid namespace (the ferry init, or a root dumped as PID 1):
 * a mount namespace of its own with /proc mounted for the new pid namespace, so the
 * tree's /proc/<pid> names its own processes by the pids it knows. */
static void stub_proc_mount(struct rst_tree *t, int idx)
{
	if ((t->hostproc = open("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
		stub_fail(t, idx, "opening /proc", errno);
	if (unshare(CLONE_NEWNS) < 0)
		stub_fail(t, idx, "unshare(CLONE_NEWNS)", errno);
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		stub_fail(t, idx, "making / private in the new mount namespace", errno);
	if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		stub_fail(t, idx, "mounting /proc for the new pid namespace", errno);
}

/* Step 6: map the gadget where the restorer planned it, unregister our rseq (the kernel
 * would write into memory that goes away), then run the gadget's hold code: it unmaps
 * every other mapping of ours (off the restorer's path: stubs do it in parallel),
 * writes READY on rep (rep < 0: a CLONE_FILES sharer, which sends nothing) and blocks in
 * read(hold) (hold < 0: pause()), where the restorer seizes us. */
static void __attribute__((noreturn))
stub_hold(struct rst_tree *t, int idx, int rep, int hold, const int *mfd)
{
	const struct rst *r = &t->t[idx];
	uint8_t *g = mmap((void *)r->gadget, RST_GADGET_LEN, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);

	if (g == MAP_FAILED || g != (uint8_t *)r->gadget)
		stub_fail(t, idx, "mapping the restorer's gadget",
			  g == MAP_FAILED ? errno : EEXIST);
	rst_gadget_code(g);
	if (mprotect(g, RST_PAGE, PROT_READ | PROT_EXEC) < 0)
		stub_fail(t, idx, "mprotect of the restorer's gadget", errno);
	uint64_t *ranges = (uint64_t *)(g + RST_PAGE);
	struct rst_stub_msg *m = (struct rst_stub_msg *)(g + RST_PAGE + RST_PAGE / 2);
	rst_stub_ranges(r, ranges);
	if (rep >= 0)
		stub_msg(t, idx, STUB_READY, 0, hold, NULL, mfd, m);
	/* glibc registers 32 bytes (struct rseq) even where __rseq_size says 20 (its
	 * feature size); the kernel wants the registered length back */
	if (__rseq_size && syscall(SYS_rseq, (char *)__builtin_thread_pointer() + __rseq_offset,
				   __rseq_size < 32 ? 32 : __rseq_size,
				   1 /* RSEQ_FLAG_UNREGISTER */, RSEQ_SIG) < 0)
		stub_fail(t, idx, "rseq unregister", errno);
	register long r8 asm("r8") = hold;
	asm volatile("jmp *%0" ::"r"(r->gadget + RST_GADGET_HOLD), "D"(ranges), "S"((long)rep),
		     "d"(m), "c"(sizeof(*m)), "r"(r8)
		     : "memory");
	__builtin_unreachable();
}

static void __attribute__((noreturn)) stub_run(struct rst_tree *t, int idx)
{
	const struct rst_ids *me = &t->id[idx];
	bool leader = me->sid == me->pid;
	char c;

	/* every other stub is forked by a stub that did it already (~63 calls each) */
	if (idx == 0)
		stub_signals_reset();
	stub_close_ours(t);
	if (!leader && me->pgid == me->pid && setpgid(0, 0) < 0)
		stub_fail(t, idx, "setpgid", errno);
	if (idx == 0 && t->root_is_init)
		stub_proc_mount(t, idx);
	stub_spawn_kids(t, idx, true);
	if (leader && getsid(0) != me->pid && setsid() < 0)
		stub_fail(t, idx, "setsid", errno);
	if (t->pst[idx]->zombie)
		stub_zombie(t, idx);
	stub_spawn_kids(t, idx, false);
	stub_send(t, idx, STUB_CREATED, 0, -1, NULL, NULL);
	if (me->files_shared)
		stub_run_sharer(t, idx);
	if (read(t->go[0], &c, 1) != 1)
		_exit(1);
	stub_group(t, idx, false);
	/* kept: report, go, hold, and the memfds our mappings need (moved if they sit on
	 * a target fd number) */
	int keep[3 + RST_MAX_MEMFDS] = { t->rep[1], t->go[0], t->hold[0] };
	for (size_t k = 0; k < t->t[idx].n_mfd; k++)
		keep[3 + k] = t->t[idx].mfd[k];
	stub_setup(t, idx, keep);
	t->rep[1] = keep[0]; /* our own copy of t */
	close(keep[1]);
	stub_hold(t, idx, keep[0], keep[2], keep + 3);
}

/* A CLONE_FILES sharer touches no fd after CREATED: its owner closes and moves the fds
 * of the table they share, at any moment. It blocks in pause(); the restorer waits for
 * that (/proc/PID/syscall) and seizes it there. */
static void __attribute__((noreturn)) stub_run_sharer(struct rst_tree *t, int idx)
{
	stub_group(t, idx, true);
	stub_setup(t, idx, NULL);
	stub_hold(t, idx, -1, -1, NULL);
}

/* ---- ferry init (PID 1 of the new pid namespace) --------------------------------- */

static pid_t init_root;

static void init_forward(int sig)
{
	kill(init_root, sig);
}

static void __attribute__((noreturn)) init_main(struct rst_tree *t)
{
	static const int fwd[] = { SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2 };
	struct sigaction sa = { .sa_handler = init_forward, .sa_flags = SA_RESTART };
	long r;
	int st;

	stub_signals_reset();
	stub_close_ours(t);
	stub_proc_mount(t, 0);
	r = stub_spawn(t, 0, false, false);
	if (r < 0)
		stub_fail(t, 0, "clone3 of the root in the new pid namespace", (int)-r);
	init_root = (pid_t)r;
	syscall(SYS_close_range, 0, ~0U, 0);
	/* the staged memory is the tree's (rst-warm.h): holding it here too would make the
	 * tree's every first write a copy */
	for (size_t i = 0; i < t->n; i++)
		if (t->t[i].warm && t->t[i].warm->slab)
			munmap(t->t[i].warm->slab, t->t[i].warm->slab_len);
	for (size_t i = 0; i < ARRAY_SIZE(fwd); i++)
		sigaction(fwd[i], &sa, NULL);
	for (;;) {
		pid_t p = waitpid(-1, &st, 0);
		if (p == init_root)
			_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
		if (p < 0 && errno == ECHILD)
			_exit(0);
	}
}

int rst_stub_spawn_root(struct rst_tree *t)
{
	long r;

	fflush(NULL);
	if (t->pidns && !t->root_is_init) {
		r = stub_spawn(t, 0, true, true);
		if (r == 0)
			init_main(t);
		if (r > 0)
			t->init_pid = (pid_t)r;
	} else {
		r = stub_spawn(t, 0, t->root_is_init, false);
	}
	if (r == -EEXIST)
		return pr_err_ret(-EEXIST,
				  "PID %d is already in use (restore with --pidns to put "
				  "the tree in a new pid namespace)",
				  t->id[0].pid);
	if (r < 0)
		return pr_err_ret((int)r, "clone3 with PID %d", t->id[0].pid);
	t->child = (pid_t)r;
	return 0;
}
