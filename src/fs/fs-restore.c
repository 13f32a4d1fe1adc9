/*
 * fs (restore side): fs_rst_prepare() in the restorer, fs_rst_in_stub() in the new task.
 *
 * prepare: reads fdinfo-<pid>.img and the FileEntry records this task uses from
 * files.img (untrusted: fd numbers < FS_MAX_FD and unique, ids resolve, enums and
 * sizes bounded by each kind's prepare), loads pipe data, recreates ghost files.
 *
 * in_stub (a forked copy of the restorer, about to be taken over by ptrace; no logging,
 * no allocation), in this order:
 *  1. make room: RLIMIT_NOFILE soft is raised (up to hard) if the numbers we need do not
 *     fit (the engine sets the dumped limits afterwards);
 *  2. move *keep_fd away if it sits on a target number;
 *  3. open every file once at a number above the highest target (F_DUPFD_CLOEXEC), so no
 *     open can land on a number still needed by an inherited fd we read from (ghost
 *     files, the restorer's terminal);
 *  4. dup3 each file to each of its target numbers with its FD_CLOEXEC (fds sharing a
 *     description share it: offset, flags);
 *  5. close_range every other number except *keep_fd.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "fs/fs-priv.h"
#include "img/img.h"

static const struct fd_ops *const rst_kinds[] = {
	&fd_reg_ops, &fd_chr_ops, &fd_tty_ops, &fd_pipe_ops, &fd_fifo_ops,
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
	p = &r->pipes[r->npipes];	/* capacity: one per file, reserved by prepare */
	*p = (struct rst_pipe){ .id = id, .ends = { -1, -1 } };

	struct img_buf *b = r->pipes_img;
	if (!b) {
		int e = img_load(r->d, "pipes-data.img", IMG_MAGIC_PIPES_DATA, &b);
		if (e == -ENOENT) {
			r->npipes++;
			return p;	/* no pipe had data */
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
			e = -EBADMSG;	/* two records for one pipe */
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

/* fdinfo-<pid>.img -> r->fds (sorted, unique, bounded) and the sorted unique ids. */
static int load_fdinfo(struct fs_rst *r, uint32_t **ids_out, size_t *nids)
{
	char name[64];
	struct img_buf *b;
	FdinfoEntry *fe;
	size_t cap = 0;
	int e = img_load(r->d, img_name(name, "fdinfo-%d.img", r->pid), IMG_MAGIC_FDINFO, &b);
	if (e < 0)
		return e == -ENOENT ? pr_err_ret(e, "image %s is missing", name) : e;
	while ((e = img_buf_next(b, &fdinfo_entry__descriptor, (ProtobufCMessage **)&fe)) > 0) {
		bool bad = fe->fd >= FS_MAX_FD || fe->id == 0 || (fe->flags & ~FD_CLOEXEC);
		struct rst_fd v = { .fd = (int)fe->fd, .cloexec = fe->flags & FD_CLOEXEC,
				    .file = (void *)(uintptr_t)fe->id };
		protobuf_c_message_free_unpacked(&fe->base, NULL);
		if (bad || r->nfds >= FS_MAX_FD) {
			e = -EBADMSG;
			break;
		}
		if (r->nfds == cap) {
			cap = cap ? cap * 2 : 64;
			struct rst_fd *n = realloc(r->fds, cap * sizeof(*n));
			if (!n) {
				e = -ENOMEM;
				break;
			}
			r->fds = n;
		}
		r->fds[r->nfds++] = v;
	}
	img_buf_free(b);
	if (e < 0)
		return pr_err_ret(e, "%s: bad record", name);
	if (r->nfds)
		qsort(r->fds, r->nfds, sizeof(*r->fds), cmp_fd);
	uint32_t *ids = calloc(r->nfds + 1, sizeof(*ids));
	if (!ids)
		return -ENOMEM;
	for (size_t i = 0; i < r->nfds; i++) {
		if (i && r->fds[i].fd == r->fds[i - 1].fd) {
			free(ids);
			return pr_err_ret(-EBADMSG, "%s: fd %d listed twice", name, r->fds[i].fd);
		}
		ids[i] = (uint32_t)(uintptr_t)r->fds[i].file;
	}
	if (r->nfds)
		qsort(ids, r->nfds, sizeof(*ids), cmp_u32);
	size_t k = 0;
	for (size_t i = 0; i < r->nfds; i++)
		if (!k || ids[k - 1] != ids[i])
			ids[k++] = ids[i];
	*ids_out = ids;
	*nids = k;
	return 0;
}

static const struct fd_ops *kind_ops(int type)
{
	for (size_t k = 0; k < ARRAY_SIZE(rst_kinds); k++)
		if ((int)rst_kinds[k]->kind == type)
			return rst_kinds[k];
	return NULL;
}

/* files.img -> r->files[i] for ids[i]; every id must be found exactly once. */
static int load_files(struct fs_rst *r, const uint32_t *ids, size_t nids)
{
	struct img_buf *b;
	FileEntry *fe;
	size_t count = 0;
	int e = img_load(r->d, "files.img", IMG_MAGIC_FILES, &b);
	if (e < 0)
		return e == -ENOENT ? pr_err_ret(e, "image files.img is missing") : e;
	bool logged = true;	/* errors inside the loop are logged where they arise */
	while ((logged = (e = img_buf_next(b, &file_entry__descriptor,
					    (ProtobufCMessage **)&fe)) > 0)) {
		uint32_t *hit = bsearch(&fe->id, ids, nids, sizeof(*ids), cmp_u32);
		struct rst_file *f = hit ? &r->files[hit - ids] : NULL;
		const struct fd_ops *ops = kind_ops(fe->type);
		if (++count > FS_MAX_FILES || (f && (f->ops || !ops)))
			e = pr_err_ret(-EBADMSG, "files.img: bad or duplicate entry (id %u)", fe->id);
		else if (f) {
			f->id = fe->id;
			f->ops = ops;
			e = ops->prepare(r, fe, f);
		}
		protobuf_c_message_free_unpacked(&fe->base, NULL);
		if (e < 0)
			break;
	}
	img_buf_free(b);
	if (e < 0)
		return logged ? e : pr_err_ret(e, "files.img: bad record");
	for (size_t i = 0; i < nids; i++)
		if (!r->files[i].ops)
			return pr_err_ret(-EBADMSG, "file id %u of PID %d is not in files.img",
					  ids[i], r->pid);
	return 0;
}

int fs_rst_prepare(struct img_dir *d, pid_t pid, int shell_job, struct fs_rst **out)
{
	uint32_t *ids = NULL;
	size_t nids = 0;
	struct fs_rst *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->d = d;
	r->pid = pid;
	r->shell_job = shell_job;
	r->tty_src = -1;
	for (int i = 0; shell_job && i < 3 && r->tty_src < 0; i++)
		if (isatty(i))
			r->tty_src = i;
	int e = load_fdinfo(r, &ids, &nids);
	if (e < 0)
		goto fail;
	r->files = calloc(nids + 1, sizeof(*r->files));
	r->pipes = calloc(nids + 1, sizeof(*r->pipes));
	if (!r->files || !r->pipes) {
		e = -ENOMEM;
		goto fail;
	}
	r->nfiles = nids;
	for (size_t i = 0; i < nids; i++)
		r->files[i].ghost_fd = r->files[i].tmp_fd = -1;
	if ((e = load_files(r, ids, nids)) < 0)
		goto fail;
	for (size_t i = 0; i < r->nfds; i++) {
		uint32_t id = (uint32_t)(uintptr_t)r->fds[i].file;
		uint32_t *hit = bsearch(&id, ids, nids, sizeof(*ids), cmp_u32);
		r->fds[i].file = &r->files[hit - ids];
	}
	free(ids);
	pr_debug("PID %d: %zu fds, %zu files to restore", pid, r->nfds, r->nfiles);
	*out = r;
	return 0;
fail:
	free(ids);
	for (size_t i = 0; i < r->nfds; i++)
		r->fds[i].file = NULL;
	fs_rst_free(r);
	return e;
}

void fs_rst_free(struct fs_rst *r)
{
	if (!r)
		return;
	for (size_t i = 0; r->files && i < r->nfiles; i++) {
		if (r->files[i].ops && r->files[i].ops->release)
			r->files[i].ops->release(&r->files[i]);
		free(r->files[i].path);
	}
	for (size_t i = 0; i < r->npipes; i++)
		free(r->pipes[i].data);
	img_buf_free(r->pipes_img);
	free(r->files);
	free(r->pipes);
	free(r->fds);
	free(r);
}

/* ---- the stub ------------------------------------------------------------------- */

static bool is_target(const struct fs_rst *r, int fd)
{
	struct rst_fd key = { .fd = fd };
	return r->nfds && bsearch(&key, r->fds, r->nfds, sizeof(*r->fds), cmp_fd) != NULL;
}

/* Make sure numbers up to need can be allocated. */
static int stub_room(size_t need, char *err, size_t errlen)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return fs_stub_err(err, errlen, errno, "getrlimit(NOFILE): %m");
	if (rl.rlim_cur >= need)
		return 0;
	if (rl.rlim_max < need)
		return fs_stub_err(err, errlen, EMFILE, "fds up to %zu need RLIMIT_NOFILE above %llu",
				   need, (unsigned long long)rl.rlim_max);
	rl.rlim_cur = need;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		return fs_stub_err(err, errlen, errno, "setrlimit(NOFILE, %zu): %m", need);
	return 0;
}

/* Close every number but the targets and keep. */
static int stub_close_others(const struct fs_rst *r, int keep)
{
	unsigned int cur = 0;
	size_t i = 0;
	bool keep_done = keep < 0;
	while (i < r->nfds || !keep_done) {
		unsigned int k;
		if (!keep_done && (i == r->nfds || keep < r->fds[i].fd)) {
			k = (unsigned int)keep;
			keep_done = true;
		} else {
			k = (unsigned int)r->fds[i++].fd;
		}
		if (k > cur && close_range(cur, k - 1, 0) < 0)
			return -errno;
		cur = k + 1;
	}
	return close_range(cur, ~0U, 0) < 0 ? -errno : 0;
}

int fs_rst_in_stub(struct fs_rst *r, int *keep_fd, char *err, size_t errlen)
{
	int base = r->nfds ? r->fds[r->nfds - 1].fd + 1 : 3;
	int keep = keep_fd ? *keep_fd : -1;
	int e = stub_room((size_t)base + 3 * r->nfiles + 64, err, errlen);
	if (e < 0)
		return e;
	if (keep >= 0 && is_target(r, keep)) {
		int fl = fcntl(keep, F_GETFD);
		int nk = fcntl(keep, fl >= 0 && (fl & FD_CLOEXEC) ? F_DUPFD_CLOEXEC : F_DUPFD, base);
		if (nk < 0)
			return fs_stub_err(err, errlen, errno, "cannot move fd %d: %m", keep);
		close(keep);
		keep = *keep_fd = nk;
	}
	for (size_t i = 0; i < r->nfiles; i++) {
		struct rst_file *f = &r->files[i];
		int fd = f->ops->open(r, f, base, err, errlen);
		if (fd < 0)
			return fd;
		f->tmp_fd = fd;
	}
	for (size_t i = 0; i < r->nfds; i++) {
		const struct rst_fd *t = &r->fds[i];
		if (dup3(t->file->tmp_fd, t->fd, t->cloexec ? O_CLOEXEC : 0) < 0)
			return fs_stub_err(err, errlen, errno, "dup3(%d, %d): %m", t->file->tmp_fd,
					   t->fd);
	}
	if ((e = stub_close_others(r, keep)) < 0)
		return fs_stub_err(err, errlen, -e, "close_range: %s", strerror(-e));
	return 0;
}
