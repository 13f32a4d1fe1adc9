/*
 * subreaper: run a command as a child subreaper.
 *
 *   subreaper CMD [ARG...]
 *
 * Sets PR_SET_CHILD_SUBREAPER on itself, then execs CMD. The flag survives execve, so
 * CMD (the zdtm runner, a bash script) becomes the reaper of every orphan below it:
 * processes restored with `ferry restore -d` are reparented to it and reaped by it,
 * so their PIDs are freed promptly and their exit can be observed. PID 1 of our VMs
 * is not a dependable reaper.
 *
 * Exit status: that of CMD, or 127 when it cannot be started (message on stderr).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: subreaper CMD [ARG...]\n");
		return 127;
	}
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0) {
		fprintf(stderr, "subreaper: PR_SET_CHILD_SUBREAPER: %s\n", strerror(errno));
		return 127;
	}
	execvp(argv[1], argv + 1);
	fprintf(stderr, "subreaper: cannot run '%s': %s\n", argv[1], strerror(errno));
	return 127;
}
