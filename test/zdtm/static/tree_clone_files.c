/*
 * tree_clone_files: a child created with clone(CLONE_FILES) shares the test's fd table
 * (not its memory). The dump records the sharing (PstreeEntry.files_owner). After the
 * restore the table is still one: an fd the test opens is seen by the child, an fd the
 * child closes is gone in the test. The child reports through a pipe.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "zdtmtst.h"

#define FD_NEW 200	/* opened by the test after the restore */
#define FD_OLD 201	/* opened before the dump, closed by the child after it */

static int go[2], rep[2];

static int child(void *arg)
{
	char c, res = 0;
	(void)arg;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (write(rep[1], "r", 1) != 1)
		return 2;
	while (read(go[0], &c, 1) < 0 && errno == EINTR)
		;
	if (fcntl(FD_NEW, F_GETFD) < 0)
		res = 1;
	else if (close(FD_OLD))
		res = 2;
	return write(rep[1], &res, 1) == 1 ? 0 : 3;
}

int main(int argc, char **argv)
{
	size_t len = 256 << 10;
	char *stack = malloc(len), ch;
	pid_t c;
	int st;

	test_init(argc, argv);
	if (!stack || pipe(go) || pipe(rep))
		fail("setup: %m");
	if (dup2(0, FD_OLD) != FD_OLD)
		fail("dup2: %m");
	c = clone(child, stack + len, CLONE_FILES | SIGCHLD, NULL);
	if (c < 0)
		fail("clone: %m");
	if (read(rep[0], &ch, 1) != 1)
		fail("child not ready");

	test_ready();
	test_wait_sigterm();

	if (dup2(0, FD_NEW) != FD_NEW)
		fail("dup2: %m");
	if (write(go[1], "g", 1) != 1 || read(rep[0], &ch, 1) != 1)
		fail("child does not answer: %m");
	if (ch)
		fail("child: %s", ch == 1 ? "does not see the test's new fd" : "cannot close the old fd");
	if (fcntl(FD_OLD, F_GETFD) >= 0)
		fail("fd %d closed by the child is still open here: fd table not shared", FD_OLD);
	if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st))
		fail("child %d: %#x", c, st);
	pass();
}
