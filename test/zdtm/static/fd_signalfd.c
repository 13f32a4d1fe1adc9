/*
 * fd_signalfd: a non-blocking signalfd for SIGUSR1|SIGUSR2 and a blocking one for
 * SIGRTMIN+3 (signals blocked). After the restore: the masks (fdinfo sigmask) and flags
 * are the same, nothing is readable, and a signal sent now is read from the right fd.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "zdtmtst.h"

static void sigmask_of(int fd, char *out, size_t len)
{
	char path[64], buf[4096];
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	if (test_read_file(path, buf, sizeof(buf)) < 0)
		fail("read %s: %m", path);
	char *p = strstr(buf, "sigmask:");
	if (!p)
		fail("no sigmask in %s", path);
	snprintf(out, len, "%.*s", (int)strcspn(p, "\n"), p);
}

int main(int argc, char **argv)
{
	sigset_t m1, m2, all;
	struct signalfd_siginfo si;
	char before1[128], before2[128], after[128];
	test_init(argc, argv);
	sigemptyset(&m1);
	sigaddset(&m1, SIGUSR1);
	sigaddset(&m1, SIGUSR2);
	sigemptyset(&m2);
	sigaddset(&m2, SIGRTMIN + 3);
	all = m1;
	sigaddset(&all, SIGRTMIN + 3);
	if (sigprocmask(SIG_BLOCK, &all, NULL))
		fail("sigprocmask: %m");
	int a = signalfd(-1, &m1, SFD_NONBLOCK);
	int b = signalfd(-1, &m2, SFD_CLOEXEC);
	if (a < 0 || b < 0)
		fail("signalfd: %m");
	sigmask_of(a, before1, sizeof(before1));
	sigmask_of(b, before2, sizeof(before2));

	test_ready();
	test_wait_sigterm();

	sigmask_of(a, after, sizeof(after));
	check(!strcmp(after, before1));
	sigmask_of(b, after, sizeof(after));
	check(!strcmp(after, before2));
	check((fcntl(a, F_GETFL) & O_NONBLOCK) && !(fcntl(b, F_GETFL) & O_NONBLOCK));
	check(fcntl(b, F_GETFD) == FD_CLOEXEC);
	check(read(a, &si, sizeof(si)) < 0 && errno == EAGAIN);
	check(kill(getpid(), SIGUSR2) == 0);
	check(read(a, &si, sizeof(si)) == sizeof(si) && si.ssi_signo == SIGUSR2);
	check(kill(getpid(), SIGRTMIN + 3) == 0);
	check(read(b, &si, sizeof(si)) == sizeof(si) && si.ssi_signo == (unsigned)SIGRTMIN + 3);
	pass();
}
