/*
 * sock_tcp_listen: TCP sockets without a connection:
 *  - an IPv4 listener on 127.0.0.1 (SO_REUSEADDR, SO_KEEPALIVE, backlog 7);
 *  - an IPv6 listener on [::] with IPV6_V6ONLY and SO_REUSEPORT (backlog 3);
 *  - an IPv4 socket bound to a port and not listening (TCP_CORK, SO_RCVBUF set);
 *  - an IPv6 socket never bound (O_NONBLOCK, TCP_NODELAY).
 * After the restore: names, backlogs (TCP_INFO), options and flags are the dumped ones,
 * both listeners accept new connections (and only IPv6 ones on the V6ONLY listener), the
 * bound socket can listen on its port, and the unbound one can connect.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "zdtmtst.h"

static int opt(int fd, int level, int name)
{
	int v = -1;
	socklen_t l = sizeof(v);
	if (getsockopt(fd, level, name, &v, &l))
		fail("getsockopt(%d, %d): %m", level, name);
	return v;
}

static void set(int fd, int level, int name, int v)
{
	if (setsockopt(fd, level, name, &v, sizeof(v)))
		fail("setsockopt(%d, %d): %m", level, name);
}

static void name_of(int fd, struct sockaddr_storage *ss, socklen_t *l)
{
	*l = sizeof(*ss);
	if (getsockname(fd, (struct sockaddr *)ss, l))
		fail("getsockname: %m");
}

static void same_name(int fd, const struct sockaddr_storage *want, socklen_t wl)
{
	struct sockaddr_storage got;
	socklen_t l;
	name_of(fd, &got, &l);
	check(l == wl && !memcmp(&got, want, wl));
}

static uint16_t port_of(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET6 ? ntohs(((const struct sockaddr_in6 *)ss)->sin6_port)
					 : ntohs(((const struct sockaddr_in *)ss)->sin_port);
}

static unsigned int backlog(int fd)
{
	struct tcp_info ti;
	socklen_t l = sizeof(ti);
	if (getsockopt(fd, SOL_TCP, TCP_INFO, &ti, &l))
		fail("TCP_INFO: %m");
	return ti.tcpi_sacked; /* sk_max_ack_backlog of a listener */
}

/* connect to port on the loopback of family and exchange a byte through lsn */
static int try_connect(int family, uint16_t port, int lsn, int cfd)
{
	struct sockaddr_in s4 = { .sin_family = AF_INET,
				  .sin_port = htons(port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sockaddr_in6 s6 = { .sin6_family = AF_INET6,
				   .sin6_port = htons(port),
				   .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	int c = cfd >= 0 ? cfd : socket(family, SOCK_STREAM, 0), a;
	char b;
	if (c < 0)
		fail("socket: %m");
	if (connect(c, family == AF_INET ? (struct sockaddr *)&s4 : (struct sockaddr *)&s6,
		    family == AF_INET ? sizeof(s4) : sizeof(s6)))
		return -errno;
	if ((a = accept(lsn, NULL, NULL)) < 0 || send(c, "x", 1, 0) != 1 ||
	    recv(a, &b, 1, 0) != 1 || b != 'x')
		fail("accept/exchange: %m");
	close(a);
	close(c);
	return 0;
}

int main(int argc, char **argv)
{
	struct sockaddr_in a4 = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT };
	struct sockaddr_storage n4, n6, nb;
	socklen_t l4, l6, lb;

	test_init(argc, argv);
	int l_4 = socket(AF_INET, SOCK_STREAM, 0), l_6 = socket(AF_INET6, SOCK_STREAM, 0);
	int bnd = socket(AF_INET, SOCK_STREAM, 0), fresh = socket(AF_INET6, SOCK_STREAM, 0);
	if (l_4 < 0 || l_6 < 0 || bnd < 0 || fresh < 0)
		fail("socket: %m");
	set(l_4, SOL_SOCKET, SO_REUSEADDR, 1);
	set(l_4, SOL_SOCKET, SO_KEEPALIVE, 1);
	set(l_6, SOL_IPV6, IPV6_V6ONLY, 1);
	set(l_6, SOL_SOCKET, SO_REUSEPORT, 1);
	set(bnd, SOL_TCP, TCP_CORK, 1);
	set(bnd, SOL_SOCKET, SO_RCVBUF, 32768);
	set(fresh, SOL_TCP, TCP_NODELAY, 1);
	if (fcntl(fresh, F_SETFL, O_NONBLOCK))
		fail("fcntl: %m");
	if (bind(l_4, (struct sockaddr *)&a4, sizeof(a4)) || listen(l_4, 7) ||
	    bind(l_6, (struct sockaddr *)&a6, sizeof(a6)) || listen(l_6, 3) ||
	    bind(bnd, (struct sockaddr *)&a4, sizeof(a4)))
		fail("bind/listen: %m");
	name_of(l_4, &n4, &l4);
	name_of(l_6, &n6, &l6);
	name_of(bnd, &nb, &lb);
	int rcvbuf = opt(bnd, SOL_SOCKET, SO_RCVBUF);

	test_ready();
	test_wait_sigterm();

	same_name(l_4, &n4, l4);
	same_name(l_6, &n6, l6);
	same_name(bnd, &nb, lb);
	check(backlog(l_4) == 7 && backlog(l_6) == 3);
	check(opt(l_4, SOL_SOCKET, SO_ACCEPTCONN) == 1 && opt(l_6, SOL_SOCKET, SO_ACCEPTCONN) == 1);
	check(opt(bnd, SOL_SOCKET, SO_ACCEPTCONN) == 0);
	check(opt(l_4, SOL_SOCKET, SO_REUSEADDR) == 1 && opt(l_4, SOL_SOCKET, SO_KEEPALIVE) == 1);
	check(opt(l_6, SOL_IPV6, IPV6_V6ONLY) == 1 && opt(l_6, SOL_SOCKET, SO_REUSEPORT) == 1);
	check(opt(l_6, SOL_SOCKET, SO_REUSEADDR) == 0 && opt(fresh, SOL_IPV6, IPV6_V6ONLY) == 0);
	check(opt(bnd, SOL_TCP, TCP_CORK) == 1 && opt(bnd, SOL_SOCKET, SO_RCVBUF) == rcvbuf);
	check(opt(fresh, SOL_TCP, TCP_NODELAY) == 1 && (fcntl(fresh, F_GETFL) & O_NONBLOCK));
	check(try_connect(AF_INET, port_of(&n4), l_4, -1) == 0);
	check(try_connect(AF_INET6, port_of(&n6), l_6, -1) == 0);
	/* V6ONLY: the IPv6 listener does not take IPv4 connections to its port */
	check(try_connect(AF_INET, port_of(&n6), l_6, -1) == -ECONNREFUSED);
	check(listen(bnd, 1) == 0 && try_connect(AF_INET, port_of(&nb), bnd, -1) == 0);
	check(fcntl(fresh, F_SETFL, 0) == 0);
	check(try_connect(AF_INET6, port_of(&n6), l_6, fresh) == 0);
	pass();
}
