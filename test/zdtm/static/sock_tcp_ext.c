/*
 * sock_tcp_ext: an established connection to a peer OUTSIDE the dumped tree.
 *
 * The test forks the peer through an intermediate child that exits at once, so the
 * peer is reparented to the runner (a subreaper) and is not part of the dumped tree; it
 * calls setsid, and alarm(60) bounds its life whatever happens to the test. Protocol:
 * the peer writes a 16 MiB counter stream (blocking), then reads the test's 16 MiB
 * stream and checks every byte, then writes one status byte ('K' all matched, 'X'
 * not), then waits for EOF. Before the dump the test writes until its send buffer is
 * full and reads a little of the peer's stream, so the peer is blocked writing: both
 * directions have data queued on both hosts' sides (the test's send and receive queues
 * are in the images). The peer keeps its socket through the dump and the restore
 * (the network lock drops its retransmissions meanwhile). After the restore the test
 * finishes both streams, checks the peer's bytes and its verdict.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "zdtmtst.h"

#define TOTAL (16u << 20)

static uint8_t ctr(uint64_t i, uint8_t seed)
{
	return (uint8_t)(i * 13 + seed + (i >> 8));
}

/* ---- the peer (outside the tree) ---- */

static int peer_io(int fd, int wr, uint8_t seed, uint64_t total)
{
	uint8_t buf[16384];
	int ok = 1;
	for (uint64_t done = 0; done < total;) {
		size_t n = total - done < sizeof(buf) ? (size_t)(total - done) : sizeof(buf);
		if (wr)
			for (size_t i = 0; i < n; i++)
				buf[i] = ctr(done + i, seed);
		ssize_t r = wr ? send(fd, buf, n, MSG_NOSIGNAL) : recv(fd, buf, n, 0);
		if (r <= 0)
			_exit(3);
		for (ssize_t i = 0; !wr && i < r; i++)
			ok &= buf[i] == ctr(done + (uint64_t)i, seed);
		done += (uint64_t)r;
	}
	return ok;
}

static void peer(const struct sockaddr_in *sa)
{
	char b;
	setsid();
	alarm(60);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (const struct sockaddr *)sa, sizeof(*sa)))
		_exit(2);
	peer_io(fd, 1, 5, TOTAL);
	b = peer_io(fd, 0, 6, TOTAL) ? 'K' : 'X';
	if (send(fd, &b, 1, MSG_NOSIGNAL) != 1)
		_exit(3);
	while (recv(fd, &b, 1, 0) > 0)
		;
	_exit(0);
}

/* ---- the test ---- */

struct st {
	int fd;
	uint64_t sent, rcvd;
	char status;
};

/* Non-blocking steps: write our stream up to limit, read the peer's (and its status)
 * up to rlimit bytes. */
static void step(struct st *s, uint64_t limit, uint64_t rlimit)
{
	uint8_t buf[16384];
	while (s->sent < limit) {
		size_t n = limit - s->sent < sizeof(buf) ? (size_t)(limit - s->sent) : sizeof(buf);
		for (size_t i = 0; i < n; i++)
			buf[i] = ctr(s->sent + i, 6);
		ssize_t r = send(s->fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (r < 0 && errno == EAGAIN)
			break;
		if (r <= 0)
			fail("send: %m");
		s->sent += (uint64_t)r;
	}
	while (s->rcvd < rlimit) {
		size_t n =
			rlimit - s->rcvd < sizeof(buf) ? (size_t)(rlimit - s->rcvd) : sizeof(buf);
		ssize_t r = recv(s->fd, buf, n, MSG_DONTWAIT);
		if (r < 0 && errno == EAGAIN)
			return;
		if (r <= 0)
			fail("recv: %zd: %m (after %llu bytes)", r, (unsigned long long)s->rcvd);
		for (ssize_t i = 0; i < r; i++, s->rcvd++) {
			if (s->rcvd == TOTAL) {
				s->status = (char)buf[i];
				if (i != r - 1)
					fail("bytes after the peer's status");
			} else if (buf[i] != ctr(s->rcvd, 5)) {
				fail("peer byte %llu: got %u want %u", (unsigned long long)s->rcvd,
				     buf[i], ctr(s->rcvd, 5));
			}
		}
	}
}

static int queued(int fd, int req)
{
	int v = 0;
	if (ioctl(fd, req, &v))
		fail("ioctl: %m");
	return v;
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	struct st s = { .fd = -1 };
	int status;

	test_init(argc, argv);
	int lsn = socket(AF_INET, SOCK_STREAM, 0);
	if (lsn < 0 || bind(lsn, (struct sockaddr *)&sa, sizeof(sa)) || listen(lsn, 1) ||
	    getsockname(lsn, (struct sockaddr *)&sa, &len))
		fail("listen: %m");
	pid_t mid = fork();
	if (mid < 0)
		fail("fork: %m");
	if (mid == 0) {
		close(lsn);
		pid_t p = fork();
		if (p == 0)
			peer(&sa);
		_exit(p < 0);
	}
	if (waitpid(mid, &status, 0) != mid || status != 0)
		fail("the peer was not started (status %d)", status);
	if ((s.fd = accept(lsn, NULL, NULL)) < 0)
		fail("accept: %m");
	close(lsn);

	/* our send buffer full, some of the peer's stream read, the rest queued */
	for (int i = 0; i < 500; i++) {
		step(&s, TOTAL, 100000);
		if (s.rcvd >= 100000 && queued(s.fd, SIOCOUTQ) > 0)
			break;
		poll(NULL, 0, 10);
	}
	for (int i = 0; i < 500 && queued(s.fd, SIOCINQ) == 0; i++)
		poll(NULL, 0, 10);
	check(s.sent < TOTAL && s.rcvd < TOTAL && queued(s.fd, SIOCOUTQ) > 0 &&
	      queued(s.fd, SIOCINQ) > 0);
	test_msg("before: %llu sent (%d unacked), %llu read (%d queued)\n",
		 (unsigned long long)s.sent, queued(s.fd, SIOCOUTQ), (unsigned long long)s.rcvd,
		 queued(s.fd, SIOCINQ));

	test_ready();
	test_wait_sigterm();

	for (int i = 0; i < 2000 && !s.status; i++) {
		struct pollfd p = { .fd = s.fd, .events = POLLIN | (s.sent < TOTAL ? POLLOUT : 0) };
		step(&s, TOTAL, TOTAL + 1);
		if (!s.status)
			poll(&p, 1, 10);
	}
	if (s.status != 'K')
		fail("peer verdict '%c' (sent %llu, read %llu)", s.status ? s.status : '-',
		     (unsigned long long)s.sent, (unsigned long long)s.rcvd);
	check(s.sent == TOTAL && s.rcvd == TOTAL + 1);
	pass();
}
