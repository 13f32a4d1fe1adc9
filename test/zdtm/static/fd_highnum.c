/*
 * fd_highnum: fds at high numbers (1000 and 1020, below the default soft limit of 1024)
 * are restored at exactly those numbers, with their files; nothing appears between.
 */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "zdtmtst.h"

int main(int argc, char **argv)
{
	int p[2], lo = -1;
	char c;

	test_init(argc, argv);
	if (pipe(p) || dup2(p[0], 1000) != 1000 || dup2(p[1], 1020) != 1020)
		fail("setup: %m");
	close(p[0]);
	close(p[1]);
	if (write(1020, "h", 1) != 1 || dup2(open("/dev/zero", O_RDONLY), 999) != 999)
		fail("setup: %m");
	for (int fd = 3; fd < 999; fd++)
		if (fcntl(fd, F_GETFD) >= 0)
			close(fd);

	test_ready();
	test_wait_sigterm();

	for (int fd = 3; fd < 999; fd++)
		if (fcntl(fd, F_GETFD) >= 0)
			lo = fd;
	if (lo >= 0)
		fail("unexpected fd %d", lo);
	check(read(1000, &c, 1) == 1 && c == 'h');
	check(write(1020, "i", 1) == 1 && read(1000, &c, 1) == 1 && c == 'i');
	check(read(999, &c, 1) == 1 && c == 0);
	check(fcntl(1021, F_GETFD) < 0);
	pass();
}
