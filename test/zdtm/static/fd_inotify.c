/*
 * fd_inotify: a non-blocking inotify with watches on a directory (IN_CREATE|IN_DELETE,
 * wd 1), a file in it (IN_MODIFY|IN_ONESHOT, wd 2), a watch removed (wd 3, a gap) and
 * another directory (IN_ATTRIB, wd 4). Its queue is drained before the checkpoint.
 * After the restore: the same wds, masks and inodes (fdinfo), events arrive with the
 * right wd, and the next new watch gets wd 5 (the kernel's counter continues).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "zdtmtst.h"

static char d1[PATH_MAX], d2[PATH_MAX], d3[PATH_MAX], f1[PATH_MAX + 8], f2[PATH_MAX + 8];

/* "wd:.. ino:.. mask:.." of every watch, sorted by the kernel (by wd). */
static void watches(int fd, char *out, size_t len)
{
	char path[64], buf[8192];
	size_t o = 0;
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	if (test_read_file(path, buf, sizeof(buf)) < 0)
		fail("read %s: %m", path);
	out[0] = 0;
	for (char *l = strstr(buf, "inotify wd:"); l; l = strstr(l + 1, "inotify wd:")) {
		unsigned wd, mask;
		unsigned long ino;
		if (sscanf(l, "inotify wd:%x ino:%lx sdev:%*x mask:%x", &wd, &ino, &mask) != 3)
			fail("bad fdinfo line");
		o += (size_t)snprintf(out + o, len - o, "%u %lu %x\n", wd, ino, mask);
	}
}

/* Events are read in batches; hand them out one by one. */
static char evbuf[4096] __attribute__((aligned(8)));
static size_t evlen, evpos;

static void expect_event(int fd, int wd, uint32_t mask, const char *name)
{
	if (evpos >= evlen) {
		ssize_t n = read(fd, evbuf, sizeof(evbuf));
		if (n < (ssize_t)sizeof(struct inotify_event))
			fail("no event (want wd %d mask %x): %m", wd, mask);
		evlen = (size_t)n;
		evpos = 0;
	}
	struct inotify_event *e = (void *)(evbuf + evpos);
	evpos += sizeof(*e) + e->len;
	if (e->wd != wd || !(e->mask & mask) || (name && strcmp(e->name, name)))
		fail("event wd %d mask %x '%s', want wd %d mask %x", e->wd, e->mask,
		     e->len ? e->name : "", wd, mask);
}

int main(int argc, char **argv)
{
	char before[1024], after[1024], buf[4096];
	test_init(argc, argv);
	snprintf(d1, sizeof(d1), "%s/ino-d1.%d", test_dir(), getpid());
	snprintf(d2, sizeof(d2), "%s/ino-d2.%d", test_dir(), getpid());
	snprintf(d3, sizeof(d3), "%s/ino-d3.%d", test_dir(), getpid());
	snprintf(f1, sizeof(f1), "%s/file", d1);
	snprintf(f2, sizeof(f2), "%s/new", d1);
	if (mkdir(d1, 0700) || mkdir(d2, 0700) || mkdir(d3, 0700))
		fail("mkdir: %m");
	int f = open(f1, O_WRONLY | O_CREAT, 0600);
	int in = inotify_init1(IN_NONBLOCK);
	if (f < 0 || in < 0)
		fail("setup: %m");
	if (inotify_add_watch(in, d1, IN_CREATE | IN_DELETE) != 1 ||
	    inotify_add_watch(in, f1, IN_MODIFY | IN_ONESHOT) != 2 ||
	    inotify_add_watch(in, d3, IN_ALL_EVENTS) != 3 || inotify_rm_watch(in, 3) ||
	    inotify_add_watch(in, d2, IN_ATTRIB) != 4)
		fail("watches: %m");
	while (read(in, buf, sizeof(buf)) > 0)
		;
	watches(in, before, sizeof(before));

	test_ready();
	test_wait_sigterm();

	watches(in, after, sizeof(after));
	if (strcmp(before, after))
		fail("watches differ:\n%s---\n%s", before, after);
	check(fcntl(in, F_GETFL) & O_NONBLOCK);
	check(read(in, buf, sizeof(buf)) < 0 && errno == EAGAIN);
	check(write(f, "x", 1) == 1);
	expect_event(in, 2, IN_MODIFY, NULL);
	expect_event(in, 2, IN_IGNORED, NULL);	/* oneshot */
	int n = open(f2, O_WRONLY | O_CREAT, 0600);
	check(n >= 0);
	expect_event(in, 1, IN_CREATE, "new");
	check(chmod(d2, 0755) == 0);
	expect_event(in, 4, IN_ATTRIB, NULL);
	check(inotify_add_watch(in, d3, IN_ALL_EVENTS) == 5);
	unlink(f1);
	unlink(f2);
	rmdir(d1);
	rmdir(d2);
	rmdir(d3);
	pass();
}
