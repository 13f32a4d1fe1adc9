/*
 * fd_epoll: epoll A watches a pipe's read end (EPOLLIN, 64-bit data), an eventfd
 * (EPOLLIN|EPOLLET), a oneshot eventfd that already fired (disarmed), and epoll B; B
 * watches another eventfd. A non-blocking, B close-on-exec.
 * Two stale registrations: eventfd e4 registered at number N4 then moved (dup to
 * another number, N4 closed), and e5 registered at N5, moved, and N5 reused by a pipe
 * end that is registered too (same number, two files).
 * After the restore: every registration is back with its events and data (fdinfo),
 * events are delivered with the right data, the oneshot stays disarmed until re-armed
 * with EPOLL_CTL_MOD (which needs the dumped fd number as the key); the stale items keep
 * their old numbers as keys.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "zdtmtst.h"

static void ctl(int ep, int fd, uint32_t ev, uint64_t data)
{
	struct epoll_event e = { .events = ev, .data.u64 = data };
	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e))
		fail("epoll_ctl: %m");
}

/* "tfd data events" of every registration, sorted (the kernel lists them in struct
 * file address order). A disarmed oneshot item (no poll bits left) comes back armed for
 * EPOLLERR|EPOLLHUP only (epoll_ctl always adds those): bits 0x18 of such an item are
 * ignored. */
static int cmp_line(const void *x, const void *y)
{
	return strcmp(x, y);
}

static void tfd_lines(int ep, char *out, size_t len)
{
	char path[64], buf[4096], lines[16][64];
	size_t n = 0, o = 0;
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", ep);
	if (test_read_file(path, buf, sizeof(buf)) < 0)
		fail("read %s: %m", path);
	for (char *l = strstr(buf, "tfd:"); l && n < 16; l = strstr(l + 1, "tfd:"), n++) {
		int tfd;
		unsigned ev;
		unsigned long long data;
		if (sscanf(l, "tfd: %d events: %x data: %llx", &tfd, &ev, &data) != 3)
			fail("bad fdinfo line");
		if ((ev & EPOLLONESHOT) && !(ev & ~(0xf0000000u | EPOLLERR | EPOLLHUP)))
			ev &= ~(unsigned)(EPOLLERR | EPOLLHUP);
		snprintf(lines[n], sizeof(lines[n]), "%08d %016llx %x\n", tfd, data, ev);
	}
	qsort(lines, n, sizeof(lines[0]), cmp_line);
	out[0] = 0;
	for (size_t i = 0; i < n; i++)
		o += (size_t)snprintf(out + o, len - o, "%s", lines[i]);
}

int main(int argc, char **argv)
{
	struct epoll_event ev[8];
	char before_a[1024], before_b[1024], after[1024];
	uint64_t one = 1;
	int p[2], q[2];

	test_init(argc, argv);
	int a = epoll_create1(0), b = epoll_create1(EPOLL_CLOEXEC);
	int e1 = eventfd(0, EFD_NONBLOCK), e2 = eventfd(0, 0), e3 = eventfd(0, 0);
	if (a < 0 || b < 0 || e1 < 0 || e2 < 0 || e3 < 0 || pipe(p))
		fail("setup: %m");
	ctl(a, p[0], EPOLLIN, 0x1122334455667788ULL);
	ctl(a, e1, EPOLLIN | EPOLLET, 7);
	ctl(a, e3, EPOLLIN | EPOLLONESHOT, 33);
	ctl(a, b, EPOLLIN, 0xb);
	ctl(b, e2, EPOLLIN, 0xe2);
	if (write(e3, &one, 8) != 8 || epoll_wait(a, ev, 8, 0) != 1 || ev[0].data.u64 != 33)
		fail("oneshot did not fire");
	if (fcntl(a, F_SETFL, O_NONBLOCK))
		fail("fcntl: %m");
	int e4 = eventfd(0, 0), e5 = eventfd(0, 0);
	ctl(a, e4, EPOLLIN, 44);
	ctl(a, e5, EPOLLIN, 55);
	int m4 = dup(e4), m5 = dup(e5), n5 = e5;
	if (pipe(q))
		fail("pipe: %m");
	close(e4);				/* e4's number is now free */
	close(e5);
	if (dup2(q[0], n5) != n5)		/* n5 now holds a pipe end */
		fail("dup2: %m");
	close(q[0]);
	ctl(a, n5, EPOLLIN, 0x5e);
	tfd_lines(a, before_a, sizeof(before_a));
	tfd_lines(b, before_b, sizeof(before_b));

	test_ready();
	test_wait_sigterm();

	tfd_lines(a, after, sizeof(after));
	if (strcmp(after, before_a))
		fail("epoll A registrations differ:\n%s---\n%s", before_a, after);
	tfd_lines(b, after, sizeof(after));
	check(!strcmp(after, before_b));
	check((fcntl(a, F_GETFL) & O_NONBLOCK) && fcntl(b, F_GETFD) == FD_CLOEXEC);
	check(epoll_wait(a, ev, 8, 0) == 0);	/* e3 still fired and disarmed */
	check(write(p[1], "x", 1) == 1);
	check(epoll_wait(a, ev, 8, 0) == 1 && ev[0].data.u64 == 0x1122334455667788ULL);
	char c;
	check(read(p[0], &c, 1) == 1);
	check(write(e1, &one, 8) == 8);
	check(epoll_wait(a, ev, 8, 0) == 1 && ev[0].data.u64 == 7);
	check(epoll_wait(a, ev, 8, 0) == 0);	/* edge-triggered */
	check(write(e2, &one, 8) == 8);
	check(epoll_wait(a, ev, 8, 0) == 1 && ev[0].data.u64 == 0xb);
	check(epoll_wait(b, ev, 8, 0) == 1 && ev[0].data.u64 == 0xe2);
	struct epoll_event m = { .events = EPOLLIN, .data.u64 = 34 };
	check(epoll_ctl(a, EPOLL_CTL_MOD, e3, &m) == 0);
	check(epoll_wait(a, ev, 8, 0) >= 1);
	check(read(e3, &one, 8) == 8 && read(e2, &one, 8) == 8);
	one = 1;
	check(epoll_wait(a, ev, 8, 0) == 0);
	check(write(m4, &one, 8) == 8);			/* the moved eventfds */
	check(epoll_wait(a, ev, 8, 0) == 1 && ev[0].data.u64 == 44);
	check(read(m4, &one, 8) == 8);
	one = 1;
	check(write(m5, &one, 8) == 8);
	check(epoll_wait(a, ev, 8, 0) == 1 && ev[0].data.u64 == 55);
	check(read(m5, &one, 8) == 8);
	check(write(q[1], "p", 1) == 1);		/* the pipe now at n5 */
	check(epoll_wait(a, ev, 8, 0) == 1 && ev[0].data.u64 == 0x5e);
	check(epoll_ctl(a, EPOLL_CTL_DEL, m4, NULL) < 0 && errno == ENOENT);	/* keyed by N4 */
	check(epoll_ctl(a, EPOLL_CTL_DEL, n5, NULL) == 0);	/* the pipe's item */
	check(fcntl(n5, F_GETFD) >= 0 && fcntl(m4, F_GETFD) >= 0);
	pass();
}
