/*
 * rlimits: several soft limits lowered (and one hard limit) before the checkpoint;
 * after the restore getrlimit() returns exactly the same pair for every resource.
 */
#include <string.h>
#include <sys/resource.h>

#include "zdtmtst.h"

static void lower_soft(int res, rlim_t v)
{
	struct rlimit r;
	getrlimit(res, &r);
	if (r.rlim_max != RLIM_INFINITY && v > r.rlim_max)
		v = r.rlim_max;
	r.rlim_cur = v;
	if (setrlimit(res, &r))
		fail("setrlimit %d: %m", res);
}

int main(int argc, char **argv)
{
	struct rlimit before[RLIM_NLIMITS], now, r;
	int i;

	test_init(argc, argv);
	lower_soft(RLIMIT_NOFILE, 200);
	lower_soft(RLIMIT_CORE, 12345 * 4096);
	lower_soft(RLIMIT_FSIZE, 1ULL << 34);
	lower_soft(RLIMIT_NPROC, 3000);
	lower_soft(RLIMIT_MSGQUEUE, 409600);
	lower_soft(RLIMIT_SIGPENDING, 1000);
	lower_soft(RLIMIT_MEMLOCK, 65536);
	/* a hard limit too: RLIMIT_LOCKS down to 5000/1000 */
	r.rlim_cur = 1000;
	r.rlim_max = 5000;
	if (setrlimit(RLIMIT_LOCKS, &r))
		fail("setrlimit LOCKS: %m");
	for (i = 0; i < RLIM_NLIMITS; i++)
		getrlimit(i, &before[i]);

	test_ready();
	test_wait_sigterm();

	for (i = 0; i < RLIM_NLIMITS; i++) {
		getrlimit(i, &now);
		if (now.rlim_cur != before[i].rlim_cur || now.rlim_max != before[i].rlim_max)
			fail("rlimit %d: %llu/%llu, was %llu/%llu", i,
			     (unsigned long long)now.rlim_cur, (unsigned long long)now.rlim_max,
			     (unsigned long long)before[i].rlim_cur,
			     (unsigned long long)before[i].rlim_max);
	}
	pass();
}
