/*
 * rst-chain: pre-dump chains on the restore side. Runs of the top round marked
 * PE_PARENT take their data from the newest older round (the inventory's `parent`
 * directory, recursively, at most RST_MAX_CHAIN) that has those pages PRESENT or ZERO.
 * A page bitmap over the wanted runs records what is still missing, so an older round
 * never overwrites a newer one. Each older round's pages file is read whole (its hash
 * is checked) and only the wanted pages are written into the task.
 *
 * Typical workload: a few rounds, most pages in the top round.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "common/log.h"
#include "common/util.h"
#include "engine/restore.h"
#include "img/img.h"

#define RST_BUF (8u << 20) /* read buffer of an older round's pages */

static const uint8_t zero_buf[64 << 10];

static bool vma_anon(const VmaEntry *v)
{
	return v->kind == VMA_KIND__VMA_ANON || v->kind == VMA_KIND__VMA_SHMEM_ANON;
}

static int chain_pm_cmp(const void *a, const void *b)
{
	const PagemapEntry *x = *(PagemapEntry *const *)a, *y = *(PagemapEntry *const *)b;
	return x->vaddr < y->vaddr ? -1 : x->vaddr > y->vaddr;
}

/* ---- pre-dump chain (PE_PARENT) -------------------------------------------------- */
/*
 * Runs marked PE_PARENT take their data from the newest older round (the inventory's
 * `parent` directory, recursively) that has those pages PRESENT or ZERO. A page bitmap
 * over the wanted runs records what is still missing, so an older round never
 * overwrites a newer one. Each older round's pages file is read whole (its hash is
 * checked) and only the wanted pages are written.
 */
#define RST_MAX_CHAIN 64

struct want {
	PagemapEntry **run; /* the top round's PE_PARENT runs, sorted by vaddr */
	size_t *bit0;	    /* first page index of each run in bits */
	size_t n;
	uint64_t *bits; /* 1 = still wanted */
	uint64_t left;
};

static int want_init(struct rst *r, struct want *w)
{
	size_t pages = 0;
	memset(w, 0, sizeof(*w));
	for (size_t i = 0; i < r->n_pm; i++)
		w->n += r->pm[i]->flags == PE_PARENT;
	if (!w->n)
		return 0;
	w->run = calloc(w->n, sizeof(*w->run));
	w->bit0 = calloc(w->n, sizeof(*w->bit0));
	if (!w->run || !w->bit0)
		return -ENOMEM;
	w->n = 0;
	for (size_t i = 0; i < r->n_pm; i++)
		if (r->pm[i]->flags == PE_PARENT)
			w->run[w->n++] = r->pm[i];
	qsort(w->run, w->n, sizeof(*w->run), chain_pm_cmp);
	for (size_t i = 0; i < w->n; i++) {
		w->bit0[i] = pages;
		pages += w->run[i]->nr_pages;
	}
	w->bits = malloc((pages + 63) / 64 * sizeof(uint64_t));
	if (!w->bits)
		return -ENOMEM;
	memset(w->bits, 0xff, (pages + 63) / 64 * sizeof(uint64_t));
	w->left = pages;
	return 0;
}

static void want_fini(struct want *w)
{
	free(w->run);
	free(w->bit0);
	free(w->bits);
}

/* First run ending above addr, or w->n. */
static size_t want_find(const struct want *w, uint64_t addr)
{
	size_t lo = 0, hi = w->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (w->run[mid]->vaddr + (uint64_t)w->run[mid]->nr_pages * RST_PAGE <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int rst_write(struct rst *r, uint64_t addr, const void *src, size_t len)
{
	struct iovec l = { (void *)src, len }, rv = { (void *)addr, len };
	ssize_t n = process_vm_writev(r->pid, &l, 1, &rv, 1, 0);
	size_t done = n > 0 ? (size_t)n : 0;
	int e = done < len
			? remote_write(&r->rt, addr + done, (const uint8_t *)src + done, len - done)
			: 0;
	return e < 0 ? pr_err_ret(e, "cannot write %zu bytes at %#llx in task %d", len - done,
				  (unsigned long long)addr + done, r->pid)
		     : 0;
}

/* Write [a, b) (wanted, contiguous, inside one run hence one VMA) from data, whose
 * byte 0 is address base (NULL: zeroes, skipped in anonymous VMAs: fresh memory). */
static int span_write(struct rst *r, uint64_t base, const uint8_t *data, uint64_t a, uint64_t b)
{
	if (data)
		return rst_write(r, a, data + (a - base), b - a);
	ssize_t vi = rst_vma_find(r->mm, a);
	if (vi >= 0 && vma_anon(r->mm->vmas[vi]))
		return 0;
	for (; a < b; a += sizeof(zero_buf)) {
		int e = rst_write(r, a, zero_buf, min_t(uint64_t, b - a, sizeof(zero_buf)));
		if (e < 0)
			return e;
	}
	return 0;
}

/* Write the still-wanted pages of [addr, addr+len) from data (NULL: zeroes), one
 * process_vm_writev per span of consecutive wanted pages (a page at a time made a 1 GiB
 * chain restore take seconds). */
static int want_write(struct rst *r, struct want *w, uint64_t addr, const uint8_t *data,
		      uint64_t len)
{
	uint64_t end = addr + len;
	for (size_t i = want_find(w, addr); i < w->n && w->run[i]->vaddr < end; i++) {
		const PagemapEntry *p = w->run[i];
		uint64_t a = max_t(uint64_t, addr, p->vaddr);
		uint64_t b = min_t(uint64_t, end, p->vaddr + (uint64_t)p->nr_pages * RST_PAGE);
		uint64_t span = 0; /* start of the current wanted span, 0: none */
		int e = 0;
		for (; a < b && e == 0; a += RST_PAGE) {
			size_t bit = w->bit0[i] + (a - p->vaddr) / RST_PAGE;
			if (w->bits[bit / 64] & (1ULL << (bit % 64))) {
				w->bits[bit / 64] &= ~(1ULL << (bit % 64));
				w->left--;
				if (!span)
					span = a;
			} else if (span) {
				e = span_write(r, addr, data, span, a);
				span = 0;
			}
		}
		if (e == 0 && span)
			e = span_write(r, addr, data, span, a);
		if (e < 0)
			return e;
	}
	return 0;
}

int rst_pagemap_check(const PagemapHead *h, PagemapEntry **pm, size_t n, const char *dir)
{
	uint64_t present = 0;
	for (size_t i = 0; i < n; i++) {
		const PagemapEntry *p = pm[i];
		if (p->vaddr % RST_PAGE || !p->nr_pages || p->vaddr >= RST_TASK_SIZE ||
		    (uint64_t)p->nr_pages * RST_PAGE > RST_TASK_SIZE - p->vaddr ||
		    (p->flags != PE_PRESENT && p->flags != PE_ZERO && p->flags != PE_PARENT))
			return pr_err_ret(-EINVAL, "'%s': pagemap entry %zu is invalid", dir, i);
		if (p->flags == PE_PRESENT)
			present += p->nr_pages;
	}
	if (present != h->nr_pages)
		return pr_err_ret(-EINVAL, "'%s': pagemap holds %llu pages, head says %llu", dir,
				  (unsigned long long)present, (unsigned long long)h->nr_pages);
	return 0;
}

/* One older round: stream its pages, write what is still wanted. */
static int round_apply(struct rst *r, struct img_dir *d, struct want *w, uint8_t *buf)
{
	PagemapHead *h;
	PagemapEntry **pm;
	struct img_stream *s = NULL;
	size_t n;
	char name[64];
	int e = rst_pagemap_load(d, r->ipid, &h, &pm, &n);

	if (e == 0)
		e = rst_pagemap_check(h, pm, n, img_dir_path(d));
	if (e == 0 && h->nr_pages &&
	    (e = img_stream_open(d, img_name(name, "pages-%u.img", h->pages_id), &s)) == 0 &&
	    img_stream_left(s) != h->nr_pages * RST_PAGE)
		e = pr_err_ret(-EBADMSG, "'%s/%s' does not match its pagemap", img_dir_path(d),
			       name);
	for (size_t i = 0; i < n && e == 0; i++) {
		const PagemapEntry *p = pm[i];
		uint64_t len = (uint64_t)p->nr_pages * RST_PAGE, off;
		if (p->flags == PE_ZERO)
			e = want_write(r, w, p->vaddr, NULL, len);
		for (off = 0; p->flags == PE_PRESENT && off < len && e == 0; off += RST_BUF) {
			size_t chunk = min_t(uint64_t, len - off, RST_BUF);
			if ((e = img_stream_read(s, buf, chunk)) == 0)
				e = want_write(r, w, p->vaddr + off, buf, chunk);
		}
	}
	if (s)
		e = e == 0 ? img_stream_finish(s) : (img_stream_free(s), e);
	rst_pagemap_free(h, pm, n);
	return e;
}

int rst_parent_path(struct img_dir *d, char *out, size_t len)
{
	const InventoryEntry *inv = img_dir_inventory(d);
	if (!inv->parent || !inv->parent[0])
		return -ENOENT;
	if (snprintf(out, len, "%s/%s", inv->parent[0] == '/' ? "" : img_dir_path(d),
		     inv->parent) >= (int)len)
		return -ENAMETOOLONG;
	return 0;
}

/* Directory of the parent of d: its inventory's `parent`, relative to d. */
static int parent_open(struct img_dir *d, pid_t pid, struct img_dir **out)
{
	char path[4096];
	int e;

	*out = NULL;
	if ((e = rst_parent_path(d, path, sizeof(path))) == -ENOENT)
		return pr_err_ret(-ENOENT, "'%s' has pages in a parent round but names no parent",
				  img_dir_path(d));
	if (e < 0)
		return pr_err_ret(e, "parent path of '%s'", img_dir_path(d));
	if ((e = img_dir_open(path, out)) < 0)
		return e;
	/* every round of a chain dumps the same tree: its root names it */
	if (img_dir_inventory(*out)->root_pid != img_dir_inventory(d)->root_pid) {
		img_dir_free(*out);
		*out = NULL;
		return pr_err_ret(-EINVAL, "parent round '%s' is of another process", path);
	}
	return 0;
}

int rst_chain_validate(struct rst *r)
{
	struct img_dir *d = r->d, *p;
	bool more = false;
	int e = 0, depth;

	for (size_t i = 0; i < r->n_pm && !more; i++)
		more = r->pm[i]->flags == PE_PARENT;
	for (depth = 0; e == 0 && more && depth < RST_MAX_CHAIN; depth++) {
		PagemapHead *h = NULL;
		PagemapEntry **pm = NULL;
		size_t n = 0;
		char name[64];
		if ((e = parent_open(d, r->ipid, &p)) == 0 &&
		    (e = rst_pagemap_load(p, r->ipid, &h, &pm, &n)) == 0 &&
		    (e = rst_pagemap_check(h, pm, n, img_dir_path(p))) == 0 && h->nr_pages &&
		    !img_dir_has(p, img_name(name, "pages-%u.img", h->pages_id)))
			e = pr_err_ret(-ENOENT, "'%s' lacks '%s'", img_dir_path(p), name);
		more = false;
		for (size_t i = 0; e == 0 && i < n && !more; i++)
			more = pm[i]->flags == PE_PARENT;
		rst_pagemap_free(h, pm, n);
		if (d != r->d)
			img_dir_free(d);
		d = p;
	}
	if (d != r->d)
		img_dir_free(d);
	if (e == 0 && more)
		e = pr_err_ret(-ELOOP, "pre-dump chain of '%s' is longer than %d rounds",
			       img_dir_path(r->d), RST_MAX_CHAIN);
	return e;
}

int rst_pages_from_parents(struct rst *r)
{
	struct want w;
	struct img_dir *d = r->d, *p = NULL;
	uint8_t *buf = NULL;
	int e = want_init(r, &w), depth;

	if (e == 0 && w.n && !(buf = malloc(RST_BUF)))
		e = -ENOMEM;
	for (depth = 0; e == 0 && w.left && depth < RST_MAX_CHAIN; depth++) {
		if ((e = parent_open(d, r->ipid, &p)) == 0)
			e = round_apply(r, p, &w, buf);
		if (d != r->d)
			img_dir_free(d);
		d = p;
	}
	if (d != r->d)
		img_dir_free(d);
	if (e == 0 && w.left)
		e = pr_err_ret(-EBADMSG,
			       "%llu pages marked as in a parent round are in none (%d rounds)",
			       (unsigned long long)w.left, depth);
	free(buf);
	want_fini(&w);
	return e;
}
