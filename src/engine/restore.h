/*
 * restore.h: private to the restore stage (restore.c, rst-mem.c, rst-core.c).
 *
 * One struct rst carries everything a restore of one process (and its threads) needs:
 * the verified images (loaded whole, except page data which rst-mem.c streams), the
 * stub task we created (child), and the remote-control handle that drives it.
 *
 * Invariants:
 *  - Every value taken from an image is validated by rst_*_validate() before the stub
 *    exists; later steps may rely on those checks (addresses page aligned and below
 *    RST_TASK_SIZE, VMAs sorted and disjoint, pagemap ranges inside anonymous or file
 *    VMAs, signal numbers in 1..64, ...).
 *  - After rst_gadget_map() every injected syscall runs at the gadget (`syscall; int3`)
 *    and rt.scratch is the gadget's RW page (RST_SCRATCH_LEN bytes). Nothing but the
 *    final munmap of the gadget runs elsewhere.
 *  - Functions return 0 or -errno and log once.
 */
#ifndef FERRY_RESTORE_H
#define FERRY_RESTORE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "core.pb-c.h"
#include "mm.pb-c.h"
#include "pagemap.pb-c.h"
#include "pstree.pb-c.h"

#include "engine/engine.h"
#include "engine/remote.h"

struct img_dir;
struct fs_rst;

#define RST_PAGE      4096UL
#define RST_TASK_SIZE 0x7ffffffff000UL /* x86_64 4-level user address space */
/* gadget: one RX code page, one RW scratch page, the batch area (rst-batch.c) */
#define RST_BATCH_MAX	128	     /* remote calls per batch run (64 bytes each) */
#define RST_BATCH_LEN	(64UL << 10) /* table + data */
#define RST_BATCH_DATA	(RST_BATCH_LEN - RST_BATCH_MAX * 64)
#define RST_BATCH_OFF	(2 * RST_PAGE) /* from the gadget's start */
#define RST_GADGET_LEN	(RST_BATCH_OFF + RST_BATCH_LEN)
#define RST_SCRATCH_LEN RST_PAGE
#define RST_MAX_VMAS	65530	 /* default vm.max_map_count */
#define RST_MAX_AUXV	(2 * 64) /* u64 words, >= kernel's AT_VECTOR_SIZE */

/* The three kernel-provided special mappings that we move rather than recreate. */
enum { RST_SP_VVAR, RST_SP_VCLOCK, RST_SP_VDSO, RST_SP_NR };

struct rst_special {
	uint64_t start, end; /* 0/0 when the layout has no such mapping */
};

/* A thread other than the leader: created by an injected clone3, then seized. */
struct rst_thread {
	pid_t tid;	 /* host tid (ptrace, /proc); the image's before creation */
	pid_t itid;	 /* image tid (core-<itid>.img) */
	pid_t ntid;	 /* tid inside the task's pid namespace (clone3 set_tid) */
	CoreEntry *core; /* its core-<tid>.img (thread part) */
	long res;	 /* the result of its clone3 */
	bool seized;
};

struct rst_batch;

#define RST_MAX_THREADS 1024
#define RST_MAX_MEMFDS	16 /* distinct memfds mapped by one process */

struct rst_tree;

struct rst {
	const struct ferry_opts *o;
	struct img_dir *d;     /* shared by the tree (not owned) */
	pid_t pid;	       /* host pid (ptrace, /proc); the image pid until created */
	pid_t ipid;	       /* image pid: names the image files */
	pid_t npid;	       /* pid in the task's own pid namespace (injected syscalls) */
	struct rst_tree *tree; /* the tree it belongs to */
	int hold_fd, rep_fd;   /* the stub's blocking and report fds, closed remotely */
	/* memfds its VMAs map (VmaEntry.file_id): the restorer's fd, inherited and kept by
	 * the stub, whose number there comes back in its READY report (mfd_task) */
	uint32_t mfd_id[RST_MAX_MEMFDS];
	int mfd[RST_MAX_MEMFDS];
	size_t n_mfd;
	bool mfd_task;

	/* images (owned) */
	PstreeEntry *pst;
	CoreEntry *core;
	MmEntry *mm;
	PagemapHead *pm_head;
	PagemapEntry **pm;
	size_t n_pm;
	unsigned char *vma_wr; /* per VMA: pages will be written into it */

	/* layout facts */
	struct rst_special dumped_sp[RST_SP_NR]; /* from mm image */
	struct rst_special own_sp[RST_SP_NR];	 /* ours == the stub's */

	bool traced; /* seized by us */
	struct remote rt;
	bool rt_ready;
	struct remote *cur;	/* where rst_call injects (&rt) */
	struct rst_batch *b;	/* queued remote calls (rst-batch.c), while built */
	long exe_fd;		/* the exe opened in the task for PR_SET_MM_MAP */
	struct rst_thread *thr; /* non-leader threads, pstree order */
	size_t n_thr;
	uint64_t vdso_sc_ip;		  /* syscall insn in the stub's vdso (moves with it) */
	uint64_t gadget;		  /* 0 until mapped */
	const struct rst_warm_proc *warm; /* staged by a warm restorer (rst-warm.h), or NULL */
	int xstate_len;			  /* NT_X86_XSTATE size of the stub (same CPU) */
};

/* ---- restore.c --------------------------------------------------------------------- */
/* Load and validate the images of one live process r->ipid (r->d, r->o set); sets
 * r->warm when the warm staging covers it (its older rounds are then not read). */
int rst_images_load(struct rst *r);
/* Free what rst_images_load and the restore of r allocated (not r->d). */
void rst_free(struct rst *r);
/* Drive the seized stub r->pid through every stage up to (not including) the final
 * registers: memory, mm fields, state, threads, limits, creds, gadget unmapped. */
int rst_build(struct rst *r);
/* Final registers of every thread, then detach them all (the leader last). */
int rst_finish(struct rst *r);
/* Map a shared anonymous VMA of the tree (rst-tree.c): if an earlier task already
 * created the object with v->shmid, map it from there (returns 1); 0 = not known yet
 * (the caller maps a fresh one and calls rst_tree_shm_add). -errno (logged). */
int rst_tree_shm_map(struct rst *r, struct rst_batch *b, const VmaEntry *v, unsigned long prot);
int rst_tree_shm_add(struct rst *r, const VmaEntry *v);
/* Queue the opening in the task of the file v->file_id names (a memfd the restorer
 * holds for the tree: a copy of the fd the stub kept, or /proc/<restorer>/fd/N): the
 * index of the entry whose result is the fd, or -errno (logged). */
int rst_tree_file_open(struct rst *r, struct rst_batch *b, const VmaEntry *v, int flags);
/* Queue the closing of the memfds kept for the mappings (after the mappings). */
int rst_tree_memfds_close(struct rst *r, struct rst_batch *b);

/* ---- rst-batch.c: many remote calls per ptrace stop ------------------------------ */
#define RST_GADGET_BATCH 64  /* offset of the batch interpreter in the gadget's code page */
#define RST_GADGET_HOLD	 208 /* offset of the stub's final code (unmap all, report, block) */
/* Write the gadget's code into page (RST_PAGE bytes): `syscall; int3` at 0, the batch
 * interpreter, the stub's hold code. */
void rst_gadget_code(uint8_t *page);
/* A batch run by r's leader (until rst_batch_on). NULL if out of memory. */
struct rst_batch *rst_batch_new(struct rst *r);
void rst_batch_free(struct rst_batch *b);
/* Run what is queued, then queue for thread tid (host tid, seized and stopped). */
int rst_batch_on(struct rst_batch *b, pid_t tid);
/* Make room for n entries and data bytes of rst_batch_put in the current run
 * (flushing what is queued if needed). 0 or -errno (logged). */
int rst_batch_room(struct rst_batch *b, size_t n, size_t data);
/* Copy len bytes into the run's data area: their remote address, 0 if full (logged). */
uint64_t rst_batch_put(struct rst_batch *b, const void *p, size_t len);
/* Queue one syscall: its entry index (valid until the next flush) or -errno (a full
 * table is flushed first). A failure fails the run with "<what> in task N failed". */
int rst_batch_add(struct rst_batch *b, const char *what, long nr, unsigned long a1,
		  unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5,
		  unsigned long a6);
/* Entry i: its error message; -err is accepted too; a failure only warns; a failure is
 * ignored; the result must equal want; clone (the child parks in pause()); store the
 * result in *out at the flush; argument arg (1..6) is the result of entry from. */
void rst_batch_whatf(struct rst_batch *b, int i, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void rst_batch_allow(struct rst_batch *b, int i, int err);
void rst_batch_warn(struct rst_batch *b, int i);
void rst_batch_ignore(struct rst_batch *b, int i);
void rst_batch_expect(struct rst_batch *b, int i, long want);
void rst_batch_clone(struct rst_batch *b, int i);
void rst_batch_out(struct rst_batch *b, int i, long *out);
void rst_batch_link(struct rst_batch *b, int i, int arg, int from);
/* A value (an fd) made by entry i, usable by later entries of the same run; by later
 * runs too if its val receives the result (rst_batch_out: v must outlive the run). */
struct rst_bval {
	unsigned gen;
	int idx;
	long val;
};
void rst_batch_produce(struct rst_batch *b, int i, struct rst_bval *v);
void rst_batch_use(struct rst_batch *b, int i, int arg, const struct rst_bval *v);
/* Wait (blocking, bounded) for tid, our tracee, to enter a ptrace-stop: its wait status,
 * or -ESRCH (gone), -ETIMEDOUT. Not logged. rst_wait_fini frees this thread's timer. */
int rst_wait_stop(pid_t tid, int timeout_ms);
void rst_wait_fini(void);
/* Run the queued calls in the task and check every result. 0 or -errno (logged). */
int rst_batch_flush(struct rst_batch *b);

/* ---- rst-thread.c: threads other than the leader --------------------------------- */
int rst_threads_load(struct rst *r);
/* Queue the clone3 of every thread (after the address space and task state). */
int rst_threads_clone(struct rst *r, struct rst_batch *b);
/* Seize the threads created and set their own state (a batch run in each). */
int rst_threads_setup(struct rst *r, struct rst_batch *b);
int rst_threads_creds(struct rst *r, struct rst_batch *b);
int rst_threads_regs(struct rst *r);
int rst_threads_detach(struct rst *r);
/* Rollback and clean-up (killed: reap the seized threads first). */
void rst_threads_free(struct rst *r, bool killed);
#define RST_STOP_TIMEOUT_MS 10000

/* Load pagemap-<pid>.img of d (head, then entries; not validated). Free with
 * rst_pagemap_free (also on error: outputs are always set). 0 or -errno (logged). */
int rst_pagemap_load(struct img_dir *d, pid_t pid, PagemapHead **head, PagemapEntry ***pm,
		     size_t *n);
void rst_pagemap_free(PagemapHead *head, PagemapEntry **pm, size_t n);

/* ---- rst-mem.c: address space ---------------------------------------------------- */
/* Validate mm + pagemap images against each other and the vdso layout. */
int rst_mem_validate(struct rst *r);
/* Read the special mappings of pid (the stub has ours) into sp; our own (pid ==
 * getpid()) are read once per process and cached (they never move). */
int rst_own_specials(pid_t pid, struct rst_special sp[RST_SP_NR]);
/* Open every older round a PE_PARENT run needs and check its pagemap (before the stub). */
int rst_chain_validate(struct rst *r);
/* Index of the VMA of mm containing addr (VMAs validated sorted), or -1. */
ssize_t rst_vma_find(const MmEntry *mm, uint64_t addr);
/* A round's pagemap entries in bounds with known flags, PRESENT ones counting what the
 * head says (dir names the round in the error). 0 or -EINVAL (logged). */
int rst_pagemap_check(const PagemapHead *h, PagemapEntry **pm, size_t n, const char *dir);
/* rst-chain.c: write len bytes at addr of r's task: process_vm_writev, /proc/PID/mem for
 * what it may not write (read-only pages). 0 or -errno (logged). */
int rst_write(struct rst *r, uint64_t addr, const void *src, size_t len);
/* The path of d's parent round (its inventory's `parent`, relative to d). 0, -ENOENT
 * (none named) or -ENAMETOOLONG; not logged. */
int rst_parent_path(struct img_dir *d, char *out, size_t len);
/* rst-chain.c: fill PE_PARENT runs from the older rounds (after the top round's pages). */
int rst_pages_from_parents(struct rst *r);
/* Choose r->gadget: free in the dumped layout and in ours (busy: our n mappings, read
 * just before the stubs, copies of us, are created), with margins. 0 or -errno. */
int rst_gadget_place(struct rst *r, const struct rst_special *busy, size_t n);
/* Sort spans by start address. */
void rst_spans_sort(struct rst_special *v, size_t n);
/* The ranges the stub unmaps itself (everything but the gadget, the special
 * mappings and its warm slab): { start, len } pairs, a 0 len last (at most RST_STUB_RANGES pairs).
 */
#define RST_STUB_RANGES 4
void rst_stub_ranges(const struct rst *r, uint64_t out[2 * RST_STUB_RANGES + 2]);
/* Read the mappings of pid (/proc/PID/maps): *out freed by the caller. 0 or -errno. */
int rst_maps_read(pid_t pid, struct rst_special **out, size_t *n);
/* Queue: move the special mappings (ours) to their dumped place. */
int rst_mm_clear(struct rst *r, struct rst_batch *b);
/* Map every dumped VMA with its advice and open the exe (r->exe_fd); runs the batch. */
int rst_vmas_map(struct rst *r, struct rst_batch *b);
/* Write the pages (this round's, then the pre-dump chain's). */
int rst_mm_pages(struct rst *r);
/* Queue the final protections where we added PROT_WRITE. */
int rst_vmas_protect(struct rst *r, struct rst_batch *b);
/* Queue open(path) in the task (O_CLOEXEC added): the entry index or -errno. */
int rst_open(struct rst *r, struct rst_batch *b, const char *path, int flags);
/* Final remote call: munmap the gadget via the vdso syscall instruction. */
int rst_gadget_unmap(struct rst *r);

/* ---- rst-core.c: task and thread state ------------------------------------------- */
/* Validate core image fields (signals, limits, regs, creds, timers). */
int rst_core_validate(struct rst *r);
/* Validate one thread's core (tid must match). */
int rst_thread_validate(const ThreadCoreEntry *t, pid_t tid);
/* Per-thread state, queued in b (run by that thread): altstack, name, robust list, tid
 * address, rseq. */
int rst_thread_state(struct rst *r, struct rst_batch *b, const ThreadCoreEntry *th);
/* Queue thread-private pending signals of the thread b runs in (inner tid). */
int rst_thread_pending(struct rst *r, struct rst_batch *b, pid_t tid, const ThreadCoreEntry *th);
/* Scheduling state of tid from outside; timer slack queued in b. */
int rst_thread_sched(struct rst *r, struct rst_batch *b, pid_t tid, const ThreadCoreEntry *th);
/* Final registers, xstate and sigmask of tid (ptrace-stopped). */
int rst_thread_regs(struct rst *r, pid_t tid, const ThreadCoreEntry *th);
/* Unregister the stub's own rseq (inherited from us) before memory changes. */
int rst_rseq_unregister(struct rst *r, struct rst_batch *b);
/* Sigactions, altstack, itimers, comm, robust list, tid address, rseq, prctls,
 * pending signals (POSIX timers: rst_posix_timers). Signals must still be blocked (remote_init
 * did). */
int rst_task_state(struct rst *r, struct rst_batch *b);
/* Create every POSIX timer with its dumped id (PR_TIMER_CREATE_RESTORE_IDS), then arm
 * the armed ones. After the threads exist: a SIGEV_THREAD_ID timer may aim at any. */
int rst_posix_timers(struct rst *r, struct rst_batch *b);
/* Rlimits (prlimit from outside). */
int rst_rlimits(struct rst *r);
/* Nice, policy, affinity, ioprio, timer slack (before creds). */
int rst_sched(struct rst *r, struct rst_batch *b);
/* PR_SET_MM_MAP with the dumped mm fields, auxv and exe (r->exe_fd, closed). */
int rst_mm_fields(struct rst *r, struct rst_batch *b);
/* Credentials of the thread b runs in (per thread in Linux), last remote step. */
int rst_creds(struct rst *r, struct rst_batch *b);
/* Registers (with syscall-restart fix-up), xstate, sigmask. Task in a ptrace-stop. */
int rst_regs(struct rst *r);

/* Single remote calls at r->cur (before the gadget exists, and its final munmap).
 * Result or -errno; logs with what. */
long rst_call(struct rst *r, const char *what, long nr, unsigned long a1, unsigned long a2,
	      unsigned long a3, unsigned long a4, unsigned long a5, unsigned long a6);

#endif
