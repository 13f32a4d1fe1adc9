/*
 * sigaltstack: an alternate signal stack (not in use at the checkpoint). After the
 * restore sigaltstack() reports the same base, size and flags, and an SA_ONSTACK
 * handler runs on it.
 */
#include <string.h>
#include <sys/mman.h>

#include "zdtmtst.h"

#define SZ (128 * 1024)

static char *alt;
static volatile int ran, onstack;

static void h(int sig)
{
	char here;
	stack_t cur;
	(void)sig;
	ran++;
	sigaltstack(NULL, &cur);
	onstack = &here >= alt && &here < alt + SZ && (cur.ss_flags & SS_ONSTACK);
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	stack_t ss, before, now;

	test_init(argc, argv);
	alt = mmap(NULL, SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (alt == MAP_FAILED)
		fail("mmap: %m");
	ss.ss_sp = alt;
	ss.ss_size = SZ;
	ss.ss_flags = 0;
	if (sigaltstack(&ss, NULL) || sigaltstack(NULL, &before))
		fail("sigaltstack: %m");
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = h;
	sa.sa_flags = SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);

	test_ready();
	test_wait_sigterm();

	if (sigaltstack(NULL, &now))
		fail("sigaltstack: %m");
	if (now.ss_sp != before.ss_sp || now.ss_size != before.ss_size || now.ss_flags != before.ss_flags)
		fail("altstack %p/%zu/%#x, was %p/%zu/%#x", now.ss_sp, now.ss_size, now.ss_flags,
		     before.ss_sp, before.ss_size, before.ss_flags);
	raise(SIGUSR1);
	if (ran != 1 || !onstack)
		fail("handler ran %d times, on the alternate stack: %d", ran, onstack);
	pass();
}
