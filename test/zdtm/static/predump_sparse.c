/*
 * predump_sparse: a 4 GiB writable, never-touched MAP_NORESERVE reservation (as a
 * sanitizer's shadow or a Go/JVM heap) with a few live pages, through pre-dump rounds.
 * The tracker must not register it (write-protect markers over its holes would cost
 * 8 MiB of page tables, 128 MiB for 64 GiB) but copy its few populated pages every
 * round (docs/dirty.md "sparse reservations"). While the rounds run, the test keeps
 * rewriting its 16 pages (one per 256 MiB) with new generations and sometimes drops one
 * (MADV_DONTNEED: reads as zero afterwards, must not come back from the chain). After
 * the restore every page holds its last generation or zero, untouched pages read
 * zero, the reservation is still there whole, and VmPTE stayed small while the rounds
 * ran (sampled every 20 ms in the original). (4 GiB: test_dirty covers 64 GiB for
 * the tracker, maps_noreserve a 64 GiB reservation through dump and restore.)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "zdtmtst.h"

#define LEN   (4UL << 30)
#define NPG   16
#define STEP  (LEN / NPG)
#define PAGE  4096UL
#define WORDS (PAGE / 8)

static uint64_t word(uint64_t gen, size_t i, size_t w)
{
	return gen * 0x9E3779B97F4A7C15ull + i * 131 + w + 1;
}

static void page_set(char *m, size_t i, uint64_t gen)
{
	uint64_t *p = (uint64_t *)(m + i * STEP + 7 * PAGE);
	for (size_t w = 0; w < WORDS; w++)
		p[w] = word(gen, i, w);
}

static int page_ok(const char *m, size_t i, uint64_t gen)
{
	const uint64_t *p = (const uint64_t *)(m + i * STEP + 7 * PAGE);
	for (size_t w = 0; w < WORDS; w++)
		if (p[w] != (gen ? word(gen, i, w) : 0))
			return 0;
	return 1;
}

static long vm_pte_kb(void)
{
	char line[256];
	long kb = -1;
	FILE *f = fopen("/proc/self/status", "r");

	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmPTE:", 6))
			kb = atol(line + 6);
	if (f)
		fclose(f);
	return kb;
}

int main(int argc, char **argv)
{
	static uint64_t gen[NPG]; /* 0 = dropped (reads as zero) */
	unsigned long start, end;
	char perms[5];
	uint64_t round = 0;
	long pte_max = 0; /* in the original while the rounds ran, carried by the restore */
	char *m;

	test_init(argc, argv);
	m = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		 -1, 0);
	if (m == MAP_FAILED)
		test_skip("cannot reserve 4 GiB");
	for (size_t i = 0; i < NPG; i++)
		page_set(m, i, gen[i] = 1);
	test_ready();
	while (!test_sigterm) {
		struct timespec ts = { 0, 20 * 1000 * 1000 };
		size_t i = (size_t)(round * 7) % NPG;
		round++;
		if (round % 5 == 0) {
			check(madvise(m + i * STEP + 7 * PAGE, PAGE, MADV_DONTNEED) == 0);
			gen[i] = 0;
		} else {
			page_set(m, i, gen[i] = round + 1);
		}
		if (vm_pte_kb() > pte_max)
			pte_max = vm_pte_kb();
		nanosleep(&ts, NULL);
	}
	for (size_t i = 0; i < NPG; i++)
		if (!page_ok(m, i, gen[i]))
			fail("page %zu: not generation %llu", i, (unsigned long long)gen[i]);
	for (size_t i = 0; i < NPG; i++) /* neighbours never written: zero */
		check(m[i * STEP] == 0 && m[i * STEP + 8 * PAGE] == 0);
	check(test_vma_find(m, &start, &end, perms) == 0);
	check(start <= (unsigned long)m && end >= (unsigned long)m + LEN);
	/* registered and scanned, the holes would have cost 8 MiB of page tables (in the
	 * original: the restored process has fresh ones) */
	if (pte_max <= 0 || pte_max >= 4096)
		fail("VmPTE reached %ld kB while the rounds ran", pte_max);
	pass();
}
