/*
 * maps_anon: private anonymous regions with every protection (rw, r, rx, none), each
 * holding data, plus one region split by mprotect into rw / r / none parts. After the
 * restore the data must be intact and each VMA must have its bounds and permissions.
 */
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "zdtmtst.h"

#define NPAGES 16

struct region {
	const char *name;
	int prot;
	const char *perms;
	char *addr;
	size_t len;
	unsigned long start, end;
};

static void check_region(struct region *r, uint64_t seed)
{
	unsigned long s, e;
	char perms[5];
	size_t off;

	if (test_vma_find(r->addr, &s, &e, perms) < 0)
		fail("%s: %p not mapped", r->name, r->addr);
	if (s != r->start || e != r->end || strcmp(perms, r->perms))
		fail("%s: vma %lx-%lx %s, expected %lx-%lx %s", r->name, s, e, perms,
		     r->start, r->end, r->perms);
	if (r->prot == PROT_NONE && mprotect(r->addr, r->len, PROT_READ) < 0)
		fail("mprotect: %m");
	off = test_verify(r->addr, r->len, seed);
	if (off != (size_t)-1)
		fail("%s: data differs at offset %zu", r->name, off);
	if (r->prot == PROT_NONE)
		mprotect(r->addr, r->len, PROT_NONE);
}

int main(int argc, char **argv)
{
	size_t pg = sysconf(_SC_PAGESIZE), len = NPAGES * pg;
	struct region r[] = {
		{ .name = "rw", .prot = PROT_READ | PROT_WRITE, .perms = "rw-p" },
		{ .name = "r", .prot = PROT_READ, .perms = "r--p" },
		{ .name = "rx", .prot = PROT_READ | PROT_EXEC, .perms = "r-xp" },
		{ .name = "none", .prot = PROT_NONE, .perms = "---p" },
		/* three parts of one mapping, split by mprotect */
		{ .name = "split-rw", .prot = PROT_READ | PROT_WRITE, .perms = "rw-p" },
		{ .name = "split-r", .prot = PROT_READ, .perms = "r--p" },
		{ .name = "split-none", .prot = PROT_NONE, .perms = "---p" },
	};
	int n = sizeof(r) / sizeof(r[0]), i;
	char *split, perms[5];

	test_init(argc, argv);
	for (i = 0; i < 4; i++) {
		/* a guard page on each side keeps neighbours from merging with the region */
		char *g = mmap(NULL, len + 2 * pg, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (g == MAP_FAILED)
			fail("mmap: %m");
		r[i].addr = mmap(g + pg, len, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		if (r[i].addr == MAP_FAILED)
			fail("mmap: %m");
		r[i].len = len;
	}
	split = mmap(NULL, 3 * len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (split == MAP_FAILED)
		fail("mmap: %m");
	for (i = 4; i < 7; i++) {
		r[i].addr = split + (i - 4) * len;
		r[i].len = len;
	}
	for (i = 0; i < n; i++) {
		test_fill(r[i].addr, r[i].len, 1000 + i);
		if (mprotect(r[i].addr, r[i].len, r[i].prot) < 0)
			fail("mprotect %s: %m", r[i].name);
		r[i].start = (unsigned long)r[i].addr;
		r[i].end = r[i].start + r[i].len;
	}
	/* the outer parts of split must not have merged with anything around them */
	for (i = 0; i < n; i++) {
		unsigned long s, e;
		if (test_vma_find(r[i].addr, &s, &e, perms) < 0 || s != r[i].start || e != r[i].end)
			test_skip("neighbouring mappings merged with a test region");
	}

	test_ready();
	test_wait_sigterm();

	for (i = 0; i < n; i++)
		check_region(&r[i], 1000 + i);
	/* the rw regions still accept writes */
	r[0].addr[0] ^= 1;
	r[4].addr[len - 1] ^= 1;
	pass();
}
