/*
 * fd_cloexec: FD_CLOEXEC is per fd, not per description: of two dups of one file only
 * one has it, and /dev/null opened with O_CLOEXEC keeps it.
 */
#include <fcntl.h>
#include <unistd.h>

#include "zdtmtst.h"

int main(int argc, char **argv)
{
	int a, b, c, d;

	test_init(argc, argv);
	a = open("/dev/null", O_RDONLY);
	b = fcntl(a, F_DUPFD_CLOEXEC, 50);
	c = open("/dev/zero", O_RDONLY | O_CLOEXEC);
	d = dup(c);
	if (a < 0 || b != 50 || c < 0 || d < 0)
		fail("setup: %m");

	test_ready();
	test_wait_sigterm();

	check(fcntl(a, F_GETFD) == 0);
	check(fcntl(b, F_GETFD) == FD_CLOEXEC);
	check(fcntl(c, F_GETFD) == FD_CLOEXEC);
	check(fcntl(d, F_GETFD) == 0);
	pass();
}
