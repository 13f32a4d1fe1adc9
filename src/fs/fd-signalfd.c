/*
 * fd-signalfd: signalfd descriptions (anon_inode:[signalfd]).
 *
 * Dump: fdinfo "sigmask:" (hex, bit n-1 = signal n) and the status flags.
 * Restore (stub): signalfd4(-1, mask, 8, SFD_CLOEXEC|SFD_NONBLOCK) with the raw 64-bit
 * mask, then F_SETFL the dumped O_NONBLOCK. Pending signals are the engine's business
 * (they belong to the task, not to the fd).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/log.h"
#include "fs/fs-priv.h"

static bool signalfd_match(const struct fd_parms *p)
{
	return fs_is_anon(p, "signalfd");
}

static int signalfd_dump(struct fs_dump *d, const struct fd_parms *p, FileEntry *fe)
{
	char *buf;
	uint64_t mask;
	SignalfdFileEntry *se = malloc(sizeof(*se));
	if (!se)
		return -ENOMEM;
	signalfd_file_entry__init(se);
	fe->signalfd = se;
	int r = fs_fdinfo_read(p, &buf);
	if (r < 0)
		return r;
	r = fs_fdinfo_u64(buf, "sigmask", 16, &mask);
	free(buf);
	if (r < 0)
		return pr_err_ret(-EINVAL, "PID %d fd %d: signalfd: no sigmask in fdinfo", p->pid,
				  p->fd);
	se->flags = p->flags;
	se->sigmask = mask;
	return 0;
}

static int signalfd_prepare(struct fs_rst *r, const FileEntry *fe, struct rst_file *f)
{
	const SignalfdFileEntry *se = fe->signalfd;
	if (!se)
		return pr_err_ret(-EBADMSG, "files.img: id %u has no signalfd part", fe->id);
	f->flags = fs_sanitize_flags(se->flags);
	f->pos = se->sigmask; /* the mask travels in pos: signalfds have no offset */
	return 0;
}

static int signalfd_open(struct fs_rst *r, struct rst_file *f, int base, char *err, size_t errlen)
{
	uint64_t mask = f->pos;
	int fd = (int)syscall(SYS_signalfd4, -1, &mask, sizeof(mask), SFD_CLOEXEC | SFD_NONBLOCK);
	if (fd < 0)
		return fs_stub_err(err, errlen, errno, "signalfd: %m");
	if ((fd = fs_stub_move_high(fd, base)) < 0)
		return fs_stub_err(err, errlen, -fd, "signalfd: no fd above %d", base);
	if (fcntl(fd, F_SETFL, (int)(f->flags & O_NONBLOCK)) < 0)
		return fs_stub_err(err, errlen, errno, "signalfd: F_SETFL: %m");
	return fd;
}

const struct fd_ops fd_signalfd_ops = {
	.name = "signalfd",
	.kind = FD_KIND__FDK_SIGNALFD,
	.match = signalfd_match,
	.dump = signalfd_dump,
	.prepare = signalfd_prepare,
	.open = signalfd_open,
};
