/*
 * zdtmtst: the library every zdtm-style test links.
 *
 * Protocol with the runner (test/zdtm/run.sh):
 *  - the runner starts the test in its own session (setsid), stdin /dev/null,
 *    stdout+stderr to <name>.out, with ZDTM_READY=<file> in the environment;
 *  - the test sets its state up, then calls test_ready(): it writes its pid to the
 *    ready file (atomically) and the runner checkpoints it;
 *  - after the restore the runner sends SIGTERM; the test (in test_wait_sigterm() or in
 *    its own blocking call) wakes, verifies everything and calls pass() or fail(), which
 *    print "PASS" or "FAIL: file:line: why" to stdout and exit 0 or 1.
 * A test may exit 77 (test_skip) when the host lacks what it needs.
 */
#ifndef ZDTMTST_H
#define ZDTMTST_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

extern volatile sig_atomic_t test_sigterm;	/* set by the SIGTERM handler */

/* Parse nothing but the environment; install the SIGTERM handler (without SA_RESTART,
 * so blocking calls return EINTR). Call first. */
void test_init(int argc, char **argv);
/* Announce that the state is set up: the runner may dump now. */
void test_ready(void);
/* Block (sigsuspend) until SIGTERM arrived. */
void test_wait_sigterm(void);

void test_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void test_pass(void) __attribute__((noreturn));
void test_fail_at(const char *file, int line, const char *fmt, ...)
	__attribute__((noreturn, format(printf, 3, 4)));
void test_skip(const char *why) __attribute__((noreturn));

#define pass() test_pass()
#define fail(fmt, ...) test_fail_at(__FILE__, __LINE__, fmt, ##__VA_ARGS__)
/* fail unless cond, with the condition's text */
#define check(cond) do { if (!(cond)) fail("check failed: %s", #cond); } while (0)

/* Deterministic pattern helpers: fill/verify len bytes at p with a pattern of seed. */
void test_fill(void *p, size_t len, uint64_t seed);
/* Returns the offset of the first mismatch, or (size_t)-1 when all match. */
size_t test_verify(const void *p, size_t len, uint64_t seed);


/* ---- additions (zdtm engineer): helpers shared by several tests ------------------ */
#include <stddef.h>

/* The directory the runner gave this test (dirname of $ZDTM_READY), or "/tmp" when run
 * by hand. Tests create their scratch files there. Static string. */
const char *test_dir(void);
/* For tests that must announce readiness without calling libc afterwards (register
 * tests): write the ready file's temporary copy and return both names; the caller then
 * does rename(tmp, path) itself (e.g. as a raw syscall from asm). Returns 0, or -1 when
 * $ZDTM_READY is unset (nothing to announce). */
int test_ready_prepare(char *tmp, char *path, size_t len);
/* Read a whole (proc) file into buf (NUL-terminated); returns its length or -1. */
ssize_t test_read_file(const char *path, char *buf, size_t len);
/* Find the /proc/self/maps line of the VMA containing addr: start, end and the 4-char
 * permissions ("rw-p"). Returns 0, or -1 when addr is not mapped. */
int test_vma_find(const void *addr, unsigned long *start, unsigned long *end, char perms[5]);
/* The VmFlags of that VMA from /proc/self/smaps (e.g. "rd wr mr mw me gd ac"), or -1. */
int test_vma_vmflags(const void *addr, char *buf, size_t len);

#endif
