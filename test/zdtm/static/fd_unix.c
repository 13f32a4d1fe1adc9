/*
 * fd_unix: AF_UNIX sockets of every supported shape:
 *  - a stream socketpair with data queued both ways (two writes one way), one end
 *    non-blocking with SO_SNDBUF set;
 *  - a dgram socketpair with three messages of different sizes queued, SO_PASSCRED;
 *  - a seqpacket socketpair with two messages queued, then shutdown(SHUT_WR) on the sender;
 *  - a stream listener on an abstract name and one on a filesystem path (backlog 5),
 *    and an accepted connection of the latter with data queued to the server side;
 *  - a dgram socket bound to a path with two datagrams queued from an unbound sender.
 * After the restore: data, message boundaries, options, shutdown state, names; the
 * pairs are still connected and the listeners accept new connections.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "zdtmtst.h"

static socklen_t addr(struct sockaddr_un *sa, const char *path, int abstract)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (abstract) {
		snprintf(sa->sun_path + 1, sizeof(sa->sun_path) - 1, "%s", path);
		return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(path));
	}
	snprintf(sa->sun_path, sizeof(sa->sun_path), "%s", path);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1);
}

static int listener(const struct sockaddr_un *sa, socklen_t len)
{
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	if (s < 0 || bind(s, (const struct sockaddr *)sa, len) || listen(s, 5))
		fail("listener: %m");
	return s;
}

static void recv_is(int fd, const char *want, size_t len)
{
	char buf[256];
	ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
	if (n != (ssize_t)len || memcmp(buf, want, len))
		fail("fd %d: got %zd bytes, want %zu ('%.*s'): %m", fd, n, len, (int)len, want);
}

static int sockopt(int fd, int opt)
{
	int v = -1;
	socklen_t l = sizeof(v);
	if (getsockopt(fd, SOL_SOCKET, opt, &v, &l))
		fail("getsockopt: %m");
	return v;
}

static void connect_to(const struct sockaddr_un *sa, socklen_t len, int lsn)
{
	int c = socket(AF_UNIX, SOCK_STREAM, 0);
	check(c >= 0 && connect(c, (const struct sockaddr *)sa, len) == 0);
	int a = accept(lsn, NULL, NULL);
	check(a >= 0 && write(c, "hi", 2) == 2);
	recv_is(a, "hi", 2);
	close(a);
	close(c);
}

int main(int argc, char **argv)
{
	int st[2], dg[2], sp[2], one = 1, sndbuf = 65536;
	struct sockaddr_un sa_abs, sa_path, sa_dg, got;
	char path[100], dpath[100];
	socklen_t l_abs, l_path, l_dg, gl = sizeof(got);

	test_init(argc, argv);
	snprintf(path, sizeof(path), "%s/sock.%d", test_dir(), getpid());
	snprintf(dpath, sizeof(dpath), "%s/dsock.%d", test_dir(), getpid());
	if (strlen(path) >= sizeof(sa_path.sun_path) - 1)
		test_skip("test directory path too long for a socket name");
	l_abs = addr(&sa_abs, "ferry-fd-unix-abstract", 1);
	l_path = addr(&sa_path, path, 0);
	l_dg = addr(&sa_dg, dpath, 0);

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, st) || socketpair(AF_UNIX, SOCK_DGRAM, 0, dg) ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sp))
		fail("socketpair: %m");
	if (setsockopt(st[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)) ||
	    setsockopt(dg[1], SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) ||
	    fcntl(st[0], F_SETFL, O_NONBLOCK))
		fail("options: %m");
	if (write(st[0], "hello ", 6) != 6 || write(st[0], "world", 5) != 5 ||
	    write(st[1], "back", 4) != 4)
		fail("stream write: %m");
	if (send(dg[0], "a", 1, 0) != 1 || send(dg[0], "bbbbbb", 6, 0) != 6 ||
	    send(dg[0], "cc", 2, 0) != 2)
		fail("dgram send: %m");
	if (send(sp[0], "first", 5, 0) != 5 || send(sp[0], "second!", 7, 0) != 7 ||
	    shutdown(sp[0], SHUT_WR))
		fail("seqpacket: %m");
	int la = listener(&sa_abs, l_abs), lp = listener(&sa_path, l_path);
	int cli = socket(AF_UNIX, SOCK_STREAM, 0);
	if (cli < 0 || connect(cli, (struct sockaddr *)&sa_path, l_path))
		fail("connect: %m");
	int srv = accept(lp, NULL, NULL);
	if (srv < 0 || write(cli, "request", 7) != 7)
		fail("accept: %m");
	int ds = socket(AF_UNIX, SOCK_DGRAM, 0), tx = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (ds < 0 || tx < 0 || bind(ds, (struct sockaddr *)&sa_dg, l_dg) ||
	    sendto(tx, "d1", 2, 0, (struct sockaddr *)&sa_dg, l_dg) != 2 ||
	    sendto(tx, "d22", 3, 0, (struct sockaddr *)&sa_dg, l_dg) != 3)
		fail("dgram server: %m");
	close(tx);
	int sb_before = sockopt(st[0], SO_SNDBUF);

	test_ready();
	test_wait_sigterm();

	check(sockopt(st[0], SO_SNDBUF) == sb_before);
	check(sockopt(dg[1], SO_PASSCRED) == 1 && sockopt(dg[0], SO_PASSCRED) == 0);
	check(sockopt(sp[0], SO_TYPE) == SOCK_SEQPACKET && sockopt(dg[0], SO_TYPE) == SOCK_DGRAM);
	check((fcntl(st[0], F_GETFL) & O_NONBLOCK) && !(fcntl(st[1], F_GETFL) & O_NONBLOCK));
	recv_is(st[1], "hello world", 11);
	recv_is(st[0], "back", 4);
	check(write(st[1], "more", 4) == 4);
	recv_is(st[0], "more", 4);
	recv_is(dg[1], "a", 1);
	recv_is(dg[1], "bbbbbb", 6);
	recv_is(dg[1], "cc", 2);
	check(send(dg[1], "rev", 3, 0) == 3);
	recv_is(dg[0], "rev", 3);
	recv_is(sp[1], "first", 5);
	recv_is(sp[1], "second!", 7);
	check(recv(sp[1], path, 1, MSG_DONTWAIT) == 0);		/* peer shut down writing */
	check(send(sp[0], "x", 1, MSG_NOSIGNAL) < 0 && errno == EPIPE);
	check(send(sp[1], "y", 1, 0) == 1);
	recv_is(sp[0], "y", 1);
	recv_is(srv, "request", 7);
	check(write(srv, "reply", 5) == 5);
	recv_is(cli, "reply", 5);
	recv_is(ds, "d1", 2);
	recv_is(ds, "d22", 3);
	check(getsockname(la, (struct sockaddr *)&got, &gl) == 0 && gl == l_abs &&
	      !memcmp(&got, &sa_abs, l_abs));
	gl = sizeof(got);
	check(getsockname(lp, (struct sockaddr *)&got, &gl) == 0 && !strcmp(got.sun_path, path));
	connect_to(&sa_abs, l_abs, la);
	connect_to(&sa_path, l_path, lp);
	unlink(path);
	unlink(dpath);
	pass();
}
