/*
 * forest: the process-tree benchmark workload and its baseline.
 *
 *   forest NPROC NTHREADS READY_FILE   a root and NPROC-1 children, every process with
 *                                      NTHREADS threads (all blocked), each child with a
 *                                      parent-death signal so the tree dies with its root;
 *                                      the root writes its pid to READY_FILE once all are up
 *
 * The tree runs under a keeper: the process started, a child subreaper that forks the
 * root (which leads its own session, as a daemon would) and reaps the root and every
 * orphan at once, then exits when none is left. Without it the dead tree's zombies
 * would wait for this machine's PID 1, which reaps orphans only every second or two:
 * a benchmark that waits for the dumped tree to be gone before restoring it would
 * time PID 1, not the restore. A service manager reaps at once too.
 *   forest --baseline NPROC            fork+exit+wait of NPROC children, prints
 *                                      "fork_exit_us <microseconds per process>"
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void *sleeper(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

static void start_threads(int n)
{
	for (int i = 1; i < n; i++) {
		pthread_t t;
		if (pthread_create(&t, NULL, sleeper, NULL))
			exit(3);
	}
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "--baseline")) {
		int n = atoi(argv[2]);
		double t = now();
		for (int i = 0; i < n; i++) {
			pid_t p = fork();
			if (p == 0)
				_exit(0);
			if (p < 0 || waitpid(p, NULL, 0) != p)
				return 1;
		}
		printf("fork_exit_us %.1f\n", (now() - t) * 1e6 / n);
		return 0;
	}
	if (argc != 4)
		return 2;
	int nproc = atoi(argv[1]), nthr = atoi(argv[2]);
	int p[2];
	if (nproc < 1 || nthr < 1 || pipe(p) < 0)
		return 2;
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	pid_t root = fork();
	if (root < 0)
		return 4;
	if (root > 0) { /* the keeper */
		close(p[0]);
		close(p[1]);
		while (wait(NULL) > 0 || errno == EINTR)
			;
		return 0;
	}
	setsid();
	root = getpid();
	for (int i = 1; i < nproc; i++) {
		pid_t c = fork();
		if (c < 0)
			return 4;
		if (c == 0) {
			close(p[0]);
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() != root)
				_exit(0);
			start_threads(nthr);
			if (write(p[1], "R", 1) != 1)
				_exit(5);
			close(p[1]);
			for (;;)
				pause();
		}
	}
	close(p[1]);
	for (int i = 1; i < nproc; i++) {
		char c;
		if (read(p[0], &c, 1) != 1)
			return 6;
	}
	close(p[0]);
	start_threads(nthr);
	FILE *f = fopen(argv[3], "w");
	if (!f)
		return 7;
	fprintf(f, "%d\n", getpid());
	fclose(f);
	for (;;)
		pause();
}
