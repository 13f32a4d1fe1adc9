/*
 * sleep_nanosleep_short: dumped during a short (2 s) relative nanosleep with SIGTERM
 * blocked, so nothing but the checkpoint interrupts it. The sleep must still complete
 * normally (return 0) and last at least 2 s of CLOCK_MONOTONIC in total (a restarted
 * relative sleep may last longer, never shorter), but not absurdly long (< 60 s).
 * Then SIGTERM, which waited blocked, is delivered.
 */
#include <errno.h>
#include <signal.h>
#include <time.h>

#include "zdtmtst.h"

int main(int argc, char **argv)
{
	struct timespec req = { .tv_sec = 2 }, t0, t1;
	sigset_t term, old;
	double dt;
	int r;

	test_init(argc, argv);
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	sigprocmask(SIG_BLOCK, &term, &old);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	test_ready();
	r = nanosleep(&req, NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (r)
		fail("nanosleep: %m");
	dt = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	if (dt < 2.0)
		fail("slept only %.3f s of 2 s", dt);
	if (dt > 60)
		fail("slept %.3f s for a 2 s request", dt);
	sigprocmask(SIG_SETMASK, &old, NULL);
	test_wait_sigterm();
	test_msg("slept %.3f s\n", dt);
	pass();
}
