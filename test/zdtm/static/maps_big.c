/*
 * maps_big: a 1 GiB private anonymous region, fully written with a pattern, verified
 * after the restore (only the plain flavour: see maps_big.desc).
 */
#include <sys/mman.h>

#include "zdtmtst.h"

#define LEN (1UL << 30)

int main(int argc, char **argv)
{
	char *m;
	size_t off;

	test_init(argc, argv);
	m = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		test_skip("cannot map 1 GiB");
	test_fill(m, LEN, 0xb16);

	test_ready();
	test_wait_sigterm();

	off = test_verify(m, LEN, 0xb16);
	if (off != (size_t)-1)
		fail("data differs at offset %zu", off);
	pass();
}
