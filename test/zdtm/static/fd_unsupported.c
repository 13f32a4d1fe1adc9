/*
 * fd_unsupported: a process holding a TCP socket (not supported yet) cannot be dumped:
 * the dump must fail with one error line naming the fd, and leave the process running
 * untouched (the runner checks that; this program only checks its socket still works
 * at SIGTERM).
 */
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "zdtmtst.h"

int main(int argc, char **argv)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int one = 1;

	test_init(argc, argv);
	int s = socket(AF_INET, SOCK_STREAM, 0);
	if (s < 0 || bind(s, (struct sockaddr *)&sa, sizeof(sa)) || listen(s, 1) ||
	    getsockname(s, (struct sockaddr *)&sa, &len))
		fail("socket: %m");

	test_ready();
	test_wait_sigterm();

	check(setsockopt(s, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one)) == 0);
	int c = socket(AF_INET, SOCK_STREAM, 0);
	check(c >= 0 && connect(c, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	check(accept(s, NULL, NULL) >= 0);
	pass();
}
