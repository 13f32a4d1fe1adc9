/*
 * fs (restore side): fs_rst_tree_prepare() in the restorer, fs_rst_tree_in_stub() in
 * each new task. The single-process API (fs_rst_prepare/fs_rst_in_stub) is a tree of one.
 *
 * prepare: reads fdinfo-<pid>.img of every process and the FileEntry records they use
 * from files.img (untrusted: fd numbers < FS_MAX_FD and unique, ids resolve, enums and
 * sizes bounded by each kind's prepare), loads pipe data, recreates ghost files. Then
 * the descriptions that must be shared between processes are created once, here in the
 * restorer, at numbers above every target fd of the tree (tree_base): a file id held by
 * more than one process, and every file of a group (the ends of one pipe, FIFO or
 * socketpair) whose members are held by different processes. Every task inherits them.
 *
 * in_stub (a forked copy of the restorer, about to be taken over by ptrace; no logging,
 * no allocation), in this order:
 *  1. make room: RLIMIT_NOFILE soft is raised (up to hard) if the numbers we need do not
 *     fit (the engine sets the dumped limits afterwards);
 *  2. move the keep fds away if they sit on target numbers;
 *  3. open every private file once at a number above the highest target
 *     (F_DUPFD_CLOEXEC), so no open can land on a number still needed by an inherited fd
 *     we read from (ghost files, the restorer's terminal, shared descriptions);
 *  4. dup3 each file (private or inherited) to each of its target numbers with its
 *     FD_CLOEXEC (fds sharing a description share it: offset, flags);
 *  5. late hooks (epoll registrations on the now installed target numbers), called in
 *     the stub of every holder (the kind acts in one: epoll in its owner's);
 *  6. close_range every other number except the keep fds.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "fs/fs-priv.h"
#include "img/img.h"

static const struct fd_ops *const rst_kinds[] = {
	&fd_reg_ops,	 &fd_chr_ops,	  &fd_tty_ops,	    &fd_pipe_ops,  &fd_fifo_ops,
	&fd_eventfd_ops, &fd_timerfd_ops, &fd_signalfd_ops, &fd_memfd_ops, &fd_inotify_ops,
	&fd_epoll_ops,	 &fd_unix_ops,	  &fd_inet_ops,
};

uint32_t fs_sanitize_flags(uint32_t flags)
{
	return flags & FS_FD_FLAGS_MASK & ~(uint32_t)(FS_DROP_FLAGS | FS_O_TMPFILE_BIT);
}

int fs_check_path(const char *path, char **out)
{
	if (!path || path[0] != '/' || strlen(path) >= PATH_MAX)
		return pr_err_ret(-EINVAL, "bad path in files.img");
	*out = strdup(path);
	return *out ? 0 : -ENOMEM;
}

int fs_stub_err(char *err, size_t errlen, int e, const char *fmt, ...)
{
	va_list ap;
	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -e;
}

int fs_stub_move_high(int fd, int base)
{
	if (fd >= base)
		return fd;
	int nfd = fcntl(fd, F_DUPFD_CLOEXEC, base);
	int e = errno;
	close(fd);
	return nfd < 0 ? -e : nfd;
}

struct rst_pipe *fs_rst_pipe(struct fs_rst *r, uint32_t id)
{
	struct rst_pipe *p = NULL;
	for (size_t i = 0; i < r->npipes; i++)
		if (r->pipes[i].id == id)
			return &r->pipes[i];
	p = &r->pipes[r->npipes]; /* capacity: one per file of the tree, reserved */
	*p = (struct rst_pipe){ .id = id, .ends = { -1, -1 } };

	struct img_buf *b = r->pipes_img;
	if (!b) {
		int e = img_load(r->d, "pipes-data.img", IMG_MAGIC_PIPES_DATA, &b);
		if (e == -ENOENT) {
			r->npipes++;
			return p; /* no pipe had data */
		}
		if (e < 0)
			return NULL;
		r->pipes_img = b;
	}
	PipeDataEntry *pe;
	int e;
	b->pos = 4;
	while ((e = img_buf_next(b, &pipe_data_entry__descriptor, (ProtobufCMessage **)&pe)) > 0) {
		bool mine = pe->pipe_id == id;
		if (mine && p->data)
			e = -EBADMSG; /* two records for one pipe */
		else if (mine && pe->data.len > FS_MAX_PIPE_SZ)
			e = -EFBIG;
		else if (mine && pe->data.len) {
			p->data = malloc(pe->data.len);
			if (!p->data)
				e = -ENOMEM;
			else
				memcpy(p->data, pe->data.data, pe->data.len);
			p->len = pe->data.len;
		}
		protobuf_c_message_free_unpacked(&pe->base, NULL);
		if (e < 0)
			break;
	}
	if (e < 0) {
		free(p->data);
		pr_err("pipes-data.img: bad record for pipe %u (%s)", id, strerror(-e));
		return NULL;
	}
	r->npipes++;
	return p;
}

static int cmp_fd(const void *a, const void *b)
{
	const struct rst_fd *x = a, *y = b;
	return (x->fd > y->fd) - (x->fd < y->fd);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

#define FD_ID(v) ((uint32_t)(uintptr_t)(v)->file) /* before ids are resolved */

/* fdinfo-<pid>.img -> t->fds (sorted, unique, bounded; .file holds the id for now). */
static int load_fdinfo(struct fs_rst *r, struct rst_task *t)
{
	char name[64];
	struct img_buf *b;
	FdinfoEntry *fe;
	size_t cap = 0;
	int e = img_load(r->d, img_name(name, "fdinfo-%d.img", t->pid), IMG_MAGIC_FDINFO, &b);
	if (e < 0)
		return e == -ENOENT ? pr_err_ret(e, "image %s is missing", name) : e;
	while ((e = img_buf_next(b, &fdinfo_entry__descriptor, (ProtobufCMessage **)&fe)) > 0) {
		bool bad = fe->fd >= FS_MAX_FD || fe->id == 0 || (fe->flags & ~FD_CLOEXEC);
		struct rst_fd v = { .fd = (int)fe->fd,
				    .cloexec = fe->flags & FD_CLOEXEC,
				    .file = (void *)(uintptr_t)fe->id };
		protobuf_c_message_free_unpacked(&fe->base, NULL);
		if (bad || t->nfds >= FS_MAX_FD) {
			e = -EBADMSG;
			break;
		}
		if (t->nfds == cap) {
			cap = cap ? cap * 2 : 64;
			struct rst_fd *n = realloc(t->fds, cap * sizeof(*n));
			if (!n) {
				e = -ENOMEM;
				break;
			}
			t->fds = n;
		}
		t->fds[t->nfds++] = v;
	}
	img_buf_free(b);
	if (e < 0)
		return pr_err_ret(e, "%s: bad record", name);
	if (t->nfds)
		qsort(t->fds, t->nfds, sizeof(*t->fds), cmp_fd);
	for (size_t i = 1; i < t->nfds; i++)
		if (t->fds[i].fd == t->fds[i - 1].fd)
			return pr_err_ret(-EBADMSG, "%s: fd %d listed twice", name, t->fds[i].fd);
	return 0;
}

/* The sorted unique ids of every task: r->files[i].id, with holders and owner. */
static int collect_ids(struct fs_rst *r)
{
	size_t n = 0, k = 0;
	for (size_t i = 0; i < r->ntasks; i++)
		n += r->tasks[i].nfds;
	uint32_t *ids = calloc(n + 1, sizeof(*ids));
	if (!ids)
		return -ENOMEM;
	for (size_t i = 0; i < r->ntasks; i++)
		for (size_t j = 0; j < r->tasks[i].nfds; j++)
			ids[k++] = FD_ID(&r->tasks[i].fds[j]);
	if (n)
		qsort(ids, n, sizeof(*ids), cmp_u32);
	k = 0;
	for (size_t i = 0; i < n; i++)
		if (!k || ids[k - 1] != ids[i])
			ids[k++] = ids[i];
	r->files = calloc(k + 1, sizeof(*r->files));
	r->pipes = calloc(k + 1, sizeof(*r->pipes));
	if (!r->files || !r->pipes) {
		free(ids);
		return -ENOMEM;
	}
	r->nfiles = k;
	for (size_t i = 0; i < k; i++) {
		r->files[i].id = ids[i];
		r->files[i].ghost_fd = r->files[i].tmp_fd = r->files[i].shared_fd = -1;
	}
	free(ids);
	return 0;
}

static struct rst_file *file_by_id(struct fs_rst *r, uint32_t id)
{
	size_t lo = 0, hi = r->nfiles;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (r->files[mid].id == id)
			return &r->files[mid];
		if (r->files[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Resolve every task's fds to files; list each task's distinct files; count holders. */
static int resolve_fds(struct fs_rst *r)
{
	for (size_t i = 0; i < r->ntasks; i++) {
		struct rst_task *t = &r->tasks[i];
		t->files = calloc(t->nfds + 1, sizeof(*t->files));
		if (!t->files)
			return -ENOMEM;
		for (size_t j = 0; j < t->nfds; j++) {
			struct rst_file *f = file_by_id(r, FD_ID(&t->fds[j]));
			t->fds[j].file = f;
			bool seen = false;
			for (size_t k = 0; k < t->nfiles && !seen; k++)
				seen = t->files[k] == f;
			if (seen)
				continue;
			t->files[t->nfiles++] = f;
			if (!f->nholders++)
				f->owner = t->pid;
		}
	}
	return 0;
}

static const struct fd_ops *kind_ops(int type)
{
	for (size_t k = 0; k < ARRAY_SIZE(rst_kinds); k++)
		if ((int)rst_kinds[k]->kind == type)
			return rst_kinds[k];
	return NULL;
}

/* files.img -> r->files (every id must be found exactly once). */
static int load_files(struct fs_rst *r)
{
	struct img_buf *b;
	FileEntry *fe;
	size_t count = 0;
	int e = img_load(r->d, "files.img", IMG_MAGIC_FILES, &b);
	if (e < 0)
		return e == -ENOENT ? pr_err_ret(e, "image files.img is missing") : e;
	bool logged = true; /* errors inside the loop are logged where they arise */
	while ((logged = (e = img_buf_next(b, &file_entry__descriptor, (ProtobufCMessage **)&fe)) >
			 0)) {
		struct rst_file *f = file_by_id(r, fe->id);
		const struct fd_ops *ops = kind_ops(fe->type);
		if (++count > FS_MAX_FILES || (f && (f->ops || !ops)))
			e = pr_err_ret(-EBADMSG, "files.img: bad or duplicate entry (id %u)",
				       fe->id);
		else if (f) {
			f->ops = ops;
			r->pid = f->owner;
			e = ops->prepare(r, fe, f);
		}
		protobuf_c_message_free_unpacked(&fe->base, NULL);
		if (e < 0)
			break;
	}
	img_buf_free(b);
	if (e < 0)
		return logged ? e : pr_err_ret(e, "files.img: bad record");
	for (size_t i = 0; i < r->nfiles; i++)
		if (!r->files[i].ops)
			return pr_err_ret(-EBADMSG, "file id %u of PID %d is not in files.img",
					  r->files[i].id, r->files[i].owner);
	for (size_t i = 0; i < r->nfiles; i++) {
		struct rst_file *f = &r->files[i];
		r->pid = f->owner;
		if (f->ops->linked && (e = f->ops->linked(r, f)) < 0)
			return e;
	}
	return 0;
}

/* Mark what must be created in the restorer: files held by several tasks, and every
 * member of a group whose members have different holders. */
static void mark_shared(struct fs_rst *r)
{
	for (size_t i = 0; i < r->nfiles; i++) {
		struct rst_file *f = &r->files[i];
		if (f->nholders > 1)
			f->shared = true;
		for (size_t j = 0; f->group && !f->shared && j < r->nfiles; j++) {
			const struct rst_file *g = &r->files[j];
			if (g->group == f->group && (g->nholders > 1 || g->owner != f->owner))
				f->shared = true;
		}
	}
}

/* Make sure numbers up to need can be allocated (stub: no logging). */
static int stub_room(size_t need, char *err, size_t errlen)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return fs_stub_err(err, errlen, errno, "getrlimit(NOFILE): %m");
	if (rl.rlim_cur >= need)
		return 0;
	if (rl.rlim_max < need)
		return fs_stub_err(err, errlen, EMFILE,
				   "fds up to %zu need RLIMIT_NOFILE above %llu", need,
				   (unsigned long long)rl.rlim_max);
	rl.rlim_cur = need;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		return fs_stub_err(err, errlen, errno, "setrlimit(NOFILE, %zu): %m", need);
	return 0;
}

/* Restorer: create the shared descriptions above every target number. */
static int create_shared(struct fs_rst *r)
{
	char err[512];
	size_t nshared = 0;
	for (size_t i = 0; i < r->nfiles; i++)
		nshared += r->files[i].shared;
	if (!nshared)
		return 0;
	int e = stub_room((size_t)r->tree_base + 4 * nshared + 64, err, sizeof(err));
	if (e < 0)
		return pr_err_ret(e, "%s", err);
	for (size_t i = 0; i < r->nfiles; i++) {
		struct rst_file *f = &r->files[i];
		if (!f->shared)
			continue;
		r->pid = f->owner;
		int fd = f->ops->open(r, f, r->tree_base, err, sizeof(err));
		if (fd < 0)
			return pr_err_ret(fd, "shared file %u (%s, first held by PID %d): %s",
					  f->id, f->ops->name, f->owner, err);
		f->shared_fd = f->tmp_fd = fd;
		pr_debug("file %u (%s) shared by %u processes: restorer fd %d", f->id, f->ops->name,
			 f->nholders, fd);
	}
	return 0;
}

int fs_rst_tree_prepare(struct img_dir *d, const pid_t *pids, size_t n, int shell_job,
			struct fs_rst_tree **out)
{
	struct fs_rst_tree *t = calloc(1, sizeof(*t));
	struct fs_rst *r = t ? &t->r : NULL;
	int e = -ENOMEM;
	if (!t || !(r->tasks = calloc(n + 1, sizeof(*r->tasks))))
		goto fail;
	r->d = d;
	r->shell_job = shell_job;
	r->tty_src = -1;
	r->tree_base = 3;
	for (int i = 0; shell_job && i < 3 && r->tty_src < 0; i++)
		if (isatty(i))
			r->tty_src = i;
	for (size_t i = 0; i < n; i++) {
		struct rst_task *tk = &r->tasks[r->ntasks++];
		tk->pid = pids[i];
		for (size_t j = 0; j < i; j++)
			if (pids[j] == pids[i]) {
				e = pr_err_ret(-EINVAL, "PID %d listed twice", pids[i]);
				goto fail;
			}
		if ((e = load_fdinfo(r, tk)) < 0)
			goto fail;
		if (tk->nfds && tk->fds[tk->nfds - 1].fd + 1 > r->tree_base)
			r->tree_base = tk->fds[tk->nfds - 1].fd + 1;
	}
	if ((e = collect_ids(r)) < 0 || (e = resolve_fds(r)) < 0 || (e = load_files(r)) < 0)
		goto fail;
	mark_shared(r);
	if ((e = create_shared(r)) < 0)
		goto fail;
	pr_debug("%zu processes, %zu files to restore, shared above fd %d", r->ntasks, r->nfiles,
		 r->tree_base);
	*out = t;
	return 0;
fail:
	fs_rst_tree_free(t);
	return e;
}

int fs_rst_tree_file_fd(struct fs_rst_tree *t, uint32_t file_id)
{
	struct rst_file *f = t ? file_by_id(&t->r, file_id) : NULL;
	if (!f || !f->ops)
		return -ENOENT;
	if (f->shared_fd >= 0)
		return f->shared_fd;
	if (f->ops->kind == FD_KIND__FDK_MEMFD && f->ghost_fd >= 0)
		return f->ghost_fd;
	return -ENOENT;
}

void fs_rst_tree_free(struct fs_rst_tree *t)
{
	if (!t)
		return;
	struct fs_rst *r = &t->r;
	for (size_t i = 0; r->files && i < r->nfiles; i++) {
		struct rst_file *f = &r->files[i];
		if (f->ops && f->ops->release)
			f->ops->release(f);
		if (f->shared_fd >= 0)
			close(f->shared_fd);
		free(f->path);
	}
	for (size_t i = 0; r->pipes && i < r->npipes; i++)
		free(r->pipes[i].data);
	for (size_t i = 0; r->tasks && i < r->ntasks; i++) {
		free(r->tasks[i].fds);
		free(r->tasks[i].files);
	}
	img_buf_free(r->pipes_img);
	free(r->files);
	free(r->pipes);
	free(r->tasks);
	free(t);
}

int fs_rst_prepare(struct img_dir *d, pid_t pid, int shell_job, struct fs_rst **out)
{
	struct fs_rst_tree *t;
	int e = fs_rst_tree_prepare(d, &pid, 1, shell_job, &t);
	if (e == 0)
		*out = &t->r;
	return e;
}

void fs_rst_free(struct fs_rst *r)
{
	fs_rst_tree_free((struct fs_rst_tree *)r); /* r is the first member */
}

/* ---- the stub ------------------------------------------------------------------- */

static bool is_target(const struct rst_task *t, int fd)
{
	struct rst_fd key = { .fd = fd };
	return t->nfds && bsearch(&key, t->fds, t->nfds, sizeof(*t->fds), cmp_fd) != NULL;
}

/* The smallest number >= from that must stay open (target or keep), or -1. */
static int next_kept(const struct rst_task *t, size_t *i, const int *keep, size_t n_keep,
		     unsigned int from)
{
	long best = -1;
	while (*i < t->nfds && (unsigned int)t->fds[*i].fd < from)
		(*i)++;
	if (*i < t->nfds)
		best = t->fds[*i].fd;
	for (size_t k = 0; k < n_keep; k++)
		if (keep[k] >= 0 && (unsigned int)keep[k] >= from && (best < 0 || keep[k] < best))
			best = keep[k];
	return (int)best;
}

/* Close every number but the targets and the keep fds. */
static int stub_close_others(const struct rst_task *t, const int *keep, size_t n_keep)
{
	unsigned int cur = 0;
	size_t i = 0;
	int k;
	while ((k = next_kept(t, &i, keep, n_keep, cur)) >= 0) {
		if ((unsigned int)k > cur && close_range(cur, (unsigned int)k - 1, 0) < 0)
			return -errno;
		cur = (unsigned int)k + 1;
	}
	return close_range(cur, ~0U, 0) < 0 ? -errno : 0;
}

/* Steps 3-5: open the private files, place every fd, run the late hooks. */
static int stub_install(struct fs_rst *r, struct rst_task *t, int base, char *err, size_t errlen)
{
	for (size_t i = 0; i < t->nfiles; i++) {
		struct rst_file *f = t->files[i];
		int fd = f->shared ? f->shared_fd : f->ops->open(r, f, base, err, errlen);
		if (fd < 0)
			return fd;
		f->tmp_fd = fd;
	}
	for (size_t i = 0; i < t->nfds; i++) {
		const struct rst_fd *d = &t->fds[i];
		if (dup3(d->file->tmp_fd, d->fd, d->cloexec ? O_CLOEXEC : 0) < 0)
			return fs_stub_err(err, errlen, errno, "dup3(%d, %d): %m", d->file->tmp_fd,
					   d->fd);
	}
	for (size_t i = 0; i < t->nfiles; i++) {
		struct rst_file *f = t->files[i];
		int e = f->ops->late ? f->ops->late(r, f, err, errlen) : 0;
		if (e < 0)
			return e;
	}
	return 0;
}

int fs_rst_tree_in_stub(struct fs_rst_tree *tr, pid_t pid, int *keep, size_t n_keep, char *err,
			size_t errlen)
{
	struct fs_rst *r = &tr->r;
	struct rst_task *t = NULL;
	for (size_t i = 0; i < r->ntasks && !t; i++)
		if (r->tasks[i].pid == pid)
			t = &r->tasks[i];
	if (!t)
		return fs_stub_err(err, errlen, ENOENT, "PID %d is not in the prepared tree", pid);
	r->cur = t;
	int base = t->nfds ? t->fds[t->nfds - 1].fd + 1 : 3;
	size_t top = (size_t)max_t(int, base, r->tree_base) + r->nfiles;
	int e = stub_room(top + 3 * t->nfiles + n_keep + 64, err, errlen);
	if (e < 0)
		return e;
	for (size_t k = 0; k < n_keep; k++) {
		if (keep[k] < 0 || !is_target(t, keep[k]))
			continue;
		int fl = fcntl(keep[k], F_GETFD);
		int nk = fcntl(keep[k], fl >= 0 && (fl & FD_CLOEXEC) ? F_DUPFD_CLOEXEC : F_DUPFD,
			       base);
		if (nk < 0)
			return fs_stub_err(err, errlen, errno, "cannot move fd %d: %m", keep[k]);
		close(keep[k]);
		keep[k] = nk;
	}
	if ((e = stub_install(r, t, base, err, errlen)) < 0)
		return e;
	if ((e = stub_close_others(t, keep, n_keep)) < 0)
		return fs_stub_err(err, errlen, -e, "close_range: %s", strerror(-e));
	return 0;
}

int fs_rst_in_stub(struct fs_rst *r, int *keep_fd, char *err, size_t errlen)
{
	return fs_rst_tree_in_stub((struct fs_rst_tree *)r, r->tasks[0].pid, keep_fd,
				   keep_fd ? 1 : 0, err, errlen);
}
