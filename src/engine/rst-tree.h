/*
 * rst-tree.h: private to the restore of a process tree (rst-tree.c, rst-stub.c, rst-par.c,
 * restore.c, rst-thread.c, rst-mem.c). See docs/restore.md "Process trees".
 *
 * Ids: every process has three. The image id (pstree pid, names the image files), the
 * inner id (what the tree sees inside its pid namespace: equal to the image id unless
 * the tree was dumped as PID 1 of its own namespace, then PstreeEntry.ns_*), and the
 * host id (ferry's namespace: ptrace, /proc; equal to the inner id unless the tree is
 * restored into a new pid namespace), learnt from the stubs' reports.
 */
#ifndef FERRY_RST_TREE_H
#define FERRY_RST_TREE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "engine/restore.h"

struct fs_rst_tree;

/* Inner ids of one process and its place in the creation plan. */
struct rst_ids {
	pid_t pid, ppid, pgid, sid; /* inner; 0 = outside the tree's namespace */
	int parent;		    /* index of the parent, -1 for the root */
	bool before_setsid;	    /* forked by its parent before the parent's setsid */
	pid_t inh_sid;		    /* session it inherits at fork (-1: the restorer's) */
	bool files_shared;	    /* created with CLONE_FILES: its table is its owner's */
	int creator;		    /* index of the process that clone3s it (its parent, or
				     * with CLONE_PARENT a sibling in its session) */
};

struct rst_shm {
	uint64_t shmid, start, end, pgoff;
	pid_t npid; /* inner pid of the task that created the object */
};

struct rst_tree {
	const struct ferry_opts *o;
	struct img_dir *d;
	size_t n; /* processes, pstree order (root first) */
	PstreeEntry **pst;
	struct rst *t; /* per process; zombies load no images */
	struct rst_ids *id;
	int **kids;	   /* per process: child indexes, -1 terminated */
	bool pidns;	   /* restore into a new pid namespace */
	bool root_is_init; /* dumped as PID 1 of its own namespace: no ferry init */
	struct fs_rst_tree *fs;
	int rep[2], go[2], hold[2]; /* stub reports; phase barrier; final blocking read */
	int hostproc;		    /* ferry's /proc (O_PATH) once a new one is mounted, else -1 */
	pid_t child;		    /* our direct child: the root or the ferry init (host) */
	pid_t init_pid;		    /* ferry init (host pid), 0 if none */
	size_t n_created;
	pid_t *hpid; /* host pids reported by the stubs (0: not yet) */
	struct rst_shm *shm;
	size_t n_shm;
};

/* Stub -> restorer messages on rep (one write each, < PIPE_BUF: atomic). */
enum { STUB_CREATED = 1, STUB_READY, STUB_ERROR };
struct rst_stub_msg {
	int32_t idx, kind, hpid, err, hold_fd, rep_fd;
	int32_t mfd[RST_MAX_MEMFDS]; /* READY: the task's numbers of rst.mfd[] */
	char text[168];
};

/* restore.c: detach every thread of r, the leader last. */
int rst_detach(struct rst *r);

/* rst-stub.c: create the tree (root or ferry init) from the restorer: our direct child
 * is stored in t->child. 0 or -errno (logged). */
int rst_stub_spawn_root(struct rst_tree *t);

/* rst-tree.c */
/* The inner tid of thread k (0 = leader) of r's process. */
pid_t rst_tree_inner_tid(struct rst *r, size_t k);
/* Host tid of the thread of r's process whose inner tid is ntid, or -errno (logged). */
pid_t rst_tree_host_tid(struct rst *r, pid_t ntid);
/* Index of the process with inner pid pid, or -1. */
ssize_t rst_tree_find(const struct rst_tree *t, pid_t pid);
/* Read the stubs' READY reports (fds they kept), then wait for the CLONE_FILES
 * sharers to block; ready(arg, i) once process i may be seized. 0 or -errno (logged). */
int rst_tree_collect(struct rst_tree *t, void (*ready)(void *arg, size_t i), void *arg);
/* migrate (engine.h hold): the tree is complete (every process built, none run yet):
 * report it and wait for the verdict ('g': let it run; anything else or EOF: roll back,
 * -ECANCELED). 0 at once without o->hold. Releases the warm staging (o->warm) first. */
int rst_tree_hold(struct rst_tree *t);
/* Write --pidfile (the root's host pid), if asked. 0 or -errno (logged). */
int rst_tree_pidfile(struct rst_tree *t);

/* rst-par.c: collect the READY reports, seize every live stub once ready, build it,
 * set its final registers, write the pidfile and detach everything (the root last),
 * on one tracer thread per CPU. On failure every worker has returned: the caller
 * rolls back. 0 or -errno (logged). */
int rst_tree_build(struct rst_tree *t);

#endif
