/*
 * prefork_server: a "preforking server" holding every resource kind of issue 3 at once.
 *
 * The parent listens on an abstract unix stream socket registered in an epoll, then forks
 * NWORKERS workers that inherit both (shared descriptions across processes). Each worker
 * has two threads (one blocked on a condition variable, one blocked in epoll_wait on the
 * shared epoll), its own eventfd (count set) and timerfd (periodic), and a report pipe to
 * the parent. After restore (SIGTERM), the parent connects NCLIENTS clients: each must be
 * answered by some worker through the shared epoll + listening socket; then the parent
 * sends SIGUSR1 to every worker, which verifies its own eventfd count, timerfd settings,
 * wakes its condvar thread (which must return its magic) and reports "ok" on its pipe.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "zdtmtst.h"

#define NWORKERS 3
#define NCLIENTS 9
#define EFD_COUNT 4242

static int lsk, epfd;
static struct sockaddr_un addr;
static socklen_t addr_len;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int wake;
static volatile sig_atomic_t usr1;
static atomic_int served;

static void on_usr1(int s) { (void)s; usr1 = 1; }

static void *cond_thread(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&mu);
	while (!wake)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
	return (void *)0x5eed;
}

/* Serve connections that the shared epoll reports: answer "pong <pid>". */
static void *serve_thread(void *arg)
{
	(void)arg;
	for (;;) {
		struct epoll_event ev;
		int n = epoll_wait(epfd, &ev, 1, -1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n != 1)
			return (void *)1;
		int c = accept4(lsk, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0)
			continue;	/* another worker took it */
		char buf[64];
		ssize_t r = read(c, buf, sizeof(buf));
		if (r == 4 && !memcmp(buf, "ping", 4)) {
			int len = snprintf(buf, sizeof(buf), "pong %d", getpid());
			if (write(c, buf, len) == len)
				atomic_fetch_add(&served, 1);
		}
		close(c);
	}
}

static void worker(int rep)
{
	pthread_t ct, st;
	char msg[128] = "ok";
	struct itimerspec its = { { 1000, 0 }, { 1000, 0 } }, cur;
	uint64_t cnt;

	int efd = eventfd(EFD_COUNT, EFD_CLOEXEC);
	int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
	if (efd < 0 || tfd < 0 || timerfd_settime(tfd, 0, &its, NULL) < 0)
		_exit(2);
	signal(SIGUSR1, on_usr1);
	sigset_t m;
	sigemptyset(&m);
	sigaddset(&m, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &m, NULL);	/* threads inherit: only main takes SIGUSR1 */
	if (pthread_create(&ct, NULL, cond_thread, NULL) || pthread_create(&st, NULL, serve_thread, NULL))
		_exit(3);
	pthread_sigmask(SIG_UNBLOCK, &m, NULL);
	if (write(rep, "R", 1) != 1)	/* ready */
		_exit(4);
	while (!usr1)
		pause();

	void *ret;
	if (read(efd, &cnt, sizeof(cnt)) != sizeof(cnt) || cnt != EFD_COUNT)
		snprintf(msg, sizeof(msg), "eventfd count %llu", (unsigned long long)cnt);
	else if (timerfd_gettime(tfd, &cur) < 0 || cur.it_interval.tv_sec != 1000 ||
		 cur.it_value.tv_sec > 1000 || (cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec == 0))
		snprintf(msg, sizeof(msg), "timerfd interval %ld value %ld", (long)cur.it_interval.tv_sec,
			 (long)cur.it_value.tv_sec);
	pthread_mutex_lock(&mu);
	wake = 1;
	pthread_cond_signal(&cv);
	pthread_mutex_unlock(&mu);
	if (pthread_join(ct, &ret) || ret != (void *)0x5eed)
		snprintf(msg, sizeof(msg), "condvar thread returned %p", ret);
	size_t len = strlen(msg);
	if (write(rep, msg, len) != (ssize_t)len)
		_exit(5);
	_exit(0);
}

int main(int argc, char **argv)
{
	pid_t pids[NWORKERS];
	int reps[NWORKERS];

	test_init(argc, argv);
	lsk = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (lsk < 0)
		fail("socket: %m");
	memset(&addr, 0, sizeof(addr));
	addr.sun_family = AF_UNIX;
	int n = snprintf(addr.sun_path + 1, sizeof(addr.sun_path) - 1, "zdtm-prefork-%d", getpid());
	addr_len = offsetof(struct sockaddr_un, sun_path) + 1 + n;
	if (bind(lsk, (struct sockaddr *)&addr, addr_len) < 0 || listen(lsk, 64) < 0)
		fail("bind/listen: %m");
	epfd = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN | EPOLLEXCLUSIVE, .data.u64 = 7 };
	if (epfd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, lsk, &ev) < 0)
		fail("epoll: %m");

	for (int i = 0; i < NWORKERS; i++) {
		int p[2];
		if (pipe2(p, O_CLOEXEC) < 0)
			fail("pipe: %m");
		pids[i] = fork();
		if (pids[i] < 0)
			fail("fork: %m");
		if (pids[i] == 0) {
			close(p[0]);
			for (int j = 0; j < i; j++)
				close(reps[j]);
			worker(p[1]);
		}
		close(p[1]);
		reps[i] = p[0];
		char c;
		if (read(reps[i], &c, 1) != 1 || c != 'R')
			fail("worker %d did not start", i);
	}
	test_ready();
	test_wait_sigterm();

	for (int i = 0; i < NCLIENTS; i++) {
		int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		char buf[64];
		if (c < 0 || connect(c, (struct sockaddr *)&addr, addr_len) < 0)
			fail("client %d connect: %m", i);
		struct timeval tv = { 10, 0 };
		setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		if (write(c, "ping", 4) != 4)
			fail("client %d write: %m", i);
		ssize_t r = read(c, buf, sizeof(buf) - 1);
		if (r < 5 || memcmp(buf, "pong ", 5))
			fail("client %d got no answer from the workers (%zd): %m", i, r);
		buf[r] = 0;
		int who = atoi(buf + 5), known = 0;
		for (int j = 0; j < NWORKERS; j++)
			known |= who == pids[j];
		if (!known)
			fail("client %d answered by unknown pid %d", i, who);
		close(c);
	}
	for (int i = 0; i < NWORKERS; i++) {
		char msg[129];
		int st;
		if (kill(pids[i], SIGUSR1) < 0)
			fail("worker %d (pid %d) is gone: %m", i, pids[i]);
		struct pollfd pfd = { reps[i], POLLIN, 0 };
		if (poll(&pfd, 1, 10000) != 1)
			fail("worker %d did not report", i);
		ssize_t r = read(reps[i], msg, sizeof(msg) - 1);
		if (r <= 0)
			fail("worker %d report: %zd", i, r);
		msg[r] = 0;
		if (strcmp(msg, "ok"))
			fail("worker %d: %s", i, msg);
		if (waitpid(pids[i], &st, 0) != pids[i] || !WIFEXITED(st) || WEXITSTATUS(st))
			fail("worker %d exit status %#x", i, st);
	}
	pass();
}
