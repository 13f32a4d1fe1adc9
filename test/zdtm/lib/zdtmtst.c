/*
 * zdtmtst: see zdtmtst.h for the protocol with the runner.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "zdtmtst.h"

volatile sig_atomic_t test_sigterm;

static void on_sigterm(int sig)
{
	(void)sig;
	test_sigterm = 1;
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
