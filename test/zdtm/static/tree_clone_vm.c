/*
 * tree_clone_vm: a child created with clone(CLONE_VM) shares the test's memory without
 * being a thread. The restore cannot rebuild that, so the dump must refuse the tree
 * (expect: dump-fail) and leave both processes running untouched: after SIGTERM the
 * test wakes its child through a pipe and reaps it.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "zdtmtst.h"

static int p[2];
static volatile int shared_word;

static int child(void *arg)
{
	char c;
	(void)arg;
	shared_word = 1;
	/* raw syscalls: this child shares the test's TLS (errno) */
	while (syscall(SYS_read, p[0], &c, 1) < 0)
		;
	return 0;
}

int main(int argc, char **argv)
{
	size_t len = 256 << 10;
	char *stack = malloc(len);
	pid_t c;
	int st;

	test_init(argc, argv);
	if (!stack || pipe(p))
		fail("setup: %m");
	c = clone(child, stack + len, CLONE_VM | SIGCHLD, NULL);
	if (c < 0)
		fail("clone: %m");
	while (!shared_word)
		sched_yield();

	test_ready();
	test_wait_sigterm();

	if (write(p[1], "x", 1) != 1)
		fail("write: %m");
	if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st))
		fail("child %d: %#x", c, st);
	pass();
}
