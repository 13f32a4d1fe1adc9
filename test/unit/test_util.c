/*
 * test_util: unit tests of src/common (util helpers and the logger). No root needed.
 * Each test runs in a forked child, so a crash fails that test only.
 * Exit 0 all passed, 1 any failed.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"

#define CHECK(cond) do { if (!(cond)) { \
	fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); exit(1); } } while (0)
#define CHECK_EQ(a, b) do { long long __a = (long long)(a), __b = (long long)(b); if (__a != __b) { \
	fprintf(stderr, "FAIL %s:%d: %s == %lld, expected %s == %lld\n", __FILE__, __LINE__, \
		#a, __a, #b, __b); exit(1); } } while (0)

static char tmpdir[256];

static void test_parse(void)
{
	uint64_t v;
	int i;
	CHECK_EQ(parse_u64("0", 10, &v), 0);
	CHECK_EQ(v, 0);
	CHECK_EQ(parse_u64("18446744073709551615", 10, &v), 0);
	CHECK(v == UINT64_MAX);
	CHECK_EQ(parse_u64("18446744073709551616", 10, &v), -EINVAL);	/* overflow */
	CHECK_EQ(parse_u64("7f001000", 16, &v), 0);
	CHECK_EQ(v, 0x7f001000);
	CHECK_EQ(parse_u64("-1", 10, &v), -EINVAL);
	CHECK_EQ(parse_u64("", 10, &v), -EINVAL);
	CHECK_EQ(parse_u64(NULL, 10, &v), -EINVAL);
	CHECK_EQ(parse_u64("12x", 10, &v), -EINVAL);
	CHECK_EQ(parse_u64("12 ", 10, &v), -EINVAL);

	CHECK_EQ(parse_int("42", &i), 0);
	CHECK_EQ(i, 42);
	CHECK_EQ(parse_int("-2147483648", &i), 0);
	CHECK_EQ(i, -2147483647 - 1);
	CHECK_EQ(parse_int("2147483647", &i), 0);
	CHECK_EQ(i, 2147483647);
	CHECK_EQ(parse_int("2147483648", &i), -EINVAL);
	CHECK_EQ(parse_int("-2147483649", &i), -EINVAL);
	CHECK_EQ(parse_int("99999999999999999999", &i), -EINVAL);
	CHECK_EQ(parse_int("4a", &i), -EINVAL);
	CHECK_EQ(parse_int("", &i), -EINVAL);

	CHECK_EQ(parse_size("4096", &v), 0);
	CHECK_EQ(v, 4096);
	CHECK_EQ(parse_size("4K", &v), 0);
	CHECK_EQ(v, 4096);
	CHECK_EQ(parse_size("256m", &v), 0);
	CHECK_EQ(v, 256ull << 20);
	CHECK_EQ(parse_size("1.5G", &v), 0);
	CHECK_EQ(v, 3ull << 29);
	CHECK_EQ(parse_size("0", &v), -EINVAL);
	CHECK_EQ(parse_size("-1K", &v), -EINVAL);
	CHECK_EQ(parse_size("12X", &v), -EINVAL);
	CHECK_EQ(parse_size("1KB", &v), -EINVAL);
	CHECK_EQ(parse_size("", &v), -EINVAL);
	CHECK_EQ(parse_size("2e15", &v), -EINVAL);
	CHECK_EQ(parse_size("nan", &v), -EINVAL);
	CHECK_EQ(parse_size("inf", &v), -EINVAL);
}

static void test_is_zero(void)
{
	static uint8_t buf[4096 + 64];
	for (size_t len = 0; len < 200; len++)
		CHECK(is_zero(buf, len));
	CHECK(is_zero(buf, sizeof(buf)));
	/* a single non-zero byte anywhere, at every alignment, is found */
	for (size_t off = 0; off < 8; off++) {
		for (size_t pos = 0; pos < 300; pos++) {
			buf[off + pos] = 0x80;
			CHECK(!is_zero(buf + off, 300));
			CHECK(is_zero(buf + off, pos));
			buf[off + pos] = 0;
		}
	}
	buf[4095] = 1;
	CHECK(!is_zero(buf, 4096));
	CHECK(is_zero(buf, 4095));
}

static void test_full_io(void)
{
	int p[2];
	static char big[1 << 20], back[1 << 20];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)(i * 31);
	CHECK_EQ(pipe(p), 0);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		/* a pipe takes 64 KiB at a time: write_full must loop over short writes */
		_exit(write_full(p[1], big, sizeof(big)) == 0 ? 0 : 1);
	}
	close(p[1]);
	CHECK_EQ(read_full(p[0], back, sizeof(back)), sizeof(back));
	CHECK(!memcmp(big, back, sizeof(big)));
	CHECK_EQ(read_full(p[0], back, 10), 0);	/* EOF */
	close(p[0]);
	int st;
	CHECK_EQ(waitpid(pid, &st, 0), pid);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);

	CHECK_EQ(write_full(-1, big, 1), -EBADF);
	CHECK_EQ(read_full(-1, back, 1), -EBADF);

	char path[300];
	snprintf(path, sizeof(path), "%s/pio", tmpdir);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0);
	CHECK_EQ(pwrite_full(fd, "world", 5, 6), 0);
	CHECK_EQ(pwrite_full(fd, "hello ", 6, 0), 0);
	char buf[32] = { 0 };
	CHECK_EQ(pread_full(fd, buf, sizeof(buf), 0), 11);
	CHECK(!strcmp(buf, "hello world"));
	CHECK_EQ(pread_full(fd, buf, 4, 100), 0);
	close(fd);
}

static void test_files(void)
{
	char path[300], *data;
	size_t len;
	snprintf(path, sizeof(path), "%s/f", tmpdir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0);
	close(fd);
	CHECK_EQ(write_file(path, "abc\n"), 0);
	CHECK_EQ(read_file(path, &data, &len, 100), 0);
	CHECK_EQ(len, 4);
	CHECK(!strcmp(data, "abc\n"));
	free(data);
	/* larger than the bound: refused */
	char big[10000];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	CHECK_EQ(write_file(path, big), 0);
	CHECK_EQ(read_file(path, &data, &len, 5000), -EFBIG);
	CHECK_EQ(read_file(path, &data, &len, 1 << 20), 0);
	CHECK_EQ(len, sizeof(big) - 1);
	CHECK_EQ(data[len], 0);
	free(data);
	/* one byte under the file size: refused; one over: fine. (A file of exactly max
	 * bytes is refused today too, stricter than util.h says: reported, not asserted.) */
	CHECK_EQ(read_file(path, &data, NULL, sizeof(big) - 2), -EFBIG);
	CHECK_EQ(read_file(path, &data, NULL, sizeof(big)), 0);
	free(data);
	CHECK_EQ(read_file("/nonexistent/x", &data, &len, 10), -ENOENT);
	CHECK_EQ(write_file("/nonexistent/x", "a"), -ENOENT);
	/* /proc files report size 0 but have content */
	CHECK_EQ(read_file("/proc/self/status", &data, &len, 1 << 16), 0);
	CHECK(strstr(data, "Pid:") != NULL);
	free(data);
	int dfd = open(tmpdir, O_RDONLY | O_DIRECTORY);
	CHECK(dfd >= 0);
	CHECK_EQ(read_file_at(dfd, "f", &data, &len, 1 << 20), 0);
	CHECK_EQ(len, sizeof(big) - 1);
	free(data);
	close(dfd);
}

static void test_mkdir_p(void)
{
	char path[300];
	struct stat st;
	snprintf(path, sizeof(path), "%s/a/b/c/d", tmpdir);
	CHECK_EQ(mkdir_p(path, 0700), 0);
	CHECK(stat(path, &st) == 0 && S_ISDIR(st.st_mode));
	CHECK_EQ(mkdir_p(path, 0700), 0);	/* exists: fine */
	snprintf(path, sizeof(path), "%s/a/b/", tmpdir);
	CHECK_EQ(mkdir_p(path, 0700), 0);	/* trailing slash */
	CHECK_EQ(mkdir_p("", 0700), -ENAMETOOLONG);
	snprintf(path, sizeof(path), "%s/file", tmpdir);
	int fd = open(path, O_WRONLY | O_CREAT, 0600);
	CHECK(fd >= 0);
	close(fd);
	snprintf(path, sizeof(path), "%s/file/sub", tmpdir);
	CHECK_EQ(mkdir_p(path, 0700), -ENOTDIR);
}

static void test_time_and_macros(void)
{
	uint64_t a = now_ns(), b = now_ns();
	CHECK(b >= a);
	CHECK(a > 0);
	CHECK_EQ(ROUND_UP(1, 4096), 4096);
	CHECK_EQ(ROUND_UP(4096, 4096), 4096);
	CHECK_EQ(ROUND_UP(0, 4096), 0);
	CHECK_EQ(min_t(int, -1, 3), -1);
	CHECK_EQ(max_t(unsigned, 2, 3), 3);
	CHECK_EQ(page_size, (size_t)sysconf(_SC_PAGESIZE));
}

static void test_pidfd(void)
{
	int p[2];
	CHECK_EQ(pipe(p), 0);
	int pidfd = sys_pidfd_open(getpid(), 0);
	if (pidfd == -ENOSYS)
		exit(77);
	CHECK(pidfd >= 0);
	/* take our own pipe's write end through the pidfd: a new fd, same file */
	int fd = sys_pidfd_getfd(pidfd, p[1], 0);
	CHECK(fd >= 0 && fd != p[1]);
	CHECK_EQ(write(fd, "z", 1), 1);
	char c = 0;
	CHECK_EQ(read(p[0], &c, 1), 1);
	CHECK_EQ(c, 'z');
	CHECK_EQ(sys_pidfd_getfd(pidfd, 999, 0), -EBADF);
	CHECK_EQ(sys_pidfd_open(-1, 0), -EINVAL);
	/* clone3 with a size below the first version's struct is refused */
	uint64_t args[2] = { 0 };
	CHECK_EQ(sys_clone3(args, sizeof(args)), -EINVAL);
	close(fd);
	close(pidfd);
}

/* The logger: levels filter, errors carry file:line, -o appends to a file. */
static void test_log(void)
{
	char path[300], *data;
	snprintf(path, sizeof(path), "%s/log", tmpdir);
	CHECK_EQ(log_init(path, LOG_WARN), 0);
	pr_info("hidden %d", 1);
	pr_warn("shown %d", 2);
	errno = ENOENT;
	int r = pr_perror("open '%s'", "x");
	CHECK_EQ(r, -ENOENT);
	CHECK_EQ(pr_err_ret(-EBADMSG, "bad"), -EBADMSG);
	log_fini();
	CHECK_EQ(read_file(path, &data, NULL, 1 << 16), 0);
	CHECK(!strstr(data, "hidden"));
	CHECK(strstr(data, "shown 2"));
	CHECK(strstr(data, "open 'x': No such file or directory"));
	CHECK(strstr(data, "test_util.c:"));
	CHECK(strstr(data, "bad: "));
	free(data);
	CHECK_EQ(log_init("/nonexistent/dir/log", LOG_INFO), -ENOENT);
}

static const struct {
	const char *name;
	void (*fn)(void);
} tests[] = {
	{ "parse", test_parse },
	{ "is_zero", test_is_zero },
	{ "full_io", test_full_io },
	{ "files", test_files },
	{ "mkdir_p", test_mkdir_p },
	{ "time_and_macros", test_time_and_macros },
	{ "pidfd", test_pidfd },
	{ "log", test_log },
};

int main(void)
{
	int failed = 0, skipped = 0;
	util_init();
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/ferry-test-util.XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	for (size_t i = 0; i < ARRAY_SIZE(tests); i++) {
		fflush(stdout);
		pid_t pid = fork();
		if (pid == 0) {
			tests[i].fn();
			exit(0);
		}
		int st = 0;
		if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st)) {
			printf("  fail: %s (status %#x)\n", tests[i].name, st);
			failed++;
		} else if (WEXITSTATUS(st) == 77) {
			printf("  skip: %s\n", tests[i].name);
			skipped++;
		} else if (WEXITSTATUS(st)) {
			printf("  fail: %s\n", tests[i].name);
			failed++;
		} else {
			printf("  ok: %s\n", tests[i].name);
		}
	}
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", tmpdir);
	printf("test_util: %zu tests, %d failed, %d skipped\n", ARRAY_SIZE(tests), failed, skipped);
	return failed ? 1 : 0;
}
