/*
 * action: run --action-script for one stage (action.h).
 *
 * fork + execve with the caller's environment plus FERRY_STAGE and the extra variables;
 * the child closes every fd above 2 (close_range) so it holds no socket or pipe of ours
 * (a script that backgrounds a daemon must not keep the page-server connection open).
 * The wait is bounded with a pidfd and poll; past the timeout the script is killed.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "migrate/action.h"

extern char **environ;

#define MAX_ENV 256

/* The child's environment: ours, then FERRY_STAGE, then the extra ones. */
static int build_env(const char *stage, char *const extra[], char **out, char *stage_var,
		     size_t stage_len)
{
	size_t n = 0;
	for (char **e = environ; e && *e && n < MAX_ENV - 2; e++)
		if (strncmp(*e, "FERRY_STAGE=", 12))
			out[n++] = *e;
	snprintf(stage_var, stage_len, "FERRY_STAGE=%s", stage);
	out[n++] = stage_var;
	for (size_t i = 0; extra && extra[i]; i++) {
		if (n >= MAX_ENV - 1)
			return -E2BIG;
		out[n++] = extra[i];
	}
	out[n] = NULL;
	return 0;
}

static void child(const char *script, char **env)
{
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (null >= 0)
		dup2(null, 0);
	syscall(SYS_close_range, 3, ~0U, 0);
	char *argv[] = { (char *)script, NULL };
	execve(script, argv, env);
	fprintf(stderr, "ferry: error: cannot run action script '%s': %s\n", script,
		strerror(errno));
	_exit(127);
}

/* Wait for pid at most timeout_s; kill it past that. Returns its wait status or -errno. */
static int wait_bounded(pid_t pid, int timeout_s, bool *timed_out)
{
	int pfd = sys_pidfd_open(pid, 0), st;
	*timed_out = false;
	if (pfd >= 0) {
		struct pollfd p = { .fd = pfd, .events = POLLIN };
		int r;
		do
			r = poll(&p, 1, timeout_s * 1000);
		while (r < 0 && errno == EINTR);
		close(pfd);
		if (r == 0) {
			*timed_out = true;
			kill(pid, SIGKILL);
		}
	}
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return st;
}

int mig_action(const char *script, const char *stage, char *const env[], int timeout_s)
{
	char *cenv[MAX_ENV], stage_var[64];
	bool timed_out;

	if (!script)
		return 0;
	if (build_env(stage, env, cenv, stage_var, sizeof(stage_var)) < 0)
		return pr_err_ret(-E2BIG, "action script '%s': environment too large", script);
	if (access(script, X_OK) < 0)
		return pr_perror("action script '%s' cannot be run", script);
	pr_info("action script: stage %s", stage);
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		return pr_perror("cannot fork for action script '%s'", script);
	if (pid == 0)
		child(script, cenv);
	int st = wait_bounded(pid, timeout_s, &timed_out);
	if (st < 0)
		return pr_err_ret(st, "cannot wait for action script '%s'", script);
	if (timed_out)
		pr_err("action script '%s' (stage %s) timed out after %d s", script, stage,
		       timeout_s);
	else if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	else if (WIFEXITED(st))
		pr_err("action script '%s' failed at stage %s (exit %d)", script, stage,
		       WEXITSTATUS(st));
	else
		pr_err("action script '%s' killed by signal %d at stage %s", script, WTERMSIG(st),
		       stage);
	return -ECANCELED;
}
