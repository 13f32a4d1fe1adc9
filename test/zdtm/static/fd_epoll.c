/*
 * fd_epoll: epoll A watches a pipe's read end (EPOLLIN, 64-bit data), an eventfd
 * (EPOLLIN|EPOLLET), a oneshot eventfd that already fired (disarmed), and epoll B; B
 * watches another eventfd. A non-blocking, B close-on-exec.
 * After the restore: every registration is back with its events and data (fdinfo),
 * events are delivered with the right data, the oneshot stays disarmed until re-armed
 * with EPOLL_CTL_MOD (which needs the dumped fd number as the key).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
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

/* "tfd events data" of every registration, sorted by tfd (the kernel lists them in
 * struct file address order). A disarmed oneshot item (no poll bits left) comes back
 * armed for EPOLLERR|EPOLLHUP only (epoll_ctl always adds those): bits 0x18 of such an
 * item are ignored. */
static void tfd_lines(int ep, char *out, size_t len)
{
	char path[64], buf[4096];
	int tfd[16];
	unsigned ev[16];
	unsigned long long data[16];
	size_t n = 0, o = 0;
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", ep);
	if (test_read_file(path, buf, sizeof(buf)) < 0)
		fail("read %s: %m", path);
	for (char *l = strstr(buf, "tfd:"); l && n < 16; l = strstr(l + 1, "tfd:"), n++)
		if (sscanf(l, "tfd: %d events: %x data: %llx", &tfd[n], &ev[n], &data[n]) != 3)
			fail("bad fdinfo line");
	out[0] = 0;
	for (int want = 0; want < 1024; want++)
		for (size_t i = 0; i < n; i++) {
			if (tfd[i] != want)
				continue;
			if ((ev[i] & EPOLLONESHOT) && !(ev[i] & ~(0xf0000000u | EPOLLERR | EPOLLHUP)))
				ev[i] &= ~(unsigned)(EPOLLERR | EPOLLHUP);
			o += (size_t)snprintf(out + o, len - o, "%d %x %llx\n", tfd[i], ev[i], data[i]);
		}
}

int main(int argc, char **argv)
{
	struct epoll_event ev[8];
	char before_a[1024], before_b[1024], after[1024];
	uint64_t one = 1;
	int p[2];

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
	pass();
}
