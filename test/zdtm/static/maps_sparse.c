/*
 * maps_sparse: a 4096-page private anonymous region where every 7th page was written,
 * every 5th (not written) page only read (the kernel maps the shared zero page) and the
 * rest never touched. After the restore written pages hold their data, all others read
 * as zero, every page is still writable, and the restore did not populate the whole
 * region (its RSS stays below half the size).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "zdtmtst.h"

#define NP 4096

static long rss_kb(void *p)
{
	char buf[1 << 16], *l;
	unsigned long a = (unsigned long)p, s, e;
	FILE *f = fopen("/proc/self/smaps", "re");
	int in = 0;
	long kb = -1;

	if (!f)
		return -1;
	while (fgets(buf, sizeof(buf), f)) {
		if (sscanf(buf, "%lx-%lx ", &s, &e) == 2 && strchr(buf, '-') < strchr(buf, ' ')) {
			in = a >= s && a < e;
			continue;
		}
		l = buf;
		if (in && !strncmp(l, "Rss:", 4)) {
			kb = strtol(l + 4, NULL, 10);
			break;
		}
	}
	fclose(f);
	return kb;
}

int main(int argc, char **argv)
{
	size_t pg = sysconf(_SC_PAGESIZE), i, k;
	volatile char sink;
	char *m;
	long rss;

	test_init(argc, argv);
	m = mmap(NULL, NP * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		fail("mmap: %m");
	madvise(m, NP * pg, MADV_NOHUGEPAGE);
	for (i = 0; i < NP; i++) {
		if (i % 7 == 0)
			test_fill(m + i * pg, pg, 7000 + i);
		else if (i % 5 == 0)
			sink = m[i * pg];
	}
	(void)sink;

	test_ready();
	test_wait_sigterm();

	rss = rss_kb(m);
	if (rss < 0)
		fail("region not found in smaps");
	if ((size_t)rss * 1024 > NP * pg / 2)
		fail("restore populated the region: Rss %ld kB of %zu kB", rss, NP * pg / 1024);
	for (i = 0; i < NP; i++) {
		char *p = m + i * pg;
		if (i % 7 == 0) {
			if (test_verify(p, pg, 7000 + i) != (size_t)-1)
				fail("written page %zu differs", i);
		} else {
			for (k = 0; k < pg; k++)
				if (p[k])
					fail("page %zu byte %zu is %#x, expected 0", i, k, p[k]);
		}
		p[pg - 1] = 1;
	}
	pass();
}
