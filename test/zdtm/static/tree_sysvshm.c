/*
 * tree_sysvshm: a child has a SysV shared memory segment attached (it shows in maps as
 * /SYSV...). ferry does not dump SysV IPC, so the dump must refuse (expect: dump-fail)
 * and leave the tree running: after SIGTERM the child checks the segment's content and
 * exits. The segment is marked for removal at once, so it goes away with the child.
 */
#include <errno.h>
#include <signal.h>
#include <sys/ipc.h>
#include <sys/prctl.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <unistd.h>

#include "zdtmtst.h"

#define LEN (4 * 4096)

int main(int argc, char **argv)
{
	int go[2], rdy[2], st;
	pid_t c;
	char ch;

	test_init(argc, argv);
	if (pipe(go) || pipe(rdy))
		fail("pipe: %m");
	c = fork();
	if (c == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int id = shmget(IPC_PRIVATE, LEN, IPC_CREAT | 0600);
		char *m = id < 0 ? (void *)-1 : shmat(id, NULL, 0);
		if (m == (void *)-1)
			_exit(2);
		shmctl(id, IPC_RMID, NULL);
		test_fill(m, LEN, 5);
		if (write(rdy[1], "r", 1) != 1)
			_exit(3);
		while (read(go[0], &ch, 1) < 0 && errno == EINTR)
			;
		_exit(test_verify(m, LEN, 5) == (size_t)-1 ? 0 : 4);
	}
	if (read(rdy[0], &ch, 1) != 1)
		fail("child could not attach its segment");

	test_ready();
	test_wait_sigterm();

	if (write(go[1], "g", 1) != 1)
		fail("write: %m");
	if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st))
		fail("child %d: %#x", c, st);
	pass();
}
