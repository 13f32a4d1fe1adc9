/*
 * tcp: TCP_REPAIR on one socket: read an established connection's state at dump, and
 * rebuild it on a fresh socket at restore. The order of the calls is the kernel's
 * contract (measured on 6.18, docs/net.md):
 *
 * dump (socket in repair mode, its traffic blocked by the network lock): TCP_INFO
 * (options, window scales), TCP_REPAIR_QUEUE + TCP_QUEUE_SEQ + recv(MSG_PEEK) for the
 * receive queue (rcv_nxt; bytes not read by the process) and the send queue
 * (write_seq; bytes not acknowledged by the peer), TCP_MAXSEG, TCP_TIMESTAMP,
 * TCP_REPAIR_WINDOW.
 *
 * restore: repair on; the sequence number of each queue (its start: seq - queued
 * bytes; the send queue starts later by the bytes its peer already holds, see
 * struct tcpr_outq); TCP_TIMESTAMP; TCP_MAXSEG (the kernel takes at most 32767 here: the
 * real MSS goes in the repair options) before connect; bind; connect (no SYN in repair
 * mode: the socket is ESTABLISHED at once); TCP_REPAIR_OPTIONS; the receive queue
 * written with the receive queue selected; the in-flight bytes written with the send
 * queue selected (taken as sent, not transmitted); TCP_REPAIR_WINDOW (only after the
 * data: it checks against rcv_nxt); repair off without a window probe (the network lock
 * would drop it). Once the lock is gone: a window probe (repair on and off again), then
 * the rest of the send queue sent normally (written in repair mode it would only leave
 * on retransmit timeouts, seconds).
 *
 * Invariant of a restored connection: its snd_nxt is not below what the peer has
 * received (exact for a peer in the tree; a peer outside needs the in-flight count,
 * which the dump does not record yet). An ACK above snd_nxt is discarded by the kernel
 * with the data it carries: with the window closed the connection stalls both ways
 * (docs/net.md, "In-flight data at the dump").
 */
#include <errno.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "net/net.h"

#define TCPR_MAX_QUEUE	  (64u << 20) /* bytes of one queue */
#define TCPR_MAXSEG_MAX	  32767	      /* TCP_MAXSEG limit in repair mode */
#define TCPR_CHUNK	  (64u << 10)
#define TCPR_SEND_WAIT_MS 10000

#ifndef TCPOPT_MSS
#define TCPOPT_MSS	 2
#define TCPOPT_WINDOW	 3
#define TCPOPT_SACK_PERM 4
#define TCPOPT_TIMESTAMP 8
#endif

#ifndef SO_BUF_LOCK
#define SO_BUF_LOCK 72
#endif

static struct net_opts g_opts;

void net_opts_set(const struct net_opts *o)
{
	g_opts = *o;
}

const struct net_opts *net_opts_get(void)
{
	return &g_opts;
}

const char *net_lock_name(char *buf, size_t len, int pid)
{
	snprintf(buf, len, "ferry_%d", pid);
	return buf;
}

static int why_set(char *why, size_t len, int e, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int why_set(char *why, size_t len, int e, const char *fmt, ...)
{
	char msg[160];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(why, len, "%s: %s", msg, strerror(e));
	return -e;
}

static int sopt(int fd, int opt, int val)
{
	return setsockopt(fd, SOL_TCP, opt, &val, sizeof(val)) < 0 ? -errno : 0;
}

static int gopt(int fd, int opt, int *val)
{
	socklen_t l = sizeof(*val);
	return getsockopt(fd, SOL_TCP, opt, val, &l) < 0 ? -errno : 0;
}

int tcpr_repair(int fd, bool on, bool probe)
{
	return sopt(fd, TCP_REPAIR,
		    on	    ? TCP_REPAIR_ON
		    : probe ? TCP_REPAIR_OFF
			    : TCP_REPAIR_OFF_NO_WP);
}

/* One queue: its sequence number and its bytes (peeked). */
static int dump_queue(int fd, int q, uint32_t *seq, ProtobufCBinaryData *b, char *why, size_t wl)
{
	const char *name = q == TCP_RECV_QUEUE ? "receive" : "send";
	int len = 0, v = 0, r;
	if (ioctl(fd, q == TCP_RECV_QUEUE ? SIOCINQ : SIOCOUTQ, &len) < 0)
		return why_set(why, wl, errno, "%s queue length", name);
	if (len < 0 || (unsigned int)len > TCPR_MAX_QUEUE)
		return why_set(why, wl, EFBIG, "%s queue of %d bytes", name, len);
	if ((r = sopt(fd, TCP_REPAIR_QUEUE, q)) < 0 || (r = gopt(fd, TCP_QUEUE_SEQ, &v)) < 0)
		return why_set(why, wl, -r, "%s queue sequence", name);
	*seq = (uint32_t)v;
	b->data = malloc(len ? (size_t)len : 1);
	if (!b->data)
		return -ENOMEM;
	b->len = 0;
	if (len) {
		ssize_t n = recv(fd, b->data, (size_t)len, MSG_PEEK | MSG_DONTWAIT);
		if (n < 0)
			return why_set(why, wl, errno, "peek at the %s queue", name);
		if (n != len)
			return why_set(why, wl, EIO, "%s queue: peeked %zd of %d bytes", name, n,
				       len);
		b->len = (size_t)n;
	}
	return 0;
}

int tcpr_dump(int fd, TcpStreamEntry *te, char *why, size_t wl)
{
	struct tcp_info ti;
	struct tcp_repair_window w;
	socklen_t l = sizeof(ti);
	int v, r;

	memset(&ti, 0, sizeof(ti));
	if (getsockopt(fd, SOL_TCP, TCP_INFO, &ti, &l) < 0)
		return why_set(why, wl, errno, "TCP_INFO");
	te->opt_mask = ti.tcpi_options & (TCPI_OPT_TIMESTAMPS | TCPI_OPT_SACK | TCPI_OPT_WSCALE);
	te->snd_wscale = ti.tcpi_snd_wscale;
	te->rcv_wscale = ti.tcpi_rcv_wscale;
	te->has_snd_mss = true;
	te->snd_mss = ti.tcpi_snd_mss;
	if ((r = dump_queue(fd, TCP_RECV_QUEUE, &te->inq_seq, &te->inq, why, wl)) < 0 ||
	    (r = dump_queue(fd, TCP_SEND_QUEUE, &te->outq_seq, &te->outq, why, wl)) < 0)
		goto out;
	if ((r = gopt(fd, TCP_MAXSEG, &v)) < 0) {
		r = why_set(why, wl, -r, "TCP_MAXSEG");
		goto out;
	}
	te->mss = (uint32_t)v;
	if ((r = gopt(fd, TCP_TIMESTAMP, &v)) < 0) {
		r = why_set(why, wl, -r, "TCP_TIMESTAMP");
		goto out;
	}
	te->timestamp = (uint32_t)v;
	l = sizeof(w);
	if (getsockopt(fd, SOL_TCP, TCP_REPAIR_WINDOW, &w, &l) < 0) {
		r = why_set(why, wl, errno, "TCP_REPAIR_WINDOW");
		goto out;
	}
	te->snd_wl1 = w.snd_wl1;
	te->snd_wnd = w.snd_wnd;
	te->max_window = w.max_window;
	te->rcv_wnd = w.rcv_wnd;
	te->rcv_wup = w.rcv_wup;
out:
	(void)sopt(fd, TCP_REPAIR_QUEUE, TCP_NO_QUEUE);
	return r;
}

/* Receive queue bytes, written in repair mode with the receive queue selected. The
 * kernel allocates one skb per write: chunks, halved when it has no memory for one. */
static int restore_inq_data(int fd, const uint8_t *p, size_t len, char *why, size_t wl)
{
	size_t chunk = TCPR_CHUNK;
	while (len) {
		ssize_t n = send(fd, p, len < chunk ? len : chunk, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && errno == ENOMEM && chunk > 1024) {
			chunk /= 2;
			continue;
		}
		if (n <= 0)
			return why_set(why, wl, n < 0 ? errno : EIO,
				       "write %zu bytes into the receive queue", len);
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The receive buffer is raised for the writes only (skb overhead counts against it):
 * the window computed at connect came from the real one, which is put back after. */
static int restore_inq(int fd, const uint8_t *p, size_t len, char *why, size_t wl)
{
	int old = 0, lock = 0, room = (int)(len + 4 * TCPR_CHUNK), r;
	socklen_t l1 = sizeof(old), l2 = sizeof(lock);
	if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &old, &l1) < 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_BUF_LOCK, &lock, &l2) < 0)
		return why_set(why, wl, errno, "SO_RCVBUF");
	if ((r = sopt(fd, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE)) < 0)
		return why_set(why, wl, -r, "select the receive queue");
	if (old < room && setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &room, sizeof(room)) < 0)
		return why_set(why, wl, errno, "SO_RCVBUFFORCE");
	r = restore_inq_data(fd, p, len, why, wl);
	old /= 2; /* the kernel doubles what it is given */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &old, sizeof(old)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_BUF_LOCK, &lock, sizeof(lock)) < 0)
		return r < 0 ? r : why_set(why, wl, errno, "SO_RCVBUF back");
	return r;
}

static int restore_opts(int fd, const TcpStreamEntry *te, char *why, size_t wl)
{
	struct tcp_repair_opt o[4];
	int n = 0;
	o[n++] = (struct tcp_repair_opt){ TCPOPT_MSS, te->mss };
	if (te->opt_mask & TCPI_OPT_WSCALE)
		o[n++] = (struct tcp_repair_opt){ TCPOPT_WINDOW,
						  te->snd_wscale | te->rcv_wscale << 16 };
	if (te->opt_mask & TCPI_OPT_SACK)
		o[n++] = (struct tcp_repair_opt){ TCPOPT_SACK_PERM, 0 };
	if (te->opt_mask & TCPI_OPT_TIMESTAMPS)
		o[n++] = (struct tcp_repair_opt){ TCPOPT_TIMESTAMP, 0 };
	if (setsockopt(fd, SOL_TCP, TCP_REPAIR_OPTIONS, o, (socklen_t)(n * sizeof(o[0]))) < 0)
		return why_set(why, wl, errno, "TCP_REPAIR_OPTIONS");
	return 0;
}

/* Before connect: queue sequence numbers, timestamp, MSS. */
static int restore_pre(int fd, const TcpStreamEntry *te, uint32_t acked, char *why, size_t wl)
{
	int r;
	if ((r = tcpr_repair(fd, true, false)) < 0)
		return why_set(why, wl, -r, "TCP_REPAIR on");
	if ((r = sopt(fd, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE)) < 0 ||
	    (r = sopt(fd, TCP_QUEUE_SEQ, (int)(tcpr_snd_una(te) + acked))) < 0)
		return why_set(why, wl, -r, "send queue sequence");
	if ((r = sopt(fd, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE)) < 0 ||
	    (r = sopt(fd, TCP_QUEUE_SEQ, (int)(te->inq_seq - (uint32_t)te->inq.len))) < 0)
		return why_set(why, wl, -r, "receive queue sequence");
	if ((te->opt_mask & TCPI_OPT_TIMESTAMPS) &&
	    (r = sopt(fd, TCP_TIMESTAMP, (int)te->timestamp)) < 0)
		return why_set(why, wl, -r, "TCP_TIMESTAMP");
	/* the MSS in use, not the clamp: connect computes the sending MSS from it, and the
	 * half-window bound the kernel applied to it (a small peer window) is not redone
	 * when the window is repaired: a larger MSS than the window stalls the sender on
	 * silly-window avoidance (one persist timeout per segment) */
	uint32_t want =
		te->has_snd_mss && te->snd_mss ? min_t(uint32_t, te->snd_mss, te->mss) : te->mss;
	int mss = want > TCPR_MAXSEG_MAX ? TCPR_MAXSEG_MAX : (int)want;
	if ((r = sopt(fd, TCP_MAXSEG, mss)) < 0)
		return why_set(why, wl, -r, "TCP_MAXSEG %d", mss);
	return 0;
}

uint32_t tcpr_snd_una(const TcpStreamEntry *te)
{
	return te->outq_seq - (uint32_t)te->outq.len;
}

uint32_t tcpr_peer_received(const TcpStreamEntry *te, const TcpStreamEntry *peer)
{
	uint32_t d = peer->inq_seq - tcpr_snd_una(te); /* modulo 2^32, like the kernel's before() */
	return d <= te->outq.len ? d : 0;
}

/* An address as 16 bytes, IPv4 as IPv4-mapped IPv6: a dual-stack socket's peer may be an
 * AF_INET socket. */
static void addr_norm(const ProtobufCBinaryData *a, uint8_t out[16])
{
	memset(out, 0, 16);
	if (a->len == 4) {
		out[10] = out[11] = 0xff;
		memcpy(out + 12, a->data, 4);
	} else {
		memcpy(out, a->data, 16);
	}
}

bool tcpr_is_peer(const InetSkEntry *a, const InetSkEntry *b)
{
	uint8_t as[16], ad[16], bs[16], bd[16];
	if (a->src_port != b->dst_port || a->dst_port != b->src_port)
		return false;
	addr_norm(&a->src_addr, as);
	addr_norm(&a->dst_addr, ad);
	addr_norm(&b->src_addr, bs);
	addr_norm(&b->dst_addr, bd);
	return !memcmp(as, bd, 16) && !memcmp(ad, bs, 16);
}

/* The bytes that were in flight, queued in repair mode with the send queue selected: the
 * kernel takes them as sent (snd_nxt moves past them, the retransmit timer starts)
 * without transmitting them. The send buffer was raised by the caller to hold them. */
static int restore_outq_sent(int fd, const uint8_t *p, size_t len, char *why, size_t wl)
{
	int r;
	if ((r = sopt(fd, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE)) < 0)
		return why_set(why, wl, -r, "select the send queue");
	while (len) {
		ssize_t n = send(fd, p, len < TCPR_CHUNK ? len : TCPR_CHUNK,
				 MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n <= 0)
			return why_set(why, wl, n < 0 ? errno : EIO,
				       "queue %zu bytes in flight as sent", len);
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int tcpr_restore(int fd, const TcpStreamEntry *te, const struct tcpr_outq *q,
		 const struct sockaddr *src, socklen_t srclen, const struct sockaddr *dst,
		 socklen_t dstlen, char *why, size_t wl)
{
	uint32_t acked = q->acked;
	/* the window's right edge (snd_una + snd_wnd) stays where the peer put it when the
	 * queue starts later by the bytes the peer already holds */
	struct tcp_repair_window w = { .snd_wl1 = te->snd_wl1,
				       .snd_wnd = te->snd_wnd > acked ? te->snd_wnd - acked : 0,
				       .max_window = te->max_window,
				       .rcv_wnd = te->rcv_wnd,
				       .rcv_wup = te->rcv_wup };
	int r;
	if (acked > te->outq.len || q->inflight > te->outq.len - acked)
		return why_set(why, wl, EINVAL,
			       "%u+%u bytes acknowledged/in flight of a %zu-byte "
			       "send queue",
			       acked, q->inflight, te->outq.len);
	if ((r = restore_pre(fd, te, acked, why, wl)) < 0)
		return r;
	/* repair mode sets SK_FORCE_REUSE: the local port may be bound by a listener */
	if (bind(fd, src, srclen) < 0)
		return why_set(why, wl, errno, "bind");
	if (connect(fd, dst, dstlen) < 0)
		return why_set(why, wl, errno, "connect (repair mode)");
	if ((r = restore_opts(fd, te, why, wl)) < 0)
		return r;
	if (te->inq.len && (r = restore_inq(fd, te->inq.data, te->inq.len, why, wl)) < 0)
		return r;
	if (q->inflight &&
	    (r = restore_outq_sent(fd, te->outq.data + acked, q->inflight, why, wl)) < 0)
		return r;
	if ((r = sopt(fd, TCP_REPAIR_QUEUE, TCP_NO_QUEUE)) < 0)
		return why_set(why, wl, -r, "TCP_REPAIR_QUEUE none");
	if (setsockopt(fd, SOL_TCP, TCP_REPAIR_WINDOW, &w, sizeof(w)) < 0)
		return why_set(why, wl, errno, "TCP_REPAIR_WINDOW");
	if ((r = tcpr_repair(fd, false, false)) < 0)
		return why_set(why, wl, -r, "TCP_REPAIR off");
	return 0;
}

int tcpr_window_probe(int fd)
{
	int r = tcpr_repair(fd, true, false);
	return r < 0 ? r : tcpr_repair(fd, false, true);
}

int tcpr_send_queue(int fd, const uint8_t *p, size_t len, char *why, size_t wl)
{
	uint64_t end = now_ns() + (uint64_t)TCPR_SEND_WAIT_MS * 1000000ull;
	while (len) {
		ssize_t n = send(fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			struct pollfd pf = { .fd = fd, .events = POLLOUT };
			uint64_t now = now_ns();
			if (now >= end)
				return why_set(why, wl, ETIMEDOUT, "send queue: %zu bytes left",
					       len);
			(void)poll(&pf, 1, (int)((end - now) / 1000000ull) + 1);
			continue;
		}
		if (n <= 0)
			return why_set(why, wl, n < 0 ? errno : EIO, "send queue: %zu bytes left",
				       len);
		p += n;
		len -= (size_t)n;
	}
	return 0;
}
