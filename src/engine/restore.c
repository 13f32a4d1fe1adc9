/*
 * restore: one process of a restored tree (rst-tree.c drives the tree): load and
 * validate its images (rst_images_load), then build it by remote control
 * (rst_build), set its final registers (rst_finish) and let it go (rst_detach).
 *
 * Method (DESIGN.md "Restore by remote control"): the stub (our code, on a copy of our
 * memory, created by rst-stub.c with the dumped PID) has set its session, group, umask,
 * cwd, root, personality and fds, and blocks in a read; the restorer has seized and
 * interrupted it there. From then on it runs no code of its own: every change is a
 * syscall we inject (remote.h), first at a syscall instruction of its vdso, then at a
 * gadget page mapped where both layouts are free. docs/restore.md lists the stages.
 *
 * Invariants:
 *  - Everything from the images is loaded and validated before any stub exists; only
 *    page data is streamed later, and its hash is verified before the task runs.
 *  - The caller rolls back (rst-tree.c): on any failure every task is killed with
 *    SIGKILL and reaped; a restored process never runs unless every step worked.
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

#define MAX_PM_ENTRIES (16u << 20)
#define GAP_MARGIN     (16UL << 20) /* keep away from neighbours (stack guard gap is 1 MiB) */
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

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
		return e == -ENOENT ? pr_err_ret(e, "'%s/%s' is missing", img_dir_path(d), name)
				    : e;
	if (img_buf_next(b, &pagemap_head__descriptor, &m) != 1)
		goto bad;
	*head = (PagemapHead *)m;
	while ((e = img_buf_next(b, &pagemap_entry__descriptor, &m)) == 1) {
		if (*n == cap) {
			void *nw =
				cap < MAX_PM_ENTRIES
					? realloc(*pm, (cap = cap ? cap * 2 : 256) * sizeof(**pm))
					: NULL;
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

int rst_images_load(struct rst *r)
{
	char name[64];
	int e;

	e = img_read_one(r->d, img_name(name, "core-%d.img", r->ipid), IMG_MAGIC_CORE,
			 &core_entry__descriptor, (ProtobufCMessage **)&r->core);
	if (e == 0)
		e = img_read_one(r->d, img_name(name, "mm-%d.img", r->ipid), IMG_MAGIC_MM,
				 &mm_entry__descriptor, (ProtobufCMessage **)&r->mm);
	if (e < 0)
		return e == -ENOENT ? pr_err_ret(e, "'%s' is missing", name) : e;
	if ((e = rst_threads_load(r)) < 0 ||
	    (e = rst_pagemap_load(r->d, r->ipid, &r->pm_head, &r->pm, &r->n_pm)) < 0 ||
	    (!r->own_sp[RST_SP_VDSO].end && (e = rst_own_specials(getpid(), r->own_sp)) < 0) ||
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
		int k = v[i].kind == PVMA_VDSO		? RST_SP_VDSO
			: v[i].kind == PVMA_VVAR	? RST_SP_VVAR
			: v[i].kind == PVMA_VVAR_VCLOCK ? RST_SP_VCLOCK
							: -1;
		if (k >= 0) {
			sp[k].start = v[i].start;
			sp[k].end = v[i].end;
		}
		if (v[i].kind == PVMA_VDSO && (v[i].vmflags & VMF_SEALED))
			e = pr_err_ret(-EOPNOTSUPP,
				       "[vdso] is sealed on this kernel: it cannot be moved");
	}
	proc_vmas_free(v, n);
	return e;
}

/* ---- remote control -------------------------------------------------------------- */

static int remote_start(struct rst *r)
{
	int e = remote_init(&r->rt, r->pid, 0);
	if (e < 0)
		return e;
	r->rt_ready = true;
	r->vdso_sc_ip = r->rt.sc_ip;
	if (r->vdso_sc_ip < r->own_sp[RST_SP_VDSO].start ||
	    r->vdso_sc_ip >= r->own_sp[RST_SP_VDSO].end)
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
	static const uint8_t code[] = { 0x0f, 0x05, 0xcc }; /* syscall; int3 */
	/* at RST_GADGET_CLONE: syscall (clone3); the new thread then loops: pause() */
	static const uint8_t clone_code[] = { 0x0f, 0x05, 0xb8, __NR_pause, 0,	 0,
					      0,    0x0f, 0x05, 0xeb,	    0xf7 };
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
		return pr_err_ret(-EFAULT, "gadget landed at %#lx, wanted %#llx", res,
				  (unsigned long long)g);
	r->gadget = g;
	if ((e = remote_write(&r->rt, g, code, sizeof(code))) < 0 ||
	    (e = remote_write(&r->rt, g + RST_GADGET_CLONE, clone_code, sizeof(clone_code))) < 0)
		return pr_err_ret(e, "cannot write the gadget");
	if ((res = rst_call(r, "mprotect(gadget)", __NR_mprotect, g, RST_PAGE,
			    PROT_READ | PROT_EXEC, 0, 0, 0)) < 0)
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
		to = park ? to_base + (o->start - r->own_sp[RST_SP_VVAR].start)
			  : r->dumped_sp[k].start;
		long res = rst_call(r, "mremap(vdso)", __NR_mremap, from, len, len,
				    MREMAP_MAYMOVE | MREMAP_FIXED, to, 0);
		if (res < 0)
			return (int)res;
	}
	return 0;
}

static bool stub_vma_kept(const struct rst *r, const struct proc_vma *v)
{
	return v->kind == PVMA_VDSO || v->kind == PVMA_VVAR || v->kind == PVMA_VVAR_VCLOCK ||
	       v->kind == PVMA_VSYSCALL ||
	       (v->start >= r->gadget && v->end <= r->gadget + RST_GADGET_LEN);
}

/* One munmap per run of consecutive stub VMAs between kept ones (holes inside a run
 * are fine for munmap): ~5 calls instead of one per VMA (~30 for ferry's layout). */
static int stub_unmap_all(struct rst *r)
{
	struct proc_vma *v;
	size_t n;
	int e = proc_parse_smaps(r->pid, &v, &n);
	if (e < 0)
		return pr_err_ret(e, "cannot read the mappings of stub %d", r->pid);
	for (size_t i = 0; i < n && e == 0;) {
		size_t j = i;
		if (stub_vma_kept(r, &v[i])) {
			i++;
			continue;
		}
		while (j + 1 < n && !stub_vma_kept(r, &v[j + 1]))
			j++;
		long res = rst_call(r, "munmap", __NR_munmap, v[i].start, v[j].end - v[i].start, 0,
				    0, 0, 0);
		e = res < 0 ? (int)res : 0;
		i = j + 1;
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
	e = lo != r->own_sp[RST_SP_VVAR].start
		    ? pr_err_ret(-EOPNOTSUPP, "[vvar] is not the lowest special mapping here")
		    : gap_find(b, n, hi - lo, &park);
	free(b);
	if (e < 0 || (e = specials_move(r, 0, park, true)) < 0 ||
	    (e = specials_move(r, park, 0, false)) < 0)
		return e;
	r->vdso_sc_ip =
		r->vdso_sc_ip - r->own_sp[RST_SP_VDSO].start + r->dumped_sp[RST_SP_VDSO].start;
	return 0;
}

int rst_gadget_unmap(struct rst *r)
{
	r->rt.sc_ip = r->vdso_sc_ip;
	r->rt.sc_int3 = false;
	r->rt.scratch = 0;
	r->rt.scratch_len = 0;
	long res =
		rst_call(r, "munmap(gadget)", __NR_munmap, r->gadget, RST_GADGET_LEN, 0, 0, 0, 0);
	return res < 0 ? (int)res : 0;
}

/* ---- per process: build, finish, detach, free ------------------------------------ */

int rst_build(struct rst *r)
{
	uint64_t t0 = now_ns();
	long res;
	int e;

	if ((e = remote_start(r)) < 0)
		return e;
	/* the stub's blocking fd (hold pipe) and report fd are not the process's; the
	 * stub may have closed the report fd itself already (EBADF is fine) */
	if (r->hold_fd >= 0 &&
	    (res = rst_call(r, "close(hold fd)", __NR_close, r->hold_fd, 0, 0, 0, 0, 0)) < 0)
		return (int)res;
	if (r->rep_fd >= 0 && r->rep_fd != r->hold_fd &&
	    (res = rst_callq(r, __NR_close, r->rep_fd, 0, 0, 0, 0, 0)) < 0 && res != -EBADF)
		return pr_err_ret((int)res, "close(report fd) in task %d", r->pid);
	r->hold_fd = r->rep_fd = -1;
	if ((e = rst_gadget_map(r)) < 0 || (e = rst_rseq_unregister(r)) < 0 ||
	    (e = rst_mm_clear(r)) < 0 || (e = rst_mm_build(r)) < 0 ||
	    (e = rst_tree_memfds_close(r)) < 0 || (e = rst_mm_fields(r)) < 0 ||
	    (e = rst_task_state(r)) < 0 || (e = rst_threads_setup(r)) < 0 ||
	    (e = rst_posix_timers(r)) < 0 || (e = rst_rlimits(r)) < 0 || (e = rst_sched(r)) < 0 ||
	    (e = rst_threads_creds(r)) < 0 || (e = rst_gadget_unmap(r)) < 0)
		return e;
	pr_debug("process %d (host %d) built in %llu us", r->ipid, r->pid,
		 (unsigned long long)(now_ns() - t0) / 1000);
	return 0;
}

int rst_finish(struct rst *r)
{
	return rst_threads_regs(r);
}

int rst_detach(struct rst *r)
{
	int e = rst_threads_detach(r);
	if (e < 0)
		return e;
	if (ptrace(PTRACE_DETACH, r->pid, NULL, NULL) < 0)
		return pr_perror("PTRACE_DETACH from %d", r->pid);
	r->traced = false;
	remote_forget(&r->rt);
	r->rt_ready = false;
	return 0;
}

void rst_free(struct rst *r)
{
	rst_threads_free(r, false);
	if (r->rt_ready)
		remote_forget(&r->rt);
	r->rt_ready = false;
	rst_pagemap_free(r->pm_head, r->pm, r->n_pm);
	r->pm_head = NULL;
	r->pm = NULL;
	r->n_pm = 0;
	free(r->vma_wr);
	r->vma_wr = NULL;
	if (r->mm)
		mm_entry__free_unpacked(r->mm, NULL);
	if (r->core)
		core_entry__free_unpacked(r->core, NULL);
	r->mm = NULL;
	r->core = NULL;
}
