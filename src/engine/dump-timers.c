/*
 * dump-timers: the POSIX timers (timer_create) of one process.
 *
 * /proc/PID/timers lists every timer with its id, signal, sigev_value, notification
 * and clock (kernel fs/proc/base.c show_timer: "ID: n", "signal: signo/value-hex",
 * "notify: signal|none|thread/pid|tid.N", "ClockID: n"); the remaining time, interval
 * and overrun only the process itself can ask for, so timer_gettime and
 * timer_getoverrun are injected (leader's remote session, read-only calls).
 * A process with timers is never dumped without them: a timer we cannot parse or
 * query fails the dump.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>

#include "common/log.h"
#include "common/util.h"
#include "engine/dump.h"

#define MAX_PTIMERS	 4096
#define SIGEV_THREAD_ID_ 4

/* Parse one "key: value" line into the timer being built. 0 or -EINVAL. */
static int timer_line(const char *line, struct dump_ptimer *t)
{
	unsigned long long v;
	char how[16], who[8];
	int n;

	if (sscanf(line, "signal: %d/%llx", &n, &v) == 2) {
		t->signo = n;
		t->value = v;
	} else if (sscanf(line, "notify: %15[a-z]/%7[a-z].%d", how, who, &n) == 3) {
		if (!strcmp(how, "signal"))
			t->notify = SIGEV_SIGNAL;
		else if (!strcmp(how, "none"))
			t->notify = SIGEV_NONE;
		else if (!strcmp(how, "thread"))
			t->notify = SIGEV_THREAD;
		else
			return -EINVAL;
		if (!strcmp(who, "tid")) {
			t->notify |= SIGEV_THREAD_ID_;
			t->notify_tid = n;
		}
	} else if (sscanf(line, "ClockID: %d", &n) == 1) {
		t->clock = n;
	} else {
		return -EINVAL;
	}
	return 0;
}

/* All timers of /proc/PID/timers into c->rs.ptimers (values still zero). */
static int ptimers_parse(struct dump_ctx *c)
{
	char path[64], *buf, *save = NULL;
	size_t len;
	int r;

	snprintf(path, sizeof(path), "/proc/%d/timers", c->pid);
	if ((r = read_file(path, &buf, &len, 4u << 20)) < 0)
		return pr_err_ret(r, "cannot read %s", path);
	for (char *l = strtok_r(buf, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		int id;
		if (sscanf(l, "ID: %d", &id) == 1) {
			if (c->rs.n_ptimers == MAX_PTIMERS) {
				r = pr_err_ret(-EOPNOTSUPP,
					       "process %d has more than %d POSIX timers", c->pid,
					       MAX_PTIMERS);
				break;
			}
			struct dump_ptimer *n =
				realloc(c->rs.ptimers, (c->rs.n_ptimers + 1) * sizeof(*n));
			if (!n) {
				r = -ENOMEM;
				break;
			}
			c->rs.ptimers = n;
			memset(&n[c->rs.n_ptimers], 0, sizeof(*n));
			n[c->rs.n_ptimers++].id = id;
		} else if (!c->rs.n_ptimers ||
			   timer_line(l, &c->rs.ptimers[c->rs.n_ptimers - 1]) < 0) {
			r = pr_err_ret(-EINVAL, "process %d: unexpected line '%s' in %s", c->pid, l,
				       path);
			break;
		}
	}
	free(buf);
	return r;
}

int dump_ptimers(struct dump_ctx *c, uint64_t scratch)
{
	int r = ptimers_parse(c);
	for (size_t i = 0; r == 0 && i < c->rs.n_ptimers; i++) {
		struct dump_ptimer *t = &c->rs.ptimers[i];
		struct itimerspec its;
		long v = rcall2(&c->rt, SYS_timer_gettime, t->id, scratch);
		if (v < 0 && v >= -4095)
			return pr_err_ret((int)v, "process %d: timer_gettime of POSIX timer %u",
					  c->pid, t->id);
		if ((r = remote_read(&c->rt, scratch, &its, sizeof(its))) < 0)
			return r;
		t->isec = its.it_interval.tv_sec;
		t->insec = its.it_interval.tv_nsec;
		t->vsec = its.it_value.tv_sec;
		t->vnsec = its.it_value.tv_nsec;
		v = rcall1(&c->rt, SYS_timer_getoverrun, t->id);
		if (v < 0 && v >= -4095)
			return pr_err_ret((int)v, "process %d: timer_getoverrun of POSIX timer %u",
					  c->pid, t->id);
		t->overrun = v;
		pr_debug("process %d: POSIX timer %u clock %u notify %#x sig %u value %#llx: "
			 "%llu.%09llu / %llu.%09llu",
			 c->pid, t->id, t->clock, t->notify, t->signo, (unsigned long long)t->value,
			 (unsigned long long)t->vsec, (unsigned long long)t->vnsec,
			 (unsigned long long)t->isec, (unsigned long long)t->insec);
	}
	return r;
}
