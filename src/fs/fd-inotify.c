/*
 * fd-inotify: inotify instances (anon_inode:inotify) and their watches.
 *
 * Dump: every fdinfo line "inotify wd:W ino:I sdev:S mask:M ignored_mask:0
 * fhandle-bytes:B fhandle-type:T f_handle:H". The watched inode is found again with
 * open_by_handle_at(mount of S, H, O_PATH) (the mount comes from our mountinfo, by the
 * kernel dev_t S = major << 20 | minor) and named by readlink of /proc/self/fd/N; the
 * inode number is checked against I. An inode we cannot name (unlinked, on a
 * filesystem not mounted here) fails the dump.
 * Restore (stub): inotify_init1, then inotify_add_watch(path, mask | IN_DONT_FOLLOW |
 * IN_MASK_CREATE) in wd order (the path names the watched object itself, so no final
 * symlink is followed). The kernel hands out wds cyclically from the last one: when a
 * wd is higher than the next one the kernel would give (watches removed before the
 * dump), a dummy watch on "/" (or another candidate not watched) is added and removed
 * until the numbers line up; the IN_IGNORED events of the dummies are then drained, so
 * the queue starts empty (events queued before the dump are not kept anyway).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "fs/fs-priv.h"

#ifndef IN_MASK_CREATE
#define IN_MASK_CREATE 0x10000000
#endif
#define INOTIFY_MAX_WATCHES (1 << 16)
#define INOTIFY_MAX_PAD	    (1 << 20) /* dummy watches we are ready to burn */
#define INOTIFY_MASK_OK	    (IN_ALL_EVENTS | IN_ONLYDIR | IN_DONT_FOLLOW | IN_EXCL_UNLINK | IN_ONESHOT)

struct ino_watch {
	uint32_t wd, mask;
	char *path;
};

struct ino_kd {
	size_t n;
	struct ino_watch w[];
};

static bool inotify_match(const struct fd_parms *p)
{
	return fs_is_anon(p, "inotify");
}

/* A directory fd on the filesystem of kernel dev kdev, from our mountinfo. */
static int open_mount_of(unsigned int kdev)
{
	char *buf, *save = NULL;
	int fd = -ENOENT;
	unsigned int maj = kdev >> 20, min = kdev & 0xfffff;
	int r = read_file("/proc/self/mountinfo", &buf, NULL, 16 << 20);
	if (r < 0)
		return r;
	for (char *l = strtok_r(buf, "\n", &save); l && fd < 0; l = strtok_r(NULL, "\n", &save)) {
		unsigned int a, b;
		char mnt[PATH_MAX];
		if (sscanf(l, "%*d %*d %u:%u %*s %4095s", &a, &b, mnt) != 3 || a != maj || b != min)
			continue;
		if (strchr(mnt, '\\'))
			continue; /* octal-escaped path: try another mount of it */
		fd = open(mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			fd = -errno;
	}
	free(buf);
	return fd;
}

static int hexbytes(const char *s, unsigned char *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned int v;
		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return -EINVAL;
		out[i] = (unsigned char)v;
	}
	return 0;
}

/* Name the inode of one fdinfo watch line; *path is malloc'd. */
static int watch_path(const struct fd_parms *p, const char *l, uint32_t *wd, uint32_t *mask,
		      char **path)
{
	unsigned int w, sdev, m, ig, bytes, type;
	int n = 0;
	unsigned long ino;
	struct {
		struct file_handle h;
		unsigned char b[128];
	} fh;
	char proc[64], link[PATH_MAX];
	if (sscanf(l,
		   "inotify wd:%x ino:%lx sdev:%x mask:%x ignored_mask:%x fhandle-bytes:%x "
		   "fhandle-type:%x f_handle:%n",
		   &w, &ino, &sdev, &m, &ig, &bytes, &type, &n) != 7 ||
	    !n || bytes > sizeof(fh.b) || strlen(l + n) < 2 * bytes ||
	    hexbytes(l + n, fh.b, bytes) < 0)
		return pr_err_ret(-EINVAL, "PID %d fd %d: inotify: cannot parse '%.100s'", p->pid,
				  p->fd, l);
	fh.h.handle_bytes = bytes;
	fh.h.handle_type = (int)type;
	int mfd = open_mount_of(sdev);
	if (mfd < 0)
		return pr_err_ret(mfd, "PID %d fd %d: inotify wd %u: no mount of device %u:%u here",
				  p->pid, p->fd, w, sdev >> 20, sdev & 0xfffff);
	int fd = open_by_handle_at(mfd, &fh.h, O_PATH | O_CLOEXEC);
	int e = fd < 0 ? -errno : 0;
	close(mfd);
	if (fd < 0)
		return pr_err_ret(e,
				  "PID %d fd %d: inotify wd %u: watched inode %lu cannot be opened",
				  p->pid, p->fd, w, ino);
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	ssize_t k = readlink(proc, link, sizeof(link) - 1);
	struct stat st;
	bool ok = k > 0 && fstat(fd, &st) == 0 && st.st_ino == ino;
	close(fd);
	if (k > 0)
		link[k] = 0;
	if (!ok || link[0] != '/' || strstr(link, " (deleted)"))
		return pr_err_ret(
			-EOPNOTSUPP,
			"PID %d fd %d: inotify wd %u: watched inode %lu has no usable path ('%s')",
			p->pid, p->fd, w, ino, k > 0 ? link : "?");
	*wd = w;
	*mask = m;
	*path = strdup(link);
	return *path ? 0 : -ENOMEM;
}

static int inotify_dump(struct fs_dump *d, const struct fd_parms *p, FileEntry *fe)
{
	char *buf;
	InotifyFileEntry *ie = malloc(sizeof(*ie));
	if (!ie)
		return -ENOMEM;
	inotify_file_entry__init(ie);
	fe->inotify = ie;
	ie->flags = p->flags;
	int r = fs_fdinfo_read(p, &buf);
	if (r < 0)
		return r;
	for (char *l = buf; l && *l && r == 0; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
		if (strncmp(l, "inotify wd:", 11))
			continue;
		char *nl = strchr(l, '\n');
		if (nl)
			*nl = 0;
		InotifyWatchEntry *we = malloc(sizeof(*we));
		InotifyWatchEntry **v = realloc(ie->watches, (ie->n_watches + 1) * sizeof(*v));
		if (!we || !v) {
			free(we);
			r = -ENOMEM;
			break;
		}
		ie->watches = v;
		inotify_watch_entry__init(we);
		we->path = NULL;
		r = watch_path(p, l, &we->wd, &we->mask, &we->path);
		if (r < 0) {
			free(we);
			break;
		}
		v[ie->n_watches++] = we;
		if (nl)
			*nl = '\n';
	}
	free(buf);
	return r;
}

static int cmp_watch(const void *a, const void *b)
{
	const struct ino_watch *x = a, *y = b;
	return (x->wd > y->wd) - (x->wd < y->wd);
}

static void inotify_release(struct rst_file *f)
{
	struct ino_kd *kd = f->kd;
	for (size_t i = 0; kd && i < kd->n; i++)
		free(kd->w[i].path);
	free(kd);
	f->kd = NULL;
}

static int inotify_prepare(struct fs_rst *r, const FileEntry *fe, struct rst_file *f)
{
	const InotifyFileEntry *ie = fe->inotify;
	if (!ie || ie->n_watches > INOTIFY_MAX_WATCHES)
		return pr_err_ret(-EBADMSG, "files.img: id %u: bad inotify part", fe->id);
	struct ino_kd *kd = calloc(1, sizeof(*kd) + ie->n_watches * sizeof(kd->w[0]));
	if (!kd)
		return -ENOMEM;
	f->kd = kd;
	for (size_t i = 0; i < ie->n_watches; i++, kd->n++) {
		const InotifyWatchEntry *we = ie->watches[i];
		int e = fs_check_path(we->path, &kd->w[i].path);
		if (e < 0)
			return e;
		if (we->wd == 0 || we->wd > INT32_MAX || (we->mask & ~(uint32_t)INOTIFY_MASK_OK))
			return pr_err_ret(-EBADMSG, "files.img: inotify %u: bad watch", fe->id);
		kd->w[i].wd = we->wd;
		kd->w[i].mask = we->mask;
	}
	qsort(kd->w, kd->n, sizeof(kd->w[0]), cmp_watch);
	for (size_t i = 1; i < kd->n; i++)
		if (kd->w[i].wd == kd->w[i - 1].wd)
			return pr_err_ret(-EBADMSG, "files.img: inotify %u: wd twice", fe->id);
	if (kd->n && kd->w[kd->n - 1].wd > kd->n + INOTIFY_MAX_PAD)
		return pr_err_ret(-EBADMSG, "files.img: inotify %u: wd too high", fe->id);
	f->flags = fs_sanitize_flags(ie->flags);
	return 0;
}

/* Stub: burn wd numbers until the next one the kernel gives is want. */
static int inotify_pad(int fd, int last, uint32_t want, bool *padded, char *err, size_t errlen)
{
	static const char *const dummies[] = { "/", "/proc", "/dev", "/sys", "/tmp", "/etc" };
	size_t d = 0;
	while ((uint32_t)last + 1 < want) {
		int w = inotify_add_watch(fd, dummies[d], IN_DELETE_SELF | IN_MASK_CREATE);
		if (w < 0 && errno == EEXIST && ++d < ARRAY_SIZE(dummies))
			continue;
		if (w < 0)
			return fs_stub_err(err, errlen, errno, "inotify: dummy watch: %m");
		if (inotify_rm_watch(fd, w) < 0)
			return fs_stub_err(err, errlen, errno, "inotify: rm dummy watch: %m");
		last = w;
		*padded = true;
	}
	return last;
}

static int inotify_open(struct fs_rst *r, struct rst_file *f, int base, char *err, size_t errlen)
{
	const struct ino_kd *kd = f->kd;
	bool padded = false;
	int last = 0;
	int fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	if (fd < 0)
		return fs_stub_err(err, errlen, errno, "inotify_init1: %m");
	if ((fd = fs_stub_move_high(fd, base)) < 0)
		return fs_stub_err(err, errlen, -fd, "inotify: no fd above %d", base);
	for (size_t i = 0; i < kd->n; i++) {
		const struct ino_watch *w = &kd->w[i];
		if ((last = inotify_pad(fd, last, w->wd, &padded, err, errlen)) < 0)
			return last;
		int wd = inotify_add_watch(fd, w->path, w->mask | IN_DONT_FOLLOW | IN_MASK_CREATE);
		if (wd < 0)
			return fs_stub_err(err, errlen, errno, "inotify: watch '%s': %m", w->path);
		if ((uint32_t)wd != w->wd)
			return fs_stub_err(err, errlen, EINVAL,
					   "inotify: watch '%s' got wd %d, not %u", w->path, wd,
					   w->wd);
		last = wd;
	}
	char buf[4096] __attribute__((aligned(8)));
	while (padded && read(fd, buf, sizeof(buf)) > 0)
		; /* the dummies' IN_IGNORED events */
	if (fcntl(fd, F_SETFL, (int)(f->flags & O_NONBLOCK)) < 0)
		return fs_stub_err(err, errlen, errno, "inotify: F_SETFL: %m");
	return fd;
}

const struct fd_ops fd_inotify_ops = {
	.name = "inotify",
	.kind = FD_KIND__FDK_INOTIFY,
	.match = inotify_match,
	.dump = inotify_dump,
	.prepare = inotify_prepare,
	.open = inotify_open,
	.release = inotify_release,
};
