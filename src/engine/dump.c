/*
 * dump: `ferry dump -t PID -D DIR [--leave-running] [--shell-job]`: the process tree
 * rooted at PID, every thread of every process.
 *
 * The stage is a flat list of steps (docs/dump.md):
 *   validate args -> img_dir_create -> seize the whole tree (dump-tree.c) -> checks
 *   (namespaces, seccomp, sid/pgid, sharing) -> per process: read state from outside
 *   (stat, status, smaps, every thread's registers and signal queues), VMA checks ->
 *   per process: remote sessions (one per thread: injected read-only queries) ->
 *   pstree -> per process: core-<tid> for every thread, fds (fs), mm, pagemap+pages ->
 *   files.img (fs_dump_finish) -> inventory (commit) -> kill all, or resume all with
 *   --leave-running.
 * Everything that can refuse the tree (checks, VMA kinds) runs before the first
 * injection. dump_finish() is the one exit: on failure it resumes every process
 * untouched, unlinks every file this dump created (files that were in DIR before are
 * kept; DIR is removed only if this dump created it) and returns the error, which was
 * logged once where it happened.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "engine/dump.h"
#include "engine/engine.h"
#include "fs/fs.h"
#include "img/img.h"
#include "pstree.pb-c.h"

/* Names present in DIR before this dump (kept by the rollback). */
struct dir_snap {
	char **names;
	size_t n;
};

struct dump_stage {
	const struct ferry_opts *o;
	struct img_dir *d;
	struct dump_tree t;
	struct dir_snap snap;
	bool dir_existed;
	struct fs_dump *fsd;
	uint64_t t0, freeze_time_ns;
	uint64_t pages, parent;
	uint64_t seize_ns, scan_ns, copy_ns, images_ns; /* --json figures */
	struct img_dir *prev; /* --prev-images-dir: the last pre-dump round, or NULL */
	char prev_path[4096];
};

static int dir_snapshot(const char *path, struct dir_snap *s)
{
	DIR *d = opendir(path);
	struct dirent *e;
	if (!d)
		return pr_perror("cannot list images directory '%s'", path);
	while ((e = readdir(d))) {
		char **n = realloc(s->names, (s->n + 1) * sizeof(*n));
		if (!n || !(n[s->n] = strdup(e->d_name))) {
			if (n)
				s->names = n;
			closedir(d);
			return -ENOMEM;
		}
		s->names = n;
		s->n++;
	}
	closedir(d);
	return 0;
}

static bool snap_has(const struct dir_snap *s, const char *name)
{
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->names[i], name))
			return true;
	return false;
}

/* Unlink every regular file of DIR that was not there before; rmdir DIR if we made it. */
static void dir_rollback(struct dump_stage *s)
{
	const char *path = s->o->images_dir;
	int dfd = img_dir_fd(s->d);
	DIR *d = opendir(path);
	struct dirent *e;
	if (!d)
		return;
	while ((e = readdir(d))) {
		if (e->d_type != DT_REG || snap_has(&s->snap, e->d_name))
			continue;
		if (unlinkat(dfd, e->d_name, 0) == 0)
			pr_debug("rollback: removed '%s/%s'", path, e->d_name);
	}
	closedir(d);
	if (!s->dir_existed && rmdir(path) == 0)
		pr_debug("rollback: removed '%s'", path);
}

static int check_args(const struct ferry_opts *o)
{
	if (o->pid <= 0)
		return pr_err_ret(-EINVAL, "dump: invalid pid %d", o->pid);
	if (o->pid == getpid())
		return pr_err_ret(-EINVAL, "dump: cannot dump ferry itself (pid %d)", o->pid);
	if (!o->images_dir || !*o->images_dir)
		return pr_err_ret(-EINVAL, "dump: no images directory (-D)");
	return 0;
}

/* Everything read from outside, before any remote session changes registers/mask. The
 * VMAs: the smaps read before the freeze when /proc/PID/maps still shows exactly that
 * layout (docs/dump.md "Freeze"), else smaps now. */
static int collect_outside(struct dump_tree *t, struct dump_ctx *c)
{
	int r = 0;
	c->vmas = proc_snap_take(t->snap, t->n_snap, c->pid, &c->n_vmas);
	if (c->vmas && proc_layout_same(c->pid, c->vmas, c->n_vmas) != 1) {
		pr_debug("process %d: layout changed since the smaps read before the freeze",
			 c->pid);
		proc_vmas_free(c->vmas, c->n_vmas);
		c->vmas = NULL;
		c->n_vmas = 0;
	}
	if (!c->vmas)
		r = proc_parse_smaps(c->pid, &c->vmas, &c->n_vmas);
	if (r == -ESRCH || r == -ENOENT)
		return pr_err_ret(r, "process %d disappeared during the dump", c->pid);
	if (r < 0)
		return r;
	if ((r = dump_vmas_check(c)) < 0)
		return r;
	return dump_thread_collect(c);
}

/* Over a pre-dump chain: a thread in restart_syscall (its sleep was interrupted by a
 * round's freeze) gets back the number of the syscall it restarts, which the last
 * round recorded (docs/predump.md), so restore re-runs that call; else it would
 * return EINTR. */
static void restart_fixup(struct dump_stage *s, struct dump_ctx *c)
{
	for (size_t k = 0; s->prev && k < c->n_th; k++) {
		struct dump_thread *th = &c->th[k];
		uint64_t nr;
		if (th->regs.orig_rax != 219 || (long)th->regs.rax != -516 ||
		    !predump_sc_lookup(s->prev_path, c->pid, th->tid, &th->regs, &nr))
			continue;
		pr_info("dump: thread %d restarts syscall %llu interrupted by a pre-dump round",
			th->tid, (unsigned long long)nr);
		th->regs.orig_rax = nr;
	}
}

static int dump_one_images(struct dump_stage *s, struct dump_ctx *c);

/* Final dump over a pre-dump chain: attach to the tracker the last round kept, scan
 * (frozen: fine, nothing writes after it) and take the chain's held pages. Whatever
 * fails means a full copy of this process (logged with the reason), never an error:
 * returns 0, or -errno only for allocation failures. With --track-mem and
 * --leave-running the tracker's new state is saved next to the images (tracking goes
 * on); otherwise dump_finish closes it in the target (dirty_disarm). */
static int dump_track(struct dump_stage *s, struct dump_ctx *c, struct dirty_range **dirty,
		      size_t *nd, struct dirty_range **held, size_t *nh)
{
	char path[4200];
	const char *why = NULL;
	int r;

	snprintf(path, sizeof(path), "%s/dirty-%d.state", s->prev_path, c->pid);
	uint64_t t0 = now_ns();
	r = dirty_attach(c->pid, c->sz.pidfd, path, &c->tracker);
	if (r < 0)
		why = r == -ENOENT   ? "no tracking state (new process?)"
		      : r == -ESTALE ? "tracking lost (fd closed, exec, pid reused)"
				     : "tracking state refused";
	else if ((r = dirty_scan(c->tracker, c->vmas, c->n_vmas, dirty, nd)) < 0)
		why = "the scan failed";
	s->scan_ns += now_ns() - t0;
	uint64_t from;
	if (!why && (r = dump_held_ranges(s->prev, c->pid, held, nh, &from)) < 0)
		why = "the last round has no pagemap for it";
	/* a partial last round (--max-bytes): what it did not copy is new to the chain */
	else if (!why && (r = dump_dirty_from(dirty, nd, from)) < 0)
		why = "no memory";
	if (r == -ENOMEM)
		return r;
	if (!why && s->o->track_mem && s->o->leave_running &&
	    predump_state_store(s->d, c->tracker, c->pid) < 0)
		why = "its tracking state cannot be saved";
	if (why) {
		pr_info("dump: process %d: %s: all its pages are copied", c->pid, why);
		free(*dirty);
		free(*held);
		*dirty = *held = NULL;
		*nd = *nh = 0;
		return 0;
	}
	c->delta = true;
	c->dirty = *dirty;
	c->n_dirty = *nd;
	c->held = *held;
	c->n_held = *nh;
	return 0;
}

/* dump --track-mem --leave-running without a chain: start tracking c now (frozen,
 * after its images are written, so the tracker starts from exactly the dumped state):
 * arm, protect every page with a first scan (its answer, "everything", is not needed),
 * save the state next to the images. The next pre-dump or dump with this directory as
 * --prev-images-dir then copies only what was written since. Failing to track is
 * logged, never a failed dump (the next round then copies whole). */
static void dump_track_new(struct dump_stage *s, struct dump_ctx *c)
{
	unsigned int flags =
		DIRTY_ARM_KEEP | (dump_files_shared(&s->t, c) ? 0 : DIRTY_ARM_CLOSE_STALE);
	struct dirty_range *dirty = NULL;
	struct remote rt = { 0 };
	size_t nd = 0;
	uint64_t t0 = now_ns();
	int r = remote_init(&rt, c->pid, 0);

	if (r == 0)
		r = dirty_arm(&rt, c->pid, c->sz.pidfd, c->vmas, c->n_vmas, flags, &c->tracker);
	if (remote_fini(&rt) < 0 && r == 0)
		r = -EIO;
	if (r == 0 && c->tracker) {
		dirty_mark_registered(c->tracker, c->vmas, c->n_vmas);
		r = dirty_scan(c->tracker, c->vmas, c->n_vmas, &dirty, &nd);
		free(dirty);
	}
	if (r == 0 && c->tracker)
		r = predump_state_store(s->d, c->tracker, c->pid);
	s->scan_ns += now_ns() - t0;
	c->track_new = r == 0 && c->tracker;
	if (c->track_new)
		pr_info("dump: process %d: memory tracking started (%s mode, fd %d)", c->pid,
			dirty_tracker_mode(c->tracker) == DIRTY_MODE_HASH ? "hash" : "uffd",
			dirty_tracker_kept_fd(c->tracker));
	else
		pr_warn("dump: process %d: memory tracking not started (%s): the next round "
			"copies it whole",
			c->pid, strerror(-r));
}

/* End of the tracker of c (tree still seized): kept (state saved) with --track-mem
 * --leave-running on success, else closed in the target. */
static void dump_untrack(struct dump_stage *s, struct dump_ctx *c, int r)
{
	struct remote rt = { 0 };
	if (!c->tracker)
		return;
	if (r == 0 && (c->delta || c->track_new) && s->o->track_mem && s->o->leave_running) {
		dirty_free(c->tracker);
	} else if (c->seized && remote_init(&rt, c->pid, 0) == 0) {
		(void)dirty_disarm(c->tracker, &rt);
		(void)remote_fini(&rt);
	} else {
		(void)dirty_disarm(c->tracker, NULL);
	}
	c->tracker = NULL;
}

/* One process: core of every thread, fds, mm, pages (fds before mm: memfd mappings
 * are linked to the fd's FileEntry id). */
static int dump_one(struct dump_stage *s, struct dump_ctx *c)
{
	struct dirty_range *dirty = NULL, *held = NULL;
	size_t nd = 0, nh = 0;
	int r;
	if (s->prev && (r = dump_track(s, c, &dirty, &nd, &held, &nh)) < 0)
		return r;
	r = dump_one_images(s, c);
	if (r == 0 && !s->prev && s->o->track_mem && s->o->leave_running)
		dump_track_new(s, c);
	c->dirty = c->held = NULL;
	free(dirty);
	free(held);
	return r;
}

static int dump_one_images(struct dump_stage *s, struct dump_ctx *c)
{
	int r;
	if ((r = dump_core_write(c)) < 0)
		return r;
	if ((r = fs_dump_task(s->fsd, c->pid, c->sz.pidfd)) < 0)
		return r;
	if ((r = dump_mm_write(c)) < 0)
		return r;
	uint64_t t0 = now_ns();
	if ((r = dump_pages_write(c)) < 0)
		return r;
	s->copy_ns += now_ns() - t0;
	s->pages += c->pages_written;
	s->parent += c->pages_parent;
	return 0;
}

/* Every step that reads or writes per process, in pstree order. */
static int dump_procs(struct dump_stage *s)
{
	struct fs_dump_opts fo = { .shell_job = s->o->shell_job };
	struct dump_tree *t = &s->t;
	int r = 0;

	for (size_t i = 0; r == 0 && i < t->n; i++) {
		t->p[i].d = s->d;
		t->p[i].freeze_time_ns = s->freeze_time_ns;
		if (!t->p[i].zombie && (r = collect_outside(t, &t->p[i])) == 0)
			restart_fixup(s, &t->p[i]);
	}
	for (size_t i = 0; r == 0 && i < t->n; i++)
		if (!t->p[i].zombie)
			r = dump_core_remote(&t->p[i]);
	if (r == 0)
		r = dump_pstree_write(t, s->d);
	if (r == 0)
		r = fs_dump_init(s->d, &fo, &s->fsd);
	for (size_t i = 0; r == 0 && i < t->n; i++) {
		t->p[i].fsd = s->fsd;
		if (!t->p[i].zombie)
			r = dump_one(s, &t->p[i]);
	}
	if (r == 0)
		r = fs_dump_finish(s->fsd);
	return r;
}

static int commit(struct dump_stage *s)
{
	InventoryEntry inv;
	img_inventory_init(&inv);
	inv.root_pid = s->o->pid;
	inv.kind = IMG_KIND_DUMP;
	inv.has_leave_running = inv.has_shell_job = inv.has_dump_time_ns = 1;
	inv.leave_running = s->o->leave_running;
	inv.shell_job = s->o->shell_job;
	inv.dump_time_ns = s->freeze_time_ns;
	if (s->t.pidns)
		inv.has_pidns = inv.pidns = 1;
	if (s->prev)
		inv.parent = (char *)s->o->prev_images_dir;
	inv.vdso_layout = dump_vdso_layout(&s->t.p[0]);
	if (!inv.vdso_layout)
		return -ENOMEM;
	int r = img_dir_commit(s->d, &inv);
	free(inv.vdso_layout);
	return r;
}

/* --json: one line {"round": {...}} on stdout (docs/predump.md); the freeze is from
 * the seize to the kill (after the tree's teardown) or resume of the tree, images_ms
 * from the seize to the committed images. */
static void dump_json(const struct dump_stage *s, size_t nprocs)
{
	printf("{\"round\": {\"kind\": \"dump\", \"pid\": %d, \"procs\": %zu, \"delta\": %s, "
	       "\"freeze_ms\": %.3f, \"images_ms\": %.3f, \"scan_ms\": %.3f, \"copy_ms\": %.3f, "
	       "\"total_ms\": %.3f, "
	       "\"pages_written\": %llu, \"pages_parent\": %llu, \"bytes\": %llu}}\n",
	       s->o->pid, nprocs, s->prev ? "true" : "false",
	       s->seize_ns ? (now_ns() - s->seize_ns) / 1e6 : 0.0,
	       s->images_ns ? (s->images_ns - s->seize_ns) / 1e6 : 0.0, s->scan_ns / 1e6,
	       s->copy_ns / 1e6, (now_ns() - s->t0) / 1e6, (unsigned long long)s->pages,
	       (unsigned long long)s->parent, (unsigned long long)s->pages * page_size);
	fflush(stdout);
}

#ifndef __NR_process_mrelease
#define __NR_process_mrelease 448 /* Linux 5.15 */
#endif

/* The images are complete and synced; the tree is to be killed. dump_tree_release kills
 * it and waits for every thread's exit, and that exit is mostly the kernel freeing the
 * address space (exit_mmap, on the dying thread's core: ~0.15-0.25 s per GiB of touched
 * memory here, ~1 s for 4 GiB). So the SIGKILLs go out here first (leaves first, like the
 * release), then this thread frees each address space too (process_mrelease, Linux
 * 5.15, what low-memory killers use): the two cores share that work. The release then
 * finds the processes dying and waits for their exit as before: ferry still returns only
 * once they are gone. process_mrelease failing (the process got past the point where
 * its mm is reachable, an old kernel) only means no help. */
static void dump_kill_early(struct dump_tree *t)
{
	for (size_t i = t->n; i-- > 0;)
		if (t->p[i].seized && !t->p[i].zombie)
			(void)kill(t->p[i].pid, SIGKILL);
	for (size_t i = t->n; i-- > 0;)
		if (t->p[i].seized && !t->p[i].zombie && t->p[i].sz.pidfd > 0)
			(void)syscall(__NR_process_mrelease, t->p[i].sz.pidfd, 0);
}

/* The one exit of the stage: undo everything on failure, release the tree. */
static int dump_finish(struct dump_stage *s, int r)
{
	size_t n = s->t.n;
	enum seize_end how = (r < 0 || s->o->leave_running) ? SEIZE_RESUME : SEIZE_KILL;

	for (size_t i = 0; i < s->t.n; i++)
		if (remote_fini(&s->t.p[i].rt) < 0 && r == 0)
			r = -EIO;
	/* migrate (on_frozen): the trackers wait for the verdict. A tree handed over dies
	 * with them: closing them in the frozen tree first would add the kernel's
	 * unregistering (~60 ms per GiB of tracked memory here) to the downtime. */
	bool later = r == 0 && s->o->on_frozen;
	for (size_t i = 0; !later && i < s->t.n; i++)
		dump_untrack(s, &s->t.p[i], r);
	/* migrate: the images are committed (also at the destination); the tree stays
	 * frozen while the destination takes over, and the hook's verdict decides its fate
	 * (engine.h on_frozen). A refused hand-over keeps the complete images. */
	bool committed = r == 0;
	if (r == 0 && s->o->on_frozen) {
		int h = s->o->on_frozen(s->o->on_frozen_arg);
		how = h == 0 ? SEIZE_KILL : h == -EINPROGRESS ? SEIZE_STOP : SEIZE_RESUME;
		r = h;
	}
	for (size_t i = 0; later && i < s->t.n; i++) {
		struct dump_ctx *c = &s->t.p[i];
		if (how == SEIZE_KILL) { /* its tracker goes with the tree */
			dirty_free(c->tracker);
			c->tracker = NULL;
		} else {
			dump_untrack(s, c, r); /* resumed or stopped: closed in the target */
		}
	}
	/* a tree that resumes after its fds were finished gets its sockets back as they were */
	if (how == SEIZE_RESUME && r < 0)
		fs_dump_resume(s->fsd);
	if (how == SEIZE_KILL)
		dump_kill_early(&s->t);
	dump_tree_release(&s->t, how);
	if (r == 0 && s->o->json)
		dump_json(s, n);
	if (r < 0 && s->d && !committed)
		dir_rollback(s);
	if (r == 0)
		pr_info("dumped tree of %d (%zu processes) into '%s': %llu pages, %llu in the "
			"parent chain, %.1f ms%s",
			s->o->pid, n, s->o->images_dir, (unsigned long long)s->pages,
			(unsigned long long)s->parent, (now_ns() - s->t0) / 1e6,
			s->o->leave_running ? ", left running" : "");
	img_dir_free(s->prev);
	fs_dump_free(s->fsd);
	img_dir_free(s->d);
	for (size_t i = 0; i < s->snap.n; i++)
		free(s->snap.names[i]);
	free(s->snap.names);
	return r;
}

int dump_main(const struct ferry_opts *o)
{
	struct dump_stage s = { .o = o, .t = { .o = o }, .t0 = now_ns() };
	struct stat sb;
	struct timespec ts;
	int r;

	if ((r = check_args(o)) < 0)
		return r;
	s.dir_existed = stat(o->images_dir, &sb) == 0;
	if ((r = img_dir_create(o->images_dir, &s.d)) < 0)
		return r;
	if ((r = dir_snapshot(o->images_dir, &s.snap)) < 0)
		goto out;
	if (o->prev_images_dir &&
	    (r = predump_prev_open(o, s.prev_path, sizeof(s.prev_path), &s.prev)) < 0)
		goto out;
	/* over a pre-dump chain the freeze is what counts: smaps (a page-table walk) is
	 * read now, while the tree runs */
	if (o->prev_images_dir && (r = proc_snap_tree(o->pid, &s.t.snap, &s.t.n_snap, 4096)) < 0)
		goto out;
	s.seize_ns = now_ns();
	if (o->frozen_at)
		*o->frozen_at = s.seize_ns;
	if ((r = dump_tree_seize(&s.t)) < 0)
		goto out;
	clock_gettime(CLOCK_REALTIME, &ts);
	s.freeze_time_ns = (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
	if ((r = dump_tree_check(&s.t)) < 0)
		goto out;
	if ((r = dump_procs(&s)) < 0)
		goto out;
	r = commit(&s);
	s.images_ns = now_ns();
out:
	return dump_finish(&s, r);
}
