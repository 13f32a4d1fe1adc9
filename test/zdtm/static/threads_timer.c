/*
 * threads_timer: a POSIX timer that signals one particular thread (SIGEV_THREAD_ID),
 * armed periodic (50 ms) at the checkpoint, and a disarmed SIGEV_NONE timer. After the
 * restore both ids are valid, the periodic one keeps its interval, and its next signals
 * are delivered to that same thread (the handler records gettid()).
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "zdtmtst.h"

#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id _sigev_un._tid
#endif

static volatile pid_t got_tid;
static volatile int hits;
static volatile pid_t worker_tid;
static int stop_pipe[2];

static void on_sig(int sig)
{
	(void)sig;
	got_tid = gettid();
	hits++;
}

static void *worker(void *arg)
{
	char c;
	(void)arg;
	worker_tid = gettid();
	while (read(stop_pipe[0], &c, 1) < 0 && errno == EINTR)
		;
	return NULL;
}

int main(int argc, char **argv)
{
	struct itimerspec its = { { 0, 50000000 }, { 0, 50000000 } }, now;
	struct sigevent ev;
	timer_t t1, t2;
	pthread_t th;
	sigset_t m;

	test_init(argc, argv);
	signal(SIGRTMIN + 2, on_sig);
	/* the worker never takes SIGTERM (it is for the main thread's sigsuspend) */
	sigemptyset(&m);
	sigaddset(&m, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &m, NULL);
	if (pipe(stop_pipe) || pthread_create(&th, NULL, worker, NULL))
		fail("setup: %m");
	pthread_sigmask(SIG_UNBLOCK, &m, NULL);
	sigemptyset(&m);
	sigaddset(&m, SIGRTMIN + 2);
	pthread_sigmask(SIG_BLOCK, &m, NULL);	/* the main thread never takes it */
	while (!worker_tid)
		sched_yield();
	memset(&ev, 0, sizeof(ev));
	ev.sigev_notify = SIGEV_THREAD_ID;
	ev.sigev_signo = SIGRTMIN + 2;
	ev.sigev_notify_thread_id = worker_tid;
	if (timer_create(CLOCK_MONOTONIC, &ev, &t1) || timer_settime(t1, 0, &its, NULL))
		fail("timer 1: %m");
	ev.sigev_notify = SIGEV_NONE;
	if (timer_create(CLOCK_REALTIME, &ev, &t2))
		fail("timer 2: %m");

	test_ready();
	test_wait_sigterm();

	if (timer_gettime(t1, &now))
		fail("timer 1 invalid after restore: %m");
	if (now.it_interval.tv_sec || now.it_interval.tv_nsec != 50000000)
		fail("timer 1 interval %ld.%09ld", (long)now.it_interval.tv_sec, now.it_interval.tv_nsec);
	if (timer_gettime(t2, &now) || now.it_value.tv_sec || now.it_value.tv_nsec)
		fail("timer 2 invalid or armed after restore");
	int h = hits;
	got_tid = 0;
	struct timespec ts = { 0, 10000000 };
	for (int i = 0; i < 500 && (hits < h + 2 || !got_tid); i++)
		nanosleep(&ts, NULL);
	if (hits < h + 2)
		fail("the periodic timer stopped firing (%d signals)", hits - h);
	if (got_tid != worker_tid)
		fail("signal delivered to thread %d, want %d", got_tid, worker_tid);
	if (write(stop_pipe[1], "s", 1) != 1)
		fail("write: %m");
	pthread_join(th, NULL);
	pass();
}
