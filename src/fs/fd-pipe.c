/*
 * fd-pipe: anonymous pipes (pipe:[ino]); also the buffered-data code FIFOs share.
 *
 * Ids: a pipe gets a dump-wide pipe_id per (dev, ino) (fs_dump_pipe), each end its own
 * FileEntry (a read end and a write end are different open file descriptions). Both
 * ends must be open somewhere in the dumped tree (checked at fs_dump_finish); the ends
 * of one pipe form a restore group (created together: in the restorer when the ends
 * are held by different processes, see fs-restore.c).
 *
 * Dump: the buffered bytes are peeked, never consumed: a read end (our pidfd_getfd
 * copy, or the write end reopened O_RDONLY through /proc/self/fd) is tee()d into a pipe
 * of ours with the same F_GETPIPE_SZ, and ours is read. Recorded once per pipe in
 * pipes-data.img.
 * Restore (stub): pipe2 (non-blocking), F_SETPIPE_SZ, write the bytes (they fit: at most
 * the pipe size), then each end gets its dumped flags with F_SETFL.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "fs/fs-priv.h"

#define PIPE_SETFL_MASK (O_NONBLOCK | O_APPEND | O_ASYNC | O_NOATIME)

/* Copy the len buffered bytes of rfd into a malloc'd *out without consuming them. */
static int pipe_peek(int rfd, int size, size_t len, uint8_t **out)
{
	int p[2], r = 0;
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
		return pr_perror("pipe2");
	uint8_t *buf = malloc(len);
	if (!buf)
		r = -ENOMEM;
	else if (fcntl(p[1], F_GETPIPE_SZ) < size && fcntl(p[1], F_SETPIPE_SZ, size) < 0)
		r = pr_perror("cannot size a pipe to %d bytes to copy the buffer", size);
	if (r == 0) {
		ssize_t n = tee(rfd, p[1], len, SPLICE_F_NONBLOCK);
		if (n < 0)
			r = pr_perror("tee");
		else if ((size_t)n != len)
			r = pr_err_ret(-EIO, "tee copied %zd of %zu buffered bytes", n, len);
	}
	if (r == 0) {
		ssize_t n = read_full(p[0], buf, len);
		if (n != (ssize_t)len)
			r = pr_err_ret(n < 0 ? (int)n : -EIO, "reading the copied pipe buffer");
	}
	close(p[0]);
	close(p[1]);
	if (r < 0)
		free(buf);
	else
		*out = buf;
	return r;
}

static int pipe_dump_data(struct fs_dump *d, const struct fd_parms *p, uint32_t id, int size)
{
	char proc[64];
	int rfd = p->lfd, avail = 0, r = 0;
	uint8_t *buf = NULL;
	if ((p->flags & O_ACCMODE) == O_WRONLY) {
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", p->lfd);
		rfd = open(proc, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
		if (rfd < 0)
			return pr_perror("PID %d fd %d: cannot open a read end of '%s'", p->pid,
					 p->fd, p->link);
	}
	if (ioctl(rfd, FIONREAD, &avail) < 0)
		r = pr_perror("PID %d fd %d: FIONREAD", p->pid, p->fd);
	else if (avail > 0 && (r = pipe_peek(rfd, size, (size_t)avail, &buf)) == 0)
		r = fs_dump_pipe_data(d, id, buf, (size_t)avail);
	pr_debug("PID %d fd %d: pipe %u has %d buffered bytes", p->pid, p->fd, id, avail);
	free(buf);
	if (rfd != p->lfd)
		close(rfd);
	return r;
}

int fd_pipe_dump_common(struct fs_dump *d, const struct fd_parms *p, uint32_t *pipe_id,
			uint32_t *pipe_size)
{
	struct dump_pipe *dp = fs_dump_pipe(d, p->st.st_dev, p->st.st_ino);
	if (!dp)
		return -ENOMEM;
	int size = fcntl(p->lfd, F_GETPIPE_SZ);
	if (size <= 0)
		return pr_perror("PID %d fd %d: F_GETPIPE_SZ", p->pid, p->fd);
	*pipe_id = dp->id;
	*pipe_size = (uint32_t)size;
	int acc = (int)(p->flags & O_ACCMODE);
	if (!dp->end_seen[0] && !dp->end_seen[1]) {
		dp->pid = p->pid;
		dp->fd = p->fd;
		dp->fifo = p->link[0] == '/';
	}
	dp->end_seen[0] |= acc != O_WRONLY;
	dp->end_seen[1] |= acc != O_RDONLY;
	if (dp->data_done)
		return 0;
	int r = pipe_dump_data(d, p, dp->id, size);
	if (r == 0)
		dp->data_done = true;
	return r;
}

static bool pipe_match(const struct fd_parms *p)
{
	return S_ISFIFO(p->st.st_mode) && !strncmp(p->link, "pipe:", 5);
}

/* Both ends of every anonymous pipe must be somewhere in the dumped tree. */
static int pipe_finish(struct fs_dump *d)
{
	for (size_t i = 0; i < d->npipes; i++) {
		const struct dump_pipe *dp = &d->pipes[i];
		if (dp->fifo || (dp->end_seen[0] && dp->end_seen[1]))
			continue;
		pr_err("PID %d fd %d: pipe: the %s end of pipe:[%lu] is not open in the dumped "
		       "tree",
		       dp->pid, dp->fd, dp->end_seen[0] ? "write" : "read", (unsigned long)dp->ino);
		return -EOPNOTSUPP;
	}
	return 0;
}

static int pipe_dump(struct fs_dump *d, const struct fd_parms *p, FileEntry *fe)
{
	PipeFileEntry *pe = malloc(sizeof(*pe));
	if (!pe)
		return -ENOMEM;
	pipe_file_entry__init(pe);
	fe->pipe = pe;
	pe->flags = p->flags;
	return fd_pipe_dump_common(d, p, &pe->pipe_id, &pe->pipe_size);
}

static int pipe_prepare(struct fs_rst *r, const FileEntry *fe, struct rst_file *f)
{
	const PipeFileEntry *pe = fe->pipe;
	if (!pe)
		return pr_err_ret(-EBADMSG, "files.img: id %u has no pipe part", fe->id);
	uint32_t acc = pe->flags & O_ACCMODE;
	if ((acc != O_RDONLY && acc != O_WRONLY) || pe->pipe_size == 0 ||
	    pe->pipe_size > FS_MAX_PIPE_SZ)
		return pr_err_ret(-EBADMSG, "files.img: id %u: bad pipe flags or size", fe->id);
	f->flags = fs_sanitize_flags(pe->flags);
	f->pipe_size = pe->pipe_size;
	f->pipe = fs_rst_pipe(r, pe->pipe_id);
	if (!f->pipe)
		return -EBADMSG;
	f->group = (uint64_t)FD_KIND__FDK_PIPE << 56 | pe->pipe_id;
	if (f->pipe->len > f->pipe_size)
		return pr_err_ret(-EBADMSG, "pipe %u: %zu buffered bytes exceed its size %u",
				  pe->pipe_id, f->pipe->len, f->pipe_size);
	return 0;
}

/* Stub: create the pipe with its data, both ends above base. */
static int pipe_create(struct rst_pipe *pp, const struct rst_file *f, int base, char *err,
		       size_t errlen)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK | (int)(f->flags & O_DIRECT)) < 0)
		return fs_stub_err(err, errlen, errno, "pipe2: %m");
	pp->ends[0] = fs_stub_move_high(p[0], base);
	pp->ends[1] = fs_stub_move_high(p[1], base);
	if (pp->ends[0] < 0 || pp->ends[1] < 0)
		return fs_stub_err(err, errlen, EMFILE, "pipe %u: no fd above %d", pp->id, base);
	if ((uint32_t)fcntl(pp->ends[1], F_GETPIPE_SZ) != f->pipe_size &&
	    fcntl(pp->ends[1], F_SETPIPE_SZ, (int)f->pipe_size) < 0)
		return fs_stub_err(err, errlen, errno, "pipe %u: F_SETPIPE_SZ %u: %m", pp->id,
				   f->pipe_size);
	errno = 0;
	if (pp->len && write(pp->ends[1], pp->data, pp->len) != (ssize_t)pp->len)
		return fs_stub_err(err, errlen, errno ? errno : EIO,
				   "pipe %u: cannot refill %zu bytes: %m", pp->id, pp->len);
	pp->filled = true;
	return 0;
}

static int pipe_open(struct fs_rst *r, struct rst_file *f, int base, char *err, size_t errlen)
{
	struct rst_pipe *pp = f->pipe;
	int end = (f->flags & O_ACCMODE) == O_RDONLY ? 0 : 1, fd, e;
	if (pp->ends[0] < 0 && (e = pipe_create(pp, f, base, err, errlen)) < 0)
		return e;
	if (!pp->end_used[end]) {
		pp->end_used[end] = true;
		fd = pp->ends[end];
	} else { /* a second description of the same end: reopen it */
		char proc[64];
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", pp->ends[end]);
		fd = open(proc, (int)(f->flags & O_ACCMODE) | O_CLOEXEC | O_NONBLOCK);
		if (fd < 0)
			return fs_stub_err(err, errlen, errno, "reopen pipe %u: %m", pp->id);
		if ((fd = fs_stub_move_high(fd, base)) < 0)
			return fs_stub_err(err, errlen, -fd, "pipe %u: no fd above %d", pp->id,
					   base);
	}
	if (fcntl(fd, F_SETFL, (int)(f->flags & PIPE_SETFL_MASK)) < 0)
		return fs_stub_err(err, errlen, errno, "pipe %u: F_SETFL: %m", pp->id);
	return fd;
}

const struct fd_ops fd_pipe_ops = {
	.name = "pipe",
	.kind = FD_KIND__FDK_PIPE,
	.match = pipe_match,
	.dump = pipe_dump,
	.finish = pipe_finish,
	.prepare = pipe_prepare,
	.open = pipe_open,
};
