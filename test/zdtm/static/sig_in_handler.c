/*
 * sig_in_handler: checkpointed while running a signal handler on the alternate stack:
 * the SIGUSR1 handler announces readiness and waits for SIGTERM there. After the
 * restore the SIGTERM handler nests, the SIGUSR1 handler returns through sigreturn
 * (the signal frame on the alternate stack must be intact), and the interrupted code
 * continues with its registers and locals, its signal mask and a free alternate stack.
 */
#include <string.h>
#include <sys/mman.h>

#include "zdtmtst.h"

#define ALTSZ (64 * 1024)

static char *alt;
static volatile int in_handler_ok;

static void h(int sig)
{
	char here;
	stack_t cur;
	(void)sig;
	sigaltstack(NULL, &cur);
	if (&here < alt || &here >= alt + ALTSZ || !(cur.ss_flags & SS_ONSTACK))
		return;
	test_ready();
	test_wait_sigterm();
	sigaltstack(NULL, &cur);
	in_handler_ok = (cur.ss_flags & SS_ONSTACK) != 0;
}

int main(int argc, char **argv)
{
	volatile unsigned long locals[8];
	struct sigaction sa;
	sigset_t mask, now;
	stack_t ss;
	int i;

	test_init(argc, argv);
	alt = mmap(NULL, ALTSZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ss.ss_sp = alt;
	ss.ss_size = ALTSZ;
	ss.ss_flags = 0;
	if (alt == MAP_FAILED || sigaltstack(&ss, NULL))
		fail("sigaltstack: %m");
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = h;
	sa.sa_flags = SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGHUP);		/* blocked only while the handler runs */
	sigaction(SIGUSR1, &sa, NULL);
	sigemptyset(&mask);
	sigaddset(&mask, SIGUSR2);
	sigprocmask(SIG_SETMASK, &mask, NULL);
	for (i = 0; i < 8; i++)
		locals[i] = 0x1111111111111111UL * (i + 1);

	raise(SIGUSR1);		/* the checkpoint happens inside the handler */

	if (!in_handler_ok)
		fail("the handler did not run on the alternate stack to the end");
	for (i = 0; i < 8; i++)
		if (locals[i] != 0x1111111111111111UL * (i + 1))
			fail("local %d differs after the handler returned", i);
	sigprocmask(SIG_BLOCK, NULL, &now);
	if (!sigismember(&now, SIGUSR2) || sigismember(&now, SIGHUP) || sigismember(&now, SIGUSR1))
		fail("mask after sigreturn: usr2 %d hup %d usr1 %d", sigismember(&now, SIGUSR2),
		     sigismember(&now, SIGHUP), sigismember(&now, SIGUSR1));
	sigaltstack(NULL, &ss);
	if (ss.ss_flags & SS_ONSTACK)
		fail("still on the alternate stack");
	pass();
}
