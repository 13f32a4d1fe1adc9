/*
 * zombie: two children of the test are zombies at the checkpoint: one exited with
 * status 42, one was killed by SIGKILL. A third child is alive. After the restore both
 * zombies are still zombies (state Z) with their pids, and waitpid() reports exactly
 * their exit statuses; the live child still runs and exits when told.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "zdtmtst.h"

static char state_of(pid_t pid)
{
	char path[64], buf[512], *p;
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if (test_read_file(path, buf, sizeof(buf)) < 0 || !(p = strrchr(buf, ')')))
		return '?';
	return p[2];
}

int main(int argc, char **argv)
{
	pid_t a, b, live;
	siginfo_t si;
	int p[2], st;
	char c;

	test_init(argc, argv);
	if (pipe(p))
		fail("pipe: %m");
	a = fork();
	if (a == 0)
		_exit(42);
	b = fork();
	if (b == 0) {
		for (;;)
			pause();
	}
	live = fork();
	if (live == 0) {
		close(p[1]);
		while (read(p[0], &c, 1) < 0 && errno == EINTR)
			;
		_exit(7);
	}
	close(p[0]);
	kill(b, SIGKILL);
	/* both must be zombies before the checkpoint (WNOWAIT keeps them so) */
	if (waitid(P_PID, a, &si, WEXITED | WNOWAIT) || waitid(P_PID, b, &si, WEXITED | WNOWAIT))
		fail("waitid: %m");

	test_ready();
	test_wait_sigterm();

	if (state_of(a) != 'Z' || state_of(b) != 'Z')
		fail("not zombies after restore: %d is %c, %d is %c", a, state_of(a), b, state_of(b));
	if (waitpid(a, &st, 0) != a)
		fail("waitpid(%d): %m", a);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 42)
		fail("zombie %d: status %#x, want exit 42", a, st);
	if (waitpid(b, &st, 0) != b)
		fail("waitpid(%d): %m", b);
	if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL)
		fail("zombie %d: status %#x, want SIGKILL", b, st);
	if (write(p[1], "x", 1) != 1)
		fail("write: %m");
	if (waitpid(live, &st, 0) != live || !WIFEXITED(st) || WEXITSTATUS(st) != 7)
		fail("live child %d: status %#x", live, st);
	pass();
}
