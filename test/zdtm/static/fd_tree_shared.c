/*
 * fd_tree_shared: a parent and its child share open file descriptions (issue 3):
 *  - a regular file opened once before fork (one offset);
 *  - a pipe: the parent holds the write end, the child the read end, bytes buffered;
 *  - a stream socketpair: one end each, data queued both ways;
 *  - a memfd (one description, content) and an eventfd;
 *  - a listening unix socket (abstract name) watched by the parent's epoll, as in a
 *    preforking server where workers inherit the listener.
 * After the restore the parent (woken by SIGTERM) changes the shared state (seeks, writes
 * into the pipe and socket, increments the eventfd, connects to the listener), then
 * wakes the child with SIGTERM; the child must see every change, proving the
 * descriptions are shared for real, and exits 0; the parent checks its status.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "zdtmtst.h"

#define CCHECK(c) do { if (!(c)) { printf("FAIL: child: %s:%d: %s (%m)\n", __FILE__, \
	__LINE__, #c); fflush(stdout); _exit(1); } } while (0)

static int f, p[2], s[2], m, e, lsn, ep;
static struct sockaddr_un sa;
static socklen_t salen;

static void child_read_is(int fd, const char *want)
{
	char buf[64];
	size_t len = strlen(want), got = 0;
	while (got < len) {
		ssize_t n = read(fd, buf + got, len - got);
		CCHECK(n > 0);
		got += (size_t)n;
	}
	CCHECK(!memcmp(buf, want, len));
}

static void __attribute__((noreturn)) child_main(int sync)
{
	char buf[16];
	uint64_t v;
	CCHECK(prctl(PR_SET_PDEATHSIG, SIGKILL) == 0);	/* never outlive the parent */
	close(p[1]);
	close(s[0]);
	close(ep);
	CCHECK(write(s[1], "c2p", 3) == 3);
	CCHECK(write(sync, "r", 1) == 1);
	close(sync);
	test_wait_sigterm();

	CCHECK(lseek(f, 0, SEEK_CUR) == 10);		/* the parent's seek */
	child_read_is(p[0], "before+after");
	child_read_is(s[1], "p2c+x");
	CCHECK(pread(m, buf, 6, 0) == 6 && !memcmp(buf, "memfd!", 6));
	CCHECK(lseek(m, 0, SEEK_CUR) == 2);		/* the parent's seek on the memfd */
	CCHECK(read(e, &v, 8) == 8 && v == 5);		/* 4 + the parent's 1 */
	CCHECK(fcntl(lsn, F_GETFL) & O_NONBLOCK);	/* set by the parent */
	CCHECK(fcntl(p[1], F_GETFD) < 0 && fcntl(s[0], F_GETFD) < 0 && fcntl(ep, F_GETFD) < 0);
	int a = accept(lsn, NULL, NULL);		/* the parent's connection */
	CCHECK(a >= 0);
	child_read_is(a, "hello");
	_exit(0);
}

int main(int argc, char **argv)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 0x15 };
	char path[256], c;
	int sync[2], st;
	uint64_t v = 4;

	test_init(argc, argv);
	snprintf(path, sizeof(path), "%s/tree-file.%d", test_dir(), getpid());
	sa.sun_family = AF_UNIX;
	salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
		snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1, "ferry-tree-%d", getpid()));
	f = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (f < 0 || write(f, "0123456789abcdef", 16) != 16 || lseek(f, 3, SEEK_SET) != 3)
		fail("file: %m");
	unlink(path);	/* an unlinked shared file: one ghost for both */
	if (pipe(p) || socketpair(AF_UNIX, SOCK_STREAM, 0, s) || pipe(sync))
		fail("pipe: %m");
	m = memfd_create("tree", 0);
	e = eventfd(0, 0);
	lsn = socket(AF_UNIX, SOCK_STREAM, 0);
	ep = epoll_create1(0);
	if (m < 0 || e < 0 || lsn < 0 || ep < 0 || write(m, "memfd!", 6) != 6 ||
	    write(e, &v, 8) != 8 || bind(lsn, (struct sockaddr *)&sa, salen) || listen(lsn, 4) ||
	    epoll_ctl(ep, EPOLL_CTL_ADD, lsn, &ev))
		fail("setup: %m");
	if (write(p[1], "before", 6) != 6 || write(s[0], "p2c", 3) != 3)
		fail("write: %m");
	pid_t kid = fork();
	if (kid < 0)
		fail("fork: %m");
	close(sync[kid == 0 ? 0 : 1]);
	if (kid == 0)
		child_main(sync[1]);
	if (read(sync[0], &c, 1) != 1)
		fail("child did not set up");
	close(sync[0]);
	close(p[0]);
	close(s[1]);

	test_ready();
	test_wait_sigterm();

	check(lseek(f, 0, SEEK_CUR) == 3);
	check(lseek(f, 10, SEEK_SET) == 10);
	check(lseek(m, 2, SEEK_SET) == 2);
	check(write(p[1], "+after", 6) == 6);
	check(read(s[0], path, 3) == 3 && !memcmp(path, "c2p", 3));
	check(write(s[0], "+x", 2) == 2);
	v = 1;
	check(write(e, &v, 8) == 8);
	check(epoll_wait(ep, &ev, 1, 0) == 0);
	int cl = socket(AF_UNIX, SOCK_STREAM, 0);
	check(cl >= 0 && connect(cl, (struct sockaddr *)&sa, salen) == 0);
	check(write(cl, "hello", 5) == 5);
	check(epoll_wait(ep, &ev, 1, 0) == 1 && ev.data.u64 == 0x15);
	check(fcntl(lsn, F_SETFL, O_NONBLOCK) == 0);
	check(kill(kid, SIGTERM) == 0);
	check(waitpid(kid, &st, 0) == kid);
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		fail("child failed (status 0x%x)", st);
	pass();
}
