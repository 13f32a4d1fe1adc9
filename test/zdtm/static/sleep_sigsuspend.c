/*
 * sleep_sigsuspend: dumped inside sigsuspend(). While it waits, the kernel shows the
 * temporary mask; the process's real mask (SIGTERM, SIGUSR1, SIGHUP blocked) is only
 * saved in the kernel. After the restore, SIGTERM ends the sigsuspend (EINTR, handler
 * ran) and the real mask must be back, not the temporary one.
 */
#include <errno.h>
#include <signal.h>

#include "zdtmtst.h"

static int same(const sigset_t *a, const sigset_t *b)
{
	int s;
	for (s = 1; s < _NSIG; s++)
		if (sigismember(a, s) != sigismember(b, s))
			return 0;
	return 1;
}

int main(int argc, char **argv)
{
	sigset_t real, tmp, now;
	int r;

	test_init(argc, argv);
	sigemptyset(&real);
	sigaddset(&real, SIGTERM);
	sigaddset(&real, SIGUSR1);
	sigaddset(&real, SIGHUP);
	sigprocmask(SIG_SETMASK, &real, NULL);
	sigemptyset(&tmp);
	sigaddset(&tmp, SIGUSR2);	/* while waiting: only SIGUSR2 blocked */
	test_ready();
	r = sigsuspend(&tmp);
	if (r != -1 || errno != EINTR)
		fail("sigsuspend returned %d (%m)", r);
	if (!test_sigterm)
		fail("woken, but not by SIGTERM");
	sigprocmask(SIG_BLOCK, NULL, &now);
	if (!same(&now, &real))
		fail("mask after sigsuspend: term %d usr1 %d hup %d usr2 %d; expected 1 1 1 0",
		     sigismember(&now, SIGTERM), sigismember(&now, SIGUSR1),
		     sigismember(&now, SIGHUP), sigismember(&now, SIGUSR2));
	pass();
}
