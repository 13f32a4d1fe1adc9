/*
 * fd-fifo: named pipes, reopened by path. Buffered data is dumped like a pipe's
 * (fd-pipe.c, same dump-wide pipe_id space) and written back once per FIFO.
 *
 * Restore (stub): open the path O_RDWR|O_NONBLOCK first (never blocks, and is both a
 * reader and a writer, so the real open below does not wait for a partner), size it,
 * refill it, open it with the dumped flags, then drop the helper. The data survives
 * because the FIFO stays open by the new fd.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "fs/fs-priv.h"

static bool fifo_match(const struct fd_parms *p)
{
	return S_ISFIFO(p->st.st_mode) && p->link[0] == '/' && p->st.st_nlink > 0;
}

static int fifo_dump(struct fs_dump *d, const struct fd_parms *p, FileEntry *fe)
{
	FifoFileEntry *ff = malloc(sizeof(*ff));
	if (!ff)
		return -ENOMEM;
	fifo_file_entry__init(ff);
	fe->fifo = ff;
	ff->flags = p->flags;
	ff->path = strdup(p->link);
	if (!ff->path)
		return -ENOMEM;
	return fd_pipe_dump_common(d, p, &ff->pipe_id, &ff->pipe_size);
}

static int fifo_prepare(struct fs_rst *r, const FileEntry *fe, struct rst_file *f)
{
	const FifoFileEntry *ff = fe->fifo;
	struct stat st;
	if (!ff)
		return pr_err_ret(-EBADMSG, "files.img: id %u has no fifo part", fe->id);
	if (ff->pipe_size == 0 || ff->pipe_size > FS_MAX_PIPE_SZ)
		return pr_err_ret(-EBADMSG, "files.img: id %u: bad FIFO size", fe->id);
	int e = fs_check_path(ff->path, &f->path);
	if (e < 0)
		return e;
	if (stat(f->path, &st) < 0)
		return pr_perror("PID %d: FIFO '%s' cannot be reopened", r->pid, f->path);
	if (!S_ISFIFO(st.st_mode))
		return pr_err_ret(-ESTALE, "PID %d: '%s' is no longer a FIFO", r->pid, f->path);
	f->flags = fs_sanitize_flags(ff->flags);
	f->pipe_size = ff->pipe_size;
	f->pipe = fs_rst_pipe(r, ff->pipe_id);
	if (!f->pipe)
		return -EBADMSG;
	f->group = (uint64_t)FD_KIND__FDK_PIPE << 56 | ff->pipe_id; /* refilled once */
	if (f->pipe->len > f->pipe_size)
		return pr_err_ret(-EBADMSG, "FIFO '%s': %zu buffered bytes exceed its size %u",
				  f->path, f->pipe->len, f->pipe_size);
	return 0;
}

/* Stub: size and refill the FIFO through the helper fd h. */
static int fifo_fill(struct rst_file *f, int h, char *err, size_t errlen)
{
	struct rst_pipe *pp = f->pipe;
	if ((uint32_t)fcntl(h, F_GETPIPE_SZ) != f->pipe_size &&
	    fcntl(h, F_SETPIPE_SZ, (int)f->pipe_size) < 0)
		return fs_stub_err(err, errlen, errno, "FIFO '%s': F_SETPIPE_SZ %u: %m", f->path,
				   f->pipe_size);
	errno = 0;
	if (pp->len && write(h, pp->data, pp->len) != (ssize_t)pp->len)
		return fs_stub_err(err, errlen, errno ? errno : EIO,
				   "FIFO '%s': cannot refill %zu bytes: %m", f->path, pp->len);
	pp->filled = true;
	return 0;
}

static int fifo_open(struct fs_rst *r, struct rst_file *f, int base, char *err, size_t errlen)
{
	int h = open(f->path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (h < 0)
		return fs_stub_err(err, errlen, errno, "open FIFO '%s': %m", f->path);
	int e = f->pipe->filled ? 0 : fifo_fill(f, h, err, errlen);
	int fd = e < 0 ? -1 : open(f->path, (int)f->flags | O_CLOEXEC | O_NOCTTY);
	if (e == 0 && fd < 0)
		e = fs_stub_err(err, errlen, errno, "open FIFO '%s' (flags 0%o): %m", f->path,
				f->flags);
	close(h);
	if (e < 0)
		return e;
	fd = fs_stub_move_high(fd, base);
	return fd < 0 ? fs_stub_err(err, errlen, -fd, "FIFO: no fd above %d", base) : fd;
}

const struct fd_ops fd_fifo_ops = {
	.name = "fifo",
	.kind = FD_KIND__FDK_FIFO,
	.match = fifo_match,
	.dump = fifo_dump,
	.prepare = fifo_prepare,
	.open = fifo_open,
};
