/*
 * log: one logger for the whole binary.
 *
 * Levels follow CRIU's -v: 0 errors only, 1 +warnings, 2 +info (default), 3 +debug,
 * 4 +trace. Lines go to stderr, or to the file given with -o. Errors carry file:line.
 * User-controlled strings are quoted by the caller ("'%s'").
 *
 * Policy (STYLE.md): a function either logs or it doesn't; log once where the cause is
 * known and propagate -errno. `return pr_err_ret(-ENOENT, "...")` logs and returns.
 * src/common itself never logs above debug.
 */
#ifndef FERRY_LOG_H
#define FERRY_LOG_H

#include <errno.h>

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3, LOG_TRACE = 4 };

extern int log_level;

/* Opens FILE for the log (append); returns 0 or -errno. NULL means stderr. */
int log_init(const char *file, int level);
/* The -v option: none (NULL) raises *v to 3 or by one, "v..." (from -vv...) sets 3 + the
 * count, a number sets it; at most 4. 0, or -EINVAL when arg is no number (not logged). */
int log_verbosity_arg(const char *arg, int *v);
void log_fini(void);
/* Prefix for every line ("ferry", "pageserver", ...). Not copied. */
void log_set_prefix(const char *prefix);
/* The fd log lines go to (so a forked child can avoid closing it). */
int log_fd(void);

/* The message of the first error logged since start or the last reset (no prefix, no
 * file:line), whatever the level: for forwarding the cause to a peer. NULL if none. */
const char *log_first_error(void);
void log_first_error_reset(void);

void log_printf(int level, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#define pr_err(fmt, ...)  log_printf(LOG_ERROR, __FILE__, __LINE__, fmt, ##__VA_ARGS__)
#define pr_warn(fmt, ...) log_printf(LOG_WARN, __FILE__, __LINE__, fmt, ##__VA_ARGS__)
#define pr_info(fmt, ...) log_printf(LOG_INFO, __FILE__, __LINE__, fmt, ##__VA_ARGS__)
#define pr_debug(fmt, ...)                                                                         \
	do {                                                                                       \
		if (log_level >= LOG_DEBUG)                                                        \
			log_printf(LOG_DEBUG, __FILE__, __LINE__, fmt, ##__VA_ARGS__);             \
	} while (0)
#define pr_trace(fmt, ...)                                                                         \
	do {                                                                                       \
		if (log_level >= LOG_TRACE)                                                        \
			log_printf(LOG_TRACE, __FILE__, __LINE__, fmt, ##__VA_ARGS__);             \
	} while (0)

/* Log an error with strerror(-err) appended and return err (a negative errno). */
#define pr_err_ret(err, fmt, ...)                                                                  \
	({                                                                                         \
		int __e = (err);                                                                   \
		log_printf(LOG_ERROR, __FILE__, __LINE__, fmt ": %s", ##__VA_ARGS__,               \
			   strerror(-__e));                                                        \
		__e;                                                                               \
	})
/* Same with errno (call right after the failing libc call); returns -errno. */
#define pr_perror(fmt, ...)                                                                        \
	({                                                                                         \
		int __e = -errno;                                                                  \
		log_printf(LOG_ERROR, __FILE__, __LINE__, fmt ": %s", ##__VA_ARGS__,               \
			   strerror(-__e));                                                        \
		__e;                                                                               \
	})

#endif
