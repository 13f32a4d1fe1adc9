/*
 * sock_tcp_tree: a TCP connection between two processes of the dumped tree: the parent
 * holds the listener and the accepted socket, its child (which also keeps the inherited
 * listener: one description held by two processes) holds the client socket. Each
 * writes an 8 MiB counter stream; before the dump both write until their send buffer
 * is full and read part of the other's, so both directions have data queued. The
 * child then waits on a pipe. After the restore the parent releases it; both finish
 * both streams, checking every byte; the child exits 0 only if all matched, and the
 * parent checks that status, then the listener (still shared) accepts a connection.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "zdtmtst.h"

#define TOTAL (8u << 20)

struct st {
	int fd;
	uint64_t sent, rcvd;
	uint8_t tx, rx;
};

static uint8_t ctr(uint64_t i, uint8_t seed)
{
	return (uint8_t)(i * 13 + seed + (i >> 8));
}

/* Write up to wmax, read up to rmax, without blocking. -1 on a bad byte or error. */
static int step(struct st *s, uint64_t wmax, uint64_t rmax)
{
	uint8_t buf[16384];
	while (s->sent < wmax) {
		size_t n = wmax - s->sent < sizeof(buf) ? (size_t)(wmax - s->sent) : sizeof(buf);
		for (size_t i = 0; i < n; i++)
			buf[i] = ctr(s->sent + i, s->tx);
		ssize_t r = send(s->fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (r < 0 && errno == EAGAIN)
			break;
		if (r <= 0)
			return -1;
		s->sent += (uint64_t)r;
	}
	while (s->rcvd < rmax) {
		size_t n = rmax - s->rcvd < sizeof(buf) ? (size_t)(rmax - s->rcvd) : sizeof(buf);
		ssize_t r = recv(s->fd, buf, n, MSG_DONTWAIT);
		if (r < 0 && errno == EAGAIN)
			break;
		if (r <= 0)
			return -1;
		for (ssize_t i = 0; i < r; i++)
			if (buf[i] != ctr(s->rcvd + (uint64_t)i, s->rx))
				return -1;
		s->rcvd += (uint64_t)r;
	}
	return 0;
}

/* Both streams to TOTAL (20 s at most). */
static int finish(struct st *s)
{
	for (int i = 0; i < 2000 && (s->sent < TOTAL || s->rcvd < TOTAL); i++) {
		struct pollfd p = { .fd = s->fd,
				    .events = POLLIN | (s->sent < TOTAL ? POLLOUT : 0) };
		if (step(s, TOTAL, TOTAL) < 0)
			return -1;
		if (s->sent < TOTAL || s->rcvd < TOTAL)
			poll(&p, 1, 10);
	}
	return s->sent == TOTAL && s->rcvd == TOTAL ? 0 : -1;
}

static void child(const struct sockaddr_in *sa, int go, int done)
{
	struct st s = { .tx = 3, .rx = 4 };
	char b;
	s.fd = socket(AF_INET, SOCK_STREAM, 0);
	if (s.fd < 0 || connect(s.fd, (const struct sockaddr *)sa, sizeof(*sa)))
		_exit(2);
	for (int i = 0; i < 500 && s.rcvd < 50000; i++) {
		if (step(&s, TOTAL, 50000) < 0)
			_exit(3);
		poll(NULL, 0, 10);
	}
	if (step(&s, TOTAL, 50000) < 0 || write(done, "f", 1) != 1)
		_exit(3);
	if (read(go, &b, 1) != 1) /* blocked here across the dump */
		_exit(4);
	_exit(finish(&s) < 0 ? 5 : 0);
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	struct st s = { .tx = 4, .rx = 3 };
	int go[2], done[2], status;
	char b;

	test_init(argc, argv);
	int lsn = socket(AF_INET, SOCK_STREAM, 0);
	if (lsn < 0 || bind(lsn, (struct sockaddr *)&sa, sizeof(sa)) || listen(lsn, 2) ||
	    getsockname(lsn, (struct sockaddr *)&sa, &len) || pipe(go) || pipe(done))
		fail("setup: %m");
	pid_t pid = fork();
	if (pid < 0)
		fail("fork: %m");
	if (pid == 0)
		child(&sa, go[0], done[1]);
	if ((s.fd = accept(lsn, NULL, NULL)) < 0)
		fail("accept: %m");
	for (int i = 0; i < 500 && s.rcvd < 70000; i++) {
		check(step(&s, TOTAL, 70000) == 0);
		poll(NULL, 0, 10);
	}
	check(read(done[0], &b, 1) == 1); /* the child has filled its side */
	check(step(&s, TOTAL, 70000) == 0);
	check(s.sent < TOTAL && s.rcvd == 70000);

	test_ready();
	test_wait_sigterm();

	check(write(go[1], "g", 1) == 1);
	if (finish(&s) < 0)
		fail("parent: streams %llu sent, %llu read", (unsigned long long)s.sent,
		     (unsigned long long)s.rcvd);
	check(waitpid(pid, &status, 0) == pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail("child: status %#x", status);
	int c = socket(AF_INET, SOCK_STREAM, 0), a;
	check(c >= 0 && connect(c, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	check((a = accept(lsn, NULL, NULL)) >= 0 && send(c, "t", 1, 0) == 1);
	check(recv(a, &b, 1, 0) == 1 && b == 't');
	pass();
}
