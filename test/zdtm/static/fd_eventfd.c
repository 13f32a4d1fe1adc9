/*
 * fd_eventfd: three eventfds: a counter at 5, a non-blocking semaphore at 3, a
 * close-on-exec counter at 0; plus a dup of the counter (shared description).
 * After the restore: counts, semaphore semantics, flags and sharing are the same.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "zdtmtst.h"

static int fdinfo_has(int fd, const char *what)
{
	char path[64], buf[4096];
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	if (test_read_file(path, buf, sizeof(buf)) < 0)
		fail("read %s: %m", path);
	return strstr(buf, what) != NULL;
}

int main(int argc, char **argv)
{
	uint64_t v;
	test_init(argc, argv);
	int a = eventfd(5, 0);
	int s = eventfd(3, EFD_SEMAPHORE | EFD_NONBLOCK);
	int z = eventfd(0, EFD_CLOEXEC);
	int d = dup(a);
	if (a < 0 || s < 0 || z < 0 || d < 0)
		fail("eventfd: %m");
	v = 0xfffffffffffffff0ULL;	/* z near its maximum: the count is 64-bit */
	if (write(z, &v, sizeof(v)) != sizeof(v))
		fail("write: %m");

	test_ready();
	test_wait_sigterm();

	check(fdinfo_has(a, "eventfd-count:                5"));
	check(fdinfo_has(s, "eventfd-semaphore: 1"));
	check(!(fcntl(a, F_GETFL) & O_NONBLOCK) && (fcntl(s, F_GETFL) & O_NONBLOCK));
	check(fcntl(z, F_GETFD) == FD_CLOEXEC && fcntl(a, F_GETFD) == 0);
	for (int i = 0; i < 3; i++)
		check(read(s, &v, sizeof(v)) == sizeof(v) && v == 1);
	check(read(s, &v, sizeof(v)) < 0 && errno == EAGAIN);
	check(read(z, &v, sizeof(v)) == sizeof(v) && v == 0xfffffffffffffff0ULL);
	v = 2;
	check(write(d, &v, sizeof(v)) == sizeof(v));	/* the dup shares the counter */
	check(read(a, &v, sizeof(v)) == sizeof(v) && v == 7);
	check(fcntl(a, F_SETFL, O_NONBLOCK) == 0 && (fcntl(d, F_GETFL) & O_NONBLOCK));
	check(read(d, &v, sizeof(v)) < 0 && errno == EAGAIN);
	pass();
}
