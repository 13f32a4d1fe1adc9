/*
 * maps_dirty: memory that keeps changing while it is checkpointed. The test rewrites a
 * 1 MiB region page after page, pass after pass, until SIGTERM: in pass g each page
 * gets g in its first word and a pattern of (g, page) in the rest. Whenever it stops,
 * the generations read, page by page, g..g then g-1..g-1 (one boundary at most) and
 * every page holds the pattern of its generation. A page saved from an older pass than
 * its neighbours (a missed dirty page, e.g. across pre-dump rounds) or a torn one
 * breaks that. The writes continue after the restore until SIGTERM.
 */
#include <sys/mman.h>
#include <unistd.h>

#include "zdtmtst.h"

#define NP 256

int main(int argc, char **argv)
{
	size_t pg = sysconf(_SC_PAGESIZE), p;
	uint64_t g, first, last;
	char *m;
	int ready = 0;

	test_init(argc, argv);
	m = mmap(NULL, NP * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		fail("mmap: %m");
	for (g = 1; !test_sigterm; g++) {
		for (p = 0; p < NP && !test_sigterm; p++) {
			*(volatile uint64_t *)(m + p * pg) = g;
			test_fill(m + p * pg + 8, pg - 8, g * NP + p);
		}
		if (!ready && g == 2) {
			test_ready();	/* a full pass done: every page has data */
			ready = 1;
		}
	}

	first = *(uint64_t *)m;
	last = first;
	for (p = 0; p < NP; p++) {
		g = *(uint64_t *)(m + p * pg);
		if (g > last || g + 1 < first || (g != last && g != last - 1))
			fail("page %zu has generation %llu after %llu (first page: %llu)", p,
			     (unsigned long long)g, (unsigned long long)last, (unsigned long long)first);
		if (g + 1 == first && last == first)
			last = g;	/* the one boundary */
		if (test_verify(m + p * pg + 8, pg - 8, g * NP + p) != (size_t)-1)
			fail("page %zu: data is not that of its generation %llu", p,
			     (unsigned long long)g);
	}
	test_msg("%llu passes\n", (unsigned long long)first);
	pass();
}
