/*
 * fd-chr: the harmless memory character devices: /dev/null, zero, full, random,
 * urandom. Dumped as (rdev, flags); the restorer maps rdev back to a path with its own
 * table (a path from the image is never opened) and checks the node there is that
 * device. Their offset carries no state and is not restored. Every other character
 * device is unsupported (terminals: fd-tty.c).
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
#include "common/util.h"
#include "fs/fs-priv.h"

static const struct {
	unsigned int major, minor;
	const char *path;
} chr_devs[] = {
	{ 1, 3, "/dev/null" },	 { 1, 5, "/dev/zero" },	   { 1, 7, "/dev/full" },
	{ 1, 8, "/dev/random" }, { 1, 9, "/dev/urandom" },
};

static const char *chr_path(dev_t rdev)
{
	for (size_t i = 0; i < ARRAY_SIZE(chr_devs); i++)
		if (major(rdev) == chr_devs[i].major && minor(rdev) == chr_devs[i].minor)
			return chr_devs[i].path;
	return NULL;
}

static bool chr_match(const struct fd_parms *p)
{
	return S_ISCHR(p->st.st_mode) && chr_path(p->st.st_rdev);
}

static int chr_dump(struct fs_dump *d, const struct fd_parms *p, FileEntry *fe)
{
	ChrFileEntry *ce = malloc(sizeof(*ce));
	if (!ce)
		return -ENOMEM;
	chr_file_entry__init(ce);
	fe->chr = ce;
	ce->rdev = (uint32_t)p->st.st_rdev;
	ce->flags = p->flags;
	return 0;
}

static int chr_prepare(struct fs_rst *r, const FileEntry *fe, struct rst_file *f)
{
	struct stat st;
	if (!fe->chr)
		return pr_err_ret(-EBADMSG, "files.img: id %u has no chr part", fe->id);
	const char *path = chr_path(fe->chr->rdev);
	if (!path)
		return pr_err_ret(-EBADMSG, "files.img: id %u: device %u:%u is not allowed", fe->id,
				  major(fe->chr->rdev), minor(fe->chr->rdev));
	if (stat(path, &st) < 0)
		return pr_perror("PID %d: cannot reopen '%s'", r->pid, path);
	if (!S_ISCHR(st.st_mode) || st.st_rdev != fe->chr->rdev)
		return pr_err_ret(-ESTALE, "PID %d: '%s' is not the expected device", r->pid, path);
	f->path = NULL;
	f->rdev = fe->chr->rdev;
	f->flags = fs_sanitize_flags(fe->chr->flags);
	return 0;
}

static int chr_open(struct fs_rst *r, struct rst_file *f, int base, char *err, size_t errlen)
{
	const char *path = chr_path(f->rdev);
	int fd = open(path, (int)f->flags | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return fs_stub_err(err, errlen, errno, "open '%s': %m", path);
	fd = fs_stub_move_high(fd, base);
	return fd < 0 ? fs_stub_err(err, errlen, -fd, "'%s': no fd above %d", path, base) : fd;
}

const struct fd_ops fd_chr_ops = {
	.name = "chrdev",
	.kind = FD_KIND__FDK_CHR,
	.match = chr_match,
	.dump = chr_dump,
	.prepare = chr_prepare,
	.open = chr_open,
};
