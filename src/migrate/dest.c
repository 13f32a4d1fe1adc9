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
#include "engine/rst-warm.h"
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

/* Restore dir held (with what the warm staging holds, if any) and exit. */
static void __attribute__((noreturn))
restorer_run(const char *dir, bool pidns, int sk, struct rst_warm *warm)
{
	struct ferry_opts o = { .images_dir = dir,
				.detach = true,
				.pidns = pidns,
				.pidns_auto = true,
				.verbosity = log_level,
				.hold = true,
				.hold_fd = sk,
				.warm = warm };
	char line[600];

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

/* The restorer's start: it never outlives the session holding the verdict, and holds
 * nothing of it (its connection socket, round files). */
static void restorer_init(int sk)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	close_except(sk, log_fd());
	log_first_error_reset();
}

static int read_line(int fd, char *buf, size_t len, int timeout_s);

/* The warm restorer: "round DIR" stages a round ("staged BYTES US" or "error CAUSE"),
 * "final PIDNS DIR" stages the last one and restores held, as restorer_run; EOF ends it. */
static void __attribute__((noreturn)) warm_main(int sk)
{
	struct rst_warm *w = NULL;
	char line[PATH_MAX + 64], out[600];
	int pidns;

	restorer_init(sk);
	if (rst_warm_new(&w) < 0)
		_exit(1);
	while (read_line(sk, line, sizeof(line), 1 << 30) == 0) {
		int n;
		if (!strncmp(line, "round ", 6)) {
			uint64_t bytes = 0, t0 = now_ns();
			log_first_error_reset();
			int r = rst_warm_round(w, line + 6, &bytes);
			const char *why = log_first_error();
			n = r < 0 ? snprintf(out, sizeof(out), "error %.500s\n",
					     why ? why : strerror(-r))
				  : snprintf(out, sizeof(out), "staged %llu %llu\n",
					     (unsigned long long)bytes,
					     (unsigned long long)(now_ns() - t0) / 1000);
			if (write_full(sk, out, n) < 0)
				break;
			const char *fault = getenv("FERRY_FAULT");
			if (fault && !strcmp(fault, "warm-exit")) {
				/* fault injection for the test of a lost warm restorer */
				pr_warn("FERRY_FAULT=warm-exit: the warm restorer exits");
				break;
			}
		} else if (sscanf(line, "final %d %n", &pidns, &n) == 1) {
			const char *fault = getenv("FERRY_FAULT");
			if (fault && !strcmp(fault, "warm-final-exit")) {
				/* fault injection: a warm restorer lost at the final round */
				pr_warn("FERRY_FAULT=warm-final-exit: the warm restorer exits");
				break;
			}
			log_first_error_reset();
			bool ok = rst_warm_final(w, line + n) == 0; /* else cold: logged */
			log_first_error_reset();
			restorer_run(line + n, pidns, sk, ok ? w : NULL);
		} else {
			pr_err("warm restorer: unexpected request '%.60s'", line);
			break;
		}
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
		uint64_t ms = (end - now) / 1000000 + 1;
		int r = poll(&p, 1, ms > 60000 ? 60000 : (int)ms);
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

/* Fork a restorer process running fn(sk) on its end of a new socketpair. */
static int restorer_fork(void (*fn)(int sk), struct mig_dest **out, char *err, size_t errlen)
{
	int sk[2];
	struct mig_dest *h = malloc(sizeof(*h));

	if (!h) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sk) < 0) {
		int e = -errno;
		snprintf(err, errlen, "cannot create the restorer's socketpair: %s",
			 strerror(errno));
		free(h);
		return e;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		int e = -errno;
		snprintf(err, errlen, "cannot fork the restorer: %s", strerror(errno));
		close(sk[0]);
		close(sk[1]);
		free(h);
		return e;
	}
	if (pid == 0) {
		close(sk[0]);
		fn(sk[1]);
		_exit(1);
	}
	close(sk[1]);
	h->restorer = pid;
	h->sk = sk[0];
	*out = h;
	return 0;
}

static const char *cold_dir; /* the cold restorer's round (set just before its fork) */
static bool cold_pidns;

static void cold_main(int sk)
{
	restorer_init(sk);
	restorer_run(cold_dir, cold_pidns, sk, NULL);
}

int mig_dest_warm_start(struct mig_dest **out, char *err, size_t errlen)
{
	return restorer_fork(warm_main, out, err, errlen);
}

int mig_dest_warm_send(struct mig_dest *h, const char *dir, char *err, size_t errlen)
{
	char line[PATH_MAX + 16];
	int n = snprintf(line, sizeof(line), "round %s\n", dir);

	if (n >= (int)sizeof(line) || write_full(h->sk, line, n) < 0) {
		snprintf(err, errlen, "the warm restorer is gone");
		return -EPIPE;
	}
	return 0;
}

int mig_dest_warm_round(struct mig_dest *h, const char *dir, int timeout_s, uint64_t *bytes,
			uint64_t *us, char *err, size_t errlen)
{
	int r = mig_dest_warm_send(h, dir, err, errlen);
	return r < 0 ? r : mig_dest_warm_reply(h, timeout_s, bytes, us, err, errlen);
}

int mig_dest_warm_reply(struct mig_dest *h, int timeout_s, uint64_t *bytes, uint64_t *us, char *err,
			size_t errlen)
{
	char line[600];
	unsigned long long b, u;
	int r;

	if ((r = read_line(h->sk, line, sizeof(line), timeout_s)) < 0) {
		snprintf(err, errlen,
			 r == -ETIMEDOUT ? "staging took more than %d s" : "the warm restorer died",
			 timeout_s);
		return r;
	}
	if (sscanf(line, "staged %llu %llu", &b, &u) == 2) {
		*bytes = b;
		*us = u;
		return 0;
	}
	snprintf(err, errlen, "%s", !strncmp(line, "error ", 6) ? line + 6 : line);
	return -EIO;
}

/* The restorer h's report within timeout_s: 0 with *root and *pidns ("ready"), else
 * -errno with the cause in err, h rolled back and freed. */
static int await_ready(struct mig_dest *h, int timeout_s, pid_t *root, bool *pidns, char *err,
		       size_t errlen)
{
	char line[600];
	int ns = 0, r = read_line(h->sk, line, sizeof(line), timeout_s);

	if (r == 0 && sscanf(line, "ready %d %d", root, &ns) == 2) {
		*pidns = ns;
		return 0;
	} else if (r == 0 && !strncmp(line, "error ", 6)) {
		r = -EIO;
		snprintf(err, errlen, "restore failed: %s", line + 6);
	} else if (r == -ETIMEDOUT) {
		snprintf(err, errlen, "restore did not finish within %d s", timeout_s);
	} else {
		r = -EPIPE;
		snprintf(err, errlen, "the restorer died before reporting");
	}
	close(h->sk); /* EOF: the restorer rolls back */
	if (r == -ETIMEDOUT)
		kill(h->restorer, SIGKILL);
	reap(h->restorer);
	free(h);
	return r;
}

int mig_dest_restore(const char *dir, bool *pidns, int timeout_s, struct mig_dest **warm,
		     struct mig_dest **out, pid_t *root, char *err, size_t errlen)
{
	char line[PATH_MAX + 64];
	struct mig_dest *h = warm ? *warm : NULL;
	int r = 0;

	if (warm)
		*warm = NULL; /* ours now: held on success, discarded on failure */
	if (h) {
		int n = snprintf(line, sizeof(line), "final %d %s\n", *pidns, dir);
		if (n >= (int)sizeof(line) || write_full(h->sk, line, n) < 0) {
			pr_warn("the warm restorer is gone: restoring cold");
			mig_dest_discard(h);
		} else if ((r = await_ready(h, timeout_s, root, pidns, err, errlen)) == 0) {
			*out = h;
			return 0;
		} else if (r == -ETIMEDOUT) {
			pr_err("%s", err);
			return r;
		} else {
			/* staging is an optimization: whatever failed there, a cold restore of the
			 * same images decides (the stubs it made died with it) */
			pr_warn("the warm restorer failed (%s): restoring cold", err);
		}
	}
	cold_dir = dir;
	cold_pidns = *pidns;
	h = NULL;
	if ((r = restorer_fork(cold_main, &h, err, errlen)) < 0 || !h ||
	    (r = await_ready(h, timeout_s, root, pidns, err, errlen)) < 0) {
		pr_err("%s", err);
		return r < 0 ? r : -EIO;
	}
	*out = h;
	return 0;
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
