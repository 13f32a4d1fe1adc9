/*
 * maps_many: 3000 small VMAs (one page each, alternating rw and r, each with its own
 * data) in one range. After the restore every VMA has its bounds, permissions and data.
 */
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "zdtmtst.h"

#define N 3000

int main(int argc, char **argv)
{
	size_t pg = sysconf(_SC_PAGESIZE);
	unsigned long s, e;
	char perms[5], *m;
	int i;

	test_init(argc, argv);
	m = mmap(NULL, N * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		fail("mmap: %m");
	for (i = 0; i < N; i++) {
		test_fill(m + i * pg, pg, 90000 + i);
		if ((i & 1) && mprotect(m + i * pg, pg, PROT_READ))
			fail("mprotect: %m");
	}

	test_ready();
	test_wait_sigterm();

	for (i = 0; i < N; i++) {
		char *p = m + i * pg;
		if (test_verify(p, pg, 90000 + i) != (size_t)-1)
			fail("page %d: data differs", i);
		/* a scan of maps per VMA is slow: check a sample plus both ends */
		if (i % 97 && i != 1 && i != N - 1)
			continue;
		if (test_vma_find(p, &s, &e, perms) < 0)
			fail("page %d not mapped", i);
		if ((i > 0 && i < N - 1 && (s != (unsigned long)p || e != (unsigned long)p + pg)) ||
		    strcmp(perms, (i & 1) ? "r--p" : "rw-p"))
			fail("page %d: vma %lx-%lx %s", i, s, e, perms);
	}
	pass();
}
