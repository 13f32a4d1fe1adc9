/*
 * session_groups: process groups and sessions inside the tree. The root leads its
 * session (the runner's setsid). Child S calls setsid() (a second session leader) and
 * forks G, which makes its own process group inside S's session. Child P makes its own
 * group in the root's session, and child Q joins P's group. After the restore every
 * process checks its sid and pgid and reports through a pipe.
 */
#include <errno.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "zdtmtst.h"

enum { S, G, P, Q, NM };
static int go[NM][2], rep[2], rdy[2];
static pid_t pids[NM];

/* Block until told, then report whether sid and pgid are still what is expected. */
static void __attribute__((noreturn)) wait_check(int idx, pid_t sid, pid_t pgid, pid_t kid)
{
	char c = idx, msg[2];
	int st;
	if (write(rdy[1], &c, 1) != 1)
		_exit(3);
	while (read(go[idx][0], &c, 1) < 0 && errno == EINTR)
		;
	msg[0] = idx;
	msg[1] = getsid(0) != sid ? 1 : getpgid(0) != pgid ? 2 : 0;
	if (write(rep[1], msg, 2) != 2)
		_exit(4);
	if (kid && (waitpid(kid, &st, 0) != kid || !WIFEXITED(st) || WEXITSTATUS(st)))
		_exit(5);
	_exit(0);
}

int main(int argc, char **argv)
{
	pid_t me = getpid(), s, p, q;
	int sp[2], st;
	char c, msg[2];

	test_init(argc, argv);
	if (getsid(0) != me && setsid() < 0)
		fail("setsid: %m");
	if (pipe(rep) || pipe(rdy) || pipe(sp))
		fail("pipe: %m");
	for (int i = 0; i < NM; i++)
		if (pipe(go[i]))
			fail("pipe: %m");
	s = fork();
	if (s == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (setsid() < 0)
			_exit(2);
		pid_t g = fork();
		if (g == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (setpgid(0, 0))
				_exit(2);
			wait_check(G, getppid(), getpid(), 0);
		}
		wait_check(S, getpid(), getpid(), g);
	}
	p = fork();
	if (p == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		setpgid(0, 0);
		wait_check(P, me, getpid(), 0);
	}
	setpgid(p, p);		/* both sides, so Q can join without a race */
	q = fork();
	if (q == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (setpgid(0, p))
			_exit(2);
		wait_check(Q, me, p, 0);
	}
	for (int i = 0; i < NM; i++)
		if (read(rdy[0], &c, 1) != 1)
			fail("a member did not get ready");
	if (getpgid(q) != p || getsid(s) != s)
		fail("setup: pgid(q) %d sid(s) %d", getpgid(q), getsid(s));

	test_ready();
	test_wait_sigterm();

	if (getsid(0) != me || getpgid(0) != me)
		fail("root: sid %d pgid %d", getsid(0), getpgid(0));
	for (int i = 0; i < NM; i++)
		if (write(go[i][1], "g", 1) != 1)
			fail("write: %m");
	for (int i = 0; i < NM; i++) {
		if (read(rep[0], msg, 2) != 2)
			fail("report missing: %m");
		if (msg[1])
			fail("member %d: %s differs", msg[0], msg[1] == 1 ? "sid" : "pgid");
	}
	pid_t kids[3] = { s, p, q };
	for (int i = 0; i < 3; i++)
		if (waitpid(kids[i], &st, 0) != kids[i] || !WIFEXITED(st) || WEXITSTATUS(st))
			fail("child %d ended badly: %#x", kids[i], st);
	(void)pids;
	pass();
}
