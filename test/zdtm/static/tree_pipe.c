/*
 * tree_pipe: pipes between parent and child with data buffered in them at the
 * checkpoint: 3000 bytes parent -> child, 1000 bytes child -> parent, none read yet.
 * After the restore each side reads exactly the bytes the other wrote, then the pipes
 * still work both ways (one more byte each way), and EOF arrives once the writer closes.
 */
#include <errno.h>
#include <signal.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "zdtmtst.h"

#define DOWN 3000
#define UP 1000

static int read_all(int fd, char *buf, size_t len)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = read(fd, buf + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		got += n;
	}
	return 0;
}

int main(int argc, char **argv)
{
	int down[2], up[2], go[2], st;
	static char buf[DOWN];
	pid_t c;
	char ch;

	test_init(argc, argv);
	if (pipe(down) || pipe(up) || pipe(go))
		fail("pipe: %m");
	c = fork();
	if (c < 0)
		fail("fork: %m");
	if (c == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(down[1]);
		close(up[0]);
		close(go[1]);
		test_fill(buf, UP, 11);
		if (write(up[1], buf, UP) != UP)
			_exit(2);
		while (read(go[0], &ch, 1) < 0 && errno == EINTR)
			;
		if (read_all(down[0], buf, DOWN) || test_verify(buf, DOWN, 10) != (size_t)-1)
			_exit(3);
		if (write(up[1], "u", 1) != 1 || read_all(down[0], &ch, 1) || ch != 'd')
			_exit(4);
		if (read(down[0], &ch, 1) != 0)
			_exit(5);	/* the parent closed: EOF */
		_exit(0);
	}
	close(down[0]);
	close(up[1]);
	close(go[0]);
	test_fill(buf, DOWN, 10);
	if (write(down[1], buf, DOWN) != DOWN)
		fail("write: %m");
	/* the child's bytes are in the pipe once it waits on go: wait for them to exist */
	int n = 0;
	while (n < UP) {
		if (ioctl(up[0], FIONREAD, &n))
			fail("FIONREAD: %m");
		if (n < UP)
			sched_yield();
	}

	test_ready();
	test_wait_sigterm();

	if (write(go[1], "g", 1) != 1)
		fail("write: %m");
	if (read_all(up[0], buf, UP) || test_verify(buf, UP, 11) != (size_t)-1)
		fail("the child's buffered bytes differ");
	if (write(down[1], "d", 1) != 1 || read_all(up[0], &ch, 1) || ch != 'u')
		fail("the pipes do not work after the restore");
	close(down[1]);
	if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st))
		fail("child verdict %#x (3 data differs, 4 no exchange, 5 no EOF)", st);
	pass();
}
