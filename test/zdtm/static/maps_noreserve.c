/*
 * maps_noreserve: a 64 GiB private read/write MAP_NORESERVE reservation (more than this
 * machine's memory and swap: the kernel's heuristic overcommit refuses it without
 * MAP_NORESERVE), as a sanitizer's shadow or a JIT's heap reserves, with a few written
 * pages, and next to it a small read/write mapping with commit accounting. After the
 * restore the reservation is still there whole and still without accounting (VmFlags
 * "nr"), the accounted one still without "nr", written pages hold their data and
 * untouched pages read as zero.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "zdtmtst.h"

#define LEN   (64UL << 30)
#define NPG   8
#define STEP  (LEN / NPG)
#define SMALL (64UL << 10)

static bool has_flag(const void *addr, const char *flag)
{
	char buf[256], *s;
	size_t n = strlen(flag);
	if (test_vma_vmflags(addr, buf, sizeof(buf)) < 0)
		fail("no VmFlags for %p", addr);
	for (s = buf; (s = strstr(s, flag)); s += n)
		if ((s == buf || s[-1] == ' ') && (s[n] == ' ' || s[n] == '\n' || !s[n]))
			return true;
	return false;
}

static void region_check(const char *what, char *m, unsigned long len)
{
	unsigned long s, e;
	char perms[5];
	if (test_vma_find(m, &s, &e, perms) < 0 || s != (unsigned long)m ||
	    e != (unsigned long)m + len || strncmp(perms, "rw-p", 4))
		fail("%s: mapping %#lx-%#lx %s, expected %p +%#lx rw-p", what, s, e, perms, m, len);
}

int main(int argc, char **argv)
{
	size_t pg = 4096, i;
	char *m, *small;

	test_init(argc, argv);
	m = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		 -1, 0);
	if (m == MAP_FAILED)
		fail("mmap of the 64 GiB reservation: %m");
	small = mmap(NULL, SMALL, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (small == MAP_FAILED)
		fail("mmap: %m");
	for (i = 0; i < NPG; i++)
		test_fill(m + i * STEP + 3 * pg, pg, 500 + i);
	test_fill(small, SMALL, 77);
	if (!has_flag(m, "nr") || has_flag(small, "nr"))
		fail("VmFlags before the dump: reservation without nr or accounted one with it");

	test_ready();
	test_wait_sigterm();

	region_check("reservation", m, LEN); /* (the small one may merge with a neighbour) */
	if (!has_flag(m, "nr"))
		fail("the reservation lost MAP_NORESERVE (no nr in VmFlags)");
	if (has_flag(small, "nr"))
		fail("the accounted mapping gained MAP_NORESERVE");
	for (i = 0; i < NPG; i++) {
		char *p = m + i * STEP;
		if (test_verify(p + 3 * pg, pg, 500 + i) != (size_t)-1)
			fail("written page %zu differs", i);
		for (size_t k = 0; k < 3 * pg; k += 512)
			if (p[k])
				fail("untouched byte %zu before page %zu is %#x", k, i, p[k]);
	}
	if (test_verify(small, SMALL, 77) != (size_t)-1)
		fail("the accounted mapping's data differs");
	test_pass();
}
