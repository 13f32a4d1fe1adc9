/*
 * dest-session: the destination's migrate frames, served inside a page-server
 * connection (docs/migrate.md "Hand-over"); registered with the page server as its
 * extension for frame types 32..63.
 *
 *   MIG_WARM{round}     -> stage that pre-copy round in the session's warm restorer
 *                          (started by the first one), MIG_WARMED; with queue, answered
 *                          at once and staged in the background (at most WARM_QUEUE_MAX
 *                          rounds ahead; the next one without queue waits for them)
 *   MIG_RESTORE{round}  -> restore that round held (dest.c; by the warm restorer when
 *                          there is one), MIG_RESTORED{pid}
 *   MIG_HANDOVER        -> decision "running" made durable, tree let run, MIG_RUNNING
 *   anything else, EOF, timeout after RESTORED -> decision "discarded", tree killed
 *   MIG_STATUS{round}   -> MIG_STATE: the decision, "none" while a session still holds
 *                          the source (deciding), "discarded" when none does (a held
 *                          tree dies with its session)
 *
 * Invariants: the decision is written (file <round>.handover in the source directory,
 * tmp + rename + fsync) before it is acted on, so STATUS never reports something that
 * did not happen; a held tree runs only after HANDOVER.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "img/img.h"
#include "migrate.pb-c.h"
#include "migrate/dest.h"
#include "migrate/migrate.h"
#include "pageserver/wire.h"

#define DEFAULT_RESTORE_S 120

/* Read a control payload of h and decode it. 0 or -EPROTO/-errno (ERROR sent). */
static int recv_msg(int fd, const struct ps_hdr *h, const ProtobufCMessageDescriptor *desc,
		    ProtobufCMessage **out, int timeout_ms)
{
	uint8_t *buf = malloc(h->len ? h->len : 1);
	if (!buf)
		return -ENOMEM;
	int r = ps_recv_full(fd, buf, h->len, timeout_ms);
	if (r == 0 && ps_unpack(desc, buf, h->len, out) < 0) {
		ps_send_error(fd, EPROTO, timeout_ms, "undecodable %s", ps_type_name(h->type));
		r = -EPROTO;
	}
	free(buf);
	return r;
}

/* <source dir>/<round>.handover := "running <pid>\n" or "discarded <cause>\n", durably. */
static int decision_write(int srcfd, const char *round, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int decision_write(int srcfd, const char *round, const char *fmt, ...)
{
	char name[96], tmp[100], line[400];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0 || n >= (int)sizeof(line) - 1)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	snprintf(name, sizeof(name), "%s.handover", round);
	snprintf(tmp, sizeof(tmp), "%s.tmp", name);
	int fd = openat(srcfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return pr_perror("cannot write hand-over decision for round '%s'", round);
	int r = write_full(fd, line, n);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	close(fd);
	if (r == 0 && renameat(srcfd, tmp, srcfd, name) < 0)
		r = -errno;
	if (r == 0 && fsync(srcfd) < 0)
		r = -errno;
	if (r < 0)
		return pr_err_ret(r, "cannot write hand-over decision for round '%s'", round);
	return 0;
}

/* A discarded attempt leaves no images: remove the final round (its files and its
 * parent link; rounds hold no directories). The pre-dump chain below it stays. */
static void round_discard(int srcfd, const char *round)
{
	if (rmdir_files_at(srcfd, round) == 0)
		pr_info("round '%s' of the discarded attempt removed", round);
}

/* The path of a committed round (its inventory.img is the commit), for restore_main
 * (it takes a path; our fds resolve it); -ENOENT for a round that is not (yet) one. */
static int round_path(int srcfd, const char *round, char *out, size_t len)
{
	char link[64], base[PATH_MAX];
	struct stat st;
	if (snprintf(base, sizeof(base), "%s/inventory.img", round) >= (int)sizeof(base) ||
	    fstatat(srcfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
		return -ENOENT;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", srcfd);
	ssize_t n = readlink(link, base, sizeof(base) - 1);
	if (n < 0)
		return -errno;
	base[n] = 0;
	if ((size_t)snprintf(out, len, "%s/%s", base, round) >= len)
		return -ENAMETOOLONG;
	return 0;
}

/* The round at DIR is a final dump (not a pre-dump round), by its inventory. */
static bool round_is_dump(const char *dir)
{
	struct img_dir *d;
	bool dump;
	if (img_dir_open(dir, &d) < 0)
		return false;
	dump = img_dir_inventory(d)->kind == IMG_KIND_DUMP;
	img_dir_free(d);
	return dump;
}

/* After RESTORED: HANDOVER lets the tree run; anything else discards it. */
static int await_handover(int fd, int srcfd, const char *round, struct mig_dest *h, pid_t pid,
			  int timeout_ms)
{
	struct ps_hdr hd;
	const char *why = "";
	int r = ps_recv_hdr(fd, &hd, &why, timeout_ms);
	if (r == 0 && hd.type == PS_MIG_HANDOVER && hd.len == 0) {
		if ((r = decision_write(srcfd, round, "running %d", pid)) < 0) {
			mig_dest_discard(h);
			ps_send_error(fd, -r, timeout_ms, "cannot record the hand-over: %s",
				      strerror(-r));
			return r;
		}
		if ((r = mig_dest_go(h)) < 0) {
			(void)decision_write(srcfd, round,
					     "discarded the restored tree failed to start");
			round_discard(srcfd, round);
			ps_send_error(fd, EIO, timeout_ms, "the restored tree failed to start");
			return r;
		}
		pr_info("round '%s': hand-over done, the tree runs as pid %d", round, pid);
		const char *fault = getenv("FERRY_FAULT");
		if (fault && !strcmp(fault, "drop-running")) {
			/* fault injection for the test of a lost confirmation */
			pr_warn("FERRY_FAULT=drop-running: closing without RUNNING");
			return -ECONNABORTED;
		}
		MigRunning run = MIG_RUNNING__INIT;
		run.pid = pid;
		(void)ps_send_msg(fd, PS_MIG_RUNNING, 0, &run.base, timeout_ms);
		return 0;
	}
	const char *cause = r == -ETIMEDOUT    ? "no HANDOVER before the timeout"
			    : r == -ECONNRESET ? "connection closed before HANDOVER"
			    : r < 0	       ? "connection failed before HANDOVER"
					       : "source did not hand over";
	(void)decision_write(srcfd, round, "discarded %s", cause);
	mig_dest_discard(h);
	round_discard(srcfd, round);
	pr_info("round '%s': %s; restored tree discarded", round, cause);
	return r < 0 ? r : -ECONNABORTED;
}

/* This connection's warm restorer (a connection is a process of its own), started by
 * its first MIG_WARM; it dies with the connection. g_queued: rounds handed to it whose
 * answer was not read yet (MIG_WARM with queue). */
static struct mig_dest *g_warm;
static int g_queued;

#define WARM_TIMEOUT_S 600 /* staging a round runs at memory speed: minutes is a hang */
#define WARM_QUEUE_MAX 8   /* queued rounds ahead of the source at most */

static void warm_drop(void)
{
	mig_dest_discard(g_warm);
	g_warm = NULL;
	g_queued = 0;
}

/* Collect the answers of the queued rounds (adding their bytes and time). 0, -EIO when
 * one failed to stage (cause in err; the warm restorer goes on), or -EPIPE / -ETIMEDOUT:
 * the warm restorer is gone or hangs (dropped). */
static int warm_drain(uint64_t *bytes, uint64_t *us, char *err, size_t errlen)
{
	int r = 0;
	while (g_warm && g_queued > 0) {
		uint64_t b = 0, u = 0;
		char e[512];
		int x = mig_dest_warm_reply(g_warm, WARM_TIMEOUT_S, &b, &u, e, sizeof(e));
		g_queued--;
		*bytes += b;
		*us += u;
		if (x < 0 && r == 0) {
			r = x;
			snprintf(err, errlen, "%s", e);
		}
		if (x == -EPIPE || x == -ETIMEDOUT) {
			warm_drop();
			return x;
		}
	}
	return r;
}

/* MIG_WARM{round, queue}: hand the committed round to the warm restorer; without queue
 * (or with WARM_QUEUE_MAX rounds queued already) wait until it and every round queued
 * before are staged, and answer MIG_WARMED then. A failure is reported, not fatal: the
 * final restore is cold where it must be. */
static int on_warm(int fd, const struct ps_hdr *h, int srcfd, int timeout_ms)
{
	ProtobufCMessage *m = NULL;
	MigWarmed rep = MIG_WARMED__INIT;
	char dir[PATH_MAX], err[512] = "", round[64];
	uint64_t bytes = 0, us = 0;
	bool queue;
	int r;

	if ((r = recv_msg(fd, h, &mig_warm__descriptor, &m, timeout_ms)) < 0 || !m)
		return r < 0 ? r : -EPROTO;
	snprintf(round, sizeof(round), "%s", ((MigWarm *)m)->round);
	queue = ((MigWarm *)m)->has_queue && ((MigWarm *)m)->queue && g_queued < WARM_QUEUE_MAX;
	mig_warm__free_unpacked((MigWarm *)m, NULL);
	if (srcfd < 0 || !ps_name_ok(round) || round_path(srcfd, round, dir, sizeof(dir)) < 0) {
		pr_err("MIG_WARM of unknown round '%.64s'", round);
		ps_send_error(fd, EINVAL, timeout_ms, "MIG_WARM of unknown round '%.64s'", round);
		return -EINVAL;
	}
	if (queue) {
		r = g_warm ? 0 : mig_dest_warm_start(&g_warm, err, sizeof(err));
		if (r == 0 && (r = mig_dest_warm_send(g_warm, dir, err, sizeof(err))) == 0)
			g_queued++;
		else if (g_warm)
			warm_drop(); /* the next round without queue starts a new one */
		rep.ok = r == 0;
		rep.has_queued = true;
		rep.queued = r == 0;
		if (r < 0) {
			rep.cause = err;
			pr_warn("round '%s' not queued for staging: %s", round, err);
		} else {
			pr_info("round '%s' queued for staging (%d queued)", round, g_queued);
		}
		return ps_send_msg(fd, PS_MIG_WARMED, 0, &rep.base, timeout_ms);
	}
	/* a warm restorer that is gone is replaced at once (the new one stages the chain);
	 * one that hangs is dropped (the next round starts a new one) */
	int qr = 0;
	char qerr[512] = "";
	for (int tries = 0; tries < 2; tries++) {
		uint64_t b = 0, u = 0;
		r = g_warm ? 0 : mig_dest_warm_start(&g_warm, err, sizeof(err));
		if (r == 0 && g_queued && (r = warm_drain(&bytes, &us, err, sizeof(err))) < 0) {
			qr = r; /* a queued round failed: this one is staged all the same */
			snprintf(qerr, sizeof(qerr), "%s", err);
			r = g_warm ? 0 : mig_dest_warm_start(&g_warm, err, sizeof(err));
		}
		if (r == 0)
			r = mig_dest_warm_round(g_warm, dir, WARM_TIMEOUT_S, &b, &u, err,
						sizeof(err));
		bytes += b;
		us += u;
		if (r < 0 && g_warm && (r == -EPIPE || r == -ETIMEDOUT))
			warm_drop();
		if (r != -EPIPE)
			break;
		pr_warn("the warm restorer is gone (%s): starting a new one", err);
	}
	if (r == 0 && qr < 0 && qr != -EPIPE) { /* (a lost one was replaced: no loss) */
		r = qr;
		snprintf(err, sizeof(err), "%s", qerr);
	}
	rep.ok = r == 0;
	rep.bytes = bytes;
	rep.stage_us = us;
	if (r < 0) {
		rep.cause = err;
		pr_warn("round '%s' not staged: %s", round, err);
	} else {
		pr_info("round '%s' staged: %.1f MB in %.1f ms", round, bytes / 1048576.0,
			us / 1e3);
	}
	return ps_send_msg(fd, PS_MIG_WARMED, 0, &rep.base, timeout_ms);
}

static int on_restore(int fd, const struct ps_hdr *h, int srcfd, int timeout_ms)
{
	ProtobufCMessage *m = NULL;
	char dir[PATH_MAX], err[512];
	struct mig_dest *hd;
	pid_t pid;
	int r;

	if ((r = recv_msg(fd, h, &mig_restore__descriptor, &m, timeout_ms)) < 0 || !m)
		return r < 0 ? r : -EPROTO;
	MigRestore *req = (MigRestore *)m;
	char round[64];
	snprintf(round, sizeof(round), "%s", req->round);
	bool pidns = req->has_pidns && req->pidns;
	int tmo = req->has_timeout_s && req->timeout_s ? (int)req->timeout_s : DEFAULT_RESTORE_S;
	mig_restore__free_unpacked(req, NULL);
	if (srcfd < 0 || !ps_name_ok(round) || round_path(srcfd, round, dir, sizeof(dir)) < 0) {
		pr_err("MIG_RESTORE of unknown round '%.64s'", round);
		ps_send_error(fd, EINVAL, timeout_ms, "MIG_RESTORE of unknown round '%.64s'",
			      round);
		return -EINVAL;
	}
	/* only a final dump is restored (and discarded on failure): never a round of the
	 * pre-dump chain, whatever the peer asks */
	if (!round_is_dump(dir)) {
		pr_err("MIG_RESTORE of round '%.64s': not a final dump", round);
		ps_send_error(fd, EINVAL, timeout_ms,
			      "MIG_RESTORE of round '%.64s': not a final dump", round);
		return -EINVAL;
	}
	uint64_t t0 = now_ns();
	if (g_queued) { /* the answers of rounds still queued come first */
		uint64_t b = 0, u = 0;
		if (warm_drain(&b, &u, err, sizeof(err)) < 0)
			pr_warn("a queued round was not staged (%s): its processes restore cold "
				"where they must",
				err);
	}
	r = mig_dest_restore(dir, &pidns, tmo, &g_warm, &hd, &pid, err, sizeof(err));
	if (r < 0) {
		(void)decision_write(srcfd, round, "discarded %s", err);
		round_discard(srcfd, round);
		ps_send_error(fd, -r, timeout_ms, "%s", err);
		return r;
	}
	MigRestored rd = MIG_RESTORED__INIT;
	rd.pid = pid;
	rd.pidns = pidns;
	rd.restore_us = (now_ns() - t0) / 1000;
	pr_info("round '%s': tree restored as pid %d in %.1f ms, held for the hand-over", round,
		pid, rd.restore_us / 1e3);
	if ((r = ps_send_msg(fd, PS_MIG_RESTORED, 0, &rd.base, timeout_ms)) < 0) {
		(void)decision_write(srcfd, round, "discarded cannot answer the source");
		mig_dest_discard(hd);
		round_discard(srcfd, round);
		return r;
	}
	return await_handover(fd, srcfd, round, hd, pid, timeout_ms);
}

static int on_status(int fd, const struct ps_hdr *h, const char *source, int dirfd, int timeout_ms)
{
	ProtobufCMessage *m = NULL;
	MigState st = MIG_STATE__INIT;
	char name[96], *line = NULL, cause[400] = "";
	size_t len;
	int r, srcfd;

	if ((r = recv_msg(fd, h, &mig_status__descriptor, &m, timeout_ms)) < 0 || !m)
		return r < 0 ? r : -EPROTO;
	MigStatus *req = (MigStatus *)m;
	snprintf(name, sizeof(name), "%.63s.handover", req->round);
	bool ok = ps_name_ok(req->round);
	mig_status__free_unpacked(req, NULL);
	st.state = "discarded";
	srcfd = ok ? openat(dirfd, source, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) : -1;
	if (srcfd >= 0 && read_file_at(srcfd, name, &line, &len, 512) == 0) {
		int pid;
		if (!strncmp(line, "running ", 8) && sscanf(line + 8, "%d", &pid) == 1) {
			st.state = "running";
			st.has_pid = true;
			st.pid = pid;
		} else if (!strncmp(line, "discarded ", 10)) {
			snprintf(cause, sizeof(cause), "%.*s", (int)strcspn(line + 10, "\n"),
				 line + 10);
		}
	} else if (srcfd >= 0) {
		/* no decision: still being decided if a session holds the source */
		int lk = openat(srcfd, ".lock", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (lk >= 0 && flock(lk, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK)
			st.state = "none";
		else
			snprintf(cause, sizeof(cause),
				 "no decision and no session: a held tree dies "
				 "with its session");
		if (lk >= 0)
			close(lk);
	} else {
		snprintf(cause, sizeof(cause), "unknown source or round");
	}
	if (cause[0])
		st.cause = cause;
	free(line);
	if (srcfd >= 0)
		close(srcfd);
	return ps_send_msg(fd, PS_MIG_STATE, 0, &st.base, timeout_ms);
}

int mig_dest_frame(void *ctx, int fd, const struct ps_hdr *h, const char *source, int dirfd,
		   int srcfd, int timeout_ms)
{
	(void)ctx;
	switch (h->type) {
	case PS_MIG_RESTORE:
		return on_restore(fd, h, srcfd, timeout_ms);
	case PS_MIG_STATUS:
		return on_status(fd, h, source, dirfd, timeout_ms);
	case PS_MIG_WARM:
		return on_warm(fd, h, srcfd, timeout_ms);
	default:
		ps_send_error(fd, EPROTO, timeout_ms, "unexpected %s frame", ps_type_name(h->type));
		return -EPROTO;
	}
}
