/*
 * test_fs_tree: the tree API of src/fs without the engine. A parent target A and its
 * child B share: one open file description of a regular file (fd 10 in both: a shared
 * offset), a pipe (A holds the write end 12, B the read end 11, data buffered), a
 * stream socketpair (A holds 13, B 14, data queued both ways), a memfd (fd 15 in both,
 * one description) and A has a private eventfd (16); they share an epoll (17) that A
 * registered its eventfd in, and a listening unix socket (18, abstract name). Both stop; we dump both with
 * fs_dump_task + fs_dump_finish, kill them, prepare the tree with fs_rst_tree_prepare
 * and run fs_rst_tree_in_stub in two forked children RA and RB (as the engine's stubs
 * would). RA runs first and changes the shared state; RB then observes it: the offset
 * RA set, the bytes RA wrote into the pipe and the socket, the event RA caused on A's
 * eventfd through the shared epoll, the connection RA made to the shared listener and
 * the O_NONBLOCK RA set on it. Also: the memfd is reachable
 * through fs_rst_tree_file_fd; a tree where the pipe's other end is not dumped fails at
 * fs_dump_finish naming the pid and fd; a pid not in the prepared tree is refused.
 * fs_dump_file_id names the memfd's description for both processes.
 * Exit 0 pass, 1 fail, 77 skip.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <stddef.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "fs/fs.h"
#include "img/img.h"

static int report_fd = 2;
#define CHECK(cond) do { if (!(cond)) { \
	dprintf(report_fd, "FAIL %s:%d: %s (errno %d)\n", __FILE__, __LINE__, #cond, errno); \
	exit(1); } } while (0)

static char tmpdir[] = "/tmp/ferry-test-fs-tree-XXXXXX";
static char path_f[300];
static volatile pid_t *shared_pid;	/* B's pid, told by A */
static struct sockaddr_un lsn_addr;
static socklen_t lsn_len;

static void place(int fd, int target)
{
	CHECK(fd >= 0);
	if (fd != target) {
		CHECK(dup2(fd, target) == target);
		close(fd);
	}
}

/* A: build the shared state, fork B, wait for B to stop, stop. */
static void target_a(void)
{
	int p[2], s[2], st;
	CHECK(close_range(0, ~0U, 0) == 0);
	place(open(path_f, O_RDWR), 10);
	CHECK(lseek(10, 5, SEEK_SET) == 5);
	CHECK(pipe(p) == 0);
	place(p[0], 11);
	place(p[1], 12);
	CHECK(write(12, "pipe-data", 9) == 9);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, s) == 0);
	place(s[0], 13);
	place(s[1], 14);
	CHECK(write(13, "from-a", 6) == 6 && write(14, "from-b", 6) == 6);
	place(memfd_create("shared", 0), 15);
	CHECK(write(15, "memfd!", 6) == 6);
	place(epoll_create1(0), 17);
	place(socket(AF_UNIX, SOCK_STREAM, 0), 18);
	CHECK(bind(18, (struct sockaddr *)&lsn_addr, lsn_len) == 0 && listen(18, 4) == 0);
	pid_t b = fork();
	CHECK(b >= 0);
	if (b == 0) {
		close(12);
		close(13);
		kill(getpid(), SIGSTOP);
		for (;;)
			pause();
	}
	close(11);
	close(14);
	place(eventfd(3, 0), 16);
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 0xabcdef };
	CHECK(epoll_ctl(17, EPOLL_CTL_ADD, 16, &ev) == 0);
	*shared_pid = b;
	CHECK(waitpid(b, &st, WUNTRACED) == b && WIFSTOPPED(st));
	kill(getpid(), SIGSTOP);
	for (;;)
		pause();
}

static int dump_tree(const char *dir, const pid_t *pids, size_t n)
{
	struct img_dir *d;
	struct fs_dump *fd;
	struct fs_dump_opts o = { 0 };
	InventoryEntry inv = INVENTORY_ENTRY__INIT;
	int r = 0;
	CHECK(img_dir_create(dir, &d) == 0);
	CHECK(fs_dump_init(d, &o, &fd) == 0);
	for (size_t i = 0; i < n && r == 0; i++)
		r = fs_dump_task(fd, pids[i], -1);
	if (r == 0 && n == 2) {	/* fs_dump_file_id: the memfd at 15, held by both */
		char proc[64];
		struct stat st;
		uint32_t id_a = 0, id_b = 0, id;
		snprintf(proc, sizeof(proc), "/proc/%d/fd/15", pids[0]);
		CHECK(stat(proc, &st) == 0);
		CHECK(fs_dump_file_id(fd, pids[0], st.st_dev, st.st_ino, &id_a) == 0);
		CHECK(fs_dump_file_id(fd, pids[1], st.st_dev, st.st_ino, &id_b) == 0);
		CHECK(id_a == id_b && id_a > 0);
		CHECK(fs_dump_file_id(fd, getpid(), st.st_dev, st.st_ino, &id) == -ENOENT);
		CHECK(fs_dump_file_id(fd, pids[0], st.st_dev, st.st_ino + 1, &id) == -ENOENT);
	}
	if (r == 0)
		r = fs_dump_finish(fd);
	fs_dump_free(fd);
	if (r == 0) {
		img_inventory_init(&inv);
		inv.root_pid = (uint32_t)pids[0];
		CHECK(img_dir_commit(d, &inv) == 0);
	}
	img_dir_free(d);
	return r;
}

static void read_is(int fd, const char *want)
{
	char buf[64];
	size_t len = strlen(want);
	CHECK(read(fd, buf, len) == (ssize_t)len && !memcmp(buf, want, len));
}

static void only_fds(const int *want, size_t n, int keep)
{
	for (int fd = 0; fd < 1100; fd++) {
		bool w = fd == keep;
		for (size_t i = 0; i < n; i++)
			w |= want[i] == fd;
		CHECK(w == (fcntl(fd, F_GETFD) >= 0));
	}
}

/* RA: A's view; changes the shared state. */
static void verify_a(void)
{
	static const int fds[] = { 10, 12, 13, 15, 16, 17, 18 };
	struct epoll_event ev;
	uint64_t v;
	only_fds(fds, 7, report_fd);
	CHECK(lseek(10, 0, SEEK_CUR) == 5);
	CHECK(lseek(10, 100, SEEK_SET) == 100);
	CHECK(write(12, "+ra", 3) == 3);
	read_is(13, "from-b");
	CHECK(write(13, "+ra", 3) == 3);
	CHECK(read(16, &v, 8) == 8 && v == 3);
	CHECK(lseek(15, 0, SEEK_CUR) == 6 && lseek(15, 0, SEEK_SET) == 0);
	CHECK(epoll_wait(17, &ev, 1, 0) == 0);	/* the eventfd was drained above */
	v = 1;
	CHECK(write(16, &v, 8) == 8);
	CHECK(epoll_wait(17, &ev, 1, 0) == 1 && ev.data.u64 == 0xabcdef);
	int c = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK(c >= 0 && connect(c, (struct sockaddr *)&lsn_addr, lsn_len) == 0);
	CHECK(write(c, "conn", 4) == 4);
	CHECK(fcntl(18, F_SETFL, O_NONBLOCK) == 0);
}

/* RB: B's view, after RA ran. */
static void verify_b(void)
{
	static const int fds[] = { 10, 11, 14, 15, 17, 18 };
	struct epoll_event ev;
	char buf[8];
	only_fds(fds, 6, report_fd);
	CHECK(lseek(10, 0, SEEK_CUR) == 100);	/* RA's seek: one description */
	read_is(11, "pipe-data+ra");
	read_is(14, "from-a+ra");
	CHECK(lseek(15, 0, SEEK_CUR) == 0);	/* RA's seek on the shared memfd */
	CHECK(read(15, buf, 6) == 6 && !memcmp(buf, "memfd!", 6));
	CHECK(fcntl(11, F_GETFL) >= 0 && (fcntl(11, F_GETFL) & O_ACCMODE) == O_RDONLY);
	CHECK(epoll_wait(17, &ev, 1, 0) == 1 && ev.data.u64 == 0xabcdef);	/* A's eventfd */
	CHECK(fcntl(18, F_GETFL) & O_NONBLOCK);	/* RA's F_SETFL: one description */
	int a = accept(18, NULL, NULL);		/* RA's connection is queued on it */
	CHECK(a >= 0);
	read_is(a, "conn");
}

/* Fork a stub for pid that installs its fds and runs verify. With stay, it stops
 * afterwards (so its files stay open, as a live process's would) and is returned for
 * the caller to kill; otherwise it must exit 0. */
static pid_t restore_one(struct fs_rst_tree *t, pid_t pid, void (*verify)(void), bool stay)
{
	char err[256];
	int st;
	pid_t c = fork();
	CHECK(c >= 0);
	if (c == 0) {
		int keep[2] = { dup(2), -1 };
		place(keep[0], 12);	/* collides with a target of A: must move */
		keep[0] = 12;
		int e = fs_rst_tree_in_stub(t, pid, keep, 2, err, sizeof(err));
		report_fd = keep[0];
		if (e < 0) {
			dprintf(report_fd, "FAIL stub %d: %s\n", pid, err);
			_exit(1);
		}
		verify();
		if (stay)
			kill(getpid(), SIGSTOP);
		_exit(0);
	}
	CHECK(waitpid(c, &st, stay ? WUNTRACED : 0) == c);
	if (stay && WIFSTOPPED(st))
		return c;
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0 && !stay);
	return 0;
}

static void kill_tree(pid_t a, pid_t b)
{
	kill(b, SIGKILL);
	kill(a, SIGKILL);
	waitpid(a, NULL, 0);
	waitpid(b, NULL, 0);	/* reparented to us: we are a subreaper */
}

static pid_t start_tree(pid_t *b)
{
	int st;
	*shared_pid = 0;
	pid_t a = fork();
	CHECK(a >= 0);
	if (a == 0)
		target_a();
	CHECK(waitpid(a, &st, WUNTRACED) == a && WIFSTOPPED(st));
	*b = *shared_pid;
	CHECK(*b > 0);
	return a;
}

static void test_tree(void)
{
	char dir[300], err[64];
	struct img_dir *d;
	struct fs_rst_tree *t;
	pid_t b, a = start_tree(&b);
	pid_t pids[2] = { a, b };
	snprintf(dir, sizeof(dir), "%s/img-tree", tmpdir);
	int rc = dump_tree(dir, pids, 2);
	kill_tree(a, b);
	CHECK(rc == 0);
	CHECK(img_dir_open(dir, &d) == 0);
	CHECK(fs_rst_tree_prepare(d, pids, 2, 0, &t) == 0);
	int memfds = 0;
	for (uint32_t id = 1; id < 64; id++) {
		char proc[64], link[128];
		int fd = fs_rst_tree_file_fd(t, id);
		if (fd < 0)
			continue;
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
		ssize_t n = readlink(proc, link, sizeof(link) - 1);
		CHECK(n > 0);
		link[n] = 0;
		memfds += !strncmp(link, "/memfd:shared", 13);
	}
	CHECK(memfds == 1);
	CHECK(fs_rst_tree_in_stub(t, 12345678, NULL, 0, err, sizeof(err)) == -ENOENT);
	pid_t ra = restore_one(t, a, verify_a, true);	/* A lives on while B checks */
	restore_one(t, b, verify_b, false);
	kill(ra, SIGKILL);
	waitpid(ra, NULL, 0);
	fs_rst_tree_free(t);
	img_dir_free(d);
}

/* Only B is dumped: the write end of its pipe and the peer of its socket are outside. */
static void test_half_tree(void)
{
	char dir[300];
	pid_t b, a = start_tree(&b);
	snprintf(dir, sizeof(dir), "%s/img-half", tmpdir);
	int rc = dump_tree(dir, &b, 1);
	kill_tree(a, b);
	CHECK(rc == -EOPNOTSUPP);
}

static void run(const char *name, void (*fn)(void), int *failed)
{
	int st;
	pid_t c = fork();
	if (c == 0) {
		CHECK(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);	/* B is reaped by us */
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
	shared_pid = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(shared_pid != MAP_FAILED);
	CHECK(mkdtemp(tmpdir));
	snprintf(path_f, sizeof(path_f), "%s/f", tmpdir);
	lsn_addr.sun_family = AF_UNIX;
	lsn_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
		snprintf(lsn_addr.sun_path + 1, sizeof(lsn_addr.sun_path) - 1, "ferry-tree-%d",
			 getpid()));
	CHECK((fd = open(path_f, O_RDWR | O_CREAT, 0644)) >= 0);
	CHECK(write(fd, "0123456789", 10) == 10);
	close(fd);

	run("tree_shared", test_tree, &failed);
	run("tree_half_dumped", test_half_tree, &failed);

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", tmpdir);
	printf("%d failed\n", failed);
	return failed ? 1 : 0;
}
