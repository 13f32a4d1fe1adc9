/*
 * fd-reg: regular files and directories, reopened by path; unlinked regular files
 * ("ghosts") carry their content in ghost-<id>.img (ghost.c).
 *
 * Dump: path from the /proc link (" (deleted)" stripped for ghosts), fdinfo flags and
 * pos, st_mode/size/dev/ino. A file is a ghost when st_nlink == 0. memfds and deleted
 * directories are not regular files here (unsupported).
 * Restore: prepare checks the path still exists with the same type (one clear error
 * otherwise; a size change is only a warning) or recreates the ghost; the stub opens
 * the path (or /proc/self/fd/<ghost fd>) with the original flags and seeks to pos.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "fs/fs-priv.h"

#define DELETED_SUFFIX " (deleted)"

static bool reg_match(const struct fd_parms *p)
{
	if (p->link[0] != '/' || !strncmp(p->link, "/memfd:", 7))
		return false;
	if (S_ISREG(p->st.st_mode))
		return true;
	return S_ISDIR(p->st.st_mode) && p->st.st_nlink > 0;
}

static int reg_dump(struct fs_dump *d, const struct fd_parms *p, FileEntry *fe)
{
	RegFileEntry *re = malloc(sizeof(*re));
	if (!re)
		return -ENOMEM;
	reg_file_entry__init(re);
	fe->reg = re;
	re->path = strdup(p->link);
	if (!re->path)
		return -ENOMEM;
	bool ghost = S_ISREG(p->st.st_mode) && p->st.st_nlink == 0;
	size_t l = strlen(re->path), sl = strlen(DELETED_SUFFIX);
	if (ghost && l > sl && !strcmp(re->path + l - sl, DELETED_SUFFIX))
		re->path[l - sl] = '\0';
	re->flags = p->flags;
	re->pos = p->pos;
	re->mode = p->st.st_mode;
	re->size = (uint64_t)p->st.st_size;
	re->dev = p->st.st_dev;
	re->ino = p->st.st_ino;
	if (ghost) {
		re->has_ghost = true;
		re->ghost = true;
		return fs_ghost_dump(d, p, fe->id);
	}
	return 0;
}

static int reg_prepare(struct fs_rst *r, const FileEntry *fe, struct rst_file *f)
{
	const RegFileEntry *re = fe->reg;
	struct stat st;
	if (!re)
		return pr_err_ret(-EBADMSG, "files.img: id %u has no reg part", fe->id);
	int e = fs_check_path(re->path, &f->path);
	if (e < 0)
		return e;
	f->flags = fs_sanitize_flags(re->flags);
	f->pos = re->pos;
	if (!S_ISREG(re->mode) && !S_ISDIR(re->mode))
		return pr_err_ret(-EBADMSG, "files.img: id %u: bad mode %o", fe->id, re->mode);
	if (re->has_ghost && re->ghost) {
		if (!S_ISREG(re->mode))
			return pr_err_ret(-EBADMSG, "files.img: id %u: ghost is not a file",
					  fe->id);
		f->ghost_fd = fs_ghost_prepare(r, fe->id, f->path, re->mode & 07777);
		return f->ghost_fd < 0 ? f->ghost_fd : 0;
	}
	/* /proc/<pid>/... of the tree's own processes exists only once the stub has that
	 * pid (a dumped original may be reaped already): the stub's open decides */
	if (!strncmp(f->path, "/proc/", 6))
		return 0;
	if (stat(f->path, &st) < 0)
		return pr_perror("PID %d: file '%s' (id %u) cannot be reopened", r->pid, f->path,
				 fe->id);
	if ((st.st_mode & S_IFMT) != (re->mode & S_IFMT))
		return pr_err_ret(-ESTALE, "PID %d: '%s' is no longer a %s", r->pid, f->path,
				  S_ISDIR(re->mode) ? "directory" : "regular file");
	if (S_ISREG(st.st_mode) && (uint64_t)st.st_size != re->size)
		pr_warn("PID %d: '%s' changed size since the dump (%llu -> %lld bytes)", r->pid,
			f->path, (unsigned long long)re->size, (long long)st.st_size);
	return 0;
}

static int reg_open(struct fs_rst *r, struct rst_file *f, int base, char *err, size_t errlen)
{
	char proc[64];
	const char *path = f->path;
	if (f->ghost_fd >= 0) {
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", f->ghost_fd);
		path = proc;
	}
	int fd = open(path, (int)f->flags | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return fs_stub_err(err, errlen, errno, "open '%s' (flags 0%o): %m", f->path,
				   f->flags);
	if (f->pos && !(f->flags & O_PATH) && lseek(fd, (off_t)f->pos, SEEK_SET) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return fs_stub_err(err, errlen, e, "lseek '%s' to %llu: %m", f->path,
				   (unsigned long long)f->pos);
	}
	fd = fs_stub_move_high(fd, base);
	if (fd < 0)
		return fs_stub_err(err, errlen, -fd, "'%s': no fd above %d", f->path, base);
	return fd;
}

static void reg_release(struct rst_file *f)
{
	if (f->ghost_fd >= 0)
		close(f->ghost_fd);
	f->ghost_fd = -1;
}

const struct fd_ops fd_reg_ops = {
	.name = "file",
	.kind = FD_KIND__FDK_REG,
	.match = reg_match,
	.dump = reg_dump,
	.prepare = reg_prepare,
	.open = reg_open,
	.release = reg_release,
};
