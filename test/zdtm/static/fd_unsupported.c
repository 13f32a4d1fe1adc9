/*
 * fd_unsupported: a process holding a UDP socket (not supported: TCP is, UDP is not)
 * cannot be dumped: the dump must fail with one error line naming the fd, and leave the
 * process running untouched (the runner checks that; this program only checks its
 * socket still works at SIGTERM: a datagram to itself comes back).
 */
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "zdtmtst.h"

int main(int argc, char **argv)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	char buf[8];

	test_init(argc, argv);
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	if (s < 0 || bind(s, (struct sockaddr *)&sa, sizeof(sa)) ||
	    getsockname(s, (struct sockaddr *)&sa, &len))
		fail("socket: %m");

	test_ready();
	test_wait_sigterm();

	check(sendto(s, "ping", 4, 0, (struct sockaddr *)&sa, sizeof(sa)) == 4);
	check(recv(s, buf, sizeof(buf), 0) == 4);
	pass();
}
