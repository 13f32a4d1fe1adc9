/*
 * sender: io_uring send pipeline, lz4, adaptive compression, rate limit, progress.
 * See sender.h for the contract and docs/transport.md for the measured behaviour.
 *
 * Pipeline: frames are prepared into one half of a slot table (at most HALF frames)
 * while the other half's chain is in flight; only one chain is in flight at a time, so
 * the byte stream keeps frame order without depending on io_uring's issue order. A chain
 * is one SENDMSG of its frames' iovecs with MSG_WAITALL: the kernel resumes partial
 * sends itself; if it still completes short (signal, error), the rest is sent with
 * plain sendmsg before anything else. One SENDMSG per chain measured a little faster
 * than one linked SQE per frame (docs/transport.md).
 */
#include <errno.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <liburing.h>
#include <lz4.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "pageserver/sender.h"
#include "pageserver/wire.h"

#define HALF	     8		  /* frames per chain */
#define NSLOT	     (2 * HALF)	  /* two chains: one in flight, one being prepared */
#define RING_DEPTH   8		  /* one SENDMSG in flight (and a ZC notification) */
#define PROBE_LEN    (256u << 10) /* auto: bytes of a chunk compressed as a sample */
#define PROBE_BUDGET 0.01	  /* auto: at most this share of the time spent sampling */
#define MIN_SAMPLE   (64u << 10)  /* auto: smaller writes do not update the estimates */
#define ON_MARGIN    1.15	  /* auto: compress only when estimated 15% faster */
#define EWMA	     0.25

struct slot {
	uint8_t hdr[PS_HDR_SIZE];
	struct iovec iov[2];
	struct msghdr mh;
	size_t len; /* header + payload */
	uint8_t *z; /* compression output (LZ4_compressBound(PS_MAX_CHUNK)), lazily */
};

struct ps_sender {
	int fd, mode, timeout_ms;
	bool lz4_ok;
	bool zc;	/* SENDMSG_ZC (see ps_sender_new) */
	bool same_host; /* the peer is on this host (loopback, own address, unix) */
	struct io_uring ring;
	bool ring_ok;
	int err; /* sticky */
	struct slot slot[NSLOT];
	int fl_first, fl_n;	     /* in-flight chain: slots [fl_first, fl_first + fl_n) */
	struct iovec ciov[2 * HALF]; /* its iovecs, in frame order */
	struct msghdr cmh;
	uint64_t fl_t0, fl_wire;	   /* its submit time and bytes */
	uint64_t fl_cpu, fl_delay, fl_lz4; /* at submit (auto): thread CPU, run delay, lz4 ns */
	bool fl_sched;			   /* fl_cpu and fl_delay were read */
	bool fl_overlap;		   /* something was compressed while it was in flight */
	bool fl_paid;			   /* its bytes were taken from the rate limiter */
	uint8_t *probe;			   /* scratch for samples */
	uint64_t probe_next_ns;		   /* auto: time of the next sample */
	struct ps_send_stats st;
	double est_idle; /* auto: share of a chain's time the thread sleeps (EWMA, 0..1) */
	/* progress */
	bool prog;
	uint64_t prog_total, prog_last_ns, prog_t0;
	uint64_t prog_mark_ns, prog_mark_bytes; /* the last ps_sender_expect: rate since then */
	bool prog_shown;
};

/* ---- compression mode and the auto decision ------------------------------------- */

int ps_compress_parse(const char *s)
{
	if (!strcmp(s, "off"))
		return PS_COMPRESS_OFF;
	if (!strcmp(s, "on"))
		return PS_COMPRESS_ON;
	if (!strcmp(s, "auto"))
		return PS_COMPRESS_AUTO;
	return -EINVAL;
}

const char *ps_compress_name(int mode)
{
	return mode == PS_COMPRESS_ON ? "on" : mode == PS_COMPRESS_AUTO ? "auto" : "off";
}

static void ewma(double *est, double v)
{
	*est = *est > 0 ? *est + EWMA * (v - *est) : v;
}

/* Per raw byte, off costs 1/link. On costs the compression (1/lz4) and the smaller
 * chain (ratio/link), and they overlap only where the sending thread would sleep: a
 * chain's time is its CPU part (the copy into the socket runs in this thread: inline at
 * submit or as io_uring task work when it waits) plus its idle part (share est_idle:
 * waiting for the peer, the NIC or the rate limiter), and compression can only fill the
 * idle part: on = (1 - idle) * wire + max(lz4, idle * wire). On a CPU-bound link
 * (loopback) idle ~ 0 and compression must pay for itself serially; on a limited link
 * idle ~ 1 and it overlaps. On only when that wins by ON_MARGIN: estimation error must
 * not make a round slower than off. */
static void auto_decide(struct ps_sender *s)
{
	struct ps_send_stats *st = &s->st;
	if (st->est_link <= 0 || st->est_lz4 <= 0 || st->est_ratio <= 0)
		return;
	double t_off = 1.0 / st->est_link, idle = s->est_idle;
	double t_lz = 1.0 / st->est_lz4, t_wire = st->est_ratio / st->est_link;
	double t_on = (1 - idle) * t_wire + (t_lz > idle * t_wire ? t_lz : idle * t_wire);
	bool on = t_on * ON_MARGIN < t_off;
	if (on != st->on) {
		st->switches++;
		pr_debug("lz4 %s: link %.0f MB/s, lz4 %.0f MB/s, ratio %.2f", on ? "on" : "off",
			 st->est_link / 1e6, st->est_lz4 / 1e6, st->est_ratio);
	}
	st->on = on;
}

/* Compress src into dst; records speed and ratio. Returns the compressed size or 0
 * when it does not fit/shrink. */
static size_t lz4_run(struct ps_sender *s, const uint8_t *src, size_t len, uint8_t *dst, int cap)
{
	uint64_t t0 = now_ns();
	int n = LZ4_compress_fast((const char *)src, (char *)dst, (int)len, cap, 1);
	uint64_t dt = now_ns() - t0;
	s->st.lz4_ns += dt;
	if (len >= MIN_SAMPLE) { /* a few bytes of metadata time nothing but the call */
		if (dt)
			ewma(&s->st.est_lz4, len * 1e9 / dt);
		ewma(&s->st.est_ratio, n > 0 ? (double)n / len : 1.0);
	}
	return n > 0 && (size_t)n < len ? (size_t)n : 0;
}

static bool rate_limited(void);

/* Auto is held off (no compression, no samples) while the peer is on this host and the
 * link is not rate limited: the "link" is then a memory copy on the same CPUs, and
 * compressing (and the server decompressing) can only add work to them. Measured on
 * this 2-core machine, auto's estimates (a link slowed by the CPUs it shares) turned
 * lz4 on now and then, and each chunk compressed made the round slower
 * (docs/transport.md). */
static bool auto_held(const struct ps_sender *s)
{
	return s->same_host && !rate_limited();
}

/* Auto while off: compress the head of a chunk now and then, to follow the data. The
 * next sample comes once sampling would cost at most PROBE_BUDGET of the time (by the
 * clock, not by bytes: a link estimate is not needed for it, and a sample slowed by
 * preemption only delays the next one a little). */
static void auto_probe(struct ps_sender *s, const uint8_t *buf, size_t len)
{
	uint64_t t0 = now_ns();
	if (t0 < s->probe_next_ns || len < MIN_SAMPLE)
		return;
	size_t n = len < PROBE_LEN ? len : PROBE_LEN;
	(void)lz4_run(s, buf, n, s->probe, LZ4_compressBound(PROBE_LEN));
	uint64_t dt = now_ns() - t0;
	s->st.probes++;
	uint64_t gap = (uint64_t)(dt / PROBE_BUDGET);
	if (gap > 200000000ull) /* every 0.2 s at least */
		gap = 200000000ull;
	s->probe_next_ns = t0 + gap;
	auto_decide(s);
}

/* ---- frames in slots -------------------------------------------------------------- */

static void slot_set(struct slot *sl, unsigned type, uint16_t flags, uint32_t file, const void *buf,
		     size_t len, uint32_t raw_len)
{
	struct ps_hdr h = { .magic = PS_FRAME_MAGIC,
			    .type = type,
			    .flags = flags,
			    .len = len,
			    .file = file,
			    .raw_len = raw_len };
	ps_hdr_encode(&h, sl->hdr);
	sl->iov[0] = (struct iovec){ sl->hdr, PS_HDR_SIZE };
	sl->iov[1] = (struct iovec){ (void *)buf, len };
	memset(&sl->mh, 0, sizeof(sl->mh));
	sl->mh.msg_iov = sl->iov;
	sl->mh.msg_iovlen = len ? 2 : 1;
	sl->len = PS_HDR_SIZE + len;
}

/* One chunk of file data into a slot: raw, or lz4 when the mode says so. */
static int slot_data(struct ps_sender *s, struct slot *sl, uint32_t file, const uint8_t *buf,
		     size_t len, bool overlap)
{
	bool aut = s->lz4_ok && s->mode == PS_COMPRESS_AUTO;
	if (aut && auto_held(s)) {
		aut = false;
		s->st.on = false;
	}
	bool try = s->lz4_ok && (s->mode == PS_COMPRESS_ON || (aut && s->st.on));
	s->st.chunks++;
	s->st.bytes += len;
	if (aut && !s->st.on)
		auto_probe(s, buf, len);
	if (try) {
		int cap = LZ4_compressBound(PS_MAX_CHUNK);
		if (!sl->z && !(sl->z = malloc(cap)))
			return -ENOMEM;
		size_t n = lz4_run(s, buf, len, sl->z, cap);
		s->fl_overlap |= overlap;
		if (aut)
			auto_decide(s);
		if (n) {
			s->st.lz4_chunks++;
			s->st.lz4_in += len;
			s->st.lz4_out += n;
			slot_set(sl, PS_FILE_DATA, PS_F_LZ4, file, sl->z, n, len);
			return 0;
		}
	}
	slot_set(sl, PS_FILE_DATA, 0, file, buf, len, len);
	return 0;
}

/* ---- rate limit ------------------------------------------------------------------- */

static pthread_mutex_t g_rate_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t g_rate, g_rate_last;
static double g_tokens;

void ps_sender_set_rate(uint64_t bytes_per_s)
{
	pthread_mutex_lock(&g_rate_lock);
	g_rate = bytes_per_s;
	g_rate_last = now_ns();
	g_tokens = 0;
	pthread_mutex_unlock(&g_rate_lock);
}

/* Take n tokens; wait (this is the limiter's purpose) until the bucket covers them.
 * Returns whether it waited. */
static bool rate_take(uint64_t n)
{
	pthread_mutex_lock(&g_rate_lock);
	if (!g_rate) {
		pthread_mutex_unlock(&g_rate_lock);
		return false;
	}
	uint64_t now = now_ns();
	double burst = g_rate / 20.0 > 2.0 * PS_MAX_CHUNK ? g_rate / 20.0 : 2.0 * PS_MAX_CHUNK;
	g_tokens += (now - g_rate_last) * (double)g_rate / 1e9;
	if (g_tokens > burst)
		g_tokens = burst;
	g_rate_last = now;
	g_tokens -= n;
	double wait_s = g_tokens < 0 ? -g_tokens / g_rate : 0;
	pthread_mutex_unlock(&g_rate_lock);
	if (wait_s > 0) {
		struct timespec ts = { (time_t)wait_s, (long)((wait_s - (time_t)wait_s) * 1e9) };
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
	return wait_s > 0;
}

static bool rate_limited(void)
{
	pthread_mutex_lock(&g_rate_lock);
	bool r = g_rate != 0;
	pthread_mutex_unlock(&g_rate_lock);
	return r;
}

/* ---- the chain in flight ------------------------------------------------------------ */

/* Finish the chain from byte `done` with plain sendmsg calls (after a short io_uring
 * send: only an error or a signal ends MSG_WAITALL early on a stream socket). */
static int send_rest(struct ps_sender *s, size_t done)
{
	struct iovec iov[2 * HALF];
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = s->cmh.msg_iovlen };
	memcpy(iov, s->ciov, mh.msg_iovlen * sizeof(*iov));
	for (;;) {
		while (mh.msg_iovlen && done >= mh.msg_iov[0].iov_len) {
			done -= mh.msg_iov[0].iov_len;
			mh.msg_iov++;
			mh.msg_iovlen--;
		}
		if (!mh.msg_iovlen)
			return 0;
		mh.msg_iov[0].iov_base = (uint8_t *)mh.msg_iov[0].iov_base + done;
		mh.msg_iov[0].iov_len -= done;
		done = 0;
		ssize_t w = sendmsg(s->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && errno == EAGAIN) {
			struct pollfd p = { .fd = s->fd, .events = POLLOUT };
			int r = poll(&p, 1, s->timeout_ms);
			if (r == 0)
				return -ETIMEDOUT;
			if (r < 0 && errno != EINTR)
				return -errno;
		} else if (w < 0 && errno != EINTR) {
			return -errno;
		} else if (w > 0) {
			done = w;
		}
	}
}

/* This thread's CPU time and time spent runnable waiting for a CPU, in ns
 * (/proc/thread-self/schedstat); false when unreadable. */
static bool thread_sched(uint64_t *cpu, uint64_t *delay)
{
	char buf[96];
	int fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	unsigned long long c, d;
	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return false;
	buf[n] = 0;
	if (sscanf(buf, "%llu %llu", &c, &d) != 2)
		return false;
	*cpu = c;
	*delay = d;
	return true;
}

/* Submit slots [first, first + n) as one SENDMSG of their iovecs (headers and
 * payloads in order): one operation in flight keeps the stream in order. */
static int chain_submit(struct ps_sender *s, int first, int n)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
	if (!sqe)
		return -EBUSY; /* never: one operation in flight at a time */
	uint64_t wire = 0;
	size_t k = 0;
	for (int i = first; i < first + n; i++) {
		for (size_t j = 0; j < s->slot[i].mh.msg_iovlen; j++)
			s->ciov[k++] = s->slot[i].iov[j];
		wire += s->slot[i].len;
	}
	memset(&s->cmh, 0, sizeof(s->cmh));
	s->cmh.msg_iov = s->ciov;
	s->cmh.msg_iovlen = k;
	if (s->zc)
		io_uring_prep_sendmsg_zc(sqe, s->fd, &s->cmh, MSG_WAITALL | MSG_NOSIGNAL);
	else
		io_uring_prep_sendmsg(sqe, s->fd, &s->cmh, MSG_WAITALL | MSG_NOSIGNAL);
	/* the clock starts before submit: the inline attempt may send most of the chain */
	uint64_t t0 = now_ns();
	int r = io_uring_submit(&s->ring);
	if (r < 0)
		return r;
	if (r != 1)
		return -EIO;
	s->fl_first = first;
	s->fl_n = n;
	s->fl_t0 = t0;
	s->fl_wire = wire;
	s->fl_overlap = false;
	s->fl_paid = false;
	s->fl_sched = s->mode == PS_COMPRESS_AUTO && s->lz4_ok && !auto_held(s) &&
		      thread_sched(&s->fl_cpu, &s->fl_delay);
	s->fl_lz4 = s->st.lz4_ns;
	return 0;
}

/* The link rate from a completed chain. Exact when we waited for it or did nothing
 * else meanwhile; otherwise only a lower bound (it finished before we looked), which
 * may only raise the estimate (that errs towards "off"). */
static void chain_measure(struct ps_sender *s, bool blocked)
{
	uint64_t dt = now_ns() - s->fl_t0;
	if (s->fl_wire < PS_MAX_CHUNK || !dt)
		return;
	double rate = s->fl_wire * 1e9 / dt;
	if (blocked || !s->fl_overlap || rate > s->st.est_link)
		ewma(&s->st.est_link, rate);
	uint64_t cpu, delay;
	if ((blocked || !s->fl_overlap) && s->fl_sched && thread_sched(&cpu, &delay)) {
		/* idle: neither running (minus the compression done meanwhile, which
		 * filled idle time) nor waiting for a CPU (preempted: no CPU to fill) */
		double busy = (double)(cpu - s->fl_cpu) - (double)(s->st.lz4_ns - s->fl_lz4);
		double idle = (dt - (busy > 0 ? busy : 0) - (double)(delay - s->fl_delay)) / dt;
		s->est_idle += EWMA * ((idle < 0 ? 0 : idle > 1 ? 1 : idle) - s->est_idle);
	}
	if (s->mode == PS_COMPRESS_AUTO && s->lz4_ok && !auto_held(s))
		auto_decide(s);
}

/* Wait for the chain's completion (and, with SENDMSG_ZC, the kernel's notification
 * that it let go of the buffers): its result in *res. */
static int chain_reap(struct ps_sender *s, bool *blocked, int *res)
{
	uint64_t t0 = now_ns();
	int notifs = 0;
	for (bool got = false; !got || notifs > 0;) {
		struct io_uring_cqe *cqe;
		int r = io_uring_peek_cqe(&s->ring, &cqe);
		if (r == -EAGAIN) {
			struct __kernel_timespec ts = { s->timeout_ms / 1000,
							(s->timeout_ms % 1000) * 1000000LL };
			*blocked = true;
			r = io_uring_wait_cqe_timeout(&s->ring, &cqe, &ts);
		}
		if (r == -EINTR)
			continue;
		if (r == -ETIME)
			return -ETIMEDOUT;
		if (r < 0)
			return r;
		if (cqe->flags & IORING_CQE_F_NOTIF) {
			notifs--;
		} else {
			*res = cqe->res;
			notifs += !!(cqe->flags & IORING_CQE_F_MORE);
			got = true;
		}
		io_uring_cqe_seen(&s->ring, cqe);
	}
	s->st.send_ns += now_ns() - t0;
	return 0;
}

/* Wait until the chain in flight is completely sent (finishing a short send). */
static int chain_wait(struct ps_sender *s)
{
	if (!s->fl_n)
		return 0;
	bool blocked = false;
	int res = 0;
	/* A limited link: the chain counts as in flight until the bucket covers it; the
	 * wait comes after the next chain was prepared, so lz4 overlaps it. */
	if (!s->fl_paid) {
		s->fl_paid = true;
		blocked = rate_take(s->fl_wire);
	}
	int r = chain_reap(s, &blocked, &res);
	s->fl_n = 0;
	if (r < 0)
		return r;
	if (res < 0)
		return res;
	if ((uint64_t)res == s->fl_wire) {
		chain_measure(s, blocked);
		return 0;
	}
	return send_rest(s, (size_t)res);
}

static int chain_go(struct ps_sender *s, int first, int n)
{
	int r = chain_submit(s, first, n);
	if (r == 0)
		s->st.wire += s->fl_wire;
	return r;
}

/* ---- progress ----------------------------------------------------------------------- */

static void human(char *buf, size_t sz, double b)
{
	const char *u[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	int i = 0;
	while (b >= 1024 && i < 4) {
		b /= 1024;
		i++;
	}
	snprintf(buf, sz, "%.1f %s", b, u[i]);
}

static void progress_tick(struct ps_sender *s, bool force)
{
	if (!s->prog)
		return;
	uint64_t now = now_ns();
	if (!force && now - s->prog_last_ns < 250000000ull)
		return;
	s->prog_last_ns = now;
	/* the rate since the last announcement (the copy's), else since the round began */
	uint64_t t0 = s->prog_mark_ns ? s->prog_mark_ns : s->prog_t0;
	uint64_t b0 = s->prog_mark_ns ? s->prog_mark_bytes : 0;
	double dt = (now - t0) / 1e9, rate = dt > 0 ? (s->st.bytes - b0) / dt : 0;
	char b[32], r[32];
	human(b, sizeof(b), s->st.bytes);
	human(r, sizeof(r), rate);
	if (s->prog_total > s->st.bytes) {
		/* the total is the dump's announcement (an upper bound): past it, the plain
		 * line below */
		char t[32], eta[32] = "";
		human(t, sizeof(t), s->prog_total);
		if (rate > 0 && dt >= 0.2) /* a rate over a few updates, not a first blip */
			snprintf(eta, sizeof(eta), ", ETA %.0f s",
				 (s->prog_total - s->st.bytes) / rate);
		fprintf(stderr, "\r\033[Kpage server: %s of %s (%.0f%%), %s/s%s", b, t,
			100.0 * s->st.bytes / s->prog_total, r, eta);
	} else {
		fprintf(stderr, "\r\033[Kpage server: %s sent, %s/s", b, r);
	}
	s->prog_shown = true;
}

void ps_sender_progress(struct ps_sender *s, bool on, uint64_t total)
{
	s->prog = on && isatty(STDERR_FILENO);
	s->prog_total = total;
	s->prog_t0 = s->prog_last_ns = now_ns();
}

void ps_sender_expect(struct ps_sender *s, uint64_t bytes)
{
	uint64_t base = s->prog_total > s->st.bytes ? s->prog_total : s->st.bytes;
	s->prog_total = bytes > UINT64_MAX - base ? UINT64_MAX : base + bytes;
	s->prog_mark_ns = now_ns();
	s->prog_mark_bytes = s->st.bytes;
	progress_tick(s, true);
}

void ps_sender_progress_end(struct ps_sender *s)
{
	if (s->prog_shown)
		fprintf(stderr, "\r\033[K");
	s->prog_shown = false;
}

/* ---- public calls --------------------------------------------------------------------- */

/* Whether the peer of the connected socket fd is on this host: a unix socket, a
 * loopback address (127/8, ::1, ::ffff:127/104), or the socket's own address. */
static bool peer_same_host(int fd)
{
	struct sockaddr_storage a = { 0 }, b = { 0 };
	socklen_t al = sizeof(a), bl = sizeof(b);
	if (getpeername(fd, (struct sockaddr *)&a, &al) < 0 ||
	    getsockname(fd, (struct sockaddr *)&b, &bl) < 0 || a.ss_family != b.ss_family)
		return false;
	if (a.ss_family == AF_INET) {
		uint32_t p = ntohl(((struct sockaddr_in *)&a)->sin_addr.s_addr);
		return p >> 24 == 127 || p == ntohl(((struct sockaddr_in *)&b)->sin_addr.s_addr);
	}
	if (a.ss_family == AF_INET6) {
		const struct in6_addr *p = &((struct sockaddr_in6 *)&a)->sin6_addr;
		const struct in6_addr *l = &((struct sockaddr_in6 *)&b)->sin6_addr;
		return IN6_IS_ADDR_LOOPBACK(p) || !memcmp(p, l, sizeof(*p)) ||
		       (IN6_IS_ADDR_V4MAPPED(p) && p->s6_addr[12] == 127);
	}
	return a.ss_family == AF_UNIX;
}

int ps_sender_new(int fd, int mode, bool lz4_ok, int timeout_ms, struct ps_sender **out)
{
	struct ps_sender *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->fd = fd;
	s->mode = mode;
	s->lz4_ok = lz4_ok && mode != PS_COMPRESS_OFF;
	s->timeout_ms = timeout_ms > 0 ? timeout_ms : 60000;
	s->st.on = s->lz4_ok && mode == PS_COMPRESS_ON;
	int r = io_uring_queue_init(RING_DEPTH, &s->ring, 0);
	if (r < 0) {
		free(s);
		return pr_err_ret(r, "cannot set up io_uring for the page server connection");
	}
	s->ring_ok = true;
	/* SENDMSG_ZC measured slower than SENDMSG on loopback here (docs/transport.md):
	 * off by default; FERRY_SEND_ZC=1 turns it on to measure it on a real NIC */
	s->zc = getenv("FERRY_SEND_ZC") != NULL;
	s->same_host = s->st.same_host = peer_same_host(fd);
	if (s->lz4_ok && !(s->probe = malloc(LZ4_compressBound(PROBE_LEN)))) {
		ps_sender_free(s);
		return -ENOMEM;
	}
	/* touched now: first-touch faults in a sample would read as a slow lz4 */
	if (s->probe)
		memset(s->probe, 0, LZ4_compressBound(PROBE_LEN));
	*out = s;
	return 0;
}

void ps_sender_free(struct ps_sender *s)
{
	if (!s)
		return;
	ps_sender_progress_end(s);
	if (s->ring_ok)
		io_uring_queue_exit(&s->ring);
	for (int i = 0; i < NSLOT; i++)
		free(s->slot[i].z);
	free(s->probe);
	free(s);
}

int ps_sender_frame(struct ps_sender *s, unsigned type, uint32_t file, const void *buf, size_t len)
{
	if (s->err)
		return s->err;
	int r = chain_wait(s);
	if (r == 0) {
		slot_set(&s->slot[0], type, 0, file, buf, len, 0);
		r = chain_go(s, 0, 1);
	}
	if (r == 0)
		r = chain_wait(s);
	if (r < 0)
		s->err = r;
	return r;
}

int ps_sender_data(struct ps_sender *s, uint32_t file, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	int r = s->err;
	while (len && r == 0) {
		int base = s->fl_n && s->fl_first < HALF ? HALF : 0;
		int max = rate_limited() ? 1 : HALF, n = 0;
		for (; len && n < max && r == 0; n++) {
			size_t c = len < PS_MAX_CHUNK ? len : PS_MAX_CHUNK;
			r = slot_data(s, &s->slot[base + n], file, p, c, s->fl_n > 0);
			p += c;
			len -= c;
		}
		if (r == 0)
			r = chain_wait(s);
		if (r == 0)
			r = chain_go(s, base, n);
		progress_tick(s, false);
	}
	if (r == 0)
		r = chain_wait(s);
	if (r < 0)
		s->err = r;
	return r;
}

void ps_sender_stats(const struct ps_sender *s, struct ps_send_stats *st)
{
	*st = s->st;
	st->est_idle = s->est_idle;
}

void ps_sender_stats_reset(struct ps_sender *s)
{
	struct ps_send_stats *st = &s->st;
	st->bytes = st->wire = st->chunks = st->lz4_chunks = 0;
	st->lz4_in = st->lz4_out = st->probes = st->switches = 0;
	st->send_ns = st->lz4_ns = 0;
	s->prog_t0 = now_ns();
	s->prog_total = 0;
	s->prog_mark_ns = s->prog_mark_bytes = 0;
}
