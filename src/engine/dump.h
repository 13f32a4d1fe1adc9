/*
 * dump.h: private interface between the parts of the dump stage (dump.c drives the
 * stage, dump-core.c writes core-<pid>.img, dump-mem.c writes mm/pagemap/pages).
 *
 * Invariants: everything here runs while the target is seized (every thread in a
 * ptrace-stop, traced by us). Collection of state seen "from outside" (registers,
 * signal queues, /proc files, smaps) happens before the remote session, so no trace of
 * the injection (scratch mapping, blocked signal mask) can leak into the images. Page
 * contents are read after remote_fini, when the target's memory is exactly its own.
 */
#ifndef FERRY_DUMP_H
#define FERRY_DUMP_H

#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

#include "engine/engine.h"
#include "engine/proc.h"
#include "engine/remote.h"
#include "engine/seize.h"
#include "core.pb-c.h"
#include "mm.pb-c.h"

struct img_dir;

/* Per-thread state read from outside, before any injection. */
struct dump_thread {
	struct user_regs_struct regs;
	uint8_t *xsave;			/* malloc'd NT_X86_XSTATE bytes */
	size_t xsave_len;
	uint64_t sigmask;
	uint8_t *pending;		/* n_pending * 128 raw siginfo bytes */
	size_t n_pending;
	uint64_t robust_list, robust_len;
	uint64_t rseq_ptr;		/* 0: no rseq registered */
	uint32_t rseq_size, rseq_sig;
};

/* State read by injected syscalls (filled in dump_core_remote). */
struct dump_remote_state {
	uint64_t brk;
	uint64_t clear_tid_addr;
	int has_sas;
	uint64_t sas_sp, sas_size;
	uint32_t sas_flags;
	uint32_t secbits, dumpable, pdeath_sig, child_subreaper, thp_disabled;
	struct { uint32_t sig; uint64_t handler, flags, restorer, mask; } sigact[64];
	size_t n_sigact;
	struct { uint64_t isec, iusec, vsec, vusec; } itimer[3];
	struct { uint64_t cur, max; } rlim[16];	/* RLIM_NLIMITS */
};

struct dump_ctx {
	const struct ferry_opts *o;
	pid_t pid;
	struct img_dir *d;
	struct seized sz;
	struct remote rt;
	struct proc_stat st;
	struct proc_status status;
	struct proc_vma *vmas;
	size_t n_vmas;
	struct dump_thread th;
	struct dump_remote_state rs;
	uint64_t freeze_time_ns;	/* CLOCK_REALTIME right after the seize */
	uint64_t pages_written;		/* statistics for the log */
	uint64_t bytes_written;
};

/* dump-core.c */
/* Read registers, xsave, sigmask, signal queues, robust list and rseq of the (stopped)
 * task from outside. Must run before remote_init. 0 or -errno (logged). */
int dump_thread_collect(struct dump_ctx *c);
/* Run every injected query (brk, tid address, sigaltstack, sigactions, itimers, prctls)
 * in the current remote session (c->rt initialized, scratch mapped). 0 or -errno. */
int dump_core_remote(struct dump_ctx *c);
/* Write core-<pid>.img from c->th, c->rs and /proc. 0 or -errno (logged). */
int dump_core_write(struct dump_ctx *c);
void dump_thread_free(struct dump_thread *th);

/* dump-mem.c */
/* Check that every VMA of c->vmas can be dumped; the first that cannot fails with one
 * clear error. 0 or -errno (logged). */
int dump_vmas_check(struct dump_ctx *c);
/* Write mm-<pid>.img (needs c->rs.brk). 0 or -errno (logged). */
int dump_mm_write(struct dump_ctx *c);
/* Write pagemap-<pid>.img and pages-<pid>.img. 0 or -errno (logged). */
int dump_pages_write(struct dump_ctx *c);
/* "[vvar]:size,[vvar_vclock]:size,[vdso]:size" in address order; malloc'd or NULL. */
char *dump_vdso_layout(const struct dump_ctx *c);

#endif
