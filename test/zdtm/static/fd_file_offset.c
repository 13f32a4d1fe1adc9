/*
 * fd_file_offset: two descriptions of one regular file at different offsets, plus a
 * read-only one of another file; after the restore each keeps its offset, its access
 * mode, and reads/writes land where they should.
 */
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "zdtmtst.h"

#define SIZE 65536

static void work_path(char *buf, size_t len, const char *name)
{
	const char *r = getenv("ZDTM_READY");
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s", r ? r : "/tmp/x");
	snprintf(buf, len, "%s/fd_file_offset.%d.%s", dirname(dir), getpid(), name);
}

int main(int argc, char **argv)
{
	static char data[SIZE], buf[SIZE];
	char a[4200], b[4200];
	int rw, ro, ro2;

	test_init(argc, argv);
	work_path(a, sizeof(a), "a");
	work_path(b, sizeof(b), "b");
	test_fill(data, SIZE, 11);
	rw = open(a, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (rw < 0 || write(rw, data, SIZE) != SIZE)
		fail("create %s: %m", a);
	if (lseek(rw, 1234, SEEK_SET) != 1234)
		fail("lseek: %m");
	ro = open(a, O_RDONLY);
	if (ro < 0 || lseek(ro, 40000, SEEK_SET) != 40000)
		fail("open/lseek %s: %m", a);
	ro2 = open(b, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (ro2 < 0 || write(ro2, "xyz", 3) != 3)
		fail("create %s: %m", b);
	close(ro2);
	ro2 = open(b, O_RDONLY);
	if (ro2 < 0)
		fail("open %s: %m", b);

	test_ready();
	test_wait_sigterm();

	check(lseek(rw, 0, SEEK_CUR) == 1234);
	check(lseek(ro, 0, SEEK_CUR) == 40000);
	check(lseek(ro2, 0, SEEK_CUR) == 0);
	check((fcntl(rw, F_GETFL) & O_ACCMODE) == O_RDWR);
	check((fcntl(ro, F_GETFL) & O_ACCMODE) == O_RDONLY);
	check(read(ro, buf, 100) == 100 && !memcmp(buf, data + 40000, 100));
	check(write(rw, "HELLO", 5) == 5);	/* lands at 1234, seen through the other fd */
	check(pread(ro, buf, 5, 1234) == 5 && !memcmp(buf, "HELLO", 5));
	check(lseek(ro, 0, SEEK_CUR) == 40100);
	check(write(ro, "x", 1) < 0);		/* still read-only */
	check(read(ro2, buf, 3) == 3 && !memcmp(buf, "xyz", 3));
	unlink(a);
	unlink(b);
	pass();
}
