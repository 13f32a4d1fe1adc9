/*
 * threads_altstack: per-thread state that only the thread itself can report, different
 * in every thread: an alternate signal stack (own buffer and size, or none), a name, a
 * signal mask, a nice value and a timer slack. The threads wait in sem_wait (futex).
 * After the restore each thread checks its values, and a SIGUSR1 sent to it with
 * pthread_kill runs its SA_ONSTACK handler on its own alternate stack.
 */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "zdtmtst.h"

#define NT 3

struct th {
	int idx;
	pthread_t pt;
	pid_t tid;
	char *stack;
	size_t stack_len;
	sem_t go, done;
	int res;
	char why[128];
};

static __thread volatile uintptr_t handler_sp;

static void on_usr1(int sig)
{
	(void)sig;
	handler_sp = (uintptr_t)__builtin_frame_address(0);
}

#define TFAIL(t, ...) do { snprintf((t)->why, sizeof((t)->why), __VA_ARGS__); (t)->res = 1; goto out; } while (0)

static void *thread_main(void *arg)
{
	struct th *t = arg;
	char name[16], want[16];
	stack_t ss;
	sigset_t m;

	t->tid = gettid();
	snprintf(want, sizeof(want), "alt-%d", t->idx);
	prctl(PR_SET_NAME, want);
	prctl(PR_SET_TIMERSLACK, 1000 + t->idx * 777);
	setpriority(PRIO_PROCESS, t->tid, t->idx + 1);
	if (t->stack_len) {
		ss.ss_sp = t->stack;
		ss.ss_size = t->stack_len;
		ss.ss_flags = 0;
		if (sigaltstack(&ss, NULL))
			TFAIL(t, "sigaltstack: %m");
	}
	sigemptyset(&m);
	sigaddset(&m, SIGTERM);
	sigaddset(&m, SIGRTMIN + t->idx);
	pthread_sigmask(SIG_SETMASK, &m, NULL);
	sem_post(&t->done);
	while (sem_wait(&t->go) && errno == EINTR)
		;

	prctl(PR_GET_NAME, name);
	if (strcmp(name, want))
		TFAIL(t, "name '%s'", name);
	if (prctl(PR_GET_TIMERSLACK) != 1000 + t->idx * 777)
		TFAIL(t, "timer slack %d", prctl(PR_GET_TIMERSLACK));
	errno = 0;
	if (getpriority(PRIO_PROCESS, gettid()) != t->idx + 1)
		TFAIL(t, "nice %d", getpriority(PRIO_PROCESS, gettid()));
	pthread_sigmask(SIG_BLOCK, NULL, &m);
	if (!sigismember(&m, SIGTERM) || !sigismember(&m, SIGRTMIN + t->idx) ||
	    sigismember(&m, SIGRTMIN + (t->idx + 1) % NT))
		TFAIL(t, "signal mask");
	if (sigaltstack(NULL, &ss))
		TFAIL(t, "sigaltstack: %m");
	if (!t->stack_len) {
		if (!(ss.ss_flags & SS_DISABLE))
			TFAIL(t, "has an altstack %p", ss.ss_sp);
	} else if (ss.ss_sp != t->stack || ss.ss_size != t->stack_len || ss.ss_flags)
		TFAIL(t, "altstack %p+%zu flags %d, want %p+%zu", ss.ss_sp, ss.ss_size, ss.ss_flags,
		      t->stack, t->stack_len);
	handler_sp = 0;
	pthread_kill(pthread_self(), SIGUSR1);
	if (!handler_sp)
		TFAIL(t, "SIGUSR1 handler did not run");
	if (t->stack_len && (handler_sp < (uintptr_t)t->stack ||
			     handler_sp >= (uintptr_t)t->stack + t->stack_len))
		TFAIL(t, "handler ran at %#lx, outside its altstack", (unsigned long)handler_sp);
	if (gettid() != t->tid)
		TFAIL(t, "tid %d, was %d", gettid(), t->tid);
out:
	sem_post(&t->done);
	return NULL;
}

int main(int argc, char **argv)
{
	static struct th t[NT];
	struct sigaction sa;

	test_init(argc, argv);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sa.sa_flags = SA_ONSTACK;
	sigaction(SIGUSR1, &sa, NULL);
	for (int i = 0; i < NT; i++) {
		t[i].idx = i;
		t[i].stack_len = i == 1 ? 0 : (size_t)(64 << 10) * (i + 1);
		t[i].stack = t[i].stack_len ? malloc(t[i].stack_len) : NULL;
		sem_init(&t[i].go, 0, 0);
		sem_init(&t[i].done, 0, 0);
		if (pthread_create(&t[i].pt, NULL, thread_main, &t[i]))
			fail("pthread_create");
		while (sem_wait(&t[i].done) && errno == EINTR)
			;
		if (t[i].res)
			fail("thread %d setup: %s", i, t[i].why);
	}

	test_ready();
	test_wait_sigterm();

	for (int i = 0; i < NT; i++) {
		sem_post(&t[i].go);
		while (sem_wait(&t[i].done) && errno == EINTR)
			;
		pthread_join(t[i].pt, NULL);
		if (t[i].res)
			fail("thread %d: %s", i, t[i].why);
	}
	pass();
}
