/*
 * check: `ferry check`, probe every kernel feature ferry uses, for real.
 *
 * Each probe exercises the feature the way ferry does (seize and interrupt a child,
 * read its memory, take its fd, create a child with a chosen PID, ...), not by kernel
 * version or config. Probes that change any state (ptrace, namespaces, prctl, mappings)
 * run in a forked child that reports one line of detail through a pipe; the child has
 * an alarm and PDEATHSIG on its own children, so a hung probe costs at most
 * CHECK_TIMEOUT seconds and leaves nothing behind.
 *
 * Output: one line per feature, "OK" or "MISSING", with detail, and for a missing one
 * what stops working. Exit 0 when every must-have is present, 1 otherwise. --json
 * prints the same as one JSON object. docs/check.md lists the features.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <linux/userfaultfd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/netlink.h>

#include "common/log.h"
#include "common/util.h"
#include "engine/engine.h"

#define CHECK_TIMEOUT 10 /* seconds per probe */
#define DETAIL_MAX    200

/* Newer than the 6.1 headers of this build host. */
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif

/* PAGEMAP_SCAN, uapi of Linux 6.7 (include/uapi/linux/fs.h). */
struct check_pm_region {
	uint64_t start, end, categories;
};

struct check_pm_scan_arg {
	uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
	uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};

#define CHECK_PM_SCAN_WP_MATCHING   (1ull << 0)
#define CHECK_PM_SCAN_CHECK_WPASYNC (1ull << 1)
#define CHECK_PAGE_IS_WRITTEN	    (1ull << 1)
#define CHECK_PAGEMAP_SCAN	    _IOWR('f', 16, struct check_pm_scan_arg)

#ifndef __NR_io_uring_setup
#define __NR_io_uring_setup 425
#endif

enum need { NEED_MUST, NEED_OPTIONAL, NEED_INFO };

/* A probe writes detail into d (size DETAIL_MAX) and returns 1 present, 0 missing. */
typedef int (*probe_fn)(char *d);

struct feature {
	const char *name;
	enum need need;
	bool in_child; /* changes state: run in a forked child */
	probe_fn probe;
	const char *impact; /* what stops working without it */
};

static int detail(char *d, int ret, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int detail(char *d, int ret, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(d, DETAIL_MAX, fmt, ap);
	va_end(ap);
	return ret;
}

/* ---- a cooperating target process ------------------------------------------------ */

static volatile uint64_t check_token;

struct target {
	pid_t pid;
	int ctl;   /* write end: closing it lets the target exit */
	int fd;	   /* an fd number inside the target (a memfd) */
	ino_t ino; /* its inode */
};

/* Fork a target that sets check_token, opens a memfd, reports {fd, ino} and waits
 * (blocked in read) until t->ctl is closed. 0 or -errno. */
static int target_start(struct target *t)
{
	int rep[2], ctl[2], e;
	t->pid = -1;
	t->ctl = t->fd = -1;
	t->ino = 0;
	if (pipe2(rep, O_CLOEXEC) < 0) {
		e = errno;
		return e > 0 ? -e : -EIO;
	}
	if (pipe2(ctl, O_CLOEXEC) < 0) {
		e = errno;
		e = e > 0 ? -e : -EIO;
		close(rep[0]);
		close(rep[1]);
		return e;
	}
	t->pid = fork();
	e = errno; /* of fork, before the closes below */
	if (t->pid == 0) {
		struct stat st;
		char c;
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(rep[0]);
		close(ctl[1]);
		check_token = 0xfe77c4ecull;
		int fd = memfd_create("ferry-check", 0);
		int64_t msg[2] = { fd, fd >= 0 && fstat(fd, &st) == 0 ? (int64_t)st.st_ino : -1 };
		if (write(rep[1], msg, sizeof(msg)) != sizeof(msg))
			_exit(1);
		while (read(ctl[0], &c, 1) < 0 && errno == EINTR)
			;
		_exit(0);
	}
	close(rep[1]);
	close(ctl[0]);
	int64_t msg[2] = { -1, -1 };
	int r = t->pid < 0 ? (e > 0 ? -e : -EIO) : 0;
	if (r == 0 && read_full(rep[0], msg, sizeof(msg)) != sizeof(msg))
		r = -EIO;
	close(rep[0]);
	if (r < 0) {
		close(ctl[1]);
		return r;
	}
	t->ctl = ctl[1];
	t->fd = (int)msg[0];
	t->ino = (ino_t)msg[1];
	return 0;
}

static void target_stop(struct target *t)
{
	close(t->ctl);
	kill(t->pid, SIGKILL);
	(void)waitpid(t->pid, NULL, 0);
}

/* ---- probes ------------------------------------------------------------------------ */

static int probe_ptrace(char *d)
{
	struct target t;
	int st, r;
	if ((r = target_start(&t)) < 0)
		return detail(d, 0, "cannot start a target: %s", strerror(-r));
	if (ptrace(PTRACE_SEIZE, t.pid, 0, 0) < 0) {
		r = detail(d, 0, "PTRACE_SEIZE: %m");
	} else if (ptrace(PTRACE_INTERRUPT, t.pid, 0, 0) < 0) {
		r = detail(d, 0, "PTRACE_INTERRUPT: %m");
	} else if (waitpid(t.pid, &st, __WALL) != t.pid || !WIFSTOPPED(st) ||
		   (st >> 16) != PTRACE_EVENT_STOP) {
		r = detail(d, 0, "interrupted child did not report a group/event stop (status %#x)",
			   st);
	} else {
		r = detail(d, 1, "seized and interrupted a child");
		(void)ptrace(PTRACE_DETACH, t.pid, 0, 0);
	}
	target_stop(&t);
	return r;
}

static int probe_vm_readv(char *d)
{
	struct target t;
	uint64_t v = 0;
	int r;
	if ((r = target_start(&t)) < 0)
		return detail(d, 0, "cannot start a target: %s", strerror(-r));
	struct iovec local = { &v, sizeof(v) }, remote = { (void *)&check_token, sizeof(v) };
	ssize_t n = process_vm_readv(t.pid, &local, 1, &remote, 1, 0);
	if (n < 0)
		r = detail(d, 0, "process_vm_readv: %m");
	else if (n != sizeof(v) || v != 0xfe77c4ecull)
		r = detail(d, 0, "read %zd bytes, value %#llx: not the child's", n,
			   (unsigned long long)v);
	else
		r = detail(d, 1, "read a child's memory");
	target_stop(&t);
	return r;
}

static int probe_pidfd(char *d)
{
	struct target t;
	struct stat st;
	int r;
	if ((r = target_start(&t)) < 0)
		return detail(d, 0, "cannot start a target: %s", strerror(-r));
	int pidfd = sys_pidfd_open(t.pid, 0);
	if (pidfd < 0) {
		r = detail(d, 0, "pidfd_open: %s", strerror(-pidfd));
	} else {
		int fd = sys_pidfd_getfd(pidfd, t.fd, 0);
		if (fd < 0)
			r = detail(d, 0, "pidfd_getfd: %s", strerror(-fd));
		else if (fstat(fd, &st) < 0 || st.st_ino != t.ino)
			r = detail(d, 0, "pidfd_getfd returned another file");
		else
			r = detail(d, 1, "took an fd from a child");
		if (fd >= 0)
			close(fd);
		close(pidfd);
	}
	target_stop(&t);
	return r;
}

#define CHECK_PID 4242 /* the chosen PID inside the probe's new pid namespace */

static pid_t clone3_set_tid(pid_t want)
{
	pid_t tid[1] = { want };
	struct clone_args a = { .exit_signal = SIGCHLD,
				.set_tid = (uintptr_t)tid,
				.set_tid_size = 1 };
	return (pid_t)sys_clone3(&a, sizeof(a));
}

/* Runs as PID 1 of a new pid namespace: create CHECK_PID, then ask for it again. */
static int set_tid_in_ns(void)
{
	int ctl[2];
	char c;
	if (pipe(ctl) < 0)
		return 10;
	pid_t p = clone3_set_tid(CHECK_PID);
	if (p == 0) {
		close(ctl[1]);
		while (read(ctl[0], &c, 1) < 0 && errno == EINTR)
			;
		_exit(0);
	}
	close(ctl[0]);
	if (p < 0)
		return p == -EPERM ? 11 : 12;
	if (p != CHECK_PID) {
		kill(p, SIGKILL);
		return 13;
	}
	pid_t q = clone3_set_tid(CHECK_PID);
	if (q == 0)
		_exit(0);
	close(ctl[1]);
	(void)waitpid(p, NULL, 0);
	if (q > 0) {
		(void)waitpid(q, NULL, 0);
		return 14;
	}
	return q == -EEXIST ? 0 : 15;
}

/* A PID free in our namespace right now: above the last one handed out, with no /proc
 * entry (a race with another fork only makes the probe retry). */
static pid_t free_pid(int attempt)
{
	char *s, path[32];
	uint64_t last = 1000, max = 32768;
	/* pid_max is at least 301; below 400 there is nothing to choose from */
	if (read_file("/proc/sys/kernel/ns_last_pid", &s, NULL, 64) == 0) {
		s[strcspn(s, "\n")] = 0;
		(void)parse_u64(s, 10, &last);
		free(s);
	}
	if (read_file("/proc/sys/kernel/pid_max", &s, NULL, 64) == 0) {
		s[strcspn(s, "\n")] = 0;
		(void)parse_u64(s, 10, &max);
		free(s);
	}
	if (max < 400)
		return -1;
	for (uint64_t p = last + 100 + attempt * 37; p < last + 10000; p++) {
		pid_t cand = (pid_t)(300 + p % (max - 300));
		snprintf(path, sizeof(path), "/proc/%d", cand);
		if (access(path, F_OK) < 0)
			return cand;
	}
	return -1;
}

/* As root, in our own namespace (the same-PID restore without a new pid namespace). */
static bool set_tid_here(pid_t *got)
{
	for (int attempt = 0; attempt < 3; attempt++) {
		pid_t want = free_pid(attempt);
		if (want < 0)
			return false;
		pid_t p = clone3_set_tid(want);
		if (p == 0)
			_exit(0);
		if (p == -EEXIST)
			continue;
		if (p < 0)
			return false;
		(void)waitpid(p, NULL, 0);
		*got = p;
		return p == want;
	}
	return false;
}

static const char *set_tid_why(int code)
{
	switch (code) {
	case 10:
		return "pipe failed";
	case 11:
		return "clone3 set_tid: EPERM (needs CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE)";
	case 12:
		return "clone3 with set_tid failed";
	case 13:
		return "clone3 ignored set_tid";
	case 14:
		return "a PID in use was given twice (no EEXIST)";
	case 15:
		return "a PID in use failed with another error than EEXIST";
	default:
		return "probe failed";
	}
}

static int probe_set_tid(char *d)
{
	char here[64] = "not in ours (needs root)";
	pid_t got = 0;
	int st;
	if (set_tid_here(&got))
		snprintf(here, sizeof(here), "PID %d in ours", got);
	if (unshare(CLONE_NEWPID) < 0)
		return detail(d, 0, "unshare(CLONE_NEWPID): %m; %s", here);
	pid_t init = fork(); /* PID 1 of the new namespace */
	if (init < 0)
		return detail(d, 0, "fork: %m");
	if (init == 0)
		_exit(set_tid_in_ns());
	if (waitpid(init, &st, 0) != init || !WIFEXITED(st))
		return detail(d, 0, "probe init died (status %#x)", st);
	int code = WEXITSTATUS(st);
	if (code == 0)
		return detail(d, 1,
			      "chose PID %d in a new pid namespace, %s; a PID in use gives EEXIST",
			      CHECK_PID, here);
	return detail(d, 0, "%s (exit %d)", set_tid_why(code), code);
}

/* PR_SET_MM_MAP with the process's own current values (exe_fd -1): a no-op that goes
 * through every check the restorer's call goes through. */
static int probe_mm_map(char *d)
{
	unsigned int size = 0;
	struct prctl_mm_map m = { 0 };
	char *stat, *p;
	unsigned long long v[52] = { 0 };
	int r;

	if (prctl(PR_SET_MM, PR_SET_MM_MAP_SIZE, (unsigned long)&size, 0, 0) < 0)
		return detail(d, 0, "PR_SET_MM_MAP_SIZE: %m");
	if (size != sizeof(m))
		return detail(d, 0, "PR_SET_MM_MAP_SIZE says %u bytes, ferry uses %zu", size,
			      sizeof(m));
	if ((r = read_file("/proc/self/stat", &stat, NULL, 4096)) < 0)
		return detail(d, 0, "/proc/self/stat: %s", strerror(-r));
	p = strrchr(stat, ')');
	for (int i = 3; p && i <= 51; i++) { /* v[i] is field i of proc(5) */
		p = strchr(p + 1, ' ');
		if (p)
			v[i] = strtoull(p + 1, NULL, 10);
	}
	free(stat);
	m.start_code = v[26], m.end_code = v[27], m.start_stack = v[28];
	m.start_data = v[45], m.end_data = v[46], m.start_brk = v[47];
	m.arg_start = v[48], m.arg_end = v[49], m.env_start = v[50], m.env_end = v[51];
	m.brk = (uintptr_t)sbrk(0);
	m.exe_fd = (uint32_t)-1;
	if (prctl(PR_SET_MM, PR_SET_MM_MAP, (unsigned long)&m, sizeof(m), 0) < 0)
		return detail(d, 0, "PR_SET_MM_MAP with the current values: %m");
	char *status;
	bool res = false;
	if (read_file("/proc/self/status", &status, NULL, 1 << 16) == 0) {
		char *c = strstr(status, "CapEff:");
		res = c && (strtoull(c + 7, NULL, 16) >> 24) & 1; /* CAP_SYS_RESOURCE */
		free(status);
	}
	return detail(d, 1, "PR_SET_MM_MAP accepted; %s",
		      res ? "CAP_SYS_RESOURCE present"
			  : "no CAP_SYS_RESOURCE (fine: exe_fd goes through PR_SET_MM_MAP)");
}

/* Count PAGEMAP_SCAN written regions in [start, start+len). -errno on failure. */
static int pm_scan_written(int pm, void *start, size_t len, struct check_pm_region *vec, int n)
{
	struct check_pm_scan_arg a = {
		.size = sizeof(a),
		.flags = CHECK_PM_SCAN_WP_MATCHING | CHECK_PM_SCAN_CHECK_WPASYNC,
		.start = (uintptr_t)start,
		.end = (uintptr_t)start + len,
		.vec = (uintptr_t)vec,
		.vec_len = n,
		.category_mask = CHECK_PAGE_IS_WRITTEN,
		.return_mask = CHECK_PAGE_IS_WRITTEN,
	};
	int r = ioctl(pm, CHECK_PAGEMAP_SCAN, &a);
	return r < 0 ? -errno : r;
}

/* Register a small mapping with async write-protect and check that PAGEMAP_SCAN
 * reports exactly the page written after a re-arming scan. */
static int uffd_wp_scan(char *d, int uffd)
{
	size_t ps = page_size, len = 4 * ps;
	struct check_pm_region vec[8];
	uint8_t *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return detail(d, 0, "mmap: %m");
	memset(mem, 1, len);
	struct uffdio_register reg = { .range = { (uintptr_t)mem, len },
				       .mode = UFFDIO_REGISTER_MODE_WP };
	if (ioctl(uffd, UFFDIO_REGISTER, &reg) < 0)
		return detail(d, 0, "UFFDIO_REGISTER mode WP: %m");
	int pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (pm < 0)
		return detail(d, 0, "/proc/self/pagemap: %m");
	int n = pm_scan_written(pm, mem, len, vec, 8); /* first scan: arms every page */
	if (n == -ENOTTY || n == -EINVAL)
		return detail(d, 0, "uffd-wp async OK, but no PAGEMAP_SCAN ioctl (%s)",
			      strerror(-n));
	if (n < 0)
		return detail(d, 0, "PAGEMAP_SCAN: %s", strerror(-n));
	mem[2 * ps + 7] = 2;
	n = pm_scan_written(pm, mem, len, vec, 8);
	close(pm);
	if (n < 0)
		return detail(d, 0, "PAGEMAP_SCAN (second): %s", strerror(-n));
	if (n != 1 || vec[0].start != (uintptr_t)mem + 2 * ps || vec[0].end != vec[0].start + ps)
		return detail(d, 0,
			      "PAGEMAP_SCAN did not report exactly the written page (%d regions)",
			      n);
	return detail(d, 1,
		      "WP_ASYNC + WP_UNPOPULATED; PAGEMAP_SCAN found exactly the written page");
}

static int probe_uffd(char *d)
{
	int uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (uffd < 0)
		return detail(d, 0, "userfaultfd: %m");
	struct uffdio_api api = { .api = UFFD_API, .features = 0 };
	if (ioctl(uffd, UFFDIO_API, &api) < 0)
		return detail(d, 0, "UFFDIO_API: %m");
	uint64_t want = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED;
	if ((api.features & want) != want)
		return detail(d, 0, "kernel lacks %s%s",
			      api.features & UFFD_FEATURE_WP_ASYNC ? "" : "UFFD_FEATURE_WP_ASYNC ",
			      api.features & UFFD_FEATURE_WP_UNPOPULATED
				      ? ""
				      : "UFFD_FEATURE_WP_UNPOPULATED");
	close(uffd);
	/* UFFDIO_API may be called once per fd: a fresh one with the features we need */
	uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	api = (struct uffdio_api){ .api = UFFD_API, .features = want };
	if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api) < 0)
		return detail(d, 0, "UFFDIO_API with WP_ASYNC|WP_UNPOPULATED: %m");
	return uffd_wp_scan(d, uffd);
}

static int probe_tcp_repair(char *d)
{
	int one = 1;
	if (unshare(CLONE_NEWNET) < 0)
		return detail(d, 0, "unshare(CLONE_NEWNET): %m");
	int s = socket(AF_INET, SOCK_STREAM, 0);
	if (s < 0)
		return detail(d, 0, "socket: %m");
	if (setsockopt(s, IPPROTO_TCP, TCP_REPAIR, &one, sizeof(one)) < 0)
		return detail(d, 0, "setsockopt(TCP_REPAIR): %m");
	int q = TCP_SEND_QUEUE;
	if (setsockopt(s, IPPROTO_TCP, TCP_REPAIR_QUEUE, &q, sizeof(q)) < 0)
		return detail(d, 0, "setsockopt(TCP_REPAIR_QUEUE): %m");
	return detail(d, 1, "TCP_REPAIR set on a socket in a new network namespace");
}

static int probe_io_uring(char *d)
{
	uint8_t params[120] = { 0 }; /* struct io_uring_params */
	int fd = (int)syscall(__NR_io_uring_setup, 4, params);
	if (fd < 0)
		return detail(d, 0, "io_uring_setup: %m%s",
			      errno == EPERM ? " (kernel.io_uring_disabled?)" : "");
	close(fd);
	return detail(d, 1, "io_uring_setup works");
}

static bool nft_binary(char *path, size_t n)
{
	static const char *const dirs[] = { "/usr/sbin", "/sbin", "/usr/bin", "/bin",
					    "/usr/local/sbin" };
	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
		snprintf(path, n, "%s/nft", dirs[i]);
		if (access(path, X_OK) == 0)
			return true;
	}
	return false;
}

static int probe_nft(char *d)
{
	char path[64];
	int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
	if (s < 0)
		return detail(d, 0, "NETLINK_NETFILTER socket: %m");
	close(s);
	if (!nft_binary(path, sizeof(path)))
		return detail(d, 0, "no nft binary (apt-get install nftables)");
	return detail(d, 1, "netfilter netlink socket; %s", path);
}

/* The special mappings from one smaps header line: appends "[name] NK" to lay.
 * Returns the mapping's name or NULL. */
static const char *vdso_line(const char *line, char *lay, size_t n)
{
	static const char *const names[] = { "[vvar]", "[vvar_vclock]", "[vdso]" };
	unsigned long long a, b;
	const char *sp = strrchr(line, ' ');
	if (!sp || sscanf(line, "%llx-%llx ", &a, &b) != 2)
		return NULL;
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		if (strcmp(sp + 1, names[i]) != 0)
			continue;
		size_t l = strlen(lay);
		snprintf(lay + l, n - l, "%s%s %lluK", l ? ", " : "", names[i], (b - a) >> 10);
		return names[i];
	}
	return NULL;
}

/* vdso/vvar present, and not sealed (smaps VmFlags "sl"): restore must mremap them. */
static int probe_vdso(char *d)
{
	char *smaps, *line, *save = NULL, lay[128] = "";
	const char *cur = NULL;
	bool vdso = false, sealed = false;
	int r = read_file("/proc/self/smaps", &smaps, NULL, 1 << 22);
	if (r < 0)
		return detail(d, 0, "/proc/self/smaps: %s", strerror(-r));
	for (line = strtok_r(smaps, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (!strncmp(line, "VmFlags:", 8)) {
			if (cur && !strcmp(cur, "[vdso]") && strstr(line, " sl"))
				sealed = true;
			cur = NULL;
		} else if (strchr(line, '-') && (cur = vdso_line(line, lay, sizeof(lay)))) {
			vdso |= !strcmp(cur, "[vdso]");
		}
	}
	free(smaps);
	if (!vdso)
		return detail(d, 0, "no [vdso] mapping (%s)", lay[0] ? lay : "none of vvar/vdso");
	if (sealed)
		return detail(d, 0, "%s; [vdso] is sealed (VmFlags sl): restore cannot move it",
			      lay);
	return detail(d, 1, "%s; not sealed", lay);
}

/* Soft-dirty: a freshly written page has pagemap bit 55 set only with it. */
static int probe_soft_dirty(char *d)
{
	static volatile uint8_t page[1 << 16] __attribute__((aligned(4096)));
	uint64_t e = 0;
	page[0] = 1;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return detail(d, 0, "/proc/self/pagemap: %m");
	ssize_t n = pread(fd, &e, 8, (uintptr_t)page / page_size * 8);
	close(fd);
	if (n != 8)
		return detail(d, 0, "pagemap read failed");
	if (e >> 55 & 1)
		return detail(d, 1, "present (ferry does not need it)");
	return detail(d, 0, "absent, as expected: ferry tracks writes with uffd-wp instead");
}

static const struct feature features[] = {
	{ "ptrace seize+interrupt", NEED_MUST, true, probe_ptrace,
	  "cannot freeze processes: no dump at all" },
	{ "process_vm_readv", NEED_MUST, true, probe_vm_readv,
	  "cannot read process memory: no dump" },
	{ "pidfd_open+pidfd_getfd", NEED_MUST, true, probe_pidfd,
	  "cannot take fds or the injected userfaultfd from a process: no dump" },
	{ "clone3 set_tid", NEED_MUST, true, probe_set_tid,
	  "cannot recreate processes with their PIDs: no same-PID restore" },
	{ "PR_SET_MM_MAP", NEED_MUST, true, probe_mm_map,
	  "cannot restore mm fields (brk, args, env, auxv, exe): no restore" },
	{ "vdso layout", NEED_MUST, false, probe_vdso,
	  "restore cannot move [vdso]/[vvar] to the dumped addresses" },
	{ "uffd-wp async+PAGEMAP_SCAN", NEED_OPTIONAL, true, probe_uffd,
	  "no write tracking: pre-dumps fall back to hashing every page" },
	{ "TCP_REPAIR", NEED_OPTIONAL, true, probe_tcp_repair,
	  "established TCP connections cannot be dumped (--tcp-established)" },
	{ "io_uring", NEED_OPTIONAL, true, probe_io_uring, "page streaming falls back to send()" },
	{ "nftables", NEED_OPTIONAL, false, probe_nft,
	  "no network lock during the freeze (peers may see resets)" },
	{ "soft-dirty", NEED_INFO, false, probe_soft_dirty, NULL },
};

/* Run one probe, in a child when it changes state. Returns 1 present, 0 missing. */
static int feature_probe(const struct feature *f, char *d)
{
	int p[2], st = 0;
	d[0] = 0;
	if (!f->in_child)
		return f->probe(d);
	if (pipe2(p, O_CLOEXEC) < 0)
		return detail(d, 0, "pipe: %m");
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return detail(d, 0, "fork: %m");
	}
	if (pid == 0) {
		close(p[0]);
		alarm(CHECK_TIMEOUT);
		int r = f->probe(d);
		(void)write_full(p[1], d, strnlen(d, DETAIL_MAX - 1));
		_exit(r == 1 ? 0 : 1);
	}
	close(p[1]);
	ssize_t n = read_full(p[0], d, DETAIL_MAX - 1);
	close(p[0]);
	d[n > 0 ? n : 0] = 0;
	if (waitpid(pid, &st, 0) != pid)
		return detail(d, 0, "waitpid: %m");
	if (WIFSIGNALED(st))
		return detail(d, 0, "probe killed by signal %d%s", WTERMSIG(st),
			      WTERMSIG(st) == SIGALRM ? " (timeout)" : "");
	return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static const char *need_name(enum need n)
{
	return n == NEED_MUST ? "must" : n == NEED_OPTIONAL ? "optional" : "info";
}

static void json_str(const char *s)
{
	putchar('"');
	for (; s && *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", *s);
		else
			putchar(*s);
	}
	putchar('"');
}

int check_main(const struct ferry_opts *o)
{
	struct utsname u;
	char d[DETAIL_MAX];
	int missing_must = 0;

	uname(&u);
	if (o->json)
		printf("{\n  \"kernel\": \"%s\",\n  \"arch\": \"%s\",\n  \"features\": [",
		       u.release, u.machine);
	else
		printf("ferry check: kernel %s, %s\n", u.release, u.machine);
	for (size_t i = 0; i < ARRAY_SIZE(features); i++) {
		const struct feature *f = &features[i];
		int ok = feature_probe(f, d);
		if (!ok && f->need == NEED_MUST)
			missing_must++;
		if (o->json) {
			printf("%s\n    {\"name\": ", i ? "," : "");
			json_str(f->name);
			printf(", \"status\": \"%s\", \"need\": \"%s\", \"detail\": ",
			       ok ? "OK" : "MISSING", need_name(f->need));
			json_str(d);
			if (!ok && f->impact) {
				printf(", \"impact\": ");
				json_str(f->impact);
			}
			putchar('}');
			continue;
		}
		printf("%-28s %-8s %s\n", f->name, ok ? "OK" : "MISSING", d);
		if (!ok && f->impact)
			printf("%-28s %-8s -> %s: %s\n", "", "", need_name(f->need), f->impact);
	}
	if (o->json)
		printf("\n  ],\n  \"ok\": %s\n}\n", missing_must ? "false" : "true");
	else if (missing_must)
		printf("ferry check: %d must-have feature%s missing\n", missing_must,
		       missing_must > 1 ? "s" : "");
	else
		printf("ferry check: every must-have feature is present\n");
	fflush(stdout);
	return missing_must ? 1 : 0;
}
