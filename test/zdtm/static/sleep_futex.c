/*
 * sleep_futex: dumped inside FUTEX_WAIT with a long relative timeout (the kernel's
 * restart-block path, like nanosleep). After the restore it must still wait: the futex
 * word is unchanged, SIGTERM ends the wait with EINTR (the handler has no SA_RESTART),
 * and a FUTEX_WAKE on the word afterwards finds no waiter left behind.
 */
#include <errno.h>
#include <linux/futex.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "zdtmtst.h"

static uint32_t word = 0x1234;

int main(int argc, char **argv)
{
	struct timespec to = { .tv_sec = 600 };
	long r;

	test_init(argc, argv);
	test_ready();
	r = syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, 0x1234, &to, NULL, 0);
	if (r != -1 || errno != EINTR)
		fail("futex wait returned %ld (%m), expected EINTR", r);
	if (!test_sigterm)
		fail("woken, but not by SIGTERM");
	if (word != 0x1234)
		fail("futex word %#x", word);
	r = syscall(SYS_futex, &word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
	if (r != 0)
		fail("FUTEX_WAKE woke %ld waiters", r);
	/* a wait with the wrong value must fail at once */
	r = syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, 0x4321, &to, NULL, 0);
	if (r != -1 || errno != EAGAIN)
		fail("futex wait on a changed word: %ld (%m)", r);
	pass();
}
