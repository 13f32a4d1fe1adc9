/*
 * predump_fork: a child forked between pre-dump rounds. After the first round the
 * test sees ferry's kept tracking fd appear in its fd table (an anon_inode:[userfaultfd]
 * fd: the condition it waits for, bounded), then forks a child that inherits that fd
 * (an idle copy: nothing of the child's memory is registered on it) and fills 4 MiB
 * with a pattern, rewriting a part of it until told to stop. The next round arms the
 * child on its own (a new process: copied whole), the final dump attaches to both
 * trackers and must skip every tracking fd, the inherited one included. After the
 * restore: the child's memory holds its pattern, and neither process has a userfaultfd
 * (the tracking fds are ferry's, not the program's state).
 */
#include <dirent.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "zdtmtst.h"

#define NP 1024 /* 4 MiB */

/* Number of anon_inode:[userfaultfd] fds of this process. */
static int count_uffds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;
	if (!d)
		return -1;
	while ((e = readdir(d))) {
		char path[300], link[64];
		ssize_t l;
		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		l = readlink(path, link, sizeof(link) - 1);
		if (l > 0) {
			link[l] = 0;
			n += !strcmp(link, "anon_inode:[userfaultfd]");
		}
	}
	closedir(d);
	return n;
}

static volatile sig_atomic_t child_stop;
static void on_usr1(int s)
{
	(void)s;
	child_stop = 1;
}

static int child_main(size_t pg)
{
	static uint64_t last; /* last generation completed over the first 64 pages */
	char *m = mmap(NULL, NP * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return 2;
	for (size_t p = 0; p < NP; p++) /* generation 0 everywhere */
		test_fill(m + p * pg, pg, p);
	while (!child_stop) { /* the first 64 pages: a new generation, over and over */
		uint64_t g = last + 1;
		for (size_t p = 0; p < 64; p++)
			test_fill(m + p * pg, pg, g * NP + p);
		last = g;
		usleep(1000);
	}
	for (size_t p = 0; p < NP; p++)
		if (test_verify(m + p * pg, pg, (p < 64 ? last * NP : 0) + p) != (size_t)-1)
			return p < 64 ? 3 : 4;
	return count_uffds() == 0 ? 0 : 5;
}

int main(int argc, char **argv)
{
	size_t pg = sysconf(_SC_PAGESIZE);
	struct timespec ts = {0, 10 * 1000 * 1000};
	pid_t kid = 0;
	int st, i;

	test_init(argc, argv);
	signal(SIGUSR1, on_usr1);
	test_ready();
	/* the first pre-dump round leaves its tracking fd: then fork (bounded: 30 s) */
	for (i = 0; i < 3000 && !test_sigterm && count_uffds() == 0; i++)
		nanosleep(&ts, NULL);
	if (!test_sigterm && count_uffds() > 0) {
		kid = fork();
		if (kid < 0)
			fail("fork: %m");
		if (kid == 0)
			_exit(child_main(pg));
	}
	while (!test_sigterm)
		nanosleep(&ts, NULL);
	if (!kid)
		fail("no tracking fd appeared within 30 s (run in the pre flavour)");
	if (kill(kid, SIGUSR1) < 0 || waitpid(kid, &st, 0) != kid)
		fail("child: %m");
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		fail("child failed: status %#x (3 stale page, 4 untouched pages changed, 5 a "
		     "userfaultfd fd survived the restore)",
		     st);
	if (count_uffds() != 0)
		fail("%d userfaultfd fds after the restore", count_uffds());
	pass();
}
