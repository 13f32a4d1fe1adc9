/*
 * rst-warm.h: the warm destination of a migration (docs/migrate.md "The destination
 * builds the memory while rounds arrive"; docs/warm.md has the design and invariants).
 *
 * A warm restorer is a process of the destination that receives every pre-copy round
 * of a migration as it is committed and stages the memory of each process of the tree
 * in its own address space: one reserved "slab" per process, inside which every
 * private VMA of the round's layout (vmas-<pid>.img) has a "piece" holding its pages at
 * the VMA's offsets. At the final round it applies the last delta and then runs the
 * normal restore (restore_main with ferry_opts.warm): the stubs it forks inherit the
 * pieces (transparent huge pages: the fork copies a few page-table entries per GiB),
 * keep their own slab through their self-unmap, and the tracer mremaps each piece to
 * the VMA's dumped address instead of mapping it and writing its pages.
 *
 * Invariants: a piece's page is "known" only while it holds what the chain of applied
 * rounds says (the newest PRESENT or ZERO of it); a process restores warm only if every
 * page of its final pagemap is in a piece and known, and its slab overlaps none of its
 * final VMAs; anything else restores cold, as without a warm restorer.
 */
#ifndef FERRY_RST_WARM_H
#define FERRY_RST_WARM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "engine/restore.h"

enum { WARM_NONE = 0, WARM_MOVE, WARM_COPY };

struct warm_piece {
	uint64_t start, end; /* dumped (target) addresses */
	uint8_t *w;	     /* its pages here, at the same offsets */
	uint64_t room;	     /* reserved bytes after it in the slab (grows in place) */
	uint64_t *known;     /* one bit per page */
	bool noreserve;	     /* mapped MAP_NORESERVE, as its VMA was (moves keep it) */
};

struct rst_warm_proc {
	pid_t pid;
	const char *cold; /* why it restores cold (static text), NULL while fine */
	uint8_t *slab;	  /* reserved PROT_NONE, NULL until the first piece */
	uint64_t slab_len, cursor;
	struct warm_piece *p; /* sorted by start, disjoint */
	size_t n, cap;
	/* set by rst_warm_final: per VMA of the final mm-<pid>.img, WARM_* */
	uint8_t *vkind;
	size_t n_vmas;
};

struct rst_warm;

/* The first piece of p ending above a, or p->n. */
static inline size_t warm_piece_find(const struct rst_warm_proc *p, uint64_t a)
{
	size_t lo = 0, hi = p->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (p->p[mid].end <= a)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* A warm restorer's state. 0 or -ENOMEM. */
int rst_warm_new(struct rst_warm **out);
/* Stage round DIR (a pre-dump round of the migration). The first round (or one that
 * does not follow the last one applied) first applies the older rounds of its chain
 * that carry a layout. *bytes: page bytes staged. 0 or -errno (logged; the state is
 * reset and later rounds start over: the final restore is then cold where needed). */
int rst_warm_round(struct rst_warm *w, const char *dir, uint64_t *bytes);
/* Apply the final round DIR and decide, per process, warm or cold (logged). 0 or
 * -errno (logged; every process then restores cold). */
int rst_warm_final(struct rst_warm *w, const char *dir);
/* The warm state of process pid with n_vmas VMAs in its final mm, NULL: restore cold. */
const struct rst_warm_proc *rst_warm_proc(const struct rst_warm *w, pid_t pid, size_t n_vmas);
/* Unmap every slab here (the restored tree holds the pages now). */
void rst_warm_release(struct rst_warm *w);
/* NULL is fine. */
void rst_warm_free(struct rst_warm *w);

/* Restore side (rst-mem.c, restore.c), for r->warm. */
/* Queue the mremaps that put VMA i's pieces at its dumped address. */
int rst_warm_move(struct rst *r, struct rst_batch *b, size_t i);
/* Write the pages of the process's WARM_COPY VMAs from their pieces (WARM_MOVE ones are
 * in place already). 0 or -errno (logged). */
int rst_warm_pages(struct rst *r);

#endif
