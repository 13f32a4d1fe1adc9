/*
 * util: small helpers with no policy: full reads/writes, /proc file reading,
 * string parsing, time. Never logs above debug. Every function returns >= 0 or -errno.
 */
#ifndef FERRY_UTIL_H
#define FERRY_UTIL_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define ARRAY_SIZE(a)  (sizeof(a) / sizeof((a)[0]))
#define PAGE_SIZE_X86  4096UL
#define ROUND_UP(x, a) (((x) + (a)-1) / (a) * (a))
#define min_t(t, a, b) ((t)(a) < (t)(b) ? (t)(a) : (t)(b))
#define max_t(t, a, b) ((t)(a) > (t)(b) ? (t)(a) : (t)(b))

extern size_t page_size; /* set by util_init() */
/* Non-zero (the signal number) once the command was asked to stop (migrate's SIGINT /
 * SIGTERM handler sets it): long stages check it at their safe points and fail with
 * -EINTR, which takes their rollback path (the tree resumes). */
extern volatile sig_atomic_t ferry_cancel;
void util_init(void);

/* Write/read exactly len bytes (retrying on EINTR and short I/O). read_full returns the
 * number of bytes read (< len only at EOF) or -errno. */
int write_full(int fd, const void *buf, size_t len);
ssize_t read_full(int fd, void *buf, size_t len);
int pwrite_full(int fd, const void *buf, size_t len, off_t off);
ssize_t pread_full(int fd, void *buf, size_t len, off_t off);

/* Read a whole (small, e.g. /proc) file into a malloc'd NUL-terminated buffer.
 * Caller frees *out. Fails with -EFBIG past max bytes. */
int read_file_at(int dirfd, const char *path, char **out, size_t *len, size_t max);
int read_file(const char *path, char **out, size_t *len, size_t max);
/* Write a string to a file (e.g. /proc/sys/...). */
int write_file(const char *path, const char *s);

/* Strict unsigned/signed parse of a whole string; -EINVAL on junk or overflow. */
int parse_u64(const char *s, int base, uint64_t *out);
int parse_int(const char *s, int *out);
/* A size with an optional K/M/G suffix (powers of 1024; fractions allowed: "1.5G"), > 0
 * and at most 10^15. 0 or -EINVAL. */
int parse_size(const char *s, uint64_t *out);

uint64_t now_ns(void); /* CLOCK_MONOTONIC */

/* Remove directory NAME under the directory fd PARENT (AT_FDCWD: a path) and the files
 * and links in it (no recursion, links not followed; an image round, say). A missing
 * directory is fine. 0 or -errno (not logged). */
int rmdir_files_at(int parent, const char *name);

/* mkdir -p; 0 or -errno. */
int mkdir_p(const char *path, mode_t mode);
/* Is every byte of buf zero? (fast path for page-sized buffers) */
bool is_zero(const void *buf, size_t len);

/* Thin raw syscall wrappers glibc 2.36 lacks or hides. */
int sys_pidfd_open(pid_t pid, unsigned int flags);
int sys_pidfd_getfd(int pidfd, int fd, unsigned int flags);
long sys_clone3(void *args, size_t size);

#endif
