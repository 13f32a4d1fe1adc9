/*
 * maps_addrs: mappings at the ends of the address space: at mmap_min_addr (or 1 MiB
 * when that is taken) and just below the top of the 47-bit user space. After the
 * restore both are at the same place with their data.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "zdtmtst.h"

#define LEN (16 * 4096)

static char *map_at(unsigned long a)
{
	char *p = mmap((void *)a, LEN, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

int main(int argc, char **argv)
{
	char buf[64], *lo, *hi;
	unsigned long s, e, minaddr = 65536;
	char perms[5];

	test_init(argc, argv);
	if (test_read_file("/proc/sys/vm/mmap_min_addr", buf, sizeof(buf)) > 0)
		minaddr = strtoul(buf, NULL, 10);
	if (minaddr < 4096)
		minaddr = 4096;
	lo = map_at(minaddr);
	if (!lo)
		lo = map_at(1UL << 20);
	hi = map_at((1UL << 47) - 4096 - LEN);	/* the top page is never mappable */
	if (!lo || !hi)
		fail("cannot map at the ends: lo %p hi %p: %m", (void *)lo, (void *)hi);
	test_fill(lo, LEN, 1);
	test_fill(hi, LEN, 2);

	test_ready();
	test_wait_sigterm();

	if (test_vma_find(lo, &s, &e, perms) < 0 || s != (unsigned long)lo)
		fail("low mapping at %p moved or lost", (void *)lo);
	if (test_vma_find(hi, &s, &e, perms) < 0 || s != (unsigned long)hi)
		fail("high mapping at %p moved or lost", (void *)hi);
	if (test_verify(lo, LEN, 1) != (size_t)-1 || test_verify(hi, LEN, 2) != (size_t)-1)
		fail("data differs");
	pass();
}
