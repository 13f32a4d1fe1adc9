/*
 * maps_madvise: regions with MADV_DONTFORK, MADV_DONTDUMP, MADV_WIPEONFORK,
 * MADV_HUGEPAGE and MADV_NOHUGEPAGE. After the restore each keeps its data and its
 * VmFlags (dc, dd, wf, hg, nh), and fork() still honours them: a child does not have
 * the DONTFORK region and sees the WIPEONFORK region zeroed.
 */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "zdtmtst.h"

#define LEN (2UL << 20)
#define N 5

static const int advice[N] = { MADV_DONTFORK, MADV_DONTDUMP, MADV_WIPEONFORK, MADV_HUGEPAGE,
			       MADV_NOHUGEPAGE };
static const char *flag[N] = { " dc", " dd", " wf", " hg", " nh" };

static int has_flag(void *p, const char *f)
{
	char buf[512];
	if (test_vma_vmflags(p, buf, sizeof(buf)) < 0)
		return -1;
	/* VmFlags has no leading blank: add one so " xx" matches the first flag too */
	memmove(buf + 1, buf, strlen(buf) + 1);
	buf[0] = ' ';
	strcat(buf, " ");
	{
		char pat[8];
		snprintf(pat, sizeof(pat), "%s ", f);
		return strstr(buf, pat) != NULL;
	}
}

int main(int argc, char **argv)
{
	char *r[N];
	int i, st;
	pid_t c;

	test_init(argc, argv);
	for (i = 0; i < N; i++) {
		/* a PROT_NONE gap between regions keeps them from merging */
		char *g = mmap(NULL, LEN + 8192, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		r[i] = mmap(g + 4096, LEN, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		if (g == MAP_FAILED || r[i] == MAP_FAILED)
			fail("mmap: %m");
		if (madvise(r[i], LEN, advice[i])) {
			if (advice[i] == MADV_HUGEPAGE || advice[i] == MADV_NOHUGEPAGE)
				test_skip("no transparent huge pages");
			fail("madvise %d: %m", advice[i]);
		}
		test_fill(r[i], LEN, 60 + i);
		if (has_flag(r[i], flag[i]) != 1)
			fail("setup: no%s flag", flag[i]);
	}

	test_ready();
	test_wait_sigterm();

	for (i = 0; i < N; i++) {
		if (has_flag(r[i], flag[i]) != 1)
			fail("region %d lost its%s flag", i, flag[i]);
		if (test_verify(r[i], LEN, 60 + i) != (size_t)-1)
			fail("region %d: data differs", i);
	}
	c = fork();
	if (c < 0)
		fail("fork: %m");
	if (c == 0) {
		unsigned long s, e;
		char perms[5];
		size_t k;
		if (test_vma_find(r[0], &s, &e, perms) == 0)
			_exit(2);	/* DONTFORK region present in the child */
		for (k = 0; k < LEN; k += 4096)
			if (r[2][k])
				_exit(3);	/* WIPEONFORK region not wiped */
		if (test_verify(r[1], LEN, 61) != (size_t)-1)
			_exit(4);
		_exit(0);
	}
	if (waitpid(c, &st, 0) != c || !WIFEXITED(st))
		fail("child died");
	if (WEXITSTATUS(st) == 2)
		fail("MADV_DONTFORK not honoured by fork after the restore");
	if (WEXITSTATUS(st) == 3)
		fail("MADV_WIPEONFORK not honoured by fork after the restore");
	if (WEXITSTATUS(st))
		fail("child: status %d", WEXITSTATUS(st));
	pass();
}
