/*
 * sock_tcp_inflight: a loopback connection (both ends in the process) dumped with data in
 * flight that the receiver already holds but the sender has not seen acknowledged, the
 * receiver's window closed behind it (docs/net.md, "In-flight data at the dump").
 *
 * Both directions are filled (4 KiB receive buffers, every sender writes until EAGAIN)
 * and left to settle (no segment unacknowledged). Then an nftables rule of the test's own
 * (sock_tcp_block.h) drops every packet from the server to the client that acknowledges
 * more than the client's snd_nxt, and the server reads part of its stream: its window
 * update passes and makes the client send into the window, the server's ACK of those
 * bytes is dropped. The test checks the state (the client has unacknowledged bytes, the
 * server has received them) and signals ready: the dump finds it. After the restore it
 * removes its table and both streams must complete byte for byte (10 s), then flow
 * again. A restore that resends those bytes as new data stalls both ways (the
 * receiver's ACK runs ahead of the sender's snd_nxt and is discarded). Skipped (77)
 * without the nft command.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sock_tcp_block.h"
#include "zdtmtst.h"

struct stream {
	int fd;
	uint64_t sent, rcvd;
	uint8_t seed_tx, seed_rx;
};

static uint8_t ctr(uint64_t i, uint8_t seed)
{
	return (uint8_t)(i * 7 + seed + (i >> 9));
}

static void fill(struct stream *s)
{
	uint8_t buf[16384];
	for (;;) {
		for (size_t i = 0; i < sizeof(buf); i++)
			buf[i] = ctr(s->sent + i, s->seed_tx);
		ssize_t w = send(s->fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w < 0 && errno == EAGAIN)
			return;
		if (w <= 0)
			fail("send: %m");
		s->sent += (uint64_t)w;
	}
}

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

static int inq(int fd)
{
	int v = 0;
	if (ioctl(fd, SIOCINQ, &v))
		fail("SIOCINQ: %m");
	return v;
}

/* Until every segment of fd is acknowledged (2 s at most). */
/* Both streams to their totals (10 s at most). */
static void finish_streams(struct stream *a, struct stream *b)
{
	uint64_t end = blk_now_ms() + 10000;
	while ((a->rcvd < b->sent || b->rcvd < a->sent) && blk_now_ms() < end) {
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

int main(int argc, char **argv)
{
	struct sockaddr_in la = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sockaddr_in ca;
	socklen_t ll = sizeof(la), cl = sizeof(ca);
	int v = 4096, one = 1;

	test_init(argc, argv);
	blk_init("inflight");

	int lsn = socket(AF_INET, SOCK_STREAM, 0);
	struct stream c = { .seed_tx = 3, .seed_rx = 4 }, sv = { .seed_tx = 4, .seed_rx = 3 };
	c.fd = socket(AF_INET, SOCK_STREAM, 0);
	if (lsn < 0 || c.fd < 0 || setsockopt(lsn, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v)) ||
	    setsockopt(c.fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v)) ||
	    bind(lsn, (struct sockaddr *)&la, ll) || listen(lsn, 1) ||
	    getsockname(lsn, (struct sockaddr *)&la, &ll) ||
	    connect(c.fd, (struct sockaddr *)&la, ll) || (sv.fd = accept(lsn, NULL, NULL)) < 0 ||
	    setsockopt(c.fd, SOL_TCP, TCP_NODELAY, &one, sizeof(one)) ||
	    getsockname(c.fd, (struct sockaddr *)&ca, &cl))
		fail("connection: %m");
	close(lsn);

	fill(&c);
	fill(&sv);
	check(drain(&c, 3000) > 0);
	fill(&c);
	fill(&sv);
	blk_settle(c.fd, "client: ");
	int before = inq(sv.fd);
	blk_acks(ntohs(la.sin_port), ntohs(ca.sin_port), blk_snd_nxt(c.fd));
	check(drain(&sv, 5000) > 0);
	/* the window update went out: the client sends into the window (2 s at most) */
	for (uint64_t end = blk_now_ms() + 2000; blk_now_ms() < end && !blk_unacked(c.fd);)
		poll(NULL, 0, 5);
	check(blk_unacked(c.fd) > 0 && inq(sv.fd) > before - 5000);
	test_msg("client %u segments unacknowledged, server %d bytes queued\n", blk_unacked(c.fd),
		 inq(sv.fd));
	fill(&c);
	fill(&sv);

	test_ready();
	test_wait_sigterm();

	if (blk_del())
		fail("nft: cannot delete table %s", blk_table);
	finish_streams(&c, &sv);
	fill(&c);
	fill(&sv);
	finish_streams(&c, &sv);
	test_msg("streams: %llu and %llu bytes\n", (unsigned long long)c.sent,
		 (unsigned long long)sv.sent);
	pass();
}
