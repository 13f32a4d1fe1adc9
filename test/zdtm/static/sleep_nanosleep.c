/*
 * sleep_nanosleep: dumped while blocked in a long relative nanosleep (clock_nanosleep,
 * syscall 230: see .desc "blocked:"). After the restore it must still be sleeping;
 * SIGTERM interrupts it with EINTR and a remaining time that is positive and not
 * more than was asked.
 */
#include <errno.h>
#include <time.h>

#include "zdtmtst.h"

int main(int argc, char **argv)
{
	struct timespec req = { .tv_sec = 600 }, rem = { 0 };
	int r;

	test_init(argc, argv);
	test_ready();
	r = nanosleep(&req, &rem);
	if (r == 0)
		fail("nanosleep of 600 s completed");
	if (errno != EINTR)
		fail("nanosleep: %m, expected EINTR");
	if (!test_sigterm)
		fail("interrupted, but not by SIGTERM");
	if (rem.tv_sec < 0 || rem.tv_sec > 600 || (rem.tv_sec == 0 && rem.tv_nsec == 0) ||
	    rem.tv_nsec < 0 || rem.tv_nsec >= 1000000000)
		fail("odd remaining time %ld.%09ld", (long)rem.tv_sec, rem.tv_nsec);
	pass();
}
