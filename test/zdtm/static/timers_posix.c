/*
 * timers_posix: two POSIX timers (timer_create): a CLOCK_MONOTONIC periodic timer
 * signalling SIGRTMIN+1 with a sigev_value, and a disarmed CLOCK_REALTIME one. After
 * the restore both ids are valid, the periodic one keeps its interval with 0 < remaining
 * <= interval, the disarmed one is still disarmed, and the signal still arrives with
 * its value.
 */
#include <signal.h>
#include <string.h>
#include <time.h>

#include "zdtmtst.h"

static volatile int fired, value;

static void h(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	fired++;
	value = si->si_value.sival_int;
}

int main(int argc, char **argv)
{
	struct itimerspec its = { { 1, 0 }, { 1, 0 } }, now;
	struct sigevent ev;
	struct sigaction sa;
	timer_t t1, t2;
	sigset_t all, old;
	int before;

	test_init(argc, argv);
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = h;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGRTMIN + 1, &sa, NULL);
	memset(&ev, 0, sizeof(ev));
	ev.sigev_notify = SIGEV_SIGNAL;
	ev.sigev_signo = SIGRTMIN + 1;
	ev.sigev_value.sival_int = 0xc0ffee;
	if (timer_create(CLOCK_MONOTONIC, &ev, &t1) || timer_settime(t1, 0, &its, NULL))
		fail("timer 1: %m");
	ev.sigev_value.sival_int = 2;
	if (timer_create(CLOCK_REALTIME, &ev, &t2))
		fail("timer 2: %m");

	test_ready();
	test_wait_sigterm();

	if (timer_gettime(t1, &now))
		fail("timer 1 id %p invalid after restore: %m", (void *)t1);
	if (now.it_interval.tv_sec != 1 || now.it_interval.tv_nsec)
		fail("timer 1 interval %ld.%09ld", (long)now.it_interval.tv_sec, now.it_interval.tv_nsec);
	if ((now.it_value.tv_sec == 0 && now.it_value.tv_nsec == 0) || now.it_value.tv_sec > 1)
		fail("timer 1 remaining %ld.%09ld", (long)now.it_value.tv_sec, now.it_value.tv_nsec);
	if (timer_gettime(t2, &now))
		fail("timer 2 id %p invalid after restore: %m", (void *)t2);
	if (now.it_value.tv_sec || now.it_value.tv_nsec)
		fail("timer 2 got armed");
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	before = fired;
	while (fired == before) {
		sigset_t w = old;
		sigdelset(&w, SIGRTMIN + 1);
		sigsuspend(&w);
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (value != 0xc0ffee)
		fail("timer signal value %#x", value);
	pass();
}
