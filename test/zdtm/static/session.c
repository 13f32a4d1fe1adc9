/*
 * session: the test is the leader of its own session and process group (the runner
 * starts it with setsid). After the restore getsid() and getpgid() still return its pid.
 */
#include <unistd.h>

#include "zdtmtst.h"

int main(int argc, char **argv)
{
	pid_t me = getpid();

	test_init(argc, argv);
	if (getsid(0) != me) {
		/* run by hand: make it so */
		if (setsid() < 0)
			fail("setsid: %m");
	}
	if (getsid(0) != me || getpgid(0) != me)
		fail("setup: sid %d pgid %d pid %d", getsid(0), getpgid(0), me);

	test_ready();
	test_wait_sigterm();

	if (getpid() != me)
		fail("pid %d, was %d", getpid(), me);
	if (getsid(0) != me || getpgid(0) != me)
		fail("sid %d pgid %d, expected %d", getsid(0), getpgid(0), me);
	pass();
}
