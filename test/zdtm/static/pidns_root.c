/*
 * pidns_root: a tree that lives in its own pid namespace, the test being its PID 1
 * (the runner starts it under `unshare -pf`, .desc "pidns-root: yes"). It forks A, which
 * forks B. The dump records the inner ids; the restore puts the tree in a new pid
 * namespace with the test as PID 1 again (no ferry init). After the restore: the test
 * is PID 1, A and B report their pids and parents as before, and the test reaps A.
 */
#include <errno.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "zdtmtst.h"

static int go[2], rep[2];

static int report(void)
{
	pid_t ids[2] = { getpid(), getppid() };
	char ch;
	while (read(go[0], &ch, 1) < 0 && errno == EINTR)
		;
	return write(rep[1], ids, sizeof(ids)) == sizeof(ids) ? 0 : 1;
}

static int child_a(void)
{
	pid_t b = fork(), ids[2] = { getpid(), b };
	int st;
	if (b < 0)
		return 10;
	if (b == 0)
		_exit(report());
	if (write(rep[1], ids, sizeof(ids)) != sizeof(ids) || report())
		return 11;
	return waitpid(b, &st, 0) == b && WIFEXITED(st) && !WEXITSTATUS(st) ? 0 : 12;
}

int main(int argc, char **argv)
{
	pid_t a, pre[2], post[2][2];
	int st;

	test_init(argc, argv);
	if (getpid() != 1)
		test_skip("not PID 1 of a pid namespace (run by the zdtm runner)");
	if (pipe(go) || pipe(rep))
		fail("pipe: %m");
	a = fork();
	if (a < 0)
		fail("fork: %m");
	if (a == 0)
		_exit(child_a());
	if (read(rep[0], pre, sizeof(pre)) != sizeof(pre))
		fail("no ids from A");
	check(pre[0] == a && pre[1] > 1);

	test_ready();
	test_wait_sigterm();

	check(getpid() == 1);
	if (write(go[1], "gg", 2) != 2)
		fail("write: %m");
	for (int i = 0; i < 2; i++)
		if (read(rep[0], post[i], sizeof(post[i])) != sizeof(post[i]))
			fail("no report %d", i);
	/* A and B report in any order: A is the one whose parent is 1 */
	int ia = post[0][1] == 1 ? 0 : 1, ib = 1 - ia;
	if (post[ia][0] != a || post[ia][1] != 1)
		fail("A: pid %d parent %d, want %d and 1", post[ia][0], post[ia][1], a);
	if (post[ib][0] != pre[1] || post[ib][1] != a)
		fail("B: pid %d parent %d, want %d and %d", post[ib][0], post[ib][1], pre[1], a);
	if (waitpid(a, &st, 0) != a || !WIFEXITED(st) || WEXITSTATUS(st))
		fail("A ended with %#x", st);
	pass();
}
