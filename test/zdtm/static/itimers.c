/*
 * itimers: ITIMER_REAL (2 s interval), ITIMER_VIRTUAL and ITIMER_PROF (long values and
 * intervals) armed across the checkpoint. After the restore each timer keeps its
 * interval, its remaining value is positive and not more than its interval (roughly
 * preserved: it must not be reset to a larger value or disarmed), and SIGALRM still
 * fires (the test waits for one more SIGALRM after SIGTERM; the runner's timeout
 * bounds that wait).
 */
#include <sys/time.h>
#include <string.h>

#include "zdtmtst.h"

static volatile int nalrm, nvt, nprof;

static void h(int sig)
{
	if (sig == SIGALRM)
		nalrm++;
	else if (sig == SIGVTALRM)
		nvt++;
	else
		nprof++;
}

static double tv(const struct timeval *t) { return t->tv_sec + t->tv_usec / 1e6; }

static void check_timer(int which, const char *name, const struct itimerval *set)
{
	struct itimerval now;
	if (getitimer(which, &now))
		fail("getitimer %s: %m", name);
	if (tv(&now.it_interval) != tv(&set->it_interval))
		fail("%s interval %.6f, was %.6f", name, tv(&now.it_interval), tv(&set->it_interval));
	if (tv(&now.it_value) <= 0)
		fail("%s disarmed", name);
	if (tv(&now.it_value) > tv(&set->it_value) && tv(&now.it_value) > tv(&set->it_interval))
		fail("%s remaining %.6f > set %.6f", name, tv(&now.it_value), tv(&set->it_value));
}

int main(int argc, char **argv)
{
	struct itimerval real = { { 2, 0 }, { 2, 0 } };
	struct itimerval virt = { { 500, 0 }, { 400, 250000 } };
	struct itimerval prof = { { 600, 0 }, { 300, 500000 } };
	struct sigaction sa;
	sigset_t all, old;
	int before;

	test_init(argc, argv);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = h;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	sigaction(SIGVTALRM, &sa, NULL);
	sigaction(SIGPROF, &sa, NULL);
	if (setitimer(ITIMER_REAL, &real, NULL) || setitimer(ITIMER_VIRTUAL, &virt, NULL) ||
	    setitimer(ITIMER_PROF, &prof, NULL))
		fail("setitimer: %m");

	test_ready();
	test_wait_sigterm();

	check_timer(ITIMER_REAL, "ITIMER_REAL", &real);
	check_timer(ITIMER_VIRTUAL, "ITIMER_VIRTUAL", &virt);
	check_timer(ITIMER_PROF, "ITIMER_PROF", &prof);
	if (nvt || nprof)
		fail("CPU timers fired early: %d %d", nvt, nprof);
	/* SIGALRM keeps firing: wait for the next one (at most one interval away) */
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	before = nalrm;
	while (nalrm == before) {
		sigset_t w = old;
		sigdelset(&w, SIGALRM);
		sigsuspend(&w);
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	test_msg("SIGALRM fired %d times\n", nalrm);
	pass();
}
