/*
 * restore: `ferry restore -D DIR`: recreate one dumped process (with its threads) with
 * its PID and thread ids, and let it continue where it was frozen.
 *
 * Method (DESIGN.md "Restore by remote control"): a raw clone3 with set_tid creates a
 * stub with the dumped PID; the stub (our code, on a copy of our memory) sets its
 * session, umask, cwd, root, personality and fds, then PTRACE_TRACEMEs and stops. From
 * then on it runs no code of its own: every change is a syscall we inject (remote.h),
 * first at a syscall instruction of its vdso, then at a gadget page mapped where both
 * layouts are free. The stages, in order, are in restore_main; docs/restore.md explains
 * them.
 *
 * Invariants:
 *  - Everything from the images is loaded and validated before the stub exists; only
 *    page data is streamed later, and its hash is verified before the task runs.
 *  - One rollback path (rst_stage_finish): on any failure the half-built task is killed
 *    with SIGKILL and reaped; the restored process never runs unless every step worked.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "engine/engine.h"
#include "engine/proc.h"
#include "engine/restore.h"
#include "fs/fs.h"
#include "img/img.h"

#define STUB_STOP_TIMEOUT_MS 10000
#define GADGET_CLONE 16		/* offset of the thread-creating code in the gadget page */
#define MAX_PM_ENTRIES (16u << 20)
#define GAP_MARGIN (16UL << 20)	/* keep away from neighbours (stack guard gap is 1 MiB) */
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

static int threads_load(struct rst *r);

struct rst_clone_args {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
	uint64_t set_tid, set_tid_size, cgroup;
};

/* ---- remote helpers (shared with rst-mem.c, rst-core.c) ------------------------- */

long rst_call(struct rst *r, const char *what, long nr, unsigned long a1, unsigned long a2,
	      unsigned long a3, unsigned long a4, unsigned long a5, unsigned long a6)
{
	long res;
	int e = remote_syscall(r->cur, &res, nr, a1, a2, a3, a4, a5, a6);
	if (e < 0)
		return e;
	if (res < 0 && res >= -4095)
		pr_err("%s in task %d failed: %s", what, r->cur->tid, strerror((int)-res));
	return res;
}

long rst_callq(struct rst *r, long nr, unsigned long a1, unsigned long a2, unsigned long a3,
	       unsigned long a4, unsigned long a5, unsigned long a6)
{
	long res;
	int e = remote_syscall(r->cur, &res, nr, a1, a2, a3, a4, a5, a6);
	return e < 0 ? e : res;
}

uint64_t rst_put(struct rst *r, size_t off, const void *buf, size_t len)
{
	uint64_t a = 0;
	if (off + len > RST_SCRATCH_LEN || remote_put(r->cur, off, buf, len, &a) < 0) {
		pr_err("cannot copy %zu bytes into the scratch page of task %d", len, r->pid);
		return 0;
	}
	return a;
}

/* ---- loading and checks ---------------------------------------------------------- */

static int inventory_check(struct rst *r)
{
	const InventoryEntry *inv = img_dir_inventory(r->d);
	struct utsname u;

	uname(&u);
	if (inv->kind != IMG_KIND_DUMP)
		return pr_err_ret(-EINVAL, "'%s' is a pre-dump, not a dump", r->o->images_dir);
	if (strcmp(inv->arch, u.machine))
		return pr_err_ret(-EXDEV, "images are for arch '%s', this is '%s'", inv->arch, u.machine);
	if (strcmp(inv->kernel, u.release))
		return pr_err_ret(-EXDEV, "images come from kernel '%s', this is '%s' (the same kernel "
				  "is required: vdso layout)", inv->kernel, u.release);
	if (inv->page_size != RST_PAGE)
		return pr_err_ret(-EXDEV, "images have page size %u", inv->page_size);
	if (inv->root_pid < 2 || inv->root_pid > 4194304)
		return pr_err_ret(-EINVAL, "inventory: bad root pid %u", inv->root_pid);
	r->pid = (pid_t)inv->root_pid;
	if (kill(r->pid, 0) == 0 || errno == EPERM)
		return pr_err_ret(-EEXIST, "PID %d is already in use", r->pid);
	return 0;
}

static int pstree_load(struct rst *r)
{
	struct img_buf *b;
	ProtobufCMessage *m;
	int e = img_load(r->d, "pstree.img", IMG_MAGIC_PSTREE, &b);
	if (e < 0)
		return e == -ENOENT ? pr_err_ret(e, "pstree.img is missing") : e;
	e = img_buf_one(b, &pstree_entry__descriptor, &m);
	img_buf_free(b);
	if (e < 0)
		return pr_err_ret(-EBADMSG, "pstree.img: restore handles one process only "
				  "(or the image is corrupt)");
	r->pst = (PstreeEntry *)m;
	if (r->pst->pid != (uint32_t)r->pid)
		return pr_err_ret(-EINVAL, "pstree.img: pid %u, inventory says %d", r->pst->pid, r->pid);
	return 0;
}

int rst_pagemap_load(struct img_dir *d, pid_t pid, PagemapHead **head, PagemapEntry ***pm,
		     size_t *n)
{
	char name[64];
	struct img_buf *b;
	ProtobufCMessage *m;
	size_t cap = 0;
	int e = img_load(d, img_name(name, "pagemap-%d.img", pid), IMG_MAGIC_PAGEMAP, &b);

	*head = NULL;
	*pm = NULL;
	*n = 0;
	if (e < 0)
		return e == -ENOENT ? pr_err_ret(e, "'%s/%s' is missing", img_dir_path(d), name) : e;
	if ((e = img_buf_next(b, &pagemap_head__descriptor, &m)) != 1)
		goto bad;
	*head = (PagemapHead *)m;
	while ((e = img_buf_next(b, &pagemap_entry__descriptor, &m)) == 1) {
		if (*n == cap) {
			void *nw = cap < MAX_PM_ENTRIES ?
				realloc(*pm, (cap = cap ? cap * 2 : 256) * sizeof(**pm)) : NULL;
			if (!nw) {
				protobuf_c_message_free_unpacked(m, NULL);
				img_buf_free(b);
				return pr_err_ret(-ENOMEM, "'%s': too many entries", name);
			}
			*pm = nw;
		}
		(*pm)[(*n)++] = (PagemapEntry *)m;
	}
	if (e == 0) {
		img_buf_free(b);
		return 0;
	}
bad:
	img_buf_free(b);
	return pr_err_ret(-EBADMSG, "'%s/%s' is corrupt", img_dir_path(d), name);
}

void rst_pagemap_free(PagemapHead *head, PagemapEntry **pm, size_t n)
{
	for (size_t i = 0; i < n; i++)
		pagemap_entry__free_unpacked(pm[i], NULL);
	free(pm);
	if (head)
		pagemap_head__free_unpacked(head, NULL);
}

static int images_load(struct rst *r)
{
	char name[64];
	int e;

	if ((e = img_dir_open(r->o->images_dir, &r->d)) < 0 || (e = inventory_check(r)) < 0 ||
	    (e = pstree_load(r)) < 0)
		return e;
	e = img_read_one(r->d, img_name(name, "core-%d.img", r->pid), IMG_MAGIC_CORE,
			 &core_entry__descriptor, (ProtobufCMessage **)&r->core);
	if (e == 0)
		e = img_read_one(r->d, img_name(name, "mm-%d.img", r->pid), IMG_MAGIC_MM,
				 &mm_entry__descriptor, (ProtobufCMessage **)&r->mm);
	if (e < 0)
		return e == -ENOENT ? pr_err_ret(e, "'%s' is missing", name) : e;
	if ((e = threads_load(r)) < 0 ||
	    (e = rst_pagemap_load(r->d, r->pid, &r->pm_head, &r->pm, &r->n_pm)) < 0 ||
	    (e = rst_own_specials(getpid(), r->own_sp)) < 0 ||
	    (e = rst_core_validate(r)) < 0 || (e = rst_mem_validate(r)) < 0 ||
	    (e = rst_chain_validate(r)) < 0)
		return e;
	return 0;
}

int rst_own_specials(pid_t pid, struct rst_special sp[RST_SP_NR])
{
	struct proc_vma *v;
	size_t n;
	int e = proc_parse_smaps(pid, &v, &n);
	if (e < 0)
		return pr_err_ret(e, "cannot read the mappings of %d", pid);
	memset(sp, 0, RST_SP_NR * sizeof(*sp));
	for (size_t i = 0; i < n; i++) {
		int k = v[i].kind == PVMA_VDSO ? RST_SP_VDSO : v[i].kind == PVMA_VVAR ? RST_SP_VVAR :
			v[i].kind == PVMA_VVAR_VCLOCK ? RST_SP_VCLOCK : -1;
		if (k >= 0) {
			sp[k].start = v[i].start;
			sp[k].end = v[i].end;
		}
		if (v[i].kind == PVMA_VDSO && (v[i].vmflags & VMF_SEALED))
			e = pr_err_ret(-EOPNOTSUPP, "[vdso] is sealed on this kernel: it cannot be moved");
	}
	proc_vmas_free(v, n);
	return e;
}

/* ---- the stub -------------------------------------------------------------------- */

enum stub_sess { SESS_KEEP, SESS_SETSID, SESS_PGID_SELF, SESS_PGID_JOIN };

static enum stub_sess session_plan(struct rst *r)
{
	pid_t sid = getsid(0), pgid = getpgrp();
	uint32_t psid = r->pst->sid, ppgid = r->pst->pgid;

	if (psid == (uint32_t)r->pid)
		return SESS_SETSID;
	/* a shell job joins our session and our (foreground) group, as it did its shell's */
	if (r->o->shell_job)
		return SESS_KEEP;
	if (psid != (uint32_t)sid)
		pr_warn("session %u of process %d cannot be recreated: it joins session %d", psid,
			r->pid, sid);
	if (ppgid == (uint32_t)r->pid)
		return SESS_PGID_SELF;
	if (ppgid != (uint32_t)pgid && ppgid) {
		pr_warn("process group %u of process %d cannot be recreated here; trying to join it",
			ppgid, r->pid);
		return SESS_PGID_JOIN;
	}
	return SESS_KEEP;
}

static void __attribute__((noreturn)) stub_fail(int wfd, const char *what, int err)
{
	char msg[512];
	int n = snprintf(msg, sizeof(msg), "%s: %s", what, strerror(err));
	if (n > 0)
		(void)!write(wfd, msg, (size_t)min_t(int, n, (int)sizeof(msg) - 1));
	_exit(1);
}

/* The image lists only non-default actions: drop ours (handlers, SIG_IGN inherited from
 * whoever started ferry) and our altstack. Raw syscall: glibc refuses signals 32/33. */
static void stub_signals_reset(void)
{
	struct { uint64_t handler, flags, restorer, mask; } dfl = { 0 };
	stack_t ss = { .ss_flags = SS_DISABLE };

	for (int sig = 1; sig <= 64; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			syscall(SYS_rt_sigaction, sig, &dfl, NULL, 8);
	sigaltstack(&ss, NULL);
}

/* Runs in the new task (copy of our memory). Never returns; cannot log. */
static void __attribute__((noreturn)) stub_main(struct rst *r, enum stub_sess sess, int wfd)
{
	const TaskCoreEntry *t = r->core->task;
	char err[256] = "";
	char what[300];

	if (sess == SESS_SETSID && setsid() < 0)
		stub_fail(wfd, "setsid", errno);
	if (sess == SESS_PGID_SELF && setpgid(0, 0) < 0)
		stub_fail(wfd, "setpgid", errno);
	if (sess == SESS_PGID_JOIN)
		(void)setpgid(0, (pid_t)r->pst->pgid);
	stub_signals_reset();
	umask(t->umask);
	if (chdir(t->cwd) < 0) {
		snprintf(what, sizeof(what), "cannot chdir to '%.250s'", t->cwd);
		stub_fail(wfd, what, errno);
	}
	if (strcmp(t->root, "/") && chroot(t->root) < 0) {
		snprintf(what, sizeof(what), "cannot chroot to '%.250s'", t->root);
		stub_fail(wfd, what, errno);
	}
	if (personality(t->personality) < 0)
		stub_fail(wfd, "personality", errno);
	int e = fs_rst_in_stub(r->fs, &wfd, err, sizeof(err));
	if (e < 0) {
		snprintf(what, sizeof(what), "restoring fds: %.256s", err);
		stub_fail(wfd, what, -e);
	}
	close(wfd);
	/* raw syscalls: glibc's raise() blocks signals and uses the parent's cached tid */
	syscall(SYS_ptrace, PTRACE_TRACEME, 0, 0, 0);
	syscall(SYS_kill, syscall(SYS_getpid), SIGSTOP);
	_exit(1);
}

static int stub_report(struct rst *r, int rfd)
{
	char msg[512];
	ssize_t n = read_full(rfd, msg, sizeof(msg) - 1);
	if (n < 0)
		return pr_err_ret((int)n, "reading the stub's report");
	if (n > 0) {
		msg[n] = 0;
		pr_err("restoring process %d: %s", r->pid, msg);
		return -EINVAL;
	}
	int st = ptrace_wait_stop(r->pid, STUB_STOP_TIMEOUT_MS);
	if (st < 0)
		return pr_err_ret(st, "stub %d did not stop", r->pid);
	r->traced = true;
	if (!WIFSTOPPED(st) || WSTOPSIG(st) != SIGSTOP)
		return pr_err_ret(-EINVAL, "stub %d stopped with status %#x, expected SIGSTOP", r->pid, st);
	/* if ferry dies mid-way, the half-built task must not run on: the kernel kills it */
	if (ptrace(PTRACE_SETOPTIONS, r->pid, 0, (void *)(long)PTRACE_O_EXITKILL) < 0)
		return pr_perror("PTRACE_SETOPTIONS on stub %d", r->pid);
	return 0;
}

static int stub_create(struct rst *r)
{
	enum stub_sess sess = session_plan(r);
	uint64_t tid = (uint64_t)r->pid;
	struct rst_clone_args ca = { .exit_signal = SIGCHLD, .set_tid = (uint64_t)&tid,
				     .set_tid_size = 1 };
	int p[2], e;
	long ret;

	if (pipe2(p, O_CLOEXEC) < 0)
		return pr_perror("pipe2");
	fflush(NULL);
	ret = sys_clone3(&ca, sizeof(ca));
	if (ret == 0) {
		close(p[0]);
		stub_main(r, sess, p[1]);
	}
	close(p[1]);
	if (ret < 0) {
		close(p[0]);
		if (ret == -EEXIST)
			return pr_err_ret(-EEXIST, "PID %d is already in use", r->pid);
		return pr_err_ret((int)ret, "clone3 with PID %d", r->pid);
	}
	r->child = (pid_t)ret;
	e = stub_report(r, p[0]);
	close(p[0]);
	return e;
}

static int remote_start(struct rst *r)
{
	int e = remote_init(&r->rt, r->pid, 0);
	if (e < 0)
		return e;
	r->rt_ready = true;
	r->vdso_sc_ip = r->rt.sc_ip;
	if (r->vdso_sc_ip < r->own_sp[RST_SP_VDSO].start || r->vdso_sc_ip >= r->own_sp[RST_SP_VDSO].end)
		return pr_err_ret(-EINVAL, "remote syscall instruction %#llx is not in [vdso]",
				  (unsigned long long)r->vdso_sc_ip);
	return 0;
}

/* ---- gadget and special mappings ------------------------------------------------- */

static int span_cmp(const void *a, const void *b)
{
	const struct rst_special *x = a, *y = b;
	return x->start < y->start ? -1 : x->start > y->start;
}

/* Highest address for len bytes, GAP_MARGIN away from every busy span. */
static int gap_find(struct rst_special *busy, size_t n, uint64_t len, uint64_t *out)
{
	uint64_t top = RST_TASK_SIZE - GAP_MARGIN;
	qsort(busy, n, sizeof(*busy), span_cmp);
	for (size_t i = n + 1; i-- > 0;) {
		uint64_t lo = i ? busy[i - 1].end + GAP_MARGIN : (1UL << 32);
		uint64_t hi = i < n ? busy[i].start : top;
		if (hi > top)
			hi = top;
		if (hi >= GAP_MARGIN + len && hi - GAP_MARGIN - len >= lo) {
			*out = (hi - GAP_MARGIN - len) & ~(RST_PAGE - 1);
			return 0;
		}
	}
	return pr_err_ret(-ENOMEM, "no free address range of %llu bytes for the restorer",
			  (unsigned long long)len);
}

/* Busy spans: every dumped VMA, plus the extra ones given. Caller frees. */
static struct rst_special *busy_spans(struct rst *r, size_t extra, size_t *n)
{
	struct rst_special *b = calloc(r->mm->n_vmas + extra, sizeof(*b));
	*n = 0;
	for (size_t i = 0; b && i < r->mm->n_vmas; i++)
		if (r->mm->vmas[i]->kind != VMA_KIND__VMA_VSYSCALL) {
			b[*n].start = r->mm->vmas[i]->start;
			b[(*n)++].end = r->mm->vmas[i]->end;
		}
	return b;
}

int rst_gadget_map(struct rst *r)
{
	static const uint8_t code[] = { 0x0f, 0x05, 0xcc };	/* syscall; int3 */
	/* at GADGET_CLONE: syscall (clone3); the new thread then loops: pause() */
	static const uint8_t clone_code[] = { 0x0f, 0x05, 0xb8, __NR_pause, 0, 0, 0, 0x0f, 0x05, 0xeb, 0xf7 };
	struct proc_vma *v;
	size_t nv, n;
	uint64_t g = 0;
	int e = proc_parse_smaps(r->pid, &v, &nv);
	if (e < 0)
		return pr_err_ret(e, "cannot read the mappings of stub %d", r->pid);
	struct rst_special *b = busy_spans(r, nv, &n);
	for (size_t i = 0; b && i < nv; i++)
		if (v[i].kind != PVMA_VSYSCALL)
			b[n++] = (struct rst_special){ v[i].start, v[i].end };
	proc_vmas_free(v, nv);
	e = b ? gap_find(b, n, RST_GADGET_LEN, &g) : -ENOMEM;
	free(b);
	if (e < 0)
		return e;
	long res = rst_call(r, "mmap(gadget)", __NR_mmap, g, RST_GADGET_LEN, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (res < 0)
		return (int)res;
	if ((uint64_t)res != g)
		return pr_err_ret(-EFAULT, "gadget landed at %#lx, wanted %#llx", res, (unsigned long long)g);
	r->gadget = g;
	if ((e = remote_write(&r->rt, g, code, sizeof(code))) < 0 ||
	    (e = remote_write(&r->rt, g + GADGET_CLONE, clone_code, sizeof(clone_code))) < 0)
		return pr_err_ret(e, "cannot write the gadget");
	if ((res = rst_call(r, "mprotect(gadget)", __NR_mprotect, g, RST_PAGE, PROT_READ | PROT_EXEC,
			    0, 0, 0)) < 0)
		return (int)res;
	r->rt.sc_ip = g;
	r->rt.sc_int3 = true;
	r->rt.scratch = g + RST_PAGE;
	r->rt.scratch_len = RST_SCRATCH_LEN;
	return 0;
}

static int specials_move(struct rst *r, uint64_t base, uint64_t to_base, bool park)
{
	for (int k = 0; k < RST_SP_NR; k++) {
		const struct rst_special *o = &r->own_sp[k];
		uint64_t len = o->end - o->start, from, to;
		if (!o->end)
			continue;
		from = park ? o->start : base + (o->start - r->own_sp[RST_SP_VVAR].start);
		to = park ? to_base + (o->start - r->own_sp[RST_SP_VVAR].start) : r->dumped_sp[k].start;
		long res = rst_call(r, "mremap(vdso)", __NR_mremap, from, len, len,
				    MREMAP_MAYMOVE | MREMAP_FIXED, to, 0);
		if (res < 0)
			return (int)res;
	}
	return 0;
}

static int stub_unmap_all(struct rst *r)
{
	struct proc_vma *v;
	size_t n;
	int e = proc_parse_smaps(r->pid, &v, &n);
	if (e < 0)
		return pr_err_ret(e, "cannot read the mappings of stub %d", r->pid);
	for (size_t i = 0; i < n && e == 0; i++) {
		if (v[i].kind == PVMA_VDSO || v[i].kind == PVMA_VVAR || v[i].kind == PVMA_VVAR_VCLOCK ||
		    v[i].kind == PVMA_VSYSCALL ||
		    (v[i].start >= r->gadget && v[i].end <= r->gadget + RST_GADGET_LEN))
			continue;
		long res = rst_call(r, "munmap", __NR_munmap, v[i].start, v[i].end - v[i].start, 0, 0, 0, 0);
		e = res < 0 ? (int)res : 0;
	}
	proc_vmas_free(v, n);
	return e;
}

int rst_mm_clear(struct rst *r)
{
	struct rst_special *b;
	size_t n;
	uint64_t park = 0, lo = UINT64_MAX, hi = 0;
	int e;

	if ((e = stub_unmap_all(r)) < 0)
		return e;
	if (!r->own_sp[RST_SP_VVAR].end)
		return pr_err_ret(-EOPNOTSUPP, "no [vvar] here: unsupported vdso layout");
	b = busy_spans(r, RST_SP_NR + 1, &n);
	if (!b)
		return -ENOMEM;
	for (int k = 0; k < RST_SP_NR; k++) {
		if (!r->own_sp[k].end)
			continue;
		b[n++] = r->own_sp[k];
		lo = min_t(uint64_t, lo, r->own_sp[k].start);
		hi = max_t(uint64_t, hi, r->own_sp[k].end);
	}
	b[n++] = (struct rst_special){ r->gadget, r->gadget + RST_GADGET_LEN };
	/* own layout starts at [vvar]: specials_move offsets from it */
	e = lo != r->own_sp[RST_SP_VVAR].start ?
		pr_err_ret(-EOPNOTSUPP, "[vvar] is not the lowest special mapping here") :
		gap_find(b, n, hi - lo, &park);
	free(b);
	if (e < 0 || (e = specials_move(r, 0, park, true)) < 0 || (e = specials_move(r, park, 0, false)) < 0)
		return e;
	r->vdso_sc_ip = r->vdso_sc_ip - r->own_sp[RST_SP_VDSO].start + r->dumped_sp[RST_SP_VDSO].start;
	return 0;
}

int rst_gadget_unmap(struct rst *r)
{
	r->rt.sc_ip = r->vdso_sc_ip;
	r->rt.sc_int3 = false;
	r->rt.scratch = 0;
	r->rt.scratch_len = 0;
	long res = rst_call(r, "munmap(gadget)", __NR_munmap, r->gadget, RST_GADGET_LEN, 0, 0, 0, 0);
	return res < 0 ? (int)res : 0;
}

/* ---- threads --------------------------------------------------------------------- */
/*
 * Threads other than the leader are created after the address space is complete, by
 * a clone3 (CLONE_THREAD, set_tid) injected into the leader at gadget+GADGET_CLONE.
 * That call is single-stepped (the leader stops right after it); the new thread, not
 * traced, runs the gadget's next bytes: a `pause` loop with every signal blocked
 * (inherited), touching no memory. We then PTRACE_SEIZE + INTERRUPT it and drive it
 * like the leader: its own state (altstack, name, robust list, tid address, rseq,
 * timer slack, credentials) is per thread in the kernel, so it is injected in it.
 */
static int threads_load(struct rst *r)
{
	size_t n = r->pst->n_threads;
	int e;

	if (n < 1 || n > RST_MAX_THREADS || r->pst->threads[0] != (uint32_t)r->pid)
		return pr_err_ret(-EINVAL, "pstree.img: %zu threads, the leader not first", n);
	r->thr = calloc(n, sizeof(*r->thr));
	if (!r->thr)
		return -ENOMEM;
	for (size_t i = 1; i < n; i++) {
		uint32_t tid = r->pst->threads[i];
		struct rst_thread *t = &r->thr[r->n_thr];
		char name[64];
		for (size_t j = 0; j < i; j++)
			if (r->pst->threads[j] == tid || tid < 2 || tid > 4194304)
				return pr_err_ret(-EINVAL, "pstree.img: bad or repeated thread id %u", tid);
		e = img_read_one(r->d, img_name(name, "core-%u.img", tid), IMG_MAGIC_CORE,
				 &core_entry__descriptor, (ProtobufCMessage **)&t->core);
		if (e < 0)
			return e == -ENOENT ? pr_err_ret(e, "'%s' is missing", name) : e;
		t->tid = (pid_t)tid;
		r->n_thr++;
		if (!t->core->thread)
			return pr_err_ret(-EINVAL, "'%s' lacks thread state", name);
		if ((e = rst_thread_validate(t->core->thread, t->tid)) < 0)
			return e;
	}
	return 0;
}

static int thread_create(struct rst *r, struct rst_thread *t)
{
	uint64_t tid = (uint64_t)t->tid;
	struct rst_clone_args ca = {
		.flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM,
		.set_tid_size = 1,
	};
	uint64_t ta = rst_put(r, 128, &tid, sizeof(tid)), a;
	long res;
	int st, e;

	ca.set_tid = ta;
	a = rst_put(r, 0, &ca, sizeof(ca));
	r->rt.sc_ip = r->gadget + GADGET_CLONE;
	r->rt.sc_int3 = false;
	res = a && ta ? rst_callq(r, __NR_clone3, a, sizeof(ca), 0, 0, 0, 0) : -EFAULT;
	r->rt.sc_ip = r->gadget;
	r->rt.sc_int3 = true;
	if (res == -EEXIST)
		return pr_err_ret(-EEXIST, "thread id %d is already in use", t->tid);
	if (res < 0)
		return pr_err_ret((int)res, "cannot create thread %d", t->tid);
	if (res != t->tid)
		return pr_err_ret(-EINVAL, "thread %d was created as %ld", t->tid, res);
	if (ptrace(PTRACE_SEIZE, t->tid, 0, (void *)(long)PTRACE_O_EXITKILL) < 0)
		return pr_perror("PTRACE_SEIZE thread %d", t->tid);
	t->seized = true;
	if (ptrace(PTRACE_INTERRUPT, t->tid, 0, 0) < 0)
		return pr_perror("PTRACE_INTERRUPT thread %d", t->tid);
	if ((st = ptrace_wait_stop(t->tid, STUB_STOP_TIMEOUT_MS)) < 0)
		return pr_err_ret(st, "thread %d did not stop", t->tid);
	if ((e = remote_init(&t->rt, t->tid, r->gadget)) < 0)
		return e;
	t->rt_ready = true;
	t->rt.scratch = r->gadget + RST_PAGE;
	t->rt.scratch_len = RST_SCRATCH_LEN;
	return 0;
}

static int threads_setup(struct rst *r)
{
	for (size_t i = 0; i < r->n_thr; i++) {
		struct rst_thread *t = &r->thr[i];
		const ThreadCoreEntry *th = t->core->thread;
		int e = thread_create(r, t);
		if (e < 0)
			return e;
		r->cur = &t->rt;
		if ((e = rst_thread_state(r, th)) == 0)
			e = rst_thread_sched(r, t->tid, th);
		r->cur = &r->rt;
		if (e < 0 || (e = rst_thread_pending(r, t->tid, th)) < 0)
			return e;
	}
	return 0;
}

/* Credentials are per thread: the leader's via r->rt, then each thread's. */
static int threads_creds(struct rst *r)
{
	int e = rst_creds(r);
	for (size_t i = 0; i < r->n_thr && e == 0; i++) {
		r->cur = &r->thr[i].rt;
		e = rst_creds(r);
		r->cur = &r->rt;
	}
	return e;
}

static int threads_regs(struct rst *r)
{
	int e = rst_regs(r);
	for (size_t i = 0; i < r->n_thr && e == 0; i++)
		e = rst_thread_regs(r, r->thr[i].tid, r->thr[i].core->thread);
	return e;
}

static int threads_detach(struct rst *r)
{
	for (size_t i = 0; i < r->n_thr; i++) {
		struct rst_thread *t = &r->thr[i];
		if (ptrace(PTRACE_DETACH, t->tid, NULL, NULL) < 0)
			return pr_perror("PTRACE_DETACH from thread %d", t->tid);
		t->seized = false;
		remote_forget(&t->rt);
		t->rt_ready = false;
	}
	return 0;
}

/* Rollback and clean-up of the threads (the leader's SIGKILL killed them). */
static void threads_free(struct rst *r, bool killed)
{
	for (size_t i = 0; i < r->n_thr; i++) {
		struct rst_thread *t = &r->thr[i];
		int st;
		if (t->rt_ready)
			remote_forget(&t->rt);
		while (killed && t->seized && waitpid(t->tid, &st, __WALL) < 0 && errno == EINTR)
			;
		if (t->core)
			core_entry__free_unpacked(t->core, NULL);
	}
	free(r->thr);
}

/* ---- finishing ------------------------------------------------------------------- */

static int pidfile_write(struct rst *r)
{
	char buf[32];
	int fd, e;
	if (!r->o->pidfile)
		return 0;
	fd = open(r->o->pidfile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return pr_perror("cannot write pidfile '%s'", r->o->pidfile);
	e = write_full(fd, buf, (size_t)snprintf(buf, sizeof(buf), "%d\n", r->pid));
	close(fd);
	return e < 0 ? pr_err_ret(e, "cannot write pidfile '%s'", r->o->pidfile) : 0;
}

static int detach(struct rst *r)
{
	if (ptrace(PTRACE_DETACH, r->pid, NULL, NULL) < 0)
		return pr_perror("PTRACE_DETACH from %d", r->pid);
	r->traced = false;
	remote_forget(&r->rt);
	r->rt_ready = false;
	return 0;
}

static int wait_task(struct rst *r, int *status)
{
	for (;;) {
		pid_t p = waitpid(r->pid, status, 0);
		if (p == r->pid)
			return 0;
		if (p < 0 && errno != EINTR)
			return pr_perror("waitpid(%d)", r->pid);
	}
}

static int rst_stage_finish(struct rst *r, int e)
{
	bool killed = e < 0 && r->child > 0;

	if (killed)
		kill(r->child, SIGKILL);
	threads_free(r, killed);	/* reaps seized threads: the leader is reaped after them */
	if (killed) {
		int st;
		while (waitpid(r->child, &st, __WALL) < 0 && errno == EINTR)
			;
		if (r->o->pidfile)
			unlink(r->o->pidfile);
	}
	if (r->rt_ready)
		remote_forget(&r->rt);
	fs_rst_free(r->fs);
	rst_pagemap_free(r->pm_head, r->pm, r->n_pm);
	free(r->vma_wr);
	if (r->mm)
		mm_entry__free_unpacked(r->mm, NULL);
	if (r->core)
		core_entry__free_unpacked(r->core, NULL);
	if (r->pst)
		pstree_entry__free_unpacked(r->pst, NULL);
	img_dir_free(r->d);
	return e;
}

int restore_main(const struct ferry_opts *o, int *status)
{
	struct rst r = { .o = o };

	r.cur = &r.rt;
	uint64_t t0 = now_ns();
	int e;

	if ((e = images_load(&r)) < 0 || (e = fs_rst_prepare(r.d, r.pid, o->shell_job, &r.fs)) < 0 ||
	    (e = stub_create(&r)) < 0 || (e = remote_start(&r)) < 0 || (e = rst_gadget_map(&r)) < 0 ||
	    (e = rst_rseq_unregister(&r)) < 0 || (e = rst_mm_clear(&r)) < 0 ||
	    (e = rst_mm_build(&r)) < 0 || (e = rst_mm_fields(&r)) < 0 ||
	    (e = rst_task_state(&r)) < 0 || (e = threads_setup(&r)) < 0 || (e = rst_rlimits(&r)) < 0 ||
	    (e = rst_sched(&r)) < 0 || (e = threads_creds(&r)) < 0 || (e = rst_gadget_unmap(&r)) < 0 ||
	    (e = threads_regs(&r)) < 0 || (e = pidfile_write(&r)) < 0 || (e = threads_detach(&r)) < 0 ||
	    (e = detach(&r)) < 0)
		return rst_stage_finish(&r, e < 0 ? e : -EINVAL);
	pr_debug("process %d restored in %llu us", r.pid, (unsigned long long)(now_ns() - t0) / 1000);
	r.child = 0;	/* it runs now: no rollback */
	if (!o->detach)
		e = wait_task(&r, status);
	return rst_stage_finish(&r, e);
}
