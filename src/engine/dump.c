/*
 * dump: `ferry dump -t PID -D DIR [--leave-running] [--shell-job]` for one
 * single-threaded process without children.
 *
 * The stage is a flat list of steps (docs/dump.md):
 *   validate args -> img_dir_create -> seize -> refuse threads/children -> read state
 *   from outside (stat, status, smaps, registers, signal queues) -> one remote session
 *   (injected read-only queries) -> pstree, core, mm, pagemap+pages images -> fds (fs)
 *   -> inventory (commit) -> kill, or resume with --leave-running.
 * dump_finish() is the one exit: it always ends the remote session first; on failure it
 * resumes the process untouched, unlinks every file this dump created (files that were
 * in DIR before are kept; DIR is removed only if this dump created it) and returns the
 * error, which was logged once where it happened.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
	struct dump_ctx c;
	struct dir_snap snap;
	bool dir_existed;
	bool seized;
	struct fs_dump *fsd;
	uint64_t t0;
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
	const char *path = s->c.o->images_dir;
	int dfd = img_dir_fd(s->c.d);
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

/* Single thread, no children: anything else is refused with one clear line. */
static int check_tree(struct dump_ctx *c)
{
	char path[64], *buf = NULL, *comm = NULL;
	size_t len;
	int r;

	if (c->sz.n_tids > 1) {
		pr_err("process %d has %zu threads; multi-threaded processes are not supported yet",
		       c->pid, c->sz.n_tids);
		return -EOPNOTSUPP;
	}
	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", c->pid, c->pid);
	if ((r = read_file(path, &buf, &len, 1 << 20)) < 0)
		return pr_err_ret(r, "cannot read %s", path);
	int child = atoi(buf);
	free(buf);
	if (!child)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/comm", child);
	if (read_file(path, &comm, &len, 64) == 0 && len && comm[len - 1] == '\n')
		comm[len - 1] = 0;
	pr_err("process %d has children (first: %d '%s'); process trees are not supported yet",
	       c->pid, child, comm ? comm : "?");
	free(comm);
	return -EOPNOTSUPP;
}

/* Everything read from outside, before the remote session changes registers/mask. */
static int collect_outside(struct dump_ctx *c)
{
	int r = proc_parse_stat(c->pid, 0, &c->st);
	if (r == 0)
		r = proc_parse_status(c->pid, 0, &c->status);
	if (r == 0)
		r = proc_parse_smaps(c->pid, &c->vmas, &c->n_vmas);
	if (r == -ESRCH || r == -ENOENT)
		return pr_err_ret(r, "process %d disappeared during the dump", c->pid);
	if (r < 0)
		return r;
	if ((r = dump_vmas_check(c)) < 0)
		return r;
	return dump_thread_collect(c);
}

/* One remote session for every injected query; the session ends here on success. */
static int collect_remote(struct dump_ctx *c)
{
	int r = remote_init(&c->rt, c->pid, 0);
	if (r == 0)
		r = dump_core_remote(c);
	if (r < 0)
		return r;
	r = remote_fini(&c->rt);
	memset(&c->rt, 0, sizeof(c->rt));
	return r;
}

static int pstree_write(struct dump_ctx *c)
{
	char name[64];
	struct img_writer *w;
	PstreeEntry e;
	uint32_t tid = c->pid;
	int r = img_writer_open(c->d, img_name(name, "pstree.img"), IMG_MAGIC_PSTREE, &w);
	if (r < 0)
		return r;
	pstree_entry__init(&e);
	e.pid = c->pid;
	e.ppid = 0;		/* the root of the dumped tree (pstree.proto) */
	e.pgid = c->st.pgrp;
	e.sid = c->st.session;
	e.n_threads = 1;
	e.threads = &tid;
	r = img_write_pb(w, &e.base);
	if (r < 0) {
		img_writer_abort(w);
		return r;
	}
	return img_writer_close(w);
}

static int dump_files(struct dump_stage *s)
{
	struct fs_dump_opts fo = { .shell_job = s->c.o->shell_job };
	int r = fs_dump_init(s->c.d, &fo, &s->fsd);
	if (r == 0)
		r = fs_dump_task(s->fsd, s->c.pid, s->c.sz.pidfd);
	if (r == 0)
		r = fs_dump_finish(s->fsd);
	return r;
}

static int commit(struct dump_ctx *c)
{
	InventoryEntry inv;
	img_inventory_init(&inv);
	inv.root_pid = c->pid;
	inv.kind = IMG_KIND_DUMP;
	inv.has_leave_running = inv.has_shell_job = inv.has_dump_time_ns = 1;
	inv.leave_running = c->o->leave_running;
	inv.shell_job = c->o->shell_job;
	inv.dump_time_ns = c->freeze_time_ns;
	inv.vdso_layout = dump_vdso_layout(c);
	if (!inv.vdso_layout)
		return -ENOMEM;
	int r = img_dir_commit(c->d, &inv);
	free(inv.vdso_layout);
	return r;
}

/* The one exit of the stage: undo everything on failure, release the process. */
static int dump_finish(struct dump_stage *s, int r)
{
	struct dump_ctx *c = &s->c;
	if (remote_fini(&c->rt) < 0 && r == 0)
		r = -EIO;
	if (s->seized) {
		enum seize_end how = (r < 0 || c->o->leave_running) ? SEIZE_RESUME : SEIZE_KILL;
		seize_release(&c->sz, how);
	}
	if (r < 0 && c->d)
		dir_rollback(s);
	if (r == 0)
		pr_info("dumped process %d into '%s': %llu pages, %.1f ms%s", c->pid,
			c->o->images_dir, (unsigned long long)c->pages_written,
			(now_ns() - s->t0) / 1e6, c->o->leave_running ? ", left running" : "");
	fs_dump_free(s->fsd);
	dump_thread_free(&c->th);
	proc_vmas_free(c->vmas, c->n_vmas);
	img_dir_free(c->d);
	for (size_t i = 0; i < s->snap.n; i++)
		free(s->snap.names[i]);
	free(s->snap.names);
	return r;
}

int dump_main(const struct ferry_opts *o)
{
	struct dump_stage s = { .c = { .o = o, .pid = o->pid }, .t0 = now_ns() };
	struct dump_ctx *c = &s.c;
	struct stat sb;
	struct timespec ts;
	int r;

	if ((r = check_args(o)) < 0)
		return r;
	s.dir_existed = stat(o->images_dir, &sb) == 0;
	if ((r = img_dir_create(o->images_dir, &c->d)) < 0)
		return r;
	if ((r = dir_snapshot(o->images_dir, &s.snap)) < 0)
		goto out;
	if ((r = seize_process(o->pid, &c->sz)) < 0)
		goto out;
	s.seized = true;
	clock_gettime(CLOCK_REALTIME, &ts);
	c->freeze_time_ns = (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
	if ((r = check_tree(c)) < 0)
		goto out;
	if ((r = collect_outside(c)) < 0)
		goto out;
	if ((r = collect_remote(c)) < 0)
		goto out;
	if ((r = pstree_write(c)) < 0)
		goto out;
	if ((r = dump_core_write(c)) < 0)
		goto out;
	if ((r = dump_mm_write(c)) < 0)
		goto out;
	if ((r = dump_pages_write(c)) < 0)
		goto out;
	if ((r = dump_files(&s)) < 0)
		goto out;
	r = commit(c);
out:
	return dump_finish(&s, r);
}
