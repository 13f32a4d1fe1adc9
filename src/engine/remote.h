/*
 * remote: execute system calls inside a ptrace-stopped task, and read/write its memory.
 *
 * The task must be a ptrace tracee of the caller (PTRACE_SEIZE'd and stopped by
 * PTRACE_INTERRUPT on the dump side, or PTRACE_TRACEME'd and stopped by SIGSTOP on the
 * restore side) and in a ptrace-stop. Injection: save the registers, point rip at a
 * `syscall` instruction that exists in the target (one found in its [vdso], or a
 * gadget page `syscall; int3` that the restorer maps), load the syscall number and
 * arguments, set orig_rax = -1 (so the kernel's syscall-restart logic does not touch
 * our state when the task was stopped inside an interrupted syscall), run exactly that
 * instruction and stop again (PTRACE_SYSCALL entry+exit, or single step), read rax.
 *
 * Invariants:
 *  - remote_init blocks every signal of the thread (PTRACE_SETSIGMASK) so that no
 *    signal is delivered while we inject; remote_fini restores the exact registers
 *    and signal mask saved by remote_init, and unmaps the scratch page if one was mapped.
 *    After remote_fini the task is in the same ptrace-stop with the same state as
 *    before remote_init (an interrupted syscall then restarts by itself on resume).
 *  - Nothing is left in the target: the scratch mapping is removed by remote_fini on
 *    every path, including errors.
 *  - If the task dies under us (SIGKILL), calls return -ESRCH.
 *
 * Cost: ~20 us per injected syscall on this VM.
 */
#ifndef FERRY_REMOTE_H
#define FERRY_REMOTE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

struct remote {
	pid_t tid;	/* the thread we drive */
	int memfd;	/* /proc/<tid>/mem, O_RDWR */
	uint64_t sc_ip; /* address of a 0f 05 (syscall) in the target */
	bool sc_int3;	/* sc_ip is followed by int3 (0xcc): one PTRACE_CONT suffices */
	struct user_regs_struct saved; /* registers at remote_init */
	uint64_t saved_sigmask;
	uint64_t scratch; /* remote address of the scratch area, 0 if none */
	size_t scratch_len;
	bool inited;
	uint64_t stashed_sigs; /* signals (bit sig-1) that arrived while injecting:
				* suppressed then, re-sent to the process by remote_fini */
};

/* Find a `syscall` (0f 05) instruction in the [vdso] of task tid. 0 or -errno (logged). */
int remote_find_syscall(pid_t tid, uint64_t *ip);

/* Prepare to drive tid (stopped tracee). sc_ip: a syscall instruction in its address
 * space (0 = find one in its vdso). Saves regs and sigmask, blocks all signals.
 * 0 or -errno (logged). */
int remote_init(struct remote *rt, pid_t tid, uint64_t sc_ip);

/* Restore regs and sigmask saved by remote_init, remove the scratch page, close the
 * mem fd. Safe to call on a zeroed or failed struct. 0 or -errno (logged). */
int remote_fini(struct remote *rt);

/* Like remote_fini but keep the current registers (the restorer sets its own final
 * registers): only closes the mem fd and forgets the scratch page. */
void remote_forget(struct remote *rt);

/* Execute syscall nr with up to six arguments in the target. On success returns 0 and
 * stores the raw result (may be a negative errno of the remote call) in *res. Returns
 * -errno (logged) only when the injection itself failed (task gone, ptrace error). */
int remote_syscall(struct remote *rt, long *res, long nr, unsigned long a1, unsigned long a2,
		   unsigned long a3, unsigned long a4, unsigned long a5, unsigned long a6);

/* Convenience: result of the remote call, or the injection error. Negative values in
 * [-4095, -1] are errnos either way (the caller cannot tell which, and need not). */
long remote_call(struct remote *rt, long nr, unsigned long a1, unsigned long a2, unsigned long a3,
		 unsigned long a4, unsigned long a5, unsigned long a6);
#define rcall0(rt, nr)	     remote_call(rt, nr, 0, 0, 0, 0, 0, 0)
#define rcall1(rt, nr, a)    remote_call(rt, nr, (unsigned long)(a), 0, 0, 0, 0, 0)
#define rcall2(rt, nr, a, b) remote_call(rt, nr, (unsigned long)(a), (unsigned long)(b), 0, 0, 0, 0)
#define rcall3(rt, nr, a, b, c)                                                                    \
	remote_call(rt, nr, (unsigned long)(a), (unsigned long)(b), (unsigned long)(c), 0, 0, 0)
#define rcall4(rt, nr, a, b, c, d)                                                                 \
	remote_call(rt, nr, (unsigned long)(a), (unsigned long)(b), (unsigned long)(c),            \
		    (unsigned long)(d), 0, 0)
#define rcall6(rt, nr, a, b, c, d, e, f)                                                           \
	remote_call(rt, nr, (unsigned long)(a), (unsigned long)(b), (unsigned long)(c),            \
		    (unsigned long)(d), (unsigned long)(e), (unsigned long)(f))

/* Map (once) a private anonymous read/write scratch area of at least len bytes in the
 * target (injected mmap) and return its address. Removed by remote_fini. */
int remote_scratch(struct remote *rt, size_t len, uint64_t *addr);

/* Read/write target memory through /proc/<tid>/mem (works on read-only and PROT_NONE
 * mappings too). Exactly len bytes or -errno (-EFAULT on unmapped memory; not logged). */
int remote_read(struct remote *rt, uint64_t addr, void *buf, size_t len);
int remote_write(struct remote *rt, uint64_t addr, const void *buf, size_t len);

/* Copy a string/struct into the scratch area at offset off and return its remote address
 * in *addr. 0 or -errno. */
int remote_put(struct remote *rt, size_t off, const void *buf, size_t len, uint64_t *addr);

/* Wait for tid to enter a ptrace-stop (waitpid __WALL), with a bound. Returns the
 * wait status (>= 0) or -errno (-ESRCH if it died, -ETIMEDOUT). */
int ptrace_wait_stop(pid_t tid, int timeout_ms);

#endif
