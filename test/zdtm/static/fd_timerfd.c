/*
 * fd_timerfd: a relative periodic CLOCK_MONOTONIC timer (100 s, then every 50 s), an
 * absolute CLOCK_REALTIME timer 200 s ahead, a one-shot timer that already expired and
 * was not read (1 tick), a disarmed non-blocking CLOCK_BOOTTIME timer.
 * After the restore: clocks, settime flags, intervals exact; remaining times within
 * their bounds; the unread tick is still there; the disarmed timer stays disarmed.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "zdtmtst.h"

static void fdinfo(int fd, char *buf, size_t len)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	if (test_read_file(path, buf, len) < 0)
		fail("read %s: %m", path);
}

int main(int argc, char **argv)
{
	struct itimerspec its, cur;
	struct timespec now;
	struct pollfd pfd;
	uint64_t ticks;
	char info[4096];
	test_init(argc, argv);
	int rel = timerfd_create(CLOCK_MONOTONIC, 0);
	int abst = timerfd_create(CLOCK_REALTIME, TFD_CLOEXEC);
	int shot = timerfd_create(CLOCK_MONOTONIC, 0);
	int off = timerfd_create(CLOCK_BOOTTIME, TFD_NONBLOCK);
	if (rel < 0 || abst < 0 || shot < 0 || off < 0)
		fail("timerfd_create: %m");
	its = (struct itimerspec){ .it_value = { 100, 0 }, .it_interval = { 50, 0 } };
	if (timerfd_settime(rel, 0, &its, NULL))
		fail("settime: %m");
	clock_gettime(CLOCK_REALTIME, &now);
	time_t deadline = now.tv_sec + 200;
	its = (struct itimerspec){ .it_value = { deadline, 0 } };
	if (timerfd_settime(abst, TFD_TIMER_ABSTIME, &its, NULL))
		fail("settime: %m");
	its = (struct itimerspec){ .it_value = { 0, 1000000 } };
	if (timerfd_settime(shot, 0, &its, NULL))
		fail("settime: %m");
	pfd = (struct pollfd){ .fd = shot, .events = POLLIN };
	if (poll(&pfd, 1, 5000) != 1)
		fail("the 1 ms timer did not expire in 5 s");

	test_ready();
	test_wait_sigterm();

	check(timerfd_gettime(rel, &cur) == 0);
	check(cur.it_interval.tv_sec == 50 && cur.it_interval.tv_nsec == 0);
	check(cur.it_value.tv_sec < 100 && (cur.it_value.tv_sec > 0 || cur.it_value.tv_nsec > 0));
	fdinfo(rel, info, sizeof(info));
	check(strstr(info, "clockid: 1\n") && strstr(info, "settime flags: 00\n"));
	check(timerfd_gettime(abst, &cur) == 0);
	clock_gettime(CLOCK_REALTIME, &now);
	check(cur.it_value.tv_sec <= deadline - now.tv_sec && cur.it_value.tv_sec >= deadline - now.tv_sec - 1);
	fdinfo(abst, info, sizeof(info));
	check(strstr(info, "clockid: 0\n") && strstr(info, "settime flags: 01\n"));
	check(fcntl(abst, F_GETFD) == FD_CLOEXEC);
	check(read(shot, &ticks, sizeof(ticks)) == sizeof(ticks) && ticks == 1);
	check(timerfd_gettime(shot, &cur) == 0 && cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec == 0);
	check(timerfd_gettime(off, &cur) == 0 && !cur.it_value.tv_sec && !cur.it_value.tv_nsec);
	fdinfo(off, info, sizeof(info));
	check(strstr(info, "clockid: 7\n") != NULL);
	check(fcntl(off, F_GETFL) & O_NONBLOCK);
	check(read(off, &ticks, sizeof(ticks)) < 0 && errno == EAGAIN);
	pass();
}
