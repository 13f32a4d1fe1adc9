/*
 * fd_devnull: the memory character devices are reopened with their access modes:
 * /dev/null reads EOF, /dev/zero reads zeroes, /dev/full refuses writes with ENOSPC,
 * /dev/urandom gives bytes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "zdtmtst.h"

static int is_dev(int fd, const char *path)
{
	char proc[64], link[256];
	ssize_t n;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	n = readlink(proc, link, sizeof(link) - 1);
	if (n < 0)
		return 0;
	link[n] = '\0';
	return !strcmp(link, path);
}

int main(int argc, char **argv)
{
	int null, zero, full, ur;
	char buf[16], z[16] = { 0 };

	test_init(argc, argv);
	null = open("/dev/null", O_RDWR);
	zero = open("/dev/zero", O_RDONLY);
	full = open("/dev/full", O_WRONLY | O_NONBLOCK);
	ur = open("/dev/urandom", O_RDONLY);
	if (null < 0 || zero < 0 || full < 0 || ur < 0)
		fail("open: %m");

	test_ready();
	test_wait_sigterm();

	check(is_dev(null, "/dev/null") && is_dev(zero, "/dev/zero"));
	check(is_dev(full, "/dev/full") && is_dev(ur, "/dev/urandom"));
	check((fcntl(null, F_GETFL) & O_ACCMODE) == O_RDWR);
	check((fcntl(full, F_GETFL) & O_ACCMODE) == O_WRONLY);
	check(fcntl(full, F_GETFL) & O_NONBLOCK);
	check(read(null, buf, sizeof(buf)) == 0);
	check(write(null, buf, sizeof(buf)) == sizeof(buf));
	memset(buf, 1, sizeof(buf));
	check(read(zero, buf, sizeof(buf)) == sizeof(buf) && !memcmp(buf, z, sizeof(z)));
	check(write(full, "x", 1) < 0 && errno == ENOSPC);
	check(read(ur, buf, sizeof(buf)) == sizeof(buf));
	pass();
}
