/*
 * sig_handlers: signal handlers installed with SA_SIGINFO, SA_RESTART, SA_ONSTACK,
 * SA_NODEFER, SA_RESETHAND and masks, plus an ignored signal. After the restore
 * sigaction() must return the same handler, flags and mask for each, and raising each
 * signal must run its handler the way its flags say (siginfo, mask while running,
 * alternate stack, reset to default).
 */
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "zdtmtst.h"

#define ALTSZ (64 * 1024)

static char *alt;
static volatile int ran[_NSIG];
static volatile int info_ok, mask_ok, onstack_ok;

static void h_info(int sig, siginfo_t *si, void *uc)
{
	sigset_t cur;
	(void)uc;
	ran[sig]++;
	info_ok = si->si_signo == sig && si->si_pid == getpid() && si->si_code == SI_TKILL;
	sigprocmask(SIG_BLOCK, NULL, &cur);
	/* its own signal and its sa_mask are blocked while it runs */
	mask_ok = sigismember(&cur, SIGUSR1) && sigismember(&cur, SIGUSR2) &&
		  sigismember(&cur, SIGWINCH);
}

static void h_stack(int sig)
{
	char here;
	ran[sig]++;
	onstack_ok = &here >= alt && &here < alt + ALTSZ;
}

static void h_nodefer(int sig)
{
	sigset_t cur;
	ran[sig]++;
	sigprocmask(SIG_BLOCK, NULL, &cur);
	if (sigismember(&cur, sig))	/* SA_NODEFER: not blocked in its own handler */
		ran[sig] = -100;
}

struct act {
	int sig;
	void *handler;
	int flags;
	int masked[3];
};

static int mask_eq(const sigset_t *a, const sigset_t *b)
{
	int s;
	for (s = 1; s < _NSIG; s++)
		if (sigismember(a, s) != sigismember(b, s))
			return 0;
	return 1;
}

/* after each signal was raised once: did each handler run the way its flags say? */
static void check_behaviour(void)
{
	struct sigaction now;

	if (ran[SIGUSR1] != 1 || !info_ok || !mask_ok)
		fail("SIGUSR1: ran %d, siginfo ok %d, mask ok %d", ran[SIGUSR1], info_ok, mask_ok);
	if (ran[SIGUSR2] != 1 || ran[SIGRTMIN + 3] != 1 || !onstack_ok)
		fail("SA_ONSTACK handlers: ran %d/%d, on the alternate stack %d", ran[SIGUSR2],
		     ran[SIGRTMIN + 3], onstack_ok);
	if (ran[SIGHUP] != 1)
		fail("SIGHUP handler: %d (negative: blocked despite SA_NODEFER)", ran[SIGHUP]);
	sigaction(SIGHUP, NULL, &now);
	if (now.sa_handler != SIG_DFL)
		fail("SA_RESETHAND did not reset SIGHUP");
}

int main(int argc, char **argv)
{
	struct act acts[] = {
		{ SIGUSR1, (void *)h_info, SA_SIGINFO | SA_RESTART, { SIGUSR2, SIGWINCH } },
		{ SIGUSR2, (void *)h_stack, SA_ONSTACK, { SIGHUP } },
		{ SIGHUP, (void *)h_nodefer, SA_NODEFER | SA_RESETHAND, { SIGINT } },
		{ SIGINT, (void *)SIG_IGN, 0, { 0 } },
		{ SIGRTMIN + 3, (void *)h_stack, SA_ONSTACK | SA_RESTART, { SIGRTMAX, SIGQUIT } },
	};
	int n = sizeof(acts) / sizeof(acts[0]), i, j;
	struct sigaction before[8];
	stack_t ss;

	test_init(argc, argv);
	alt = mmap(NULL, ALTSZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (alt == MAP_FAILED)
		fail("mmap: %m");
	ss.ss_sp = alt;
	ss.ss_size = ALTSZ;
	ss.ss_flags = 0;
	if (sigaltstack(&ss, NULL))
		fail("sigaltstack: %m");
	for (i = 0; i < n; i++) {
		struct sigaction sa;
		memset(&sa, 0, sizeof(sa));
		sa.sa_sigaction = acts[i].handler;
		sa.sa_flags = acts[i].flags;
		sigemptyset(&sa.sa_mask);
		for (j = 0; j < 3 && acts[i].masked[j]; j++)
			sigaddset(&sa.sa_mask, acts[i].masked[j]);
		if (sigaction(acts[i].sig, &sa, NULL) || sigaction(acts[i].sig, NULL, &before[i]))
			fail("sigaction %d: %m", acts[i].sig);
	}

	test_ready();
	test_wait_sigterm();

	for (i = 0; i < n; i++) {
		struct sigaction now;
		if (sigaction(acts[i].sig, NULL, &now))
			fail("sigaction %d: %m", acts[i].sig);
		if ((void *)now.sa_sigaction != (void *)before[i].sa_sigaction)
			fail("signal %d: handler %p, was %p", acts[i].sig, (void *)now.sa_sigaction,
			     (void *)before[i].sa_sigaction);
		if (now.sa_flags != before[i].sa_flags)
			fail("signal %d: flags %#x, were %#x", acts[i].sig, now.sa_flags,
			     before[i].sa_flags);
		if (!mask_eq(&now.sa_mask, &before[i].sa_mask))
			fail("signal %d: sa_mask differs", acts[i].sig);
	}
	for (i = 0; i < n; i++)
		raise(acts[i].sig);	/* SIGINT is ignored: nothing happens */
	check_behaviour();
	pass();
}
