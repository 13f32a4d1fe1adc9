/*
 * dump.h: private interface between the parts of the dump stage (dump.c drives the
 * stage, dump-tree.c finds, seizes, checks and releases the process tree and writes
 * pstree.img, dump-core.c writes core-<tid>.img, dump-mem.c writes mm/pagemap/pages).
 *
 * Invariants: everything here runs while the whole tree is seized (every thread of every
 * live process in a ptrace-stop, traced by us). For each process, state seen "from
 * outside" (registers of every thread, signal queues, /proc files, smaps) is collected
 * before any remote session in that process, so no trace of an injection (scratch
 * mapping, blocked signal mask) can leak into the images. Remote sessions run one at a
 * time (one thread driven at a time). Page contents are read after the last
 * remote_fini of the process, when its memory is exactly its own.
 */
#ifndef FERRY_DUMP_H
#define FERRY_DUMP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

#include "engine/dirty.h"
#include "engine/engine.h"
#include "engine/proc.h"
#include "engine/remote.h"
#include "engine/seize.h"
#include "core.pb-c.h"
#include "mm.pb-c.h"

struct img_dir;
struct fs_dump;

#define DUMP_AFFINITY_WORDS 16 /* 1024 CPUs */

/* Per-thread state. The first group is read from outside, before any injection; the
 * second by syscalls injected into this very thread (dump_thread_remote). */
struct dump_thread {
	pid_t tid;
	struct user_regs_struct regs;
	uint8_t *xsave; /* malloc'd NT_X86_XSTATE bytes */
	size_t xsave_len;
	uint64_t sigmask;
	uint8_t *pending; /* n_pending * 128 raw siginfo bytes */
	size_t n_pending;
	uint64_t robust_list, robust_len;
	uint64_t rseq_ptr; /* 0: no rseq registered */
	uint32_t rseq_size, rseq_sig;
	char *comm; /* malloc'd /proc/PID/task/TID/comm */
	int nice;
	uint32_t sched_policy, sched_priority;
	uint64_t affinity[DUMP_AFFINITY_WORDS];
	size_t n_affinity; /* words used */
	uint32_t ioprio;
	/* injected into this thread */
	uint64_t clear_tid_addr;
	int has_sas;
	uint64_t sas_sp, sas_size;
	uint32_t sas_flags;
	uint64_t timerslack_ns;
};

/* One POSIX timer: /proc/PID/timers plus injected timer_gettime/timer_getoverrun. */
struct dump_ptimer {
	uint32_t id, clock, notify, signo, notify_tid;
	uint64_t value;
	uint64_t isec, insec, vsec, vnsec;
	uint32_t overrun;
};

/* Process-wide state read by injected syscalls (in the leader; dump_core_remote). */
struct dump_remote_state {
	uint64_t brk;
	uint32_t secbits, dumpable, pdeath_sig, child_subreaper, thp_disabled;
	struct {
		uint32_t sig;
		uint64_t handler, flags, restorer, mask;
	} sigact[64];
	size_t n_sigact;
	struct {
		uint64_t isec, iusec, vsec, vusec;
	} itimer[3];
	struct {
		uint64_t cur, max;
	} rlim[16];		     /* RLIM_NLIMITS */
	struct dump_ptimer *ptimers; /* malloc'd */
	size_t n_ptimers;
};

/* One process of the tree. A zombie has only pid, ppid, st (and exit status in
 * st.exit_code); nothing else is dumped for it. */
struct dump_ctx {
	const struct ferry_opts *o;
	pid_t pid;
	pid_t ppid; /* 0 for the root */
	bool zombie;
	bool seized;
	pid_t files_owner; /* CLONE_FILES: earlier process with the same fd table, or 0 */
	struct img_dir *d;
	struct fs_dump *fsd; /* the tree's fs context (for memfd mapping lookups) */
	struct seized sz;
	struct remote rt;
	struct proc_stat st;
	struct proc_status status;
	struct proc_vma *vmas;
	size_t n_vmas;
	struct dump_thread *th; /* n_th threads, th[0] the leader (= sz.tids order) */
	size_t n_th;
	struct dump_remote_state rs;
	uint64_t freeze_time_ns; /* CLOCK_REALTIME right after the seize */
	uint64_t pages_written;	 /* statistics for the log */
	uint64_t bytes_written;
	/* --pidns: ids in the tree's own pid namespace (0 when not applicable) */
	pid_t ns_pid;
	pid_t *ns_tids; /* malloc'd, n_th entries, or NULL */
	/* Pre-dump chain (predump.c rounds, final dump over --prev-images-dir). With delta,
	 * dump_pages_write stores only pages inside dirty (written since the last round),
	 * and writes PE_PARENT for pages of held (stored by the chain) outside dirty, within
	 * the current VMAs. Shared anonymous and PROT_NONE VMAs are always stored whole.
	 * Both arrays sorted, disjoint, page aligned; not owned. */
	bool delta;
	const struct dirty_range *dirty;
	size_t n_dirty;
	const struct dirty_range *held;
	size_t n_held;
	bool running;		       /* target runs while pages are read: unreadable runs (a VMA
					* unmapped meanwhile) are zero-filled, the tracker reports
					* any new memory there whole next round */
	uint64_t pages_parent;	       /* PE_PARENT pages written (statistics) */
	struct dirty_tracker *tracker; /* final dump: attached tracker, or NULL */
	/* pre-dump --max-bytes: pages left to copy in this round (shared by the tree's
	 * processes), or NULL (no limit); cut: set by dump_pages_write to where this
	 * process's copy stopped (UINT64_MAX: complete), stored in its pagemap */
	uint64_t *budget;
	uint64_t cut;
	bool track_new; /* dump --track-mem --leave-running without a chain: tracker armed
			 * by this dump, its state saved (tracking goes on) */
};

/* The dumped tree: procs in pstree order (root first, parents before children). */
struct dump_tree {
	const struct ferry_opts *o;
	struct dump_ctx *p;
	size_t n, cap;
	bool pidns; /* root is PID 1 of its own pid namespace (inventory.pidns) */
	/* smaps read before the freeze (dump over a pre-dump chain), used where the layout
	 * is still the same once seized (dump.c collect_outside) */
	struct proc_snap *snap;
	size_t n_snap;
};

/* dump-tree.c */
/* Seize the root and every descendant (children of every thread, recursively, re-scanned
 * until stable), recording zombies without seizing them. On failure everything seized
 * is resumed and freed. 0 or -errno (logged). */
int dump_tree_seize(struct dump_tree *t);
/* Refuse, with one line naming process and resource, what restore cannot rebuild:
 * foreign namespaces (but the --pidns case), seccomp, sid/pgid outside the tree, CLONE_VM
 * between processes, CLONE_FS sharing. Records CLONE_FILES sharing (files_owner).
 * Needs stat/status of every process. 0 or -errno (logged). */
int dump_tree_check(struct dump_tree *t);
/* Write pstree.img. 0 or -errno (logged). */
int dump_pstree_write(struct dump_tree *t, struct img_dir *d);
/* Resume (SEIZE_RESUME) or kill (SEIZE_KILL) every seized process; frees all per-process
 * state. Safe on a partially built tree. */
void dump_tree_release(struct dump_tree *t, enum seize_end how);
/* Index of pid in t, or -1. */
ssize_t dump_tree_find(const struct dump_tree *t, pid_t pid);

/* dump-core.c */
/* Read registers, xsave, sigmask, signal queues, robust list, rseq, comm and scheduling
 * state of every thread of c from outside. Must run before any remote_init in c.
 * 0 or -errno (logged). */
int dump_thread_collect(struct dump_ctx *c);
/* Run the injected queries of every thread (one remote session per thread, the leader's
 * also the process-wide ones: brk, sigactions, itimers, POSIX timers, prctls). Each
 * session ends before this returns. 0 or -errno (logged). */
int dump_core_remote(struct dump_ctx *c);
/* Write core-<tid>.img for every thread (TaskCoreEntry in the leader's). 0 or -errno. */
int dump_core_write(struct dump_ctx *c);
/* Free what dump_thread_collect/dump_core_remote allocated. */
void dump_threads_free(struct dump_ctx *c);

/* dump-timers.c */
/* Parse /proc/PID/timers and query every timer's value and overrun in the current
 * remote session (c->rt in the process, scratch mapped) into c->rs.ptimers.
 * 0 or -errno (logged, naming the process and the timer). */
int dump_ptimers(struct dump_ctx *c, uint64_t scratch);

/* dump-mem.c */
/* Check that every VMA of c->vmas can be dumped; the first that cannot fails with one
 * clear error. 0 or -errno (logged). */
int dump_vmas_check(struct dump_ctx *c);
/* Write mm-<pid>.img (needs c->rs.brk, and fs_dump_task done for c when it maps memfds).
 * 0 or -errno (logged). */
int dump_mm_write(struct dump_ctx *c);
/* One VmaEntry from a parsed VMA (strings point into v; no file id for memfds). */
void dump_vma_fill(const struct proc_vma *v, VmaEntry *e);
/* Write pagemap-<pid>.img and pages-<pid>.img. 0 or -errno (logged). */
int dump_pages_write(struct dump_ctx *c);
/* Pages the images directory d holds for pid (PE_PRESENT and PE_PARENT runs of
 * pagemap-<pid>.img) as sorted merged ranges in *out (malloc'd, NULL when *n == 0),
 * and in *from where that round stopped copying (a partial round, --max-bytes; else
 * UINT64_MAX): the next round must treat everything from there on as dirty
 * (dump_dirty_from). -ENOENT (not logged) when d has no pagemap for pid; 0 or -errno
 * (logged). */
int dump_held_ranges(struct img_dir *d, pid_t pid, struct dirty_range **out, size_t *n,
		     uint64_t *from);
/* Sorted disjoint ranges *d[0..*n) united with [from, UINT64_MAX) (from UINT64_MAX:
 * unchanged); *d may be reallocated. 0 or -ENOMEM. */
int dump_dirty_from(struct dirty_range **d, size_t *n, uint64_t from);
/* predump.c, shared with the final dump */
/* Open the previous round o->prev_images_dir (relative to o->images_dir unless
 * absolute): must be a pre-dump round of o->pid. Its path goes to path. 0 or -errno
 * (logged). */
int predump_prev_open(const struct ferry_opts *o, char *path, size_t len, struct img_dir **out);
/* A thread of pid found in restart_syscall with regs r: the syscall number the
 * previous round prev_path recorded for the same tid, rip and arguments. 1 and *nr
 * when found, else 0. */
int predump_sc_lookup(const char *prev_path, pid_t pid, pid_t tid, const struct user_regs_struct *r,
		      uint64_t *nr);
/* Does c share its fd table with another process of t (CLONE_FILES, known after
 * dump_tree_check)? Then a stale tracking fd in it may be another process's kept fd
 * and is never closed (DIRTY_ARM_CLOSE_STALE). */
bool dump_files_shared(const struct dump_tree *t, const struct dump_ctx *c);
/* Save t's state as dirty-<pid>.state in d (listed in the manifest). 0 or -errno. */
int predump_state_store(struct img_dir *d, const struct dirty_tracker *t, pid_t pid);
/* "[vvar]:size,[vvar_vclock]:size,[vdso]:size" in address order; malloc'd or NULL. */
char *dump_vdso_layout(const struct dump_ctx *c);

#endif
