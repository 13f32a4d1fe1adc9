/*
 * fd_dup_shared: three fds of one open file description (dup, dup3 O_CLOEXEC, a high
 * F_DUPFD) share offset and status flags after the restore; a second open of the same
 * file is a different description with its own offset.
 */
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "zdtmtst.h"

static void work_path(char *buf, size_t len, const char *name)
{
	const char *r = getenv("ZDTM_READY");
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s", r ? r : "/tmp/x");
	snprintf(buf, len, "%s/fd_dup_shared.%d.%s", dirname(dir), getpid(), name);
}

int main(int argc, char **argv)
{
	char p[4200];
	int a, b, c, d, other;

	test_init(argc, argv);
	work_path(p, sizeof(p), "f");
	a = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (a < 0 || write(a, "0123456789abcdef", 16) != 16 || lseek(a, 4, SEEK_SET) != 4)
		fail("create %s: %m", p);
	b = dup(a);
	c = 40;
	if (dup3(a, c, O_CLOEXEC) != c)
		fail("dup3: %m");
	d = fcntl(a, F_DUPFD, 200);
	other = open(p, O_RDONLY);
	if (b < 0 || d < 0 || other < 0 || lseek(other, 9, SEEK_SET) != 9)
		fail("setup: %m");

	test_ready();
	test_wait_sigterm();

	check(lseek(a, 0, SEEK_CUR) == 4 && lseek(b, 0, SEEK_CUR) == 4);
	check(lseek(c, 0, SEEK_CUR) == 4 && lseek(d, 0, SEEK_CUR) == 4);
	check(lseek(other, 0, SEEK_CUR) == 9);
	check(lseek(b, 11, SEEK_SET) == 11);
	check(lseek(a, 0, SEEK_CUR) == 11 && lseek(c, 0, SEEK_CUR) == 11);
	check(lseek(d, 0, SEEK_CUR) == 11);
	check(lseek(other, 0, SEEK_CUR) == 9);
	check(fcntl(c, F_SETFL, O_APPEND) == 0);	/* status flags are shared too */
	check(fcntl(d, F_GETFL) & O_APPEND);
	check(!(fcntl(other, F_GETFL) & O_APPEND));
	check(fcntl(c, F_GETFD) == FD_CLOEXEC && fcntl(a, F_GETFD) == 0 && fcntl(d, F_GETFD) == 0);
	unlink(p);
	pass();
}
