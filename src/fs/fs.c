/*
 * fs (dump side): the fd table of a frozen task -> files.img, fdinfo-<pid>.img and the
 * kinds' data images. See fs.h for the contract and docs/fs.md for the model.
 *
 * Invariants:
 *  - Every fd is classified first; an fd no kind accepts fails the dump with one line
 *    "PID p fd n: <kind> (<link>) is not supported yet" before any image of the task is
 *    written. The target is never changed: we only read /proc, take copies of fds with
 *    pidfd_getfd and peek at pipe buffers with tee().
 *  - One FileEntry per open file description of the whole dump: two fds (in this or a
 *    previously dumped task of the same dump) get the same id iff kcmp(KCMP_FILE) says
 *    they are the same struct file. Ids start at 1 and are never reused.
 *  - Pipe/FIFO ids are dump-wide, one per (dev, ino), so pipes shared between
 *    processes are matched by them.
 *  - Whole-tree conditions (both ends of every pipe, every unix peer in the dump) are
 *    checked by the kinds' finish hooks in fs_dump_finish, before files.img is written
 *    and still before anything is changed: fs_dump_task runs once per process.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "engine/dirty.h" /* dirty_fd_probe: the only engine call, see list_fds */
#include "fs/fs-priv.h"
#include "img/img.h"

#define KCMP_FILE 0

/* The table of kinds, tried in order. */
static const struct fd_ops *const fd_kinds[] = {
	&fd_pipe_ops,  &fd_fifo_ops,	&fd_chr_ops,	 &fd_tty_ops,	   &fd_memfd_ops,
	&fd_reg_ops,   &fd_eventfd_ops, &fd_timerfd_ops, &fd_signalfd_ops, &fd_inotify_ops,
	&fd_epoll_ops, &fd_unix_ops,	&fd_inet_ops,
};

int fs_dump_init(struct img_dir *d, const struct fs_dump_opts *o, struct fs_dump **out)
{
	struct fs_dump *fd = calloc(1, sizeof(*fd));
	if (!fd)
		return -ENOMEM;
	fd->d = d;
	if (o)
		fd->o = *o;
	*out = fd;
	return 0;
}

void fs_dump_resume(struct fs_dump *fd)
{
	if (fd)
		fd_inet_dump_resume(fd);
}

void fs_dump_free(struct fs_dump *fd)
{
	if (!fd)
		return;
	for (size_t i = 0; i < fd->nfiles; i++)
		protobuf_c_message_free_unpacked(&fd->files[i].fe->base, NULL);
	free(fd->files);
	free(fd->pipes);
	free(fd->usks);
	free(fd->refs);
	fd_unix_diag_free(fd->diag);
	fd_inet_dump_free(fd);
	img_writer_abort(fd->pipes_data);
	free(fd);
}

struct dump_pipe *fs_dump_pipe(struct fs_dump *d, dev_t dev, ino_t ino)
{
	for (size_t i = 0; i < d->npipes; i++)
		if (d->pipes[i].dev == dev && d->pipes[i].ino == ino)
			return &d->pipes[i];
	if (d->npipes == d->cap_pipes) {
		size_t cap = d->cap_pipes ? d->cap_pipes * 2 : 16;
		struct dump_pipe *p = realloc(d->pipes, cap * sizeof(*p));
		if (!p)
			return NULL;
		d->pipes = p;
		d->cap_pipes = cap;
	}
	struct dump_pipe *p = &d->pipes[d->npipes++];
	*p = (struct dump_pipe){ .dev = dev, .ino = ino, .id = ++d->next_pipe_id };
	return p;
}

int fs_dump_pipe_data(struct fs_dump *d, uint32_t pipe_id, const uint8_t *data, size_t len)
{
	int r;
	if (!d->pipes_data) {
		struct img_writer *w;
		r = img_writer_open(d->d, "pipes-data.img", IMG_MAGIC_PIPES_DATA, &w);
		if (r < 0)
			return r;
		d->pipes_data = w;
	}
	PipeDataEntry pe = PIPE_DATA_ENTRY__INIT;
	pe.pipe_id = pipe_id;
	pe.data.data = (uint8_t *)data;
	pe.data.len = len;
	return img_write_pb(d->pipes_data, &pe.base);
}

int fs_fdinfo_read(const struct fd_parms *p, char **out)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", p->pid, p->fd);
	int r = read_file(path, out, NULL, 4 << 20);
	return r < 0 ? pr_err_ret(r, "cannot read %s", path) : 0;
}

const char *fs_fdinfo_field(const char *buf, const char *key)
{
	size_t k = strlen(key);
	for (const char *l = buf; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
		if (!strncmp(l, key, k) && l[k] == ':')
			return l + k + 1 + strspn(l + k + 1, " \t");
	return NULL;
}

int fs_fdinfo_u64(const char *buf, const char *key, int base, uint64_t *v)
{
	const char *s = fs_fdinfo_field(buf, key);
	char tok[32];
	if (!s)
		return -ENOENT;
	size_t n = strcspn(s, " \t\n");
	if (n == 0 || n >= sizeof(tok))
		return -EINVAL;
	memcpy(tok, s, n);
	tok[n] = 0;
	return parse_u64(tok, base, v);
}

bool fs_is_anon(const struct fd_parms *p, const char *name)
{
	const char *l = p->link;
	size_t k = strlen(name);
	if (strncmp(l, "anon_inode:", 11))
		return false;
	l += 11;
	if (*l == '[')
		return !strncmp(l + 1, name, k) && l[k + 1] == ']' && !l[k + 2];
	return !strcmp(l, name);
}

/* Human name of an fd no kind accepts, for the error line. */
static const char *unsupported_name(const struct fd_parms *p, char *buf, size_t len)
{
	const char *l = p->link;
	if (S_ISSOCK(p->st.st_mode) || !strncmp(l, "socket:", 7))
		return "socket";
	if (!strncmp(l, "anon_inode:", 11)) {
		const char *n = l + 11;
		size_t k = strlen(n);
		if (*n == '[' && k > 2 && n[k - 1] == ']')
			snprintf(buf, len, "%.*s", (int)(k - 2), n + 1);
		else
			snprintf(buf, len, "%s", n);
		return buf;
	}
	if (!strncmp(l, "/memfd:", 7))
		return "memfd";
	if (S_ISBLK(p->st.st_mode))
		return "block device";
	if (S_ISCHR(p->st.st_mode)) {
		if (fd_tty_is_terminal(p->st.st_rdev))
			return "terminal without --shell-job";
		snprintf(buf, len, "character device %u:%u", major(p->st.st_rdev),
			 minor(p->st.st_rdev));
		return buf;
	}
	if (S_ISDIR(p->st.st_mode))
		return "deleted directory";
	if (S_ISFIFO(p->st.st_mode))
		return "deleted FIFO";
	if (S_ISLNK(p->st.st_mode))
		return "symlink (O_PATH)";
	return "file";
}

/* fdinfo: "pos:\t<dec>" and "flags:\t<octal>". */
static int parse_fdinfo(struct fd_parms *p)
{
	char path[64], *buf, *line, *save = NULL;
	bool have_pos = false, have_flags = false;
	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", p->pid, p->fd);
	int r = read_file(path, &buf, NULL, 1 << 20);
	if (r < 0)
		return r;
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		uint64_t v;
		if (!strncmp(line, "pos:", 4)) {
			if (parse_u64(line + 4 + strspn(line + 4, " \t"), 10, &v) < 0)
				break;
			p->pos = v;
			have_pos = true;
		} else if (!strncmp(line, "flags:", 6)) {
			if (parse_u64(line + 6 + strspn(line + 6, " \t"), 8, &v) < 0 ||
			    v > UINT32_MAX)
				break;
			p->cloexec = v & O_CLOEXEC;
			p->flags = (uint32_t)v & ~(uint32_t)O_CLOEXEC;
			have_flags = true;
		}
	}
	free(buf);
	if (!have_pos || !have_flags)
		return pr_err_ret(-EINVAL, "cannot parse %s", path);
	return 0;
}

/* Fill p for fd of pid. 0, -ENOENT if the fd vanished, or -errno (logged). */
static int collect_parms(pid_t pid, int pidfd, int fd, int shell_job, struct fd_parms *p)
{
	char path[64], link[PATH_MAX];
	memset(p, 0, sizeof(*p));
	p->pid = pid;
	p->fd = fd;
	p->shell_job = shell_job;
	p->lfd = sys_pidfd_getfd(pidfd, fd, 0);
	if (p->lfd < 0)
		return pr_err_ret(p->lfd, "PID %d fd %d: pidfd_getfd", pid, fd);
	if (fstat(p->lfd, &p->st) < 0)
		return pr_perror("PID %d fd %d: fstat", pid, fd);
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", pid, fd);
	ssize_t n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return pr_perror("PID %d fd %d: readlink %s", pid, fd, path);
	link[n] = '\0';
	p->link = strdup(link);
	if (!p->link)
		return -ENOMEM;
	return parse_fdinfo(p);
}

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	return (x > y) - (x < y);
}

/* The fd numbers of pid, sorted. Caller frees *out. */
static int list_fds(pid_t pid, int **out, size_t *n)
{
	char path[64];
	size_t cap = 64, cnt = 0;
	int *v = malloc(cap * sizeof(*v));
	if (!v)
		return -ENOMEM;
	snprintf(path, sizeof(path), "/proc/%d/fd", pid);
	DIR *dir = opendir(path);
	if (!dir) {
		free(v);
		return pr_perror("cannot open %s", path);
	}
	struct dirent *de;
	while ((de = readdir(dir))) {
		int fd;
		if (de->d_name[0] == '.' || parse_int(de->d_name, &fd) < 0)
			continue;
		/* ferry's own dirty-tracking uffd kept in the target between pre-dump
		 * rounds (or inherited by a fork): not the process's state, never dumped
		 * (docs/predump.md) */
		if (dirty_fd_probe(pid, fd) == 1) {
			pr_debug("PID %d fd %d: ferry's tracking fd, skipped", pid, fd);
			continue;
		}
		if (cnt == cap) {
			int *nv = realloc(v, 2 * cap * sizeof(*v));
			if (!nv) {
				closedir(dir);
				free(v);
				return -ENOMEM;
			}
			v = nv;
			cap *= 2;
		}
		v[cnt++] = fd;
	}
	closedir(dir);
	qsort(v, cnt, sizeof(*v), cmp_int);
	*out = v;
	*n = cnt;
	return 0;
}

/* The id of an already described open file description p refers to, or 0. */
static uint32_t find_shared(struct fs_dump *d, const struct fd_parms *p, FdKind kind)
{
	for (size_t i = 0; i < d->nfiles; i++) {
		const struct dump_file *f = &d->files[i];
		if (f->dev != p->st.st_dev || f->ino != p->st.st_ino || f->fe->type != kind)
			continue;
		if (syscall(SYS_kcmp, f->pid, p->pid, KCMP_FILE, f->fd, p->fd) == 0)
			return f->fe->id;
	}
	return 0;
}

/* Describe a new open file description; returns its id or -errno. */
static int add_file(struct fs_dump *d, const struct fd_parms *p, const struct fd_ops *ops)
{
	if (d->nfiles == d->cap_files) {
		size_t cap = d->cap_files ? d->cap_files * 2 : 32;
		struct dump_file *f = realloc(d->files, cap * sizeof(*f));
		if (!f)
			return -ENOMEM;
		d->files = f;
		d->cap_files = cap;
	}
	FileEntry *fe = malloc(sizeof(*fe));
	if (!fe)
		return -ENOMEM;
	file_entry__init(fe);
	fe->id = ++d->next_file_id;
	fe->type = ops->kind;
	int r = ops->dump(d, p, fe);
	if (r < 0) {
		protobuf_c_message_free_unpacked(&fe->base, NULL);
		return r;
	}
	d->files[d->nfiles++] = (struct dump_file){
		.fe = fe,
		.pid = p->pid,
		.fd = p->fd,
		.dev = p->st.st_dev,
		.ino = p->st.st_ino,
	};
	return (int)fe->id;
}

/* Classify every fd; fail on the first unsupported one. */
static int classify(struct fs_dump *d, struct fd_parms *parms, const struct fd_ops **ops, size_t n)
{
	char buf[64];
	for (size_t i = 0; i < n; i++) {
		ops[i] = NULL;
		for (size_t k = 0; k < ARRAY_SIZE(fd_kinds) && !ops[i]; k++)
			if (fd_kinds[k]->match(&parms[i]))
				ops[i] = fd_kinds[k];
		if (!ops[i]) {
			pr_err("PID %d fd %d: %s ('%s') is not supported yet", parms[i].pid,
			       parms[i].fd, unsupported_name(&parms[i], buf, sizeof(buf)),
			       parms[i].link);
			return -EOPNOTSUPP;
		}
	}
	for (size_t i = 0; i < n; i++) {
		int r = ops[i]->check ? ops[i]->check(d, parms, n, i) : 0;
		if (r < 0)
			return r;
	}
	return 0;
}

/* Remember that p's process holds description id (fs_dump_file_id). */
static int add_ref(struct fs_dump *d, const struct fd_parms *p, uint32_t id)
{
	if (d->nrefs == d->cap_refs) {
		size_t cap = d->cap_refs ? 2 * d->cap_refs : 64;
		struct dump_fdref *v = realloc(d->refs, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		d->refs = v;
		d->cap_refs = cap;
	}
	d->refs[d->nrefs++] = (struct dump_fdref){
		.pid = p->pid, .id = id, .dev = p->st.st_dev, .ino = p->st.st_ino
	};
	return 0;
}

int fs_dump_file_id(struct fs_dump *d, pid_t pid, uint64_t dev, uint64_t ino, uint32_t *id)
{
	for (size_t i = 0; i < d->nrefs; i++) {
		const struct dump_fdref *f = &d->refs[i];
		if (f->pid == pid && (uint64_t)f->dev == dev && (uint64_t)f->ino == ino) {
			*id = f->id;
			return 0;
		}
	}
	return -ENOENT;
}

static int write_fdinfo(struct fs_dump *d, pid_t pid, struct fd_parms *parms,
			const struct fd_ops **ops, size_t n)
{
	char name[64];
	struct img_writer *w;
	int r = img_writer_open(d->d, img_name(name, "fdinfo-%d.img", pid), IMG_MAGIC_FDINFO, &w);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		int id = (int)find_shared(d, &parms[i], ops[i]->kind);
		if (!id)
			id = add_file(d, &parms[i], ops[i]);
		if (id < 0) {
			img_writer_abort(w);
			return id;
		}
		if ((r = add_ref(d, &parms[i], (uint32_t)id)) < 0) {
			img_writer_abort(w);
			return r;
		}
		FdinfoEntry fe = FDINFO_ENTRY__INIT;
		fe.fd = (uint32_t)parms[i].fd;
		fe.flags = parms[i].cloexec ? FD_CLOEXEC : 0;
		fe.id = (uint32_t)id;
		pr_debug("PID %d fd %d: %s id %d '%s'", pid, parms[i].fd, ops[i]->name, id,
			 parms[i].link);
		if ((r = img_write_pb(w, &fe.base)) < 0) {
			img_writer_abort(w);
			return r;
		}
	}
	return img_writer_close(w);
}

int fs_dump_task(struct fs_dump *d, pid_t pid, int pidfd)
{
	int *fds = NULL, own_pidfd = -1, r;
	size_t n = 0, i;
	struct fd_parms *parms = NULL;
	const struct fd_ops **ops = NULL;

	if (pidfd < 0) {
		own_pidfd = pidfd = sys_pidfd_open(pid, 0);
		if (pidfd < 0)
			return pr_err_ret(pidfd, "pidfd_open(%d)", pid);
	}
	if ((r = list_fds(pid, &fds, &n)) < 0)
		goto out;
	parms = calloc(n ? n : 1, sizeof(*parms));
	ops = calloc(n ? n : 1, sizeof(*ops));
	if (!parms || !ops) {
		r = -ENOMEM;
		goto out;
	}
	for (i = 0; i < n; i++)
		parms[i].lfd = -1;
	for (i = 0; i < n; i++)
		if ((r = collect_parms(pid, pidfd, fds[i], d->o.shell_job, &parms[i])) < 0)
			goto out;
	if ((r = classify(d, parms, ops, n)) < 0)
		goto out;
	r = write_fdinfo(d, pid, parms, ops, n);
out:
	for (i = 0; parms && i < n; i++) {
		if (parms[i].lfd >= 0)
			close(parms[i].lfd);
		free(parms[i].link);
	}
	free(parms);
	free(ops);
	free(fds);
	if (own_pidfd >= 0)
		close(own_pidfd);
	return r;
}

int fs_dump_finish(struct fs_dump *d)
{
	struct img_writer *w;
	int r;
	for (size_t k = 0; k < ARRAY_SIZE(fd_kinds); k++)
		if (fd_kinds[k]->finish && (r = fd_kinds[k]->finish(d)) < 0)
			return r;
	if (d->pipes_data) {
		r = img_writer_close(d->pipes_data);
		d->pipes_data = NULL;
		if (r < 0)
			return r;
	}
	if ((r = img_writer_open(d->d, "files.img", IMG_MAGIC_FILES, &w)) < 0)
		return r;
	for (size_t i = 0; i < d->nfiles; i++) {
		if ((r = img_write_pb(w, &d->files[i].fe->base)) < 0) {
			img_writer_abort(w);
			return r;
		}
	}
	return img_writer_close(w);
}
