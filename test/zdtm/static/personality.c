/*
 * personality: a non-default personality (UNAME26 | ADDR_NO_RANDOMIZE) survives, and
 * still acts: with UNAME26 uname() reports a 2.6.x release.
 */
#include <string.h>
#include <sys/personality.h>
#include <sys/utsname.h>

#include "zdtmtst.h"

int main(int argc, char **argv)
{
	int want, now;
	struct utsname u;

	test_init(argc, argv);
	if (personality(PER_LINUX | UNAME26 | ADDR_NO_RANDOMIZE) < 0)
		fail("personality: %m");
	want = personality(0xffffffff);
	if (want != (PER_LINUX | UNAME26 | ADDR_NO_RANDOMIZE))
		fail("personality %#x after setting", want);

	test_ready();
	test_wait_sigterm();

	now = personality(0xffffffff);
	if (now != want)
		fail("personality %#x, was %#x", now, want);
	if (uname(&u) || strncmp(u.release, "2.6.", 4))
		fail("UNAME26 not in effect: release '%s'", u.release);
	pass();
}
