/*
 * fd-memfd: memfd_create() files ("/memfd:NAME (deleted)").
 *
 * Dump: name, this description's open flags and offset, F_GET_SEALS, and the content
 * in ghost-<id>.img (same format as an unlinked file, at most FS_MAX_GHOST bytes), once
 * per memfd: further descriptions of the same inode (reopened through /proc) name the
 * first one in inode_id and restore as descriptions of the same new memfd.
 * Restore: prepare (restorer) creates the memfd once (MFD_ALLOW_SEALING when the
 * original allowed sealing: its seals are not exactly F_SEAL_SEAL), fills it, then adds
 * the seals; fs_rst_tree_file_fd() returns that fd (the engine maps memfd mappings from
 * it). The stub opens /proc/self/fd/<it> with the dumped flags (a description of the same
 * inode, as the original was) and seeks to the offset.
 * Not supported (the dump fails, naming pid and fd): hugetlbfs memfds (MFD_HUGETLB),
 * seal bits this code does not know.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "common/log.h"
#include "fs/fs-priv.h"

#define MEMFD_PREFIX   "/memfd:"
#define DELETED_SUFFIX " (deleted)"
#define MEMFD_NAME_MAX 249
#define MEMFD_SEALS                                                                                \
	(F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE |                                \
	 0x10 /* F_SEAL_FUTURE_WRITE */ | 0x20 /* F_SEAL_EXEC, 6.3 */)
#define HUGETLBFS_MAGIC_ 0x958458f6

static bool memfd_match(const struct fd_parms *p)
{
	return S_ISREG(p->st.st_mode) && p->st.st_nlink == 0 &&
	       !strncmp(p->link, MEMFD_PREFIX, strlen(MEMFD_PREFIX));
}

static int memfd_dump(struct fs_dump *d, const struct fd_parms *p, FileEntry *fe)
{
	MemfdFileEntry *me = malloc(sizeof(*me));
	if (!me)
		return -ENOMEM;
	memfd_file_entry__init(me);
	fe->memfd = me;
	me->name = strdup(p->link + strlen(MEMFD_PREFIX));
	if (!me->name)
		return -ENOMEM;
	size_t l = strlen(me->name), sl = strlen(DELETED_SUFFIX);
	if (l > sl && !strcmp(me->name + l - sl, DELETED_SUFFIX))
		me->name[l - sl] = '\0';
	struct statfs sfs;
	if (fstatfs(p->lfd, &sfs) == 0 && (unsigned long)sfs.f_type == HUGETLBFS_MAGIC_)
		return pr_err_ret(-EOPNOTSUPP,
				  "PID %d fd %d: memfd ('%s') on hugetlbfs is not supported",
				  p->pid, p->fd, p->link);
	int seals = fcntl(p->lfd, F_GET_SEALS);
	if (seals < 0)
		return pr_perror("PID %d fd %d: memfd: F_GET_SEALS", p->pid, p->fd);
	if ((uint32_t)seals & ~(uint32_t)MEMFD_SEALS)
		return pr_err_ret(
			-EOPNOTSUPP,
			"PID %d fd %d: memfd ('%s'): unknown seals 0x%x are not supported", p->pid,
			p->fd, p->link, seals);
	me->flags = p->flags;
	me->pos = p->pos;
	me->seals = (uint32_t)seals;
	me->size = (uint64_t)p->st.st_size;
	me->has_allow_sealing = true;
	me->allow_sealing = seals != F_SEAL_SEAL;
	me->has_inode_id = true;
	me->inode_id = fe->id;
	for (size_t i = 0; i < d->nfiles; i++) { /* another description of this memfd? */
		const struct dump_file *f = &d->files[i];
		if (f->fe->type == FD_KIND__FDK_MEMFD && f->dev == p->st.st_dev &&
		    f->ino == p->st.st_ino) {
			me->inode_id = f->fe->memfd->inode_id;
			return 0;
		}
	}
	return fs_ghost_dump(d, p, fe->id);
}

static int memfd_prepare(struct fs_rst *r, const FileEntry *fe, struct rst_file *f)
{
	const MemfdFileEntry *me = fe->memfd;
	uint64_t size;
	uint32_t mode;
	if (!me)
		return pr_err_ret(-EBADMSG, "files.img: id %u has no memfd part", fe->id);
	if (strlen(me->name) > MEMFD_NAME_MAX || (me->seals & ~(uint32_t)MEMFD_SEALS) ||
	    me->size > FS_MAX_GHOST)
		return pr_err_ret(-EBADMSG, "files.img: id %u: bad memfd", fe->id);
	uint32_t inode_id = me->has_inode_id ? me->inode_id : fe->id;
	if (inode_id > fe->id || inode_id == 0)
		return pr_err_ret(-EBADMSG, "files.img: id %u: bad memfd inode id", fe->id);
	f->flags = fs_sanitize_flags(me->flags);
	f->pos = me->pos;
	for (size_t i = 0; inode_id != fe->id && i < r->nfiles; i++) {
		const struct rst_file *o = &r->files[i];
		if (o->id == inode_id && o->ops == &fd_memfd_ops && o->ghost_fd >= 0) {
			f->ghost_fd = fcntl(o->ghost_fd, F_DUPFD_CLOEXEC, 3); /* same memfd */
			return f->ghost_fd < 0 ? pr_perror("dup memfd") : 0;
		}
	}
	bool sealing = me->has_allow_sealing ? me->allow_sealing : me->seals != F_SEAL_SEAL;
	int fd = memfd_create(me->name, MFD_CLOEXEC | (sealing ? MFD_ALLOW_SEALING : 0));
	if (fd < 0)
		return pr_perror("memfd_create('%s')", me->name);
	f->ghost_fd = fd; /* closed by release on every path */
	int e = fs_ghost_fill(r, inode_id, fd, &size, &mode);
	if (e < 0)
		return e;
	if (fchmod(fd, mode & 0777) < 0) /* MFD_NOEXEC_SEAL memfds are 0666 */
		return pr_perror("memfd '%s': fchmod", me->name);
	if (size != me->size)
		return pr_err_ret(-EBADMSG, "memfd '%s': content is %llu bytes, expected %llu",
				  me->name, (unsigned long long)size, (unsigned long long)me->size);
	if (sealing && me->seals && fcntl(fd, F_ADD_SEALS, (int)me->seals) < 0)
		return pr_perror("memfd '%s': F_ADD_SEALS 0x%x", me->name, me->seals);
	pr_debug("memfd %u '%s': %llu bytes, seals 0x%x", fe->id, me->name,
		 (unsigned long long)size, me->seals);
	return 0;
}

static int memfd_open(struct fs_rst *r, struct rst_file *f, int base, char *err, size_t errlen)
{
	char proc[64];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", f->ghost_fd);
	int fd = open(proc, (int)f->flags | O_CLOEXEC);
	if (fd < 0)
		return fs_stub_err(err, errlen, errno, "memfd %u: reopen (flags 0%o): %m", f->id,
				   f->flags);
	if ((fd = fs_stub_move_high(fd, base)) < 0)
		return fs_stub_err(err, errlen, -fd, "memfd: no fd above %d", base);
	if (f->pos && lseek(fd, (off_t)f->pos, SEEK_SET) < 0)
		return fs_stub_err(err, errlen, errno, "memfd %u: lseek %llu: %m", f->id,
				   (unsigned long long)f->pos);
	return fd;
}

static void memfd_release(struct rst_file *f)
{
	if (f->ghost_fd >= 0)
		close(f->ghost_fd);
	f->ghost_fd = -1;
}

const struct fd_ops fd_memfd_ops = {
	.name = "memfd",
	.kind = FD_KIND__FDK_MEMFD,
	.match = memfd_match,
	.dump = memfd_dump,
	.prepare = memfd_prepare,
	.open = memfd_open,
	.release = memfd_release,
};
