/*
 * sock_tcp_unsupported: TCP connections in states ferry does not restore: one end has
 * shut down writing (FIN_WAIT2), the other has received the FIN (CLOSE_WAIT); an
 * established connection of the same process sits beside them. The dump (with
 * --tcp-established) must fail with one line naming the fd, the socket and its state,
 * leave the process running untouched (the runner checks), and leave no network lock
 * behind. At SIGTERM the half-closed connection still works and the established one
 * still carries data.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "zdtmtst.h"

static void pair(int lsn, const struct sockaddr_in *sa, int *c, int *s)
{
	*c = socket(AF_INET, SOCK_STREAM, 0);
	if (*c < 0 || connect(*c, (const struct sockaddr *)sa, sizeof(*sa)) ||
	    (*s = accept(lsn, NULL, NULL)) < 0)
		fail("connect: %m");
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	char buf[64];
	int c1, s1, c2, s2;

	test_init(argc, argv);
	int lsn = socket(AF_INET, SOCK_STREAM, 0);
	if (lsn < 0 || bind(lsn, (struct sockaddr *)&sa, sizeof(sa)) || listen(lsn, 4) ||
	    getsockname(lsn, (struct sockaddr *)&sa, &len))
		fail("listen: %m");
	pair(lsn, &sa, &c1, &s1);
	pair(lsn, &sa, &c2, &s2);
	if (shutdown(c2, SHUT_WR))
		fail("shutdown: %m");
	check(recv(s2, buf, sizeof(buf), 0) == 0); /* the FIN arrived: CLOSE_WAIT */

	test_ready();
	test_wait_sigterm();

	snprintf(buf, sizeof(buf), "nft list table inet ferry_%d >/dev/null 2>&1", getpid());
	check(system(buf) != 0); /* the failed dump removed its lock */
	check(send(s2, "late", 4, 0) == 4 && recv(c2, buf, sizeof(buf), 0) == 4);
	check(send(c1, "ok", 2, 0) == 2 && recv(s1, buf, sizeof(buf), 0) == 2);
	check(send(s1, "ok", 2, 0) == 2 && recv(c1, buf, sizeof(buf), 0) == 2);
	pass();
}
