/*
 * sock_tcp_ext_inflight: a connection to a peer OUTSIDE the dumped tree, dumped with
 * bytes in flight that the peer already holds but whose ACK the test's socket has not
 * seen, the peer's window closed behind them (docs/net.md, "In-flight data at the
 * dump"). The images do not say how much was in flight; the restore must still not
 * resend those bytes as new data (the peer's ACK would run ahead of the restored
 * snd_nxt and be discarded: a stall).
 *
 * The peer (forked through an intermediate child, so it is reparented to the runner and
 * not dumped; setsid, alarm(60)) connects with a 4 KiB receive buffer, then waits on a
 * pipe. The test fills its send queue and settles (nothing unacknowledged); an nftables
 * rule of its own (sock_tcp_block.h) then drops every packet of the peer acknowledging
 * more than the test's snd_nxt, and the test tells the peer to read 5000 bytes: the
 * peer's window update passes and lets the test's socket send into the window, the
 * peer's ACK of those bytes is dropped. The test closes its pipe ends (the peer then
 * reads the whole stream, blocking, and checks every byte; its window updates are
 * dropped too) and signals ready. After the restore the test removes its table, writes
 * the rest of its 8 MiB stream and waits for the peer's verdict byte (10 s). Skipped
 * (77) without the nft command.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sock_tcp_block.h"
#include "zdtmtst.h"

#define TOTAL (8u << 20)

static uint8_t ctr(uint64_t i)
{
	return (uint8_t)(i * 11 + 9 + (i >> 10));
}

/* ---- the peer (outside the tree) ---- */

/* Read n bytes of the stream from *done on, checking them; 0 when all matched. */
static int peer_read(int fd, uint64_t *done, uint64_t n)
{
	uint8_t buf[16384];
	int bad = 0;
	for (uint64_t end = *done + n; *done < end;) {
		size_t k = end - *done < sizeof(buf) ? (size_t)(end - *done) : sizeof(buf);
		ssize_t r = recv(fd, buf, k, 0);
		if (r <= 0)
			_exit(3);
		for (ssize_t i = 0; i < r; i++)
			bad |= buf[i] != ctr(*done + (uint64_t)i);
		*done += (uint64_t)r;
	}
	return bad;
}

/* go: the test writes one byte per round ('r': read 5000 bytes) and closes it when the
 * state is set; done: the peer answers each round */
static void peer(const struct sockaddr_in *sa, int go, int done)
{
	uint64_t got = 0;
	int v = 4096, bad = 0;
	char c;
	setsid();
	alarm(60);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v)) ||
	    connect(fd, (const struct sockaddr *)sa, sizeof(*sa)))
		_exit(2);
	while (read(go, &c, 1) == 1) {
		bad |= peer_read(fd, &got, 5000);
		if (write(done, "d", 1) != 1)
			_exit(4);
	}
	bad |= peer_read(fd, &got, TOTAL - got);
	c = bad ? 'X' : 'K';
	if (send(fd, &c, 1, MSG_NOSIGNAL) != 1)
		_exit(3);
	while (recv(fd, &c, 1, 0) > 0)
		;
	_exit(0);
}

/* ---- the test ---- */

static uint64_t sent;

/* Write the stream until the kernel takes no more (or TOTAL). */
static void fill(int fd)
{
	uint8_t buf[16384];
	while (sent < TOTAL) {
		size_t n = TOTAL - sent < sizeof(buf) ? (size_t)(TOTAL - sent) : sizeof(buf);
		for (size_t i = 0; i < n; i++)
			buf[i] = ctr(sent + i);
		ssize_t w = send(fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w < 0 && errno == EAGAIN)
			return;
		if (w <= 0)
			fail("send: %m");
		sent += (uint64_t)w;
	}
}

/* Start the peer; the listener is closed once it is accepted. */
static int start_peer(int *go, int *done)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int p1[2], p2[2], status, fd;
	int lsn = socket(AF_INET, SOCK_STREAM, 0);
	if (lsn < 0 || bind(lsn, (struct sockaddr *)&sa, sizeof(sa)) || listen(lsn, 1) ||
	    getsockname(lsn, (struct sockaddr *)&sa, &len) || pipe(p1) || pipe(p2))
		fail("listen: %m");
	pid_t mid = fork();
	if (mid < 0)
		fail("fork: %m");
	if (mid == 0) {
		close(lsn);
		close(p1[1]);
		close(p2[0]);
		pid_t p = fork();
		if (p == 0)
			peer(&sa, p1[0], p2[1]);
		_exit(p < 0);
	}
	close(p1[0]);
	close(p2[1]);
	if (waitpid(mid, &status, 0) != mid || status != 0)
		fail("the peer was not started (status %d)", status);
	if ((fd = accept(lsn, NULL, NULL)) < 0)
		fail("accept: %m");
	close(lsn);
	*go = p1[1];
	*done = p2[0];
	return fd;
}

int main(int argc, char **argv)
{
	struct sockaddr_in me, him;
	socklen_t l1 = sizeof(me), l2 = sizeof(him);
	int go, done, one = 1;
	char c;

	test_init(argc, argv);
	blk_init("extinfl");

	int fd = start_peer(&go, &done);
	if (setsockopt(fd, SOL_TCP, TCP_NODELAY, &one, sizeof(one)) ||
	    getsockname(fd, (struct sockaddr *)&me, &l1) ||
	    getpeername(fd, (struct sockaddr *)&him, &l2))
		fail("socket: %m");
	fill(fd);
	blk_settle(fd, "");
	blk_acks(ntohs(him.sin_port), ntohs(me.sin_port), blk_snd_nxt(fd));
	if (write(go, "r", 1) != 1 || read(done, &c, 1) != 1)
		fail("peer gone: %m");
	/* the window update went out: our socket sends into the window (2 s at most) */
	for (uint64_t end = blk_now_ms() + 2000; blk_now_ms() < end && !blk_unacked(fd);)
		poll(NULL, 0, 5);
	check(blk_unacked(fd) > 0);
	test_msg("%u segments unacknowledged, %llu bytes written\n", blk_unacked(fd),
		 (unsigned long long)sent);
	fill(fd);
	close(go);
	close(done);

	test_ready();
	test_wait_sigterm();

	if (blk_del())
		fail("nft: cannot delete table %s", blk_table);
	uint64_t end = blk_now_ms() + 10000;
	ssize_t r = 0;
	while (blk_now_ms() < end) {
		struct pollfd p = { .fd = fd, .events = POLLIN | (sent < TOTAL ? POLLOUT : 0) };
		fill(fd);
		if ((r = recv(fd, &c, 1, MSG_DONTWAIT)) == 1 || (r < 0 && errno != EAGAIN) || !r)
			break;
		poll(&p, 1, 10);
	}
	if (r != 1)
		fail("no verdict from the peer in 10 s (%llu of %u bytes written; recv %zd: %m)",
		     (unsigned long long)sent, TOTAL, r);
	check(c == 'K' && sent == TOTAL);
	pass();
}
