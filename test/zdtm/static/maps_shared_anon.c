/*
 * maps_shared_anon: a MAP_SHARED|MAP_ANONYMOUS region with data. After the restore the
 * data is intact, the VMA is still shared ("rw-s"), and it is really shared memory: a
 * child forked after the restore writes into it and the parent sees the write.
 */
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "zdtmtst.h"

#define LEN (64 * 4096)

int main(int argc, char **argv)
{
	unsigned long s0, e0, s, e;
	char perms[5];
	volatile char *m;
	size_t off;
	int st;
	pid_t c;

	test_init(argc, argv);
	m = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		fail("mmap: %m");
	test_fill((void *)m, LEN - 4096, 77);
	/* the last page stays untouched: it must read as zeroes after */
	if (test_vma_find((void *)m, &s0, &e0, perms) < 0 || strcmp(perms, "rw-s"))
		fail("unexpected vma before dump");

	test_ready();
	test_wait_sigterm();

	if (test_vma_find((void *)m, &s, &e, perms) < 0)
		fail("region unmapped");
	if (s != s0 || e != e0 || strcmp(perms, "rw-s"))
		fail("vma %lx-%lx %s, expected %lx-%lx rw-s", s, e, perms, s0, e0);
	off = test_verify((void *)m, LEN - 4096, 77);
	if (off != (size_t)-1)
		fail("data differs at offset %zu", off);
	for (off = LEN - 4096; off < LEN; off++)
		if (m[off])
			fail("untouched page not zero at %zu", off);
	c = fork();
	if (c < 0)
		fail("fork: %m");
	if (c == 0) {
		m[LEN - 1] = 0x5a;
		_exit(0);
	}
	if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st))
		fail("child failed");
	if (m[LEN - 1] != 0x5a)
		fail("write of a child not visible: the region is not shared any more");
	pass();
}
