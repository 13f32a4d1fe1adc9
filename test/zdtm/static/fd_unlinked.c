/*
 * fd_unlinked: a file unlinked while open (content bigger than a page, a hole, an
 * offset, mode 0640) is restored still unlinked, with its content, offset and mode;
 * its name stays free. A second, write-only unlinked file keeps its mode too.
 */
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "zdtmtst.h"

#define SIZE (300 * 1024)

static void work_path(char *buf, size_t len, const char *name)
{
	const char *r = getenv("ZDTM_READY");
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s", r ? r : "/tmp/x");
	snprintf(buf, len, "%s/fd_unlinked.%d.%s", dirname(dir), getpid(), name);
}

int main(int argc, char **argv)
{
	static char data[SIZE], buf[SIZE];
	char p[4200], q[4200], link[4400];
	struct stat st;
	int fd, wo;
	ssize_t n;

	test_init(argc, argv);
	work_path(p, sizeof(p), "ghost");
	work_path(q, sizeof(q), "ghost2");
	test_fill(data, SIZE, 42);
	memset(data + 8192, 0, 65536);		/* a zero run: must come back as zeroes */
	fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0640);
	if (fd < 0 || write(fd, data, SIZE) != SIZE || lseek(fd, 777, SEEK_SET) != 777)
		fail("create %s: %m", p);
	wo = open(q, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (wo < 0 || write(wo, "abc", 3) != 3)
		fail("create %s: %m", q);
	if (unlink(p) || unlink(q))
		fail("unlink: %m");

	test_ready();
	test_wait_sigterm();

	check(fstat(fd, &st) == 0);
	check(st.st_nlink == 0);
	check(st.st_size == SIZE);
	check((st.st_mode & 07777) == 0640);
	check(access(p, F_OK) < 0);
	check(lseek(fd, 0, SEEK_CUR) == 777);
	check((fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDWR);
	check(pread(fd, buf, SIZE, 0) == SIZE);
	check(memcmp(buf, data, SIZE) == 0);
	snprintf(buf, sizeof(buf), "/proc/self/fd/%d", fd);
	n = readlink(buf, link, sizeof(link) - 1);
	check(n > 10);
	link[n] = '\0';
	check(strstr(link, " (deleted)") != NULL);
	check(fstat(wo, &st) == 0 && st.st_nlink == 0 && st.st_size == 3);
	check((st.st_mode & 07777) == 0600);
	check((fcntl(wo, F_GETFL) & O_ACCMODE) == O_WRONLY);
	check(lseek(wo, 0, SEEK_CUR) == 3);
	check(write(wo, "d", 1) == 1);
	pass();
}
