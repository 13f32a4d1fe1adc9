/*
 * fd-timerfd: timerfd descriptions (anon_inode:[timerfd]).
 *
 * Dump: fdinfo "clockid:", "ticks:" (expirations not read yet), "settime flags:",
 * "it_value: (s, ns)" (remaining time, relative) and "it_interval: (s, ns)", plus the
 * clock's time at the dump (for TFD_TIMER_ABSTIME on the realtime clocks).
 * Restore (stub): timerfd_create(clockid), timerfd_settime:
 *  - relative timers get their remaining time (the time the process was frozen is not
 *    counted, as for every other relative timer of the task);
 *  - TFD_TIMER_ABSTIME on CLOCK_REALTIME(_ALARM) gets the same absolute deadline as
 *    before (dump time + remaining); on the other clocks (whose origin differs across
 *    boots) now + remaining, still as an absolute setting;
 *  - a periodic timer that expired and was not read shows no remaining time (the kernel
 *    re-arms it on read): it is armed for one interval;
 * then the unread expirations are put back with the TFD_IOC_SET_TICKS ioctl
 * (CONFIG_CHECKPOINT_RESTORE); a kernel without it fails the restore when ticks > 0.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "fs/fs-priv.h"

#ifndef TFD_IOC_SET_TICKS
#define TFD_IOC_SET_TICKS _IOW('T', 0, uint64_t)
#endif
#ifndef TFD_TIMER_CANCEL_ON_SET
#define TFD_TIMER_CANCEL_ON_SET (1 << 1)
#endif
#define NSEC	       1000000000ULL
#define TIMERFD_MAX_NS (100ULL * 365 * 24 * 3600 * NSEC) /* bound for images */

static bool timerfd_match(const struct fd_parms *p)
{
	return fs_is_anon(p, "timerfd");
}

static int parse_ts(const char *buf, const char *key, uint64_t *ns)
{
	unsigned long long s, n;
	const char *v = fs_fdinfo_field(buf, key);
	if (!v || sscanf(v, "(%llu, %llu)", &s, &n) != 2 || n >= NSEC || s > TIMERFD_MAX_NS / NSEC)
		return -EINVAL;
	*ns = s * NSEC + n;
	return 0;
}

static int timerfd_dump(struct fs_dump *d, const struct fd_parms *p, FileEntry *fe)
{
	char *buf;
	uint64_t clk, ticks, sflags;
	struct timespec now;
	TimerfdFileEntry *te = malloc(sizeof(*te));
	if (!te)
		return -ENOMEM;
	timerfd_file_entry__init(te);
	fe->timerfd = te;
	int r = fs_fdinfo_read(p, &buf);
	if (r < 0)
		return r;
	if (fs_fdinfo_u64(buf, "clockid", 10, &clk) < 0 ||
	    fs_fdinfo_u64(buf, "ticks", 10, &ticks) < 0 ||
	    fs_fdinfo_u64(buf, "settime flags", 8, &sflags) < 0 ||
	    parse_ts(buf, "it_value", &te->value_ns) < 0 ||
	    parse_ts(buf, "it_interval", &te->interval_ns) < 0 || clk > 64 || sflags > 0xff)
		r = pr_err_ret(-EINVAL, "PID %d fd %d: timerfd: cannot parse fdinfo", p->pid,
			       p->fd);
	free(buf);
	if (r < 0)
		return r;
	if (clock_gettime((clockid_t)clk, &now) < 0)
		return pr_perror("PID %d fd %d: timerfd: clock %llu", p->pid, p->fd,
				 (unsigned long long)clk);
	te->flags = p->flags;
	te->clockid = (int32_t)clk;
	te->settime_flags = (uint32_t)sflags;
	te->ticks = ticks;
	te->now_ns = (uint64_t)now.tv_sec * NSEC + (uint64_t)now.tv_nsec;
	return 0;
}

static int timerfd_prepare(struct fs_rst *r, const FileEntry *fe, struct rst_file *f)
{
	const TimerfdFileEntry *te = fe->timerfd;
	if (!te)
		return pr_err_ret(-EBADMSG, "files.img: id %u has no timerfd part", fe->id);
	int c = te->clockid;
	if ((c != CLOCK_REALTIME && c != CLOCK_MONOTONIC && c != CLOCK_BOOTTIME &&
	     c != CLOCK_REALTIME_ALARM && c != CLOCK_BOOTTIME_ALARM) ||
	    (te->settime_flags & ~(uint32_t)(TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET)) ||
	    te->value_ns > TIMERFD_MAX_NS || te->interval_ns > TIMERFD_MAX_NS ||
	    te->now_ns > UINT64_MAX / 2)
		return pr_err_ret(-EBADMSG, "files.img: id %u: bad timerfd", fe->id);
	TimerfdFileEntry *copy = malloc(sizeof(*copy));
	if (!copy)
		return -ENOMEM;
	*copy = *te;
	f->kd = copy;
	f->flags = fs_sanitize_flags(te->flags);
	return 0;
}

static struct timespec ns_ts(uint64_t ns)
{
	return (struct timespec){ .tv_sec = (time_t)(ns / NSEC), .tv_nsec = (long)(ns % NSEC) };
}

/* Stub: arm fd as dumped. */
static int timerfd_arm(int fd, const TimerfdFileEntry *te, char *err, size_t errlen)
{
	uint64_t value = te->value_ns;
	int abs = te->settime_flags & TFD_TIMER_ABSTIME;
	struct timespec now;
	if (!value && te->interval_ns)
		value = te->interval_ns; /* expired periodic timer: next period */
	if (!value)
		return 0;
	if (abs && (te->clockid == CLOCK_REALTIME || te->clockid == CLOCK_REALTIME_ALARM)) {
		value += te->now_ns;
	} else if (abs) {
		if (clock_gettime(te->clockid, &now) < 0)
			return fs_stub_err(err, errlen, errno, "timerfd: clock_gettime: %m");
		value += (uint64_t)now.tv_sec * NSEC + (uint64_t)now.tv_nsec;
	}
	struct itimerspec its = { .it_value = ns_ts(value), .it_interval = ns_ts(te->interval_ns) };
	if (timerfd_settime(fd, (int)te->settime_flags, &its, NULL) < 0)
		return fs_stub_err(err, errlen, errno, "timerfd_settime: %m");
	return 0;
}

static int timerfd_open(struct fs_rst *r, struct rst_file *f, int base, char *err, size_t errlen)
{
	const TimerfdFileEntry *te = f->kd;
	int fd = timerfd_create(te->clockid, TFD_CLOEXEC | TFD_NONBLOCK), e;
	if (fd < 0)
		return fs_stub_err(err, errlen, errno, "timerfd_create(%d): %m", te->clockid);
	if ((fd = fs_stub_move_high(fd, base)) < 0)
		return fs_stub_err(err, errlen, -fd, "timerfd: no fd above %d", base);
	if ((e = timerfd_arm(fd, te, err, errlen)) < 0)
		return e;
	uint64_t ticks = te->ticks;
	if (ticks && ioctl(fd, TFD_IOC_SET_TICKS, &ticks) < 0)
		return fs_stub_err(err, errlen, errno, "timerfd: TFD_IOC_SET_TICKS %llu: %m",
				   (unsigned long long)ticks);
	if (fcntl(fd, F_SETFL, (int)(f->flags & O_NONBLOCK)) < 0)
		return fs_stub_err(err, errlen, errno, "timerfd: F_SETFL: %m");
	return fd;
}

static void timerfd_release(struct rst_file *f)
{
	free(f->kd);
	f->kd = NULL;
}

const struct fd_ops fd_timerfd_ops = {
	.name = "timerfd",
	.kind = FD_KIND__FDK_TIMERFD,
	.match = timerfd_match,
	.dump = timerfd_dump,
	.prepare = timerfd_prepare,
	.open = timerfd_open,
	.release = timerfd_release,
};
