/*
 * fd-inet: TCP sockets (AF_INET, AF_INET6), the fd side of src/net (docs/net.md).
 *
 * Dump: everything is read on our pidfd_getfd copy with getsockopt: SO_DOMAIN, SO_TYPE,
 * SO_PROTOCOL pick the kind; TCP_INFO gives the state (and for a listener its accept
 * queue and backlog); getsockname/getpeername the addresses; the options listed in
 * InetSkEntry. Supported states: LISTEN (with an empty accept queue), CLOSE (bound or
 * not) and ESTABLISHED (with --tcp-established); anything else fails the dump with one
 * line naming pid, fd, the socket's addresses and its state (check hook, before the
 * task's files are described). An established socket is only remembered by dump()
 * (a dup of it and its entry); at fs_dump_finish (every task dumped, tree still
 * frozen) all the tree's connections are blocked by the network lock in one nft
 * transaction, then each is put in repair mode and read (tcpr_dump) into its entry,
 * before files.img is written. So a dump failing before that changed nothing. The
 * sockets stay in repair mode: when the dumped tree is killed, the kernel closes a
 * repairing socket silently (tcp_disconnect: no FIN, no RST, the 4-tuple is freed at
 * once). With --leave-running the finish hook turns repair off again (no window probe)
 * and removes the lock before the tree resumes; a failure after repair was turned on
 * does the same in fs_dump_free.
 *
 * Restore: prepare validates and copies the entry; the sockets are built in the
 * restorer by the linked hook of the first TCP file (every file of the tree is
 * prepared by then): listening and closed sockets first (a listener may then share its
 * port with accepted connections, which bind in repair mode), then the established
 * ones (tcpr_restore; a connection whose other end is in the tree too drops the head of
 * its send queue that the other end already received, one with a peer outside queues
 * the bytes that may be in flight as sent: plan_outq), then the network
 * lock is removed, then each connection sends a window probe and its send queue, and
 * the last options are applied. open() in the stub only dups the restorer's socket.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "fs/fs-priv.h"
#include "net/net.h"

#define INET_MAX_QUEUE (64u << 20)

#ifndef SO_BUF_LOCK
#define SO_BUF_LOCK 72
#endif

struct inet_conn { /* one established connection of the dump */
	int fd;	   /* our dup of the socket, kept until the end of the dump */
	pid_t pid;
	int tfd;	 /* its number in pid, for log lines */
	InetSkEntry *ie; /* owned by the FileEntry (files.img) */
	struct net_tuple t;
	bool repair; /* in repair mode */
};

struct inet_dump { /* fs_dump.inet: the TCP state of one dump */
	char lock[NETLOCK_NAME_MAX];
	bool locked, finished;
	struct inet_conn *c;
	size_t n, cap;
};

struct inet_kd {	 /* restore */
	InetSkEntry *ie; /* own copy of the entry */
	int fd;		 /* the restorer's socket, -1 before linked */
	bool built;
	struct tcpr_outq q; /* how the send queue starts (plan_outq) */
};

static const char *const tcp_states[] = {
	"?",	     "ESTABLISHED", "SYN_SENT",	  "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2",
	"TIME_WAIT", "CLOSE",	    "CLOSE_WAIT", "LAST_ACK", "LISTEN",	   "CLOSING",
};

static const char *state_name(unsigned int s)
{
	return s < ARRAY_SIZE(tcp_states) ? tcp_states[s] : "NEW_SYN_RECV";
}

static int sock_int(int fd, int level, int opt)
{
	int v = -1;
	socklen_t l = sizeof(v);
	return getsockopt(fd, level, opt, &v, &l) < 0 ? -errno : v;
}

static bool inet_match(const struct fd_parms *p)
{
	if (!S_ISSOCK(p->st.st_mode) || p->lfd < 0)
		return false;
	int dom = sock_int(p->lfd, SOL_SOCKET, SO_DOMAIN);
	return (dom == AF_INET || dom == AF_INET6) &&
	       sock_int(p->lfd, SOL_SOCKET, SO_TYPE) == SOCK_STREAM &&
	       sock_int(p->lfd, SOL_SOCKET, SO_PROTOCOL) == IPPROTO_TCP;
}

/* "ADDR:PORT" of a sockaddr (or of raw bytes), for log lines. */
static const char *fmt_ep(int family, const void *addr, unsigned int port, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN] = "?";
	inet_ntop(family, addr, a, sizeof(a));
	snprintf(buf, len, family == AF_INET6 ? "[%s]:%u" : "%s:%u", a, port);
	return buf;
}

struct ends { /* a socket's addresses */
	struct sockaddr_storage src, dst;
	bool connected;
};

static const void *sa_addr(const struct sockaddr_storage *s, unsigned int *port)
{
	if (s->ss_family == AF_INET6) {
		*port = ntohs(((const struct sockaddr_in6 *)s)->sin6_port);
		return &((const struct sockaddr_in6 *)s)->sin6_addr;
	}
	*port = ntohs(((const struct sockaddr_in *)s)->sin_port);
	return &((const struct sockaddr_in *)s)->sin_addr;
}

static void get_ends(int fd, struct ends *e)
{
	socklen_t l = sizeof(e->src);
	memset(e, 0, sizeof(*e));
	if (getsockname(fd, (struct sockaddr *)&e->src, &l) < 0)
		e->src.ss_family = AF_UNSPEC;
	l = sizeof(e->dst);
	e->connected = getpeername(fd, (struct sockaddr *)&e->dst, &l) == 0;
}

/* "A:p -> B:q" or "A:p" */
static const char *fmt_ends(const struct ends *e, char *buf, size_t len)
{
	char s[64], d[64];
	unsigned int sp, dp;
	const void *sa = sa_addr(&e->src, &sp), *da = sa_addr(&e->dst, &dp);
	fmt_ep(e->src.ss_family, sa, sp, s, sizeof(s));
	if (e->connected)
		snprintf(buf, len, "%s -> %s", s, fmt_ep(e->dst.ss_family, da, dp, d, sizeof(d)));
	else
		snprintf(buf, len, "%s", s);
	return buf;
}

/* Log a line whose message already names the error (tcp.c's why) and return e. */
static int inet_fail(const struct fd_parms *p, const char *why)
{
	struct ends e;
	char b[160];
	get_ends(p->lfd, &e);
	pr_err("PID %d fd %d: tcp socket ('%s') %s: %s: not supported", p->pid, p->fd, p->link,
	       fmt_ends(&e, b, sizeof(b)), why);
	return -EOPNOTSUPP;
}

static int tcp_info_of(int fd, struct tcp_info *ti)
{
	socklen_t l = sizeof(*ti);
	memset(ti, 0, sizeof(*ti));
	return getsockopt(fd, SOL_TCP, TCP_INFO, ti, &l) < 0 ? -errno : 0;
}

static struct inet_dump *inet_dump_state(struct fs_dump *d, pid_t pid)
{
	if (!d->inet) {
		struct inet_dump *s = calloc(1, sizeof(*s));
		if (!s)
			return NULL;
		/* named after the root, the first task dumped: the holder of the first fd
		 * recorded, or this task when none is recorded yet */
		net_lock_name(s->lock, sizeof(s->lock), d->nrefs ? d->refs[0].pid : pid);
		d->inet = s;
	}
	return d->inet;
}

/* The state of p, refused when not supported. */
static int inet_check_one(const struct fd_parms *p, struct tcp_info *ti)
{
	char why[128];
	int r = tcp_info_of(p->lfd, ti);
	if (r < 0)
		return pr_err_ret(r, "PID %d fd %d: TCP_INFO", p->pid, p->fd);
	switch (ti->tcpi_state) {
	case TCP_LISTEN:
		if (ti->tcpi_unacked == 0)
			return 0;
		snprintf(why, sizeof(why), "listening with %u connection(s) not accepted yet",
			 ti->tcpi_unacked);
		return inet_fail(p, why);
	case TCP_CLOSE:
		return 0;
	case TCP_ESTABLISHED:
		if (net_opts_get()->tcp_established)
			return 0;
		return inet_fail(p, "established connection (dump with --tcp-established)");
	default:
		snprintf(why, sizeof(why), "state %s", state_name(ti->tcpi_state));
		return inet_fail(p, why);
	}
}

static int tuple_of(int fd, struct net_tuple *t)
{
	struct ends e;
	unsigned int sp, dp;
	get_ends(fd, &e);
	if (!e.connected || e.src.ss_family != e.dst.ss_family)
		return -ENOTCONN;
	const void *sa = sa_addr(&e.src, &sp), *da = sa_addr(&e.dst, &dp);
	size_t al = e.src.ss_family == AF_INET6 ? 16 : 4;
	memset(t, 0, sizeof(*t));
	t->family = e.src.ss_family;
	if (t->family == AF_INET6 && IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)sa) &&
	    IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)da)) {
		/* a dual-stack socket talking IPv4: its packets are IPv4 ones */
		t->family = AF_INET;
		sa = (const uint8_t *)sa + 12;
		da = (const uint8_t *)da + 12;
		al = 4;
	}
	memcpy(t->src, sa, al);
	memcpy(t->dst, da, al);
	t->sport = (uint16_t)sp;
	t->dport = (uint16_t)dp;
	return 0;
}

/* check hook: every TCP fd of the task is checked before any is described. */
static int inet_check(struct fs_dump *d, const struct fd_parms *all, size_t n, size_t i)
{
	struct tcp_info ti;
	return inet_check_one(&all[i], &ti);
}

static int inet_opts(int fd, InetSkEntry *ie)
{
	int v[12];
	v[0] = sock_int(fd, SOL_SOCKET, SO_REUSEADDR);
	v[1] = sock_int(fd, SOL_SOCKET, SO_REUSEPORT);
	v[2] = sock_int(fd, SOL_SOCKET, SO_KEEPALIVE);
	v[3] = sock_int(fd, SOL_TCP, TCP_KEEPIDLE);
	v[4] = sock_int(fd, SOL_TCP, TCP_KEEPINTVL);
	v[5] = sock_int(fd, SOL_TCP, TCP_KEEPCNT);
	v[6] = sock_int(fd, SOL_TCP, TCP_NODELAY);
	v[7] = sock_int(fd, SOL_TCP, TCP_CORK);
	v[8] = sock_int(fd, SOL_SOCKET, SO_SNDBUF);
	v[9] = sock_int(fd, SOL_SOCKET, SO_RCVBUF);
	v[10] = sock_int(fd, SOL_SOCKET, SO_BUF_LOCK);
	v[11] = ie->family == AF_INET6 ? sock_int(fd, SOL_IPV6, IPV6_V6ONLY) : 0;
	for (size_t k = 0; k < ARRAY_SIZE(v); k++)
		if (v[k] < 0)
			return v[k];
	ie->reuseaddr = v[0];
	ie->reuseport = v[1];
	ie->keepalive = v[2];
	ie->keepidle = (uint32_t)v[3];
	ie->keepintvl = (uint32_t)v[4];
	ie->keepcnt = (uint32_t)v[5];
	ie->nodelay = v[6];
	ie->cork = v[7];
	ie->sndbuf = (uint32_t)v[8];
	ie->rcvbuf = (uint32_t)v[9];
	ie->buf_lock = (uint32_t)v[10];
	ie->v6only = v[11];
	return 0;
}

static int bytes_dup(ProtobufCBinaryData *b, const void *p, size_t n)
{
	b->data = malloc(n);
	if (!b->data)
		return -ENOMEM;
	memcpy(b->data, p, n);
	b->len = n;
	return 0;
}

static int inet_addrs(const struct ends *e, InetSkEntry *ie)
{
	unsigned int sp, dp;
	size_t al = ie->family == AF_INET6 ? 16 : 4;
	const void *sa = sa_addr(&e->src, &sp), *da = sa_addr(&e->dst, &dp);
	if (e->src.ss_family != (sa_family_t)ie->family)
		return -EAFNOSUPPORT;
	int r = bytes_dup(&ie->src_addr, sa, al);
	ie->src_port = sp;
	if (ie->family == AF_INET6 && ((const struct sockaddr_in6 *)&e->src)->sin6_scope_id) {
		ie->has_scope_id = true;
		ie->scope_id = ((const struct sockaddr_in6 *)&e->src)->sin6_scope_id;
	}
	if (r == 0 && e->connected) {
		r = bytes_dup(&ie->dst_addr, da, al);
		ie->has_dst_addr = r == 0;
		ie->has_dst_port = true;
		ie->dst_port = dp;
	}
	return r;
}

/* Remember an established connection: locked and repaired at finish. */
static int inet_remember(struct fs_dump *d, const struct fd_parms *p, InetSkEntry *ie)
{
	struct inet_dump *s = inet_dump_state(d, p->pid);
	if (!s)
		return -ENOMEM;
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 8;
		struct inet_conn *v = realloc(s->c, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		s->c = v;
		s->cap = cap;
	}
	struct inet_conn *c = &s->c[s->n];
	*c = (struct inet_conn){ .pid = p->pid, .tfd = p->fd, .ie = ie };
	if (tuple_of(p->lfd, &c->t) < 0)
		return pr_err_ret(-ENOTCONN, "PID %d fd %d: tcp socket without a peer address",
				  p->pid, p->fd);
	if ((c->fd = fcntl(p->lfd, F_DUPFD_CLOEXEC, 3)) < 0)
		return pr_perror("PID %d fd %d: dup", p->pid, p->fd);
	s->n++;
	return 0;
}

/* Repair mode on c, and its state into c->ie->tcp. */
static int inet_repair(struct inet_dump *s, struct inet_conn *c)
{
	char why[256];
	int r = tcpr_repair(c->fd, true, false);
	if (r < 0)
		return pr_err_ret(r, "PID %d fd %d: TCP_REPAIR (needs CAP_NET_ADMIN)", c->pid,
				  c->tfd);
	c->repair = true;
	TcpStreamEntry *te = malloc(sizeof(*te));
	if (!te)
		return -ENOMEM;
	tcp_stream_entry__init(te);
	c->ie->tcp = te;
	if ((r = tcpr_dump(c->fd, te, why, sizeof(why))) < 0) {
		pr_err("PID %d fd %d: tcp repair: %s", c->pid, c->tfd, why);
		return r;
	}
	c->ie->netlock = strdup(s->lock);
	if (!c->ie->netlock)
		return -ENOMEM;
	/* what of the send queue was never sent (docs/net.md, "In-flight data at the dump") */
	int unsent = -1;
	if (ioctl(c->fd, SIOCOUTQNSD, &unsent) == 0 && unsent >= 0) {
		te->has_outq_notsent = true;
		te->outq_notsent = (uint32_t)unsent;
	}
	pr_debug("PID %d fd %d: repair: rcv_nxt %u (%zu queued) write_seq %u (%zu queued, %d "
		 "not sent yet) snd_wnd %u mss %u/%u opts %#x",
		 c->pid, c->tfd, te->inq_seq, te->inq.len, te->outq_seq, te->outq.len, unsent,
		 te->snd_wnd, te->snd_mss, te->mss, te->opt_mask);
	return 0;
}

static int inet_dump(struct fs_dump *d, const struct fd_parms *p, FileEntry *fe)
{
	struct tcp_info ti;
	struct ends e;
	char b[160];
	int r;
	InetSkEntry *ie = malloc(sizeof(*ie));
	if (!ie)
		return -ENOMEM;
	inet_sk_entry__init(ie);
	fe->inet = ie;
	if ((r = tcp_info_of(p->lfd, &ti)) < 0)
		return pr_err_ret(r, "PID %d fd %d: TCP_INFO", p->pid, p->fd);
	ie->family = (uint32_t)sock_int(p->lfd, SOL_SOCKET, SO_DOMAIN);
	ie->state = ti.tcpi_state;
	ie->flags = p->flags & O_NONBLOCK;
	get_ends(p->lfd, &e);
	if ((r = inet_addrs(&e, ie)) < 0 || (r = inet_opts(p->lfd, ie)) < 0)
		return pr_err_ret(r, "PID %d fd %d: tcp socket options", p->pid, p->fd);
	if (ie->state == TCP_LISTEN) {
		ie->has_backlog = true;
		ie->backlog = ti.tcpi_sacked; /* sk_max_ack_backlog for a listener */
	}
	if (ie->state == TCP_ESTABLISHED && (r = inet_remember(d, p, ie)) < 0)
		return r;
	pr_debug("PID %d fd %d: tcp %s %s", p->pid, p->fd, state_name(ie->state),
		 fmt_ends(&e, b, sizeof(b)));
	return 0;
}

/* Repair off on every socket we put in repair mode, then drop the lock. */
static int inet_release_all(struct inet_dump *s)
{
	int r = 0;
	for (size_t i = 0; i < s->n; i++) {
		int e = s->c[i].repair ? tcpr_repair(s->c[i].fd, false, false) : 0;
		if (e < 0 && r == 0)
			r = pr_err_ret(e, "PID %d fd %d: TCP_REPAIR off", s->c[i].pid, s->c[i].tfd);
		s->c[i].repair = e < 0;
	}
	if (s->locked) {
		int e = netlock_unlock(s->lock);
		if (e < 0 && r == 0)
			r = e;
		s->locked = e < 0;
	}
	return r;
}

/* finish hook (every task dumped, the tree still frozen; this kind is the last of the
 * table): lock every connection of the tree in one transaction, then put each in
 * repair mode and read it. With --leave-running the tree resumes after the dump: the
 * connections go on from here. A failure before this point changed nothing. */
static int inet_finish(struct fs_dump *d)
{
	struct inet_dump *s = d->inet;
	int r = 0;
	if (!s || !s->n)
		return 0;
	struct net_tuple *t = calloc(s->n, sizeof(*t));
	if (!t)
		return -ENOMEM;
	for (size_t i = 0; i < s->n; i++)
		t[i] = s->c[i].t;
	r = netlock_lock(s->lock, t, s->n);
	free(t);
	if (r < 0)
		return r;
	s->locked = true;
	for (size_t i = 0; i < s->n && r == 0; i++)
		r = inet_repair(s, &s->c[i]);
	if (r == 0 && net_opts_get()->leave_running)
		r = inet_release_all(s);
	if (r == 0)
		s->finished = true;
	return r;
}

void fd_inet_dump_resume(struct fs_dump *d)
{
	struct inet_dump *s = d->inet;
	if (!s || !s->finished)
		return;
	(void)inet_release_all(s); /* logs its own errors */
	s->finished = false;
}

void fd_inet_dump_free(struct fs_dump *d)
{
	struct inet_dump *s = d ? d->inet : NULL;
	if (!s)
		return;
	if (!s->finished) /* failed dump: the tree resumes */
		(void)inet_release_all(s);
	else if (s->locked)
		pr_info("network lock '%s' kept until the restore (or ferry net-unlock -t PID)",
			s->lock);
	for (size_t i = 0; i < s->n; i++)
		close(s->c[i].fd);
	free(s->c);
	free(s);
	d->inet = NULL;
}

/* ---- restore -------------------------------------------------------------------- */

static int inet_valid(const InetSkEntry *ie)
{
	size_t al = ie->family == AF_INET6 ? 16 : 4;
	const TcpStreamEntry *te = ie->tcp;
	if ((ie->family != AF_INET && ie->family != AF_INET6) || ie->src_addr.len != al ||
	    ie->src_port > 65535 || ie->flags & ~(uint32_t)O_NONBLOCK || ie->sndbuf > INT32_MAX ||
	    ie->rcvbuf > INT32_MAX || ie->buf_lock > 3 || ie->keepidle > 32767 ||
	    ie->keepintvl > 32767 || ie->keepcnt > 127 ||
	    (ie->netlock && !netlock_name_ok(ie->netlock)))
		return 0;
	switch (ie->state) {
	case TCP_LISTEN:
		return ie->has_backlog && ie->backlog <= 65535 && !te && !ie->has_dst_addr;
	case TCP_CLOSE:
		return !te && !ie->has_dst_addr;
	case TCP_ESTABLISHED:
		return te && ie->has_dst_addr && ie->dst_addr.len == al && ie->has_dst_port &&
		       ie->dst_port && ie->dst_port <= 65535 && ie->src_port &&
		       te->inq.len <= INET_MAX_QUEUE && te->outq.len <= INET_MAX_QUEUE &&
		       te->mss >= 64 && te->mss <= 65535 &&
		       (!te->has_snd_mss || te->snd_mss <= 65535) && te->snd_wscale <= 14 &&
		       te->rcv_wscale <= 14;
	}
	return 0;
}

static int inet_prepare(struct fs_rst *r, const FileEntry *fe, struct rst_file *f)
{
	const InetSkEntry *ie = fe->inet;
	if (!ie || !inet_valid(ie))
		return pr_err_ret(-EBADMSG, "files.img: id %u: bad tcp socket", fe->id);
	struct inet_kd *kd = calloc(1, sizeof(*kd));
	if (!kd)
		return -ENOMEM;
	kd->fd = -1;
	f->kd = kd;
	/* an own copy: the FileEntry is freed after prepare */
	size_t n = inet_sk_entry__get_packed_size(ie);
	uint8_t *buf = malloc(n ? n : 1);
	if (!buf)
		return -ENOMEM;
	inet_sk_entry__pack(ie, buf);
	kd->ie = inet_sk_entry__unpack(NULL, n, buf);
	free(buf);
	return kd->ie ? 0 : -ENOMEM;
}

static void inet_release(struct rst_file *f)
{
	struct inet_kd *kd = f->kd;
	if (kd) {
		if (kd->fd >= 0)
			close(kd->fd);
		if (kd->ie)
			inet_sk_entry__free_unpacked(kd->ie, NULL);
	}
	free(kd);
	f->kd = NULL;
}

static socklen_t make_sa(const InetSkEntry *ie, const ProtobufCBinaryData *a, uint32_t port,
			 struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (ie->family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		memcpy(&s6->sin6_addr, a->data, 16);
		s6->sin6_scope_id = ie->scope_id; /* link-local: both ends on that link */
		return sizeof(*s6);
	}
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	s4->sin_family = AF_INET;
	s4->sin_port = htons((uint16_t)port);
	memcpy(&s4->sin_addr, a->data, 4);
	return sizeof(*s4);
}

static const char *rst_name(const InetSkEntry *ie, char *buf, size_t len)
{
	char s[64], d[64];
	fmt_ep((int)ie->family, ie->src_addr.data, ie->src_port, s, sizeof(s));
	if (ie->has_dst_addr)
		snprintf(buf, len, "tcp socket %s -> %s", s,
			 fmt_ep((int)ie->family, ie->dst_addr.data, ie->dst_port, d, sizeof(d)));
	else
		snprintf(buf, len, "tcp socket %s (%s)", s, state_name(ie->state));
	return buf;
}

static int set_int(int fd, int level, int opt, int v)
{
	return setsockopt(fd, level, opt, &v, sizeof(v)) < 0 ? -errno : 0;
}

/* A new socket with the options that must precede bind. */
static int inet_socket(const InetSkEntry *ie, bool reuse)
{
	int fd = socket((int)ie->family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP), r = 0;
	if (fd < 0)
		return -errno;
	if ((r = set_int(fd, SOL_SOCKET, SO_REUSEADDR, reuse || ie->reuseaddr)) < 0 ||
	    (r = set_int(fd, SOL_SOCKET, SO_REUSEPORT, ie->reuseport)) < 0 ||
	    (ie->family == AF_INET6 && (r = set_int(fd, SOL_IPV6, IPV6_V6ONLY, ie->v6only)) < 0)) {
		close(fd);
		return r;
	}
	return fd;
}

/* Options that follow the connection's setup; buffers, buffer locks and flags last. */
static int inet_post_opts(int fd, const InetSkEntry *ie)
{
	int r;
	if ((r = set_int(fd, SOL_SOCKET, SO_REUSEADDR, ie->reuseaddr)) < 0 ||
	    (r = set_int(fd, SOL_SOCKET, SO_KEEPALIVE, ie->keepalive)) < 0 ||
	    (ie->keepidle && (r = set_int(fd, SOL_TCP, TCP_KEEPIDLE, (int)ie->keepidle)) < 0) ||
	    (ie->keepintvl && (r = set_int(fd, SOL_TCP, TCP_KEEPINTVL, (int)ie->keepintvl)) < 0) ||
	    (ie->keepcnt && (r = set_int(fd, SOL_TCP, TCP_KEEPCNT, (int)ie->keepcnt)) < 0) ||
	    (r = set_int(fd, SOL_TCP, TCP_NODELAY, ie->nodelay)) < 0 ||
	    (r = set_int(fd, SOL_TCP, TCP_CORK, ie->cork)) < 0)
		return r;
	return 0;
}

/* SO_SNDBUF/SO_RCVBUF only where the process set them (the lock bits), then the
 * exact lock bits (the FORCE calls set them). */
static int inet_bufs(int fd, const InetSkEntry *ie)
{
	int r;
	if (((ie->buf_lock & 1) &&
	     (r = set_int(fd, SOL_SOCKET, SO_SNDBUFFORCE, (int)ie->sndbuf / 2)) < 0) ||
	    ((ie->buf_lock & 2) &&
	     (r = set_int(fd, SOL_SOCKET, SO_RCVBUFFORCE, (int)ie->rcvbuf / 2)) < 0) ||
	    (r = set_int(fd, SOL_SOCKET, SO_BUF_LOCK, (int)ie->buf_lock)) < 0)
		return r;
	if (fcntl(fd, F_SETFL, (int)ie->flags) < 0)
		return -errno;
	return 0;
}

/* A listening or closed socket, complete. */
static int build_plain(struct fs_rst *r, struct rst_file *f)
{
	struct inet_kd *kd = f->kd;
	const InetSkEntry *ie = kd->ie;
	struct sockaddr_storage ss;
	char n[160];
	const char *what = "socket";
	int e, fd = inet_socket(ie, true);
	if (fd < 0)
		return pr_err_ret(fd, "PID %d: %s: socket", f->owner, rst_name(ie, n, sizeof(n)));
	kd->fd = fd;
	socklen_t l = make_sa(ie, &ie->src_addr, ie->src_port, &ss);
	if (ie->src_port && bind(fd, (struct sockaddr *)&ss, l) < 0) {
		e = -errno;
		what = "bind";
	} else if (ie->state == TCP_LISTEN && listen(fd, (int)ie->backlog) < 0) {
		e = -errno;
		what = "listen";
	} else if ((e = inet_post_opts(fd, ie)) == 0 && (e = inet_bufs(fd, ie)) == 0) {
		return 0;
	} else {
		what = "options";
	}
	return pr_err_ret(e, "PID %d: %s: %s", f->owner, rst_name(ie, n, sizeof(n)), what);
}

static bool is_inet(const struct rst_file *f)
{
	return f->ops == &fd_inet_ops && f->kd;
}

/* How each send queue starts (struct tcpr_outq, docs/net.md "In-flight data at the
 * dump"). Both ends in the tree: the bytes the other end already received are dropped
 * (exact). A peer outside: it may hold any of the bytes that were in flight: the send
 * queue but its never-sent tail (TcpStreamEntry.outq_notsent, SIOCOUTQNSD at the dump;
 * older images: as much as the window the peer offered, snd_una + snd_wnd); those are
 * queued as sent: every ACK of the peer stays valid, and whatever it lacks is
 * retransmitted (after the window probe's ACK, within a few RTTs). */
static void plan_outq(struct fs_rst *r)
{
	for (size_t i = 0; i < r->nfiles; i++) {
		struct inet_kd *a = is_inet(&r->files[i]) ? r->files[i].kd : NULL;
		const struct inet_kd *peer = NULL;
		if (!a || !a->ie->tcp)
			continue;
		for (size_t j = 0; j < r->nfiles && !peer; j++) {
			const struct inet_kd *b = is_inet(&r->files[j]) ? r->files[j].kd : NULL;
			if (j != i && b && b->ie->tcp && tcpr_is_peer(a->ie, b->ie))
				peer = b;
		}
		const TcpStreamEntry *te = a->ie->tcp;
		if (peer)
			a->q = (struct tcpr_outq){ .acked = tcpr_peer_received(te, peer->ie->tcp) };
		else if (te->has_outq_notsent && te->outq_notsent <= te->outq.len)
			/* exact: what was sent and not acknowledged */
			a->q = (struct tcpr_outq){ .inflight = (uint32_t)(te->outq.len -
									  te->outq_notsent) };
		else /* images without the count: bounded by the window */
			a->q = (struct tcpr_outq){ .inflight = (uint32_t)min_t(size_t, te->outq.len,
									       te->snd_wnd) };
	}
}

/* An established connection, up to its send queue (sent once the lock is gone). */
static int build_established(struct fs_rst *r, struct rst_file *f)
{
	struct inet_kd *kd = f->kd;
	const InetSkEntry *ie = kd->ie;
	const TcpStreamEntry *te = ie->tcp;
	struct sockaddr_storage src, dst;
	char n[160], why[256];
	int e, fd = inet_socket(ie, false);
	if (fd < 0)
		return pr_err_ret(fd, "PID %d: %s: socket", f->owner, rst_name(ie, n, sizeof(n)));
	kd->fd = fd;
	/* The receive buffer before connect: the window is computed from it there. The
	 * send buffer must hold the whole send queue (the dumped one did; an autotuned one
	 * starts small): raised here, set exactly after the queue is sent. */
	int snd = (int)min_t(size_t, max_t(size_t, ie->sndbuf, 2 * te->outq.len + (256u << 10)),
			     INT32_MAX) /
		  2;
	if (((ie->buf_lock & 2) &&
	     (e = set_int(fd, SOL_SOCKET, SO_RCVBUFFORCE, (int)ie->rcvbuf / 2)) < 0) ||
	    (e = set_int(fd, SOL_SOCKET, SO_SNDBUFFORCE, snd)) < 0)
		return pr_err_ret(e, "PID %d: %s: buffers", f->owner, rst_name(ie, n, sizeof(n)));
	socklen_t sl = make_sa(ie, &ie->src_addr, ie->src_port, &src);
	socklen_t dl = make_sa(ie, &ie->dst_addr, ie->dst_port, &dst);
	e = tcpr_restore(fd, te, &kd->q, (struct sockaddr *)&src, sl, (struct sockaddr *)&dst, dl,
			 why, sizeof(why));
	if (e < 0) {
		pr_err("PID %d: %s: tcp repair: %s", f->owner, rst_name(ie, n, sizeof(n)), why);
		return e;
	}
	pr_debug("PID %d: %s: repaired (%zu bytes received, %zu to send: %u of them already "
		 "received by the peer, %u queued as in flight)",
		 f->owner, rst_name(ie, n, sizeof(n)), te->inq.len, te->outq.len, kd->q.acked,
		 kd->q.inflight);
	return 0;
}

/* After the unlock: the send queue, then the remaining options. */
static int finish_established(struct rst_file *f)
{
	struct inet_kd *kd = f->kd;
	const InetSkEntry *ie = kd->ie;
	char n[160], why[256];
	int e = inet_post_opts(kd->fd, ie);
	if (e == 0 && (e = tcpr_window_probe(kd->fd)) < 0)
		return pr_err_ret(e, "PID %d: %s: window probe", f->owner,
				  rst_name(ie, n, sizeof(n)));
	size_t skip = (size_t)kd->q.acked + kd->q.inflight;
	if (e == 0 && (e = tcpr_send_queue(kd->fd, ie->tcp->outq.data + skip,
					   ie->tcp->outq.len - skip, why, sizeof(why))) < 0) {
		pr_err("PID %d: %s: %s", f->owner, rst_name(ie, n, sizeof(n)), why);
		return e;
	}
	if (e == 0)
		e = inet_bufs(kd->fd, ie);
	return e < 0 ? pr_err_ret(e, "PID %d: %s: options", f->owner, rst_name(ie, n, sizeof(n)))
		     : 0;
}

/* Remove every lock named by the tree's connections (once per name). */
static int unlock_all(struct fs_rst *r)
{
	for (size_t i = 0; i < r->nfiles; i++) {
		const struct inet_kd *kd = is_inet(&r->files[i]) ? r->files[i].kd : NULL;
		bool seen = false;
		if (!kd || !kd->ie->netlock)
			continue;
		for (size_t j = 0; j < i && !seen; j++) {
			const struct inet_kd *o = is_inet(&r->files[j]) ? r->files[j].kd : NULL;
			seen = o && o->ie->netlock && !strcmp(o->ie->netlock, kd->ie->netlock);
		}
		int e = seen ? 0 : netlock_unlock(kd->ie->netlock);
		if (e < 0)
			return e;
	}
	return 0;
}

/* linked hook: the first TCP file builds every TCP socket of the tree, in order. */
static int inet_linked(struct fs_rst *r, struct rst_file *f)
{
	struct inet_kd *kd = f->kd;
	int e = 0;
	if (kd->built)
		return 0;
	for (size_t i = 0; i < r->nfiles; i++)
		if (is_inet(&r->files[i]))
			((struct inet_kd *)r->files[i].kd)->built = true;
	for (size_t i = 0; i < r->nfiles && e == 0; i++)
		if (is_inet(&r->files[i]) && !((struct inet_kd *)r->files[i].kd)->ie->tcp)
			e = build_plain(r, &r->files[i]);
	plan_outq(r);
	for (size_t i = 0; i < r->nfiles && e == 0; i++)
		if (is_inet(&r->files[i]) && ((struct inet_kd *)r->files[i].kd)->ie->tcp)
			e = build_established(r, &r->files[i]);
	if (e == 0)
		e = unlock_all(r);
	for (size_t i = 0; i < r->nfiles && e == 0; i++)
		if (is_inet(&r->files[i]) && ((struct inet_kd *)r->files[i].kd)->ie->tcp)
			e = finish_established(&r->files[i]);
	/* failed: the rebuilt connections go back to repair mode, so closing them sends
	 * nothing to their peers (a retry of the restore can still rebuild them) */
	for (size_t i = 0; i < r->nfiles && e < 0; i++) {
		const struct inet_kd *k = is_inet(&r->files[i]) ? r->files[i].kd : NULL;
		if (k && k->fd >= 0 && k->ie->tcp)
			(void)tcpr_repair(k->fd, true, false);
	}
	return e;
}

/* Stub: a dup of the restorer's socket (same description: flags included). */
static int inet_open(struct fs_rst *r, struct rst_file *f, int base, char *err, size_t errlen)
{
	struct inet_kd *kd = f->kd;
	if (kd->fd < 0)
		return fs_stub_err(err, errlen, EBADF, "tcp socket %u was not built", f->id);
	int fd = fcntl(kd->fd, F_DUPFD_CLOEXEC, base);
	return fd < 0 ? fs_stub_err(err, errlen, errno, "tcp socket: dup: %m") : fd;
}

const struct fd_ops fd_inet_ops = {
	.name = "tcp",
	.kind = FD_KIND__FDK_INET,
	.match = inet_match,
	.check = inet_check,
	.dump = inet_dump,
	.prepare = inet_prepare,
	.open = inet_open,
	.release = inet_release,
	.linked = inet_linked,
	.finish = inet_finish,
};
