/*
 * rst-tree: `ferry restore`: recreate the dumped process tree (pstree.img: root first,
 * parents before children) with its PIDs, sessions, groups, zombies and threads, in
 * ferry's pid namespace or (--pidns, or a tree dumped as PID 1 of its own namespace)
 * in a new one.
 *
 * Stages (docs/restore.md "Process trees"):
 *  1. load and validate every image of every process; plan the creation order
 *     (sessions only pass by inheritance: a child is forked before or after its
 *     parent's setsid, or by a sibling of its session with CLONE_PARENT; CLONE_FILES
 *     sharers by their parent; anything else is refused before anything exists);
 *  2. fs_rst_tree_prepare creates the descriptions shared between processes, here;
 *  3. the root (or the ferry init of a new pid namespace) is clone3'd; every stub
 *     creates its own children (rst-stub.c) and reports CREATED with its host pid;
 *  4. once every zombie has exited, one byte per live process on the go pipe: the
 *     stubs join their groups, set up cwd/fds, report READY and block in read();
 *  5. every stub is PTRACE_SEIZEd (EXITKILL) and interrupted, then restored by remote
 *     control like a lone process (restore.c), shared anonymous memory mapped from the
 *     first task that created it; one tracer thread per CPU, each with its share of
 *     the processes (rst-par.c);
 *  6. final registers of every thread of every process, pidfile, detach (leaves first).
 *
 * Invariants: nothing runs dumped code unless every process was built; on any failure
 * every task created is killed and reaped (we are a child subreaper while restoring,
 * so orphaned stubs come back to us), and no process is left behind.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "engine/proc.h"
#include "engine/rst-tree.h"
#include "engine/rst-warm.h"
#include "fs/fs.h"
#include "img/img.h"
#include "inventory.pb-c.h"

#define TREE_MAX	 4096
#define MSG_TIMEOUT_MS	 10000
#define PID_FREE_WAIT_MS 2000

ssize_t rst_tree_find(const struct rst_tree *t, pid_t pid)
{
	for (size_t i = 0; pid > 0 && i < t->n; i++)
		if (t->id[i].pid == pid)
			return (ssize_t)i;
	return -1;
}

pid_t rst_tree_inner_tid(struct rst *r, size_t k)
{
	const PstreeEntry *p = r->pst;
	if (r->tree && r->tree->root_is_init && k < p->n_ns_threads)
		return (pid_t)p->ns_threads[k];
	return (pid_t)p->threads[k];
}

pid_t rst_tree_host_tid(struct rst *r, pid_t ntid)
{
	struct proc_status st;
	int e;

	if (!r->tree || !r->tree->pidns)
		return ntid;
	/* new threads show up in the leader's task list: match their innermost NSpid */
	pid_t *tids = NULL, found = 0;
	size_t n;
	if ((e = proc_list_tids(r->pid, &tids, &n)) < 0)
		return pr_err_ret(e, "cannot list the threads of %d", r->pid);
	for (size_t i = 0; i < n && !found; i++)
		if (proc_parse_status(r->pid, tids[i], &st) == 0 && st.n_nspid &&
		    st.nspid[st.n_nspid - 1] == ntid)
			found = tids[i];
	free(tids);
	if (found)
		return found;
	return pr_err_ret(-ESRCH, "thread %d of %d not found in its /proc/PID/task", ntid, r->pid);
}

/* ---- loading and planning -------------------------------------------------------- */

static int inventory_check(struct rst_tree *t)
{
	const InventoryEntry *inv = img_dir_inventory(t->d);
	struct utsname u;

	uname(&u);
	if (inv->kind != IMG_KIND_DUMP)
		return pr_err_ret(-EINVAL, "'%s' is a pre-dump, not a dump", t->o->images_dir);
	if (strcmp(inv->arch, u.machine))
		return pr_err_ret(-EXDEV, "images are for arch '%s', this is '%s'", inv->arch,
				  u.machine);
	if (strcmp(inv->kernel, u.release))
		return pr_err_ret(-EXDEV,
				  "images come from kernel '%s', this is '%s' (the same kernel "
				  "is required: vdso layout)",
				  inv->kernel, u.release);
	if (inv->page_size != RST_PAGE)
		return pr_err_ret(-EXDEV, "images have page size %u", inv->page_size);
	if (inv->root_pid < 2 || inv->root_pid > 4194304)
		return pr_err_ret(-EINVAL, "inventory: bad root pid %u", inv->root_pid);
	t->root_is_init = inv->has_pidns && inv->pidns;
	t->pidns = t->o->pidns || t->root_is_init;
	return 0;
}

static int pstree_load(struct rst_tree *t)
{
	struct img_buf *b;
	ProtobufCMessage *m;
	size_t cap = 0;
	int e = img_load(t->d, "pstree.img", IMG_MAGIC_PSTREE, &b);

	if (e < 0)
		return e == -ENOENT ? pr_err_ret(e, "pstree.img is missing") : e;
	while ((e = img_buf_next(b, &pstree_entry__descriptor, &m)) == 1) {
		if (t->n == cap) {
			void *nw = cap < TREE_MAX ? realloc(t->pst, (cap = cap ? cap * 2 : 16) *
									    sizeof(*t->pst))
						  : NULL;
			if (!nw) {
				protobuf_c_message_free_unpacked(m, NULL);
				img_buf_free(b);
				return pr_err_ret(-E2BIG, "pstree.img: more than %d processes",
						  TREE_MAX);
			}
			t->pst = nw;
		}
		t->pst[t->n++] = (PstreeEntry *)m;
	}
	img_buf_free(b);
	if (e < 0 || t->n == 0)
		return pr_err_ret(-EBADMSG, "pstree.img is corrupt or empty");
	if (t->pst[0]->pid != img_dir_inventory(t->d)->root_pid || t->pst[0]->ppid)
		return pr_err_ret(-EINVAL,
				  "pstree.img: the root is not first (pid %u, inventory says %u)",
				  t->pst[0]->pid, img_dir_inventory(t->d)->root_pid);
	return 0;
}

/* Inner ids of process i (PstreeEntry.ns_* for a tree dumped as its namespace's init). */
static int ids_fill(struct rst_tree *t, size_t i)
{
	const PstreeEntry *p = t->pst[i];
	struct rst_ids *id = &t->id[i];

	if (p->pid < 1 || p->pid > 4194304 || p->n_threads < 1 || p->threads[0] != p->pid ||
	    (p->zombie && p->n_threads != 1) || (t->root_is_init && !p->has_ns_pid))
		return pr_err_ret(-EINVAL, "pstree.img: bad entry for process %u", p->pid);
	if (t->root_is_init)
		*id = (struct rst_ids){ (pid_t)p->ns_pid,
					(pid_t)p->ns_ppid,
					(pid_t)p->ns_pgid,
					(pid_t)p->ns_sid,
					-1,
					false,
					-1,
					false,
					-1 };
	else
		*id = (struct rst_ids){ (pid_t)p->pid,
					(pid_t)p->ppid,
					(pid_t)p->pgid,
					(pid_t)p->sid,
					-1,
					false,
					-1,
					false,
					-1 };
	if (id->pid < 1 || id->pid > 4194304 || (i == 0 && t->root_is_init && id->pid != 1))
		return pr_err_ret(-EINVAL, "pstree.img: bad inner pid of process %u", p->pid);
	for (size_t j = 0; j < i; j++)
		if (t->id[j].pid == id->pid)
			return pr_err_ret(-EINVAL, "pstree.img: pid %d twice", id->pid);
	return 0;
}

/* A live child of i's parent, other than i and not created by CLONE_PARENT itself, that
 * is in i's session once set up (it leads it, or has it from birth): index or -1. */
static int session_sibling(struct rst_tree *t, size_t i)
{
	const struct rst_ids *c = &t->id[i];
	for (size_t j = 0; j < t->n; j++) {
		const struct rst_ids *q = &t->id[j];
		if (j == i || t->pst[j]->zombie || q->parent != c->parent || q->sid != c->sid ||
		    (q->creator >= 0 && q->creator != q->parent) ||
		    (j > i && q->creator < 0 && q->sid != q->pid))
			continue;
		if (q->pid == 1)
			continue; /* an init cannot CLONE_PARENT */
		return (int)j;
	}
	return -1;
}

/* Sessions pass only by inheritance: fork before or after the parent's setsid. */
static int plan_session(struct rst_tree *t, size_t i)
{
	struct rst_ids *c = &t->id[i];
	ssize_t pi = i ? rst_tree_find(t, c->ppid) : -1;

	if (i == 0) {
		c->inh_sid = c->sid == c->pid ? -1 : c->sid;
		c->creator = -1;
		if (c->sid != c->pid && c->sid && !t->o->shell_job && !t->pidns &&
		    c->sid != getsid(0))
			pr_warn("session %d of process %d cannot be recreated: it joins session %d",
				c->sid, c->pid, getsid(0));
		return 0;
	}
	if (pi < 0 || (size_t)pi >= i)
		return pr_err_ret(-EINVAL, "pstree.img: parent %d of process %d is not before it",
				  c->ppid, c->pid);
	const struct rst_ids *p = &t->id[pi];
	c->parent = (int)pi;
	if (t->pst[pi]->zombie)
		return pr_err_ret(-EINVAL, "pstree.img: zombie %d has a child %d", p->pid, c->pid);
	if (c->sid == c->pid || c->sid == p->sid) {
		c->inh_sid = p->sid;
	} else if (p->sid == p->pid && c->sid == p->inh_sid) {
		c->before_setsid = true;
		c->inh_sid = p->inh_sid;
	} else if ((c->creator = session_sibling(t, i)) >= 0) {
		/* an orphan of another session reparented to a subreaper: a sibling of that
		 * session creates it with CLONE_PARENT, so its parent is still the subreaper */
		c->inh_sid = c->sid;
	} else if (t->pst[i]->zombie) {
		pr_warn("zombie %d: its session %d is not recreated", c->pid, c->sid);
		c->inh_sid = p->sid;
	} else {
		return pr_err_ret(-EOPNOTSUPP,
				  "process %d: session %d cannot be inherited from its "
				  "parent %d (session %d), and no other child of %d is in it: not "
				  "supported",
				  c->pid, c->sid, p->pid, p->sid, p->pid);
	}
	if (c->creator < 0)
		c->creator = c->parent;
	return 0;
}

/* CLONE_FILES: the table came from the parent, which owns it or shares it too. */
static int plan_files(struct rst_tree *t, size_t i)
{
	const PstreeEntry *p = t->pst[i];
	int pi = t->id[i].parent;

	if (!p->has_files_owner || !p->files_owner)
		return 0;
	if (p->zombie || pi < 0 ||
	    (t->pst[pi]->pid != p->files_owner &&
	     !(t->pst[pi]->has_files_owner && t->pst[pi]->files_owner == p->files_owner)))
		return pr_err_ret(-EOPNOTSUPP,
				  "process %u shares the fd table of %u (CLONE_FILES) "
				  "but its parent does not: not supported",
				  p->pid, p->files_owner);
	t->id[i].files_shared = true;
	return 0;
}

/* A group other than its own: led by a process of the tree in the same session, or the
 * root's (foreign) group. */
static int plan_group(struct rst_tree *t, size_t i)
{
	const struct rst_ids *c = &t->id[i];
	ssize_t g = rst_tree_find(t, c->pgid);

	if (c->sid == c->pid && c->pgid != c->pid)
		return pr_err_ret(-EINVAL, "pstree.img: session leader %d in group %d", c->pid,
				  c->pgid);
	if (c->pgid == c->pid || (i > 0 && g < 0 && c->pgid == t->id[0].pgid))
		return 0;
	if (i == 0 && g < 0) {
		if (!t->o->shell_job && c->pgid != getpgrp())
			pr_warn("process group %d of process %d cannot be recreated: it joins ours",
				c->pgid, c->pid);
		return 0;
	}
	if (g < 0 || t->id[g].pgid != c->pgid || t->id[g].sid != c->sid)
		return pr_err_ret(-EOPNOTSUPP,
				  "process %d: its group %d has no leader in its session "
				  "in the tree: not supported",
				  c->pid, c->pgid);
	return 0;
}

static int plan_kids(struct rst_tree *t)
{
	t->kids = calloc(t->n, sizeof(*t->kids));
	if (!t->kids)
		return -ENOMEM;
	for (size_t i = 0; i < t->n; i++) {
		size_t k = 0;
		if (!(t->kids[i] = calloc(t->n + 1, sizeof(int))))
			return -ENOMEM;
		for (size_t j = 1; j < t->n; j++)
			if (t->id[j].creator == (int)i)
				t->kids[i][k++] = (int)j;
		t->kids[i][k] = -1;
	}
	return 0;
}

/* Without a new pid namespace every pid and tid must be free here. A process that is
 * dying or a zombie (the original tree was just killed) gets PID_FREE_WAIT_MS to go. */
static int ids_free_check(struct rst_tree *t)
{
	uint64_t t0 = now_ns();
	if (t->pidns)
		return 0;
	for (size_t i = 0; i < t->n; i++)
		for (size_t k = 0; k < t->pst[i]->n_threads; k++) {
			pid_t p = (pid_t)t->pst[i]->threads[k];
			struct proc_stat st;
			while (kill(p, 0) == 0 || errno == EPERM) {
				bool dying = proc_parse_stat(p, 0, &st) == 0 &&
					     (st.state == 'Z' || st.state == 'X');
				if (!dying || now_ns() - t0 > PID_FREE_WAIT_MS * 1000000ULL)
					return pr_err_ret(
						-EEXIST,
						"PID %d is already in use (restore with "
						"--pidns to put the tree in a new pid namespace)",
						p);
				usleep(2000);
			}
		}
	return 0;
}

/* pidns_auto: is a pid or tid of the tree held here by a live process (a dying one or
 * a zombie will go: ids_free_check waits for those)? */
static bool ids_taken(const struct rst_tree *t)
{
	for (size_t i = 0; i < t->n; i++)
		for (size_t k = 0; k < t->pst[i]->n_threads; k++) {
			pid_t p = (pid_t)t->pst[i]->threads[k];
			struct proc_stat st;
			if ((kill(p, 0) == 0 || errno == EPERM) &&
			    !(proc_parse_stat(p, 0, &st) == 0 &&
			      (st.state == 'Z' || st.state == 'X')))
				return true;
		}
	return false;
}

static int tree_load(struct rst_tree *t)
{
	int e;
	if ((e = img_dir_open(t->o->images_dir, &t->d)) < 0 || (e = inventory_check(t)) < 0 ||
	    (e = pstree_load(t)) < 0)
		return e;
	if (t->o->pidns_auto && !t->pidns && ids_taken(t)) {
		pr_info("pids of the tree are taken here: restoring into a new pid namespace");
		t->pidns = true;
	}
	t->t = calloc(t->n, sizeof(*t->t));
	t->id = calloc(t->n, sizeof(*t->id));
	t->hpid = calloc(t->n, sizeof(*t->hpid));
	if (!t->t || !t->id || !t->hpid)
		return -ENOMEM;
	if (t->pst[0]->zombie)
		return pr_err_ret(-EINVAL, "pstree.img: the root is a zombie");
	for (size_t i = 0; i < t->n; i++)
		if ((e = ids_fill(t, i)) < 0)
			return e;
	for (size_t i = 0; i < t->n; i++)
		if ((e = plan_session(t, i)) < 0)
			return e;
	for (size_t i = 0; i < t->n; i++)
		if (!t->pst[i]->zombie &&
		    ((e = plan_group(t, i)) < 0 || (e = plan_files(t, i)) < 0))
			return e;
	if ((e = plan_kids(t)) < 0 || (e = ids_free_check(t)) < 0)
		return e;
	struct rst_special own[RST_SP_NR]; /* ours: every stub is a copy of us */
	if ((e = rst_own_specials(getpid(), own)) < 0)
		return e;
	for (size_t i = 0; i < t->n; i++) {
		struct rst *r = &t->t[i];
		memcpy(r->own_sp, own, sizeof(own));
		r->o = t->o;
		r->d = t->d;
		r->tree = t;
		r->pst = t->pst[i];
		r->pid = r->ipid = (pid_t)t->pst[i]->pid;
		r->npid = t->id[i].pid;
		r->hold_fd = r->rep_fd = -1;
		r->cur = &r->rt;
		if (!t->pst[i]->zombie && (e = rst_images_load(r)) < 0)
			return e;
		if (r->warm) /* (rst_images_load asked the staging) */
			pr_info("process %d: memory from the warm staging", r->ipid);
	}
	return 0;
}

static int fs_prepare(struct rst_tree *t)
{
	pid_t *pids = calloc(t->n, sizeof(*pids));
	size_t n = 0;
	int e;
	if (!pids)
		return -ENOMEM;
	for (size_t i = 0; i < t->n; i++)
		if (!t->pst[i]->zombie && !t->id[i].files_shared)
			pids[n++] = t->t[i].ipid;
	e = fs_rst_tree_prepare(t->d, pids, n, t->o->shell_job, &t->fs);
	free(pids);
	return e;
}

/* ---- creation -------------------------------------------------------------------- */

/* Read one stub message of kind want (bounded wait). STUB_ERROR is logged here. */
static int msg_read(struct rst_tree *t, int want, struct rst_stub_msg *m)
{
	struct pollfd p = { .fd = t->rep[0], .events = POLLIN };
	int n = poll(&p, 1, MSG_TIMEOUT_MS);
	if (n < 0)
		return pr_perror("poll on the stubs' report pipe");
	if (n == 0)
		return pr_err_ret(-ETIMEDOUT, "the stubs did not report in %d ms", MSG_TIMEOUT_MS);
	ssize_t r = read_full(t->rep[0], m, sizeof(*m));
	if (r != (ssize_t)sizeof(*m))
		return pr_err_ret(-EPIPE, "a stub died before reporting");
	if (m->idx < 0 || (size_t)m->idx >= t->n)
		return pr_err_ret(-EPROTO, "bad stub report");
	m->text[sizeof(m->text) - 1] = 0;
	if (m->kind == STUB_ERROR) {
		pr_err("restoring process %u: %s: %s", t->pst[m->idx]->pid, m->text,
		       strerror(m->err));
		return -(m->err ? m->err : EINVAL);
	}
	if (m->kind != want)
		return pr_err_ret(-EPROTO, "unexpected report %d from process %u", m->kind,
				  t->pst[m->idx]->pid);
	return 0;
}

/* Zombies must be dead before their parents are traced (a tracee queues even an
 * ignored SIGCHLD). */
static int zombies_wait(struct rst_tree *t)
{
	for (size_t i = 0; i < t->n; i++) {
		struct proc_stat st;
		uint64_t t0 = now_ns();
		if (!t->pst[i]->zombie)
			continue;
		while (proc_parse_stat(t->t[i].pid, 0, &st) == 0 && st.state != 'Z') {
			if (now_ns() - t0 > MSG_TIMEOUT_MS * 1000000ULL)
				return pr_err_ret(-ETIMEDOUT, "zombie %d did not exit",
						  t->t[i].pid);
			usleep(200);
		}
	}
	return 0;
}

/* A CLONE_FILES sharer reports nothing after CREATED (its owner rearranges the fds
 * they share): it is set up once it sits in pause(). A stub error shows on the pipe. */
static int sharers_wait(struct rst_tree *t, void (*ready)(void *, size_t), void *arg)
{
	for (size_t i = 0; i < t->n; i++) {
		uint64_t t0 = now_ns();
		char path[64], *buf;
		size_t len;
		if (!t->id[i].files_shared)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/syscall", t->t[i].pid);
		for (;;) {
			struct pollfd p = { .fd = t->rep[0], .events = POLLIN };
			struct rst_stub_msg m;
			bool paused = false;
			if (read_file(path, &buf, &len, 4096) == 0) {
				paused = atoi(buf) == __NR_pause;
				free(buf);
			}
			if (paused)
				break;
			if (poll(&p, 1, 0) == 1)
				return msg_read(t, STUB_READY, &m) < 0
					       ? -EINVAL
					       : pr_err_ret(-EPROTO,
							    "unexpected report from process %d",
							    t->t[i].pid);
			if (now_ns() - t0 > MSG_TIMEOUT_MS * 1000000ULL)
				return pr_err_ret(-ETIMEDOUT,
						  "stub %d (CLONE_FILES) did not get ready",
						  t->t[i].pid);
			usleep(200);
		}
		ready(arg, i);
	}
	return 0;
}

int rst_tree_collect(struct rst_tree *t, void (*ready)(void *, size_t), void *arg)
{
	struct rst_stub_msg m = { 0 };
	size_t live = 0;
	uint64_t t0 = now_ns();
	int e = 0;

	for (size_t i = 0; i < t->n; i++)
		live += !t->pst[i]->zombie && !t->id[i].files_shared;
	for (size_t k = 0; e == 0 && k < live; k++)
		if ((e = msg_read(t, STUB_READY, &m)) == 0) {
			struct rst *r = &t->t[m.idx];
			r->hold_fd = m.hold_fd;
			r->rep_fd = m.rep_fd;
			for (size_t j = 0; j < r->n_mfd; j++)
				r->mfd[j] = m.mfd[j];
			r->mfd_task = true;
			ready(arg, (size_t)m.idx);
		}
	pr_debug("every stub ready %llu us after the go bytes",
		 (unsigned long long)(now_ns() - t0) / 1000);
	return e < 0 ? e : sharers_wait(t, ready, arg);
}

/* Where each stub maps the gadget: free in its dumped layout and in ours, which every
 * stub copies (read now: nothing is allocated between here and the clone3s). */
static int gadgets_plan(struct rst_tree *t)
{
	struct rst_special *own;
	size_t n;
	int e = rst_maps_read(getpid(), &own, &n);
	for (size_t i = 0; e == 0 && i < t->n; i++)
		if (!t->pst[i]->zombie)
			e = rst_gadget_place(&t->t[i], own, n);
	free(own);
	return e;
}

static int tree_create(struct rst_tree *t)
{
	struct rst_stub_msg m = { 0 };
	size_t live = 0;
	int e;

	if (pipe2(t->rep, O_CLOEXEC) < 0 || pipe2(t->go, O_CLOEXEC) < 0 ||
	    pipe2(t->hold, O_CLOEXEC) < 0)
		return pr_perror("pipe2");
	if ((e = gadgets_plan(t)) < 0)
		return e;
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
		return pr_perror("PR_SET_CHILD_SUBREAPER");
	e = rst_stub_spawn_root(t);
	close(t->rep[1]);
	close(t->go[0]);
	close(t->hold[0]);
	t->rep[1] = t->go[0] = t->hold[0] = -1;
	for (size_t k = 0; e == 0 && k < t->n; k++)
		if ((e = msg_read(t, STUB_CREATED, &m)) == 0) {
			t->t[m.idx].pid = t->hpid[m.idx] = m.hpid;
			t->n_created++;
		}
	if (e < 0 || (e = zombies_wait(t)) < 0)
		return e;
	/* the READY reports are collected while the tracer threads build (rst-par.c) */
	for (size_t i = 0; i < t->n; i++)
		live += !t->pst[i]->zombie && !t->id[i].files_shared;
	for (size_t i = 0; i < live; i++)
		if (write(t->go[1], "g", 1) != 1)
			return pr_perror("writing to the stubs' go pipe");
	return 0;
}

/* ---- shared anonymous memory ----------------------------------------------------- */

int rst_tree_shm_map(struct rst *r, struct rst_batch *b, const VmaEntry *v, unsigned long prot)
{
	struct rst_tree *t = r->tree;
	char path[96];
	int fd, k;

	for (size_t i = 0; t && v->has_shmid && i < t->n_shm; i++) {
		const struct rst_shm *s = &t->shm[i];
		if (s->shmid != v->shmid)
			continue;
		if (v->pgoff < s->pgoff)
			return pr_err_ret(-EOPNOTSUPP,
					  "shared memory %#llx at %#llx: offset below the "
					  "first mapping's",
					  (unsigned long long)v->shmid,
					  (unsigned long long)v->start);
		/* the task's /proc: its own namespace's (a new one is mounted with --pidns) */
		snprintf(path, sizeof(path), "/proc/%d/map_files/%llx-%llx", s->npid,
			 (unsigned long long)s->start, (unsigned long long)s->end);
		if ((fd = rst_open(r, b, path, O_RDWR)) < 0)
			return fd;
		if ((k = rst_batch_add(b, "mmap", __NR_mmap, v->start, v->end - v->start, prot,
				       MAP_SHARED | MAP_FIXED, 0, v->pgoff - s->pgoff)) < 0)
			return k;
		rst_batch_link(b, k, 5, fd);
		rst_batch_expect(b, k, (long)v->start);
		rst_batch_whatf(b, k, "mapping shared memory %#llx-%#llx of %d",
				(unsigned long long)v->start, (unsigned long long)v->end, s->npid);
		if ((k = rst_batch_add(b, "close", __NR_close, 0, 0, 0, 0, 0, 0)) < 0)
			return k;
		rst_batch_link(b, k, 1, fd);
		return 1;
	}
	return 0;
}

int rst_tree_shm_add(struct rst *r, const VmaEntry *v)
{
	struct rst_tree *t = r->tree;
	if (!t || !v->has_shmid)
		return 0;
	void *n = realloc(t->shm, (t->n_shm + 1) * sizeof(*t->shm));
	if (!n)
		return -ENOMEM;
	t->shm = n;
	t->shm[t->n_shm++] = (struct rst_shm){ v->shmid, v->start, v->end, v->pgoff, r->npid };
	return 0;
}

int rst_tree_file_open(struct rst *r, struct rst_batch *b, const VmaEntry *v, int flags)
{
	char path[64];
	int fd = r->tree ? fs_rst_tree_file_fd(r->tree->fs, v->file_id) : -ENOENT;
	if (fd < 0)
		return pr_err_ret(-EINVAL,
				  "mapping at %#llx: file id %u is not a file the restorer "
				  "holds",
				  (unsigned long long)v->start, v->file_id);
	for (size_t k = 0; r->mfd_task && k < r->n_mfd; k++)
		if (r->mfd_id[k] == v->file_id) /* kept by the stub: a copy to map and close */
			return rst_batch_add(b, "dup(memfd)", __NR_fcntl, r->mfd[k],
					     F_DUPFD_CLOEXEC, 0, 0, 0, 0);
	/* not kept (a CLONE_FILES sharer): reopen ours; needs ferry's /proc (no --pidns) */
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", getpid(), fd);
	return rst_open(r, b, path, flags);
}

int rst_tree_memfds_close(struct rst *r, struct rst_batch *b)
{
	for (size_t k = 0; r->mfd_task && k < r->n_mfd; k++) {
		int i = rst_batch_add(b, "close(memfd)", __NR_close, r->mfd[k], 0, 0, 0, 0, 0);
		if (i < 0)
			return i;
	}
	r->mfd_task = false;
	return 0;
}

/* The memfds each process maps, by the restorer's fds of them (after fs_prepare). */
static int memfds_plan(struct rst_tree *t)
{
	for (size_t i = 0; i < t->n; i++) {
		struct rst *r = &t->t[i];
		for (size_t k = 0; r->mm && !t->id[i].files_shared && k < r->mm->n_vmas; k++) {
			const VmaEntry *v = r->mm->vmas[k];
			size_t j = 0;
			if (!v->has_file_id)
				continue;
			while (j < r->n_mfd && r->mfd_id[j] != v->file_id)
				j++;
			if (j < r->n_mfd)
				continue;
			int fd = fs_rst_tree_file_fd(t->fs, v->file_id);
			if (fd < 0 || r->n_mfd == RST_MAX_MEMFDS)
				return pr_err_ret(
					-EINVAL,
					"process %d: mapping at %#llx: file id %u is not "
					"a memfd the restorer holds (or more than %d memfds)",
					r->ipid, (unsigned long long)v->start, v->file_id,
					RST_MAX_MEMFDS);
			r->mfd_id[r->n_mfd] = v->file_id;
			r->mfd[r->n_mfd++] = fd;
		}
	}
	return 0;
}

/* ---- finishing and rollback ------------------------------------------------------ */

int rst_tree_hold(struct rst_tree *t)
{
	char line[64], c = 0;
	ssize_t k;
	/* the tree holds the staged pages now: ours go, so that its first writes find
	 * them its own (no copy) */
	rst_warm_release(t->o->warm);
	if (!t->o->hold)
		return 0;
	int n = snprintf(line, sizeof(line), "ready %d %d\n", t->t[0].pid, t->pidns);
	if (write_full(t->o->hold_fd, line, n) < 0)
		return pr_perror("cannot report the restored tree to the hand-over");
	do
		k = read(t->o->hold_fd, &c, 1);
	while (k < 0 && errno == EINTR);
	if (k == 1 && c == 'g')
		return 0;
	return pr_err_ret(-ECANCELED, "restored tree of %d discarded: no hand-over", t->t[0].pid);
}

int rst_tree_pidfile(struct rst_tree *t)
{
	char buf[32];
	int fd, e;
	if (!t->o->pidfile)
		return 0;
	fd = open(t->o->pidfile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return pr_perror("cannot write pidfile '%s'", t->o->pidfile);
	e = write_full(fd, buf, (size_t)snprintf(buf, sizeof(buf), "%d\n", t->t[0].pid));
	close(fd);
	return e < 0 ? pr_err_ret(e, "cannot write pidfile '%s'", t->o->pidfile) : 0;
}

/* Kill every task we created and reap what comes back to us (bounded). */
static void tree_kill(struct rst_tree *t)
{
	uint64_t t0 = now_ns();
	int st;

	kill(t->child, SIGKILL); /* the root, or the init: then the whole namespace */
	for (size_t i = 0; i < t->n; i++)
		if (t->hpid[i] > 0)
			kill(t->hpid[i], SIGKILL);
	for (size_t i = 0; i < t->n; i++)
		rst_threads_free(&t->t[i], true);
	while (now_ns() - t0 < 5000000000ULL) {
		pid_t p = waitpid(-1, &st, __WALL | WNOHANG);
		if (p < 0 && errno == ECHILD)
			break;
		if (p == 0)
			usleep(1000);
	}
	if (t->o->pidfile)
		unlink(t->o->pidfile);
}

static int tree_finish(struct rst_tree *t, int e)
{
	if (e < 0 && t->child > 0)
		tree_kill(t);
	prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0);
	for (int k = 0; k < 2; k++) {
		if (t->rep[k] >= 0)
			close(t->rep[k]);
		if (t->go[k] >= 0)
			close(t->go[k]);
		if (t->hold[k] >= 0)
			close(t->hold[k]);
	}
	for (size_t i = 0; t->t && i < t->n; i++)
		rst_free(&t->t[i]);
	for (size_t i = 0; t->kids && i < t->n; i++)
		free(t->kids[i]);
	for (size_t i = 0; i < t->n; i++)
		pstree_entry__free_unpacked(t->pst[i], NULL);
	fs_rst_tree_free(t->fs);
	free(t->kids);
	free(t->pst);
	free(t->t);
	free(t->id);
	free(t->hpid);
	free(t->shm);
	img_dir_free(t->d);
	return e;
}

static int wait_child(pid_t child, int *status)
{
	for (;;) {
		pid_t p = waitpid(child, status, 0);
		if (p == child)
			return 0;
		if (p < 0 && errno != EINTR)
			return pr_perror("waitpid(%d)", child);
	}
}

int restore_main(const struct ferry_opts *o, int *status)
{
	struct rst_tree t = {
		.o = o, .rep = { -1, -1 }, .go = { -1, -1 }, .hold = { -1, -1 }, .hostproc = -1
	};
	uint64_t t0 = now_ns();
	int e;

	uint64_t t1 = 0, t2 = 0;
	if ((e = tree_load(&t)) < 0 || (e = fs_prepare(&t)) < 0 || (e = memfds_plan(&t)) < 0 ||
	    (t1 = now_ns(), e = tree_create(&t)) < 0 || (t2 = now_ns(), e = rst_tree_build(&t)) < 0)
		return tree_finish(&t, e < 0 ? e : -EINVAL);
	pr_debug("images loaded in %llu us, tree created in %llu us, seized and built in %llu us",
		 (unsigned long long)(t1 - t0) / 1000, (unsigned long long)(t2 - t1) / 1000,
		 (unsigned long long)(now_ns() - t2) / 1000);
	pr_debug("%zu processes restored in %llu us", t.n,
		 (unsigned long long)(now_ns() - t0) / 1000);
	pid_t child = t.child;
	t.child = 0; /* it runs now: no rollback */
	/* drop our copies of the shared descriptions first: a pipe must see EOF when the
	 * tree closes its last write end */
	tree_finish(&t, 0);
	return o->detach ? 0 : wait_child(child, status);
}
