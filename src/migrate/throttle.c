/*
 * throttle: --auto-converge, a tree that dirties memory faster than the link sends it
 * is slowed down by a CPU quota until the pre-copy rounds converge (like QEMU's
 * auto-converge throttles vCPUs).
 *
 * The quota is the cpu controller's (cgroup v2 cpu.max, or v1 cpu.cfs_quota_us, as
 * mounted here). A tree alone in its cgroup is throttled in place; otherwise it is
 * moved for the migration into a cgroup of its own made next to its current one
 * (ferry-converge-<pid>), and moved back and the cgroup removed at the end (a migrated
 * tree is gone by then). Signals (stop/continue duty cycles) are not used: the tree is
 * ptrace-seized at every round, and a SIGSTOP delivered to a traced task would be seen
 * by the tracer mid-round and by the tree's own parents.
 *
 * Invariants: mig_throttle_stop() restores the quota and the membership it changed,
 * whatever happened; children born meanwhile inherit the cgroup and are moved back with
 * the tree's processes found at the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "engine/proc.h"
#include "migrate/throttle.h"

#define PERIOD_US 100000
#define MAX_PIDS  4096

struct mig_throttle {
	pid_t root;
	bool v2;
	char dir[2 * PATH_MAX + 64];  /* the cgroup throttled */
	char orig[2 * PATH_MAX + 64]; /* the tree's cgroup before us */
	char saved[64];		      /* the quota before us */
	bool moved;
	int pct;
};

/* Append the pids listed in file path (space or newline separated) to out[*n..max). */
static void read_pids(const char *path, pid_t *out, size_t *n, size_t max)
{
	char *buf = NULL, *p, *end;
	size_t len;
	if (read_file(path, &buf, &len, 1 << 20) < 0)
		return;
	for (p = buf; *n < max; p = end) {
		long v = strtol(p, &end, 10);
		if (end == p)
			break;
		out[(*n)++] = (pid_t)v;
	}
	free(buf);
}

/* Every pid of the tree rooted at root (children of every thread, breadth first). */
static size_t tree_pids(pid_t root, pid_t *out, size_t max)
{
	size_t n = 0;
	out[n++] = root;
	for (size_t i = 0; i < n && n < max; i++) {
		pid_t *tids;
		size_t nt;
		if (proc_list_tids(out[i], &tids, &nt) < 0)
			continue;
		for (size_t k = 0; k < nt; k++) {
			char cp[96];
			snprintf(cp, sizeof(cp), "/proc/%d/task/%d/children", out[i], tids[k]);
			read_pids(cp, out, &n, max);
		}
		free(tids);
	}
	return n;
}

/* Is tok one of the comma-separated words of list? */
static bool has_word(const char *list, const char *tok)
{
	size_t n = strlen(tok);
	for (const char *p = list; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
		if (!strncmp(p, tok, n) && (p[n] == ',' || p[n] == 0))
			return true;
	return false;
}

/* Does mount line l (mountinfo) carry the cpu controller? Sets *v2 and mnt. */
static bool cpu_mount(const char *l, bool *v2, char *mnt, size_t mlen)
{
	char m[PATH_MAX], fs[32], opts[512];
	const char *dash = strstr(l, " - ");
	if (sscanf(l, "%*s %*s %*s %*s %4095s", m) != 1 || !dash ||
	    sscanf(dash + 3, "%31s %*s %511s", fs, opts) != 2)
		return false;
	if (!strcmp(fs, "cgroup2")) {
		char ctl[PATH_MAX + 32], *c = NULL;
		size_t cl;
		snprintf(ctl, sizeof(ctl), "%s/cgroup.controllers", m);
		bool ok = read_file(ctl, &c, &cl, 4096) == 0;
		for (char *w = ok ? c : NULL; w && *w; w++) /* "cpuset cpu io" -> words */
			if (*w == ' ' || *w == '\n')
				*w = ',';
		ok = ok && has_word(c, "cpu");
		free(c);
		if (!ok)
			return false;
		*v2 = true;
	} else if (!strcmp(fs, "cgroup") && has_word(opts, "cpu")) {
		*v2 = false;
	} else {
		return false;
	}
	snprintf(mnt, mlen, "%s", m);
	return true;
}

/* The cgroup path of pid in the hierarchy (v2: "0::", v1: the line naming cpu). */
static int pid_cgroup(pid_t pid, bool v2, char *cg, size_t clen)
{
	char path[64], *pc = NULL;
	size_t len;
	int r = -ENOENT;
	snprintf(path, sizeof(path), "/proc/%d/cgroup", pid);
	if (read_file(path, &pc, &len, 1 << 16) < 0)
		return -ENOENT;
	for (char *q = strtok(pc, "\n"); q && r; q = strtok(NULL, "\n")) {
		char ctrls[128] = "", cpath[PATH_MAX];
		if (v2 ? sscanf(q, "0::%4095s", cpath) != 1
		       : sscanf(q, "%*d:%127[^:]:%4095s", ctrls, cpath) != 2 ||
				    !has_word(ctrls, "cpu"))
			continue;
		snprintf(cg, clen, "%s", cpath);
		r = 0;
	}
	free(pc);
	return r;
}

/* The mount point of the cpu controller and the cgroup of pid in it. 0 or -ENOENT. */
static int cpu_cgroup(pid_t pid, bool *v2, char *mnt, size_t mlen, char *cg, size_t clen)
{
	char *mi = NULL;
	size_t len;
	int r = -ENOENT;
	if (read_file("/proc/self/mountinfo", &mi, &len, 1 << 20) < 0)
		return -ENOENT;
	for (char *l = mi, *nl; l && *l && r; l = nl) {
		nl = strchr(l, '\n');
		if (nl)
			*nl++ = 0;
		if (cpu_mount(l, v2, mnt, mlen))
			r = pid_cgroup(pid, *v2, cg, clen);
	}
	free(mi);
	return r;
}

static int write_str(const char *dir, const char *file, const char *s)
{
	char path[2 * PATH_MAX + 128];
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	return write_file(path, s);
}

/* Is every member of cgroup dir a process of the tree? */
static bool cgroup_own(const char *dir, const pid_t *pids, size_t n)
{
	static pid_t members[MAX_PIDS];
	char path[2 * PATH_MAX + 128];
	size_t m = 0;
	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	read_pids(path, members, &m, MAX_PIDS);
	for (size_t j = 0; j < m; j++) {
		bool in = false;
		for (size_t i = 0; i < n && !in; i++)
			in = pids[i] == members[j];
		if (!in)
			return false;
	}
	return m > 0;
}

static int move_pids(const char *dir, const pid_t *pids, size_t n)
{
	char s[32];
	int r = 0;
	for (size_t i = 0; i < n; i++) {
		snprintf(s, sizeof(s), "%d", pids[i]);
		int e = write_str(dir, "cgroup.procs", s);
		if (e < 0 && e != -ESRCH && r == 0)
			r = e;
	}
	return r;
}

static int quota_read(struct mig_throttle *t)
{
	char path[2 * PATH_MAX + 128], *buf = NULL;
	size_t len;
	snprintf(path, sizeof(path), "%s/%s", t->dir, t->v2 ? "cpu.max" : "cpu.cfs_quota_us");
	if (read_file(path, &buf, &len, 64) < 0)
		return -errno;
	snprintf(t->saved, sizeof(t->saved), "%.*s", (int)strcspn(buf, "\n"), buf);
	free(buf);
	return 0;
}

int mig_throttle_start(pid_t root, struct mig_throttle **out)
{
	static pid_t pids[MAX_PIDS];
	char mnt[PATH_MAX], cg[PATH_MAX];
	struct mig_throttle *t = calloc(1, sizeof(*t));
	int r;
	if (!t)
		return -ENOMEM;
	t->root = root;
	if ((r = cpu_cgroup(root, &t->v2, mnt, sizeof(mnt), cg, sizeof(cg))) < 0) {
		free(t);
		return pr_err_ret(r, "auto-converge: no cpu cgroup controller for %d", root);
	}
	size_t n = tree_pids(root, pids, MAX_PIDS);
	snprintf(t->orig, sizeof(t->orig), "%s%s", mnt, strcmp(cg, "/") ? cg : "");
	if (cgroup_own(t->orig, pids, n)) {
		snprintf(t->dir, sizeof(t->dir), "%s", t->orig);
	} else {
		if ((size_t)snprintf(t->dir, sizeof(t->dir), "%.*s/ferry-converge-%d",
				     (int)sizeof(t->orig) - 40, t->orig, root) >= sizeof(t->dir)) {
			free(t);
			return pr_err_ret(-ENAMETOOLONG, "auto-converge: cgroup path too long");
		}
		if (mkdir(t->dir, 0755) < 0 && errno != EEXIST) {
			r = pr_perror("auto-converge: cannot create cgroup '%s'", t->dir);
			free(t);
			return r;
		}
		if ((r = move_pids(t->dir, pids, n)) < 0) {
			(void)move_pids(t->orig, pids, n);
			rmdir(t->dir);
			free(t);
			return pr_err_ret(r, "auto-converge: cannot move the tree of %d into '%s'",
					  root, t->dir);
		}
		t->moved = true;
	}
	if ((r = quota_read(t)) < 0) {
		mig_throttle_stop(t);
		return pr_err_ret(r, "auto-converge: cannot read the cpu quota of '%s'", t->dir);
	}
	pr_info("auto-converge: tree of %d throttled through %s cgroup '%s'%s", root,
		t->v2 ? "v2" : "v1 cpu", t->dir,
		t->moved ? " (moved there for the migration)" : "");
	*out = t;
	return 0;
}

int mig_throttle_set(struct mig_throttle *t, int pct)
{
	char s[64];
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	if (pct < 0)
		pct = 0;
	if (pct > 99)
		pct = 99;
	long quota = (long)PERIOD_US * (ncpu > 0 ? ncpu : 1) * (100 - pct) / 100;
	int r;
	if (t->v2) {
		snprintf(s, sizeof(s), "%ld %d", quota, PERIOD_US);
		r = write_str(t->dir, "cpu.max", s);
	} else {
		snprintf(s, sizeof(s), "%d", PERIOD_US);
		r = write_str(t->dir, "cpu.cfs_period_us", s);
		snprintf(s, sizeof(s), "%ld", quota);
		if (r == 0)
			r = write_str(t->dir, "cpu.cfs_quota_us", s);
	}
	if (r < 0)
		return pr_err_ret(r, "auto-converge: cannot set the cpu quota of '%s'", t->dir);
	t->pct = pct;
	pr_info("auto-converge: tree of %d throttled by %d%%", t->root, pct);
	return 0;
}

int mig_throttle_pct(const struct mig_throttle *t)
{
	return t ? t->pct : 0;
}

void mig_throttle_stop(struct mig_throttle *t)
{
	static pid_t pids[MAX_PIDS];
	if (!t)
		return;
	if (t->saved[0] && write_str(t->dir, t->v2 ? "cpu.max" : "cpu.cfs_quota_us", t->saved) < 0)
		pr_warn("auto-converge: cannot restore the cpu quota of '%s'", t->dir);
	if (t->moved) {
		/* whatever is still in our cgroup goes back (a migrated tree is gone) */
		char path[2 * PATH_MAX + 128];
		size_t n = 0;
		snprintf(path, sizeof(path), "%s/cgroup.procs", t->dir);
		read_pids(path, pids, &n, MAX_PIDS);
		(void)move_pids(t->orig, pids, n);
		if (rmdir(t->dir) < 0 && errno != ENOENT)
			pr_warn("auto-converge: cannot remove cgroup '%s': %s", t->dir,
				strerror(errno));
	}
	free(t);
}
