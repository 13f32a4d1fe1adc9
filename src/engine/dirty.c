/*
 * dirty: written-page tracking of a running process (dirty.h, docs/dirty.md).
 *
 * A tracker holds a sorted, disjoint list of ranges, each one kind:
 *   TR_UFFD  registered (mode WP) with our userfaultfd: PAGEMAP_SCAN answers for it;
 *   TR_HASH  per-page XXH3_64 of the previous scan (hash mode);
 *   TR_FULL  untracked (the process's own uffd, refused by the kernel): reported whole;
 *   TR_PRESENT  PROT_NONE, not registered (markers would populate page tables for the
 *            whole reservation, 1/512 of its size): its present pages every round.
 * Invariant: the list describes the registrations as of the last arm/scan; a scan
 * rebuilds it from the caller's current VMA list, so memory that appeared since
 * (no `uw` in smaps, or outside every old TR_UFFD range) is reported whole and
 * registered, and vanished memory is dropped.
 *
 * Kernel facts (6.18, headers 6.1): PAGEMAP_SCAN and the WP_ASYNC/WP_UNPOPULATED
 * features are defined here. PAGEMAP_SCAN stops when its vector is full and returns
 * walk_end; regions past walk_end are ignored and the walk continues there.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/log.h"
#include "common/util.h"
#include "engine/dirty.h"

#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#define DIRTY_UFFD_FEATURES (UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED)

struct dirty_page_region {
	uint64_t start, end, categories;
};
struct dirty_pm_scan_arg {
	uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
	uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
#define DIRTY_PAGEMAP_SCAN    _IOWR('f', 16, struct dirty_pm_scan_arg)
#define PM_SCAN_WP_MATCHING   (1 << 0)
#define PM_SCAN_CHECK_WPASYNC (1 << 1)
#define PAGE_IS_WRITTEN	      (1 << 1)
#define PAGE_IS_PRESENT	      (1 << 3)
#define PAGE_IS_SWAPPED	      (1 << 4)

#define PME_PRESENT (1ULL << 63)
#define PME_SWAPPED (1ULL << 62)

#define STATE_MAGIC	 0x64595246u /* "FRYd" */
#define STATE_VERSION	 1
#define STATE_MAX_RANGES (1u << 20)

enum trange_kind { TR_UFFD = 1, TR_HASH = 2, TR_FULL = 3, TR_PRESENT = 4 };

struct trange {
	uint64_t start, end;
	uint32_t kind;
	uint64_t *hash; /* TR_HASH: one per page; NULL = no previous round */
};

struct dirty_tracker {
	pid_t pid;
	uint64_t starttime; /* /proc/PID/stat field 22: detects pid reuse */
	enum dirty_mode mode;
	int uffd;    /* ferry's copy, -1 in hash mode */
	int kept_fd; /* number of the target's copy, -1 when closed */
	int pagemap_fd;
	int mem_fd;	/* hash mode: /proc/PID/mem */
	uint32_t flags; /* DIRTY_ARM_SHARED_HASH kept across invocations */
	struct trange *r;
	size_t nr;
	bool defer_register;	  /* dirty_set_running: never UFFDIO_REGISTER in dirty_scan */
	int stale_closed;	  /* dirty_arm: stale tracking uffds closed in the target */
	struct dirty_range *pend; /* registered by dirty_register_new, not scanned yet */
	size_t npend;
};

struct rvec {
	struct dirty_range *v;
	size_t n, cap;
};

static size_t scan_vec_len = 512;

void dirty_set_scan_vec_len(size_t regions)
{
	scan_vec_len = regions ? regions : 512;
}

/* ---- small helpers ------------------------------------------------------------- */

static int rvec_add(struct rvec *rv, uint64_t start, uint64_t end)
{
	if (start >= end)
		return 0;
	if (rv->n && rv->v[rv->n - 1].end == start) {
		rv->v[rv->n - 1].end = end;
		return 0;
	}
	if (rv->n == rv->cap) {
		size_t cap = rv->cap ? rv->cap * 2 : 64;
		struct dirty_range *v = realloc(rv->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		rv->v = v;
		rv->cap = cap;
	}
	rv->v[rv->n++] = (struct dirty_range){ start, end };
	return 0;
}

static int range_cmp(const void *a, const void *b)
{
	const struct dirty_range *x = a, *y = b;
	return x->start < y->start ? -1 : x->start > y->start;
}

/* Sort and merge overlapping/adjacent ranges in place. */
static void rvec_normalize(struct rvec *rv)
{
	size_t j = 0;

	if (!rv->n)
		return;
	qsort(rv->v, rv->n, sizeof(*rv->v), range_cmp);
	for (size_t i = 1; i < rv->n; i++) {
		if (rv->v[i].start <= rv->v[j].end) {
			if (rv->v[i].end > rv->v[j].end)
				rv->v[j].end = rv->v[i].end;
		} else {
			rv->v[++j] = rv->v[i];
		}
	}
	rv->n = j + 1;
}

static void tranges_free(struct trange *r, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(r[i].hash);
	free(r);
}

static int trange_push(struct trange **r, size_t *n, size_t *cap, struct trange tr)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 32;
		struct trange *nr = realloc(*r, c * sizeof(*nr));
		if (!nr)
			return -ENOMEM;
		*r = nr;
		*cap = c;
	}
	(*r)[(*n)++] = tr;
	return 0;
}

/* First old range with end > addr (old ranges are sorted and disjoint). */
static size_t trange_find(const struct dirty_tracker *t, uint64_t addr)
{
	size_t lo = 0, hi = t->nr;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (t->r[mid].end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static bool vma_skipped(const struct proc_vma *v)
{
	switch (v->kind) {
	case PVMA_VDSO:
	case PVMA_VVAR:
	case PVMA_VVAR_VCLOCK:
	case PVMA_VSYSCALL:
	case PVMA_OTHER_SPECIAL:
		return true;
	default:
		return (v->vmflags & VMF_IO) != 0;
	}
}

static bool vma_foreign_uffd(const struct proc_vma *v)
{
	return (v->vmflags & (VMF_UFFD_MISSING | VMF_UFFD_WP)) != 0;
}

/* Hashed in UFFD mode too: shared VMAs with DIRTY_ARM_SHARED_HASH. */
static bool vma_hashed(const struct dirty_tracker *t, const struct proc_vma *v)
{
	return (t->flags & DIRTY_ARM_SHARED_HASH) && v->shared;
}

static int read_starttime(pid_t pid, uint64_t *out)
{
	char path[64], *buf = NULL, *p;
	size_t len;
	int r;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	r = read_file(path, &buf, &len, 4096);
	if (r < 0)
		return r;
	p = strrchr(buf, ')');
	/* fields after comm: state is field 3, starttime field 22 -> 20th token after ')' */
	for (int f = 0; p && f < 20; f++)
		p = strchr(p + 1, ' ');
	r = p ? (sscanf(p + 1, "%" SCNu64, out) == 1 ? 0 : -EINVAL) : -EINVAL;
	free(buf);
	return r;
}

static struct dirty_tracker *tracker_new(pid_t pid, int *err)
{
	struct dirty_tracker *t = calloc(1, sizeof(*t));
	char path[64];

	if (!t) {
		*err = -ENOMEM;
		return NULL;
	}
	t->pid = pid;
	t->uffd = t->kept_fd = t->mem_fd = -1;
	snprintf(path, sizeof(path), "/proc/%d/pagemap", pid);
	t->pagemap_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (t->pagemap_fd < 0 || (*err = read_starttime(pid, &t->starttime)) < 0) {
		if (t->pagemap_fd < 0)
			*err = pr_perror("open '%s'", path);
		else
			pr_err("pid %d: cannot read its start time", pid);
		dirty_free(t);
		return NULL;
	}
	return t;
}

static int tracker_open_mem(struct dirty_tracker *t)
{
	char path[64];

	if (t->mem_fd >= 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/mem", t->pid);
	t->mem_fd = open(path, O_RDONLY | O_CLOEXEC);
	return t->mem_fd < 0 ? pr_perror("open '%s'", path) : 0;
}

/* ---- uffd mode: arming ----------------------------------------------------------- */

/* Register [start, end) mode WP. 0 or -errno (not logged: the caller decides). */
static int uffd_register(int uffd, uint64_t start, uint64_t end)
{
	struct uffdio_register reg = {
		.range = { .start = start, .len = end - start },
		.mode = UFFDIO_REGISTER_MODE_WP,
	};
	return ioctl(uffd, UFFDIO_REGISTER, &reg) < 0 ? -errno : 0;
}

/* Slots of pid's current fd table (FDSize in /proc/PID/status), or -errno. */
static long fd_table_size(pid_t pid)
{
	char path[64], *buf = NULL, *p;
	size_t len;
	long n = -ENOENT;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	if (read_file(path, &buf, &len, 1 << 16) < 0)
		return -EIO;
	if ((p = strstr(buf, "\nFDSize:")))
		n = strtol(p + 8, NULL, 10);
	free(buf);
	return n;
}

/* The highest fd number of [lo, size) not open in pid, or -1. */
static long highest_free_fd(pid_t pid, long size, long lo)
{
	char path[64];
	struct dirent *e;
	bool *used = calloc((size_t)size, sizeof(*used));
	long fd = -1;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", pid);
	if (!used || !(d = opendir(path))) {
		free(used);
		return -1;
	}
	while ((e = readdir(d))) {
		char *end;
		long n = strtol(e->d_name, &end, 10);
		if (end != e->d_name && !*end && n >= 0 && n < size)
			used[n] = true;
	}
	closedir(d);
	for (long i = size - 1; i >= lo && fd < 0; i--)
		if (!used[i])
			fd = i;
	free(used);
	return fd;
}

/* The fd number kept in the target: the highest free slot of its CURRENT fd table
 * (FDSize, e.g. 63 for a small process), not above RLIMIT_NOFILE soft - 1 nor 1023.
 * Growing the table of a multi-threaded process costs a synchronize_rcu() inside the
 * freeze (10-30 ms measured here for a 64-slot table grown to reach 1023). If the
 * upper half of the table is full: RLIMIT_NOFILE soft - 1 (capped at 1023), or the
 * lowest free number from 16 below. Moves tfd there (injected F_DUPFD_CLOEXEC) and
 * returns the new number. */
static long place_kept_fd(struct remote *rt, pid_t pid, long tfd)
{
	struct rlimit rl = { .rlim_cur = 1024 };
	long want, fd, size;

	if (prlimit(pid, RLIMIT_NOFILE, NULL, &rl) < 0)
		pr_debug("prlimit(%d): %m; assuming 1024", pid);
	want = (long)min_t(uint64_t, rl.rlim_cur, 1024) - 1;
	if (want < 3)
		return -EMFILE;
	if ((size = fd_table_size(pid)) > 0) {
		long f =
			highest_free_fd(pid, min_t(long, size, want + 1), max_t(long, 3, size / 2));
		if (f >= 0)
			want = f;
	}
	fd = rcall3(rt, __NR_fcntl, tfd, F_DUPFD_CLOEXEC, want);
	if (fd == -EMFILE || fd == -EINVAL)
		fd = rcall3(rt, __NR_fcntl, tfd, F_DUPFD_CLOEXEC, want >= 19 ? want - 16 : 3);
	return fd;
}

/* DIRTY_ARM_CLOSE_STALE: close (injected) every ferry tracking uffd in the target's fd
 * table. Such a copy is left by an abandoned series (or a lost state file) and keeps
 * the VMAs registered with the old context, so ours would get EBUSY and track nothing;
 * a copy inherited by fork is idle in this process (its context is the parent's, which
 * keeps its own copy). Returns how many were closed. */
static int close_stale(struct dirty_tracker *t, struct remote *rt)
{
	char path[64];
	struct dirent *e;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", t->pid);
	if (!(d = opendir(path)))
		return 0;
	while ((e = readdir(d))) {
		char *end;
		long fd = strtol(e->d_name, &end, 10), r;
		if (end == e->d_name || *end || dirty_fd_probe(t->pid, (int)fd) != 1)
			continue;
		r = rcall1(rt, __NR_close, fd);
		if (r < 0 && r != -EBADF) {
			pr_warn("pid %d: cannot close the stale tracking fd %ld: %s", t->pid, fd,
				strerror((int)-r));
			continue;
		}
		pr_info("pid %d: closed a stale tracking userfaultfd at fd %ld (a series "
			"abandoned or without state, or inherited by fork)",
			t->pid, fd);
		n++;
	}
	closedir(d);
	return n;
}

/* Create the uffd in the target and take it. 0, or -EOPNOTSUPP when the kernel/target
 * cannot do async WP (caller falls back to hashes, reason logged), or another -errno. */
static int uffd_create(struct dirty_tracker *t, struct remote *rt, int pidfd, bool keep,
		       bool close_old)
{
	struct uffdio_api api = { .api = UFFD_API, .features = DIRTY_UFFD_FEATURES };
	long tfd, r;
	int ret = 0;

	struct proc_status st;
	if (proc_parse_status(t->pid, 0, &st) == 0 && st.seccomp) {
		/* a filter could kill the target for an unexpected syscall: inject nothing */
		pr_warn("pid %d runs under seccomp (mode %u): hash fallback", t->pid, st.seccomp);
		return -EOPNOTSUPP;
	}
	if (close_old)
		t->stale_closed = close_stale(t, rt);
	tfd = rcall1(rt, __NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (tfd == -EPERM) /* vm.unprivileged_userfaultfd=0, target without CAP_SYS_PTRACE */
		tfd = rcall1(rt, __NR_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	if (tfd == -ESRCH)
		return -ESRCH;
	if (tfd < 0) {
		pr_warn("pid %d: injected userfaultfd failed (%s): hash fallback", t->pid,
			strerror((int)-tfd));
		return -EOPNOTSUPP;
	}
	t->uffd = sys_pidfd_getfd(pidfd, (int)tfd, 0);
	if (t->uffd < 0) {
		ret = pr_err_ret(t->uffd, "pid %d: pidfd_getfd(%ld)", t->pid, tfd);
		t->uffd = -1;
		goto close_target;
	}
	if (ioctl(t->uffd, UFFDIO_API, &api) < 0) {
		pr_warn("pid %d: UFFDIO_API WP_ASYNC|WP_UNPOPULATED: %m: hash fallback", t->pid);
		ret = -EOPNOTSUPP;
		goto close_target;
	}
	if (keep) {
		r = place_kept_fd(rt, t->pid, tfd);
		if (r < 0) {
			ret = pr_err_ret((int)r, "pid %d: cannot keep the tracking fd", t->pid);
			goto close_target;
		}
		t->kept_fd = (int)r;
	}
close_target:
	r = rcall1(rt, __NR_close, tfd);
	if (r < 0 && !ret)
		ret = pr_err_ret((int)r, "pid %d: injected close(%ld)", t->pid, tfd);
	if (ret && t->kept_fd >= 0) {
		(void)rcall1(rt, __NR_close, t->kept_fd);
		t->kept_fd = -1;
	}
	if (ret && t->uffd >= 0) {
		close(t->uffd);
		t->uffd = -1;
	}
	return ret;
}

/* Sparse reservations (ASan's shadow, Go/JVM heaps reserved writable, huge never-touched
 * mmaps): a scan write-protects the holes of a registered VMA with pte markers, which
 * allocates page tables for the whole range (1/512 of its size: 128 MiB for 64 GiB, more
 * than the machine has for a sanitizer's 16 TiB shadow). A VMA of SPARSE_MIN or more
 * with fewer populated pages than 1/512 of its pages (the data then costs no more than
 * those page tables would) is not registered: it is reported whole every round, and the
 * copy selects its few populated pages (PAGEMAP_SCAN skips the holes at the upper
 * levels). Re-evaluated each time it is found unregistered: once dense, it is
 * registered like any new memory. */
#define SPARSE_MIN	(1ULL << 30)
#define SPARSE_NO_SCAN	(16ULL << 30) /* kernels without PAGEMAP_SCAN (hash mode): by size */
#define SPARSE_SCAN_VEC 64

static bool vma_sparse(const struct dirty_tracker *t, const struct proc_vma *v, uint64_t *found)
{
	uint64_t np = (v->end - v->start) / page_size, limit = np / 512, start = v->start;
	struct dirty_page_region vec[SPARSE_SCAN_VEC];

	*found = 0;
	if (v->end - v->start < SPARSE_MIN)
		return false;
	while (start < v->end && *found <= limit) {
		struct dirty_pm_scan_arg a = {
			.size = sizeof(a),
			.start = start,
			.end = v->end,
			.vec = (uintptr_t)vec,
			.vec_len = SPARSE_SCAN_VEC,
			.max_pages = limit + 1 - *found,
			.category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
			.return_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
		};
		long n = ioctl(t->pagemap_fd, DIRTY_PAGEMAP_SCAN, &a);
		if (n < 0)
			return v->end - v->start >= SPARSE_NO_SCAN;
		uint64_t next = a.walk_end;
		for (long i = 0; i < n; i++) {
			*found += (vec[i].end - vec[i].start) / page_size;
			next = max_t(uint64_t, next, vec[i].end);
		}
		if (next <= start)
			break;
		start = next;
	}
	return *found <= limit;
}

/* Log (once: quiet when it was untracked already) why v is reported whole. */
static void log_whole(const struct dirty_tracker *t, const struct proc_vma *v, bool quiet,
		      const char *why, int err)
{
	int lvl = quiet ? LOG_DEBUG : LOG_INFO;

	if (log_level >= lvl)
		log_printf(lvl, __FILE__, __LINE__,
			   "pid %d: %#" PRIx64 "-%#" PRIx64 " ('%s'): %s%s%s: "
			   "untracked, full copy each round",
			   t->pid, v->start, v->end, v->path ? v->path : "anon", why,
			   err ? ": " : "", err ? strerror(-err) : "");
}

/* Is v a sparse reservation? Then say so, once (quiet when the previous round had it
 * untracked already). */
static bool log_if_sparse(const struct dirty_tracker *t, const struct proc_vma *v, const char *why)
{
	size_t o = trange_find(t, v->start);
	uint64_t found;

	if (!vma_sparse(t, v, &found))
		return false;
	log_whole(t, v, o < t->nr && t->r[o].start <= v->start && t->r[o].kind == TR_FULL, why, 0);
	return true;
}

/* Register one VMA at arm time or when it appeared; kind of the resulting range.
 * quiet: it was untracked already (say why only once, not every round). */
static uint32_t track_new_vma(struct dirty_tracker *t, const struct proc_vma *v, bool quiet)
{
	char why[160] = "";
	uint64_t found;
	int r = 0;

	if (t->mode == DIRTY_MODE_HASH || vma_hashed(t, v))
		return (v->vmflags & VMF_UFFD_MISSING) ? TR_FULL : TR_HASH;
	if (v->prot == PROT_NONE && !vma_foreign_uffd(v))
		return TR_PRESENT;
	if (vma_foreign_uffd(v))
		snprintf(why, sizeof(why), "registered by the process's own userfaultfd");
	else if (vma_sparse(t, v, &found))
		snprintf(why, sizeof(why),
			 "sparse reservation (%" PRIu64 " MiB, %" PRIu64 " pages populated: "
			 "write-protect markers would allocate page tables for all of it)",
			 (v->end - v->start) >> 20, found);
	else if ((r = uffd_register(t->uffd, v->start, v->end)) < 0)
		snprintf(why, sizeof(why), "UFFDIO_REGISTER WP refused");
	if (!why[0])
		return TR_UFFD;
	log_whole(t, v, quiet, why, r);
	return TR_FULL;
}

static int arm_ranges(struct dirty_tracker *t, const struct proc_vma *vmas, size_t n)
{
	size_t cap = 0;

	for (size_t i = 0; i < n; i++) {
		struct trange tr = { vmas[i].start, vmas[i].end, 0, NULL };
		if (vma_skipped(&vmas[i]))
			continue;
		tr.kind = track_new_vma(t, &vmas[i], false);
		if (trange_push(&t->r, &t->nr, &cap, tr) < 0)
			return -ENOMEM;
	}
	return 0;
}

int dirty_arm(struct remote *rt, pid_t pid, int pidfd, const struct proc_vma *vmas, size_t n,
	      unsigned int flags, struct dirty_tracker **out)
{
	const char *env = getenv(DIRTY_ENV_FORCE_HASH);
	struct proc_vma *fresh = NULL;
	size_t nfresh = 0;
	struct dirty_tracker *t;
	int r = 0;

	*out = NULL;
	t = tracker_new(pid, &r);
	if (!t)
		return r;
	t->mode = DIRTY_MODE_UFFD;
	t->flags = flags & DIRTY_ARM_SHARED_HASH;
	if ((flags & DIRTY_ARM_HASH) || (env && strcmp(env, "1") == 0)) {
		pr_info("pid %d: hash-based dirty tracking (%s)", pid,
			(flags & DIRTY_ARM_HASH) ? "asked" : DIRTY_ENV_FORCE_HASH "=1");
		t->mode = DIRTY_MODE_HASH;
	} else {
		uint64_t t0 = now_ns();
		r = uffd_create(t, rt, pidfd, flags & DIRTY_ARM_KEEP,
				flags & DIRTY_ARM_CLOSE_STALE);
		pr_debug("pid %d: uffd created and taken in %.2f ms", pid, (now_ns() - t0) / 1e6);
		if (r == -EOPNOTSUPP)
			t->mode = DIRTY_MODE_HASH;
		else if (r < 0)
			goto err;
	}
	if ((t->mode == DIRTY_MODE_HASH || t->flags) && (r = tracker_open_mem(t)) < 0)
		goto err;
	if (t->stale_closed && (r = proc_parse_smaps(pid, &fresh, &nfresh)) == 0) {
		/* the VMAs the old context had registered are not uw any more */
		vmas = fresh;
		n = nfresh;
	} else if (t->stale_closed) {
		goto err;
	}
	uint64_t t1 = now_ns();
	r = arm_ranges(t, vmas, n);
	proc_vmas_free(fresh, nfresh);
	pr_debug("pid %d: %zu VMAs registered in %.2f ms", pid, t->nr, (now_ns() - t1) / 1e6);
	if (r < 0) {
		pr_err("pid %d: out of memory arming", pid);
		goto err;
	}
	*out = t;
	return 0;
err:
	if (t->kept_fd >= 0) /* leave nothing of ours in the target */
		(void)rcall1(rt, __NR_close, t->kept_fd);
	dirty_free(t); /* closing our copy ends every registration */
	return r;
}

/* ---- scanning -------------------------------------------------------------------- */

/* PAGEMAP_SCAN [start, end): with wp, the written pages, re-protected; without, the
 * present or swapped pages. To rv. 0 or -errno (not logged: -EPERM means the range is
 * not WP-async registered by anyone).
 *
 * Kernel 6.18 bug worked around here: the ioctl collects regions in an internal buffer
 * of PMD_SIZE / PAGE_SIZE (512) entries and, when the caller's vector is longer,
 * restarts its walk internally after each flush of that buffer. When such a restarted
 * walk then completes, walk_end keeps the value of the earlier stop instead of `end`,
 * and the regions found past it are returned (and, with PM_SCAN_WP_MATCHING, already
 * write-protected). Taking only what lies below walk_end (as the documentation says)
 * then loses those writes for good: a VMA with 819 written runs lost the 307 after the
 * 512th at every scan with a 1024-entry vector. So the vector never exceeds the
 * internal buffer (one internal walk per call: walk_end is exact), and every region
 * returned is taken; the next call starts past the last one. */
#define SCAN_VEC_MAX 512

static int pm_scan_range(struct dirty_tracker *t, uint64_t start, uint64_t end, struct rvec *rv,
			 bool wp)
{
	size_t cap = min_t(size_t, scan_vec_len, SCAN_VEC_MAX);
	struct dirty_page_region *vec = malloc(cap * sizeof(*vec));
	int ret = 0;

	while (vec && start < end) {
		struct dirty_pm_scan_arg a = {
			.size = sizeof(a),
			.start = start,
			.end = end,
			.vec = (uintptr_t)vec,
			.vec_len = cap,
		};
		if (wp) {
			a.flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC;
			a.category_mask = a.return_mask = PAGE_IS_WRITTEN;
		} else {
			a.category_anyof_mask = a.return_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED;
		}
		long n = ioctl(t->pagemap_fd, DIRTY_PAGEMAP_SCAN, &a);
		if (n < 0) {
			ret = -errno;
			break;
		}
		if (a.walk_end <= start || a.walk_end > end) {
			ret = -EIO; /* no progress: never loop forever on a kernel quirk */
			break;
		}
		start = a.walk_end;
		for (long i = 0; i < n && !ret; i++) {
			ret = rvec_add(rv, vec[i].start, min_t(uint64_t, vec[i].end, end));
			start = max_t(uint64_t, start, min_t(uint64_t, vec[i].end, end));
		}
	}
	if (!vec)
		ret = -ENOMEM;
	free(vec);
	return ret;
}

/* Report the parts of [s, e) not covered by an old TR_UFFD range. */
static int report_uncovered(const struct dirty_tracker *t, uint64_t s, uint64_t e, struct rvec *rv,
			    bool *overlaps)
{
	int r;

	*overlaps = false;
	for (size_t i = trange_find(t, s); i < t->nr && t->r[i].start < e; i++) {
		if (t->r[i].kind != TR_UFFD)
			continue;
		*overlaps = true;
		if (t->r[i].start > s && (r = rvec_add(rv, s, t->r[i].start)) < 0)
			return r;
		s = max_t(uint64_t, s, t->r[i].end);
	}
	return rvec_add(rv, s, e);
}

static bool pending_overlaps(const struct dirty_tracker *t, const struct proc_vma *v)
{
	for (size_t i = 0; i < t->npend; i++)
		if (t->pend[i].start < v->end && v->start < t->pend[i].end)
			return true;
	return false;
}

void dirty_set_running(struct dirty_tracker *t, bool running)
{
	t->defer_register = running;
}

int dirty_register_new(struct dirty_tracker *t, struct proc_vma *vmas, size_t n)
{
	size_t cap = 0;
	if (t->mode != DIRTY_MODE_UFFD)
		return 0;
	for (size_t i = 0; i < n; i++) {
		struct proc_vma *v = &vmas[i];
		uint64_t found;
		if (vma_skipped(v) || vma_hashed(t, v) || vma_foreign_uffd(v) ||
		    v->prot == PROT_NONE || vma_sparse(t, v, &found))
			continue; /* the scan reports a sparse one whole (log_whole there) */
		if (uffd_register(t->uffd, v->start, v->end) < 0)
			continue; /* the scan finds it without uw: untracked, whole */
		if (t->npend == cap) {
			struct dirty_range *x =
				realloc(t->pend, (cap = cap ? 2 * cap : 16) * sizeof(*x));
			if (!x)
				return -ENOMEM;
			t->pend = x;
		}
		t->pend[t->npend++] = (struct dirty_range){ v->start, v->end };
		v->vmflags |= VMF_UFFD_WP; /* as smaps would now say */
	}
	return 0;
}

void dirty_mark_registered(const struct dirty_tracker *t, struct proc_vma *vmas, size_t n)
{
	for (size_t i = 0; t->mode == DIRTY_MODE_UFFD && i < n; i++) {
		size_t o = trange_find(t, vmas[i].start);
		if (o < t->nr && t->r[o].kind == TR_UFFD && t->r[o].start <= vmas[i].start &&
		    t->r[o].end >= vmas[i].end)
			vmas[i].vmflags |= VMF_UFFD_WP;
	}
}

/* One VMA in uffd mode: its new kind; dirty ranges to rv. */
static int uffd_scan_vma(struct dirty_tracker *t, const struct proc_vma *v, struct rvec *rv,
			 uint32_t *kind)
{
	bool ours;
	int r;

	if (v->prot == PROT_NONE && !(v->vmflags & (VMF_UFFD_WP | VMF_UFFD_MISSING))) {
		/* not registered (see TR_PRESENT): only its populated pages, never whole */
		*kind = TR_PRESENT;
		r = pm_scan_range(t, v->start, v->end, rv, false);
		return r < 0 ? pr_err_ret(r, "pid %d: PAGEMAP_SCAN %#" PRIx64 "-%#" PRIx64, t->pid,
					  v->start, v->end)
			     : 0;
	}
	r = report_uncovered(t, v->start, v->end, rv, &ours);
	if (r < 0)
		return r;
	if (ours && (v->vmflags & VMF_UFFD_WP) && !(v->vmflags & VMF_UFFD_MISSING)) {
		r = pm_scan_range(t, v->start, v->end, rv, true);
		if (r == 0) {
			*kind = TR_UFFD;
			return 0;
		}
		if (r != -EPERM)
			return pr_err_ret(r, "pid %d: PAGEMAP_SCAN %#" PRIx64 "-%#" PRIx64, t->pid,
					  v->start, v->end);
		pr_warn("pid %d: %#" PRIx64 "-%#" PRIx64 " is registered, but not with our "
			"tracker: untracked, full copy",
			t->pid, v->start, v->end);
		*kind = TR_FULL;
	} else if (pending_overlaps(t, v) && (v->vmflags & VMF_UFFD_WP) &&
		   !(v->vmflags & VMF_UFFD_MISSING)) {
		/* registered by dirty_register_new while seized: its first scan reports
		 * every page; protect it now (it is reported whole this round). A part
		 * that is not ours any more (EPERM) stays untracked. */
		struct rvec scratch = { 0 };
		r = pm_scan_range(t, v->start, v->end, &scratch, true);
		free(scratch.v);
		if (r < 0 && r != -EPERM)
			return pr_err_ret(r, "pid %d: PAGEMAP_SCAN %#" PRIx64 "-%#" PRIx64, t->pid,
					  v->start, v->end);
		*kind = r == 0 ? TR_UFFD : TR_FULL;
	} else if (t->defer_register) {
		/* running target: registering from a VMA list that may be stale would
		 * split a VMA that changed meanwhile (the process then sees mremap fail
		 * with EFAULT on its own region); dirty_register_new does it seized */
		*kind = TR_FULL;
		log_if_sparse(t, v, "sparse reservation, not registered");
	} else {
		if (ours)
			pr_info("pid %d: %#" PRIx64 "-%#" PRIx64 " lost its registration "
				"(remapped): wholly dirty",
				t->pid, v->start, v->end);
		size_t o = trange_find(t, v->start);
		*kind = track_new_vma(
			t, v, o < t->nr && t->r[o].start <= v->start && t->r[o].kind == TR_FULL);
		if (*kind == TR_UFFD) {
			/* A fresh registration reports every page, holes included, at its
			 * first scan: protect it now (it is reported whole this round). */
			struct rvec scratch = { 0 };
			r = pm_scan_range(t, v->start, v->end, &scratch, true);
			free(scratch.v);
			if (r < 0)
				return pr_err_ret(r, "pid %d: PAGEMAP_SCAN %#" PRIx64 "-%#" PRIx64,
						  t->pid, v->start, v->end);
		}
	}
	return rvec_add(rv, v->start, v->end);
}

static const uint64_t *old_hash(const struct dirty_tracker *t, uint64_t addr)
{
	size_t i = trange_find(t, addr);

	if (i >= t->nr || t->r[i].start > addr || t->r[i].kind != TR_HASH || !t->r[i].hash)
		return NULL;
	return &t->r[i].hash[(addr - t->r[i].start) / page_size];
}

#define HASH_CHUNK 256 /* pages per read */

/* Shared VMA: hash what the shared object holds (read through /proc/PID/map_files, so the
 * target's page tables are not touched and shmem holes are not allocated). */
static void hash_file_chunk(int mapfd, const struct proc_vma *v, uint64_t addr, size_t np,
			    uint64_t *h, char *buf)
{
	ssize_t got = pread_full(mapfd, buf, np * page_size, (off_t)(v->pgoff + addr - v->start));

	if (got < 0)
		got = 0;
	memset(buf + got, 0, np * page_size - (size_t)got); /* past EOF */
	for (size_t i = 0; i < np; i++)
		h[i] = XXH3_64bits(buf + i * page_size, page_size);
}

/* Hash pages [addr, addr + np) into h. Absent anonymous pages hash as zero pages without
 * being read (reading would map the zero page in the target). */
static int hash_chunk(struct dirty_tracker *t, const struct proc_vma *v, uint64_t addr, size_t np,
		      uint64_t *h, char *buf, uint64_t zero_hash, int mapfd)
{
	bool anon = !v->shared &&
		    (v->kind == PVMA_ANON || v->kind == PVMA_HEAP || v->kind == PVMA_STACK);
	uint64_t pme[HASH_CHUNK];
	bool need = !anon;
	ssize_t r;

	if (mapfd >= 0) {
		hash_file_chunk(mapfd, v, addr, np, h, buf);
		return 0;
	}
	if (anon) {
		r = pread_full(t->pagemap_fd, pme, np * 8, (off_t)(addr / page_size * 8));
		if (r != (ssize_t)(np * 8))
			return r < 0 ? (int)r : -EIO;
		for (size_t i = 0; i < np && !need; i++)
			need = pme[i] & (PME_PRESENT | PME_SWAPPED);
	}
	if (!need) {
		for (size_t i = 0; i < np; i++)
			h[i] = zero_hash;
		return 0;
	}
	struct iovec l = { buf, np * page_size }, rm = { (void *)(uintptr_t)addr, np * page_size };
	/* process_vm_readv pins pages in batches (~4 GB/s here); /proc/PID/mem bounces each
	 * page through one kernel page (~1 GB/s) but also reads PROT_NONE: the fallback. */
	if (process_vm_readv(t->pid, &l, 1, &rm, 1, 0) == (ssize_t)(np * page_size) ||
	    pread_full(t->mem_fd, buf, np * page_size, (off_t)addr) == (ssize_t)(np * page_size)) {
		for (size_t i = 0; i < np; i++)
			h[i] = XXH3_64bits(buf + i * page_size, page_size);
		return 0;
	}
	for (size_t i = 0; i < np; i++) /* a hole (EIO, e.g. past EOF): page by page */
		h[i] = pread_full(t->mem_fd, buf, page_size, (off_t)(addr + i * page_size)) ==
				       (ssize_t)page_size
			       ? XXH3_64bits(buf, page_size)
			       : 0;
	return 0;
}

/* One VMA in hash mode: new hashes in *hout; dirty pages to rv. */
static int hash_scan_vma(struct dirty_tracker *t, const struct proc_vma *v, struct rvec *rv,
			 uint64_t **hout)
{
	size_t np = (v->end - v->start) / page_size;
	uint64_t *h = malloc(np * sizeof(*h) + 1);
	char *buf = malloc(HASH_CHUNK * page_size);
	uint64_t zero_hash;
	int r = 0, mapfd = -1;

	if (!h || !buf) {
		r = -ENOMEM;
		goto out;
	}
	if (v->shared) {
		char path[96];
		snprintf(path, sizeof(path), "/proc/%d/map_files/%" PRIx64 "-%" PRIx64, t->pid,
			 v->start, v->end);
		mapfd = open(path, O_RDONLY | O_CLOEXEC);
		if (mapfd < 0)
			pr_debug("open '%s': %m; hashing through the target's memory", path);
	}
	memset(buf, 0, page_size);
	zero_hash = XXH3_64bits(buf, page_size);
	for (size_t i = 0; i < np && !r; i += HASH_CHUNK) {
		size_t c = min_t(size_t, HASH_CHUNK, np - i);
		r = hash_chunk(t, v, v->start + i * page_size, c, h + i, buf, zero_hash, mapfd);
	}
	if (mapfd >= 0)
		close(mapfd);
	for (size_t i = 0; i < np && !r; i++) {
		uint64_t a = v->start + i * page_size;
		const uint64_t *o = old_hash(t, a);
		if (!o || *o != h[i])
			r = rvec_add(rv, a, a + page_size);
	}
out:
	free(buf);
	if (r < 0) {
		free(h);
		return pr_err_ret(r, "pid %d: hashing %#" PRIx64 "-%#" PRIx64, t->pid, v->start,
				  v->end);
	}
	*hout = h;
	return 0;
}

int dirty_scan(struct dirty_tracker *t, const struct proc_vma *vmas, size_t n,
	       struct dirty_range **out, size_t *nout)
{
	struct rvec rv = { 0 };
	struct trange *nr = NULL;
	size_t nn = 0, cap = 0;
	int r = 0;

	for (size_t i = 0; i < n && !r; i++) {
		const struct proc_vma *v = &vmas[i];
		struct trange tr = { v->start, v->end, TR_FULL, NULL };

		if (vma_skipped(v))
			continue;
		if (t->mode == DIRTY_MODE_UFFD && !vma_hashed(t, v)) {
			r = uffd_scan_vma(t, v, &rv, &tr.kind);
		} else if (v->vmflags & VMF_UFFD_MISSING) {
			r = rvec_add(&rv, v->start, v->end); /* reading could block */
		} else if (log_if_sparse(t, v, "sparse reservation (hash mode)")) {
			/* no hash per page of a huge reservation: whole, its few pages copied */
			r = rvec_add(&rv, v->start, v->end);
		} else {
			tr.kind = TR_HASH;
			r = hash_scan_vma(t, v, &rv, &tr.hash);
		}
		if (!r && (r = trange_push(&nr, &nn, &cap, tr)) < 0)
			free(tr.hash);
	}
	if (r < 0) {
		if (r == -ENOMEM)
			pr_err("pid %d: out of memory scanning", t->pid);
		tranges_free(nr, nn);
		free(rv.v);
		return r;
	}
	tranges_free(t->r, t->nr);
	t->r = nr;
	t->nr = nn;
	free(t->pend);
	t->pend = NULL;
	t->npend = 0;
	rvec_normalize(&rv);
	*out = rv.n ? rv.v : NULL;
	if (!rv.n)
		free(rv.v);
	*nout = rv.n;
	return 0;
}

/* ---- state between invocations --------------------------------------------------- */

/* File layout (little endian, this host only):
 *   header  u32 magic "FRYd", u32 version, u32 mode, i32 kept_fd, i32 pid, u32 page_size,
 *           u64 starttime, u64 nranges
 *   nranges x { u64 start, u64 end, u32 kind, u32 has_hash }
 *   then, for each range with has_hash, (end - start) / page_size u64 hashes
 *   u64 XXH64 of everything before it.
 * The reader bounds every count by the file size before allocating. */
struct state_hdr {
	uint32_t magic, version, mode;
	int32_t kept_fd, pid;
	uint32_t page_size, flags, pad;
	uint64_t starttime, nranges;
};
struct state_range {
	uint64_t start, end;
	uint32_t kind, has_hash;
};

static int state_append(char **buf, size_t *len, size_t *cap, const void *p, size_t n)
{
	if (*len + n > *cap) {
		size_t c = max_t(size_t, *cap * 2, *len + n + 4096);
		char *nb = realloc(*buf, c);
		if (!nb)
			return -ENOMEM;
		*buf = nb;
		*cap = c;
	}
	memcpy(*buf + *len, p, n);
	*len += n;
	return 0;
}

static int state_write_file(const char *path, const char *buf, size_t len)
{
	char tmp[4096];
	int fd, r;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return pr_err_ret(-ENAMETOOLONG, "state file '%s'", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return pr_perror("create '%s'", tmp);
	r = write_full(fd, buf, len);
	if (!r && fsync(fd) < 0)
		r = -errno;
	close(fd);
	if (!r && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0) {
		unlink(tmp);
		return pr_err_ret(r, "write '%s'", path);
	}
	return 0;
}

int dirty_save(const struct dirty_tracker *t, const char *path)
{
	struct state_hdr h = { STATE_MAGIC,	    STATE_VERSION, t->mode, t->kept_fd,	  t->pid,
			       (uint32_t)page_size, t->flags,	   0,	    t->starttime, t->nr };
	size_t len = 0, cap = 0;
	char *buf = NULL;
	uint64_t sum;
	int r;

	if (t->mode == DIRTY_MODE_UFFD && t->kept_fd < 0)
		return pr_err_ret(-EINVAL,
				  "pid %d: saving uffd tracking state without a kept fd "
				  "(arm with DIRTY_ARM_KEEP)",
				  t->pid);
	r = state_append(&buf, &len, &cap, &h, sizeof(h));
	for (size_t i = 0; i < t->nr && !r; i++) {
		struct state_range sr = { t->r[i].start, t->r[i].end, t->r[i].kind,
					  t->r[i].hash != NULL };
		r = state_append(&buf, &len, &cap, &sr, sizeof(sr));
	}
	for (size_t i = 0; i < t->nr && !r; i++)
		if (t->r[i].hash)
			r = state_append(&buf, &len, &cap, t->r[i].hash,
					 (t->r[i].end - t->r[i].start) / page_size * 8);
	sum = XXH64(buf, len, 0);
	if (!r)
		r = state_append(&buf, &len, &cap, &sum, sizeof(sum));
	if (r < 0)
		r = pr_err_ret(r, "pid %d: building the tracking state", t->pid);
	else
		r = state_write_file(path, buf, len);
	free(buf);
	return r;
}

/* Decode a state file already read and checksummed into t's ranges. */
static int state_decode(struct dirty_tracker *t, const char *buf, size_t len,
			const struct state_hdr *h)
{
	const struct state_range *sr = (const void *)(buf + sizeof(*h));
	size_t off = sizeof(*h) + h->nranges * sizeof(*sr);
	uint64_t prev_end = 0;

	t->r = calloc(h->nranges ? h->nranges : 1, sizeof(*t->r));
	if (!t->r)
		return -ENOMEM;
	for (size_t i = 0; i < h->nranges; i++, t->nr++) {
		struct state_range s;
		size_t hl;

		memcpy(&s, &sr[i], sizeof(s));
		if (s.start < prev_end || s.end <= s.start || (s.start | s.end) % page_size ||
		    s.kind < TR_UFFD || s.kind > TR_PRESENT)
			return -EINVAL;
		prev_end = s.end;
		t->r[i] = (struct trange){ s.start, s.end, s.kind, NULL };
		if (!s.has_hash)
			continue;
		hl = (s.end - s.start) / page_size * 8;
		if (s.kind != TR_HASH || hl > len - 8 - off)
			return -EINVAL;
		t->r[i].hash = malloc(hl);
		if (!t->r[i].hash)
			return -ENOMEM;
		memcpy(t->r[i].hash, buf + off, hl);
		off += hl;
	}
	return off == len - 8 ? 0 : -EINVAL;
}

static int state_load(struct dirty_tracker *t, const char *path)
{
	struct state_hdr h;
	uint64_t sum;
	size_t len;
	char *buf;
	int r;

	r = read_file(path, &buf, &len, 1ULL << 32);
	if (r == -ENOENT)
		return pr_err_ret(r, "no dirty tracking state '%s'", path);
	if (r < 0)
		return pr_err_ret(r, "read '%s'", path);
	r = -EINVAL;
	if (len < sizeof(h) + 8)
		goto out;
	memcpy(&h, buf, sizeof(h));
	memcpy(&sum, buf + len - 8, 8);
	if (h.magic != STATE_MAGIC || h.version != STATE_VERSION || sum != XXH64(buf, len - 8, 0) ||
	    h.page_size != page_size || h.nranges > STATE_MAX_RANGES ||
	    h.nranges * sizeof(struct state_range) > len - 8 - sizeof(h) ||
	    (h.mode != DIRTY_MODE_UFFD && h.mode != DIRTY_MODE_HASH))
		goto out;
	if (h.pid != t->pid || h.starttime != t->starttime) {
		r = -ESTALE;
		pr_warn("'%s' is for pid %d started at %" PRIu64 ", not this process: tracking "
			"lost",
			path, h.pid, h.starttime);
		goto out;
	}
	t->mode = h.mode;
	t->kept_fd = h.kept_fd;
	t->flags = h.flags & DIRTY_ARM_SHARED_HASH;
	r = state_decode(t, buf, len, &h);
out:
	if (r == -EINVAL)
		pr_err("dirty tracking state '%s' is corrupt", path);
	else if (r == -ENOMEM)
		pr_err("out of memory loading '%s'", path);
	free(buf);
	return r;
}

/* The fdinfo API line of a uffd: "API:\t<api>:<features>:<ioctls>". */
static int uffd_fdinfo_ok(const char *fdinfo_path, const char *link_path)
{
	char link[64] = "", *buf, *p;
	unsigned int feat = 0;
	ssize_t l;
	size_t len;
	int r;

	l = readlink(link_path, link, sizeof(link) - 1);
	if (l < 0)
		return -errno;
	link[l] = 0;
	if (strcmp(link, "anon_inode:[userfaultfd]") != 0)
		return 0;
	r = read_file(fdinfo_path, &buf, &len, 1 << 16);
	if (r < 0)
		return r;
	p = strstr(buf, "\nAPI:\t");
	r = p && sscanf(p + 6, "%*x:%x:", &feat) == 1 &&
	    (feat & DIRTY_UFFD_FEATURES) == DIRTY_UFFD_FEATURES;
	free(buf);
	return r;
}

int dirty_fd_probe(pid_t pid, int fd)
{
	char info[64], link[64];

	snprintf(info, sizeof(info), "/proc/%d/fdinfo/%d", pid, fd);
	snprintf(link, sizeof(link), "/proc/%d/fd/%d", pid, fd);
	return uffd_fdinfo_ok(info, link);
}

int dirty_attach(pid_t pid, int pidfd, const char *state_path, struct dirty_tracker **out)
{
	struct dirty_tracker *t;
	char info[64], link[64];
	int r = 0;

	*out = NULL;
	t = tracker_new(pid, &r);
	if (!t)
		return r;
	r = state_load(t, state_path);
	if (r < 0)
		goto err;
	if (t->mode == DIRTY_MODE_HASH) {
		r = tracker_open_mem(t);
		goto done;
	}
	if (t->flags && (r = tracker_open_mem(t)) < 0)
		goto err;
	t->uffd = sys_pidfd_getfd(pidfd, t->kept_fd, 0);
	if (t->uffd < 0) {
		pr_warn("pid %d: kept tracking fd %d is gone (%s: closed by the process or an "
			"exec): tracking lost, full copy",
			pid, t->kept_fd, strerror(-t->uffd));
		t->uffd = -1;
		t->kept_fd = -1;
		r = -ESTALE;
		goto err;
	}
	snprintf(info, sizeof(info), "/proc/self/fdinfo/%d", t->uffd);
	snprintf(link, sizeof(link), "/proc/self/fd/%d", t->uffd);
	if (uffd_fdinfo_ok(info, link) != 1) {
		pr_warn("pid %d: fd %d is not our tracking userfaultfd any more: tracking lost, "
			"full copy",
			pid, t->kept_fd);
		t->kept_fd = -1;
		r = -ESTALE;
		goto err;
	}
done:
	if (r < 0)
		goto err;
	*out = t;
	return 0;
err:
	dirty_free(t);
	return r;
}

/* ---- teardown and accessors -------------------------------------------------------- */

int dirty_disarm(struct dirty_tracker *t, struct remote *rt)
{
	int ret = 0;

	if (!t)
		return 0;
	for (size_t i = 0; t->uffd >= 0 && i < t->nr; i++) {
		struct uffdio_range rg = { t->r[i].start, t->r[i].end - t->r[i].start };
		/* a range that vanished or split is fine: closing the last copy ends it too */
		if (t->r[i].kind == TR_UFFD && ioctl(t->uffd, UFFDIO_UNREGISTER, &rg) < 0)
			pr_debug("pid %d: UFFDIO_UNREGISTER %#" PRIx64 ": %m", t->pid,
				 (uint64_t)rg.start);
	}
	if (t->kept_fd >= 0 && rt) {
		long r = rcall1(rt, __NR_close, t->kept_fd);
		if (r < 0)
			ret = pr_err_ret((int)r, "pid %d: closing the kept tracking fd %d", t->pid,
					 t->kept_fd);
	} else if (t->kept_fd >= 0) {
		pr_warn("pid %d: kept tracking fd %d left open (no remote session)", t->pid,
			t->kept_fd);
	}
	dirty_free(t);
	return ret;
}

void dirty_free(struct dirty_tracker *t)
{
	if (!t)
		return;
	if (t->uffd >= 0)
		close(t->uffd);
	if (t->pagemap_fd >= 0)
		close(t->pagemap_fd);
	if (t->mem_fd >= 0)
		close(t->mem_fd);
	tranges_free(t->r, t->nr);
	free(t->pend);
	free(t);
}

enum dirty_mode dirty_tracker_mode(const struct dirty_tracker *t)
{
	return t->mode;
}

int dirty_tracker_kept_fd(const struct dirty_tracker *t)
{
	return t->kept_fd;
}

uint64_t dirty_tracker_untracked_pages(const struct dirty_tracker *t)
{
	uint64_t n = 0;

	for (size_t i = 0; i < t->nr; i++)
		if (t->r[i].kind == TR_FULL)
			n += (t->r[i].end - t->r[i].start) / page_size;
	return n;
}
