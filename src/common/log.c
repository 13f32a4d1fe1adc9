/*
 * log: formatting and output of log lines. See log.h for the policy.
 * Error lines: "ferry: error: <msg> (file.c:123)"; at -v3+ every line carries a
 * timestamp relative to start and file:line.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"

int log_level = LOG_INFO;
static int log_out = STDERR_FILENO;
static const char *log_prefix = "ferry";
static struct timespec log_t0;

int log_init(const char *file, int level)
{
	log_level = level;
	clock_gettime(CLOCK_MONOTONIC, &log_t0);
	if (!file || !strcmp(file, "-"))
		return 0;
	int fd = open(file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	log_out = fd;
	return 0;
}

void log_fini(void)
{
	if (log_out != STDERR_FILENO)
		close(log_out);
	log_out = STDERR_FILENO;
}

void log_set_prefix(const char *prefix)
{
	log_prefix = prefix;
}

int log_fd(void)
{
	return log_out;
}

static char first_error[512];

const char *log_first_error(void)
{
	return first_error[0] ? first_error : NULL;
}

void log_first_error_reset(void)
{
	first_error[0] = 0;
}

void log_printf(int level, const char *file, int line, const char *fmt, ...)
{
	static const char *names[] = { "error", "warn", "info", "debug", "trace" };
	char buf[4096];
	int saved = errno, n = 0;
	va_list ap;

	if (level == LOG_ERROR && !first_error[0]) {
		va_start(ap, fmt);
		vsnprintf(first_error, sizeof(first_error), fmt, ap);
		va_end(ap);
	}
	if (level > log_level)
		return;
	if (log_level >= LOG_DEBUG) {
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		double t = (now.tv_sec - log_t0.tv_sec) + (now.tv_nsec - log_t0.tv_nsec) / 1e9;
		n = snprintf(buf, sizeof(buf), "(%9.6f) %s[%d]: %s: ", t, log_prefix, getpid(),
			     names[level]);
	} else if (level <= LOG_WARN) {
		n = snprintf(buf, sizeof(buf), "%s: %s: ", log_prefix, names[level]);
	} else {
		n = snprintf(buf, sizeof(buf), "%s: ", log_prefix);
	}
	va_start(ap, fmt);
	if (n >= 0 && (size_t)n < sizeof(buf))
		n += vsnprintf(buf + n, sizeof(buf) - n, fmt, ap);
	va_end(ap);
	if (n >= (int)sizeof(buf) - 32)
		n = sizeof(buf) - 32;
	if (level == LOG_ERROR || log_level >= LOG_DEBUG)
		n += snprintf(buf + n, sizeof(buf) - n, " (%s:%d)", file, line);
	buf[n++] = '\n';
	/* One write per line so concurrent writers (restored children) do not interleave. */
	ssize_t w = write(log_out, buf, n);
	(void)w;
	errno = saved;
}

int log_verbosity_arg(const char *arg, int *v)
{
	if (!arg)
		*v = *v < 3 ? 3 : *v + 1;
	else if (arg[0] == 'v')
		*v = 3 + (int)strspn(arg, "v");
	else if (parse_int(arg, v) < 0)
		return -EINVAL;
	if (*v > 4)
		*v = 4;
	return 0;
}
