/*
 * pdeath_sig: the parent-death signal set with PR_SET_PDEATHSIG survives. (The parent
 * may legitimately change across a restore, e.g. with restore -d, so a delivery of the
 * signal is counted, not treated as an error.)
 */
#include <string.h>
#include <sys/prctl.h>

#include "zdtmtst.h"

static volatile int got;

static void h(int sig)
{
	(void)sig;
	got++;
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	int sig = 0;

	test_init(argc, argv);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = h;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR2, &sa, NULL);
	if (prctl(PR_SET_PDEATHSIG, SIGUSR2))
		fail("PR_SET_PDEATHSIG: %m");

	test_ready();
	test_wait_sigterm();

	if (prctl(PR_GET_PDEATHSIG, &sig))
		fail("PR_GET_PDEATHSIG: %m");
	if (sig != SIGUSR2)
		fail("pdeath signal %d, expected %d", sig, SIGUSR2);
	test_msg("parent-death signal delivered %d times\n", got);
	pass();
}
