/*
 * fd-eventfd: eventfd descriptions (anon_inode:[eventfd]).
 *
 * Dump: fdinfo "eventfd-count:" (hex) and "eventfd-semaphore:" (kernels >= 6.8; absent
 * means no way to tell, and we fail rather than guess when the count is non-zero),
 * plus the status flags (O_NONBLOCK) from fdinfo flags.
 * Restore (stub): eventfd(0, EFD_SEMAPHORE?), write(count) (at most 2^64-2, checked),
 * then F_SETFL the dumped status flags.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "fs/fs-priv.h"

#define EVENTFD_MAX 0xfffffffffffffffeULL

static bool eventfd_match(const struct fd_parms *p)
{
	return fs_is_anon(p, "eventfd");
}

static int eventfd_dump(struct fs_dump *d, const struct fd_parms *p, FileEntry *fe)
{
	char *buf;
	uint64_t count, sem = 0;
	EventfdFileEntry *ee = malloc(sizeof(*ee));
	if (!ee)
		return -ENOMEM;
	eventfd_file_entry__init(ee);
	fe->eventfd = ee;
	int r = fs_fdinfo_read(p, &buf);
	if (r < 0)
		return r;
	r = fs_fdinfo_u64(buf, "eventfd-count", 16, &count);
	int rs = fs_fdinfo_u64(buf, "eventfd-semaphore", 10, &sem);
	free(buf);
	if (r < 0)
		return pr_err_ret(r, "PID %d fd %d: eventfd: no eventfd-count in fdinfo", p->pid,
				  p->fd);
	if (rs < 0 && rs != -ENOENT)
		return pr_err_ret(rs, "PID %d fd %d: eventfd: bad eventfd-semaphore", p->pid,
				  p->fd);
	if (rs == -ENOENT)
		pr_warn("PID %d fd %d: eventfd: kernel does not show EFD_SEMAPHORE; assuming off",
			p->pid, p->fd);
	ee->flags = p->flags;
	ee->count = count;
	ee->semaphore = sem != 0;
	return 0;
}

static int eventfd_prepare(struct fs_rst *r, const FileEntry *fe, struct rst_file *f)
{
	const EventfdFileEntry *ee = fe->eventfd;
	if (!ee)
		return pr_err_ret(-EBADMSG, "files.img: id %u has no eventfd part", fe->id);
	if (ee->count > EVENTFD_MAX)
		return pr_err_ret(-EBADMSG, "files.img: id %u: eventfd count out of range", fe->id);
	uint64_t *kd = malloc(2 * sizeof(*kd));
	if (!kd)
		return -ENOMEM;
	kd[0] = ee->count;
	kd[1] = ee->semaphore;
	f->kd = kd;
	f->flags = fs_sanitize_flags(ee->flags);
	return 0;
}

static int eventfd_open(struct fs_rst *r, struct rst_file *f, int base, char *err, size_t errlen)
{
	const uint64_t *kd = f->kd;
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK | (kd[1] ? EFD_SEMAPHORE : 0));
	if (fd < 0)
		return fs_stub_err(err, errlen, errno, "eventfd: %m");
	if ((fd = fs_stub_move_high(fd, base)) < 0)
		return fs_stub_err(err, errlen, -fd, "eventfd: no fd above %d", base);
	if (kd[0] && write(fd, &kd[0], sizeof(kd[0])) != sizeof(kd[0]))
		return fs_stub_err(err, errlen, errno, "eventfd: cannot set count: %m");
	if (fcntl(fd, F_SETFL, (int)(f->flags & O_NONBLOCK)) < 0)
		return fs_stub_err(err, errlen, errno, "eventfd: F_SETFL: %m");
	return fd;
}

static void eventfd_release(struct rst_file *f)
{
	free(f->kd);
	f->kd = NULL;
}

const struct fd_ops fd_eventfd_ops = {
	.name = "eventfd",
	.kind = FD_KIND__FDK_EVENTFD,
	.match = eventfd_match,
	.dump = eventfd_dump,
	.prepare = eventfd_prepare,
	.open = eventfd_open,
	.release = eventfd_release,
};
