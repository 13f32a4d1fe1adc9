/*
 * ghost: the content of regular files unlinked while open.
 *
 * ghost-<id>.img (id = the FileEntry id): IMG_MAGIC_GHOST, one GhostFileEntry record
 * (u32 length + message), then exactly `size` raw bytes. Content is read from our
 * copy of the target's fd reopened read-only through /proc/self/fd (pread: the
 * target's offset is untouched), at most FS_MAX_GHOST bytes.
 *
 * Restore: the file is recreated in its original directory under its original name
 * when that name is free (so /proc shows the same "<path> (deleted)"), else as an
 * O_TMPFILE in that directory; content, owner, mode and mtime are set, then the name is
 * unlinked at once. The restorer keeps the fd; the stub reopens it via /proc/self/fd.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "fs/fs-priv.h"
#include "img/img.h"

#define GHOST_CHUNK (1U << 20)

static int ghost_copy_out(struct img_writer *w, int rfd, uint64_t size, const char *path)
{
	uint8_t *buf = malloc(GHOST_CHUNK);
	uint64_t off = 0;
	int r = 0;
	if (!buf)
		return -ENOMEM;
	while (off < size && r == 0) {
		size_t len = (size_t)min_t(uint64_t, GHOST_CHUNK, size - off);
		ssize_t n = pread_full(rfd, buf, len, (off_t)off);
		if (n < 0)
			r = pr_err_ret((int)n, "cannot read unlinked file '%s'", path);
		else if ((size_t)n != len)
			r = pr_err_ret(-EIO, "unlinked file '%s' shrank while dumping", path);
		else
			r = img_write_raw(w, buf, len);
		off += len;
	}
	free(buf);
	return r;
}

int fs_ghost_dump(struct fs_dump *d, const struct fd_parms *p, uint32_t id)
{
	char name[64], proc[64];
	struct img_writer *w;
	uint64_t size = (uint64_t)p->st.st_size;
	if (size > FS_MAX_GHOST)
		return pr_err_ret(-EFBIG,
				  "PID %d fd %d: unlinked file '%s' is too large (%llu bytes)",
				  p->pid, p->fd, p->link, (unsigned long long)size);
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", p->lfd);
	int rfd = open(proc, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (rfd < 0)
		return pr_perror("PID %d fd %d: cannot reopen unlinked file '%s'", p->pid, p->fd,
				 p->link);
	GhostFileEntry ge = GHOST_FILE_ENTRY__INIT;
	ge.id = id;
	ge.mode = p->st.st_mode;
	ge.uid = p->st.st_uid;
	ge.gid = p->st.st_gid;
	ge.size = size;
	ge.mtime_ns = (uint64_t)p->st.st_mtim.tv_sec * 1000000000ULL + p->st.st_mtim.tv_nsec;
	int r = img_writer_open(d->d, img_name(name, "ghost-%u.img", id), IMG_MAGIC_GHOST, &w);
	if (r < 0)
		goto out;
	if ((r = img_write_pb(w, &ge.base)) < 0 ||
	    (r = ghost_copy_out(w, rfd, size, p->link)) < 0) {
		img_writer_abort(w);
		goto out;
	}
	r = img_writer_close(w);
	pr_debug("PID %d fd %d: ghost %u, %llu bytes", p->pid, p->fd, id, (unsigned long long)size);
out:
	close(rfd);
	return r;
}

/* Read and check the header of ghost-<id>.img. */
static int ghost_read_head(struct img_stream *s, uint32_t id, GhostFileEntry **out)
{
	uint32_t magic, len;
	uint8_t buf[1024];
	int r;
	if ((r = img_stream_read(s, &magic, 4)) < 0 || (r = img_stream_read(s, &len, 4)) < 0)
		return r;
	if (magic != IMG_MAGIC_GHOST || len > sizeof(buf))
		return -EBADMSG;
	if ((r = img_stream_read(s, buf, len)) < 0)
		return r;
	GhostFileEntry *ge = ghost_file_entry__unpack(NULL, len, buf);
	if (!ge)
		return -EBADMSG;
	if (ge->id != id || ge->size > FS_MAX_GHOST || ge->size != img_stream_left(s) ||
	    !S_ISREG(ge->mode)) {
		ghost_file_entry__free_unpacked(ge, NULL);
		return -EBADMSG;
	}
	*out = ge;
	return 0;
}

static int ghost_copy_in(struct img_stream *s, int fd, uint64_t size)
{
	uint8_t *buf = malloc(GHOST_CHUNK);
	uint64_t off = 0;
	int r = 0;
	if (!buf)
		return -ENOMEM;
	while (off < size && r == 0) {
		size_t len = (size_t)min_t(uint64_t, GHOST_CHUNK, size - off);
		if ((r = img_stream_read(s, buf, len)) == 0 && !is_zero(buf, len))
			r = pwrite_full(fd, buf, len, (off_t)off);
		off += len;
	}
	if (r == 0 && ftruncate(fd, (off_t)size) < 0) /* zero chunks were skipped */
		r = -errno;
	free(buf);
	return r;
}

/* Create the file: by name (then unlinked) if free, else O_TMPFILE in the directory. */
static int ghost_create(const char *path, mode_t mode)
{
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, mode & 0600);
	if (fd >= 0) {
		if (unlink(path) < 0) {
			int e = pr_perror("cannot unlink recreated ghost '%s'", path);
			close(fd);
			return e;
		}
		return fd;
	}
	if (errno != EEXIST)
		return pr_perror("cannot recreate unlinked file '%s'", path);
	char *dup = strdup(path);
	if (!dup)
		return -ENOMEM;
	fd = open(dirname(dup), O_RDWR | O_TMPFILE | O_CLOEXEC, mode & 0600);
	if (fd < 0)
		fd = pr_perror("cannot create a temporary file in '%s'", dup);
	free(dup);
	return fd;
}

/* Open ghost-<id>.img and check its header. */
static int ghost_open(struct fs_rst *r, uint32_t id, struct img_stream **s, GhostFileEntry **ge)
{
	char name[64];
	int e = img_stream_open(r->d, img_name(name, "ghost-%u.img", id), s);
	if (e < 0)
		return e;
	if ((e = ghost_read_head(*s, id, ge)) < 0) {
		img_stream_free(*s);
		*s = NULL;
		return pr_err_ret(e, "%s: bad header", name);
	}
	return 0;
}

int fs_ghost_fill(struct fs_rst *r, uint32_t id, int fd, uint64_t *size, uint32_t *mode)
{
	struct img_stream *s;
	GhostFileEntry *ge = NULL;
	int e = ghost_open(r, id, &s, &ge);
	if (e < 0)
		return e;
	*size = ge->size;
	*mode = ge->mode;
	if ((e = ghost_copy_in(s, fd, ge->size)) < 0) {
		pr_err("cannot fill file %u from ghost-%u.img: %s", id, id, strerror(-e));
		img_stream_free(s);
	} else {
		e = img_stream_finish(s); /* frees s */
	}
	ghost_file_entry__free_unpacked(ge, NULL);
	return e;
}

int fs_ghost_prepare(struct fs_rst *r, uint32_t id, const char *path, mode_t mode)
{
	struct img_stream *s;
	GhostFileEntry *ge = NULL;
	int e = ghost_open(r, id, &s, &ge);
	if (e < 0)
		return e;
	int fd = ghost_create(path, mode);
	if (fd < 0) {
		e = fd;
		goto out;
	}
	if ((e = ghost_copy_in(s, fd, ge->size)) < 0) {
		pr_err("cannot fill recreated ghost '%s': %s", path, strerror(-e));
		goto out;
	}
	e = img_stream_finish(s);
	s = NULL;
	if (e < 0)
		goto out;
	struct timespec ts[2] = {
		{ .tv_nsec = UTIME_OMIT },
		{ .tv_sec = (time_t)(ge->mtime_ns / 1000000000ULL),
		  .tv_nsec = (long)(ge->mtime_ns % 1000000000ULL) },
	};
	if (fchown(fd, ge->uid, ge->gid) < 0 || fchmod(fd, ge->mode & 07777) < 0 ||
	    futimens(fd, ts) < 0) {
		e = pr_perror("cannot set owner/mode/mtime of ghost '%s'", path);
		goto out;
	}
	pr_debug("ghost %u: '%s' recreated, %llu bytes", id, path, (unsigned long long)ge->size);
out:
	img_stream_free(s);
	if (ge)
		ghost_file_entry__free_unpacked(ge, NULL);
	if (e < 0 && fd >= 0)
		close(fd);
	return e < 0 ? e : fd;
}
