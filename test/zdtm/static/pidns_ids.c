/*
 * pidns_ids: the ids a tree sees of itself survive the restore, in ferry's pid
 * namespace and (flavour pidns) inside a new one: the root R forks a child C that leads
 * its own process group, runs a second thread T and has a child G. Before the dump C
 * tells R the pids of C and G and the tid of T. After the restore R checks its own pid
 * and session, C reports what it sees now (pid, parent, group, session, T's tid as T
 * reads it, G reachable by kill and collected by waitpid with its verdict), and R
 * collects C by its pid.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "zdtmtst.h"

struct ids {
	pid_t pid, ppid, pgrp, sid, tid, g;
	int g_ok;
};

static int thr_pipe[2];
static pid_t thr_tid;

static void *thread_main(void *arg __attribute__((unused)))
{
	sigset_t all;
	char ch;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	thr_tid = (pid_t)syscall(SYS_gettid);
	/* parked until C wakes it after the restore; then it re-reads its tid */
	while (read(thr_pipe[0], &ch, 1) < 0 && errno == EINTR)
		;
	thr_tid = (pid_t)syscall(SYS_gettid);
	return NULL;
}

static int grandchild(pid_t parent)
{
	test_wait_sigterm();
	return getppid() == parent ? 0 : 21;
}

static int child(int wfd)
{
	struct ids pre = { 0 }, post = { 0 };
	pthread_t th;
	pid_t me = getpid(), g;
	int st;

	/* the runner kills only the root of a tree it dumped with --leave-running */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (setpgid(0, 0) || pipe(thr_pipe) || pthread_create(&th, NULL, thread_main, NULL))
		return 10;
	while (!__atomic_load_n(&thr_tid, __ATOMIC_SEQ_CST))
		sched_yield();
	g = fork();
	if (g < 0)
		return 11;
	if (g == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		_exit(grandchild(me));
	}
	pre.pid = me;
	pre.g = g;
	pre.tid = thr_tid;
	thr_tid = 0;
	if (write(wfd, &pre, sizeof(pre)) != sizeof(pre))
		return 12;
	test_wait_sigterm();
	if (write(thr_pipe[1], "w", 1) != 1 || pthread_join(th, NULL))
		return 13;
	post.pid = getpid();
	post.ppid = getppid();
	post.pgrp = getpgrp();
	post.sid = getsid(0);
	post.tid = thr_tid;
	post.g = g;
	post.g_ok = kill(g, SIGTERM) == 0 && waitpid(g, &st, 0) == g && WIFEXITED(st) &&
		    WEXITSTATUS(st) == 0;
	return write(wfd, &post, sizeof(post)) == sizeof(post) ? 0 : 14;
}

int main(int argc, char **argv)
{
	struct ids pre, post;
	int p[2], st;
	pid_t c, me, sid;

	test_init(argc, argv);
	me = getpid();
	sid = getsid(0);
	if (pipe(p))
		fail("pipe: %m");
	c = fork();
	if (c < 0)
		fail("fork: %m");
	if (c == 0) {
		close(p[0]);
		_exit(child(p[1]));
	}
	close(p[1]);
	if (read(p[0], &pre, sizeof(pre)) != sizeof(pre))
		fail("no ids from the child");
	check(pre.pid == c && pre.tid > 0 && pre.tid != c && pre.g > 0);

	test_ready();
	test_wait_sigterm();

	check(getpid() == me && getsid(0) == sid && getpgrp() == me);
	if (kill(c, SIGTERM))
		fail("kill(child %d): %m", c);
	if (read(p[0], &post, sizeof(post)) != sizeof(post))
		fail("no ids from the child after the restore");
	check(post.pid == c);
	check(post.ppid == me);
	check(post.pgrp == c);
	check(post.sid == sid);
	if (post.tid != pre.tid)
		fail("thread id %d, was %d", post.tid, pre.tid);
	check(post.g == pre.g && post.g_ok);
	if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st))
		fail("child verdict %#x", st);
	pass();
}
