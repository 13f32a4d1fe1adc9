/*
 * vdso: the vDSO stays at its address (AT_SYSINFO_EHDR and the [vdso] line of maps) and
 * its clocks keep working after the restore: realtime does not go back, gettimeofday and
 * clock_gettime agree, monotonic advances.
 */
#include <string.h>
#include <sys/auxv.h>
#include <sys/time.h>
#include <time.h>

#include "zdtmtst.h"

static double ts(const struct timespec *t) { return t->tv_sec + t->tv_nsec / 1e9; }

int main(int argc, char **argv)
{
	unsigned long vdso = getauxval(AT_SYSINFO_EHDR), s0, e0, s, e;
	struct timespec rt0, mono0, rt1, mono1, mono2;
	struct timeval tv;
	char perms[5];

	test_init(argc, argv);
	if (!vdso)
		test_skip("no vDSO");
	if (test_vma_find((void *)vdso, &s0, &e0, perms) < 0 || s0 != vdso)
		fail("AT_SYSINFO_EHDR %lx is not the start of a mapping", vdso);
	clock_gettime(CLOCK_REALTIME, &rt0);
	clock_gettime(CLOCK_MONOTONIC, &mono0);

	test_ready();
	test_wait_sigterm();

	if (getauxval(AT_SYSINFO_EHDR) != vdso)
		fail("AT_SYSINFO_EHDR changed: %lx, was %lx", getauxval(AT_SYSINFO_EHDR), vdso);
	if (test_vma_find((void *)vdso, &s, &e, perms) < 0 || s != s0 || e != e0)
		fail("[vdso] moved or resized: %lx-%lx, was %lx-%lx", s, e, s0, e0);
	if (clock_gettime(CLOCK_REALTIME, &rt1) || clock_gettime(CLOCK_MONOTONIC, &mono1))
		fail("clock_gettime: %m");
	if (gettimeofday(&tv, NULL))
		fail("gettimeofday: %m");
	if (ts(&rt1) < ts(&rt0))
		fail("realtime went back: %f < %f", ts(&rt1), ts(&rt0));
	if (ts(&mono1) < ts(&mono0))
		fail("monotonic went back: %f < %f", ts(&mono1), ts(&mono0));
	if (tv.tv_sec + tv.tv_usec / 1e6 - ts(&rt1) > 1 || tv.tv_sec + tv.tv_usec / 1e6 < ts(&rt1) - 0.001)
		fail("gettimeofday and clock_gettime disagree");
	do
		clock_gettime(CLOCK_MONOTONIC, &mono2);
	while (ts(&mono2) == ts(&mono1));
	/* time() reads the coarse (tick-updated) clock: it may trail by a tick */
	if (time(NULL) < rt1.tv_sec - 1 || time(NULL) > rt1.tv_sec + 5)
		fail("time() %ld far from clock_gettime %ld", (long)time(NULL), (long)rt1.tv_sec);
	pass();
}
