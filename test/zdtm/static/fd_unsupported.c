/*
 * fd_unsupported: a process holding a socket cannot be dumped yet: the dump must fail
 * with one error line naming the fd, and leave the process running untouched (the
 * runner checks that; this program only checks its socket still works at SIGTERM).
 */
#include <sys/socket.h>
#include <unistd.h>

#include "zdtmtst.h"

int main(int argc, char **argv)
{
	int sv[2];
	char c;

	test_init(argc, argv);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		fail("socketpair: %m");

	test_ready();
	test_wait_sigterm();

	check(write(sv[0], "s", 1) == 1 && read(sv[1], &c, 1) == 1 && c == 's');
	pass();
}
