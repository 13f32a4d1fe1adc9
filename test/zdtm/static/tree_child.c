/*
 * tree_child: a process tree: the test forks a child that keeps a pattern in its
 * memory and waits for SIGTERM from its parent. After the restore the parent (woken by
 * SIGTERM) checks that its child kept its pid and parent, forwards SIGTERM, and
 * collects the child's verdict through its exit status.
 */
#include <errno.h>
#include <stdlib.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "zdtmtst.h"

#define LEN (64 * 4096)

static int child(pid_t parent, int ready_fd)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);	/* never outlive a killed tree */
	if (getppid() != parent)
		return 14;
	char *m = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return 10;
	test_fill(m, LEN, 4711);
	if (write(ready_fd, "r", 1) != 1)
		return 11;
	close(ready_fd);
	test_wait_sigterm();
	if (getppid() != parent)
		return 12;
	if (test_verify(m, LEN, 4711) != (size_t)-1)
		return 13;
	return 0;
}

int main(int argc, char **argv)
{
	int p[2], st;
	pid_t c, me = getpid();
	char ch;

	test_init(argc, argv);
	if (pipe(p))
		fail("pipe: %m");
	c = fork();
	if (c < 0)
		fail("fork: %m");
	if (c == 0) {
		close(p[0]);
		_exit(child(me, p[1]));
	}
	close(p[1]);
	if (read(p[0], &ch, 1) != 1)
		fail("child did not get ready");
	close(p[0]);

	test_ready();
	test_wait_sigterm();

	if (kill(c, 0))
		fail("child %d is gone: %m", c);
	kill(c, SIGTERM);
	if (waitpid(c, &st, 0) != c)
		fail("child %d is not our child any more: %m", c);
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		fail("child verdict: %s %d (12 parent changed, 13 data differs)",
		     WIFEXITED(st) ? "exit" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
	pass();
}
