/*
 * fd_memfd: a sealed memfd (shrink+grow, 3 pages + a bit of pattern, offset 1234), an
 * unsealable memfd opened twice (the memfd fd, and a dup sharing its offset) plus a
 * second read-only description of it reopened through /proc, an empty memfd with
 * F_SEAL_WRITE, and a MFD_NOEXEC_SEAL memfd (F_SEAL_EXEC, mode 0666) when the kernel
 * has it.
 * After the restore: names, contents, sizes, seals, offsets, access modes and sharing.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "zdtmtst.h"

#define SZ (3 * 4096 + 100)
static char data[SZ], buf[SZ];

static void name_is(int fd, const char *want)
{
	char path[64], link[256];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(path, link, sizeof(link) - 1);
	check(n > 0);
	link[n] = 0;
	if (strcmp(link, want))
		fail("fd %d is '%s', want '%s'", fd, link, want);
}

int main(int argc, char **argv)
{
	char proc[64];
	struct stat st;
	test_init(argc, argv);
	test_fill(data, SZ, 5);
	int s = memfd_create("ferry sealed", MFD_ALLOW_SEALING);
	int u = memfd_create("plain", MFD_CLOEXEC);
	int w = memfd_create("wseal", MFD_ALLOW_SEALING);
	if (s < 0 || u < 0 || w < 0)
		fail("memfd_create: %m");
	if (write(s, data, SZ) != SZ || write(u, data, 1000) != 1000)
		fail("write: %m");
	if (fcntl(s, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) || fcntl(w, F_ADD_SEALS, F_SEAL_WRITE))
		fail("F_ADD_SEALS: %m");
	if (lseek(s, 1234, SEEK_SET) != 1234 || lseek(u, 10, SEEK_SET) != 10)
		fail("lseek: %m");
	int nx = memfd_create("noexec", 0x8U /* MFD_NOEXEC_SEAL, 6.3 */);
	int ud = dup(u);
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", u);
	int ur = open(proc, O_RDONLY);
	if (ud < 0 || ur < 0)
		fail("dup/open: %m");

	test_ready();
	test_wait_sigterm();

	name_is(s, "/memfd:ferry sealed (deleted)");
	name_is(u, "/memfd:plain (deleted)");
	check(fcntl(s, F_GET_SEALS) == (F_SEAL_SHRINK | F_SEAL_GROW));
	check(fcntl(u, F_GET_SEALS) == F_SEAL_SEAL);
	check(fcntl(w, F_GET_SEALS) == F_SEAL_WRITE);
	check(fcntl(u, F_GETFD) == FD_CLOEXEC && fcntl(s, F_GETFD) == 0);
	check(fstat(s, &st) == 0 && st.st_size == SZ);
	check(lseek(s, 0, SEEK_CUR) == 1234);
	check(pread(s, buf, SZ, 0) == SZ && test_verify(buf, SZ, 5) == (size_t)-1);
	check(ftruncate(s, 10) < 0 && errno == EPERM);
	check(write(w, "x", 1) < 0 && errno == EPERM);
	check(lseek(ud, 0, SEEK_CUR) == 10 && lseek(u, 20, SEEK_SET) == 20 &&
	      lseek(ud, 0, SEEK_CUR) == 20);
	check(lseek(ur, 0, SEEK_CUR) == 0 && (fcntl(ur, F_GETFL) & O_ACCMODE) == O_RDONLY);
	check(pread(ur, buf, 1000, 0) == 1000 && !memcmp(buf, data, 1000));
	check(pwrite(u, "Z", 1, 0) == 1 && pread(ur, buf, 1, 0) == 1 && buf[0] == 'Z');	/* one inode */
	if (nx >= 0) {
		check(fcntl(nx, F_GET_SEALS) == 0x20);
		check(fstat(nx, &st) == 0 && (st.st_mode & 0777) == 0666);
	}
	pass();
}
