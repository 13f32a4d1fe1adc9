/*
 * aio_ctx: a Linux AIO context (io_setup) with one completed read not yet reaped. The
 * context is a special mapping ("[aio]") in the process. After the restore the same
 * context id must still work: the completed event is still there to be reaped by
 * io_getevents, a new read can be submitted and completes, and io_destroy succeeds.
 */
#include <fcntl.h>
#include <linux/aio_abi.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "zdtmtst.h"

static char buf[2][4096] __attribute__((aligned(4096)));

static long submit_read(aio_context_t ctx, int fd, int i)
{
	struct iocb cb, *cbs[1] = { &cb };
	memset(&cb, 0, sizeof(cb));
	cb.aio_fildes = fd;
	cb.aio_lio_opcode = IOCB_CMD_PREAD;
	cb.aio_buf = (unsigned long)buf[i];
	cb.aio_nbytes = sizeof(buf[i]);
	cb.aio_data = 100 + i;
	return syscall(SYS_io_submit, ctx, 1, cbs);
}

int main(int argc, char **argv)
{
	struct timespec to = { 5, 0 };
	struct io_event ev;
	aio_context_t ctx = 0;
	char path[4200];
	int fd;

	test_init(argc, argv);
	snprintf(path, sizeof(path), "%s/aio.data", test_dir());
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		fail("open: %m");
	test_fill(buf[1], sizeof(buf[1]), 55);
	if (write(fd, buf[1], sizeof(buf[1])) != sizeof(buf[1]))
		fail("write: %m");
	memset(buf[1], 0, sizeof(buf[1]));
	if (syscall(SYS_io_setup, 8, &ctx))
		test_skip("io_setup failed (AIO disabled?)");
	if (submit_read(ctx, fd, 0) != 1)
		fail("io_submit: %m");
	/* wait until the read completed (without reaping it) */
	while (*(volatile unsigned *)((char *)ctx + 8) == *(volatile unsigned *)((char *)ctx + 12))
		;

	test_ready();
	test_wait_sigterm();

	if (syscall(SYS_io_getevents, ctx, 1, 1, &ev, &to) != 1)
		fail("io_getevents on context %#llx: %m", (unsigned long long)ctx);
	if (ev.data != 100 || ev.res != sizeof(buf[0]))
		fail("event data %llu res %lld", (unsigned long long)ev.data, (long long)ev.res);
	if (test_verify(buf[0], sizeof(buf[0]), 55) != (size_t)-1)
		fail("data of the read done before the checkpoint differs");
	if (submit_read(ctx, fd, 1) != 1)
		fail("io_submit after restore: %m");
	if (syscall(SYS_io_getevents, ctx, 1, 1, &ev, &to) != 1 || ev.data != 101)
		fail("io_getevents after restore: %m");
	if (test_verify(buf[1], sizeof(buf[1]), 55) != (size_t)-1)
		fail("data read after restore differs");
	if (syscall(SYS_io_destroy, ctx))
		fail("io_destroy: %m");
	close(fd);
	unlink(path);
	pass();
}
