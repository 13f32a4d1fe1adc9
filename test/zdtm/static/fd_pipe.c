/*
 * fd_pipe: a pipe with buffered data (bigger than one page, larger pipe size set with
 * F_SETPIPE_SZ, non-blocking write end, close-on-exec read end), an empty pipe, and a
 * 1 MiB pipe filled to capacity.
 * After the restore: the same bytes in order, nothing more, sizes and flags kept, and
 * both pipes still connected.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "zdtmtst.h"

#define LEN 20000
#define PSZ (128 * 1024)
#define BIG (1024 * 1024)

int main(int argc, char **argv)
{
	static char data[LEN], buf[LEN + 1], big[BIG], bigbuf[BIG];
	int p[2], e[2], f[2];
	ssize_t n, filled = 0;
	char c;

	test_init(argc, argv);
	test_fill(data, LEN, 7);
	if (pipe2(p, 0) || pipe2(e, O_NONBLOCK))
		fail("pipe: %m");
	if (fcntl(p[1], F_SETPIPE_SZ, PSZ) < 0)
		fail("F_SETPIPE_SZ: %m");
	if (write(p[1], data, LEN / 2) != LEN / 2 || write(p[1], data + LEN / 2, LEN / 2) != LEN / 2)
		fail("write: %m");
	if (fcntl(p[1], F_SETFL, O_NONBLOCK) || fcntl(p[0], F_SETFD, FD_CLOEXEC))
		fail("fcntl: %m");
	if (pipe2(f, O_NONBLOCK) || fcntl(f[1], F_SETPIPE_SZ, BIG) != BIG)
		test_skip("no 1 MiB pipe here");
	test_fill(big, BIG, 99);
	while ((n = write(f[1], big + filled, 4096)) > 0)
		filled += n;
	if (filled != BIG)
		fail("filled %zd of %d bytes", filled, BIG);

	test_ready();
	test_wait_sigterm();

	check(fcntl(p[0], F_GETPIPE_SZ) == PSZ);
	check(fcntl(p[1], F_GETFL) & O_NONBLOCK);
	check(!(fcntl(p[0], F_GETFL) & O_NONBLOCK));
	check(fcntl(p[0], F_GETFD) == FD_CLOEXEC);
	check(fcntl(p[1], F_GETFD) == 0);
	check((fcntl(p[0], F_GETFL) & O_ACCMODE) == O_RDONLY);
	check(fcntl(e[0], F_GETFL) & O_NONBLOCK);
	check(read(p[0], buf, LEN) == LEN);
	check(test_verify(buf, LEN, 7) == (size_t)-1);
	check(fcntl(p[0], F_SETFL, O_NONBLOCK) == 0);
	check(read(p[0], buf, 1) < 0 && errno == EAGAIN);	/* nothing more */
	check(read(e[0], &c, 1) < 0 && errno == EAGAIN);
	check(write(e[1], "q", 1) == 1 && read(e[0], &c, 1) == 1 && c == 'q');
	check(write(p[1], "r", 1) == 1 && read(p[0], &c, 1) == 1 && c == 'r');
	check(fcntl(f[0], F_GETPIPE_SZ) == BIG);
	check(write(f[1], "x", 1) < 0 && errno == EAGAIN);	/* still full */
	for (filled = 0; filled < BIG && (n = read(f[0], bigbuf + filled, BIG - filled)) > 0;)
		filled += n;
	check(filled == BIG);
	check(test_verify(bigbuf, BIG, 99) == (size_t)-1);
	pass();
}
