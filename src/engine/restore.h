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

#define RST_PAGE	4096UL
#define RST_TASK_SIZE	0x7ffffffff000UL /* x86_64 4-level user address space */
#define RST_GADGET_LEN	(2 * RST_PAGE)	 /* one RX page + one RW scratch page */
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
	struct remote rt;
	bool seized, rt_ready;
};

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
	struct remote *cur;	/* where rst_call injects: &rt, or a thread's while set up */
	struct rst_thread *thr; /* non-leader threads, pstree order */
	size_t n_thr;
	uint64_t vdso_sc_ip; /* syscall insn in the stub's vdso (moves with it) */
	uint64_t gadget;     /* 0 until mapped */
	int xstate_len;	     /* NT_X86_XSTATE size of the stub (same CPU) */
};

/* ---- restore.c --------------------------------------------------------------------- */
/* Load and validate the images of one live process r->ipid (r->d, r->o set). */
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
int rst_tree_shm_map(struct rst *r, const VmaEntry *v, unsigned long prot);
int rst_tree_shm_add(struct rst *r, const VmaEntry *v);
/* Open in the task the file v->file_id names (a memfd the restorer holds for the tree)
 * through /proc/<restorer>/fd/N: remote fd or -errno (logged). */
long rst_tree_file_open(struct rst *r, const VmaEntry *v, int flags);
/* Close the memfds kept for the mappings in the task (after rst_mm_build). */
int rst_tree_memfds_close(struct rst *r);

/* ---- rst-thread.c: threads other than the leader --------------------------------- */
int rst_threads_load(struct rst *r);
int rst_threads_setup(struct rst *r);
int rst_threads_creds(struct rst *r);
int rst_threads_regs(struct rst *r);
int rst_threads_detach(struct rst *r);
/* Rollback and clean-up (killed: reap the seized threads first). */
void rst_threads_free(struct rst *r, bool killed);
#define RST_GADGET_CLONE    16 /* offset of the thread-creating code in the gadget page */
#define RST_STOP_TIMEOUT_MS 10000

/* Load pagemap-<pid>.img of d (head, then entries; not validated). Free with
 * rst_pagemap_free (also on error: outputs are always set). 0 or -errno (logged). */
int rst_pagemap_load(struct img_dir *d, pid_t pid, PagemapHead **head, PagemapEntry ***pm,
		     size_t *n);
void rst_pagemap_free(PagemapHead *head, PagemapEntry **pm, size_t n);

/* ---- rst-mem.c: address space ---------------------------------------------------- */
/* Validate mm + pagemap images against each other and the vdso layout. */
int rst_mem_validate(struct rst *r);
/* Read the special mappings of pid (the stub has ours) into sp. */
int rst_own_specials(pid_t pid, struct rst_special sp[RST_SP_NR]);
/* Open every older round a PE_PARENT run needs and check its pagemap (before the stub). */
int rst_chain_validate(struct rst *r);
/* Index of the VMA of mm containing addr (VMAs validated sorted), or -1. */
ssize_t rst_vma_find(const MmEntry *mm, uint64_t addr);
/* rst-chain.c: fill PE_PARENT runs from the older rounds (after the top round's pages). */
int rst_pages_from_parents(struct rst *r);
/* Map the gadget in the stub and switch rt to it. */
int rst_gadget_map(struct rst *r);
/* Unmap every stub VMA but gadget and specials; move specials to the dumped place. */
int rst_mm_clear(struct rst *r);
/* Map every dumped VMA, write the pages, set final protections and advice. */
int rst_mm_build(struct rst *r);
/* Open path inside the task (O_CLOEXEC added): remote fd or -errno (logged). */
long rst_open(struct rst *r, const char *path, int flags);
/* Final remote call: munmap the gadget via the vdso syscall instruction. */
int rst_gadget_unmap(struct rst *r);

/* ---- rst-core.c: task and thread state ------------------------------------------- */
/* Validate core image fields (signals, limits, regs, creds, timers). */
int rst_core_validate(struct rst *r);
/* Validate one thread's core (tid must match). */
int rst_thread_validate(const ThreadCoreEntry *t, pid_t tid);
/* Per-thread state injected in r->cur: altstack, name, robust list, tid address, rseq. */
int rst_thread_state(struct rst *r, const ThreadCoreEntry *th);
/* Queue thread-private pending signals of tid (injected from the leader). */
int rst_thread_pending(struct rst *r, pid_t tid, const ThreadCoreEntry *th);
/* Scheduling state of tid (timer slack injected in r->cur). */
int rst_thread_sched(struct rst *r, pid_t tid, const ThreadCoreEntry *th);
/* Final registers, xstate and sigmask of tid (ptrace-stopped). */
int rst_thread_regs(struct rst *r, pid_t tid, const ThreadCoreEntry *th);
/* Unregister the stub's own rseq (inherited from us) before memory changes. */
int rst_rseq_unregister(struct rst *r);
/* Sigactions, altstack, itimers, comm, robust list, tid address, rseq, prctls,
 * pending signals (POSIX timers: rst_posix_timers). Signals must still be blocked (remote_init
 * did). */
int rst_task_state(struct rst *r);
/* Create every POSIX timer with its dumped id (PR_TIMER_CREATE_RESTORE_IDS), then arm
 * the armed ones. After the threads exist: a SIGEV_THREAD_ID timer may aim at any. */
int rst_posix_timers(struct rst *r);
/* Rlimits (prlimit from outside). */
int rst_rlimits(struct rst *r);
/* Nice, policy, affinity, ioprio, timer slack (before creds). */
int rst_sched(struct rst *r);
/* PR_SET_MM_MAP with the dumped mm fields, auxv and exe (after the mappings). */
int rst_mm_fields(struct rst *r);
/* Credentials of the thread r->cur drives (per thread in Linux), last remote step. */
int rst_creds(struct rst *r);
/* Registers (with syscall-restart fix-up), xstate, sigmask. Task in a ptrace-stop. */
int rst_regs(struct rst *r);

/* Remote helpers shared by both files (rst-mem.c). Result or -errno; logs with what. */
long rst_call(struct rst *r, const char *what, long nr, unsigned long a1, unsigned long a2,
	      unsigned long a3, unsigned long a4, unsigned long a5, unsigned long a6);
/* Same without logging a failed remote result (the caller logs with more context). */
long rst_callq(struct rst *r, long nr, unsigned long a1, unsigned long a2, unsigned long a3,
	       unsigned long a4, unsigned long a5, unsigned long a6);
/* Copy len bytes to the scratch page at off; returns remote address or 0 (logged). */
uint64_t rst_put(struct rst *r, size_t off, const void *buf, size_t len);

#endif
