/*
 * sock_tcp_noopt: an established TCP connection dumped WITHOUT --tcp-established: the
 * dump must refuse it (CRIU's rule: repairing connections is opt-in) with one line
 * naming the fd, its addresses and the option, before anything is changed; the
 * connection keeps working (checked at SIGTERM, after the failed dump).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "zdtmtst.h"

int main(int argc, char **argv)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	char buf[8];

	test_init(argc, argv);
	int lsn = socket(AF_INET, SOCK_STREAM, 0), c = socket(AF_INET, SOCK_STREAM, 0), s;
	if (lsn < 0 || c < 0 || bind(lsn, (struct sockaddr *)&sa, sizeof(sa)) || listen(lsn, 1) ||
	    getsockname(lsn, (struct sockaddr *)&sa, &len) ||
	    connect(c, (struct sockaddr *)&sa, sizeof(sa)) || (s = accept(lsn, NULL, NULL)) < 0)
		fail("connect: %m");
	if (send(c, "queued", 6, 0) != 6)
		fail("send: %m");

	test_ready();
	test_wait_sigterm();

	check(recv(s, buf, sizeof(buf), 0) == 6);
	check(send(s, "back", 4, 0) == 4 && recv(c, buf, sizeof(buf), 0) == 4);
	pass();
}
