/*
 * sock_tcp_loop: an established TCP connection over loopback with both ends in the
 * process (client and the server's accepted socket), plus its listener.
 * Both directions carry a counter stream; each receiver has a small locked SO_RCVBUF and
 * every sender writes until EAGAIN, so at the dump both receive queues and both send
 * queues hold data (and each receiver has read part of its stream). After the restore:
 * the streams continue byte for byte up to the exact totals, new data flows both ways,
 * the options (keepalive and its timers, TCP_NODELAY, SO_SNDBUF/SO_RCVBUF, O_NONBLOCK)
 * and the addresses are the dumped ones, and the listener accepts a new connection.
 * Built as sock_tcp_ipv6 too (TCP_FAMILY AF_INET6, ::1), which adds an IPv4 connection
 * accepted by a dual-stack IPv6 listener (an AF_INET6 socket with IPv4-mapped addresses).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "zdtmtst.h"

#ifndef TCP_FAMILY
#define TCP_FAMILY AF_INET
#endif

#define MAX_FILL (8u << 20)

struct stream {
	int fd;
	uint64_t sent, rcvd; /* bytes of the counter stream written / read */
	uint8_t seed_tx, seed_rx;
};

static uint8_t ctr(uint64_t i, uint8_t seed)
{
	return (uint8_t)(i * 13 + seed + (i >> 8));
}

static socklen_t loop_addr(struct sockaddr_storage *ss, uint16_t port)
{
	memset(ss, 0, sizeof(*ss));
	if (TCP_FAMILY == AF_INET6) {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)ss;
		s->sin6_family = AF_INET6;
		s->sin6_addr = in6addr_loopback;
		s->sin6_port = htons(port);
		return sizeof(*s);
	}
	struct sockaddr_in *s = (struct sockaddr_in *)ss;
	s->sin_family = AF_INET;
	s->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	s->sin_port = htons(port);
	return sizeof(*s);
}

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

/* Write the stream until the kernel takes no more (or max bytes). */
static void fill(struct stream *s, uint64_t max)
{
	uint8_t buf[16384];
	for (;;) {
		size_t n = sizeof(buf);
		if (s->sent + n > max)
			n = max - s->sent;
		if (!n)
			return;
		for (size_t i = 0; i < n; i++)
			buf[i] = ctr(s->sent + i, s->seed_tx);
		ssize_t w = send(s->fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w < 0 && errno == EAGAIN)
			return;
		if (w <= 0)
			fail("send: %m");
		s->sent += (uint64_t)w;
	}
}

/* Read up to n bytes of the peer's stream (non-blocking), checking every byte. */
static size_t drain(struct stream *s, size_t n)
{
	uint8_t buf[16384];
	size_t got = 0;
	while (got < n) {
		size_t k = n - got < sizeof(buf) ? n - got : sizeof(buf);
		ssize_t r = recv(s->fd, buf, k, MSG_DONTWAIT);
		if (r < 0 && errno == EAGAIN)
			break;
		if (r <= 0)
			fail("recv: %zd: %m", r);
		for (ssize_t i = 0; i < r; i++)
			if (buf[i] != ctr(s->rcvd + (uint64_t)i, s->seed_rx))
				fail("stream byte %llu: got %u want %u",
				     (unsigned long long)(s->rcvd + (uint64_t)i), buf[i],
				     ctr(s->rcvd + (uint64_t)i, s->seed_rx));
		s->rcvd += (uint64_t)r;
		got += (size_t)r;
	}
	return got;
}

static int queued(int fd, int req)
{
	int v = 0;
	if (ioctl(fd, req, &v))
		fail("ioctl: %m");
	return v;
}

/* Both streams to their totals: each side reads all the other wrote (10 s at most). */
static void finish_streams(struct stream *a, struct stream *b)
{
	for (int i = 0; i < 1000 && (a->rcvd < b->sent || b->rcvd < a->sent); i++) {
		struct pollfd p[2] = { { .fd = a->fd, .events = POLLIN },
				       { .fd = b->fd, .events = POLLIN } };
		drain(a, b->sent - a->rcvd);
		drain(b, a->sent - b->rcvd);
		if (a->rcvd < b->sent || b->rcvd < a->sent)
			poll(p, 2, 10);
	}
	if (a->rcvd != b->sent || b->rcvd != a->sent)
		fail("streams: got %llu/%llu and %llu/%llu bytes", (unsigned long long)a->rcvd,
		     (unsigned long long)b->sent, (unsigned long long)b->rcvd,
		     (unsigned long long)a->sent);
}

static void same_name(int fd, const struct sockaddr_storage *want, socklen_t wl, int peer)
{
	struct sockaddr_storage got;
	socklen_t l = sizeof(got);
	int r = peer ? getpeername(fd, (struct sockaddr *)&got, &l)
		     : getsockname(fd, (struct sockaddr *)&got, &l);
	check(r == 0 && l == wl && !memcmp(&got, want, wl));
}

int main(int argc, char **argv)
{
	struct sockaddr_storage la, ca, sa;
	socklen_t ll = loop_addr(&la, 0), cl = sizeof(ca), sl = sizeof(sa);

	test_init(argc, argv);
	int lsn = socket(TCP_FAMILY, SOCK_STREAM, 0);
	if (lsn < 0)
		fail("socket: %m");
	set(lsn, SOL_SOCKET, SO_REUSEADDR, 1);
	set(lsn, SOL_SOCKET, SO_RCVBUF, 4096); /* inherited by the accepted socket */
	if (bind(lsn, (struct sockaddr *)&la, ll) || listen(lsn, 4) ||
	    getsockname(lsn, (struct sockaddr *)&la, &ll))
		fail("listen: %m");
	struct stream c = { .seed_tx = 1, .seed_rx = 2 }, s = { .seed_tx = 2, .seed_rx = 1 };
	c.fd = socket(TCP_FAMILY, SOCK_STREAM, 0);
	if (c.fd < 0)
		fail("socket: %m");
	set(c.fd, SOL_SOCKET, SO_RCVBUF, 4096);
	if (connect(c.fd, (struct sockaddr *)&la, ll) || (s.fd = accept(lsn, NULL, NULL)) < 0)
		fail("connect: %m");
	set(c.fd, SOL_TCP, TCP_NODELAY, 1);
	set(c.fd, SOL_SOCKET, SO_KEEPALIVE, 1);
	set(c.fd, SOL_TCP, TCP_KEEPIDLE, 77);
	set(c.fd, SOL_TCP, TCP_KEEPINTVL, 11);
	set(c.fd, SOL_TCP, TCP_KEEPCNT, 5);
	set(s.fd, SOL_SOCKET, SO_SNDBUF, 65536);
	if (fcntl(s.fd, F_SETFL, O_NONBLOCK))
		fail("fcntl: %m");
	if (getsockname(c.fd, (struct sockaddr *)&ca, &cl) ||
	    getsockname(s.fd, (struct sockaddr *)&sa, &sl))
		fail("getsockname: %m");

	/* fill, read a little of each stream, fill again: queues full both ways */
	fill(&c, MAX_FILL);
	fill(&s, MAX_FILL);
	check(drain(&c, 3000) > 0 && drain(&s, 5000) > 0);
	fill(&c, MAX_FILL);
	fill(&s, MAX_FILL);
	check(queued(c.fd, SIOCOUTQ) > 0 && queued(s.fd, SIOCOUTQ) > 0);
	check(queued(c.fd, SIOCINQ) > 0 && queued(s.fd, SIOCINQ) > 0);
	int bufs[4] = { opt(c.fd, SOL_SOCKET, SO_SNDBUF), opt(c.fd, SOL_SOCKET, SO_RCVBUF),
			opt(s.fd, SOL_SOCKET, SO_SNDBUF), opt(s.fd, SOL_SOCKET, SO_RCVBUF) };
	test_msg("queued: client %d out %d in, server %d out %d in\n", queued(c.fd, SIOCOUTQ),
		 queued(c.fd, SIOCINQ), queued(s.fd, SIOCOUTQ), queued(s.fd, SIOCINQ));

#if TCP_FAMILY == AF_INET6
	/* a dual-stack listener on [::] and an IPv4 client: the accepted socket is AF_INET6
	 * with IPv4-mapped addresses (its packets are IPv4 ones), data queued both ways */
	struct sockaddr_in6 any6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT };
	struct sockaddr_in lo4 = { .sin_family = AF_INET,
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t l6 = sizeof(any6);
	int dl = socket(AF_INET6, SOCK_STREAM, 0), dc = socket(AF_INET, SOCK_STREAM, 0), ds;
	set(dl, SOL_IPV6, IPV6_V6ONLY, 0);
	if (dl < 0 || dc < 0 || bind(dl, (struct sockaddr *)&any6, sizeof(any6)) || listen(dl, 1) ||
	    getsockname(dl, (struct sockaddr *)&any6, &l6))
		fail("dual-stack listener: %m");
	lo4.sin_port = any6.sin6_port;
	if (connect(dc, (struct sockaddr *)&lo4, sizeof(lo4)) ||
	    (ds = accept(dl, NULL, NULL)) < 0 || send(dc, "mapped->", 8, 0) != 8 ||
	    send(ds, "<-back", 6, 0) != 6)
		fail("dual-stack connection: %m");
#endif

	test_ready();
	test_wait_sigterm();

#if TCP_FAMILY == AF_INET6
	char mb[16];
	check(recv(ds, mb, sizeof(mb), 0) == 8 && !memcmp(mb, "mapped->", 8));
	check(recv(dc, mb, sizeof(mb), 0) == 6 && !memcmp(mb, "<-back", 6));
	check(send(ds, "z", 1, 0) == 1 && recv(dc, mb, 1, 0) == 1 && mb[0] == 'z');
#endif

	check(opt(c.fd, SOL_TCP, TCP_NODELAY) == 1 && opt(s.fd, SOL_TCP, TCP_NODELAY) == 0);
	check(opt(c.fd, SOL_SOCKET, SO_KEEPALIVE) == 1 && opt(s.fd, SOL_SOCKET, SO_KEEPALIVE) == 0);
	check(opt(c.fd, SOL_TCP, TCP_KEEPIDLE) == 77 && opt(c.fd, SOL_TCP, TCP_KEEPINTVL) == 11 &&
	      opt(c.fd, SOL_TCP, TCP_KEEPCNT) == 5);
	check(opt(c.fd, SOL_SOCKET, SO_RCVBUF) == bufs[1] &&
	      opt(s.fd, SOL_SOCKET, SO_SNDBUF) == bufs[2] &&
	      opt(s.fd, SOL_SOCKET, SO_RCVBUF) == bufs[3]);
	(void)bufs[0]; /* the client's SO_SNDBUF was not set: autotuned, not compared */
	check(opt(lsn, SOL_SOCKET, SO_REUSEADDR) == 1 && opt(lsn, SOL_SOCKET, SO_ACCEPTCONN) == 1);
	check((fcntl(s.fd, F_GETFL) & O_NONBLOCK) && !(fcntl(c.fd, F_GETFL) & O_NONBLOCK));
	same_name(c.fd, &ca, cl, 0);
	same_name(c.fd, &la, ll, 1);
	same_name(s.fd, &sa, sl, 0);
	same_name(lsn, &la, ll, 0);

	finish_streams(&c, &s);
	/* and on: another round of data both ways */
	fill(&c, c.sent + 100000);
	fill(&s, s.sent + 100000);
	finish_streams(&c, &s);
	test_msg("streams: %llu and %llu bytes\n", (unsigned long long)c.sent,
		 (unsigned long long)s.sent);

	int n = socket(TCP_FAMILY, SOCK_STREAM, 0), a;
	check(n >= 0 && connect(n, (struct sockaddr *)&la, ll) == 0);
	check((a = accept(lsn, NULL, NULL)) >= 0);
	check(send(n, "ping", 4, 0) == 4);
	char buf[8];
	check(recv(a, buf, sizeof(buf), 0) == 4 && !memcmp(buf, "ping", 4));
	pass();
}
