/*
 * tree_memfd_map: a memfd held as an fd and mapped MAP_SHARED before fork, so parent and
 * child map the same object. The child writes the first half, the parent the second.
 * After the restore each side reads the other's half through its mapping, the fd reads
 * the same bytes, and a byte the parent writes is seen by the child.
 */
#include <errno.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "zdtmtst.h"

#define LEN (16 * 4096)
#define HALF (LEN / 2)

int main(int argc, char **argv)
{
	int to_child[2], to_parent[2], st, fd;
	static char buf[HALF];
	char *m, ch;
	pid_t c;

	test_init(argc, argv);
	fd = memfd_create("tree-memfd", 0);
	if (fd < 0 || ftruncate(fd, LEN))
		fail("memfd: %m");
	m = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED || pipe(to_child) || pipe(to_parent))
		fail("setup: %m");
	c = fork();
	if (c < 0)
		fail("fork: %m");
	if (c == 0) {
		char res;
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		test_fill(m, HALF, 31);
		if (write(to_parent[1], "r", 1) != 1)
			_exit(2);
		while (read(to_child[0], &ch, 1) < 0 && errno == EINTR)
			;
		res = test_verify(m + HALF, HALF, 32) != (size_t)-1 ? 1 : 0;
		if (write(to_parent[1], &res, 1) != 1)
			_exit(2);
		while (read(to_child[0], &ch, 1) < 0 && errno == EINTR)
			;
		res = m[HALF + 9] == 'Q' ? 0 : 3;
		_exit(write(to_parent[1], &res, 1) == 1 ? 0 : 2);
	}
	test_fill(m + HALF, HALF, 32);
	if (read(to_parent[0], &ch, 1) != 1)
		fail("child not ready");

	test_ready();
	test_wait_sigterm();

	if (test_verify(m, HALF, 31) != (size_t)-1)
		fail("the child's half differs in the parent's mapping");
	if (pread(fd, buf, HALF, 0) != HALF || test_verify(buf, HALF, 31) != (size_t)-1)
		fail("the fd does not read what the mapping holds");
	if (write(to_child[1], "1", 1) != 1 || read(to_parent[0], &ch, 1) != 1 || ch)
		fail("child: the parent's half differs (%d)", ch);
	m[HALF + 9] = 'Q';
	if (write(to_child[1], "2", 1) != 1 || read(to_parent[0], &ch, 1) != 1 || ch)
		fail("child does not see the parent's write: mapping not shared (%d)", ch);
	if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st))
		fail("child: %#x", st);
	pass();
}
