/*
 * tree_deep: a tree of five processes: the root, two children, one grandchild under
 * each. Every process keeps a pattern of its own in heap and mmap'd memory and
 * remembers its pid and parent; one grandchild has a parent-death signal. They all
 * block in read() on their own "go" pipe (pipes created by the root before forking, so
 * the tree shares them). After the restore the root (woken by SIGTERM) writes to each
 * go pipe; every process verifies its own state and reports {idx, verdict} to the root
 * through one shared report pipe, then reaps its children.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "zdtmtst.h"

#define NP 5			/* 0 root, 1 and 2 children, 3 under 1, 4 under 2 */
#define HEAP (256 << 10)
#define MAP (16 * 4096)

static int go[NP][2], rep[2], rdy[2];
static const char *const what[] = { "ok", "pid changed", "parent changed", "heap differs",
				    "mapping differs", "pdeath signal lost", "child verdict" };

/* idx 4: its parent died (only when the runner kills the tree): end too */
static void on_usr2(int sig) { (void)sig; _exit(9); }

/* The life of process idx (not the root): set up, wait, verify, report. */
static __attribute__((noreturn)) void member(int idx, pid_t parent)
{
	pid_t me = getpid(), kid = 0;
	char c, res = 0;
	int st;

	if (idx == 1 || idx == 2) {
		kid = fork();
		if (kid == 0) {		/* the grandchild under idx */
			idx += 2;
			parent = me;
			me = getpid();
			kid = 0;
		}
	}
	char *heap = malloc(HEAP);
	char *map = mmap(NULL, MAP, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (!heap || map == MAP_FAILED)
		_exit(2);
	if (idx == 4) {
		signal(SIGUSR2, on_usr2);
		prctl(PR_SET_PDEATHSIG, SIGUSR2);
	} else {
		prctl(PR_SET_PDEATHSIG, SIGKILL);	/* never outlive a killed tree */
	}
	test_fill(heap, HEAP, 1000 + idx);
	test_fill(map, MAP, 2000 + idx);
	c = idx;
	if (write(rdy[1], &c, 1) != 1)
		_exit(3);
	while (read(go[idx][0], &c, 1) < 0 && errno == EINTR)
		;
	int pd = 0;
	prctl(PR_GET_PDEATHSIG, &pd);
	if (getpid() != me)
		res = 1;
	else if (getppid() != parent)
		res = 2;
	else if (test_verify(heap, HEAP, 1000 + idx) != (size_t)-1)
		res = 3;
	else if (test_verify(map, MAP, 2000 + idx) != (size_t)-1)
		res = 4;
	else if (idx == 4 && pd != SIGUSR2)
		res = 5;
	char msg[2] = { (char)idx, res };
	if (write(rep[1], msg, 2) != 2)
		_exit(4);
	if (kid && (waitpid(kid, &st, 0) != kid || !WIFEXITED(st) || WEXITSTATUS(st)))
		_exit(5);
	_exit(0);
}

int main(int argc, char **argv)
{
	pid_t kids[2], me = getpid();
	char c, msg[2];
	int seen = 0, st;

	test_init(argc, argv);
	if (pipe(rep) || pipe(rdy))
		fail("pipe: %m");
	for (int i = 0; i < NP; i++)
		if (pipe(go[i]))
			fail("pipe: %m");
	for (int i = 0; i < 2; i++) {
		kids[i] = fork();
		if (kids[i] < 0)
			fail("fork: %m");
		if (kids[i] == 0)
			member(i + 1, me);
	}
	for (int i = 1; i < NP; i++)
		if (read(rdy[0], &c, 1) != 1)
			fail("a member did not get ready: %m");

	test_ready();
	test_wait_sigterm();

	for (int i = 1; i < NP; i++)
		if (write(go[i][1], "g", 1) != 1)
			fail("write go %d: %m", i);
	for (int i = 1; i < NP; i++) {
		if (read(rep[0], msg, 2) != 2)
			fail("report %d missing: %m", i);
		if (msg[0] < 1 || msg[0] >= NP || (seen & (1 << msg[0])))
			fail("bad report from %d", msg[0]);
		seen |= 1 << msg[0];
		if (msg[1])
			fail("process %d: %s", msg[0], what[(int)msg[1]]);
	}
	for (int i = 0; i < 2; i++)
		if (waitpid(kids[i], &st, 0) != kids[i] || !WIFEXITED(st) || WEXITSTATUS(st))
			fail("child %d (%d) ended badly: %#x", i + 1, kids[i], st);
	pass();
}
