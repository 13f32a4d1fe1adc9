/*
 * rst-warm: the warm destination's staging (rst-warm.h, docs/warm.md).
 *
 * Per process of the tree: a slab (one PROT_NONE, MAP_NORESERVE reservation at a low
 * free address, away from our mappings and from the process's layout) in which every
 * private VMA of the current round has a piece: an anonymous read/write mapping whose
 * byte k is the page at the VMA's start + k, with a known bit per page. Pieces start
 * at the VMA's address modulo 2 MiB, so that transparent huge pages line up with the
 * target's and a move is a move of page-middle-directory entries, and are mapped
 * MAP_NORESERVE exactly when their VMA is (a move keeps the VMA's flags).
 *
 * A round: (1) layout: pieces are cut to the round's private VMAs (what fell out is
 * released), VMAs not covered get new pieces (or grow the piece before them in place,
 * into the room reserved after it: the kernel merges that into one mapping, as it
 * merged the VMA in the dumped process); (2) pages: PRESENT pages are read from the
 * round's pages file straight into the pieces, ZERO pages dropped (MADV_DONTNEED: zero
 * again), both marked known; PARENT pages keep what the older rounds left. The final
 * round does the same, then drops the pages it does not mention (absent in the dumped
 * process) and decides per process (rst_warm_final).
 *
 * Pages outside pieces (shared memory) are read and discarded: the stream's hash is
 * still checked whole.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "engine/rst-place.h"
#include "engine/rst-warm.h"
#include "img/img.h"
#include "pstree.pb-c.h"

#define HUGE_SZ	    (2UL << 20)
#define SLAB_LOW    (1UL << 40)	  /* slabs live above 1 TiB, below the usual layouts */
#define SLAB_MARGIN (1UL << 30)	  /* away from any mapping */
#define ROOM_MAX    (256UL << 20) /* in-place growth reserved after a piece */
#define MAX_ROUNDS  64		  /* chain applied at the start, like rst-chain.c */
/* private memory staged per process at most (the known bits: 32 MiB; beyond: cold) */
#define MAX_STAGE   (1UL << 40)
#define DISCARD_BUF (1UL << 20)

struct rst_warm {
	struct rst_warm_proc *pr;
	size_t n;
	char last[PATH_MAX]; /* real path of the last round applied, "" for none */
	bool thp;	     /* MADV_HUGEPAGE on pieces */
	uint8_t *discard;    /* pages outside pieces are read into it */
};

/* ---- bits ------------------------------------------------------------------------ */

static uint64_t *bits_new(uint64_t n)
{
	return calloc((n + 63) / 64 + 1, sizeof(uint64_t));
}

static bool bit_get(const uint64_t *b, uint64_t i)
{
	return b[i / 64] >> (i % 64) & 1;
}

static void bits_set(uint64_t *b, uint64_t from, uint64_t n, bool v)
{
	for (uint64_t i = from; i < from + n; i++) {
		if (i % 64 == 0 && i + 64 <= from + n) {
			b[i / 64] = v ? ~0ULL : 0;
			i += 63;
		} else if (v)
			b[i / 64] |= 1ULL << (i % 64);
		else
			b[i / 64] &= ~(1ULL << (i % 64));
	}
}

static bool bits_all(const uint64_t *b, uint64_t from, uint64_t n)
{
	for (uint64_t i = from; i < from + n; i++)
		if (!bit_get(b, i))
			return false;
	return true;
}

/* ---- pieces ---------------------------------------------------------------------- */

static bool vma_stageable(const VmaEntry *v)
{
	return (v->kind == VMA_KIND__VMA_ANON || v->kind == VMA_KIND__VMA_FILE) &&
	       !(v->flags & MAP_SHARED) && v->start < v->end && v->end <= RST_TASK_SIZE &&
	       v->start % RST_PAGE == 0 && v->end % RST_PAGE == 0;
}

static uint64_t piece_pages(const struct warm_piece *p)
{
	return (p->end - p->start) / RST_PAGE;
}

/* Give [a, a+len) of our memory back to the slab's reservation (pages freed). */
static void release(uint8_t *a, uint64_t len)
{
	if (len && mmap(a, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED,
			-1, 0) == MAP_FAILED)
		pr_warn("warm: cannot release %llu staged bytes: %s", (unsigned long long)len,
			strerror(errno));
}

/* Pieces are mapped with their VMA's MAP_NORESERVE: a moved piece keeps its flags. */
static int map_rw(struct rst_warm *w, uint8_t *a, uint64_t len, bool noreserve)
{
	if (mmap(a, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | (noreserve ? MAP_NORESERVE : 0), -1,
		 0) == MAP_FAILED)
		return pr_perror("warm: cannot map %llu bytes of staging", (unsigned long long)len);
	if (w->thp)
		(void)madvise(a, len, MADV_HUGEPAGE);
	return 0;
}

static int push(struct rst_warm_proc *p, struct warm_piece *x)
{
	if (p->n == p->cap) {
		size_t cap = p->cap ? 2 * p->cap : 16;
		void *nw = realloc(p->p, cap * sizeof(*p->p));
		if (!nw)
			return -ENOMEM;
		p->p = nw;
		p->cap = cap;
	}
	p->p[p->n++] = *x;
	return 0;
}

static void proc_clear(struct rst_warm_proc *p)
{
	for (size_t i = 0; i < p->n; i++)
		free(p->p[i].known);
	free(p->p);
	p->p = NULL;
	p->n = p->cap = 0;
	if (p->slab)
		munmap(p->slab, p->slab_len);
	p->slab = NULL;
	p->slab_len = p->cursor = 0;
	free(p->vkind);
	p->vkind = NULL;
	p->n_vmas = 0;
}

/* Process p restores cold: its staging is dropped now. */
static void proc_cold(struct rst_warm_proc *p, const char *why)
{
	if (!p->cold)
		pr_info("warm: process %d will be restored cold: %s", p->pid, why);
	p->cold = why;
	proc_clear(p);
}

/* ---- slab ------------------------------------------------------------------------ */

/* Lowest address >= SLAB_LOW for len bytes, SLAB_MARGIN away from our mappings and from
 * every VMA of mm. */
static int slab_place(const MmEntry *mm, uint64_t len, uint64_t *out)
{
	struct rst_special *busy;
	size_t n;
	int e = rst_maps_read(getpid(), &busy, &n);
	if (e < 0)
		return e;
	void *nw = realloc(busy, (n + mm->n_vmas + 1) * sizeof(*busy));
	if (!nw) {
		free(busy);
		return -ENOMEM;
	}
	busy = nw;
	for (size_t i = 0; i < mm->n_vmas; i++)
		busy[n++] = (struct rst_special){ mm->vmas[i]->start, mm->vmas[i]->end };
	rst_spans_sort(busy, n);
	uint64_t at = SLAB_LOW;
	e = -ENOMEM;
	for (size_t i = 0; i <= n; i++) {
		uint64_t hi = min_t(uint64_t, i < n ? busy[i].start : RST_TASK_SIZE, RST_TASK_SIZE);
		if (hi > at && hi - at >= len + SLAB_MARGIN) {
			*out = at;
			e = 0;
			break;
		}
		if (i < n && busy[i].end + SLAB_MARGIN > at)
			at = ROUND_UP(busy[i].end + SLAB_MARGIN, HUGE_SZ);
	}
	free(busy);
	return e;
}

static int slab_init(struct rst_warm_proc *p, const MmEntry *mm)
{
	uint64_t sum = 0, at = 0;
	for (size_t i = 0; i < mm->n_vmas; i++)
		if (vma_stageable(mm->vmas[i]))
			sum += mm->vmas[i]->end - mm->vmas[i]->start;
	if (sum > MAX_STAGE)
		return -EFBIG;
	uint64_t len = ROUND_UP(2 * sum + (4UL << 30), 1UL << 30);
	if (slab_place(mm, len, &at) < 0)
		return -ENOMEM;
	void *s = mmap((void *)at, len, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
	if (s == MAP_FAILED)
		return -errno;
	p->slab = s;
	p->slab_len = len;
	p->cursor = 0;
	return 0;
}

/* A new piece for [a, b) in the slab. */
static int piece_new(struct rst_warm *w, struct rst_warm_proc *p, uint64_t a, uint64_t b,
		     bool noreserve, struct warm_piece *out)
{
	uint64_t len = b - a, room = min_t(uint64_t, max_t(uint64_t, len, HUGE_SZ), ROOM_MAX);
	uint64_t at = ROUND_UP(p->cursor, HUGE_SZ) + a % HUGE_SZ;
	int e;

	if (at + len + room > p->slab_len)
		return -ENOSPC;
	if ((e = map_rw(w, p->slab + at, len, noreserve)) < 0)
		return e;
	*out = (struct warm_piece){
		.start = a, .end = b, .w = p->slab + at, .room = room, .noreserve = noreserve
	};
	if (!(out->known = bits_new(len / RST_PAGE))) {
		release(out->w, len);
		return -ENOMEM;
	}
	p->cursor = at + len + room;
	return 0;
}

/* Grow piece x in place by [x->end, b) (its room allows it). */
static int piece_grow(struct rst_warm *w, struct warm_piece *x, uint64_t b)
{
	uint64_t add = b - x->end, n = piece_pages(x);
	uint64_t *k = bits_new(n + add / RST_PAGE);
	int e;
	if (!k)
		return -ENOMEM;
	if ((e = map_rw(w, x->w + (x->end - x->start), add, x->noreserve)) < 0) {
		free(k);
		return e;
	}
	memcpy(k, x->known, (n + 63) / 64 * sizeof(uint64_t));
	bits_set(k, n, add / RST_PAGE, false);
	free(x->known);
	x->known = k;
	x->end = b;
	x->room -= add;
	return 0;
}

/* The part [a, b) of old piece o as a piece of its own (pages and bits kept). */
static int piece_cut(const struct warm_piece *o, uint64_t a, uint64_t b, uint64_t room,
		     struct warm_piece *out)
{
	uint64_t n = (b - a) / RST_PAGE, off = (a - o->start) / RST_PAGE;
	*out = (struct warm_piece){ .start = a,
				    .end = b,
				    .w = o->w + (a - o->start),
				    .room = room,
				    .noreserve = o->noreserve };
	if (!(out->known = bits_new(n)))
		return -ENOMEM;
	for (uint64_t i = 0; i < n; i++)
		if (bit_get(o->known, off + i))
			out->known[i / 64] |= 1ULL << (i % 64);
	return 0;
}

/* Cut the old pieces to the stageable VMAs of mm; release what falls out. */
static int layout_cut(struct rst_warm_proc *p, const MmEntry *mm, struct rst_warm_proc *np)
{
	int e = 0;
	for (size_t i = 0; i < p->n && e == 0; i++) {
		const struct warm_piece *o = &p->p[i];
		uint64_t o_end_w = (uint64_t)(o->w - p->slab) + (o->end - o->start) + o->room;
		uint64_t pos = o->start; /* released up to here */
		for (size_t k = 0; k < mm->n_vmas && e == 0; k++) {
			const VmaEntry *v = mm->vmas[k];
			if (!vma_stageable(v) || v->end <= o->start || v->start >= o->end)
				continue;
			uint64_t a = max_t(uint64_t, o->start, v->start);
			uint64_t b = min_t(uint64_t, o->end, v->end);
			release(o->w + (pos - o->start), a - pos);
			/* its room: up to the next part kept, or the old piece's room */
			uint64_t next = o->end;
			for (size_t j = k + 1; j < mm->n_vmas; j++)
				if (vma_stageable(mm->vmas[j]) && mm->vmas[j]->start < o->end &&
				    mm->vmas[j]->end > b) {
					next = max_t(uint64_t, mm->vmas[j]->start, b);
					break;
				}
			uint64_t room =
				next == o->end
					? o_end_w - ((uint64_t)(o->w - p->slab) + (b - o->start))
					: next - b;
			struct warm_piece x;
			if ((e = piece_cut(o, a, b, room, &x)) == 0 && (e = push(np, &x)) < 0)
				free(x.known);
			pos = b;
		}
		release(o->w + (pos - o->start), o->end - pos);
	}
	return e;
}

static int piece_cmp(const void *a, const void *b)
{
	const struct warm_piece *x = a, *y = b;
	return x->start < y->start ? -1 : x->start > y->start;
}

/* Pieces for what the stageable VMAs of mm have that no piece covers: the piece of the
 * same VMA just before grows in place when its room allows (one mapping, as the VMA
 * is one), otherwise a new piece (a mapping of its own: a VMA next to it stays apart). */
static int layout_fill(struct rst_warm *w, struct rst_warm_proc *np, const MmEntry *mm)
{
	int e = 0;
	for (size_t k = 0; k < mm->n_vmas && e == 0; k++) {
		const VmaEntry *v = mm->vmas[k];
		if (!vma_stageable(v))
			continue;
		if (np->n)
			qsort(np->p, np->n, sizeof(*np->p), piece_cmp);
		size_t n0 = np->n, i = warm_piece_find(np, v->start);
		for (uint64_t a = v->start; a < v->end && e == 0;) {
			if (i < n0 && np->p[i].start <= a) {
				a = np->p[i++].end;
				continue;
			}
			uint64_t b = i < n0 ? min_t(uint64_t, np->p[i].start, v->end) : v->end;
			struct warm_piece *prev = i ? &np->p[i - 1] : NULL, x;
			bool nr = v->flags & MAP_NORESERVE;
			if (prev && prev->end == a && prev->start >= v->start &&
			    prev->room >= b - a && prev->noreserve == nr)
				e = piece_grow(w, prev, b);
			else if ((e = piece_new(w, np, a, b, nr, &x)) == 0 &&
				 (e = push(np, &x)) < 0)
				free(x.known);
			a = b;
		}
	}
	if (np->n)
		qsort(np->p, np->n, sizeof(*np->p), piece_cmp);
	return e;
}

/* VMAs sorted and disjoint (the image is untrusted). */
static int mm_check(const MmEntry *mm)
{
	for (size_t i = 0; i < mm->n_vmas; i++) {
		const VmaEntry *v = mm->vmas[i];
		if (v->start >= v->end || (i && v->start < mm->vmas[i - 1]->end))
			return -EINVAL;
	}
	return 0;
}

/* Make p's pieces the stageable VMAs of mm. */
static int layout_apply(struct rst_warm *w, struct rst_warm_proc *p, const MmEntry *mm)
{
	struct rst_warm_proc np = { 0 };
	int e;

	if (mm_check(mm) < 0)
		return -EINVAL;
	if (!p->slab && (e = slab_init(p, mm)) < 0)
		return e;
	np.slab = p->slab;
	np.slab_len = p->slab_len;
	np.cursor = p->cursor;
	e = layout_cut(p, mm, &np);
	for (size_t i = 0; i < p->n; i++)
		free(p->p[i].known);
	free(p->p);
	p->p = np.p;
	p->n = np.n;
	p->cap = np.cap;
	if (e == 0) {
		np.p = p->p; /* layout_fill pushes onto np */
		e = layout_fill(w, &np, mm);
		p->p = np.p;
		p->n = np.n;
		p->cap = np.cap;
		p->cursor = np.cursor;
	}
	return e;
}

/* ---- pages ----------------------------------------------------------------------- */

/* Skip len bytes of the stream (pages of no piece). */
static int discard(struct rst_warm *w, struct img_stream *s, uint64_t len)
{
	while (len) {
		size_t c = min_t(uint64_t, len, DISCARD_BUF);
		int e = img_stream_read(s, w->discard, c);
		if (e < 0)
			return e;
		len -= c;
	}
	return 0;
}

/* A part of a pagemap entry: [a, b) of piece x (index i), or a hole (x NULL). */
typedef int (*part_fn)(void *ctx, size_t i, struct warm_piece *x, uint64_t a, uint64_t b);

/* fn for every part of pe, in address order. */
static int entry_walk(struct rst_warm_proc *p, const PagemapEntry *pe, part_fn fn, void *ctx)
{
	uint64_t a = pe->vaddr, end = pe->vaddr + (uint64_t)pe->nr_pages * RST_PAGE;
	int e = 0;

	for (size_t i = warm_piece_find(p, a); a < end && e == 0; i++) {
		struct warm_piece *x = i < p->n ? &p->p[i] : NULL;
		uint64_t ps = x ? min_t(uint64_t, max_t(uint64_t, x->start, a), end) : end;
		if (ps > a)
			e = fn(ctx, i, NULL, a, ps);
		a = ps;
		if (!x || a >= end || e < 0)
			break;
		uint64_t b = min_t(uint64_t, x->end, end);
		e = fn(ctx, i, x, a, b);
		a = b;
	}
	return e;
}

struct apply_ctx {
	struct rst_warm *w;
	struct img_stream *s;
	const PagemapEntry *pe;
	uint64_t **mark; /* the final round's bitmap of mentioned pages per piece, or NULL */
	uint64_t *bytes;
	uint64_t pos;	/* offset in the stream */
	uint64_t split; /* stream bytes from here on are placed by helpers: only hashed */
};

/* One part: PRESENT read into its piece (or only hashed: a hole, or the helpers' share),
 * ZERO dropped; both known. */
static int apply_part(void *ctx, size_t i, struct warm_piece *x, uint64_t a, uint64_t b)
{
	struct apply_ctx *c = ctx;
	uint64_t len = b - a, off = x ? a - x->start : 0;
	int e = 0;

	if (c->pe->flags == PE_PRESENT) {
		uint64_t own =
			!x || c->pos >= c->split ? 0 : min_t(uint64_t, len, c->split - c->pos);
		if (own)
			e = img_stream_read(c->s, x->w + off, own);
		if (e == 0 && len > own)
			e = discard(c->w, c->s, len - own);
		c->pos += len;
		if (x)
			*c->bytes += len;
	} else if (x && c->pe->flags == PE_ZERO) {
		(void)madvise(x->w + off, len, MADV_DONTNEED);
	}
	if (x && c->pe->flags != PE_PARENT)
		bits_set(x->known, off / RST_PAGE, len / RST_PAGE, true);
	if (x && c->mark)
		bits_set(c->mark[i], off / RST_PAGE, len / RST_PAGE, true);
	return e;
}

struct plan_ctx {
	struct rst_place *pl;
	uint64_t pos, split;
};

/* One part of a PRESENT entry: what lies past the split goes to the helpers. */
static int plan_part(void *ctx, size_t i, struct warm_piece *x, uint64_t a, uint64_t b)
{
	struct plan_ctx *c = ctx;
	uint64_t len = b - a, from = c->pos;
	c->pos += len;
	if (!x || from + len <= c->split)
		return 0;
	uint64_t skip = from < c->split ? c->split - from : 0;
	return rst_place_add(c->pl, from + skip, x->w + (a - x->start) + skip, len - skip);
}

/* Helpers for the pages of the round past its first share (docs/warm.md "Staging in
 * parallel"): the staging's thread places the first 1/T and hashes the whole stream.
 * Sets *split (UINT64_MAX: no helper) and *out. */
static int helpers_start(struct rst_warm_proc *p, struct img_stream *s, PagemapEntry **pm, size_t n,
			 uint64_t total, struct rst_place **out, uint64_t *split)
{
	int t = rst_place_threads(total), e;
	struct plan_ctx c = { .split = total / t / RST_PAGE * RST_PAGE };

	*out = NULL;
	*split = UINT64_MAX;
	if (t < 2)
		return 0;
	if ((e = rst_place_new(img_stream_fd(s), &c.pl)) < 0)
		return e;
	for (size_t i = 0; i < n && e == 0; i++)
		if (pm[i]->flags == PE_PRESENT)
			e = entry_walk(p, pm[i], plan_part, &c);
	if (e < 0 || rst_place_start(c.pl, t - 1) == 0) {
		(void)rst_place_join(c.pl, "", true);
		return e;
	}
	pr_debug("warm: %d helper threads place %llu of the round's %llu bytes", t - 1,
		 (unsigned long long)(total - c.split), (unsigned long long)total);
	*out = c.pl;
	*split = c.split;
	return 0;
}

/* The final round: pages it does not mention are absent in the dumped process. */
static void holes_drop(struct rst_warm_proc *p, uint64_t **mark)
{
	for (size_t i = 0; i < p->n; i++) {
		struct warm_piece *x = &p->p[i];
		uint64_t n = piece_pages(x);
		for (uint64_t k = 0; k < n;) {
			uint64_t j = k;
			while (j < n && !bit_get(mark[i], j))
				j++;
			if (j > k) {
				(void)madvise(x->w + k * RST_PAGE, (j - k) * RST_PAGE,
					      MADV_DONTNEED);
				bits_set(x->known, k, j - k, true);
			}
			k = j + 1;
		}
	}
}

/* The round's pages (its pagemap h, pm[n]) into the pieces. */
static int pages_apply(struct rst_warm *w, struct rst_warm_proc *p, struct img_dir *d,
		       const PagemapHead *h, PagemapEntry **pm, size_t n, bool final,
		       uint64_t *bytes)
{
	struct img_stream *s = NULL;
	uint64_t **mark = final ? calloc(p->n + 1, sizeof(*mark)) : NULL;
	char name[64];
	int e = final && !mark ? -ENOMEM : 0;

	for (size_t i = 0; e == 0 && mark && i < p->n; i++)
		if (!(mark[i] = bits_new(piece_pages(&p->p[i]))))
			e = -ENOMEM;
	if (e == 0)
		e = rst_pagemap_check(h, pm, n, img_dir_path(d));
	if (e == 0 && h->nr_pages &&
	    (e = img_stream_open(d, img_name(name, "pages-%u.img", h->pages_id), &s)) == 0 &&
	    img_stream_left(s) != h->nr_pages * RST_PAGE)
		e = pr_err_ret(-EBADMSG, "warm: '%s/%s' does not match its pagemap",
			       img_dir_path(d), name);
	struct apply_ctx c = { .w = w, .s = s, .mark = mark, .bytes = bytes, .split = UINT64_MAX };
	struct rst_place *pl = NULL;
	if (e == 0 && s)
		e = helpers_start(p, s, pm, n, h->nr_pages * RST_PAGE, &pl, &c.split);
	for (size_t i = 0; i < n && e == 0; i++) {
		c.pe = pm[i];
		e = entry_walk(p, pm[i], apply_part, &c);
	}
	if (pl) {
		int he = rst_place_join(pl, name, e < 0);
		e = e < 0 ? e : he;
	}
	if (s)
		e = e == 0 ? img_stream_finish(s) : (img_stream_free(s), e);
	if (e == 0 && final)
		holes_drop(p, mark);
	for (size_t i = 0; mark && i < p->n; i++)
		free(mark[i]);
	free(mark);
	return e;
}

/* ---- rounds ---------------------------------------------------------------------- */

static struct rst_warm_proc *proc_get(struct rst_warm *w, pid_t pid)
{
	for (size_t i = 0; i < w->n; i++)
		if (w->pr[i].pid == pid)
			return &w->pr[i];
	void *nw = realloc(w->pr, (w->n + 1) * sizeof(*w->pr));
	if (!nw)
		return NULL;
	w->pr = nw;
	w->pr[w->n] = (struct rst_warm_proc){ .pid = pid };
	return &w->pr[w->n++];
}

/* The live pids of the round's pstree.img. Caller frees. */
static int pids_load(struct img_dir *d, pid_t **out, size_t *n)
{
	struct img_buf *b;
	ProtobufCMessage *m;
	int e = img_load(d, "pstree.img", IMG_MAGIC_PSTREE, &b);
	*out = NULL;
	*n = 0;
	if (e < 0)
		return e;
	while ((e = img_buf_next(b, &pstree_entry__descriptor, &m)) == 1) {
		PstreeEntry *p = (PstreeEntry *)m;
		pid_t *nw = p->zombie ? *out : realloc(*out, (*n + 1) * sizeof(**out));
		if (nw && !p->zombie)
			(*out = nw)[(*n)++] = (pid_t)p->pid;
		protobuf_c_message_free_unpacked(m, NULL);
		if (!nw) {
			e = -ENOMEM;
			break;
		}
	}
	img_buf_free(b);
	return e < 0 ? -EBADMSG : 0;
}

/* The final round's verdict on a process (below): NULL = warm, else why cold. */
static const char *decide(struct rst_warm_proc *p, const MmEntry *mm, PagemapEntry **pm, size_t n);

/* One process of round d; the final round also decides it (warm or cold). */
static int proc_round(struct rst_warm *w, struct rst_warm_proc *p, struct img_dir *d, bool final,
		      uint64_t *bytes)
{
	char name[64];
	MmEntry *mm = NULL;
	PagemapHead *h = NULL;
	PagemapEntry **pm = NULL;
	size_t n = 0;
	const char *why;
	int e;

	if (p->cold)
		return 0;
	e = img_read_one(d, img_name(name, final ? "mm-%d.img" : "vmas-%d.img", p->pid),
			 IMG_MAGIC_MM, &mm_entry__descriptor, (ProtobufCMessage **)&mm);
	if (e < 0) { /* pages of this round and older ones cannot be placed: forget them
		      * (later rounds may cover what the final needs; decide() checks) */
		pr_info("warm: process %d: '%s' has no %s: its staging starts over", p->pid,
			img_dir_path(d), name);
		proc_clear(p);
		return 0;
	}
	if ((e = layout_apply(w, p, mm)) < 0)
		proc_cold(p, e == -ENOSPC  ? "its staging area is full"
			     : e == -EFBIG ? "more than 1 TiB of private memory (reserved ranges)"
					   : "its layout cannot be staged");
	else if (rst_pagemap_load(d, p->pid, &h, &pm, &n) < 0 ||
		 pages_apply(w, p, d, h, pm, n, final, bytes) < 0)
		proc_cold(p, "a round's pages could not be staged");
	else if (final && (why = decide(p, mm, pm, n)))
		proc_cold(p, why);
	rst_pagemap_free(h, pm, n);
	mm_entry__free_unpacked(mm, NULL);
	return 0;
}

/* Apply round d: processes gone are dropped, new ones start empty. */
static int round_apply(struct rst_warm *w, struct img_dir *d, bool final, uint64_t *bytes)
{
	pid_t *pids;
	size_t n;
	int e = pids_load(d, &pids, &n);

	if (e < 0)
		return pr_err_ret(e, "warm: '%s': no usable pstree.img", img_dir_path(d));
	for (size_t i = 0; i < w->n;) { /* gone since the last round */
		bool keep = false;
		for (size_t k = 0; k < n && !keep; k++)
			keep = pids[k] == w->pr[i].pid;
		if (keep) {
			i++;
			continue;
		}
		proc_clear(&w->pr[i]);
		w->pr[i] = w->pr[--w->n];
	}
	for (size_t k = 0; k < n && e == 0; k++) {
		struct rst_warm_proc *p = proc_get(w, pids[k]);
		e = p ? proc_round(w, p, d, final, bytes) : -ENOMEM;
	}
	free(pids);
	return e;
}

static void reset(struct rst_warm *w)
{
	for (size_t i = 0; i < w->n; i++)
		proc_clear(&w->pr[i]);
	free(w->pr);
	w->pr = NULL;
	w->n = 0;
	w->last[0] = 0;
}

/* The rounds to apply before d when d does not follow w->last: its ancestors that carry
 * a layout (pstree.img), oldest first in out[*n-1 .. 0]. */
static int chain_collect(struct rst_warm *w, const char *dir, char (*out)[PATH_MAX], int *n)
{
	char cur[PATH_MAX], par[PATH_MAX];
	struct img_dir *d;
	*n = 0;
	snprintf(cur, sizeof(cur), "%s", dir);
	while (*n < MAX_ROUNDS && img_dir_open(cur, &d) == 0) {
		int e = rst_parent_path(d, par, sizeof(par));
		img_dir_free(d);
		if (e < 0 || !realpath(par, out[*n]))
			break;
		if (w->last[0] && !strcmp(out[*n], w->last))
			return 1; /* follows what we applied */
		struct img_dir *pd;
		if (img_dir_open(out[*n], &pd) < 0)
			break;
		bool layout = img_dir_has(pd, "pstree.img");
		img_dir_free(pd);
		if (!layout)
			break;
		snprintf(cur, sizeof(cur), "%s", out[(*n)++]);
	}
	return 0;
}

static int apply_dir(struct rst_warm *w, const char *dir, bool final, uint64_t *bytes)
{
	struct img_dir *d;
	int e = img_dir_open(dir, &d);
	if (e < 0)
		return e;
	e = round_apply(w, d, final, bytes);
	img_dir_free(d);
	if (e == 0 && !realpath(dir, w->last))
		w->last[0] = 0;
	return e;
}

static int warm_apply(struct rst_warm *w, const char *dir, bool final, uint64_t *bytes)
{
	char(*chain)[PATH_MAX] = calloc(MAX_ROUNDS, PATH_MAX);
	int n = 0, e = 0;

	*bytes = 0;
	if (!chain)
		return -ENOMEM;
	if (chain_collect(w, dir, chain, &n) == 0) {
		if (w->last[0])
			pr_info("warm: '%s' does not follow the last round staged: starting over",
				dir);
		reset(w);
		while (n-- > 0 && e == 0)
			e = apply_dir(w, chain[n], false, bytes);
	}
	if (e == 0)
		e = apply_dir(w, dir, final, bytes);
	free(chain);
	if (e < 0)
		reset(w);
	return e;
}

int rst_warm_round(struct rst_warm *w, const char *dir, uint64_t *bytes)
{
	uint64_t t0 = now_ns();
	int e = warm_apply(w, dir, false, bytes);
	if (e == 0)
		pr_info("warm: round '%s' staged: %llu bytes in %.1f ms", dir,
			(unsigned long long)*bytes, (now_ns() - t0) / 1e6);
	return e;
}

/* ---- final ----------------------------------------------------------------------- */

/* Whether the pieces cover [a, b) without a gap. */
static bool covered(const struct rst_warm_proc *p, uint64_t a, uint64_t b)
{
	for (size_t i = warm_piece_find(p, a); i < p->n && a < b; i++) {
		if (p->p[i].start > a)
			return false;
		a = p->p[i].end;
	}
	return a >= b;
}

/* Whether every page of [a, b) is known. */
static bool known(const struct rst_warm_proc *p, uint64_t a, uint64_t b)
{
	for (size_t i = warm_piece_find(p, a); i < p->n && a < b; i++) {
		const struct warm_piece *x = &p->p[i];
		uint64_t e = min_t(uint64_t, b, x->end);
		if (x->start > a ||
		    !bits_all(x->known, (a - x->start) / RST_PAGE, (e - a) / RST_PAGE))
			return false;
		a = e;
	}
	return a >= b;
}

/* VMA v moves into place: private anonymous, not growing down, and in one piece (the
 * pieces are distinct mappings here: moved side by side they would stay two VMAs where
 * the dumped process had one) mapped with its MAP_NORESERVE (a move keeps the flag). */
static bool movable(const struct rst_warm_proc *p, const VmaEntry *v)
{
	size_t i = warm_piece_find(p, v->start);
	return v->kind == VMA_KIND__VMA_ANON && !(v->flags & MAP_GROWSDOWN) && i < p->n &&
	       p->p[i].start <= v->start && p->p[i].end >= v->end &&
	       p->p[i].noreserve == !!(v->flags & MAP_NORESERVE);
}

static const char *decide(struct rst_warm_proc *p, const MmEntry *mm, PagemapEntry **pm, size_t n)
{
	uint64_t s = (uint64_t)p->slab, se = s + p->slab_len;

	if (!(p->vkind = calloc(mm->n_vmas + 1, 1)))
		return "out of memory";
	p->n_vmas = mm->n_vmas;
	for (size_t i = 0; i < mm->n_vmas; i++) {
		const VmaEntry *v = mm->vmas[i];
		if (v->start < se && v->end > s)
			return "its staging area overlaps its final layout";
		if (vma_stageable(v) && covered(p, v->start, v->end))
			p->vkind[i] = movable(p, v) ? WARM_MOVE : WARM_COPY;
	}
	for (size_t i = 0; i < n; i++) {
		uint64_t a = pm[i]->vaddr, b = a + (uint64_t)pm[i]->nr_pages * RST_PAGE;
		ssize_t vi = rst_vma_find(mm, a);
		if (vi < 0 || p->vkind[vi] == WARM_NONE || b > mm->vmas[vi]->end)
			return "pages outside its private memory (shared memory)";
		if (!known(p, a, b))
			return "pages older than the rounds staged";
	}
	return NULL;
}

/* Our anonymous memory in transparent huge pages, MiB (what keeps the stubs' fork
 * cheap: docs/warm.md), 0 if unknown. */
static uint64_t huge_mib(void)
{
	char *buf, *p;
	unsigned long long kb = 0;
	if (read_file("/proc/self/smaps_rollup", &buf, NULL, 1 << 16) < 0)
		return 0;
	if ((p = strstr(buf, "AnonHugePages:")))
		sscanf(p + 14, "%llu", &kb);
	free(buf);
	return kb / 1024;
}

int rst_warm_final(struct rst_warm *w, const char *dir)
{
	uint64_t t0 = now_ns(), bytes = 0;
	int e = warm_apply(w, dir, true, &bytes); /* each process decided there */

	if (e < 0) {
		reset(w);
		return pr_err_ret(e, "warm: the final round cannot be staged: restoring cold");
	}
	pr_info("warm: final round '%s' staged: %llu bytes in %.1f ms", dir,
		(unsigned long long)bytes, (now_ns() - t0) / 1e6);
	/* smaps_rollup walks our page tables: only when asked, this is the freeze */
	if (log_level >= LOG_DEBUG)
		pr_debug("warm: %llu MiB of the staging in huge pages",
			 (unsigned long long)huge_mib());
	return 0;
}

/* ---- state ----------------------------------------------------------------------- */

int rst_warm_new(struct rst_warm **out)
{
	struct rst_warm *w = calloc(1, sizeof(*w));
	const char *thp = getenv("FERRY_WARM_THP"); /* 0: no huge pages (measurements) */
	if (!w || !(w->discard = malloc(DISCARD_BUF))) {
		free(w);
		return -ENOMEM;
	}
	w->thp = !thp || strcmp(thp, "0");
	/* our specials, read now while nothing is staged (the restore would walk the
	 * staging's page tables in /proc/self/smaps, inside the freeze) */
	struct rst_special own[RST_SP_NR];
	(void)rst_own_specials(getpid(), own);
	*out = w;
	return 0;
}

const struct rst_warm_proc *rst_warm_proc(const struct rst_warm *w, pid_t pid, size_t n_vmas)
{
	for (size_t i = 0; w && i < w->n; i++)
		if (w->pr[i].pid == pid)
			return !w->pr[i].cold && w->pr[i].vkind && w->pr[i].n_vmas == n_vmas
				       ? &w->pr[i]
				       : NULL;
	return NULL;
}

void rst_warm_release(struct rst_warm *w)
{
	for (size_t i = 0; w && i < w->n; i++)
		if (w->pr[i].slab) {
			munmap(w->pr[i].slab, w->pr[i].slab_len);
			w->pr[i].slab = NULL;
		}
}

void rst_warm_free(struct rst_warm *w)
{
	if (!w)
		return;
	reset(w);
	free(w->discard);
	free(w);
}
