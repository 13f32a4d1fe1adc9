/*
 * sleep_read: dumped while blocked in read() on an empty pipe whose write end it holds
 * itself. SIGTERM must interrupt the read with EINTR; the pipe still works after.
 */
#include <errno.h>
#include <unistd.h>

#include "zdtmtst.h"

int main(int argc, char **argv)
{
	int p[2];
	char c;
	ssize_t n;

	test_init(argc, argv);
	if (pipe(p))
		fail("pipe: %m");
	test_ready();
	n = read(p[0], &c, 1);
	if (n >= 0)
		fail("read returned %zd on an empty pipe", n);
	if (errno != EINTR)
		fail("read: %m, expected EINTR");
	if (!test_sigterm)
		fail("interrupted, but not by SIGTERM");
	if (write(p[1], "z", 1) != 1 || read(p[0], &c, 1) != 1 || c != 'z')
		fail("the pipe does not work after the restore: %m");
	pass();
}
