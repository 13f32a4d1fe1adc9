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
	uint64_t t0 = now_ns();
	CHECK(seize_process(c, &s) == 0);
	if (verbose)
		printf("seize of a running 4-thread process: %.1f us\n", (now_ns() - t0) / 1000.0);
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
	/* Inject into a non-leader thread of the group-stopped process: it must stay
	 * group-stopped afterwards. */
	struct remote rt;
	CHECK(s.n_tids == 4 && remote_init(&rt, s.tids[2], 0) == 0);
	CHECK(rcall0(&rt, __NR_getpid) == c && rcall0(&rt, __NR_gettid) == s.tids[2]);
	CHECK(remote_fini(&rt) == 0);
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

static void *short_thread(void *arg)
{
	return arg;
}

/* A process that creates and ends threads all the time: after seize every thread that
 * exists is ours and stopped, none is missed. */
static void test_seize_churn(void)
{
	int ready[2];
	struct seized s;

	CHECK(pipe(ready) == 0);
	pid_t c = fork();
	if (c == 0) {
		(void)write(ready[1], "r", 1);
		for (;;) {
			pthread_t th[4];
			for (int i = 0; i < 4; i++)
				pthread_create(&th[i], NULL, short_thread, NULL);
			for (int i = 0; i < 4; i++)
				pthread_join(th[i], NULL);
		}
	}
	CHECK(read_byte(ready[0], 5000) == 'r');
	for (int round = 0; round < 20; round++) {
		pid_t *tids;
		size_t n;
		if (seize_process(c, &s) != 0) {
			CHECK(!"seize of a thread-churning process");
			break;
		}
		CHECK(proc_list_tids(c, &tids, &n) == 0);
		for (size_t i = 0; i < n; i++) {
			char st = proc_state(c, tids[i]);
			bool ours = false;
			for (size_t k = 0; k < s.n_tids; k++)
				ours |= s.tids[k] == tids[i];
			/* A thread that finished exiting may linger as a zombie entry. */
			CHECK((ours && st == 't') || st == 'Z' || st == 'X' || st == '?');
		}
		free(tids);
		seize_release(&s, SEIZE_RESUME);
	}
	kill(c, SIGKILL);
	wait_child(c, 5000);
	close(ready[0]);
	close(ready[1]);
}

/* ---- injection -------------------------------------------------------------- */

/* Wait until pid is blocked in syscall nr (first field of /proc/pid/syscall). */
static bool wait_in_syscall(pid_t pid, long nr, int timeout_ms)
{
	char path[64], *buf;
	snprintf(path, sizeof(path), "/proc/%d/syscall", pid);
	for (int i = 0; i < timeout_ms; i++) {
		if (read_file(path, &buf, NULL, 4096) == 0) {
			long cur = strtol(buf, NULL, 10);
			free(buf);
			if (cur == nr && proc_state(pid, 0) == 'S')
				return true;
		}
		usleep(1000);
	}
	return false;
}

static bool regs_equal(const struct user_regs_struct *a, const struct user_regs_struct *b)
{
	/* eflags may carry the trap flag the kernel keeps while single-stepping. */
	struct user_regs_struct x = *a, y = *b;
	x.eflags &= ~0x100ull;
	y.eflags &= ~0x100ull;
	return !memcmp(&x, &y, sizeof(x));
}

static bool vma_present(pid_t pid, uint64_t addr)
{
	struct proc_vma *v;
	size_t n;
	bool found = false;
	if (proc_parse_smaps(pid, &v, &n) < 0)
		return true;
	for (size_t i = 0; i < n; i++)
		found |= v[i].start <= addr && addr < v[i].end;
	proc_vmas_free(v, n);
	return found;
}

/* Average cost of n injected getpid calls, in microseconds. */
static double time_getpid(struct remote *rt, pid_t expect, int n)
{
	uint64_t t0 = now_ns();
	for (int i = 0; i < n; i++)
		if (rcall0(rt, __NR_getpid) != expect) {
			CHECK(!"getpid in timing loop");
			return -1;
		}
	return (now_ns() - t0) / 1000.0 / n;
}

/* The common checks on a stopped tracee: getpid, write through a pipe, scratch round
 * trip; then fini restores registers/mask and removes the scratch page. */
static void inject_common(pid_t c, int out_r, int out_w, const char *what)
{
	struct user_regs_struct after;
	struct remote rt;
	uint64_t scratch, a, mask_before = 0, mask_after = 1;
	char msg[] = "hello from inside", got[sizeof(msg)];
	uint8_t pat[1000], back[1000];

	CHECK(ptrace(PTRACE_GETSIGMASK, c, (void *)8, &mask_before) == 0);
	CHECK(remote_init(&rt, c, 0) == 0);
	CHECK(rcall0(&rt, __NR_getpid) == c);
	CHECK(remote_scratch(&rt, 100, &scratch) == 0 && scratch && rt.scratch_len == page_size);
	CHECK(remote_put(&rt, 0, msg, sizeof(msg), &a) == 0 && a == scratch);
	CHECK(rcall3(&rt, __NR_write, out_w, a, sizeof(msg)) == (long)sizeof(msg));
	struct pollfd p = { .fd = out_r, .events = POLLIN };
	CHECK(poll(&p, 1, 5000) == 1 && read(out_r, got, sizeof(got)) == (ssize_t)sizeof(got));
	CHECK(!memcmp(got, msg, sizeof(msg)));
	for (size_t i = 0; i < sizeof(pat); i++)
		pat[i] = (uint8_t)(i * 7 + 3);
	CHECK(remote_put(&rt, 100, pat, sizeof(pat), &a) == 0 && a == scratch + 100);
	CHECK(remote_read(&rt, a, back, sizeof(back)) == 0 && !memcmp(pat, back, sizeof(pat)));
	CHECK(remote_put(&rt, page_size - 10, pat, 11, &a) == -ENOSPC);
	CHECK(remote_read(&rt, 8, back, 8) == -EFAULT);
	/* A failing remote call returns its errno, not an injection error. */
	CHECK(rcall1(&rt, __NR_close, 12345) == -EBADF);
	if (verbose)
		printf("%s: injected getpid (single-step): %.2f us/call over 1000 calls\n", what,
		       time_getpid(&rt, c, 1000));
	CHECK(remote_fini(&rt) == 0);
	CHECK(ptrace(PTRACE_GETREGS, c, 0, &after) == 0 && regs_equal(&after, &rt.saved));
	CHECK(ptrace(PTRACE_GETSIGMASK, c, (void *)8, &mask_after) == 0 && mask_after == mask_before);
	CHECK(!vma_present(c, scratch));
	CHECK(remote_fini(&rt) == 0);	/* twice is harmless */

	if (verbose) {
		uint64_t t0 = now_ns();
		for (int i = 0; i < 100; i++) {
			CHECK(remote_init(&rt, c, 0) == 0);
			CHECK(remote_scratch(&rt, page_size, &scratch) == 0);
			CHECK(remote_fini(&rt) == 0);
		}
		printf("%s: remote_init + remote_scratch + remote_fini: %.1f us\n", what,
		       (now_ns() - t0) / 1000.0 / 100);
	}
}

/* A seized child blocked in clock_nanosleep: it must sleep its full time. */
static void test_inject_nanosleep(void)
{
	int ready[2], out[2];
	struct seized s;

	CHECK(pipe(ready) == 0 && pipe(out) == 0);
	pid_t c = fork();
	if (c == 0) {
		struct timespec ts = { 2, 0 };
		uint64_t t0;
		(void)write(ready[1], "r", 1);
		t0 = now_ns();
		int r = nanosleep(&ts, NULL);
		_exit(r == 0 && now_ns() - t0 >= 2000000000ull ? 0 : 3);
	}
	CHECK(read_byte(ready[0], 5000) == 'r');
	CHECK(wait_in_syscall(c, __NR_clock_nanosleep, 5000));
	CHECK(seize_process(c, &s) == 0);
	struct remote probe;
	CHECK(remote_init(&probe, c, 0) == 0);
	CHECK(probe.saved.orig_rax == __NR_clock_nanosleep && (long)probe.saved.rax == -516);
	CHECK(remote_fini(&probe) == 0);
	inject_common(c, out[0], out[1], "nanosleep child");
	seize_release(&s, SEIZE_RESUME);
	int st = wait_child(c, 5000);
	CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	close(ready[0]); close(ready[1]); close(out[0]); close(out[1]);
}

/* A seized child blocked in read() on a pipe: after release it reads what we write.
 * A SIGSTOP sent while we inject is not lost: the child ends up group-stopped. */
static void test_inject_read(void)
{
	int ready[2], out[2], in[2];
	struct seized s;
	struct remote rt;

	CHECK(pipe(ready) == 0 && pipe(out) == 0 && pipe(in) == 0);
	pid_t c = fork();
	if (c == 0) {
		char buf[64] = "";
		(void)write(ready[1], "r", 1);
		ssize_t n = read(in[0], buf, sizeof(buf));
		_exit(n == 7 && !memcmp(buf, "data123", 7) ? 0 : 4);
	}
	CHECK(read_byte(ready[0], 5000) == 'r');
	CHECK(wait_in_syscall(c, __NR_read, 5000));
	CHECK(seize_process(c, &s) == 0);
	inject_common(c, out[0], out[1], "read child");

	CHECK(remote_init(&rt, c, 0) == 0);
	CHECK(rt.saved.orig_rax == __NR_read && (long)rt.saved.rax == -512);
	kill(c, SIGSTOP);
	CHECK(rcall0(&rt, __NR_getpid) == c);
	CHECK(rt.stashed_sigs == (1ull << (SIGSTOP - 1)));
	CHECK(rcall0(&rt, __NR_getpid) == c);
	CHECK(remote_fini(&rt) == 0);
	seize_release(&s, SEIZE_RESUME);
	CHECK(wait_state(c, 'T', 2000));
	kill(c, SIGCONT);
	CHECK(write(in[1], "data123", 7) == 7);
	int st = wait_child(c, 5000);
	CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	close(ready[0]); close(ready[1]); close(out[0]); close(out[1]); close(in[0]); close(in[1]);
}

static volatile int traps;
static void on_trap(int sig)
{
	traps++;
}

/* A child with its own SIGTRAP handler: our traps never reach it nor reset it, and a
 * SIGTRAP sent to it while we inject is delivered once after release. */
static void test_inject_sigtrap(void)
{
	int ready[2], in[2];
	struct seized s;
	struct remote rt;

	CHECK(pipe(ready) == 0 && pipe(in) == 0);
	pid_t c = fork();
	if (c == 0) {
		struct sigaction sa = { .sa_handler = on_trap, .sa_flags = SA_RESTART }, now;
		char buf[8];
		sigaction(SIGTRAP, &sa, NULL);
		(void)write(ready[1], "r", 1);
		ssize_t n = read(in[0], buf, sizeof(buf));
		sigaction(SIGTRAP, NULL, &now);
		_exit(n == 2 && now.sa_handler == on_trap ? 10 + traps : 1);
	}
	CHECK(read_byte(ready[0], 5000) == 'r');
	CHECK(wait_in_syscall(c, __NR_read, 5000));
	CHECK(seize_process(c, &s) == 0);
	CHECK(remote_init(&rt, c, 0) == 0);
	for (int i = 0; i < 10; i++)
		CHECK(rcall0(&rt, __NR_getpid) == c);
	kill(c, SIGTRAP);
	for (int i = 0; i < 10; i++)
		CHECK(rcall0(&rt, __NR_getpid) == c);
	CHECK(rt.stashed_sigs == (1ull << (SIGTRAP - 1)));
	CHECK(remote_fini(&rt) == 0);
	seize_release(&s, SEIZE_RESUME);
	CHECK(write(in[1], "ok", 2) == 2);
	int st = wait_child(c, 5000);
	CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 11);
	close(ready[0]); close(ready[1]); close(in[0]); close(in[1]);
}

/* The restorer's kind of tracee: PTRACE_TRACEME + SIGSTOP. Also drives a
 * `syscall; int3` gadget we map into it, and unmaps that gadget through itself. */
static void test_inject_traceme(void)
{
	static const uint8_t code[] = { 0x0f, 0x05, 0xcc };
	int done[2], out[2];
	struct remote rt, g;
	uint64_t got = 0;

	CHECK(pipe(done) == 0 && pipe(out) == 0);
	pid_t c = fork();
	if (c == 0) {
		ptrace(PTRACE_TRACEME, 0, 0, 0);
		kill(getpid(), SIGSTOP);
		(void)write(done[1], "c", 1);
		_exit(0);
	}
	int st = ptrace_wait_stop(c, 5000);
	CHECK(st >= 0 && WIFSTOPPED(st) && WSTOPSIG(st) == SIGSTOP);
	inject_common(c, out[0], out[1], "traceme child");

	CHECK(remote_init(&rt, c, 0) == 0);
	long m = rcall6(&rt, __NR_mmap, 0, page_size, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(m > 0);
	CHECK(remote_write(&rt, m, code, sizeof(code)) == 0);
	CHECK(rcall3(&rt, __NR_mprotect, m, page_size, PROT_READ | PROT_EXEC) == 0);
	/* /proc/pid/mem writes reach read-only mappings too. */
	CHECK(remote_write(&rt, m + 100, "xyz", 3) == 0 && remote_read(&rt, m + 100, &got, 3) == 0);
	CHECK(!memcmp(&got, "xyz", 3));
	CHECK(remote_fini(&rt) == 0);

	CHECK(remote_init(&g, c, m) == 0 && g.sc_int3);
	CHECK(rcall0(&g, __NR_getpid) == c);
	if (verbose)
		printf("traceme child: injected getpid (syscall;int3 + PTRACE_CONT): %.2f us/call over 1000 calls\n",
		       time_getpid(&g, c, 1000));
	CHECK(rcall2(&g, __NR_munmap, m, page_size) == 0);
	CHECK(remote_fini(&g) == 0);
	CHECK(!vma_present(c, m));

	CHECK(ptrace(PTRACE_DETACH, c, 0, 0) == 0);
	CHECK(read_byte(done[0], 5000) == 'c');
	st = wait_child(c, 5000);
	CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	close(done[0]); close(done[1]); close(out[0]); close(out[1]);
}

/* A killed task: calls fail with -ESRCH, fini does not hang. */
static void test_inject_killed(void)
{
	struct seized s;
	struct remote rt;
	int ready[2];

	CHECK(pipe(ready) == 0);
	pid_t c = fork();
	if (c == 0) {
		(void)write(ready[1], "r", 1);
		pause();
		_exit(0);
	}
	CHECK(read_byte(ready[0], 5000) == 'r');
	CHECK(seize_process(c, &s) == 0);
	CHECK(remote_init(&rt, c, 0) == 0);
	kill(c, SIGKILL);
	CHECK(rcall0(&rt, __NR_getpid) == -ESRCH);
	(void)remote_fini(&rt);
	seize_release(&s, SEIZE_RESUME);
	int st = wait_child(c, 5000);
	CHECK(st == -1 || (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL));
	close(ready[0]); close(ready[1]);
}

static void test_inject(void)
{
	test_inject_nanosleep();
	test_inject_read();
	test_inject_sigtrap();
	test_inject_traceme();
	test_inject_killed();
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
	test_seize_churn();
	test_inject();
	if (failures) {
		printf("test_remote: %d checks failed\n", failures);
		return 1;
	}
	printf("test_remote: PASS\n");
	return 0;
}
