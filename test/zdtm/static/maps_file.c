/*
 * maps_file: file mappings of a scratch file:
 *  - private rw, with some pages COW-modified (they keep the new data; the others
 *    still show the file),
 *  - shared rw, whose writes reach the file (seen with pread) before and after,
 *  - private read-only.
 * After the restore, a write through the shared mapping must still reach the file.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "zdtmtst.h"

#define NP 16

static size_t pg;

static void verify_page(const char *what, const char *p, int page, uint64_t seed)
{
	if (test_verify(p + page * pg, pg, seed) != (size_t)-1)
		fail("%s: page %d differs", what, page);
}

static uint64_t file_seed(int page) { return 500 + page; }
static uint64_t cow_seed(int page) { return 900 + page; }
static uint64_t shr_seed(int page) { return 1300 + page; }

static int is_cow(int page) { return page == 2 || page == 5 || page == 15; }
static int is_shr(int page) { return page >= 8 && page <= 10; }

int main(int argc, char **argv)
{
	char path[4200], *priv, *shr, *ro, *buf;
	int fd, i;

	test_init(argc, argv);
	pg = sysconf(_SC_PAGESIZE);
	snprintf(path, sizeof(path), "%s/maps_file.data", test_dir());
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		fail("open %s: %m", path);
	buf = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (i = 0; i < NP; i++) {
		test_fill(buf, pg, file_seed(i));
		if (pwrite(fd, buf, pg, i * pg) != (ssize_t)pg)
			fail("pwrite: %m");
	}
	priv = mmap(NULL, NP * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	shr = mmap(NULL, NP * pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ro = mmap(NULL, NP * pg, PROT_READ, MAP_PRIVATE, fd, 0);
	if (priv == MAP_FAILED || shr == MAP_FAILED || ro == MAP_FAILED)
		fail("mmap: %m");
	close(fd);	/* the mappings alone keep the file */
	for (i = 0; i < NP; i++) {
		if (is_cow(i))
			test_fill(priv + i * pg, pg, cow_seed(i));
		else if (i % 3 == 0)
			(void)*(volatile char *)(priv + i * pg);	/* read-faulted, clean */
		if (is_shr(i))
			test_fill(shr + i * pg, pg, shr_seed(i));
	}

	test_ready();
	test_wait_sigterm();

	fd = open(path, O_RDWR);
	if (fd < 0)
		fail("open %s after restore: %m", path);
	for (i = 0; i < NP; i++) {
		uint64_t fs = is_shr(i) ? shr_seed(i) : file_seed(i);
		if (pread(fd, buf, pg, i * pg) != (ssize_t)pg)
			fail("pread: %m");
		verify_page("file", buf, 0, fs);
		/* a private page that was never written shows the file, including the
		 * shared writes made to it (unless its COW copy was taken) */
		verify_page("private", priv, i, is_cow(i) ? cow_seed(i) : fs);
		verify_page("shared", shr, i, fs);
		verify_page("read-only", ro, i, fs);
	}
	/* the shared mapping still writes through to the file */
	test_fill(shr + 12 * pg, pg, 4242);
	if (pread(fd, buf, pg, 12 * pg) != (ssize_t)pg)
		fail("pread: %m");
	verify_page("file after a shared write", buf, 0, 4242);
	verify_page("read-only after a shared write", ro, 12, 4242);
	close(fd);
	unlink(path);
	pass();
}
