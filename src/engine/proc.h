/*
 * proc: parsers for /proc/<pid>/{smaps,stat,status,task,auxv}. Pure readers; they
 * never change the target. Return 0 or -errno; parse errors are -EINVAL (logged once,
 * naming the file). -ESRCH/-ENOENT when the process is gone (not logged).
 */
#ifndef FERRY_PROC_H
#define FERRY_PROC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* VmFlags of smaps we care about. */
#define VMF_GROWSDOWN	 (1u << 0)  /* gd */
#define VMF_SEALED	 (1u << 1)  /* sl: system mapping sealed, cannot move */
#define VMF_DONTDUMP	 (1u << 2)  /* dd */
#define VMF_DONTCOPY	 (1u << 3)  /* dc (MADV_DONTFORK) */
#define VMF_HUGEPAGE	 (1u << 4)  /* hg */
#define VMF_NOHUGEPAGE	 (1u << 5)  /* nh */
#define VMF_MERGEABLE	 (1u << 6)  /* mg */
#define VMF_UFFD_MISSING (1u << 7)  /* um */
#define VMF_UFFD_WP	 (1u << 8)  /* uw */
#define VMF_SHARED	 (1u << 9)  /* sh */
#define VMF_IO		 (1u << 10) /* io: VM_IO/PFNMAP, cannot be dumped */
#define VMF_LOCKED	 (1u << 11) /* lo */
#define VMF_WIPEONFORK	 (1u << 12) /* wf */
#define VMF_NORESERVE	 (1u << 13) /* nr: mapped MAP_NORESERVE (no commit accounting) */

enum proc_vma_kind {
	PVMA_ANON = 0,
	PVMA_FILE,
	PVMA_SHMEM_ANON,
	PVMA_HEAP,
	PVMA_STACK,
	PVMA_VDSO,
	PVMA_VVAR,
	PVMA_VVAR_VCLOCK,
	PVMA_VSYSCALL,
	PVMA_OTHER_SPECIAL,
};

struct proc_vma {
	uint64_t start, end;
	uint64_t pgoff; /* bytes */
	uint32_t prot;	/* PROT_* */
	bool shared;	/* 's' in maps */
	uint32_t dev_major, dev_minor;
	uint64_t ino;
	char *path;   /* malloc'd; NULL for anonymous; "[heap]" etc. for specials */
	bool deleted; /* path ended in " (deleted)" (suffix stripped from path) */
	enum proc_vma_kind kind;
	uint32_t vmflags; /* VMF_* */
};

/* All VMAs of pid from /proc/<pid>/smaps, sorted by address. Free with proc_vmas_free. */
int proc_parse_smaps(pid_t pid, struct proc_vma **out, size_t *n);
void proc_vmas_free(struct proc_vma *v, size_t n);
/* 1 if /proc/<pid>/maps shows exactly the layout of v[] (addresses, prot, offset,
 * file), 0 if not, -errno. Cheap (no page walk, unlike smaps). */
int proc_layout_same(pid_t pid, const struct proc_vma *v, size_t n);

/* The smaps of a tree read while it runs (smaps walks the page tables: ~35 ms per GiB
 * of touched memory here, better spent before a freeze). */
struct proc_snap {
	pid_t pid;
	struct proc_vma *vmas; /* NULL if unreadable (or taken) */
	size_t n;
};
/* root and its descendants (children of each main thread, recursively; at most max
 * processes; threads' children are not listed). 0 or -ENOMEM. */
int proc_snap_tree(pid_t root, struct proc_snap **out, size_t *n, size_t max);
/* The VMAs of pid (ownership moves to the caller; *nv their count), or NULL. */
struct proc_vma *proc_snap_take(struct proc_snap *s, size_t n, pid_t pid, size_t *nv);
void proc_snap_free(struct proc_snap *s, size_t n);

struct proc_stat {
	pid_t pid;
	char comm[32];
	char state;
	pid_t ppid, pgrp, session;
	int tty_nr;
	uint32_t flags; /* PF_* (PF_KTHREAD = 0x00200000) */
	long num_threads;
	uint64_t start_code, end_code, start_stack;
	uint64_t start_data, end_data, start_brk;
	uint64_t arg_start, arg_end, env_start, env_end;
	int exit_signal;
	int exit_code;
};
/* /proc/<pid>/task/<tid>/stat (tid == 0: /proc/<pid>/stat). */
int proc_parse_stat(pid_t pid, pid_t tid, struct proc_stat *st);

struct proc_status {
	uint32_t uid[4], gid[4]; /* real, effective, saved, fs */
	uint32_t groups[256];
	size_t ngroups;
	uint64_t cap_inh, cap_prm, cap_eff, cap_bnd, cap_amb;
	uint32_t umask;
	uint64_t sig_pnd, shd_pnd, sig_blk, sig_ign, sig_cgt;
	pid_t tracer_pid;
	uint32_t no_new_privs;
	uint32_t seccomp;
	long threads;
	pid_t ngid;
	pid_t nspid[8]; /* NSpid: outermost first */
	size_t n_nspid;
};
/* /proc/<pid>/task/<tid>/status (tid == 0: /proc/<pid>/status). */
int proc_parse_status(pid_t pid, pid_t tid, struct proc_status *st);

/* Thread ids of pid (from /proc/<pid>/task), the leader first. Caller frees *tids. */
int proc_list_tids(pid_t pid, pid_t **tids, size_t *n);

/* Raw /proc/<pid>/auxv as u64 pairs (AT_NULL terminated). Caller frees *auxv. */
int proc_read_auxv(pid_t pid, uint64_t **auxv, size_t *n);

#endif
