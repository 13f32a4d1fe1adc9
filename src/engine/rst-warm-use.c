/*
 * rst-warm-use: the restore side of the warm staging (rst-warm.h, docs/warm.md): the
 * moves of a warm process's staged VMAs into place, and the pages of its VMAs that are
 * copied from the staging.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include "common/log.h"
#include "common/util.h"
#include "engine/rst-warm.h"
#include "img/img.h"

int rst_warm_move(struct rst *r, struct rst_batch *b, size_t vi)
{
	const struct rst_warm_proc *p = r->warm;
	const VmaEntry *v = r->mm->vmas[vi];
	uint64_t a = v->start;

	for (size_t i = warm_piece_find(p, a); i < p->n && a < v->end; i++) {
		const struct warm_piece *x = &p->p[i];
		uint64_t e = min_t(uint64_t, v->end, x->end), len = e - a;
		int k = rst_batch_add(b, "mremap", __NR_mremap, (uint64_t)x->w + (a - x->start),
				      len, len, MREMAP_MAYMOVE | MREMAP_FIXED, a, 0);
		if (k < 0)
			return k;
		rst_batch_expect(b, k, (long)a);
		rst_batch_whatf(b, k, "mremap of staged memory to %#llx-%#llx",
				(unsigned long long)a, (unsigned long long)e);
		a = e;
	}
	return 0;
}

int rst_warm_pages(struct rst *r)
{
	const struct rst_warm_proc *p = r->warm;
	uint64_t t0 = now_ns(), bytes = 0;
	int e = 0;

	for (size_t k = 0; k < r->n_pm && e == 0; k++) {
		const PagemapEntry *pe = r->pm[k];
		uint64_t a = pe->vaddr, end = a + (uint64_t)pe->nr_pages * RST_PAGE;
		ssize_t vi = rst_vma_find(r->mm, a);
		if (vi < 0 || p->vkind[vi] != WARM_COPY)
			continue; /* WARM_MOVE: in place (rst_warm_final made sure of the rest) */
		if (pe->flags == PE_ZERO && r->mm->vmas[vi]->kind == VMA_KIND__VMA_ANON)
			continue; /* fresh anonymous memory reads as zero already */
		for (size_t i = warm_piece_find(p, a); i < p->n && a < end && e == 0; i++) {
			const struct warm_piece *x = &p->p[i];
			uint64_t b = min_t(uint64_t, end, x->end);
			e = rst_write(r, a, x->w + (a - x->start), b - a);
			bytes += b - a;
			a = b;
		}
	}
	pr_debug("warm: process %d: %llu bytes copied from the staging in %.2f ms", r->ipid,
		 (unsigned long long)bytes, (now_ns() - t0) / 1e6);
	return e;
}
