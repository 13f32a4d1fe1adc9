/*
 * orphan_subreaper: the test is a child subreaper; its child forks a grandchild and
 * exits, so the grandchild is reparented to the test (inside the tree, not to init).
 * After the restore the grandchild's parent is still the test, and its death signal
 * (set once it was adopted) is still SIGKILL: it reports both through a pipe, and the
 * test reaps it with waitpid().
 *
 * The setup is a handshake, no step depends on timing:
 *   1. the child sends the grandchild's pid and exits; waitpid() on the child returns
 *      only after the kernel reparented the grandchild (exit_notify reparents first);
 *   2. the test checks the new parent in /proc, then writes "adopted" to the grandchild;
 *   3. the grandchild checks getppid() == test, only then sets PR_SET_PDEATHSIG(SIGKILL)
 *      (set earlier, it fires when the first parent exits: the grandchild died before
 *      the dump and the test hung or failed), re-checks getppid() (the test could have
 *      died in between), and acknowledges with its parent and PR_GET_PDEATHSIG;
 *   4. the test calls test_ready() only after that acknowledgement.
 * The grandchild thus dies with the test (as a killed tree must), and also ends on EOF
 * of its go pipe. The test closes its copy of rep's write end, so a grandchild that
 * dies reads as EOF in the test, never as a hang.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "zdtmtst.h"

/* what the grandchild reports: its parent and its death signal */
struct report {
	int ppid;
	int pdeath;
};

/* read one byte, retrying EINTR; 1 when read, 0 on EOF or error */
static int read_byte(int fd)
{
	char ch;
	ssize_t n;
	while ((n = read(fd, &ch, 1)) < 0 && errno == EINTR)
		;
	return n == 1;
}

static int report_send(int fd)
{
	struct report r = { getppid(), -1 };
	if (prctl(PR_GET_PDEATHSIG, &r.pdeath))
		return 1;
	return write(fd, &r, sizeof(r)) == sizeof(r) ? 0 : 1;
}

/* the grandchild: adopted -> pdeath SIGKILL -> ack -> wait for go -> report */
static int grandchild(pid_t test, int adopt, int go, int rep)
{
	if (!read_byte(adopt))
		return 2;	/* the test died before it adopted us */
	if (getppid() != test)
		return report_send(rep) ? 3 : 4;	/* the test sees the wrong parent */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL))
		return 5;
	if (getppid() != test)
		return 6;	/* the test died before the death signal was armed */
	if (report_send(rep))
		return 7;
	read_byte(go);		/* a byte, or EOF if the test is gone */
	return report_send(rep);
}

static void report_check(int fd, pid_t me, const char *when)
{
	struct report r;
	if (read(fd, &r, sizeof(r)) != sizeof(r))
		fail("%s: grandchild did not report", when);
	if (r.ppid != me)
		fail("%s: grandchild's parent is %d, want %d", when, r.ppid, me);
	if (r.pdeath != SIGKILL)
		fail("%s: grandchild's death signal is %d, want %d", when, r.pdeath, SIGKILL);
}

int main(int argc, char **argv)
{
	pid_t me = getpid(), c, g, got;
	int adopt[2], go[2], rep[2], gp[2], st, sub = 0;
	char path[64], buf[512], *p;

	test_init(argc, argv);
	if (prctl(PR_SET_CHILD_SUBREAPER, 1))
		fail("PR_SET_CHILD_SUBREAPER: %m");
	if (pipe(adopt) || pipe(go) || pipe(rep) || pipe(gp))
		fail("pipe: %m");
	c = fork();
	if (c < 0)
		fail("fork: %m");
	if (c == 0) {
		g = fork();
		if (g == 0) {
			close(adopt[1]);
			close(go[1]);
			close(rep[0]);
			_exit(grandchild(me, adopt[0], go[0], rep[1]));
		}
		_exit(g > 0 && write(gp[1], &g, sizeof(g)) == sizeof(g) ? 0 : 1);
	}
	close(rep[1]);		/* a dead grandchild then reads as EOF, not as a hang */
	close(go[0]);
	if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st))
		fail("child: %#x", st);
	if (read(gp[0], &g, sizeof(g)) != sizeof(g))
		fail("no grandchild pid");
	/* the child is reaped: its orphan has been reparented to us already */
	snprintf(path, sizeof(path), "/proc/%d/stat", g);
	if (test_read_file(path, buf, sizeof(buf)) < 0 || !(p = strrchr(buf, ')')) ||
	    sscanf(p + 4, "%d", &got) != 1 || got != me)
		fail("grandchild %d not reparented to the test", g);
	if (write(adopt[1], "a", 1) != 1)
		fail("write: %m");
	report_check(rep[0], me, "before the checkpoint");

	test_ready();
	test_wait_sigterm();

	if (prctl(PR_GET_CHILD_SUBREAPER, &sub) || sub != 1)
		fail("child subreaper flag lost");
	if (write(go[1], "g", 1) != 1)
		fail("write: %m");
	report_check(rep[0], me, "after the checkpoint");
	if (waitpid(g, &st, 0) != g || !WIFEXITED(st) || WEXITSTATUS(st))
		fail("grandchild %d: %#x", g, st);
	pass();
}
