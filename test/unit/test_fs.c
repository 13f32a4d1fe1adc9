/*
 * test_fs: src/fs end to end without the engine. A forked child sets up an fd table
 * (files with offsets and flags, a dup, an unlinked file, a pipe with data, a FIFO
 * with data, /dev/null, a high fd number) and stops itself; we dump it with fs_dump_*,
 * kill it, then restore into another forked child through fs_rst_prepare +
 * fs_rst_in_stub (as the restorer's stub would) and that child checks every fd.
 * Also: unsupported fds (TCP socket, pidfd, half pipe, unix peer outside) fail the dump; a corrupted fdinfo image is refused.
 * Exit 0 pass, 1 fail, 77 skip (no pidfd_getfd/kcmp here).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <stddef.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "fs/fs.h"
#include "img/img.h"
#include "files.pb-c.h"

static int report_fd = 2;	/* the restored child reports through its kept fd */
#define CHECK(cond) do { if (!(cond)) { \
	dprintf(report_fd, "FAIL %s:%d: %s (errno %d)\n", __FILE__, __LINE__, #cond, errno); \
	exit(1); } } while (0)

static char tmpdir[] = "/tmp/ferry-test-fs-XXXXXX";
static char path_a[300], path_b[300], path_g[300], path_f[300], path_h[300];
static const char ghost_data[] = "ghost content: still here after restore";
static const char pipe_data[] = "pipe bytes in order 0123456789";
static const char fifo_data[] = "fifo bytes";

static void place(int fd, int target)
{
	CHECK(fd >= 0);
	if (fd != target) {
		CHECK(dup2(fd, target) == target);
		close(fd);
	}
}

/* The target: set up fds, stop, and wait to be killed. */
/* extra: 0 none, else an unsupported fd at 21: 1 TCP socket, 2 pidfd, 3 a pipe without
 * its write end, 4 a unix socket whose peer is outside the process, 5 a socketpair
 * with an fd in flight (SCM_RIGHTS), 6 a unix listener with an unaccepted connection,
 * 7 an epoll whose target was closed in the process (its file lives on elsewhere) */
static void target_main(int extra)
{
	int p[2], fd;
	CHECK(close_range(0, ~0U, 0) == 0);
	place(open(path_a, O_RDWR), 10);
	CHECK(lseek(10, 5, SEEK_SET) == 5);
	CHECK(dup2(10, 11) == 11);
	place(open(path_b, O_WRONLY | O_APPEND), 12);
	CHECK(fcntl(12, F_SETFD, FD_CLOEXEC) == 0);
	fd = open(path_g, O_RDWR | O_CREAT | O_TRUNC, 0640);
	CHECK(write(fd, ghost_data, sizeof(ghost_data)) == sizeof(ghost_data));
	CHECK(lseek(fd, 3, SEEK_SET) == 3);
	place(fd, 13);
	CHECK(unlink(path_g) == 0);
	CHECK(pipe(p) == 0);
	CHECK(write(p[1], pipe_data, sizeof(pipe_data)) == sizeof(pipe_data));
	place(p[0], 14);
	place(p[1], 15);
	CHECK(fcntl(15, F_SETFL, O_NONBLOCK) == 0);
	CHECK(fcntl(15, F_SETFD, FD_CLOEXEC) == 0);
	place(open(path_f, O_RDONLY | O_NONBLOCK), 16);
	place(open(path_f, O_WRONLY), 17);
	CHECK(write(17, fifo_data, sizeof(fifo_data)) == sizeof(fifo_data));
	place(open(path_a, O_PATH), 18);
	place(open(tmpdir, O_RDONLY | O_DIRECTORY), 19);
	place(open("/dev/null", O_RDWR), 20);
	place(open(path_h, O_RDONLY), 1000);
	if (extra == 1)
		place(socket(AF_INET, SOCK_DGRAM, 0), 21);
	if (extra == 2)
		place((int)syscall(SYS_pidfd_open, getpid(), 0), 21);
	if (extra == 3) {
		CHECK(pipe(p) == 0);
		place(p[0], 21);
		close(p[1]);
	}
	if (extra == 4) {
		char c;
		CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, p) == 0);
		if (fork() == 0) {	/* holds the peer until the target dies */
			close(p[0]);
			_exit(read(p[1], &c, 1) < 0);
		}
		place(p[0], 21);
		close(p[1]);
	}
	if (extra == 5) {
		int one = 20;
		char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
		struct iovec iov = { .iov_base = "r", .iov_len = 1 };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
				     .msg_controllen = sizeof(cbuf) };
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &one, sizeof(int));
		CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, p) == 0);
		place(p[0], 21);
		place(p[1], 22);
		CHECK(sendmsg(22, &mh, 0) == 1);
	}
	if (extra == 6) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
			snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1, "ferry-test-%d", getpid()));
		place(socket(AF_UNIX, SOCK_STREAM, 0), 21);
		CHECK(bind(21, (struct sockaddr *)&sa, len) == 0 && listen(21, 4) == 0);
		place(socket(AF_UNIX, SOCK_STREAM, 0), 22);
		CHECK(connect(22, (struct sockaddr *)&sa, len) == 0);
	}
	if (extra == 7) {
		struct epoll_event ev = { .events = EPOLLIN };
		place(epoll_create1(0), 21);
		place(eventfd(0, 0), 22);
		CHECK(epoll_ctl(21, EPOLL_CTL_ADD, 22, &ev) == 0);
		if (fork() == 0) {	/* keeps the eventfd alive, dies with the target */
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			for (;;)
				pause();
		}
		close(22);	/* still registered, open nowhere in the target */
	}
	kill(getpid(), SIGSTOP);
	for (;;)
		pause();
}

static pid_t start_target(int extra)
{
	int st;
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0)
		target_main(extra);
	CHECK(waitpid(pid, &st, WUNTRACED) == pid);
	CHECK(WIFSTOPPED(st));
	return pid;
}

static void stop_target(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static int dump_into(const char *dir, pid_t pid)
{
	struct img_dir *d;
	struct fs_dump *fd;
	struct fs_dump_opts o = { 0 };
	InventoryEntry inv = INVENTORY_ENTRY__INIT;
	CHECK(img_dir_create(dir, &d) == 0);
	CHECK(fs_dump_init(d, &o, &fd) == 0);
	int r = fs_dump_task(fd, pid, -1);
	if (r == 0)
		r = fs_dump_finish(fd);
	fs_dump_free(fd);
	if (r == 0) {
		img_inventory_init(&inv);
		inv.root_pid = (uint32_t)pid;
		CHECK(img_dir_commit(d, &inv) == 0);
	}
	img_dir_free(d);
	return r;
}

static void read_exact(int fd, const void *want, size_t len)
{
	char buf[256];
	CHECK(len <= sizeof(buf));
	CHECK(read(fd, buf, len) == (ssize_t)len);
	CHECK(memcmp(buf, want, len) == 0);
}

/* In the restored child: check every fd. */
static void verify_restored(int keep)
{
	char link[512];
	struct stat st;
	CHECK(keep != 12 && fcntl(keep, F_GETFD) >= 0);
	CHECK(lseek(10, 0, SEEK_CUR) == 5);
	CHECK((fcntl(10, F_GETFL) & O_ACCMODE) == O_RDWR);
	CHECK(lseek(11, 7, SEEK_SET) == 7 && lseek(10, 0, SEEK_CUR) == 7);	/* shared */
	CHECK(fcntl(12, F_GETFL) & O_APPEND);
	CHECK((fcntl(12, F_GETFL) & O_ACCMODE) == O_WRONLY);
	CHECK(fcntl(12, F_GETFD) == FD_CLOEXEC && fcntl(10, F_GETFD) == 0);
	CHECK(fstat(13, &st) == 0 && st.st_nlink == 0 && (st.st_mode & 07777) == 0640);
	CHECK(lseek(13, 0, SEEK_CUR) == 3);
	CHECK(pread(13, link, sizeof(ghost_data), 0) == sizeof(ghost_data));
	CHECK(memcmp(link, ghost_data, sizeof(ghost_data)) == 0);
	read_exact(14, pipe_data, sizeof(pipe_data));
	CHECK(fcntl(15, F_GETFL) & O_NONBLOCK);
	CHECK(!(fcntl(14, F_GETFL) & O_NONBLOCK));
	CHECK(fcntl(15, F_GETFD) == FD_CLOEXEC);
	read_exact(16, fifo_data, sizeof(fifo_data));
	CHECK(fcntl(16, F_GETFL) & O_NONBLOCK);
	CHECK(readlink("/proc/self/fd/20", link, sizeof(link)) == 9 && !memcmp(link, "/dev/null", 9));
	CHECK(fstat(1000, &st) == 0 && S_ISREG(st.st_mode));
	CHECK(fcntl(18, F_GETFL) & O_PATH);
	CHECK(fstat(19, &st) == 0 && S_ISDIR(st.st_mode));
	CHECK(fcntl(19, F_GETFL) & O_DIRECTORY);
	for (int fd = 0; fd < 1100; fd++) {
		bool want = (fd >= 10 && fd <= 19) || fd == 20 || fd == 1000 || fd == keep;
		CHECK(want == (fcntl(fd, F_GETFD) >= 0));
	}
}

static void dump_restore(bool taken)
{
	char dir[300], err[256];
	struct img_dir *d;
	struct fs_rst *r;
	int st;
	snprintf(dir, sizeof(dir), "%s/img%d", tmpdir, taken);
	pid_t pid = start_target(0);
	int rc = dump_into(dir, pid);
	stop_target(pid);
	CHECK(rc == 0);
	CHECK(access(path_g, F_OK) < 0);	/* still unlinked */
	if (taken) {	/* a new file took the ghost's name: it must be left alone */
		int fd = open(path_g, O_WRONLY | O_CREAT | O_EXCL, 0600);
		CHECK(fd >= 0 && write(fd, "new", 3) == 3);
		close(fd);
	}

	CHECK(img_dir_open(dir, &d) == 0);
	CHECK(fs_rst_prepare(d, pid, 0, &r) == 0);
	CHECK(taken ? access(path_g, F_OK) == 0 : access(path_g, F_OK) < 0);
	if (taken) {
		struct stat st;
		CHECK(stat(path_g, &st) == 0 && st.st_size == 3);
		CHECK(unlink(path_g) == 0);
	}
	pid_t c = fork();
	CHECK(c >= 0);
	if (c == 0) {
		int keep = dup(2);
		place(keep, 12);	/* collides with a target: must move */
		keep = 12;
		int e = fs_rst_in_stub(r, &keep, err, sizeof(err));
		report_fd = keep;
		if (e < 0) {
			dprintf(keep, "FAIL stub: %s\n", err);
			_exit(1);
		}
		verify_restored(keep);
		_exit(0);
	}
	CHECK(waitpid(c, &st, 0) == c);
	fs_rst_free(r);
	img_dir_free(d);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void test_dump_restore(void)
{
	dump_restore(false);
}

static void test_ghost_name_taken(void)
{
	dump_restore(true);
}

static void test_unsupported(void)
{
	char dir[300];
	for (int extra = 1; extra <= 7; extra++) {
		snprintf(dir, sizeof(dir), "%s/img-unsup%d", tmpdir, extra);
		pid_t pid = start_target(extra);
		int rc = dump_into(dir, pid);
		stop_target(pid);
		CHECK(rc == -EOPNOTSUPP);
	}
}

/* A process without any fd: empty images; the stub keeps only keep_fd. */
static void test_no_fds(void)
{
	char dir[300], err[256];
	struct img_dir *d;
	struct fs_rst *r;
	int st;
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		close_range(0, ~0U, 0);
		kill(getpid(), SIGSTOP);
		for (;;)
			pause();
	}
	CHECK(waitpid(pid, &st, WUNTRACED) == pid && WIFSTOPPED(st));
	snprintf(dir, sizeof(dir), "%s/img-empty", tmpdir);
	int rc = dump_into(dir, pid);
	stop_target(pid);
	CHECK(rc == 0);
	CHECK(img_dir_open(dir, &d) == 0);
	CHECK(fs_rst_prepare(d, pid, 0, &r) == 0);
	pid_t c = fork();
	CHECK(c >= 0);
	if (c == 0) {
		int keep = dup(2);
		int e = fs_rst_in_stub(r, &keep, err, sizeof(err));
		report_fd = keep;
		CHECK(e == 0);
		for (int fd = 0; fd < 1024; fd++)
			CHECK((fd == keep) == (fcntl(fd, F_GETFD) >= 0));
		_exit(0);
	}
	CHECK(waitpid(c, &st, 0) == c);
	fs_rst_free(r);
	img_dir_free(d);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* A fdinfo image with an out-of-range fd is refused by prepare. */
static void test_bad_fdinfo(void)
{
	char dir[300];
	struct img_dir *d;
	struct img_writer *w;
	struct fs_rst *r;
	InventoryEntry inv = INVENTORY_ENTRY__INIT;
	FdinfoEntry fe = FDINFO_ENTRY__INIT;
	snprintf(dir, sizeof(dir), "%s/img-bad", tmpdir);
	CHECK(img_dir_create(dir, &d) == 0);
	CHECK(img_writer_open(d, "fdinfo-42.img", IMG_MAGIC_FDINFO, &w) == 0);
	fe.fd = 1u << 30;
	fe.id = 1;
	CHECK(img_write_pb(w, &fe.base) == 0);
	CHECK(img_writer_close(w) == 0);
	CHECK(img_writer_open(d, "files.img", IMG_MAGIC_FILES, &w) == 0);
	CHECK(img_writer_close(w) == 0);
	img_inventory_init(&inv);
	CHECK(img_dir_commit(d, &inv) == 0);
	img_dir_free(d);
	CHECK(img_dir_open(dir, &d) == 0);
	CHECK(fs_rst_prepare(d, 42, 0, &r) == -EBADMSG);
	img_dir_free(d);
}

/* Crafted files.img entries (valid framing and hashes, bad content) are refused. */
static int prepare_crafted(int n, FileEntry *fe)
{
	char dir[300];
	struct img_dir *d;
	struct img_writer *w;
	struct fs_rst *r = NULL;
	InventoryEntry inv = INVENTORY_ENTRY__INIT;
	FdinfoEntry fi = FDINFO_ENTRY__INIT;
	snprintf(dir, sizeof(dir), "%s/img-crafted-%d", tmpdir, n);
	CHECK(img_dir_create(dir, &d) == 0);
	CHECK(img_writer_open(d, "fdinfo-42.img", IMG_MAGIC_FDINFO, &w) == 0);
	fi.fd = 3;
	fi.id = 1;
	CHECK(img_write_pb(w, &fi.base) == 0);
	CHECK(img_writer_close(w) == 0);
	CHECK(img_writer_open(d, "files.img", IMG_MAGIC_FILES, &w) == 0);
	if (fe)
		CHECK(img_write_pb(w, &fe->base) == 0);
	CHECK(img_writer_close(w) == 0);
	img_inventory_init(&inv);
	CHECK(img_dir_commit(d, &inv) == 0);
	img_dir_free(d);
	CHECK(img_dir_open(dir, &d) == 0);
	int e = fs_rst_prepare(d, 42, 0, &r);
	fs_rst_free(e == 0 ? r : NULL);
	img_dir_free(d);
	return e;
}

static void test_bad_files(void)
{
	FileEntry fe = FILE_ENTRY__INIT;
	PipeFileEntry pe = PIPE_FILE_ENTRY__INIT;
	RegFileEntry re = REG_FILE_ENTRY__INIT;
	ChrFileEntry ce = CHR_FILE_ENTRY__INIT;
	int n = 0;

	CHECK(prepare_crafted(n++, NULL) == -EBADMSG);		/* id 1 missing */
	fe.id = 1;
	fe.type = FD_KIND__FDK_PIPE;				/* no pipe part */
	CHECK(prepare_crafted(n++, &fe) == -EBADMSG);
	fe.pipe = &pe;
	pe.pipe_id = 1;
	pe.flags = O_RDONLY;
	pe.pipe_size = 0;					/* bad size */
	CHECK(prepare_crafted(n++, &fe) == -EBADMSG);
	pe.pipe_size = 4096;
	pe.flags = O_RDWR;					/* bad access mode */
	CHECK(prepare_crafted(n++, &fe) == -EBADMSG);
	pe.flags = O_RDONLY;
	CHECK(prepare_crafted(n++, &fe) == 0);			/* sane: accepted */
	fe.pipe = NULL;
	fe.type = 99;						/* unknown kind */
	CHECK(prepare_crafted(n++, &fe) < 0);
	fe.type = FD_KIND__FDK_REG;
	fe.reg = &re;
	re.path = "relative/path";
	re.mode = S_IFREG | 0600;
	CHECK(prepare_crafted(n++, &fe) < 0);
	re.path = "/nonexistent/ferry/file";
	CHECK(prepare_crafted(n++, &fe) == -ENOENT);
	re.path = "/dev/null";					/* not a regular file anymore */
	CHECK(prepare_crafted(n++, &fe) == -ESTALE);
	re.has_ghost = re.ghost = true;				/* ghost without its image */
	re.path = path_a;
	CHECK(prepare_crafted(n++, &fe) == -ENOENT);
	fe.reg = NULL;
	fe.type = FD_KIND__FDK_CHR;
	fe.chr = &ce;
	ce.rdev = (8u << 8) | 0;				/* sda: not allowed */
	CHECK(prepare_crafted(n++, &fe) == -EBADMSG);
}

/* Crafted entries of the new kinds: out-of-range values are refused, sane ones pass. */
static void test_bad_new_kinds(void)
{
	FileEntry fe = FILE_ENTRY__INIT;
	EventfdFileEntry ee = EVENTFD_FILE_ENTRY__INIT;
	TimerfdFileEntry te = TIMERFD_FILE_ENTRY__INIT;
	MemfdFileEntry me = MEMFD_FILE_ENTRY__INIT;
	InotifyFileEntry ie = INOTIFY_FILE_ENTRY__INIT;
	InotifyWatchEntry w1 = INOTIFY_WATCH_ENTRY__INIT, w2 = INOTIFY_WATCH_ENTRY__INIT;
	InotifyWatchEntry *ws[2] = { &w1, &w2 };
	EpollFileEntry pe = EPOLL_FILE_ENTRY__INIT;
	EpollTfdEntry t1 = EPOLL_TFD_ENTRY__INIT, *ts[1] = { &t1 };
	UnixSkEntry ue = UNIX_SK_ENTRY__INIT;
	ProtobufCBinaryData q[1] = { { 0, (uint8_t *)"" } };
	char longname[300];
	int n = 100;

	fe.id = 1;
	for (int k = FD_KIND__FDK_EVENTFD; k <= FD_KIND__FDK_UNIX; k++) {
		fe.type = k;					/* no sub-message */
		CHECK(prepare_crafted(n++, &fe) == -EBADMSG);
	}
	fe.type = FD_KIND__FDK_EVENTFD;
	fe.eventfd = &ee;
	ee.count = ~0ULL;					/* above 2^64-2 */
	CHECK(prepare_crafted(n++, &fe) == -EBADMSG);
	ee.count = 5;
	CHECK(prepare_crafted(n++, &fe) == 0);
	fe.eventfd = NULL;
	fe.type = FD_KIND__FDK_TIMERFD;
	fe.timerfd = &te;
	te.clockid = 4;						/* CLOCK_MONOTONIC_RAW */
	CHECK(prepare_crafted(n++, &fe) == -EBADMSG);
	te.clockid = 1;
	te.settime_flags = 0x80;
	CHECK(prepare_crafted(n++, &fe) == -EBADMSG);
	te.settime_flags = 1;
	te.value_ns = ~0ULL;
	CHECK(prepare_crafted(n++, &fe) == -EBADMSG);
	te.value_ns = 1000;
	CHECK(prepare_crafted(n++, &fe) == 0);
	fe.timerfd = NULL;
	fe.type = FD_KIND__FDK_MEMFD;
	fe.memfd = &me;
	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = 0;
	me.name = longname;					/* > 249 bytes */
	CHECK(prepare_crafted(n++, &fe) == -EBADMSG);
	me.name = "m";
	me.seals = 0x100;					/* unknown seal */
	CHECK(prepare_crafted(n++, &fe) == -EBADMSG);
	me.seals = 0;
	me.has_inode_id = true;
	me.inode_id = 7;					/* after its own id */
	CHECK(prepare_crafted(n++, &fe) == -EBADMSG);
	me.inode_id = 1;					/* content image missing */
	CHECK(prepare_crafted(n++, &fe) == -ENOENT);
	fe.memfd = NULL;
	fe.type = FD_KIND__FDK_INOTIFY;
	fe.inotify = &ie;
	ie.n_watches = 2;
	ie.watches = ws;
	w1.wd = w2.wd = 1;					/* wd twice */
	w1.path = w2.path = "/";
	w1.mask = w2.mask = IN_CREATE;
	CHECK(prepare_crafted(n++, &fe) == -EBADMSG);
	w2.wd = 2;
	w2.path = "tmp";					/* relative */
	CHECK(prepare_crafted(n++, &fe) < 0);
	w2.path = "/tmp";
	w2.mask = 0x08000000;					/* unknown bit */
	CHECK(prepare_crafted(n++, &fe) == -EBADMSG);
	w2.mask = IN_ATTRIB;
	w2.wd = 1u << 30;					/* a gap too large to pad */
	CHECK(prepare_crafted(n++, &fe) == -EBADMSG);
	w2.wd = 3;
	CHECK(prepare_crafted(n++, &fe) == 0);
	fe.inotify = NULL;
	fe.type = FD_KIND__FDK_EPOLL;
	fe.epoll = &pe;
	pe.n_tfds = 1;
	pe.tfds = ts;
	pe.owner_pid = 43;					/* not restored */
	CHECK(prepare_crafted(n++, &fe) == -EBADMSG);
	pe.owner_pid = 42;
	t1.tfd = 1u << 20;					/* fd out of range */
	CHECK(prepare_crafted(n++, &fe) == -EBADMSG);
	t1.tfd = 3;
	CHECK(prepare_crafted(n++, &fe) == 0);
	fe.epoll = NULL;
	fe.type = FD_KIND__FDK_UNIX;
	fe.usk = &ue;
	ue.ino = 10;
	ue.type = 99;						/* unknown type */
	ue.state = 7;
	CHECK(prepare_crafted(n++, &fe) == -EBADMSG);
	ue.type = SOCK_DGRAM;
	ue.has_name = true;
	ue.name.data = (uint8_t *)"rel/path";			/* relative name */
	ue.name.len = 9;
	CHECK(prepare_crafted(n++, &fe) == -EBADMSG);
	ue.name.data = (uint8_t *)"/tmp/x\0y";			/* NUL inside the path */
	ue.name.len = 9;
	CHECK(prepare_crafted(n++, &fe) == -EBADMSG);
	ue.has_name = false;
	ue.n_rqueue = 1;
	ue.rqueue = q;						/* zero-length datagram */
	CHECK(prepare_crafted(n++, &fe) == -EBADMSG);
	ue.n_rqueue = 0;
	ue.peer_ino = 11;					/* peer not restored */
	CHECK(prepare_crafted(n++, &fe) == -EBADMSG);
	ue.peer_ino = 10;					/* its own peer */
	CHECK(prepare_crafted(n++, &fe) == -EBADMSG);
	ue.peer_ino = 0;
	ue.backlog = 1u << 20;
	CHECK(prepare_crafted(n++, &fe) == -EBADMSG);
	ue.backlog = 0;
	CHECK(prepare_crafted(n++, &fe) == 0);

	/* A filesystem name: a live socket keeps it, a stale socket file is replaced, a
	 * file of another type is refused. */
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/live.sock", tmpdir);
	int ls = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK(ls >= 0 && bind(ls, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(ls, 1) == 0);
	ue.type = SOCK_STREAM;
	ue.state = 10;
	ue.has_name = true;
	ue.name.data = (uint8_t *)sa.sun_path;
	ue.name.len = strlen(sa.sun_path) + 1;
	CHECK(prepare_crafted(n++, &fe) == -EADDRINUSE);
	CHECK(access(sa.sun_path, F_OK) == 0);
	close(ls);					/* now a stale socket file */
	CHECK(prepare_crafted(n++, &fe) == 0);
	CHECK(access(sa.sun_path, F_OK) < 0 && errno == ENOENT);
	close(open(sa.sun_path, O_CREAT | O_WRONLY, 0600));	/* a regular file */
	CHECK(prepare_crafted(n++, &fe) == -EEXIST);
	CHECK(unlink(sa.sun_path) == 0);
}

/* A pty slave in the target is restored (with shell_job) as the restorer's terminal,
 * with the dumped flags; without shell_job the dump refuses it. */
static void tty_target(const char *slave)
{
	CHECK(close_range(0, ~0U, 0) == 0);
	place(open(slave, O_RDWR | O_NONBLOCK | O_NOCTTY), 5);
	kill(getpid(), SIGSTOP);
	for (;;)
		pause();
}

static int open_pty(char *slave, size_t len)
{
	int m = posix_openpt(O_RDWR | O_NOCTTY);
	CHECK(m >= 0 && grantpt(m) == 0 && unlockpt(m) == 0);
	CHECK(ptsname_r(m, slave, len) == 0);
	return m;
}

static void test_tty(void)
{
	char dir[300], slave[64], mine[64], err[256];
	struct img_dir *d;
	struct fs_dump *fd;
	struct fs_dump_opts o = { .shell_job = 0 };
	struct fs_rst *r;
	InventoryEntry inv = INVENTORY_ENTRY__INIT;
	int st, m = open_pty(slave, sizeof(slave));
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0)
		tty_target(slave);
	CHECK(waitpid(pid, &st, WUNTRACED) == pid && WIFSTOPPED(st));
	snprintf(dir, sizeof(dir), "%s/img-tty", tmpdir);
	CHECK(img_dir_create(dir, &d) == 0);
	CHECK(fs_dump_init(d, &o, &fd) == 0);
	CHECK(fs_dump_task(fd, pid, -1) == -EOPNOTSUPP);	/* no shell_job */
	fs_dump_free(fd);
	o.shell_job = 1;
	CHECK(fs_dump_init(d, &o, &fd) == 0);
	CHECK(fs_dump_task(fd, pid, -1) == 0 && fs_dump_finish(fd) == 0);
	fs_dump_free(fd);
	img_inventory_init(&inv);
	CHECK(img_dir_commit(d, &inv) == 0);
	img_dir_free(d);
	stop_target(pid);

	int m2 = open_pty(mine, sizeof(mine));	/* the restorer's terminal, on fd 0 */
	place(open(mine, O_RDWR | O_NOCTTY), 0);
	CHECK(img_dir_open(dir, &d) == 0);
	CHECK(fs_rst_prepare(d, pid, 1, &r) == 0);
	pid_t c = fork();
	CHECK(c >= 0);
	if (c == 0) {
		int keep = dup(2);
		int e = fs_rst_in_stub(r, &keep, err, sizeof(err));
		report_fd = keep;
		if (e < 0) {
			dprintf(keep, "FAIL stub: %s\n", err);
			_exit(1);
		}
		char name[64];
		CHECK(isatty(5) && ttyname_r(5, name, sizeof(name)) == 0);
		CHECK(strcmp(name, mine) == 0);
		CHECK(fcntl(5, F_GETFL) & O_NONBLOCK);
		CHECK(fcntl(0, F_GETFD) < 0);
		_exit(0);
	}
	CHECK(waitpid(c, &st, 0) == c);
	fs_rst_free(r);
	img_dir_free(d);
	close(m);
	close(m2);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void run(const char *name, void (*fn)(void), int *failed)
{
	int st;
	pid_t c = fork();
	if (c == 0) {
		fn();
		_exit(0);
	}
	waitpid(c, &st, 0);
	bool ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
	printf("%s %s\n", ok ? "ok  " : "FAIL", name);
	*failed += !ok;
}

int main(void)
{
	int failed = 0, fd;
	char cmd[400];
	util_init();
	log_init(NULL, LOG_WARN);
	if (sys_pidfd_getfd(-1, 0, 0) == -ENOSYS) {
		printf("SKIP: no pidfd_getfd\n");
		return 77;
	}
	CHECK(mkdtemp(tmpdir));
	snprintf(path_a, sizeof(path_a), "%s/a", tmpdir);
	snprintf(path_b, sizeof(path_b), "%s/b", tmpdir);
	snprintf(path_g, sizeof(path_g), "%s/ghost", tmpdir);
	snprintf(path_f, sizeof(path_f), "%s/fifo", tmpdir);
	snprintf(path_h, sizeof(path_h), "%s/high", tmpdir);
	CHECK((fd = open(path_a, O_RDWR | O_CREAT, 0644)) >= 0);
	CHECK(write(fd, "0123456789abcdef", 16) == 16);
	close(fd);
	CHECK((fd = open(path_b, O_RDWR | O_CREAT, 0644)) >= 0);
	close(fd);
	CHECK((fd = open(path_h, O_RDWR | O_CREAT, 0644)) >= 0);
	close(fd);
	CHECK(mkfifo(path_f, 0600) == 0);

	run("dump_restore", test_dump_restore, &failed);
	run("ghost_name_taken", test_ghost_name_taken, &failed);
	run("no_fds", test_no_fds, &failed);
	run("unsupported_kinds", test_unsupported, &failed);
	run("bad_fdinfo", test_bad_fdinfo, &failed);
	run("tty_shell_job", test_tty, &failed);
	run("bad_files", test_bad_files, &failed);
	run("bad_new_kinds", test_bad_new_kinds, &failed);

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", tmpdir);
	printf("%d failed\n", failed);
	return failed ? 1 : 0;
}
