/*
 * fd-epoll: epoll instances (anon_inode:[eventpoll]).
 *
 * Dump: every fdinfo "tfd: N events: X data: D ..." line. Each target must still be
 * open at number N in the process that holds the epoll (kcmp KCMP_EPOLL_TFD compares
 * the registered file with the one at N): a target whose fd was closed (or replaced)
 * after registration fails the dump clearly. owner_pid records that process.
 * Restore: the stub creates the epoll; the registrations are made by the late hook,
 * once every fd of the owner is at its number: epoll_ctl(ADD, N, {events, data}), so
 * the kernel's (file, fd) keys are the dumped ones. A shared epoll is created in the
 * restorer and registered in the owner's stub only. Epolls watching epolls work: every
 * file exists before any late hook runs.
 * Known difference: a EPOLLONESHOT registration that already fired (disarmed: fdinfo
 * shows only its flag bits) comes back armed for EPOLLERR|EPOLLHUP, which epoll_ctl
 * always adds; it stays silent for everything else.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/log.h"
#include "fs/fs-priv.h"

#define KCMP_EPOLL_TFD 7
#define EPOLL_MAX_TFDS (1 << 20)

struct kcmp_epoll_slot {
	uint32_t efd, tfd, toff;
};

struct epoll_kd {
	pid_t owner;
	size_t n;
	EpollTfdEntry t[];	/* only tfd, events, data are used */
};

static bool epoll_match(const struct fd_parms *p)
{
	return fs_is_anon(p, "eventpoll");
}

/* The target at tfd must be the registered file. */
static int epoll_check_tfd(const struct fd_parms *p, uint32_t tfd)
{
	struct kcmp_epoll_slot slot = { .efd = (uint32_t)p->fd, .tfd = tfd, .toff = 0 };
	long r = syscall(SYS_kcmp, p->pid, p->pid, KCMP_EPOLL_TFD, tfd, &slot);
	if (r == 0)
		return 0;
	pr_err("PID %d fd %d: epoll: registered target fd %u is not that file in this process "
	       "(closed after registration, or registered by another process): not supported",
	       p->pid, p->fd, tfd);
	return -EOPNOTSUPP;
}

static int epoll_add_tfd(EpollFileEntry *ee, uint32_t tfd, uint32_t ev, uint64_t data)
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
	v[ee->n_tfds++] = t;
	return 0;
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
		int tfd;
		unsigned int ev;
		unsigned long long data;
		if (strncmp(l, "tfd:", 4))
			continue;
		if (sscanf(l, "tfd: %d events: %x data: %llx", &tfd, &ev, &data) != 3 || tfd < 0)
			r = pr_err_ret(-EINVAL, "PID %d fd %d: epoll: cannot parse '%.80s'", p->pid,
				       p->fd, l);
		else if ((r = epoll_check_tfd(p, (uint32_t)tfd)) == 0)
			r = epoll_add_tfd(ee, (uint32_t)tfd, ev, data);
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
		if (ee->tfds[i]->tfd >= FS_MAX_FD) {
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

static int epoll_late(struct fs_rst *r, struct rst_file *f, char *err, size_t errlen)
{
	const struct epoll_kd *kd = f->kd;
	if (r->cur->pid != kd->owner)
		return 0;
	for (size_t i = 0; i < kd->n; i++) {
		struct epoll_event ev = { .events = kd->t[i].events, .data.u64 = kd->t[i].data };
		if (epoll_ctl(f->tmp_fd, EPOLL_CTL_ADD, (int)kd->t[i].tfd, &ev) < 0)
			return fs_stub_err(err, errlen, errno, "epoll %u: EPOLL_CTL_ADD fd %u: %m",
					   f->id, kd->t[i].tfd);
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
