/*
 * sleep_poll: dumped while blocked in poll() on an empty pipe (no timeout). SIGTERM
 * must end it with EINTR, with no revents set; a second poll with a timeout of 0
 * still reports the pipe empty, and readable once written.
 */
#include <errno.h>
#include <poll.h>
#include <unistd.h>

#include "zdtmtst.h"

int main(int argc, char **argv)
{
	struct pollfd pfd;
	int p[2], r;

	test_init(argc, argv);
	if (pipe(p))
		fail("pipe: %m");
	pfd.fd = p[0];
	pfd.events = POLLIN;
	pfd.revents = 0;
	test_ready();
	r = poll(&pfd, 1, -1);
	if (r != -1 || errno != EINTR)
		fail("poll returned %d (%m), expected EINTR", r);
	if (!test_sigterm)
		fail("woken, but not by SIGTERM");
	if (pfd.revents)
		fail("revents %#x after EINTR", pfd.revents);
	if (poll(&pfd, 1, 0) != 0)
		fail("empty pipe polls readable");
	if (write(p[1], "x", 1) != 1 || poll(&pfd, 1, 0) != 1 || !(pfd.revents & POLLIN))
		fail("written pipe does not poll readable");
	pass();
}
