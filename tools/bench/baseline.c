/*
 * baseline SIZE_MB [DIR]: the reference speeds the benchmark compares ferry against,
 * measured in the same run on the same machine. Prints "name seconds GB/s" lines for:
 *   memcpy_fresh   memcpy of SIZE_MB into freshly mapped memory (pays first-touch faults,
 *                  like a restore does)
 *   memcpy_warm    memcpy into already-touched memory (the copy alone)
 *   pvr_prealloc   process_vm_readv of SIZE_MB from a child into a preallocated, touched
 *                  buffer, 1024-iovec batches of 64 KiB (the dump's reading ceiling)
 *   file_write     (with DIR) write() of SIZE_MB from a warm 8 MiB buffer into a new
 *                  file in DIR, then fsync: what storing the same bytes in the images
 *                  directory costs one thread, whatever reads them (not a baseline of
 *                  the targets: it shows what bounds a dump there)
 */
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *map(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	return p;
}

static void report(const char *name, double t, size_t len)
{
	printf("%s %.4f %.3f\n", name, t, len / t / 1e9);
}

/* file_write: see the header. The file is removed afterwards (not timed). */
static void file_write(const char *dir, size_t len)
{
	enum { CHUNK = 8 << 20 };
	char path[4096];
	char *buf = map(CHUNK);
	memset(buf, 0x6b, CHUNK);
	snprintf(path, sizeof(path), "%s/baseline-write.tmp", dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		perror(path);
		exit(1);
	}
	double t = now();
	for (size_t off = 0; off < len; off += CHUNK) {
		size_t n = len - off < CHUNK ? len - off : CHUNK;
		if (write(fd, buf, n) != (ssize_t)n) {
			perror("write");
			exit(1);
		}
	}
	if (fsync(fd) < 0) {
		perror("fsync");
		exit(1);
	}
	report("file_write", now() - t, len);
	close(fd);
	unlink(path);
	munmap(buf, CHUNK);
}

int main(int argc, char **argv)
{
	size_t len = (size_t)strtoull(argc > 1 ? argv[1] : "1024", NULL, 10) << 20;
	char *src = map(len);
	for (size_t i = 0; i < len; i += 4096)
		memset(src + i, (int)(i >> 12) | 1, 4096);

	char *dst = map(len);
	double t = now();
	memcpy(dst, src, len);
	report("memcpy_fresh", now() - t, len);
	t = now();
	memcpy(dst, src, len);
	report("memcpy_warm", now() - t, len);

	/* The child allocates and fills its own memory: pages shared with us by fork would
	 * be unshared (copied) by the kernel on every remote read pin, which is not what a
	 * dump of an ordinary process sees. */
	int pfd[2], afd[2];
	if (pipe(pfd) < 0 || pipe(afd) < 0)
		return 1;
	munmap(src, len);
	pid_t child = fork();
	if (child == 0) {
		char c;
		char *mine = map(len);
		for (size_t i = 0; i < len; i += 4096)
			memset(mine + i, (int)(i >> 12) | 1, 4096);
		(void)!write(afd[1], &mine, sizeof(mine));
		close(pfd[1]);
		(void)!read(pfd[0], &c, 1); /* parent closes: exit */
		_exit(0);
	}
	close(pfd[0]);
	if (read(afd[0], &src, sizeof(src)) != sizeof(src))
		return 1;
	/* dst was shared copy-on-write with the child by fork: a fresh, touched buffer */
	munmap(dst, len);
	dst = map(len);
	memset(dst, 0x5a, len);
	enum { BATCH = 1024, CHUNK = 64 << 10 };
	struct iovec l[BATCH], r[BATCH];
	t = now();
	for (size_t off = 0; off < len;) {
		int n = 0;
		size_t start = off;
		for (; n < BATCH && off < len; n++, off += CHUNK) {
			r[n].iov_base = src + off;
			r[n].iov_len = CHUNK;
			l[n].iov_base = dst + off;
			l[n].iov_len = CHUNK;
		}
		ssize_t got = process_vm_readv(child, l, n, r, n, 0);
		if (got != (ssize_t)(off - start)) {
			perror("process_vm_readv");
			return 1;
		}
	}
	report("pvr_prealloc", now() - t, len);
	close(pfd[1]);
	waitpid(child, NULL, 0);
	munmap(dst, len);
	if (argc > 2)
		file_write(argv[2], len);
	return 0;
}
