/*
 * threads: a process with two extra threads, each with its own state: tid, name
 * (PR_SET_NAME), signal mask, a thread-directed pending signal, and data on its own
 * stack. They block in read() on a pipe; after the restore the main thread (woken by
 * SIGTERM) writes one byte per thread, and each thread verifies its state and reports
 * through a second pipe.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "zdtmtst.h"

#define NT 2

struct th {
	int idx;
	pid_t tid;
	int go[2];
	int done[2];
	pthread_t pt;
	pthread_barrier_t *bar;
};

static void *thread_main(void *arg)
{
	struct th *t = arg;
	unsigned char stackdata[4096];
	char name[16], want[16], res = 0, c;
	sigset_t m, pend;
	pid_t tid;

	t->tid = gettid();
	snprintf(want, sizeof(want), "zdtm-thr-%d", t->idx);
	prctl(PR_SET_NAME, want);
	sigemptyset(&m);
	sigaddset(&m, t->idx ? SIGUSR2 : SIGUSR1);
	sigaddset(&m, SIGTERM);			/* only the main thread takes SIGTERM */
	pthread_sigmask(SIG_SETMASK, &m, NULL);
	syscall(SYS_tgkill, getpid(), t->tid, t->idx ? SIGUSR2 : SIGUSR1);
	test_fill(stackdata, sizeof(stackdata), 300 + t->idx);
	pthread_barrier_wait(t->bar);

	while (read(t->go[0], &c, 1) < 0 && errno == EINTR)
		;
	tid = gettid();
	if (tid != t->tid)
		res = 1;
	prctl(PR_GET_NAME, name);
	if (strcmp(name, want))
		res = 2;
	pthread_sigmask(SIG_BLOCK, NULL, &m);
	if (!sigismember(&m, t->idx ? SIGUSR2 : SIGUSR1) || !sigismember(&m, SIGTERM))
		res = 3;
	sigpending(&pend);
	if (!sigismember(&pend, t->idx ? SIGUSR2 : SIGUSR1))
		res = 4;
	if (test_verify(stackdata, sizeof(stackdata), 300 + t->idx) != (size_t)-1)
		res = 5;
	if (write(t->done[1], &res, 1) != 1)
		return NULL;
	return NULL;
}

static void h(int sig) { (void)sig; }

int main(int argc, char **argv)
{
	static const char *what[] = { "ok", "tid changed", "name lost", "mask lost",
				      "pending signal lost", "stack data differs" };
	struct th t[NT];
	pthread_barrier_t bar;
	char res;
	int i;

	test_init(argc, argv);
	signal(SIGUSR1, h);
	signal(SIGUSR2, h);
	pthread_barrier_init(&bar, NULL, NT + 1);
	for (i = 0; i < NT; i++) {
		t[i].idx = i;
		t[i].bar = &bar;
		if (pipe(t[i].go) || pipe(t[i].done))
			fail("pipe: %m");
		if (pthread_create(&t[i].pt, NULL, thread_main, &t[i]))
			fail("pthread_create");
	}
	pthread_barrier_wait(&bar);

	test_ready();
	test_wait_sigterm();

	for (i = 0; i < NT; i++) {
		char tp[64];
		snprintf(tp, sizeof(tp), "/proc/self/task/%d", t[i].tid);
		if (access(tp, F_OK))
			fail("thread %d (tid %d) is gone", i, t[i].tid);
		if (write(t[i].go[1], "g", 1) != 1)
			fail("write: %m");
		if (read(t[i].done[0], &res, 1) != 1)
			fail("thread %d did not answer: %m", i);
		if (res)
			fail("thread %d: %s", i, what[(int)res]);
		pthread_join(t[i].pt, NULL);
	}
	pass();
}
