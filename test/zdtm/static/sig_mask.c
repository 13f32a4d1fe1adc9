/*
 * sig_mask: a set of blocked signals (standard and realtime) while the process waits in
 * pause(), which does not touch the mask. After the restore sigprocmask() shows the
 * same set, and a blocked signal sent then stays pending instead of running its handler.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "zdtmtst.h"

static volatile int ran;

static void h(int sig) { (void)sig; ran++; }

int main(int argc, char **argv)
{
	int sigs[] = { SIGUSR1, SIGHUP, SIGPIPE, SIGCHLD, SIGRTMIN + 5, SIGRTMAX };
	int n = sizeof(sigs) / sizeof(sigs[0]), i, s;
	struct sigaction sa;
	sigset_t want, now, pend;

	test_init(argc, argv);
	sigemptyset(&want);
	for (i = 0; i < n; i++)
		sigaddset(&want, sigs[i]);
	sigprocmask(SIG_SETMASK, &want, NULL);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = h;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);

	test_ready();
	if (pause() != -1 || errno != EINTR || !test_sigterm)
		fail("pause: %m");

	sigprocmask(SIG_BLOCK, NULL, &now);
	for (s = 1; s < _NSIG; s++)
		if (sigismember(&now, s) != sigismember(&want, s))
			fail("signal %d: blocked %d, expected %d", s, sigismember(&now, s),
			     sigismember(&want, s));
	kill(getpid(), SIGUSR1);
	sigpending(&pend);
	if (ran || !sigismember(&pend, SIGUSR1))
		fail("SIGUSR1 not blocked any more (ran %d)", ran);
	pass();
}
