/*
 * fd-tty: terminals (virtual consoles, serial lines, /dev/tty, /dev/console, pty
 * slaves), supported only with --shell-job: the task is restored on the restorer's
 * terminal, not on the dumped one. pty masters (/dev/ptmx) are unsupported.
 *
 * Restore: prepare picks the restorer's fd 0, 1 or 2 that is a terminal; the stub opens
 * that terminal again through /proc/self/fd/<n> with the dumped flags (a new open file
 * description, so O_NONBLOCK of the task does not leak into the restorer's), or
 * /dev/tty when the restorer has no terminal on 0-2.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "common/log.h"
#include "fs/fs-priv.h"

bool fd_tty_is_terminal(dev_t rdev)
{
	unsigned int ma = major(rdev), mi = minor(rdev);
	if (ma == 4 || (ma >= 136 && ma <= 143)) /* tty0-63/ttyS*, pts */
		return true;
	return ma == 5 && (mi == 0 || mi == 1); /* /dev/tty, /dev/console */
}

static bool tty_match(const struct fd_parms *p)
{
	return S_ISCHR(p->st.st_mode) && fd_tty_is_terminal(p->st.st_rdev) && p->shell_job;
}

static int tty_dump(struct fs_dump *d, const struct fd_parms *p, FileEntry *fe)
{
	TtyFileEntry *te = malloc(sizeof(*te));
	if (!te)
		return -ENOMEM;
	tty_file_entry__init(te);
	fe->tty = te;
	te->rdev = (uint32_t)p->st.st_rdev;
	te->flags = p->flags;
	te->path = strdup(p->link);
	return te->path ? 0 : -ENOMEM;
}

static int tty_prepare(struct fs_rst *r, const FileEntry *fe, struct rst_file *f)
{
	if (!fe->tty)
		return pr_err_ret(-EBADMSG, "files.img: id %u has no tty part", fe->id);
	if (!r->shell_job)
		return pr_err_ret(-EINVAL,
				  "PID %d had a terminal open ('%s'): restore with --shell-job",
				  r->pid, fe->tty->path);
	f->rdev = fe->tty->rdev;
	f->flags = fs_sanitize_flags(fe->tty->flags);
	if (r->tty_src < 0)
		pr_warn("PID %d: no terminal on fds 0-2 of the restorer, will open /dev/tty",
			r->pid);
	return 0;
}

static int tty_open(struct fs_rst *r, struct rst_file *f, int base, char *err, size_t errlen)
{
	char proc[64];
	const char *path = "/dev/tty";
	if (r->tty_src >= 0) {
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", r->tty_src);
		path = proc;
	}
	int fd = open(path, (int)f->flags | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return fs_stub_err(err, errlen, errno, "open terminal '%s': %m", path);
	fd = fs_stub_move_high(fd, base);
	return fd < 0 ? fs_stub_err(err, errlen, -fd, "terminal: no fd above %d", base) : fd;
}

const struct fd_ops fd_tty_ops = {
	.name = "tty",
	.kind = FD_KIND__FDK_TTY,
	.match = tty_match,
	.dump = tty_dump,
	.prepare = tty_prepare,
	.open = tty_open,
};
