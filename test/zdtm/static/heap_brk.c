/*
 * heap_brk: the program break grown with sbrk and filled with data. After the restore
 * the break is where it was, the data is intact, and the heap still grows and shrinks.
 */
#include <unistd.h>

#include "zdtmtst.h"

#define GROW (1024 * 4096)	/* 4 MiB: also the "few MiB" target of negative.sh */

int main(int argc, char **argv)
{
	char *start, *brk0, *brk1;
	size_t off;

	test_init(argc, argv);
	start = sbrk(GROW);
	if (start == (void *)-1)
		fail("sbrk: %m");
	brk0 = sbrk(0);
	if (brk0 != start + GROW)
		fail("sbrk(0) %p, expected %p", brk0, start + GROW);
	test_fill(start, GROW, 0xb7c);

	test_ready();
	test_wait_sigterm();

	brk1 = sbrk(0);
	if (brk1 != brk0)
		fail("brk moved: %p, was %p", brk1, brk0);
	off = test_verify(start, GROW, 0xb7c);
	if (off != (size_t)-1)
		fail("heap data differs at offset %zu", off);
	if (sbrk(4096) != brk0 || sbrk(0) != brk0 + 4096)
		fail("heap does not grow after restore");
	brk0[4095] = 1;
	if (sbrk(-4096) == (void *)-1 || sbrk(0) != brk0)
		fail("heap does not shrink after restore");
	pass();
}
