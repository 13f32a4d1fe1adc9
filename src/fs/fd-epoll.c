/*
 * fd-epoll: epoll instances (anon_inode:[eventpoll]).
 *
 * Dump: every fdinfo "tfd: N events: X data: D ..." line. kcmp(KCMP_EPOLL_TFD) tells
 * whether the registered file is the one at number N of the process that holds the
 * epoll; when N was closed (or reused) since registration, every other fd of the process
 * is compared and the file's current number is kept as `alias`; a file open nowhere in
 * the process fails the dump clearly. owner_pid records that process.
 * Restore: the stub creates the epoll; the registrations are made by the late hook,
 * once every fd of the owner is at its number: epoll_ctl(ADD, N, {events, data}), so
 * the kernel's (file, fd) keys are the dumped ones. An aliased target is registered by
 * placing its file at N for the call (dup2 from the alias; whatever N holds in the task
 * is saved above and put back). A shared epoll is created in the
 * restorer and registered in the owner's stub only. Epolls watching epolls work: every
 * file exists before any late hook runs.
 * Known difference: a EPOLLONESHOT registration that already fired (disarmed: fdinfo
 * shows only its flag bits) comes back armed for EPOLLERR|EPOLLHUP, which epoll_ctl
 * always adds; it stays silent for everything else.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "fs/fs-priv.h"

#define KCMP_EPOLL_TFD 7
#define EPOLL_MAX_TFDS (1 << 20)

struct kcmp_epoll_slot {
	uint32_t efd, tfd, toff;
};

struct epoll_kd {
	pid_t owner;
	size_t n;
	EpollTfdEntry t[]; /* only tfd, events, data are used */
};

static bool epoll_match(const struct fd_parms *p)
{
	return fs_is_anon(p, "eventpoll");
}

/* Is the file of the toff-th item registered under tfd (items with the same number
 * count in the order fdinfo lists them) open at fd number x of the process? */
static bool epoll_is_at(const struct fd_parms *p, uint32_t tfd, uint32_t toff, int x)
{
	struct kcmp_epoll_slot slot = { .efd = (uint32_t)p->fd, .tfd = tfd, .toff = toff };
	return syscall(SYS_kcmp, p->pid, p->pid, KCMP_EPOLL_TFD, x, &slot) == 0;
}

/* The target registered under tfd: at tfd itself (*alias = -1), or, when tfd was closed
 * or reused since, at another fd number of the process (*alias). */
static int epoll_find_tfd(const struct fd_parms *p, uint32_t tfd, uint32_t toff, int *alias)
{
	char path[64];
	struct dirent *de;
	*alias = -1;
	if (tfd < FS_MAX_FD && epoll_is_at(p, tfd, toff, (int)tfd))
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/fd", p->pid);
	DIR *dir = opendir(path);
	if (!dir)
		return pr_perror("cannot open %s", path);
	while ((de = readdir(dir)) && *alias < 0) {
		int x;
		if (de->d_name[0] != '.' && parse_int(de->d_name, &x) == 0 && x != p->fd &&
		    epoll_is_at(p, tfd, toff, x))
			*alias = x;
	}
	closedir(dir);
	if (*alias >= 0 && tfd < FS_MAX_FD)
		return 0;
	pr_err("PID %d fd %d: epoll: registered target fd %u was closed and its file is not open "
	       "elsewhere in this process (or was registered by another process): not supported",
	       p->pid, p->fd, tfd);
	return -EOPNOTSUPP;
}

static int epoll_add_tfd(EpollFileEntry *ee, uint32_t tfd, uint32_t ev, uint64_t data, int alias)
{
	if (ee->n_tfds >= EPOLL_MAX_TFDS)
		return -E2BIG;
	EpollTfdEntry **v = realloc(ee->tfds, (ee->n_tfds + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	ee->tfds = v;
	EpollTfdEntry *t = malloc(sizeof(*t));
	if (!t)
		return -ENOMEM;
	epoll_tfd_entry__init(t);
	t->tfd = tfd;
	t->events = ev;
	t->data = data;
	t->has_alias = alias >= 0;
	t->alias = alias >= 0 ? (uint32_t)alias : 0;
	v[ee->n_tfds++] = t;
	return 0;
}

/* How many items with number tfd were listed before (kcmp's toff for the next one). */
static uint32_t epoll_toff(const EpollFileEntry *ee, uint32_t tfd)
{
	uint32_t k = 0;
	for (size_t i = 0; i < ee->n_tfds; i++)
		k += ee->tfds[i]->tfd == tfd;
	return k;
}

static int epoll_dump(struct fs_dump *d, const struct fd_parms *p, FileEntry *fe)
{
	char *buf;
	EpollFileEntry *ee = malloc(sizeof(*ee));
	if (!ee)
		return -ENOMEM;
	epoll_file_entry__init(ee);
	fe->epoll = ee;
	ee->flags = p->flags;
	ee->owner_pid = (uint32_t)p->pid;
	int r = fs_fdinfo_read(p, &buf);
	if (r < 0)
		return r;
	for (char *l = buf; l && *l && r == 0; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
		int tfd, alias;
		unsigned int ev;
		unsigned long long data;
		if (strncmp(l, "tfd:", 4))
			continue;
		if (sscanf(l, "tfd: %d events: %x data: %llx", &tfd, &ev, &data) != 3 || tfd < 0)
			r = pr_err_ret(-EINVAL, "PID %d fd %d: epoll: cannot parse '%.80s'", p->pid,
				       p->fd, l);
		else if ((r = epoll_find_tfd(p, (uint32_t)tfd, epoll_toff(ee, (uint32_t)tfd),
					     &alias)) == 0)
			r = epoll_add_tfd(ee, (uint32_t)tfd, ev, data, alias);
	}
	free(buf);
	return r;
}

static int epoll_prepare(struct fs_rst *r, const FileEntry *fe, struct rst_file *f)
{
	const EpollFileEntry *ee = fe->epoll;
	bool owner_found = false;
	if (!ee)
		return pr_err_ret(-EBADMSG, "files.img: id %u has no epoll part", fe->id);
	if (ee->n_tfds > EPOLL_MAX_TFDS)
		return pr_err_ret(-EBADMSG, "files.img: id %u: too many epoll targets", fe->id);
	for (size_t i = 0; i < r->ntasks; i++)
		owner_found |= r->tasks[i].pid == (pid_t)ee->owner_pid;
	if (!owner_found)
		return pr_err_ret(-EBADMSG, "files.img: epoll %u: owner PID %u is not restored",
				  fe->id, ee->owner_pid);
	struct epoll_kd *kd = malloc(sizeof(*kd) + ee->n_tfds * sizeof(kd->t[0]));
	if (!kd)
		return -ENOMEM;
	kd->owner = (pid_t)ee->owner_pid;
	kd->n = ee->n_tfds;
	for (size_t i = 0; i < kd->n; i++) {
		if (ee->tfds[i]->tfd >= FS_MAX_FD ||
		    (ee->tfds[i]->has_alias &&
		     (ee->tfds[i]->alias >= FS_MAX_FD || ee->tfds[i]->alias == ee->tfds[i]->tfd))) {
			free(kd);
			return pr_err_ret(-EBADMSG, "files.img: epoll %u: bad target", fe->id);
		}
		kd->t[i] = *ee->tfds[i];
	}
	f->kd = kd;
	f->flags = fs_sanitize_flags(ee->flags);
	return 0;
}

static int epoll_open(struct fs_rst *r, struct rst_file *f, int base, char *err, size_t errlen)
{
	int fd = epoll_create1(EPOLL_CLOEXEC);
	if (fd < 0)
		return fs_stub_err(err, errlen, errno, "epoll_create1: %m");
	if ((fd = fs_stub_move_high(fd, base)) < 0)
		return fs_stub_err(err, errlen, -fd, "epoll: no fd above %d", base);
	if (fcntl(fd, F_SETFL, (int)(f->flags & O_NONBLOCK)) < 0)
		return fs_stub_err(err, errlen, errno, "epoll: F_SETFL: %m");
	return fd;
}

/* Stub: register the file now at number alias under the number tfd, which is free or
 * holds another file of the task (put back afterwards). */
static int epoll_add_alias(int ep, const EpollTfdEntry *t, struct epoll_event *ev, char *err,
			   size_t errlen)
{
	int tfd = (int)t->tfd, fl = fcntl(tfd, F_GETFD), saved = -1, e = 0;
	if (fcntl((int)t->alias, F_GETFD) < 0)
		return fs_stub_err(err, errlen, EBADF,
				   "epoll: alias fd %u of target %u is not open", t->alias, t->tfd);
	if (fl >= 0 && (saved = fcntl(tfd, F_DUPFD_CLOEXEC, 0)) < 0)
		return fs_stub_err(err, errlen, errno, "epoll: saving fd %d: %m", tfd);
	if (dup2((int)t->alias, tfd) < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, tfd, ev) < 0)
		e = fs_stub_err(err, errlen, errno,
				"epoll: EPOLL_CTL_ADD fd %u (file of fd %u): %m", t->tfd, t->alias);
	if (saved >= 0) {
		if (dup3(saved, tfd, fl & FD_CLOEXEC ? O_CLOEXEC : 0) < 0 && !e)
			e = fs_stub_err(err, errlen, errno, "epoll: putting fd %d back: %m", tfd);
		close(saved);
	} else {
		close(tfd);
	}
	return e;
}

static int epoll_late(struct fs_rst *r, struct rst_file *f, char *err, size_t errlen)
{
	const struct epoll_kd *kd = f->kd;
	if (r->cur->pid != kd->owner)
		return 0;
	for (size_t i = 0; i < kd->n; i++) {
		const EpollTfdEntry *t = &kd->t[i];
		struct epoll_event ev = { .events = t->events, .data.u64 = t->data };
		int e = 0;
		if (t->has_alias)
			e = epoll_add_alias(f->tmp_fd, t, &ev, err, errlen);
		else if (epoll_ctl(f->tmp_fd, EPOLL_CTL_ADD, (int)t->tfd, &ev) < 0)
			e = fs_stub_err(err, errlen, errno, "epoll %u: EPOLL_CTL_ADD fd %u: %m",
					f->id, t->tfd);
		if (e < 0)
			return e;
	}
	return 0;
}

static void epoll_release(struct rst_file *f)
{
	free(f->kd);
	f->kd = NULL;
}

const struct fd_ops fd_epoll_ops = {
	.name = "epoll",
	.kind = FD_KIND__FDK_EPOLL,
	.match = epoll_match,
	.dump = epoll_dump,
	.prepare = epoll_prepare,
	.open = epoll_open,
	.release = epoll_release,
	.late = epoll_late,
};
