/*
 * rst-batch: many injected system calls per ptrace stop.
 *
 * One injected syscall costs a whole ptrace round trip (set registers, resume, the
 * task runs one instruction, traps, the tracer wakes up, reads registers): ~20 us on
 * this VM, against 1-5 us for the syscall itself. A restored process needs ~60-90 of
 * them, so the restorer queues them in a table instead and lets a tiny interpreter
 * in the gadget's code page run the whole table in one go, ending on its int3.
 *
 * Remote layout (gadget + RST_BATCH_OFF, RW): RST_BATCH_MAX entries of 8 words
 * { nr, a1..a6, flags }, then RST_BATCH_DATA bytes of data the entries point to
 * (structs, paths, siginfos). Flags: bit 0 = go on when it fails, bit 1 = a clone:
 * the child (result 0) parks in a pause() loop, bits 8-15 = argument (1..6) to replace
 * with the result of the entry `bits 16-31` places earlier (an fd opened in the same
 * run). The interpreter stores each result over the entry's flags word and stops at
 * the first failing entry whose bit 0 is clear. Registers on entry: rdi = table,
 * rsi = count; on the int3: rbx = the entry it stopped at, r12 = entries left.
 *
 * The gadget (RX code page, RW scratch page, RW batch area) is mapped by the stub
 * itself at the address the restorer chose (rst_gadget_place), with the code below;
 * the stub's last act runs the `hold` code there (rst-stub.c).
 *
 * Invariants: an entry never unmaps or moves the gadget (those calls stay single
 * remote syscalls at the vdso, remote.h); a run's table and data are written just
 * before it (one mm: the leader's /proc/PID/mem serves every thread); data and the
 * entries using it are queued in the same run (rst_batch_room first); results are
 * checked and logged (one line, the entry's `what`) by rst_batch_flush.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>

#include "common/log.h"
#include "common/util.h"
#include "engine/restore.h"

#define BATCH_TRIES 64 /* foreign stops tolerated per run */

/* The interpreter (offsets from RST_GADGET_BATCH), assembled from:
 *   00 mov rbx, rdi ; mov r12, rsi
 *   06 next: test r12, r12 ; jz done
 *      mov r13, [rbx+56]                         flags
 *      mov rax, r13 ; shr rax, 8 ; and eax, 0xff ; jz nopatch
 *      mov rcx, r13 ; shr rcx, 16 ; and ecx, 0xffff ; shl rcx, 6
 *      mov rdx, rbx ; sub rdx, rcx ; mov rdx, [rdx+56] ; mov [rbx+rax*8], rdx
 *   3c nopatch: mov rax, [rbx] ; mov rdi/rsi/rdx/r10/r8/r9, [rbx+8..48] ; syscall
 *      test r13b, 2 ; jz store ; test rax, rax ; jz park
 *   64 store: mov [rbx+56], rax ; cmp rax, -4095 ; jb ok ; test r13b, 1 ; jz done
 *   76 ok: add rbx, 64 ; dec r12 ; jmp next
 *   7f done: int3
 *   80 park: mov eax, __NR_pause ; syscall ; jmp park
 */
static const uint8_t interp[] = {
	0x48, 0x89, 0xfb, 0x49, 0x89, 0xf4, 0x4d, 0x85, 0xe4, 0x74, 0x74, 0x4c, 0x8b, 0x6b,
	0x38, 0x4c, 0x89, 0xe8, 0x48, 0xc1, 0xe8, 0x08, 0x25, 0xff, 0x00, 0x00, 0x00, 0x74,
	0x1f, 0x4c, 0x89, 0xe9, 0x48, 0xc1, 0xe9, 0x10, 0x81, 0xe1, 0xff, 0xff, 0x00, 0x00,
	0x48, 0xc1, 0xe1, 0x06, 0x48, 0x89, 0xda, 0x48, 0x29, 0xca, 0x48, 0x8b, 0x52, 0x38,
	0x48, 0x89, 0x14, 0xc3, 0x48, 0x8b, 0x03, 0x48, 0x8b, 0x7b, 0x08, 0x48, 0x8b, 0x73,
	0x10, 0x48, 0x8b, 0x53, 0x18, 0x4c, 0x8b, 0x53, 0x20, 0x4c, 0x8b, 0x43, 0x28, 0x4c,
	0x8b, 0x4b, 0x30, 0x0f, 0x05, 0x41, 0xf6, 0xc5, 0x02, 0x74, 0x05, 0x48, 0x85, 0xc0,
	0x74, 0x1c, 0x48, 0x89, 0x43, 0x38, 0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff, 0x72, 0x06,
	0x41, 0xf6, 0xc5, 0x01, 0x74, 0x09, 0x48, 0x83, 0xc3, 0x40, 0x49, 0xff, 0xcc, 0xeb,
	0x87, 0xcc, 0xb8, 0x22, 0x00, 0x00, 0x00, 0x0f, 0x05, 0xeb, 0xf7,
};
#define INTERP_TRAP 0x80 /* rip after the int3 */

#define F_MAYFAIL 1ULL
#define F_CLONE	  2ULL

enum { K_ERR, K_WARN, K_IGNORE };

struct bmeta {
	char what[96];
	int kind;
	long ok_err; /* K_ERR: this -errno is fine too (0: none) */
	bool expect; /* the result must equal want */
	long want;
	long *out; /* where to store the result, or NULL */
};

struct rst_batch {
	struct rst *r;
	pid_t tid; /* host tid of the thread that runs it */
	unsigned gen;
	size_t n, dlen;
	uint64_t ent[RST_BATCH_MAX][8];
	struct bmeta meta[RST_BATCH_MAX];
	uint8_t data[RST_BATCH_DATA];
};

/* The stub's last code (rst-stub.c), at RST_GADGET_HOLD: it removes every mapping of
 * its own, reports READY and blocks; nothing of it is left but the gadget.
 *   rdi = ranges { start, len } (len 0 ends), rsi = report fd (< 0: none),
 *   rdx = message (also the read buffer), rcx = its length, r8 = hold fd (< 0: pause)
 *   00 mov rbx, rdi ; mov r12, rsi ; mov r13, rdx ; mov r14, rcx ; mov r15, r8
 *   0f unmap: mov rsi, [rbx+8] ; test rsi, rsi ; jz report
 *      mov rdi, [rbx] ; mov eax, __NR_munmap ; syscall ; add rbx, 16 ; jmp unmap
 *   28 report: test r12, r12 ; js hold
 *      mov eax, __NR_write ; mov rdi, r12 ; mov rsi, r13 ; mov rdx, r14 ; syscall
 *   3d hold: test r15, r15 ; js park
 *      xor eax, eax (read) ; mov rdi, r15 ; mov rsi, r13 ; mov edx, 1 ; syscall
 *      cmp rax, -EINTR ; je hold ; test rax, rax ; jg hold
 *      mov eax, __NR_exit_group ; mov edi, 1 ; syscall       (EOF: ferry is gone)
 *   68 park: mov eax, __NR_pause ; syscall ; jmp park
 */
static const uint8_t hold[] = {
	0x48, 0x89, 0xfb, 0x49, 0x89, 0xf4, 0x49, 0x89, 0xd5, 0x49, 0x89, 0xce, 0x4d, 0x89, 0xc7,
	0x48, 0x8b, 0x73, 0x08, 0x48, 0x85, 0xf6, 0x74, 0x10, 0x48, 0x8b, 0x3b, 0xb8, 0x0b, 0x00,
	0x00, 0x00, 0x0f, 0x05, 0x48, 0x83, 0xc3, 0x10, 0xeb, 0xe7, 0x4d, 0x85, 0xe4, 0x78, 0x10,
	0xb8, 0x01, 0x00, 0x00, 0x00, 0x4c, 0x89, 0xe7, 0x4c, 0x89, 0xee, 0x4c, 0x89, 0xf2, 0x0f,
	0x05, 0x4d, 0x85, 0xff, 0x78, 0x26, 0x31, 0xc0, 0x4c, 0x89, 0xff, 0x4c, 0x89, 0xee, 0xba,
	0x01, 0x00, 0x00, 0x00, 0x0f, 0x05, 0x48, 0x83, 0xf8, 0xfc, 0x74, 0xe6, 0x48, 0x85, 0xc0,
	0x7f, 0xe1, 0xb8, 0xe7, 0x00, 0x00, 0x00, 0xbf, 0x01, 0x00, 0x00, 0x00, 0x0f, 0x05, 0xb8,
	0x22, 0x00, 0x00, 0x00, 0x0f, 0x05, 0xeb, 0xf7,
};

void rst_gadget_code(uint8_t *page)
{
	static const uint8_t sc[] = { 0x0f, 0x05, 0xcc }; /* syscall; int3 */
	_Static_assert(RST_GADGET_BATCH + sizeof(interp) <= RST_GADGET_HOLD &&
			       RST_GADGET_HOLD + sizeof(hold) <= RST_PAGE,
		       "gadget code does not fit");
	memcpy(page, sc, sizeof(sc));
	memcpy(page + RST_GADGET_BATCH, interp, sizeof(interp));
	memcpy(page + RST_GADGET_HOLD, hold, sizeof(hold));
}

struct rst_batch *rst_batch_new(struct rst *r)
{
	struct rst_batch *b = malloc(sizeof(*b));
	if (b) {
		b->r = r;
		b->tid = r->pid;
		b->gen = 0;
		b->n = b->dlen = 0;
	}
	return b;
}

void rst_batch_free(struct rst_batch *b)
{
	free(b);
}

int rst_batch_on(struct rst_batch *b, pid_t tid)
{
	int e = rst_batch_flush(b);
	b->tid = tid;
	return e;
}

int rst_batch_room(struct rst_batch *b, size_t n, size_t data)
{
	if (n > RST_BATCH_MAX || data > RST_BATCH_DATA - 8 * n)
		return pr_err_ret(-E2BIG, "%zu remote calls with %zu bytes do not fit a batch", n,
				  data);
	if (b->n + n > RST_BATCH_MAX || b->dlen + data + 8 * n > RST_BATCH_DATA)
		return rst_batch_flush(b);
	return 0;
}

uint64_t rst_batch_put(struct rst_batch *b, const void *p, size_t len)
{
	size_t off = (b->dlen + 7) & ~(size_t)7;
	if (off + len > RST_BATCH_DATA) {
		pr_err("batch data area full (%zu + %zu bytes)", off, len);
		return 0;
	}
	memcpy(b->data + off, p, len);
	b->dlen = off + len;
	return b->r->gadget + RST_BATCH_OFF + RST_BATCH_MAX * 64 + off;
}

int rst_batch_add(struct rst_batch *b, const char *what, long nr, unsigned long a1,
		  unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5,
		  unsigned long a6)
{
	int e = b->n == RST_BATCH_MAX ? rst_batch_flush(b) : 0; /* data: rst_batch_room */
	if (e < 0)
		return e;
	size_t i = b->n++;
	uint64_t *x = b->ent[i];
	x[0] = (uint64_t)nr;
	x[1] = a1, x[2] = a2, x[3] = a3, x[4] = a4, x[5] = a5, x[6] = a6;
	x[7] = 0;
	b->meta[i] = (struct bmeta){ .kind = K_ERR };
	snprintf(b->meta[i].what, sizeof(b->meta[i].what), "%s", what);
	return (int)i;
}

void rst_batch_whatf(struct rst_batch *b, int i, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(b->meta[i].what, sizeof(b->meta[i].what), fmt, ap);
	va_end(ap);
}

void rst_batch_allow(struct rst_batch *b, int i, int err)
{
	b->ent[i][7] |= F_MAYFAIL;
	b->meta[i].ok_err = -err;
}

void rst_batch_warn(struct rst_batch *b, int i)
{
	b->ent[i][7] |= F_MAYFAIL;
	b->meta[i].kind = K_WARN;
}

void rst_batch_ignore(struct rst_batch *b, int i)
{
	b->ent[i][7] |= F_MAYFAIL;
	b->meta[i].kind = K_IGNORE;
}

void rst_batch_expect(struct rst_batch *b, int i, long want)
{
	b->meta[i].expect = true;
	b->meta[i].want = want;
}

void rst_batch_clone(struct rst_batch *b, int i)
{
	b->ent[i][7] |= F_CLONE;
}

void rst_batch_out(struct rst_batch *b, int i, long *out)
{
	b->meta[i].out = out;
}

void rst_batch_link(struct rst_batch *b, int i, int arg, int from)
{
	b->ent[i][7] |= (uint64_t)arg << 8 | (uint64_t)(i - from) << 16;
}

void rst_batch_produce(struct rst_batch *b, int i, struct rst_bval *v)
{
	v->gen = b->gen;
	v->idx = i;
	v->val = -1;
}

void rst_batch_use(struct rst_batch *b, int i, int arg, const struct rst_bval *v)
{
	if (v->gen == b->gen && v->idx < i)
		rst_batch_link(b, i, arg, v->idx); /* made in this run */
	else
		b->ent[i][arg] = (uint64_t)v->val; /* made by an earlier run */
}

/* ---- waiting for a tracee's stop ---------------------------------------------------
 * A blocking waitpid, woken by the kernel the moment the tracee stops: no spinning
 * that takes the CPU from the tracee, no sleep that overshoots. The bound is a
 * one-shot timer of this thread (SIGEV_THREAD_ID) whose signal, caught without
 * SA_RESTART, interrupts the wait; it is armed only while waiting. */
#define WAKE_SIG (SIGRTMIN + 5)

static __thread timer_t wake_timer;
static __thread bool wake_ready;

static void wake_handler(int sig)
{
	(void)sig;
}

static void wake_install(void)
{
	struct sigaction sa = { .sa_handler = wake_handler }; /* no SA_RESTART */
	sigemptyset(&sa.sa_mask);
	sigaction(WAKE_SIG, &sa, NULL);
}

static int wake_init(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	struct sigevent ev = { .sigev_notify = SIGEV_THREAD_ID, .sigev_signo = WAKE_SIG };
	if (wake_ready)
		return 0;
	pthread_once(&once, wake_install);
	ev._sigev_un._tid = gettid();
	if (timer_create(CLOCK_MONOTONIC, &ev, &wake_timer) < 0)
		return pr_perror("timer_create");
	wake_ready = true;
	return 0;
}

void rst_wait_fini(void)
{
	if (wake_ready)
		timer_delete(wake_timer);
	wake_ready = false;
}

int rst_wait_stop(pid_t tid, int timeout_ms)
{
	struct itimerspec arm = { .it_value = { timeout_ms / 1000,
						(timeout_ms % 1000) * 1000000L } },
			  off = { 0 };
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000ULL;
	int st, e;
	pid_t r = waitpid(tid, &st, __WALL | WNOHANG);

	if (r == 0) {
		if ((e = wake_init()) < 0)
			return e;
		timer_settime(wake_timer, 0, &arm, NULL);
		while ((r = waitpid(tid, &st, __WALL)) < 0 && errno == EINTR)
			if (now_ns() >= deadline)
				break;
		e = errno;
		timer_settime(wake_timer, 0, &off, NULL);
		errno = e;
	}
	if (r == tid)
		return WIFSTOPPED(st) ? st : -ESRCH; /* exited or killed */
	if (r < 0 && errno == EINTR)
		return -ETIMEDOUT;
	return r < 0 && errno != ECHILD ? -errno : -ESRCH;
}

/* Resume tid at the interpreter and wait for its int3 (foreign stops are absorbed:
 * event stops resumed, signals suppressed as remote.c does). *done = entries run. */
static int batch_run(struct rst_batch *b, uint64_t tab, size_t *done)
{
	struct user_regs_struct regs;
	uint64_t trap = b->r->gadget + RST_GADGET_BATCH + INTERP_TRAP;
	pid_t tid = b->tid;

	if (ptrace(PTRACE_GETREGS, tid, 0, &regs) < 0)
		return pr_perror("task %d: PTRACE_GETREGS", tid);
	regs.rip = b->r->gadget + RST_GADGET_BATCH;
	regs.rdi = tab;
	regs.rsi = b->n;
	regs.orig_rax = (uint64_t)-1; /* no syscall restart on the way out of this stop */
	if (ptrace(PTRACE_SETREGS, tid, 0, &regs) < 0)
		return pr_perror("task %d: PTRACE_SETREGS", tid);
	for (int k = 0; k < BATCH_TRIES; k++) {
		if (ptrace(PTRACE_CONT, tid, 0, 0) < 0)
			return pr_perror("task %d: PTRACE_CONT", tid);
		int st = rst_wait_stop(tid, RST_STOP_TIMEOUT_MS);
		if (st < 0)
			return pr_err_ret(st, "task %d: remote calls did not finish", tid);
		if (st >> 16 || WSTOPSIG(st) != SIGTRAP) {
			pr_debug("task %d: stop %#x during remote calls, suppressed", tid, st);
			continue;
		}
		if (ptrace(PTRACE_GETREGS, tid, 0, &regs) < 0)
			return pr_perror("task %d: PTRACE_GETREGS", tid);
		if (regs.rip != trap)
			continue; /* a stale kernel trap, or someone's SIGTRAP */
		*done = (regs.rbx - tab) / 64;
		return *done <= b->n ? 0 : pr_err_ret(-EFAULT, "task %d: batch overran", tid);
	}
	return pr_err_ret(-EAGAIN, "task %d: too many foreign stops during remote calls", tid);
}

/* Check the results of the entries run (and of the one it stopped at, entry `done`):
 * the first real failure is logged and returned. */
static int batch_check(struct rst_batch *b, size_t done)
{
	int e = 0;
	for (size_t i = 0; i < done; i++) {
		long res = (long)b->ent[i][7];
		const struct bmeta *m = &b->meta[i];
		bool err = res < 0 && res >= -4095;
		if (m->out)
			*m->out = res;
		if (e < 0 || (err && (m->kind == K_IGNORE || res == m->ok_err)))
			continue;
		if (err && m->kind == K_WARN)
			pr_warn("%s in task %d failed: %s", m->what, b->tid, strerror((int)-res));
		else if (err)
			e = pr_err_ret((int)res, "%s in task %d failed", m->what, b->tid);
		else if (m->expect && res != m->want)
			e = pr_err_ret(-EFAULT, "%s in task %d returned %ld, wanted %ld", m->what,
				       b->tid, res, m->want);
	}
	if (e == 0 && done < b->n) {
		/* the interpreter stopped at entry `done`: its result is stored */
		long res = (long)b->ent[done][7];
		if (res < 0 && res >= -4095)
			e = pr_err_ret((int)res, "%s in task %d failed", b->meta[done].what,
				       b->tid);
		else
			e = pr_err_ret(-EIO, "task %d stopped after %zu of %zu remote calls",
				       b->tid, done, b->n);
	}
	return e;
}

int rst_batch_flush(struct rst_batch *b)
{
	struct rst *r = b->r;
	uint64_t tab = r->gadget + RST_BATCH_OFF;
	size_t n = b->n, done = 0;
	uint64_t t0 = now_ns();
	int e;

	if (!n)
		return 0;
	b->n = 0;
	b->gen++;
	e = remote_write(&r->rt, tab, b->ent, n * 64);
	if (e == 0 && b->dlen)
		e = remote_write(&r->rt, tab + RST_BATCH_MAX * 64, b->data, b->dlen);
	b->dlen = 0;
	if (e < 0)
		return pr_err_ret(e, "cannot write remote calls into task %d", r->pid);
	b->n = n;
	/* the results, and the entry it stopped at (its result tells why) */
	if ((e = batch_run(b, tab, &done)) == 0 &&
	    (e = remote_read(&r->rt, tab, b->ent, (done < n ? done + 1 : done) * 64)) < 0)
		pr_err("cannot read the results of remote calls in task %d: %s", r->pid,
		       strerror(-e));
	if (e == 0)
		e = batch_check(b, done);
	pr_trace("task %d: %zu remote calls in one run (%llu us): %d", b->tid, done,
		 (unsigned long long)(now_ns() - t0) / 1000, e);
	b->n = 0;
	return e;
}
