/*
 * mig_hog: a process that is mostly cold memory plus a small hot set, the shape live
 * migration is made for. ZDTM_HOG_MIB MiB (default 64) of private anonymous memory
 * filled with a pattern once, and 64 hot pages that the main thread keeps rewriting
 * (one page every 2 ms: ~2 MB/s) with a sequence number at the start and at the end of
 * each page. After the restore (or migration): the cold memory matches its pattern,
 * every hot page is whole (start == end) and the sequence numbers are exactly the ones
 * last written (the pages are written in order, so the numbers must form one run).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "zdtmtst.h"

#define HOT 64
#define PAGE 4096

static void hot_write(uint8_t *hot, uint64_t seq)
{
	uint8_t *p = hot + (seq % HOT) * PAGE;
	memcpy(p, &seq, 8);
	memset(p + 8, (int)(seq & 0xff), PAGE - 16);
	memcpy(p + PAGE - 8, &seq, 8);
}

int main(int argc, char **argv)
{
	const char *e = getenv("ZDTM_HOG_MIB");
	size_t mib = e ? strtoul(e, NULL, 10) : 64, len = mib << 20;
	struct timespec tick = { 0, 2000000 };
	uint64_t seq = 0;

	test_init(argc, argv);
	uint8_t *cold = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t *hot = mmap(NULL, HOT * PAGE, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (cold == MAP_FAILED || hot == MAP_FAILED)
		test_skip("cannot map the memory");
	test_fill(cold, len, 0x40c);
	for (; seq < HOT; seq++)
		hot_write(hot, seq);
	test_ready();
	while (!test_sigterm) {
		hot_write(hot, seq++);
		nanosleep(&tick, NULL);
	}

	size_t off = test_verify(cold, len, 0x40c);
	if (off != (size_t)-1)
		fail("cold memory differs at offset %zu", off);
	/* the hot pages hold the HOT numbers before seq, each page whole */
	for (uint64_t s = seq - HOT; s < seq; s++) {
		uint8_t *p = hot + (s % HOT) * PAGE;
		uint64_t a, b;
		memcpy(&a, p, 8);
		memcpy(&b, p + PAGE - 8, 8);
		if (a != s || b != s || p[8] != (uint8_t)(s & 0xff) || p[PAGE - 9] != (uint8_t)(s & 0xff))
			fail("hot page %llu holds %llu/%llu, expected %llu", (unsigned long long)(s % HOT),
			     (unsigned long long)a, (unsigned long long)b, (unsigned long long)s);
	}
	test_msg("%llu hot writes, %zu MiB cold\n", (unsigned long long)seq, mib);
	pass();
}
