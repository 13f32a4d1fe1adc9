/*
 * fd_append: a file opened O_WRONLY|O_APPEND keeps O_APPEND (writes go to the end even
 * after a seek to 0) and its offset; a plain O_WRONLY one does not append.
 */
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "zdtmtst.h"

static void work_path(char *buf, size_t len, const char *name)
{
	const char *r = getenv("ZDTM_READY");
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s", r ? r : "/tmp/x");
	snprintf(buf, len, "%s/fd_append.%d.%s", dirname(dir), getpid(), name);
}

int main(int argc, char **argv)
{
	char p[4200], buf[64];
	struct stat st;
	int ap, wr, rd;

	test_init(argc, argv);
	work_path(p, sizeof(p), "log");
	wr = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	ap = open(p, O_WRONLY | O_APPEND);
	if (wr < 0 || ap < 0)
		fail("open %s: %m", p);
	if (write(ap, "0123456789", 10) != 10)
		fail("write: %m");

	test_ready();
	test_wait_sigterm();

	check(fcntl(ap, F_GETFL) & O_APPEND);
	check(!(fcntl(wr, F_GETFL) & O_APPEND));
	check((fcntl(ap, F_GETFL) & O_ACCMODE) == O_WRONLY);
	check(lseek(ap, 0, SEEK_CUR) == 10);
	check(lseek(wr, 0, SEEK_CUR) == 0);
	check(lseek(ap, 0, SEEK_SET) == 0);
	check(write(ap, "AB", 2) == 2);		/* appended at 10 */
	check(write(wr, "z", 1) == 1);		/* overwrites byte 0 */
	check(fstat(ap, &st) == 0 && st.st_size == 12);
	rd = open(p, O_RDONLY);
	check(rd >= 0 && read(rd, buf, sizeof(buf)) == 12);
	check(!memcmp(buf, "z123456789AB", 12));
	unlink(p);
	pass();
}
