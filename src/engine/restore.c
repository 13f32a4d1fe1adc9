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
#include "engine/rst-warm.h"
#include "fs/fs.h"
#include "img/img.h"

#define MAX_PM_ENTRIES (16u << 20)
#define GAP_MARGIN     (16UL << 20) /* keep away from neighbours (stack guard gap is 1 MiB) */
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

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
	/* a process the warm staging covers takes its pages from there, never from the
	 * older rounds: their pagemaps are not read (tens of ms for a large delta chain,
	 * inside a migration's freeze) */
	if (r->o && r->o->warm)
		r->warm = rst_warm_proc(r->o->warm, r->ipid, r->mm->n_vmas);
	if ((e = rst_threads_load(r)) < 0 ||
	    (e = rst_pagemap_load(r->d, r->ipid, &r->pm_head, &r->pm, &r->n_pm)) < 0 ||
	    (!r->own_sp[RST_SP_VDSO].end && (e = rst_own_specials(getpid(), r->own_sp)) < 0) ||
	    (e = rst_core_validate(r)) < 0 || (e = rst_mem_validate(r)) < 0 ||
	    (!r->warm && (e = rst_chain_validate(r)) < 0))
		return e;
	return 0;
}

/* Ours never move (we do not remap our own vdso): read once per process. smaps walks
 * the page tables of everything mapped, which in a warm restorer holding gigabytes of
 * staging costs tens of ms, inside the migration's freeze (rst_warm_new reads it while
 * the staging is empty). */
static struct {
	pid_t pid;
	int e;
	struct rst_special sp[RST_SP_NR];
} own_cache;

int rst_own_specials(pid_t pid, struct rst_special sp[RST_SP_NR])
{
	struct proc_vma *v;
	size_t n;
	bool self = pid == getpid();
	if (self && own_cache.pid == pid) {
		memcpy(sp, own_cache.sp, sizeof(own_cache.sp));
		return own_cache.e;
	}
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
	if (self) {
		own_cache.pid = pid;
		own_cache.e = e;
		memcpy(own_cache.sp, sp, sizeof(own_cache.sp));
	}
	return e;
}

/* ---- remote control -------------------------------------------------------------- */

/* The syscall instruction of our own [vdso]: every stub is a copy of us, so it is at
 * the same address in each (remote_init checks the bytes), found once. */
static uint64_t own_vdso_syscall(const struct rst *r)
{
	static uint64_t ip;
	const struct rst_special *v = &r->own_sp[RST_SP_VDSO];
	for (uint64_t a = v->start; !ip && v->end && a + 1 < v->end; a++)
		if (((const uint8_t *)a)[0] == 0x0f && ((const uint8_t *)a)[1] == 0x05)
			ip = a;
	return ip;
}

/* Drive the stub, which blocks in its hold code in the gadget it mapped itself. */
static int remote_start(struct rst *r)
{
	int e = remote_init(&r->rt, r->pid, r->gadget);
	if (e < 0)
		return e;
	r->rt_ready = true;
	r->rt.scratch = r->gadget + RST_PAGE;
	r->rt.scratch_len = RST_SCRATCH_LEN;
	if (!r->rt.sc_int3 || r->vdso_sc_ip < r->own_sp[RST_SP_VDSO].start ||
	    r->vdso_sc_ip >= r->own_sp[RST_SP_VDSO].end)
		return pr_err_ret(-EINVAL, "no syscall instruction in [vdso] or in the gadget");
	return 0;
}

int rst_maps_read(pid_t pid, struct rst_special **out, size_t *n)
{
	char path[64], *buf, *line;
	size_t cap = 0;
	int e;

	*out = NULL;
	*n = 0;
	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	if ((e = read_file(path, &buf, NULL, 16u << 20)) < 0)
		return pr_err_ret(e, "cannot read %s", path);
	for (line = buf; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
		unsigned long long s, t;
		if (sscanf(line, "%llx-%llx", &s, &t) != 2 || t > RST_TASK_SIZE)
			continue; /* [vsyscall] is above the user range */
		if (*n == cap) {
			void *nw = realloc(*out, (cap = cap ? 2 * cap : 64) * sizeof(**out));
			if (!nw) {
				free(buf);
				return -ENOMEM;
			}
			*out = nw;
		}
		(*out)[(*n)++] = (struct rst_special){ s, t };
	}
	free(buf);
	return 0;
}

/* ---- gadget and special mappings ------------------------------------------------- */

static int span_cmp(const void *a, const void *b)
{
	const struct rst_special *x = a, *y = b;
	return x->start < y->start ? -1 : x->start > y->start;
}

void rst_spans_sort(struct rst_special *v, size_t n)
{
	qsort(v, n, sizeof(*v), span_cmp);
}

/* Highest address for len bytes, GAP_MARGIN away from every busy span. */
static int gap_find(struct rst_special *busy, size_t n, uint64_t len, uint64_t *out)
{
	uint64_t top = RST_TASK_SIZE - GAP_MARGIN;
	rst_spans_sort(busy, n);
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

int rst_gadget_place(struct rst *r, const struct rst_special *own, size_t n_own)
{
	size_t n;
	struct rst_special *busy = busy_spans(r, n_own, &n);
	int e;

	if (!busy)
		return -ENOMEM;
	r->vdso_sc_ip = own_vdso_syscall(r); /* here: before any tracer thread runs */
	memcpy(busy + n, own, n_own * sizeof(*own));
	e = gap_find(busy, n + n_own, RST_GADGET_LEN, &r->gadget);
	free(busy);
	return e;
}

void rst_stub_ranges(const struct rst *r, uint64_t out[2 * RST_STUB_RANGES + 2])
{
	/* kept: the specials (one span), the gadget, the warm slab (rst-warm.h) */
	struct rst_special keep[3] = { { UINT64_MAX, 0 },
				       { r->gadget, r->gadget + RST_GADGET_LEN },
				       { UINT64_MAX, UINT64_MAX } };
	uint64_t from = RST_PAGE;
	size_t k = 0;

	for (int i = 0; i < RST_SP_NR; i++)
		if (r->own_sp[i].end) {
			keep[0].start = min_t(uint64_t, keep[0].start, r->own_sp[i].start);
			keep[0].end = max_t(uint64_t, keep[0].end, r->own_sp[i].end);
		}
	if (r->warm && r->warm->slab)
		keep[2] = (struct rst_special){ (uint64_t)r->warm->slab,
						(uint64_t)r->warm->slab + r->warm->slab_len };
	for (int i = 0; i < 2; i++) /* sort the three by start */
		for (int j = 0; j < 2 - i; j++)
			if (keep[j].start > keep[j + 1].start) {
				struct rst_special x = keep[j];
				keep[j] = keep[j + 1];
				keep[j + 1] = x;
			}
	for (int i = 0; i <= 3; i++) {
		if (i < 3 && keep[i].start == UINT64_MAX)
			continue;
		uint64_t to = i < 3 ? keep[i].start : RST_TASK_SIZE;
		if (to > from) {
			out[2 * k] = from;
			out[2 * k++ + 1] = to - from;
		}
		if (i < 3 && keep[i].end > from)
			from = keep[i].end;
	}
	out[2 * k] = out[2 * k + 1] = 0;
}

static int specials_move(struct rst *r, struct rst_batch *b, uint64_t base, uint64_t to_base,
			 bool park)
{
	for (int k = 0; k < RST_SP_NR; k++) {
		const struct rst_special *o = &r->own_sp[k];
		uint64_t len = o->end - o->start, from, to;
		if (!o->end)
			continue;
		from = park ? o->start : base + (o->start - r->own_sp[RST_SP_VVAR].start);
		to = park ? to_base + (o->start - r->own_sp[RST_SP_VVAR].start)
			  : r->dumped_sp[k].start;
		int i = rst_batch_add(b, "mremap(vdso)", __NR_mremap, from, len, len,
				      MREMAP_MAYMOVE | MREMAP_FIXED, to, 0);
		if (i < 0)
			return i;
		rst_batch_expect(b, i, (long)to);
	}
	return 0;
}

int rst_mm_clear(struct rst *r, struct rst_batch *b)
{
	struct rst_special *busy;
	size_t n;
	uint64_t park = 0, lo = UINT64_MAX, hi = 0;
	int e;

	if (!r->own_sp[RST_SP_VVAR].end)
		return pr_err_ret(-EOPNOTSUPP, "no [vvar] here: unsupported vdso layout");
	busy = busy_spans(r, RST_SP_NR + 2, &n);
	if (!busy)
		return -ENOMEM;
	for (int k = 0; k < RST_SP_NR; k++) {
		if (!r->own_sp[k].end)
			continue;
		busy[n++] = r->own_sp[k];
		lo = min_t(uint64_t, lo, r->own_sp[k].start);
		hi = max_t(uint64_t, hi, r->own_sp[k].end);
	}
	busy[n++] = (struct rst_special){ r->gadget, r->gadget + RST_GADGET_LEN };
	if (r->warm && r->warm->slab) /* still mapped: the VMAs move out of it later */
		busy[n++] = (struct rst_special){ (uint64_t)r->warm->slab,
						  (uint64_t)r->warm->slab + r->warm->slab_len };
	/* own layout starts at [vvar]: specials_move offsets from it */
	e = lo != r->own_sp[RST_SP_VVAR].start
		    ? pr_err_ret(-EOPNOTSUPP, "[vvar] is not the lowest special mapping here")
		    : gap_find(busy, n, hi - lo, &park);
	free(busy);
	if (e < 0 || (e = specials_move(r, b, 0, park, true)) < 0 ||
	    (e = specials_move(r, b, park, 0, false)) < 0)
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

/* The stub's own descriptors (hold and report pipes) are not the process's; the stub
 * may have closed the report fd itself already (EBADF is fine). */
static int stub_fds_close(struct rst *r, struct rst_batch *b)
{
	int i = 0;
	if (r->hold_fd >= 0)
		i = rst_batch_add(b, "close(hold fd)", __NR_close, r->hold_fd, 0, 0, 0, 0, 0);
	if (i >= 0 && r->rep_fd >= 0 && r->rep_fd != r->hold_fd &&
	    (i = rst_batch_add(b, "close(report fd)", __NR_close, r->rep_fd, 0, 0, 0, 0, 0)) >= 0)
		rst_batch_allow(b, i, EBADF);
	r->hold_fd = r->rep_fd = -1;
	return i < 0 ? i : 0;
}

/* Up to the pages: the stub's fds, rseq, specials moved, every VMA mapped (one run).
 * The stub unmapped everything else itself before blocking (rst-stub.c). */
static int build_mm(struct rst *r, struct rst_batch *b)
{
	int e;
	if ((e = stub_fds_close(r, b)) < 0 || (e = rst_rseq_unregister(r, b)) < 0 ||
	    (e = rst_mm_clear(r, b)) < 0 || (e = rst_vmas_map(r, b)) < 0)
		return e;
	return rst_mm_pages(r);
}

int rst_build(struct rst *r)
{
	uint64_t t0 = now_ns();
	struct rst_batch *b;
	int e;

	if ((e = remote_start(r)) < 0)
		return e;
	if (!(b = r->b = rst_batch_new(r)))
		return -ENOMEM;
	/* batches: the address space; then mm fields, task state, threads created and
	 * POSIX timers; one in each thread; creds last, after limits set from outside */
	if ((e = build_mm(r, b)) < 0 || (e = rst_vmas_protect(r, b)) < 0 ||
	    (e = rst_tree_memfds_close(r, b)) < 0 || (e = rst_mm_fields(r, b)) < 0 ||
	    (e = rst_task_state(r, b)) < 0 || (e = rst_threads_clone(r, b)) < 0 ||
	    (e = rst_posix_timers(r, b)) < 0 || (e = rst_batch_flush(b)) < 0 ||
	    (e = rst_threads_setup(r, b)) < 0 || (e = rst_rlimits(r)) < 0 ||
	    (e = rst_sched(r, b)) < 0 || (e = rst_threads_creds(r, b)) < 0 ||
	    (e = rst_batch_flush(b)) < 0 || (e = rst_gadget_unmap(r)) < 0)
		return e;
	rst_batch_free(b);
	r->b = NULL;
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
	rst_batch_free(r->b);
	r->b = NULL;
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
