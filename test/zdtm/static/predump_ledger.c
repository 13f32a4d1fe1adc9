/*
 * predump_ledger: many threads write many pages at a high rate while pre-dump rounds
 * and the final dump run. Every page carries a generation stamp in its first word and
 * a pattern of (stamp, page) in the rest; the writing thread then records the stamp in
 * a ledger (one entry per page, each page owned by one thread, so no locks). After the
 * restore the threads keep writing until SIGTERM, are joined (each finishes its
 * current page and ledger entry), and then every page must equal its ledger entry
 * exactly: a page restored from an older round than its ledger entry (a write the
 * tracker missed, a PE_PARENT run that was stale) or a torn page fails the test.
 * Also checks that the stamps actually moved during the checkpoint (the threads were
 * writing, not idle) and that the threads wrote after the restore.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "zdtmtst.h"

#define NT 4	   /* writer threads */
#define NP 8192	   /* pages: 32 MiB */

static char *mem;
static uint64_t *ledger;
static size_t pg;
static atomic_ulong writes[NT];
static atomic_int stop;

static void *writer(void *arg)
{
	unsigned t = (unsigned)(uintptr_t)arg;
	uint64_t x = 0x9e3779b97f4a7c15ull * (t + 1), g = 1;

	while (!atomic_load(&stop)) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		size_t p = (x % (NP / NT)) * NT + t; /* pages of thread t: p % NT == t */
		char *page = mem + p * pg;
		g++;
		*(volatile uint64_t *)page = g;
		test_fill(page + 8, 256, g * NP + p); /* pattern head: fast, verifiable */
		*(volatile uint64_t *)(page + pg - 8) = g;
		ledger[p] = g;
		atomic_fetch_add(&writes[t], 1);
	}
	return NULL;
}

static unsigned long total_writes(void)
{
	unsigned long n = 0;
	for (int t = 0; t < NT; t++)
		n += atomic_load(&writes[t]);
	return n;
}

int main(int argc, char **argv)
{
	pthread_t th[NT];
	unsigned long before, after;
	size_t bad = 0;

	test_init(argc, argv);
	pg = sysconf(_SC_PAGESIZE);
	mem = mmap(NULL, NP * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ledger = calloc(NP, sizeof(*ledger));
	if (mem == MAP_FAILED || !ledger)
		fail("mmap/calloc: %m");
	for (size_t p = 0; p < NP; p++) { /* generation 1 everywhere, ledger agrees */
		*(uint64_t *)(mem + p * pg) = 1;
		test_fill(mem + p * pg + 8, 256, NP + p);
		*(uint64_t *)(mem + p * pg + pg - 8) = 1;
		ledger[p] = 1;
	}
	for (int t = 0; t < NT; t++)
		if (pthread_create(&th[t], NULL, writer, (void *)(uintptr_t)t))
			fail("pthread_create");
	while (total_writes() < 4 * NP) /* every thread is busy */
		sched_yield();
	before = total_writes();
	test_ready();
	test_wait_sigterm();
	after = total_writes();
	atomic_store(&stop, 1);
	for (int t = 0; t < NT; t++)
		pthread_join(th[t], NULL);

	for (size_t p = 0; p < NP; p++) {
		const char *page = mem + p * pg;
		uint64_t g = *(const uint64_t *)page, tail = *(const uint64_t *)(page + pg - 8);
		if (g != ledger[p] || tail != ledger[p] ||
		    test_verify(page + 8, 256, g * NP + p) != (size_t)-1) {
			if (bad++ < 5)
				test_msg("page %zu: stamp %llu tail %llu, ledger %llu\n", p,
					 (unsigned long long)g, (unsigned long long)tail,
					 (unsigned long long)ledger[p]);
		}
	}
	test_msg("%lu writes before ready, %lu at SIGTERM\n", before, after);
	if (bad)
		fail("%zu of %d pages differ from the ledger (stale or torn)", bad, NP);
	if (after <= before)
		fail("the writers made no progress (%lu -> %lu writes)", before, after);
	pass();
}
