/*
 * rst-mem: the address space of the restored task.
 *
 * Validation (before the stub exists) checks mm-<pid>.img and pagemap-<pid>.img against
 * each other: VMAs page aligned, sorted, disjoint, below RST_TASK_SIZE, known kinds and
 * flags; pagemap runs sorted, disjoint, each wholly inside ordinary (non-special) VMAs,
 * the present-page count equal to the head's. Building (stub driven remotely): every VMA
 * is mmap'ed MAP_FIXED with its final prot plus PROT_WRITE where pages will be written
 * (private and shared-anonymous VMAs), advice applied, page data streamed from
 * pages-<id>.img into a large buffer and written with process_vm_writev in batches of
 * up to RST_IOV iovecs (falling back to /proc/PID/mem), the hash checked by
 * img_stream_finish before anything runs, and the final prot set. PE_PARENT runs are
 * then filled from the older rounds of a pre-dump chain (rst-chain.c).
 *
 * Typical workload: a few dozen VMAs, 1 MiB .. several GiB of pages.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <linux/prctl.h>

#include "common/log.h"
#include "common/util.h"
#include "engine/restore.h"
#include "engine/rst-warm.h"
#include "img/img.h"

#define RST_BUF	     (8u << 20) /* page data buffer */
#define RST_IOV	     1024	/* remote iovecs per process_vm_writev */
#define POPULATE_MIN 64		/* pages: pre-fault runs at least this long */
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

static bool vma_special(const VmaEntry *v)
{
	return v->kind == VMA_KIND__VMA_VDSO || v->kind == VMA_KIND__VMA_VVAR ||
	       v->kind == VMA_KIND__VMA_VVAR_VCLOCK || v->kind == VMA_KIND__VMA_VSYSCALL;
}

static bool vma_anon(const VmaEntry *v)
{
	return v->kind == VMA_KIND__VMA_ANON || v->kind == VMA_KIND__VMA_SHMEM_ANON;
}

/* Pages of a shared file mapping live in the file: we never add PROT_WRITE there. */
static bool vma_writable_for_us(const VmaEntry *v)
{
	return !(v->kind == VMA_KIND__VMA_FILE && (v->flags & MAP_SHARED));
}

static int vma_check(const VmaEntry *v, size_t i)
{
	const uint32_t fl_ok =
		MAP_SHARED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_GROWSDOWN | MAP_NORESERVE;
	uint32_t share = v->flags & (MAP_SHARED | MAP_PRIVATE);

	if (v->kind == VMA_KIND__VMA_VSYSCALL)
		return 0;
	if (v->start >= v->end || v->start % RST_PAGE || v->end % RST_PAGE ||
	    v->end > RST_TASK_SIZE || v->start < RST_PAGE || v->pgoff % RST_PAGE)
		goto bad;
	if ((v->prot & ~(uint32_t)(PROT_READ | PROT_WRITE | PROT_EXEC)) || (v->flags & ~fl_ok) ||
	    (share != MAP_SHARED && share != MAP_PRIVATE) || (v->madv & ~0x3fULL))
		goto bad;
	if ((unsigned)v->kind > VMA_KIND__VMA_VSYSCALL)
		goto bad;
	if (v->kind == VMA_KIND__VMA_FILE &&
	    (!v->path || v->path[0] != '/' || strlen(v->path) >= RST_SCRATCH_LEN))
		goto bad;
	if (v->kind == VMA_KIND__VMA_SHMEM_ANON && share != MAP_SHARED)
		goto bad;
	if (v->kind == VMA_KIND__VMA_ANON && share != MAP_PRIVATE)
		goto bad;
	return 0;
bad:
	pr_err("mm image: VMA %zu (%#llx-%#llx prot %#x flags %#x kind %d) is invalid", i,
	       (unsigned long long)v->start, (unsigned long long)v->end, v->prot, v->flags,
	       v->kind);
	return -EINVAL;
}

static int vmas_validate(struct rst *r)
{
	MmEntry *mm = r->mm;
	uint64_t prev_end = 0;

	if (mm->n_vmas == 0 || mm->n_vmas > RST_MAX_VMAS)
		return pr_err_ret(-EINVAL, "mm image: %zu VMAs", mm->n_vmas);
	for (size_t i = 0; i < mm->n_vmas; i++) {
		const VmaEntry *v = mm->vmas[i];
		int e = vma_check(v, i);
		if (e < 0)
			return e;
		if (v->start < prev_end)
			return pr_err_ret(-EINVAL,
					  "mm image: VMA %zu at %#llx overlaps or is unsorted", i,
					  (unsigned long long)v->start);
		prev_end = v->end;
		int k = v->kind == VMA_KIND__VMA_VDSO	       ? RST_SP_VDSO
			: v->kind == VMA_KIND__VMA_VVAR	       ? RST_SP_VVAR
			: v->kind == VMA_KIND__VMA_VVAR_VCLOCK ? RST_SP_VCLOCK
							       : -1;
		if (k < 0)
			continue;
		if (r->dumped_sp[k].end)
			return pr_err_ret(-EINVAL, "mm image: two VMAs of special kind %d",
					  v->kind);
		r->dumped_sp[k].start = v->start;
		r->dumped_sp[k].end = v->end;
	}
	r->vma_wr = calloc(mm->n_vmas, 1);
	return r->vma_wr ? 0 : -ENOMEM;
}

/* Index of the VMA containing addr (binary search; VMAs are validated sorted), or -1. */
ssize_t rst_vma_find(const MmEntry *mm, uint64_t addr)
{
	size_t lo = 0, hi = mm->n_vmas;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (addr < mm->vmas[mid]->start)
			hi = mid;
		else if (addr >= mm->vmas[mid]->end)
			lo = mid + 1;
		else
			return (ssize_t)mid;
	}
	return -1;
}

/* Every page of [a, a+len) must lie in consecutive ordinary VMAs; marks them. */
static int range_covered(struct rst *r, uint64_t a, uint64_t end)
{
	while (a < end) {
		ssize_t i = rst_vma_find(r->mm, a);
		if (i < 0 || vma_special(r->mm->vmas[i]))
			return -EINVAL;
		r->vma_wr[i] = 1;
		a = r->mm->vmas[i]->end;
	}
	return 0;
}

static int pm_cmp(const void *a, const void *b)
{
	const PagemapEntry *x = *(PagemapEntry *const *)a, *y = *(PagemapEntry *const *)b;
	return x->vaddr < y->vaddr ? -1 : x->vaddr > y->vaddr;
}

/* Runs must not overlap. The format says sorted, but page data follows entry order, so
 * we check on a sorted copy and accept any order (writes go in entry order). */
static int pagemap_disjoint(struct rst *r)
{
	PagemapEntry **c = malloc((r->n_pm ? r->n_pm : 1) * sizeof(*c));
	int e = 0;

	if (!c)
		return -ENOMEM;
	memcpy(c, r->pm, r->n_pm * sizeof(*c));
	qsort(c, r->n_pm, sizeof(*c), pm_cmp);
	for (size_t i = 1; i < r->n_pm && !e; i++)
		if (c[i]->vaddr < c[i - 1]->vaddr + (uint64_t)c[i - 1]->nr_pages * RST_PAGE)
			e = pr_err_ret(-EINVAL, "pagemap: runs at %#llx and %#llx overlap",
				       (unsigned long long)c[i - 1]->vaddr,
				       (unsigned long long)c[i]->vaddr);
	free(c);
	return e;
}

static int pagemap_validate(struct rst *r)
{
	uint64_t present = 0;
	bool parent = false;

	for (size_t i = 0; i < r->n_pm; i++) {
		const PagemapEntry *p = r->pm[i];
		uint64_t len = (uint64_t)p->nr_pages * RST_PAGE;
		if (p->vaddr % RST_PAGE || p->nr_pages == 0 || p->vaddr >= RST_TASK_SIZE ||
		    len > RST_TASK_SIZE - p->vaddr ||
		    (p->flags != PE_PRESENT && p->flags != PE_ZERO && p->flags != PE_PARENT))
			return pr_err_ret(
				-EINVAL,
				"pagemap entry %zu (%#llx, %u pages, flags %#x) is invalid", i,
				(unsigned long long)p->vaddr, p->nr_pages, p->flags);
		if (range_covered(r, p->vaddr, p->vaddr + len) < 0)
			return pr_err_ret(-EINVAL,
					  "pagemap entry %zu (%#llx, %u pages) is not inside "
					  "ordinary VMAs",
					  i, (unsigned long long)p->vaddr, p->nr_pages);
		if (p->flags == PE_PRESENT)
			present += p->nr_pages;
		parent |= p->flags == PE_PARENT;
	}
	if (present != r->pm_head->nr_pages)
		return pr_err_ret(-EINVAL, "pagemap: entries hold %llu pages, head says %llu",
				  (unsigned long long)present,
				  (unsigned long long)r->pm_head->nr_pages);
	if (parent && !(img_dir_inventory(r->d)->parent && img_dir_inventory(r->d)->parent[0]))
		return pr_err_ret(-EINVAL,
				  "pagemap refers to a parent round but the inventory names none");
	return pagemap_disjoint(r);
}

/* Mapped files must exist before anything is created; a different inode is suspicious
 * (the file was replaced since the dump) but may be legitimate after a copy: warn. */
static int vmas_files_check(struct rst *r)
{
	const char *last = NULL;
	struct stat st;

	if (strcmp(r->core->task->root, "/"))
		return 0; /* paths resolve inside the task's root: checked when opened */
	if (stat(r->mm->exe_path, &st) < 0)
		return pr_perror("executable '%s'", r->mm->exe_path);
	for (size_t i = 0; i < r->mm->n_vmas; i++) {
		const VmaEntry *v = r->mm->vmas[i];
		if (v->kind != VMA_KIND__VMA_FILE || v->has_file_id ||
		    (last && !strcmp(last, v->path)))
			continue; /* a memfd (file_id) comes from files.img, not a path */
		last = v->path;
		if (stat(v->path, &st) < 0)
			return pr_perror("file '%s' mapped at %#llx", v->path,
					 (unsigned long long)v->start);
		if (v->has_ino && v->ino != st.st_ino)
			pr_warn("file '%s' mapped at %#llx was replaced since the dump (inode %llu, now %llu)",
				v->path, (unsigned long long)v->start, (unsigned long long)v->ino,
				(unsigned long long)st.st_ino);
	}
	return 0;
}

int rst_mem_validate(struct rst *r)
{
	int e;
	if ((e = vmas_validate(r)) < 0 || (e = pagemap_validate(r)) < 0 ||
	    (e = vmas_files_check(r)) < 0)
		return e;
	for (int k = 0; k < RST_SP_NR; k++) {
		const struct rst_special *a = &r->dumped_sp[k], *b = &r->own_sp[k];
		bool same = (a->end - a->start) == (b->end - b->start);
		if (same && a->end && b->end && r->dumped_sp[RST_SP_VDSO].end)
			same = a->start - r->dumped_sp[RST_SP_VDSO].start ==
			       b->start - r->own_sp[RST_SP_VDSO].start;
		if (!same)
			return pr_err_ret(
				-EXDEV,
				"vdso layout differs from this kernel's "
				"(mapping %d: dumped %#llx bytes, here %#llx): cross-kernel "
				"restore is not supported",
				k, (unsigned long long)(a->end - a->start),
				(unsigned long long)(b->end - b->start));
	}
	if (!r->own_sp[RST_SP_VDSO].end)
		return pr_err_ret(-EOPNOTSUPP, "this process has no [vdso]: cannot restore");
	return 0;
}

/* ---- building -------------------------------------------------------------------- */

int rst_open(struct rst *r, struct rst_batch *b, const char *path, int flags)
{
	size_t len = strlen(path) + 1;
	int e = rst_batch_room(b, 1, len), i;
	uint64_t p = e < 0 ? 0 : rst_batch_put(b, path, len);

	if (!p)
		return e < 0 ? e : -EFAULT;
	if ((i = rst_batch_add(b, "open", __NR_open, p, (unsigned)flags | O_CLOEXEC, 0, 0, 0, 0)) >=
	    0)
		rst_batch_whatf(b, i, "open('%.60s')", path);
	return i;
}

static int vma_advise(struct rst_batch *b, const VmaEntry *v)
{
	static const struct {
		uint32_t bit;
		int advice;
		const char *name;
	} adv[] = {
		{ VMA_MADV_DONTFORK, MADV_DONTFORK, "DONTFORK" },
		{ VMA_MADV_DONTDUMP, MADV_DONTDUMP, "DONTDUMP" },
		{ VMA_MADV_HUGEPAGE, MADV_HUGEPAGE, "HUGEPAGE" },
		{ VMA_MADV_NOHUGEPAGE, MADV_NOHUGEPAGE, "NOHUGEPAGE" },
		{ VMA_MADV_MERGEABLE, MADV_MERGEABLE, "MERGEABLE" },
		{ VMA_MADV_WIPEONFORK, MADV_WIPEONFORK, "WIPEONFORK" },
	};
	for (size_t k = 0; k < ARRAY_SIZE(adv); k++) {
		if (!(v->madv & adv[k].bit))
			continue;
		int i = rst_batch_add(b, "madvise", __NR_madvise, v->start, v->end - v->start,
				      adv[k].advice, 0, 0, 0);
		if (i < 0)
			return i;
		rst_batch_warn(b, i);
		rst_batch_whatf(b, i, "madvise(%s) on %#llx-%#llx", adv[k].name,
				(unsigned long long)v->start, (unsigned long long)v->end);
	}
	return 0;
}

/* VMA i receives pages right after its neighbour i-1 that receives pages too, and the
 * two would be merged by the kernel if mapped with the same temporary prot (adjacent,
 * same kind, share type, prot, file and contiguous offset). In the dumped process they
 * were two VMAs (e.g. distinct anon_vmas); mapping i PROT_NONE until its pages are
 * written (through /proc/PID/mem) keeps them apart: each gets its own anon_vma. */
static bool vma_merges_with(const struct rst *r, size_t i, size_t k)
{
	const VmaEntry *v = r->mm->vmas[i], *p = r->mm->vmas[k];
	/* k has its own anon_vma already: its pages written before (1) or moved in from
	 * the warm staging (3, mapped before every other VMA: rst_vmas_map) */
	bool anon_vma = r->vma_wr[k] == 3 || (k < i && r->vma_wr[k] == 1);
	if (!anon_vma || (k < i ? p->end != v->start : v->end != p->start) || p->kind != v->kind ||
	    p->flags != v->flags || p->prot != v->prot || !vma_writable_for_us(v))
		return false;
	if (v->kind != VMA_KIND__VMA_FILE)
		return v->kind == VMA_KIND__VMA_ANON;
	const VmaEntry *lo = k < i ? p : v, *hi = k < i ? v : p;
	return p->path && v->path && !strcmp(p->path, v->path) && !p->has_file_id &&
	       !v->has_file_id && lo->pgoff + (lo->end - lo->start) == hi->pgoff;
}

static bool vma_would_merge(const struct rst *r, size_t i)
{
	return (i && vma_merges_with(r, i, i - 1)) ||
	       (i + 1 < r->mm->n_vmas && vma_merges_with(r, i, i + 1));
}

/* The read-only file of consecutive VMAs, opened once in the task. */
struct fd_cache {
	const char *path; /* NULL: none open */
	struct rst_bval fd;
};

static int fd_cache_close(struct rst_batch *b, struct fd_cache *c)
{
	int i = 0;
	if (c->path && (i = rst_batch_add(b, "close", __NR_close, 0, 0, 0, 0, 0, 0)) >= 0)
		rst_batch_use(b, i, 1, &c->fd);
	c->path = NULL;
	return i < 0 ? i : 0;
}

/* Queue what gives the fd VMA v maps (3 entries at most): the entry whose result it
 * is; *fresh: a new fd, to close after the mmap. */
static int vma_fd(struct rst *r, struct rst_batch *b, const VmaEntry *v, bool rw,
		  struct fd_cache *c, struct rst_bval *fd, bool *fresh)
{
	int e, i;
	*fresh = true;
	if (v->has_file_id) /* a memfd the restorer holds (files.img) */
		i = rst_tree_file_open(r, b, v, rw ? O_RDWR : O_RDONLY);
	else if (rw)
		i = rst_open(r, b, v->path, O_RDWR);
	else {
		*fresh = false;
		if (c->path && !strcmp(c->path, v->path)) {
			*fd = c->fd;
			return 0;
		}
		if ((e = fd_cache_close(b, c)) < 0)
			return e;
		if ((i = rst_open(r, b, v->path, O_RDONLY)) < 0)
			return i;
		c->path = v->path;
		rst_batch_produce(b, i, &c->fd);
		rst_batch_out(b, i, &c->fd.val); /* c outlives the runs (rst_vmas_map) */
		*fd = c->fd;
		return 0;
	}
	if (i >= 0)
		rst_batch_produce(b, i, fd);
	return i < 0 ? i : 0;
}

/* Queue the mapping of VMA i (and its advice). */
static int vma_map(struct rst *r, struct rst_batch *b, size_t i, struct fd_cache *c)
{
	const VmaEntry *v = r->mm->vmas[i];
	uint32_t prot = v->prot;
	unsigned long flags =
		MAP_FIXED | (v->flags & (MAP_SHARED | MAP_PRIVATE | MAP_GROWSDOWN | MAP_NORESERVE));
	bool rw = !vma_anon(v) && (v->flags & MAP_SHARED) && (v->prot & PROT_WRITE), fresh = false;
	struct rst_bval fd = { 0 };
	int e, k;

	if (r->vma_wr[i] && vma_writable_for_us(v))
		prot |= PROT_WRITE;
	if (r->vma_wr[i] && vma_would_merge(r, i)) {
		prot = PROT_NONE;
		r->vma_wr[i] = 2; /* vmas_protect sets its prot */
	}
	/* the open, mmap and close of one VMA in the same run */
	if ((e = rst_batch_room(b, 5, 4096)) < 0)
		return e;
	if (r->warm && r->warm->vkind[i] == WARM_MOVE) { /* staged: moved into place */
		r->vma_wr[i] = 3; /* read/write now: vmas_protect sets its prot */
		return (e = rst_warm_move(r, b, i)) < 0 ? e : vma_advise(b, v);
	}
	if (v->kind == VMA_KIND__VMA_SHMEM_ANON && v->has_shmid) {
		/* the same object as in an earlier task of the tree: map that one */
		if ((e = rst_tree_shm_map(r, b, v, prot)) != 0)
			return e < 0 ? e : vma_advise(b, v);
	}
	if (vma_anon(v))
		flags |= MAP_ANONYMOUS;
	else if ((e = vma_fd(r, b, v, rw, c, &fd, &fresh)) < 0)
		return e;
	if ((k = rst_batch_add(b, "mmap", __NR_mmap, v->start, v->end - v->start, prot, flags,
			       (unsigned long)-1, vma_anon(v) ? 0 : v->pgoff)) < 0)
		return k;
	if (!vma_anon(v))
		rst_batch_use(b, k, 5, &fd);
	rst_batch_expect(b, k, (long)v->start);
	rst_batch_whatf(b, k, "mmap %#llx-%#llx ('%.40s')", (unsigned long long)v->start,
			(unsigned long long)v->end, v->path ? v->path : "anon");
	if (fresh && (k = rst_batch_add(b, "close", __NR_close, 0, 0, 0, 0, 0, 0)) >= 0)
		rst_batch_use(b, k, 1, &fd);
	if (k < 0 || (e = vma_advise(b, v)) < 0)
		return k < 0 ? k : e;
	return v->kind == VMA_KIND__VMA_SHMEM_ANON ? rst_tree_shm_add(r, v) : 0;
}

int rst_vmas_map(struct rst *r, struct rst_batch *b)
{
	struct fd_cache c = { 0 };
	int e = 0, i;

	/* the VMAs staged by a warm restorer first: those mapped next to them see them */
	for (int pass = r->warm ? 0 : 1; pass < 2; pass++)
		for (size_t k = 0; k < r->mm->n_vmas && e == 0; k++)
			if (!vma_special(r->mm->vmas[k]) &&
			    (r->warm && r->warm->vkind[k] == WARM_MOVE) == (pass == 0))
				e = vma_map(r, b, k, &c);
	if (e == 0)
		e = fd_cache_close(b, &c);
	/* what is left of the warm slab: reserved space, pieces of VMAs restored cold */
	if (e == 0 && r->warm && r->warm->slab &&
	    (i = rst_batch_add(b, "munmap(warm slab)", __NR_munmap, (uint64_t)r->warm->slab,
			       r->warm->slab_len, 0, 0, 0, 0)) < 0)
		e = i;
	/* the exe for PR_SET_MM_MAP (rst_mm_fields), known once this run is done */
	r->exe_fd = -1;
	if (e == 0 && (i = rst_open(r, b, r->mm->exe_path, O_RDONLY)) >= 0)
		rst_batch_out(b, i, &r->exe_fd);
	else if (e == 0)
		e = i;
	/* c.fd receives its result in this flush: c must outlive it */
	return e < 0 ? e : rst_batch_flush(b);
}

int rst_vmas_protect(struct rst *r, struct rst_batch *b)
{
	for (size_t i = 0; i < r->mm->n_vmas; i++) {
		const VmaEntry *v = r->mm->vmas[i];
		if (r->vma_wr[i] == 3) { /* moved from the warm staging: read/write */
			if (v->prot == (PROT_READ | PROT_WRITE))
				continue;
		} else if (vma_special(v) || !r->vma_wr[i] || !vma_writable_for_us(v) ||
			   ((v->prot & PROT_WRITE) && r->vma_wr[i] != 2))
			continue;
		int k = rst_batch_add(b, "mprotect", __NR_mprotect, v->start, v->end - v->start,
				      v->prot, 0, 0, 0);
		if (k < 0)
			return k;
	}
	return 0;
}

/* ---- pages ----------------------------------------------------------------------- */
/*
 * A reader thread streams pages-<id>.img (read + hash) into RST_SLOTS buffers while the
 * main thread writes the previous buffer into the task: reading/hashing (~2 GiB/s here)
 * and the first-touch faults of the writes (~1 GiB/s) overlap instead of adding up.
 * Each batch's local iovecs point into one slot (or the zero buffer), so a slot is
 * handed back to the reader only after the batch that uses it is flushed.
 */
#define RST_SLOTS 2

struct pw_slot {
	uint8_t *buf;
	size_t len;
	bool full;
};

struct pw {
	struct rst *r;
	struct img_stream *s;
	/* reader <-> writer hand-off */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct pw_slot slot[RST_SLOTS];
	int rerr;      /* reader error (-errno), logged by the reader */
	bool stop;     /* writer gave up */
	uint64_t left; /* bytes the reader has still to read */
	/* writer */
	unsigned cur; /* slot being consumed (sequence number) */
	size_t pos;   /* consumed bytes of slot cur */
	bool have;    /* slot cur acquired */
	struct iovec liov[RST_IOV], riov[RST_IOV];
	size_t n, used;
	uint64_t bytes, slow, t_write;
};

static const uint8_t zero_buf[64 << 10];

static void *pw_reader(void *arg)
{
	struct pw *w = arg;
	for (unsigned k = 0; w->left; k++) {
		struct pw_slot *sl = &w->slot[k % RST_SLOTS];
		pthread_mutex_lock(&w->mu);
		while (sl->full && !w->stop)
			pthread_cond_wait(&w->cv, &w->mu);
		bool stop = w->stop;
		pthread_mutex_unlock(&w->mu);
		if (stop)
			break;
		size_t len = min_t(uint64_t, w->left, RST_BUF);
		int e = img_stream_read(w->s, sl->buf, len);
		pthread_mutex_lock(&w->mu);
		if (e < 0)
			w->rerr = e;
		sl->len = len;
		sl->full = e == 0;
		w->left -= len;
		pthread_cond_broadcast(&w->cv);
		pthread_mutex_unlock(&w->mu);
		if (e < 0)
			break;
	}
	return NULL;
}

/* Write the batch: process_vm_writev, then /proc/PID/mem for what it could not. */
static int pw_flush(struct pw *w)
{
	uint64_t t0 = now_ns();
	size_t i = 0;

	while (i < w->n) {
		ssize_t n = process_vm_writev(w->r->pid, w->liov + i, w->n - i, w->riov + i,
					      w->n - i, 0);
		size_t done = n > 0 ? (size_t)n : 0;
		while (i < w->n && done >= w->riov[i].iov_len)
			done -= w->riov[i++].iov_len;
		if (i == w->n)
			break;
		/* iovec i stopped after done bytes: a page we may not write (read-only, or
		 * PROT_NONE until its pages are in), which /proc/PID/mem writes; then the
		 * next iovecs go by process_vm_writev again */
		size_t len = w->riov[i].iov_len - done;
		uint64_t to = (uint64_t)w->riov[i].iov_base + done;
		int e = remote_write(&w->r->rt, to, (uint8_t *)w->liov[i].iov_base + done, len);
		if (e < 0)
			return pr_err_ret(e, "cannot write %zu bytes at %#llx in task %d", len,
					  (unsigned long long)to, w->r->pid);
		w->slow += len;
		i++;
	}
	w->bytes += w->used;
	w->t_write += now_ns() - t0;
	w->used = w->n = 0;
	return 0;
}

/* Make slot cur hold unread data: release the consumed one, wait for the next. */
static int pw_next_slot(struct pw *w)
{
	int e = 0;
	if (w->have) {
		if ((e = pw_flush(w)) < 0)
			return e;
		pthread_mutex_lock(&w->mu);
		w->slot[w->cur % RST_SLOTS].full = false;
		pthread_cond_broadcast(&w->cv);
		pthread_mutex_unlock(&w->mu);
		w->cur++;
		w->pos = 0;
		w->have = false;
	}
	pthread_mutex_lock(&w->mu);
	while (!w->slot[w->cur % RST_SLOTS].full && !w->rerr && w->left)
		pthread_cond_wait(&w->cv, &w->mu);
	if (!w->slot[w->cur % RST_SLOTS].full)
		e = w->rerr ? w->rerr : -EBADMSG; /* validated counts make EOF impossible */
	pthread_mutex_unlock(&w->mu);
	w->have = e == 0;
	return e;
}

/* Queue len bytes for addr: page data from the stream, or zeroes. */
static int pw_add(struct pw *w, bool data, uint64_t addr, uint64_t len)
{
	while (len) {
		const uint8_t *src;
		size_t chunk;
		int e;
		if (data) {
			if ((!w->have || w->pos == w->slot[w->cur % RST_SLOTS].len) &&
			    (e = pw_next_slot(w)) < 0)
				return e;
			struct pw_slot *sl = &w->slot[w->cur % RST_SLOTS];
			chunk = min_t(uint64_t, len, sl->len - w->pos);
			src = sl->buf + w->pos;
			w->pos += chunk;
		} else {
			chunk = min_t(uint64_t, len, sizeof(zero_buf));
			src = zero_buf;
		}
		w->liov[w->n] = (struct iovec){ (void *)src, chunk };
		w->riov[w->n] = (struct iovec){ (void *)addr, chunk };
		w->n++;
		w->used += chunk;
		addr += chunk;
		len -= chunk;
		if (w->n == RST_IOV && (e = pw_flush(w)) < 0)
			return e;
	}
	return 0;
}

/* Pre-fault long runs in one remote call (measured slower here: docs/restore.md). */
static bool populate_enabled(void)
{
	const char *e = getenv("FERRY_RST_POPULATE");
	return e && e[0] == '1';
}

static int pages_write(struct rst *r, struct pw *w)
{
	bool populate = populate_enabled();

	for (size_t i = 0; i < r->n_pm; i++) {
		const PagemapEntry *p = r->pm[i];
		uint64_t len = (uint64_t)p->nr_pages * RST_PAGE;
		ssize_t vi = rst_vma_find(r->mm, p->vaddr);
		int e;

		if (p->flags == PE_PARENT) /* pages_from_parents() */
			continue;
		/* fresh anonymous memory reads as zero already */
		if (p->flags == PE_ZERO && vi >= 0 && vma_anon(r->mm->vmas[vi]) &&
		    p->vaddr + len <= r->mm->vmas[vi]->end)
			continue;
		if (populate && p->nr_pages >= POPULATE_MIN) {
			long res;
			(void)remote_syscall(&r->rt, &res, __NR_madvise, p->vaddr, len,
					     MADV_POPULATE_WRITE, 0, 0, 0);
		}
		if ((e = pw_add(w, p->flags == PE_PRESENT, p->vaddr, len)) < 0)
			return e;
	}
	return pw_flush(w);
}

static int pw_init(struct pw *w, struct rst *r, struct img_stream *s)
{
	w->r = r;
	w->s = s;
	w->left = s ? img_stream_left(s) : 0;
	/* a small process's pages fit one small buffer (fresh 8 MiB ones cost page faults
	 * and an munmap each) */
	size_t sz = w->left < RST_BUF ? ROUND_UP(w->left ? w->left : 1, RST_PAGE) : RST_BUF;
	for (int k = 0; k < RST_SLOTS; k++)
		if (!(w->slot[k].buf = aligned_alloc(RST_PAGE, sz)))
			return -ENOMEM;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	return 0;
}

static void pw_fini(struct pw *w)
{
	for (int k = 0; k < RST_SLOTS; k++)
		free(w->slot[k].buf);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
	free(w);
}

static int pages_open(struct rst *r, struct img_stream **s)
{
	char name[64];
	int e;

	*s = NULL;
	img_name(name, "pages-%u.img", r->pm_head->pages_id);
	if (r->pm_head->nr_pages == 0 && !img_dir_has(r->d, name))
		return 0;
	if ((e = img_stream_open(r->d, name, s)) < 0)
		return e;
	if (img_stream_left(*s) != r->pm_head->nr_pages * RST_PAGE) {
		unsigned long long have = img_stream_left(*s);
		img_stream_free(*s);
		*s = NULL;
		return pr_err_ret(-EBADMSG, "'%s' holds %llu bytes, pagemap says %llu pages", name,
				  have, (unsigned long long)r->pm_head->nr_pages);
	}
	return 0;
}

static int pages_restore(struct rst *r)
{
	struct img_stream *s;
	struct pw *w;
	pthread_t th;
	uint64_t t0 = now_ns();
	int e = pages_open(r, &s), te;

	if (e < 0)
		return e;
	w = calloc(1, sizeof(*w));
	if (!w || pw_init(w, r, s) < 0) {
		if (w)
			pw_fini(w);
		img_stream_free(s);
		return -ENOMEM;
	}
	/* what fits in one buffer is read first, here: a thread per small process of a
	 * tree cost more than it saves (~5 ms each on a loaded 2-core machine) */
	bool inline_read = w->left <= RST_BUF;
	if (inline_read)
		pw_reader(w);
	else if ((te = pthread_create(&th, NULL, pw_reader, w)) != 0) {
		pw_fini(w);
		img_stream_free(s);
		return pr_err_ret(-te, "pthread_create");
	}
	e = pages_write(r, w);
	pthread_mutex_lock(&w->mu);
	w->stop = true;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	if (!inline_read)
		pthread_join(th, NULL);
	if (s) /* all bytes read and the hash matches, or the task never runs */
		e = e == 0 ? img_stream_finish(s) : (img_stream_free(s), e);
	uint64_t dt = now_ns() - t0;
	pr_debug(
		"pages: %llu bytes in %llu us (%.2f GiB/s; writing %llu us), %llu via /proc/PID/mem",
		(unsigned long long)w->bytes, (unsigned long long)dt / 1000,
		dt ? (double)w->bytes / (1 << 30) / ((double)dt / 1e9) : 0.0,
		(unsigned long long)w->t_write / 1000, (unsigned long long)w->slow);
	pw_fini(w);
	return e;
}

int rst_mm_pages(struct rst *r)
{
	if (r->warm)
		return rst_warm_pages(r);
	int e = pages_restore(r);
	return e < 0 ? e : rst_pages_from_parents(r);
}
