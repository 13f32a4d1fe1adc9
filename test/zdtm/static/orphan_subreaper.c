/*
 * orphan_subreaper: the test is a child subreaper; its child forks a grandchild and
 * exits, so the grandchild is reparented to the test (inside the tree, not to init).
 * After the restore the grandchild's parent is still the test: it reports getppid()
 * through a pipe, and the test reaps it with waitpid().
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "zdtmtst.h"

int main(int argc, char **argv)
{
	pid_t me = getpid(), c, g, got;
	int go[2], rep[2], gp[2], st, sub = 0;
	char ch;

	test_init(argc, argv);
	if (prctl(PR_SET_CHILD_SUBREAPER, 1))
		fail("PR_SET_CHILD_SUBREAPER: %m");
	if (pipe(go) || pipe(rep) || pipe(gp))
		fail("pipe: %m");
	c = fork();
	if (c == 0) {
		g = fork();
		if (g == 0) {
			/* no pdeath signal: it would fire when the child exits. If the test
			 * is killed, go's write end closes and the read below ends. */
			close(go[1]);
			close(rep[0]);
			while (read(go[0], &ch, 1) < 0 && errno == EINTR)
				;
			got = getppid();
			_exit(write(rep[1], &got, sizeof(got)) == sizeof(got) ? 0 : 1);
		}
		_exit(write(gp[1], &g, sizeof(g)) == sizeof(g) ? 0 : 1);
	}
	close(rep[1]);		/* a dead grandchild then reads as EOF, not as a hang */
	close(go[0]);
	if (read(gp[0], &g, sizeof(g)) != sizeof(g))
		fail("no grandchild pid");
	if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st))
		fail("child: %#x", st);
	char path[64], buf[512], *p;
	snprintf(path, sizeof(path), "/proc/%d/stat", g);
	if (test_read_file(path, buf, sizeof(buf)) < 0 || !(p = strrchr(buf, ')')) ||
	    sscanf(p + 4, "%d", &got) != 1 || got != me)
		fail("grandchild %d not reparented to the test", g);

	test_ready();
	test_wait_sigterm();

	if (prctl(PR_GET_CHILD_SUBREAPER, &sub) || sub != 1)
		fail("child subreaper flag lost");
	if (write(go[1], "g", 1) != 1)
		fail("write: %m");
	if (read(rep[0], &got, sizeof(got)) != sizeof(got)) {
		int r = waitpid(g, &st, WNOHANG);
		fail("grandchild did not report (waitpid %d, status %#x)", r, st);
	}
	if (got != me)
		fail("grandchild's parent is %d, want %d", got, me);
	if (waitpid(g, &st, 0) != g || !WIFEXITED(st) || WEXITSTATUS(st))
		fail("grandchild %d: %#x", g, st);
	pass();
}
