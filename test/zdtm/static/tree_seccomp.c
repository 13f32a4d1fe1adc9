/*
 * tree_seccomp: a child runs under a seccomp filter (mode 2, allow-all). ferry cannot
 * restore seccomp filters, so the dump must refuse the tree (expect: dump-fail), naming
 * the child, and leave the tree running: after SIGTERM the child is woken and reaped.
 */
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "zdtmtst.h"

int main(int argc, char **argv)
{
	int go[2], rdy[2], st;
	pid_t c;
	char ch;

	test_init(argc, argv);
	if (pipe(go) || pipe(rdy))
		fail("pipe: %m");
	c = fork();
	if (c == 0) {
		struct sock_filter f[] = { BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW) };
		struct sock_fprog prog = { .len = 1, .filter = f };
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
		    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
			_exit(2);
		if (write(rdy[1], "r", 1) != 1)
			_exit(3);
		while (read(go[0], &ch, 1) < 0 && errno == EINTR)
			;
		_exit(0);
	}
	if (read(rdy[0], &ch, 1) != 1)
		fail("child could not install its filter");

	test_ready();
	test_wait_sigterm();

	if (write(go[1], "g", 1) != 1)
		fail("write: %m");
	if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st))
		fail("child %d: %#x", c, st);
	pass();
}
