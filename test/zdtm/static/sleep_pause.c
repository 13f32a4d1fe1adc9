/*
 * sleep_pause: dumped while blocked in pause(). SIGTERM must end it with EINTR.
 */
#include <errno.h>
#include <unistd.h>

#include "zdtmtst.h"

int main(int argc, char **argv)
{
	test_init(argc, argv);
	test_ready();
	if (pause() != -1 || errno != EINTR)
		fail("pause: %m, expected EINTR");
	if (!test_sigterm)
		fail("woken, but not by SIGTERM");
	pass();
}
