/*
 * zdtmtst: see zdtmtst.h for the protocol with the runner.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "zdtmtst.h"

volatile sig_atomic_t test_sigterm;

static void on_sigterm(int sig)
{
	int e = errno;
	test_sigterm = 1;
	/* Taken by another thread (the main one had it blocked for an instant in
	 * test_wait_sigterm): queue it to the main thread too, or it could sleep in
	 * sigsuspend forever. */
	if (syscall(SYS_gettid) != getpid())
		syscall(SYS_tgkill, getpid(), getpid(), sig);
	errno = e;
}

void test_init(int argc, char **argv)
{
	struct sigaction sa;
	(void)argc;
	(void)argv;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigterm;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGTERM, &sa, NULL) < 0)
		fail("sigaction: %m");
	setvbuf(stdout, NULL, _IONBF, 0);
}

void test_ready(void)
{
	const char *path = getenv("ZDTM_READY");
	char tmp[4096], buf[32];
	int fd, n;

	if (!path)
		return;
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		fail("open %s: %m", tmp);
	n = snprintf(buf, sizeof(buf), "%d\n", getpid());
	if (write(fd, buf, n) != n)
		fail("write %s: %m", tmp);
	close(fd);
	if (rename(tmp, path) < 0)
		fail("rename %s: %m", path);
}

void test_wait_sigterm(void)
{
	sigset_t mask, old;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigprocmask(SIG_BLOCK, &mask, &old);
	while (!test_sigterm) {
		sigset_t wait = old;
		sigdelset(&wait, SIGTERM);
		sigsuspend(&wait);
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
}

void test_msg(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
}

void test_pass(void)
{
	printf("PASS\n");
	exit(0);
}

void test_fail_at(const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	printf("FAIL: %s:%d: ", file, line);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	exit(1);
}

void test_skip(const char *why)
{
	printf("SKIP: %s\n", why);
	exit(77);
}

static inline uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	return x;
}

void test_fill(void *p, size_t len, uint64_t seed)
{
	uint64_t *q = p;
	size_t n = len / 8, i;
	for (i = 0; i < n; i++)
		q[i] = mix(seed + i);
	for (i = n * 8; i < len; i++)
		((uint8_t *)p)[i] = (uint8_t)mix(seed + i);
}

size_t test_verify(const void *p, size_t len, uint64_t seed)
{
	const uint64_t *q = p;
	size_t n = len / 8, i;
	for (i = 0; i < n; i++)
		if (q[i] != mix(seed + i))
			return i * 8;
	for (i = n * 8; i < len; i++)
		if (((const uint8_t *)p)[i] != (uint8_t)mix(seed + i))
			return i;
	return (size_t)-1;
}

/* ---- additions: helpers shared by several tests ---------------------------------- */

const char *test_dir(void)
{
	static char dir[4096];
	const char *r = getenv("ZDTM_READY");
	char *slash;

	if (!r || strlen(r) >= sizeof(dir))
		return "/tmp";
	strcpy(dir, r);
	slash = strrchr(dir, '/');
	if (!slash)
		return ".";
	if (slash == dir)
		return "/";
	*slash = '\0';
	return dir;
}

int test_ready_prepare(char *tmp, char *path, size_t len)
{
	const char *r = getenv("ZDTM_READY");
	char buf[32];
	int fd, n;

	if (!r)
		return -1;
	snprintf(path, len, "%s", r);
	snprintf(tmp, len, "%s.tmp", r);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		fail("open %s: %m", tmp);
	n = snprintf(buf, sizeof(buf), "%d\n", getpid());
	if (write(fd, buf, n) != n)
		fail("write %s: %m", tmp);
	close(fd);
	return 0;
}

ssize_t test_read_file(const char *path, char *buf, size_t len)
{
	size_t off = 0;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	while (off + 1 < len && (n = read(fd, buf + off, len - 1 - off)) > 0)
		off += n;
	close(fd);
	buf[off] = '\0';
	return off;
}

int test_vma_find(const void *addr, unsigned long *start, unsigned long *end, char perms[5])
{
	unsigned long a = (unsigned long)addr, s, e;
	char line[512], p[5];
	FILE *f = fopen("/proc/self/maps", "re");
	int r = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx %4s", &s, &e, p) != 3)
			continue;
		if (a >= s && a < e) {
			*start = s;
			*end = e;
			memcpy(perms, p, 5);
			r = 0;
			break;
		}
	}
	fclose(f);
	return r;
}

int test_vma_vmflags(const void *addr, char *buf, size_t len)
{
	unsigned long a = (unsigned long)addr, s, e;
	char line[512];
	int in = 0, r = -1;
	FILE *f = fopen("/proc/self/smaps", "re");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &s, &e) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			in = a >= s && a < e;
			continue;
		}
		if (in && !strncmp(line, "VmFlags:", 8)) {
			snprintf(buf, len, "%s", line + 9);
			buf[strcspn(buf, "\n")] = '\0';
			r = 0;
			break;
		}
	}
	fclose(f);
	return r;
}
