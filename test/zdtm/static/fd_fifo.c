/*
 * fd_fifo: a named pipe opened for reading (non-blocking) and for writing, with data
 * in it, and a second FIFO opened O_RDWR and empty. After the restore the data is
 * there once, in order, and the FIFOs still connect their ends.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "zdtmtst.h"

#define LEN 5000

static void work_path(char *buf, size_t len, const char *name)
{
	const char *r = getenv("ZDTM_READY");
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s", r ? r : "/tmp/x");
	snprintf(buf, len, "%s/fd_fifo.%d.%s", dirname(dir), getpid(), name);
}

int main(int argc, char **argv)
{
	static char data[LEN], buf[LEN];
	char p[4200], q[4200], c;
	int rd, wr, rw;

	test_init(argc, argv);
	work_path(p, sizeof(p), "fifo");
	work_path(q, sizeof(q), "fifo2");
	test_fill(data, LEN, 3);
	if (mkfifo(p, 0600) || mkfifo(q, 0600))
		fail("mkfifo: %m");
	rd = open(p, O_RDONLY | O_NONBLOCK);
	wr = open(p, O_WRONLY);
	rw = open(q, O_RDWR);
	if (rd < 0 || wr < 0 || rw < 0)
		fail("open: %m");
	if (write(wr, data, LEN) != LEN)
		fail("write: %m");

	test_ready();
	test_wait_sigterm();

	check(fcntl(rd, F_GETFL) & O_NONBLOCK);
	check((fcntl(rd, F_GETFL) & O_ACCMODE) == O_RDONLY);
	check((fcntl(wr, F_GETFL) & O_ACCMODE) == O_WRONLY);
	check((fcntl(rw, F_GETFL) & O_ACCMODE) == O_RDWR);
	check(read(rd, buf, LEN) == LEN);
	check(memcmp(buf, data, LEN) == 0);
	check(read(rd, buf, 1) < 0 && errno == EAGAIN);
	check(write(wr, "w", 1) == 1 && read(rd, &c, 1) == 1 && c == 'w');
	check(write(rw, "v", 1) == 1 && read(rw, &c, 1) == 1 && c == 'v');
	unlink(p);
	unlink(q);
	pass();
}
