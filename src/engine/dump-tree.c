/*
 * dump-tree: the process tree of `ferry dump -t PID`: find, freeze, check, describe
 * (pstree.img) and finally release every process of it.
 *
 * Seizing: the root first, then, breadth first, the children of every thread of every
 * seized process (/proc/PID/task/TID/children), read only once that process is frozen,
 * so it cannot add more. Passes repeat until one finds nothing new (a process reparented
 * into the tree meanwhile is caught). Zombies (state Z) are recorded, never seized: a
 * zombie stays one while its parent is frozen. The array order is pstree order: root
 * first, every parent before its children.
 *
 * Checks (before anything is read by injection): namespaces equal to ferry's, except a
 * root that is PID 1 of a pid namespace holding only the tree (--pidns); no seccomp; every
 * sid and pgid names a process of the tree or is the root's own; no memory (CLONE_VM) or
 * fs_struct (CLONE_FS) shared between processes; fd tables shared by CLONE_FILES are
 * recorded (files_owner). Every refusal is one line naming the process and the resource.
 *
 * Typical workload: up to a few hundred processes; kcmp pairs are O(n^2) syscalls (~1 us).
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "engine/dump.h"
#include "img/img.h"
#include "pstree.pb-c.h"

#define TREE_MAX_ROUNDS 64
#define KCMP_VM_	1
#define KCMP_FILES_	2
#define KCMP_FS_	3

ssize_t dump_tree_find(const struct dump_tree *t, pid_t pid)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->p[i].pid == pid)
			return i;
	return -1;
}

static int tree_add(struct dump_tree *t, pid_t pid, pid_t ppid)
{
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		struct dump_ctx *n = realloc(t->p, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		t->p = n;
		t->cap = cap;
	}
	struct dump_ctx *c = &t->p[t->n++];
	memset(c, 0, sizeof(*c));
	c->o = t->o;
	c->pid = pid;
	c->ppid = ppid;
	c->sz.pidfd = -1;
	return 0;
}

/* Seize process i of the tree, or record it as a zombie. A child that vanished (its
 * parent reaps automatically) is dropped: returns 1. 0 or -errno (logged). */
static int tree_seize_one(struct dump_tree *t, size_t i)
{
	struct dump_ctx *c = &t->p[i];
	int r = proc_parse_stat(c->pid, 0, &c->st);
	if (r == -ESRCH || r == -ENOENT)
		return 1;
	if (r < 0)
		return r;
	if (c->st.state == 'Z' && c->st.num_threads <= 1) {
		c->zombie = true;
		pr_debug("tree: %d is a zombie (child of %d), wait status %#x", c->pid, c->ppid,
			 c->st.exit_code);
		return 0;
	}
	r = seize_process(c->pid, &c->sz);
	if (r < 0)
		return r;
	c->seized = true;
	return 0;
}

/* Add to the tree the children of every thread of process i not in it yet (t->p may
 * move: only indexes are kept). */
static int tree_scan_children(struct dump_tree *t, size_t i, bool *found)
{
	pid_t me = t->p[i].pid;

	for (size_t k = 0; k < t->p[i].sz.n_tids; k++) {
		char path[64], *buf, *p, *end;
		size_t len;
		snprintf(path, sizeof(path), "/proc/%d/task/%d/children", me, t->p[i].sz.tids[k]);
		int r = read_file(path, &buf, &len, 4u << 20);
		if (r < 0)
			return pr_err_ret(r, "cannot read %s", path);
		for (p = buf;; p = end) {
			long kid = strtol(p, &end, 10);
			if (end == p)
				break;
			if (kid <= 0 || dump_tree_find(t, kid) >= 0)
				continue;
			if ((r = tree_add(t, kid, me)) < 0)
				break;
			*found = true;
		}
		free(buf);
		if (r < 0)
			return r;
	}
	return 0;
}

int dump_tree_seize(struct dump_tree *t)
{
	size_t seized_upto = 0;
	bool found = true;
	int r = tree_add(t, t->o->pid, 0);

	if (r == 0) {
		r = seize_process(t->o->pid, &t->p[0].sz);
		t->p[0].seized = r == 0;
		if (r == 0)
			r = proc_parse_stat(t->o->pid, 0, &t->p[0].st);
	}
	for (int round = 0; r == 0 && found; round++) {
		if (round == TREE_MAX_ROUNDS) {
			r = pr_err_ret(-EAGAIN, "tree of %d: the process list never settled",
				       t->o->pid);
			break;
		}
		found = false;
		/* seize what the last pass added, then list the children of everyone */
		for (size_t i = seized_upto; r == 0 && i < t->n;) {
			if (i == 0) {
				i++;
				continue;
			}
			r = tree_seize_one(t, i);
			if (r == 1) {
				memmove(&t->p[i], &t->p[i + 1], (t->n - i - 1) * sizeof(*t->p));
				t->n--;
				r = 0;
				continue;
			}
			i++;
		}
		seized_upto = t->n;
		for (size_t i = 0; r == 0 && i < t->n; i++)
			if (!t->p[i].zombie)
				r = tree_scan_children(t, i, &found);
	}
	if (r < 0) {
		dump_tree_release(t, SEIZE_RESUME);
		return r;
	}
	pr_debug("tree of %d: %zu processes", t->o->pid, t->n);
	return 0;
}

/* ---- checks ---------------------------------------------------------------------- */

static int ns_ino(pid_t pid, const char *ns, uint64_t *ino)
{
	char path[64];
	struct stat sb;
	*ino = 0;
	if (pid)
		snprintf(path, sizeof(path), "/proc/%d/ns/%s", pid, ns);
	else
		snprintf(path, sizeof(path), "/proc/self/ns/%s", ns);
	if (stat(path, &sb) < 0)
		return -errno;
	*ino = sb.st_ino;
	return 0;
}

/* Every namespace of c equal to ferry's; the pid namespace to pidns_ino. */
static int check_ns(const struct dump_ctx *c, uint64_t pidns_ino)
{
	static const char *const kinds[] = { "net",  "mnt",    "ipc",  "uts",
					     "user", "cgroup", "time", "time_for_children" };
	uint64_t a, b;
	int r;

	for (size_t k = 0; k < ARRAY_SIZE(kinds); k++) {
		if (ns_ino(0, kinds[k], &b) < 0 || (r = ns_ino(c->pid, kinds[k], &a)) == -ENOENT)
			continue; /* namespace kind absent from this kernel */
		if (r < 0)
			return pr_err_ret(r, "cannot read /proc/%d/ns/%s", c->pid, kinds[k]);
		if (a != b)
			goto refuse;
		continue;
	refuse:
		pr_err("process %d ('%s') is in another %s namespace than ferry: not supported",
		       c->pid, c->st.comm, kinds[k]);
		return -EOPNOTSUPP;
	}
	if ((r = ns_ino(c->pid, "pid", &a)) < 0 || (r = ns_ino(c->pid, "pid_for_children", &b)) < 0)
		return pr_err_ret(r, "cannot read /proc/%d/ns/pid", c->pid);
	if (a != pidns_ino) {
		pr_err("process %d ('%s') is in another pid namespace than the tree's root: not "
		       "supported",
		       c->pid, c->st.comm);
		return -EOPNOTSUPP;
	}
	if (b != pidns_ino) {
		pr_err("process %d ('%s') creates its children in another pid namespace (unshare "
		       "CLONE_NEWPID): not supported",
		       c->pid, c->st.comm);
		return -EOPNOTSUPP;
	}
	return 0;
}

/* Every live process of /proc in namespace ino must be in the tree. */
static int check_pidns_closed(const struct dump_tree *t, uint64_t ino)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int r = 0;
	if (!d)
		return pr_perror("cannot list /proc");
	while (r == 0 && (e = readdir(d))) {
		int pid;
		uint64_t a;
		if (parse_int(e->d_name, &pid) < 0 || ns_ino(pid, "pid", &a) < 0 || a != ino)
			continue;
		if (dump_tree_find(t, pid) < 0) {
			pr_err("process %d is in the pid namespace of the tree's root %d but not "
			       "in the tree: not supported",
			       pid, t->o->pid);
			r = -EOPNOTSUPP;
		}
	}
	closedir(d);
	return r;
}

/* Namespaces of every process; detects the --pidns case. */
static int check_namespaces(struct dump_tree *t)
{
	struct dump_ctx *root = &t->p[0];
	uint64_t mine = 0, theirs = 0;
	int r;

	if ((r = ns_ino(0, "pid", &mine)) < 0 || (r = ns_ino(root->pid, "pid", &theirs)) < 0)
		return pr_err_ret(r, "cannot read the pid namespace of %d", root->pid);
	if (theirs != mine) {
		struct proc_status self;
		if ((r = proc_parse_status(getpid(), 0, &self)) < 0)
			return r;
		if (root->status.n_nspid != self.n_nspid + 1 ||
		    root->status.nspid[root->status.n_nspid - 1] != 1) {
			pr_err("process %d ('%s') lives in another pid namespace and is not its "
			       "init: not supported",
			       root->pid, root->st.comm);
			return -EOPNOTSUPP;
		}
		t->pidns = true;
		if ((r = check_pidns_closed(t, theirs)) < 0)
			return r;
	}
	for (size_t i = 0; i < t->n; i++)
		if (!t->p[i].zombie && (r = check_ns(&t->p[i], theirs)) < 0)
			return r;
	return 0;
}

/* sid and pgid of a non-root process: in the tree, or the root's own. */
static int check_ids(const struct dump_tree *t, const struct dump_ctx *c)
{
	const struct dump_ctx *root = &t->p[0];
	const char *what = NULL;
	pid_t id = 0;

	if (c->st.session != root->st.session && dump_tree_find(t, c->st.session) < 0)
		what = "session", id = c->st.session;
	else if (c->st.pgrp != root->st.pgrp && dump_tree_find(t, c->st.pgrp) < 0)
		what = "process group", id = c->st.pgrp;
	if (!what)
		return 0;
	pr_err("process %d ('%s'): its %s %d is led by a process outside the dumped tree: not "
	       "supported",
	       c->pid, c->st.comm, what, id);
	return -EOPNOTSUPP;
}

static long kcmp(pid_t a, pid_t b, int type)
{
	return syscall(SYS_kcmp, a, b, type, 0, 0);
}

/* Memory and fs_struct must not be shared between processes; fd tables are recorded. */
static int check_sharing(struct dump_tree *t)
{
	for (size_t j = 1; j < t->n; j++) {
		struct dump_ctx *b = &t->p[j];
		for (size_t i = 0; !b->zombie && i < j; i++) {
			struct dump_ctx *a = &t->p[i];
			if (a->zombie)
				continue;
			const char *what = kcmp(a->pid, b->pid, KCMP_VM_) == 0 ? "memory (CLONE_VM)"
					   : kcmp(a->pid, b->pid, KCMP_FS_) == 0
						   ? "cwd/root/umask (CLONE_FS)"
						   : NULL;
			if (what) {
				pr_err("processes %d and %d share their %s without being threads: "
				       "not supported",
				       a->pid, b->pid, what);
				return -EOPNOTSUPP;
			}
			if (!b->files_owner && kcmp(a->pid, b->pid, KCMP_FILES_) == 0) {
				b->files_owner = a->files_owner ? a->files_owner : a->pid;
				pr_debug("tree: %d shares the fd table of %d (CLONE_FILES)", b->pid,
					 b->files_owner);
			}
		}
	}
	return 0;
}

/* Innermost pid of pid (tid 0) or of one of its threads, from NSpid. */
static int ns_id(pid_t pid, pid_t tid, pid_t *out)
{
	struct proc_status st;
	int r = proc_parse_status(pid, tid, &st);
	if (r < 0)
		return pr_err_ret(r, "cannot read the status of %d/%d", pid, tid);
	*out = st.n_nspid ? st.nspid[st.n_nspid - 1] : 0;
	return 0;
}

/* Inner ids of the --pidns case: pid and tids from NSpid; ppid, pgid, sid mapped through
 * the tree (an id outside the tree is 0 inside the namespace). */
static int tree_ns_ids(struct dump_tree *t)
{
	for (size_t i = 0; i < t->n; i++) {
		struct dump_ctx *c = &t->p[i];
		int r = ns_id(c->pid, 0, &c->ns_pid);
		if (r < 0 || c->zombie)
			continue;
		if (!(c->ns_tids = calloc(c->sz.n_tids, sizeof(pid_t))))
			return -ENOMEM;
		for (size_t k = 0; r == 0 && k < c->sz.n_tids; k++)
			r = ns_id(c->pid, c->sz.tids[k], &c->ns_tids[k]);
		if (r < 0)
			return r;
	}
	return 0;
}

/* The id pid as seen in the tree's namespace: its process's ns_pid, or 0. */
static uint32_t ns_map(const struct dump_tree *t, pid_t pid)
{
	ssize_t i = dump_tree_find(t, pid);
	return i < 0 ? 0 : (uint32_t)t->p[i].ns_pid;
}

int dump_tree_check(struct dump_tree *t)
{
	int r;
	for (size_t i = 0; i < t->n; i++) {
		struct dump_ctx *c = &t->p[i];
		if ((r = proc_parse_stat(c->pid, 0, &c->st)) < 0)
			return pr_err_ret(r, "process %d disappeared during the dump", c->pid);
		if (i > 0 && (r = check_ids(t, c)) < 0)
			return r;
		if (c->zombie)
			continue;
		if ((r = proc_parse_status(c->pid, 0, &c->status)) < 0)
			return pr_err_ret(r, "process %d disappeared during the dump", c->pid);
		if (c->status.seccomp) {
			pr_err("process %d ('%s') runs under seccomp (mode %u): not supported",
			       c->pid, c->st.comm, c->status.seccomp);
			return -EOPNOTSUPP;
		}
	}
	if ((r = check_namespaces(t)) < 0)
		return r;
	if ((r = check_sharing(t)) < 0)
		return r;
	return t->pidns ? tree_ns_ids(t) : 0;
}

/* ---- pstree.img and release ------------------------------------------------------ */

static void pstree_fill(const struct dump_tree *t, const struct dump_ctx *c, PstreeEntry *e,
			uint32_t *tids, uint32_t *ns_tids)
{
	pstree_entry__init(e);
	e->pid = c->pid;
	e->ppid = c->ppid;
	e->pgid = c->st.pgrp;
	e->sid = c->st.session;
	if (c->zombie) {
		tids[0] = c->pid;
		e->n_threads = 1;
		e->has_zombie = e->has_exit_status = 1;
		e->zombie = true;
		e->exit_status = (uint32_t)c->st.exit_code;
	} else {
		for (size_t k = 0; k < c->sz.n_tids; k++)
			tids[k] = c->sz.tids[k];
		e->n_threads = c->sz.n_tids;
	}
	e->threads = tids;
	if (c->files_owner) {
		e->has_files_owner = 1;
		e->files_owner = c->files_owner;
	}
	if (!t->pidns)
		return;
	e->has_ns_pid = e->has_ns_ppid = e->has_ns_pgid = e->has_ns_sid = 1;
	e->ns_pid = c->ns_pid;
	e->ns_ppid = ns_map(t, c->ppid);
	e->ns_pgid = ns_map(t, c->st.pgrp);
	e->ns_sid = ns_map(t, c->st.session);
	if (c->zombie) {
		ns_tids[0] = c->ns_pid;
	} else {
		for (size_t k = 0; k < c->sz.n_tids; k++)
			ns_tids[k] = c->ns_tids ? c->ns_tids[k] : 0;
	}
	e->n_ns_threads = e->n_threads;
	e->ns_threads = ns_tids;
}

int dump_pstree_write(struct dump_tree *t, struct img_dir *d)
{
	char name[64];
	struct img_writer *w = NULL;
	int r = img_writer_open(d, img_name(name, "pstree.img"), IMG_MAGIC_PSTREE, &w);
	for (size_t i = 0; r == 0 && i < t->n; i++) {
		const struct dump_ctx *c = &t->p[i];
		size_t n = c->zombie ? 1 : c->sz.n_tids;
		uint32_t *tids = calloc(n, sizeof(*tids)), *ns_tids = calloc(n, sizeof(*ns_tids));
		PstreeEntry e;
		r = -ENOMEM;
		if (tids && ns_tids) {
			pstree_fill(t, c, &e, tids, ns_tids);
			r = img_write_pb(w, &e.base);
		}
		free(tids);
		free(ns_tids);
	}
	if (r < 0) {
		img_writer_abort(w);
		return r;
	}
	return img_writer_close(w);
}

void dump_tree_release(struct dump_tree *t, enum seize_end how)
{
	proc_snap_free(t->snap, t->n_snap);
	t->snap = NULL;
	t->n_snap = 0;
	/* leaves first: a killed child never finds its parent already gone */
	for (size_t i = t->n; i-- > 0;) {
		struct dump_ctx *c = &t->p[i];
		if (c->seized)
			seize_release(&c->sz, how);
		c->seized = false;
		dump_threads_free(c);
		proc_vmas_free(c->vmas, c->n_vmas);
		c->vmas = NULL;
		c->n_vmas = 0;
		free(c->ns_tids);
		c->ns_tids = NULL;
	}
	free(t->p);
	t->p = NULL;
	t->n = t->cap = 0;
}
