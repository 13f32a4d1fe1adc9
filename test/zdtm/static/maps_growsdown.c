/*
 * maps_growsdown: a MAP_GROWSDOWN region with data, with free space below it. After the
 * restore the data is intact, the VMA still carries the "gd" flag, and touching the
 * page below it grows the region down.
 */
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "zdtmtst.h"

#define RESERVE (8UL << 20)
#define NP 4

int main(int argc, char **argv)
{
	size_t pg = sysconf(_SC_PAGESIZE);
	unsigned long s0, e0, s, e;
	char perms[5], flags[256];
	char *base, *gd;
	size_t off;

	test_init(argc, argv);
	/* find a hole, free it, put the region at its top: the bottom is the space to grow
	 * into (beyond the kernel's stack guard gap of 1 MiB) */
	base = mmap(NULL, RESERVE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED)
		fail("mmap: %m");
	munmap(base, RESERVE);
	gd = mmap(base + RESERVE - NP * pg, NP * pg, PROT_READ | PROT_WRITE,
		  MAP_PRIVATE | MAP_ANONYMOUS | MAP_GROWSDOWN | MAP_FIXED, -1, 0);
	if (gd == MAP_FAILED)
		fail("mmap MAP_GROWSDOWN: %m");
	test_fill(gd, NP * pg, 31);
	if (test_vma_find(gd, &s0, &e0, perms) < 0)
		fail("region not found");
	if (test_vma_vmflags(gd, flags, sizeof(flags)) < 0 || !strstr(flags, " gd") )
		fail("no gd flag before dump: '%s'", flags);

	test_ready();
	test_wait_sigterm();

	if (test_vma_find(gd, &s, &e, perms) < 0)
		fail("region unmapped");
	if (s != s0 || e != e0 || strcmp(perms, "rw-p"))
		fail("vma %lx-%lx %s, expected %lx-%lx rw-p", s, e, perms, s0, e0);
	if (test_vma_vmflags(gd, flags, sizeof(flags)) < 0 || !strstr(flags, " gd"))
		fail("gd flag lost: VmFlags '%s'", flags);
	off = test_verify(gd, NP * pg, 31);
	if (off != (size_t)-1)
		fail("data differs at offset %zu", off);
	/* grow: write just below the start */
	*(volatile char *)(gd - 1) = 1;
	if (test_vma_find(gd, &s, &e, perms) < 0 || s > s0 - pg || e != e0)
		fail("region did not grow down: %lx-%lx (was %lx-%lx)", s, e, s0, e0);
	pass();
}
