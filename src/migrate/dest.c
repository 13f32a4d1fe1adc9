/*
 * dest: restore held until the hand-over (dest.h).
 *
 * The restorer is a fork of the caller running restore_main with hold set. Caller and
 * restorer share a socketpair: the restorer writes "ready <pid>\n" once the tree is
 * built (or "error <cause>\n" when the restore failed) and then reads the verdict byte.
 * The caller's end is the tree's life line: closing it without 'g' (discard, or the
 * caller dying) makes the restorer kill the tree.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "engine/engine.h"
#include "migrate/dest.h"

struct mig_dest {
	pid_t restorer;
	int sk; /* our end of the socketpair */
};

/* Close every fd above 2 except a and b. */
static void close_except(int a, int b)
{
	unsigned lo = a < b ? a : b, hi = a < b ? b : a, from = 3;
	unsigned keep[2] = { lo, hi };
	for (int i = 0; i < 2; i++) {
		if (keep[i] < 3 || keep[i] < from)
			continue;
		if (keep[i] > from)
			syscall(SYS_close_range, from, keep[i] - 1, 0);
		from = keep[i] + 1;
	}
	syscall(SYS_close_range, from, ~0U, 0);
}

static void restorer_main(const char *dir, bool pidns, int sk)
{
	struct ferry_opts o = { .images_dir = dir,
				.detach = true,
				.pidns = pidns,
				.pidns_auto = true,
				.verbosity = log_level,
				.hold = true,
				.hold_fd = sk };
	char line[600];

	prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the session holding the verdict */
	/* hold nothing of the session (its connection socket, round files) */
	close_except(sk, log_fd());
	log_first_error_reset();
	int r = restore_main(&o, NULL);
	if (r < 0) {
		const char *why = log_first_error();
		int n = snprintf(line, sizeof(line), "error %s\n", why ? why : strerror(-r));
		if (n >= (int)sizeof(line))
			n = sizeof(line) - 1;
		(void)write_full(sk, line, n);
		_exit(1);
	}
	_exit(0);
}

/* One line from the restorer within timeout_s. 0 or -ETIMEDOUT / -EPIPE. */
static int read_line(int fd, char *buf, size_t len, int timeout_s)
{
	size_t n = 0;
	uint64_t end = now_ns() + (uint64_t)timeout_s * 1000000000ULL;
	while (n + 1 < len) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		uint64_t now = now_ns();
		if (now >= end)
			return -ETIMEDOUT;
		int r = poll(&p, 1, (int)((end - now) / 1000000) + 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			continue;
		ssize_t k = read(fd, buf + n, 1);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -EPIPE;
		if (buf[n] == '\n')
			break;
		n++;
	}
	buf[n] = 0;
	return 0;
}

static void reap(pid_t pid)
{
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
}

int mig_dest_restore(const char *dir, bool *pidns, int timeout_s, struct mig_dest **out,
		     pid_t *root, char *err, size_t errlen)
{
	int sk[2];
	char line[600];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sk) < 0) {
		snprintf(err, errlen, "cannot create the restorer's socketpair: %s",
			 strerror(errno));
		return -errno;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		int e = -errno;
		snprintf(err, errlen, "cannot fork the restorer: %s", strerror(errno));
		close(sk[0]);
		close(sk[1]);
		return e;
	}
	if (pid == 0) {
		close(sk[0]);
		restorer_main(dir, *pidns, sk[1]);
	}
	close(sk[1]);
	int r = read_line(sk[0], line, sizeof(line), timeout_s);
	int ns = 0;
	if (r == 0 && sscanf(line, "ready %d %d", root, &ns) == 2) {
		*pidns = ns;
		struct mig_dest *h = malloc(sizeof(*h));
		if (h) {
			h->restorer = pid;
			h->sk = sk[0];
			*out = h;
			return 0;
		}
		r = -ENOMEM;
		snprintf(err, errlen, "out of memory");
	} else if (r == 0 && !strncmp(line, "error ", 6)) {
		r = -EIO;
		snprintf(err, errlen, "restore failed: %s", line + 6);
	} else if (r == -ETIMEDOUT) {
		snprintf(err, errlen, "restore did not finish within %d s", timeout_s);
	} else {
		r = -EPIPE;
		snprintf(err, errlen, "the restorer died before reporting");
	}
	close(sk[0]); /* EOF: the restorer rolls back */
	if (r == -ETIMEDOUT)
		kill(pid, SIGKILL);
	reap(pid);
	pr_err("%s", err);
	return r;
}

int mig_dest_go(struct mig_dest *h)
{
	int st = 0, r = 0;
	if (write_full(h->sk, "g", 1) < 0)
		r = pr_perror("cannot tell the restorer to let the tree run");
	while (waitpid(h->restorer, &st, 0) < 0)
		if (errno != EINTR) {
			st = -1;
			break;
		}
	close(h->sk);
	free(h);
	if (r == 0 && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
		r = pr_err_ret(-EIO, "the restorer failed while letting the tree run");
	return r;
}

void mig_dest_discard(struct mig_dest *h)
{
	if (!h)
		return;
	close(h->sk);
	reap(h->restorer);
	free(h);
}
