/*
 * orphan_session: a daemon-style orphan under a subreaper. The test (a child subreaper)
 * forks C, which starts its own session and forks D; D forks G and exits, so G is
 * reparented to the test while it stays in C's session. The restore cannot have G
 * inherit that session from its parent: a process of the session (C) must create it
 * for the test (CLONE_PARENT). After the restore G still has the test as its parent and
 * C's session, C and G are reaped by the test with their verdicts.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "zdtmtst.h"

static int go[2], rep[2];

static void wait_go(void)
{
	char ch;
	while (read(go[0], &ch, 1) < 0 && errno == EINTR)
		;
}

static int grandchild(pid_t test, pid_t c)
{
	pid_t ids[2];
	while (getppid() != test)	/* until D is gone */
		usleep(1000);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != test)
		return 20;
	wait_go();
	ids[0] = getppid();
	ids[1] = getsid(0);
	if (write(rep[1], ids, sizeof(ids)) != sizeof(ids))
		return 21;
	return ids[0] == test && ids[1] == c ? 0 : 22;
}

static int child(pid_t test)
{
	pid_t me, d, st;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (setsid() < 0)
		return 10;
	me = getpid();
	d = fork();
	if (d < 0)
		return 11;
	if (d == 0) {
		pid_t g = fork();
		if (g < 0)
			_exit(12);
		if (g == 0)
			_exit(grandchild(test, me));
		if (write(rep[1], &g, sizeof(g)) != sizeof(g))
			_exit(13);
		_exit(0);	/* G is orphaned: the test adopts it */
	}
	if (waitpid(d, &st, 0) != d || !WIFEXITED(st) || WEXITSTATUS(st))
		return 14;
	wait_go();
	return getsid(0) == me && getppid() == test ? 0 : 15;
}

/* ppid and sid of pid from /proc/pid/stat */
static int stat_ids(pid_t pid, pid_t *ppid, pid_t *sid)
{
	char path[64], buf[512], *p;
	int pgrp;
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if (test_read_file(path, buf, sizeof(buf)) < 0 || !(p = strrchr(buf, ')')))
		return -1;
	return sscanf(p + 4, "%d %d %d", ppid, &pgrp, sid) == 3 ? 0 : -1;
}

int main(int argc, char **argv)
{
	pid_t me = getpid(), c, g, ppid = 0, sid = 0, ids[2], got;
	int st, i, n = 0;

	test_init(argc, argv);
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) || pipe(go) || pipe(rep))
		fail("setup: %m");
	c = fork();
	if (c < 0)
		fail("fork: %m");
	if (c == 0)
		_exit(child(me));
	if (read(rep[0], &g, sizeof(g)) != sizeof(g))
		fail("no grandchild pid");
	for (i = 0; i < 10000; i++) {	/* G reparented to us and sitting in C's session */
		if (stat_ids(g, &ppid, &sid) == 0 && ppid == me && sid == c)
			break;
		usleep(1000);
	}
	if (ppid != me || sid != c)
		fail("grandchild %d: parent %d session %d, want %d and %d", g, ppid, sid, me, c);

	test_ready();
	test_wait_sigterm();

	if (write(go[1], "gg", 2) != 2)
		fail("write: %m");
	if (read(rep[0], ids, sizeof(ids)) != sizeof(ids))
		fail("grandchild did not report");
	if (ids[0] != me || ids[1] != c)
		fail("grandchild: parent %d session %d, want %d and %d", ids[0], ids[1], me, c);
	while (n < 2 && (got = waitpid(-1, &st, 0)) > 0) {
		if ((got != c && got != g) || !WIFEXITED(st) || WEXITSTATUS(st))
			fail("process %d ended with %#x", got, st);
		n++;
	}
	if (n != 2)
		fail("reaped %d of C and G: %m", n);
	pass();
}
