/*
 * sig_pending: blocked signals left pending across the checkpoint:
 *  - SIGUSR1 sent to the process (shared pending),
 *  - SIGUSR2 sent to the thread with tgkill (private pending),
 *  - SIGRTMIN+2 queued twice with sigqueue values 111 and 222.
 * After the restore sigpending() shows all three, /proc/self/status puts them in the
 * right set (ShdPnd / SigPnd), and unblocking delivers each: the realtime one twice, in
 * order, with its si_value, si_code SI_QUEUE and our pid.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "zdtmtst.h"

static volatile int got_usr1, got_usr2, nrt;
static volatile int rt_val[4], rt_code[4], rt_pid[4];

static void h(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (sig == SIGUSR1)
		got_usr1++;
	else if (sig == SIGUSR2)
		got_usr2++;
	else if (nrt < 4) {
		rt_val[nrt] = si->si_value.sival_int;
		rt_code[nrt] = si->si_code;
		rt_pid[nrt] = si->si_pid;
		nrt++;
	}
}

static unsigned long long status_mask(const char *key)
{
	char buf[8192], *p;
	if (test_read_file("/proc/self/status", buf, sizeof(buf)) < 0)
		fail("read status: %m");
	p = strstr(buf, key);
	if (!p)
		fail("no %s in status", key);
	return strtoull(p + strlen(key), NULL, 16);
}

#define BIT(s) (1ULL << ((s) - 1))

int main(int argc, char **argv)
{
	int rt = SIGRTMIN + 2, i;
	unsigned long long shd, prv;
	struct sigaction sa;
	sigset_t block, pend;
	union sigval v;

	test_init(argc, argv);
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = h;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	sigaction(rt, &sa, NULL);
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigaddset(&block, SIGUSR2);
	sigaddset(&block, rt);
	sigprocmask(SIG_BLOCK, &block, NULL);
	kill(getpid(), SIGUSR1);
	syscall(SYS_tgkill, getpid(), gettid(), SIGUSR2);
	v.sival_int = 111;
	sigqueue(getpid(), rt, v);
	v.sival_int = 222;
	sigqueue(getpid(), rt, v);
	shd = status_mask("ShdPnd:");
	prv = status_mask("SigPnd:");
	if (shd != (BIT(SIGUSR1) | BIT(rt)) || prv != BIT(SIGUSR2))
		fail("setup: ShdPnd %llx SigPnd %llx", shd, prv);

	test_ready();
	test_wait_sigterm();

	sigpending(&pend);
	if (!sigismember(&pend, SIGUSR1) || !sigismember(&pend, SIGUSR2) || !sigismember(&pend, rt))
		fail("sigpending lost signals: usr1 %d usr2 %d rt %d", sigismember(&pend, SIGUSR1),
		     sigismember(&pend, SIGUSR2), sigismember(&pend, rt));
	shd = status_mask("ShdPnd:");
	prv = status_mask("SigPnd:");
	if (shd != (BIT(SIGUSR1) | BIT(rt)) || prv != BIT(SIGUSR2))
		fail("after restore: ShdPnd %llx (want %llx) SigPnd %llx (want %llx)", shd,
		     BIT(SIGUSR1) | BIT(rt), prv, BIT(SIGUSR2));
	if (got_usr1 || got_usr2 || nrt)
		fail("blocked signals were delivered");
	sigprocmask(SIG_UNBLOCK, &block, NULL);
	if (got_usr1 != 1 || got_usr2 != 1)
		fail("delivered SIGUSR1 %d times, SIGUSR2 %d times", got_usr1, got_usr2);
	if (nrt != 2)
		fail("realtime signal delivered %d times, queued twice", nrt);
	for (i = 0; i < 2; i++)
		if (rt_val[i] != (i ? 222 : 111) || rt_code[i] != SI_QUEUE || rt_pid[i] != getpid())
			fail("rt #%d: value %d code %d pid %d", i, rt_val[i], rt_code[i], rt_pid[i]);
	pass();
}
