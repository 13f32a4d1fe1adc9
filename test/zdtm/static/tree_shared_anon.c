/*
 * tree_shared_anon: MAP_SHARED|MAP_ANONYMOUS memory inherited across fork. The child
 * writes a pattern into the first half (pages the parent never touches), the parent
 * into the second half (pages the child never touches). After the restore each side
 * reads the other's half, and a value the parent then writes is seen by the child:
 * the mapping is still one shared object, not two copies. A private mapping written by
 * the child after fork stays private. A second shared mapping was written only by a
 * child that exited (and was reaped) before the checkpoint: its pages are in no page
 * table of the tree, yet they must survive.
 */
#include <errno.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "zdtmtst.h"

#define NPG 32
#define HALF (NPG / 2 * 4096)

int main(int argc, char **argv)
{
	char *sh = mmap(NULL, 2 * HALF, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	char *pv = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *orphan = mmap(NULL, 4 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	int to_child[2], to_parent[2], st;
	pid_t c;
	char ch;

	test_init(argc, argv);
	if (sh == MAP_FAILED || pv == MAP_FAILED || orphan == MAP_FAILED)
		fail("mmap: %m");
	if (pipe(to_child) || pipe(to_parent))
		fail("pipe: %m");
	pv[0] = 'p';
	c = fork();
	if (c == 0) {
		test_fill(orphan, 4 * 4096, 79);
		_exit(0);
	}
	if (c < 0 || waitpid(c, &st, 0) != c || st)
		fail("writer child: %#x", st);
	c = fork();
	if (c < 0)
		fail("fork: %m");
	if (c == 0) {
		char res = 0;
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		test_fill(sh, HALF, 77);
		pv[0] = 'c';
		if (write(to_parent[1], "r", 1) != 1)
			_exit(2);
		/* 1st byte: verify the parent's half; 2nd: check the parent's new value */
		while (read(to_child[0], &ch, 1) < 0 && errno == EINTR)
			;
		if (test_verify(sh + HALF, HALF, 78) != (size_t)-1)
			res = 1;
		else if (pv[0] != 'c')
			res = 2;
		if (write(to_parent[1], &res, 1) != 1)
			_exit(2);
		while (read(to_child[0], &ch, 1) < 0 && errno == EINTR)
			;
		res = sh[HALF + 5] == 'Z' ? 0 : 3;
		_exit(write(to_parent[1], &res, 1) == 1 ? 0 : 2);
	}
	test_fill(sh + HALF, HALF, 78);
	if (read(to_parent[0], &ch, 1) != 1)
		fail("child not ready");

	test_ready();
	test_wait_sigterm();

	if (test_verify(sh, HALF, 77) != (size_t)-1)
		fail("the child's half of the shared mapping differs in the parent");
	if (test_verify(orphan, 4 * 4096, 79) != (size_t)-1)
		fail("the pages written by the exited child are lost");
	if (pv[0] != 'p')
		fail("private page changed to '%c'", pv[0]);
	if (write(to_child[1], "1", 1) != 1 || read(to_parent[0], &ch, 1) != 1)
		fail("child does not answer: %m");
	if (ch)
		fail("child: %s", ch == 1 ? "the parent's half differs" : "its private page changed");
	sh[HALF + 5] = 'Z';
	if (write(to_child[1], "2", 1) != 1 || read(to_parent[0], &ch, 1) != 1)
		fail("child does not answer: %m");
	if (ch)
		fail("child does not see the parent's write: the mapping is no longer shared");
	if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st))
		fail("child: %#x", st);
	pass();
}
