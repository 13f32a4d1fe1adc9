/*
 * tree_pidns_child: the test makes its children start in a new pid namespace
 * (unshare(CLONE_NEWPID)) and forks one: the child is PID 1 there. A tree whose root is
 * outside the namespace its members live in cannot be restored (only a root that is
 * itself PID 1 of the namespace can, --pidns), so the dump must refuse
 * (expect: dump-fail) and leave the tree running.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "zdtmtst.h"

int main(int argc, char **argv)
{
	int go[2], rdy[2], st;
	pid_t c;
	char ch;

	test_init(argc, argv);
	if (pipe(go) || pipe(rdy))
		fail("pipe: %m");
	if (unshare(CLONE_NEWPID))
		test_skip("unshare(CLONE_NEWPID) not permitted");
	c = fork();
	if (c == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		ch = getpid() == 1 ? 'r' : 'n';
		if (write(rdy[1], &ch, 1) != 1)
			_exit(3);
		while (read(go[0], &ch, 1) < 0 && errno == EINTR)
			;
		_exit(0);
	}
	if (read(rdy[0], &ch, 1) != 1 || ch != 'r')
		fail("child is not PID 1 of the new namespace");

	test_ready();
	test_wait_sigterm();

	if (write(go[1], "g", 1) != 1)
		fail("write: %m");
	if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st))
		fail("child %d: %#x", c, st);
	pass();
}
