/*
 * fd-unix: AF_UNIX sockets (stream, dgram, seqpacket).
 *
 * Dump: sock_diag (unix-diag.c) gives inode, type, state, peer, name, pending
 * connections and shutdown bits; getsockopt on our pidfd_getfd copy gives SO_SNDBUF,
 * SO_RCVBUF, SO_PASSCRED; fdinfo flags give O_NONBLOCK. The receive queue is read
 * without consuming it: SO_PEEK_OFF set to 0 on the (shared) socket, recvmsg(MSG_PEEK)
 * until EAGAIN (each call returns the next message of a dgram/seqpacket queue, or the
 * next bytes of a stream), then SO_PEEK_OFF is put back. Refused, with one line naming
 * pid, fd and the reason: listening sockets with unaccepted connections, SCM_RIGHTS in
 * flight, zero-length datagrams, queued data on a socket without a peer (except a named
 * dgram socket), relative filesystem names, sockets of another network namespace, and
 * (at fs_dump_finish) a peer outside the dumped tree or a one-way connected dgram.
 *
 * Restore: a connected pair (both ends in the tree: socketpair, or an accepted
 * connection with its client) is recreated with socketpair() when its first end is
 * opened; each end's queue is refilled by writing into the other end, then the
 * shutdown bits and status flags are applied. Others: socket(), bind() to the same
 * name (abstract or absolute path; a stale socket file, one no live socket is bound
 * to, is unlinked first by prepare), listen(backlog); queued datagrams of a named dgram
 * socket are sent to it from a fresh unnamed socket (their sender address is lost).
 * Accepted stream sockets lose the listener's name they reported (getsockname).
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "fs/unix-priv.h"

#define USK_PEEK_BUF	(4u << 20)  /* one message at most */
#define USK_MAX_QUEUE	(32u << 20) /* queued bytes of one socket */
#define USK_MAX_MSGS	(1u << 20)
#define USK_ESTABLISHED 1
#define USK_CLOSE	7
#define USK_LISTEN	10

struct usk_kd {
	uint64_t ino, peer;
	int type, state, flags, shutdown, backlog, passcred;
	uint32_t sndbuf, rcvbuf;
	char name[108];
	size_t name_len;
	size_t nmsg;
	uint32_t *lens; /* nmsg message lengths */
	uint8_t *data;	/* their bytes, in order */
	int pre_fd;	/* stub: made with the partner's socketpair, -1 before */
};

static bool unix_match(const struct fd_parms *p)
{
	int dom = 0;
	socklen_t l = sizeof(dom);
	return S_ISSOCK(p->st.st_mode) && p->lfd >= 0 &&
	       getsockopt(p->lfd, SOL_SOCKET, SO_DOMAIN, &dom, &l) == 0 && dom == AF_UNIX;
}

static int usk_fail(const struct fd_parms *p, const char *why)
{
	pr_err("PID %d fd %d: unix socket ('%s'): %s: not supported", p->pid, p->fd, p->link, why);
	return -EOPNOTSUPP;
}

static int usk_add_msg(UnixSkEntry *ue, const uint8_t *buf, size_t n, bool append)
{
	if (append && ue->n_rqueue) {
		ProtobufCBinaryData *b = &ue->rqueue[ue->n_rqueue - 1];
		uint8_t *nd = realloc(b->data, b->len + n);
		if (!nd)
			return -ENOMEM;
		memcpy(nd + b->len, buf, n);
		b->data = nd;
		b->len += n;
		return 0;
	}
	ProtobufCBinaryData *v = realloc(ue->rqueue, (ue->n_rqueue + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	ue->rqueue = v;
	v[ue->n_rqueue].data = malloc(n ? n : 1);
	if (!v[ue->n_rqueue].data)
		return -ENOMEM;
	memcpy(v[ue->n_rqueue].data, buf, n);
	v[ue->n_rqueue++].len = n;
	return 0;
}

/* One peeked message: refuse passed fds (closing the copies the peek gave us). */
static int usk_check_cmsg(const struct fd_parms *p, struct msghdr *mh)
{
	bool rights = false;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		rights = true;
		size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++)
			close(((int *)CMSG_DATA(c))[i]);
	}
	if (rights || (mh->msg_flags & MSG_CTRUNC))
		return usk_fail(p, "file descriptors in flight (SCM_RIGHTS)");
	return 0;
}

/* Walk the receive queue with MSG_PEEK and SO_PEEK_OFF. A 0 return is the end of the
 * queue when the socket is shut down for reading (and, for stream and seqpacket, every
 * byte sock_diag counted was seen); otherwise it is a zero-length message. */
static int usk_peek_loop(const struct fd_parms *p, const struct usk_info *u, UnixSkEntry *ue,
			 uint8_t *buf)
{
	char cbuf[CMSG_SPACE(64 * sizeof(int))] __attribute__((aligned(8)));
	size_t total = 0;
	for (;;) {
		struct iovec iov = { .iov_base = buf, .iov_len = USK_PEEK_BUF };
		struct msghdr mh = { .msg_iov = &iov,
				     .msg_iovlen = 1,
				     .msg_control = cbuf,
				     .msg_controllen = sizeof(cbuf) };
		ssize_t n = recvmsg(p->lfd, &mh, MSG_PEEK | MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n < 0)
			return pr_perror("PID %d fd %d: unix socket: peek", p->pid, p->fd);
		int r = usk_check_cmsg(p, &mh);
		if (r < 0)
			return r;
		if (mh.msg_flags & MSG_TRUNC)
			return usk_fail(p, "a queued message larger than 4 MiB");
		if (n == 0 && (u->shutdown & 1) && (ue->type == SOCK_DGRAM || total == u->rqlen))
			return 0; /* end of data after a shutdown */
		if (n == 0)
			return usk_fail(p, "a queued zero-length message");
		total += (size_t)n;
		if (total > USK_MAX_QUEUE || ue->n_rqueue >= USK_MAX_MSGS)
			return usk_fail(p, "more than 32 MiB queued");
		if ((r = usk_add_msg(ue, buf, (size_t)n, ue->type == SOCK_STREAM)) < 0)
			return r;
	}
}

static int usk_peek(const struct fd_parms *p, const struct usk_info *u, UnixSkEntry *ue)
{
	int old = -1, zero = 0;
	socklen_t l = sizeof(old);
	if (getsockopt(p->lfd, SOL_SOCKET, SO_PEEK_OFF, &old, &l) < 0 ||
	    setsockopt(p->lfd, SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof(zero)) < 0)
		return pr_perror("PID %d fd %d: unix socket: SO_PEEK_OFF", p->pid, p->fd);
	uint8_t *buf = malloc(USK_PEEK_BUF);
	int r = buf ? usk_peek_loop(p, u, ue, buf) : -ENOMEM;
	free(buf);
	if (setsockopt(p->lfd, SOL_SOCKET, SO_PEEK_OFF, &old, sizeof(old)) < 0 && r == 0)
		r = pr_perror("PID %d fd %d: unix socket: restoring SO_PEEK_OFF", p->pid, p->fd);
	return r;
}

static int usk_sockopts(const struct fd_parms *p, UnixSkEntry *ue)
{
	int v[3] = { 0 };
	socklen_t l0 = sizeof(int), l1 = sizeof(int), l2 = sizeof(int);
	if (getsockopt(p->lfd, SOL_SOCKET, SO_SNDBUF, &v[0], &l0) < 0 ||
	    getsockopt(p->lfd, SOL_SOCKET, SO_RCVBUF, &v[1], &l1) < 0 ||
	    getsockopt(p->lfd, SOL_SOCKET, SO_PASSCRED, &v[2], &l2) < 0)
		return pr_perror("PID %d fd %d: unix socket: getsockopt", p->pid, p->fd);
	ue->sndbuf = (uint32_t)v[0];
	ue->rcvbuf = (uint32_t)v[1];
	ue->passcred = v[2] != 0;
	return 0;
}

static int usk_remember(struct fs_dump *d, const struct fd_parms *p, uint64_t ino, uint64_t peer)
{
	if (d->nusks == d->cap_usks) {
		size_t cap = d->cap_usks ? 2 * d->cap_usks : 16;
		struct dump_usk *v = realloc(d->usks, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		d->usks = v;
		d->cap_usks = cap;
	}
	d->usks[d->nusks++] =
		(struct dump_usk){ .ino = ino, .peer = peer, .pid = p->pid, .fd = p->fd };
	return 0;
}

/* What sock_diag says, checked. */
static int usk_describe(const struct usk_info *u, const struct fd_parms *p, UnixSkEntry *ue)
{
	char why[96];
	if (u->type != SOCK_STREAM && u->type != SOCK_DGRAM && u->type != SOCK_SEQPACKET)
		return usk_fail(p, "unknown socket type");
	if (u->state == USK_LISTEN && (u->icons || u->rqlen)) {
		snprintf(why, sizeof(why), "listening with %u unaccepted connection(s)",
			 max_t(uint32_t, u->icons, u->rqlen));
		return usk_fail(p, why);
	}
	if (u->name_len && u->name[0] != '\0' && u->name[0] != '/')
		return usk_fail(p, "bound to a relative path");
	ue->ino = u->ino;
	ue->type = u->type;
	ue->state = u->state;
	ue->peer_ino = u->peer;
	ue->shutdown = u->shutdown;
	ue->backlog = u->state == USK_LISTEN ? u->wqlen : 0;
	if (u->name_len) {
		ue->has_name = true;
		ue->name.len = u->name_len;
		ue->name.data = malloc(u->name_len);
		if (!ue->name.data)
			return -ENOMEM;
		memcpy(ue->name.data, u->name, u->name_len);
	}
	return 0;
}

static int unix_dump(struct fs_dump *d, const struct fd_parms *p, FileEntry *fe)
{
	int r;
	UnixSkEntry *ue = malloc(sizeof(*ue));
	if (!ue)
		return -ENOMEM;
	unix_sk_entry__init(ue);
	fe->usk = ue;
	if (!d->diag && (r = usk_diag_load(&d->diag)) < 0)
		return r;
	const struct usk_info *u = usk_diag_find(d->diag, p->st.st_ino);
	if (!u)
		return usk_fail(p, "not listed by sock_diag (another network namespace?)");
	if ((r = usk_describe(u, p, ue)) < 0 || (r = usk_sockopts(p, ue)) < 0)
		return r;
	ue->flags = p->flags;
	if (u->state != USK_LISTEN && (r = usk_peek(p, u, ue)) < 0)
		return r;
	if (ue->n_rqueue && !u->peer && !(u->type == SOCK_DGRAM && u->name_len))
		return usk_fail(p, "queued data without a peer");
	pr_debug("PID %d fd %d: unix %u type %u state %u peer %u, %zu queued", p->pid, p->fd,
		 u->ino, u->type, u->state, u->peer, ue->n_rqueue);
	return usk_remember(d, p, u->ino, u->peer);
}

/* Every peer must be in the dumped tree, and connected back. */
static int unix_finish(struct fs_dump *d)
{
	for (size_t i = 0; i < d->nusks; i++) {
		const struct dump_usk *s = &d->usks[i], *peer = NULL;
		if (!s->peer)
			continue;
		for (size_t j = 0; j < d->nusks && !peer; j++)
			if (d->usks[j].ino == s->peer)
				peer = &d->usks[j];
		if (!peer) {
			pr_err("PID %d fd %d: unix socket socket:[%llu]: its peer socket:[%llu] is "
			       "outside the dumped tree: not supported",
			       s->pid, s->fd, (unsigned long long)s->ino,
			       (unsigned long long)s->peer);
			return -EOPNOTSUPP;
		}
		if (peer->peer != s->ino) {
			pr_err("PID %d fd %d: unix socket socket:[%llu]: connected to "
			       "socket:[%llu] which is not connected back (one-way dgram): not "
			       "supported",
			       s->pid, s->fd, (unsigned long long)s->ino,
			       (unsigned long long)s->peer);
			return -EOPNOTSUPP;
		}
	}
	return 0;
}

/* ---- restore -------------------------------------------------------------------- */

static void unix_release(struct rst_file *f)
{
	struct usk_kd *kd = f->kd;
	if (kd) {
		free(kd->lens);
		free(kd->data);
	}
	free(kd);
	f->kd = NULL;
}

/* Copy the queue into kd (bounded). */
static int usk_load_queue(const UnixSkEntry *ue, struct usk_kd *kd, uint32_t id)
{
	size_t total = 0;
	if (ue->n_rqueue > USK_MAX_MSGS)
		return pr_err_ret(-EBADMSG, "files.img: unix %u: too many queued messages", id);
	for (size_t i = 0; i < ue->n_rqueue; i++) {
		total += ue->rqueue[i].len;
		if (total > USK_MAX_QUEUE ||
		    (kd->type != SOCK_STREAM &&
		     (!ue->rqueue[i].len || ue->rqueue[i].len > USK_PEEK_BUF)))
			return pr_err_ret(-EBADMSG, "files.img: unix %u: bad queue", id);
	}
	kd->lens = calloc(ue->n_rqueue + 1, sizeof(*kd->lens));
	kd->data = malloc(total + 1);
	if (!kd->lens || !kd->data)
		return -ENOMEM;
	total = 0;
	for (size_t i = 0; i < ue->n_rqueue; i++) {
		memcpy(kd->data + total, ue->rqueue[i].data, ue->rqueue[i].len);
		kd->lens[i] = (uint32_t)ue->rqueue[i].len;
		total += ue->rqueue[i].len;
	}
	kd->nmsg = ue->n_rqueue;
	return 0;
}

/* A filesystem name we will bind: free it if a stale socket file holds it. */
static int usk_free_path(const struct usk_kd *kd)
{
	char path[sizeof(kd->name) + 1];
	struct stat st;
	struct usk_diag *t;
	memcpy(path, kd->name, kd->name_len);
	path[kd->name_len] = 0;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : pr_perror("unix socket name '%s'", path);
	if (!S_ISSOCK(st.st_mode))
		return pr_err_ret(-EEXIST, "unix socket name '%s' exists and is not a socket",
				  path);
	int e = usk_diag_load(&t);
	if (e < 0)
		return e;
	bool live = false;
	uint32_t kdev = major(st.st_dev) << 20 | minor(st.st_dev); /* the kernel's s_dev */
	for (size_t i = 0; i < t->n && !live; i++)
		live = t->v[i].vfs_ino == st.st_ino && t->v[i].vfs_dev == kdev;
	usk_diag_free(t);
	if (live)
		return pr_err_ret(-EADDRINUSE, "unix socket name '%s' is in use by a live socket",
				  path);
	if (unlink(path) < 0)
		return pr_perror("cannot remove stale socket file '%s'", path);
	pr_debug("removed stale socket file '%s'", path);
	return 0;
}

static int unix_prepare(struct fs_rst *r, const FileEntry *fe, struct rst_file *f)
{
	const UnixSkEntry *ue = fe->usk;
	if (!ue)
		return pr_err_ret(-EBADMSG, "files.img: id %u has no unix part", fe->id);
	if ((ue->type != SOCK_STREAM && ue->type != SOCK_DGRAM && ue->type != SOCK_SEQPACKET) ||
	    (ue->state != USK_ESTABLISHED && ue->state != USK_CLOSE && ue->state != USK_LISTEN) ||
	    (ue->has_name && (ue->name.len == 0 || ue->name.len > 108)) || ue->sndbuf > INT32_MAX ||
	    ue->rcvbuf > INT32_MAX || ue->backlog > 65535 || ue->shutdown > 3 || ue->ino == 0 ||
	    ue->peer_ino == ue->ino ||
	    (ue->has_name && ue->name.data[0] && ue->name.data[0] != '/'))
		return pr_err_ret(-EBADMSG, "files.img: id %u: bad unix socket", fe->id);
	struct usk_kd *kd = calloc(1, sizeof(*kd));
	if (!kd)
		return -ENOMEM;
	f->kd = kd;
	*kd = (struct usk_kd){ .ino = ue->ino,
			       .peer = ue->peer_ino,
			       .type = (int)ue->type,
			       .state = (int)ue->state,
			       .flags = (int)(ue->flags & O_NONBLOCK),
			       .shutdown = (int)ue->shutdown,
			       .backlog = (int)ue->backlog,
			       .passcred = ue->passcred,
			       .sndbuf = ue->sndbuf,
			       .rcvbuf = ue->rcvbuf,
			       .pre_fd = -1 };
	if (ue->has_name) {
		memcpy(kd->name, ue->name.data, ue->name.len);
		kd->name_len = ue->name.len;
		if (kd->name[0] && memchr(kd->name, 0, kd->name_len) != kd->name + kd->name_len - 1)
			return pr_err_ret(-EBADMSG, "files.img: id %u: bad socket path", fe->id);
	}
	int e = usk_load_queue(ue, kd, fe->id);
	if (e < 0)
		return e;
	if (kd->peer)
		f->group = (uint64_t)FD_KIND__FDK_UNIX << 56 | min_t(uint64_t, kd->ino, kd->peer);
	if (kd->name_len && kd->name[0] && (!kd->peer || kd->type == SOCK_DGRAM))
		return usk_free_path(kd);
	return 0;
}

/* Stub: buffers and SO_PASSCRED (before any data is queued). */
static int usk_setup(int fd, const struct usk_kd *kd, char *err, size_t errlen)
{
	int snd = (int)kd->sndbuf / 2, rcv = (int)kd->rcvbuf / 2, pc = kd->passcred;
	if ((snd && setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &snd, sizeof(snd)) < 0) ||
	    (rcv && setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof(rcv)) < 0) ||
	    setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &pc, sizeof(pc)) < 0)
		return fs_stub_err(err, errlen, errno, "unix socket %llu: setsockopt: %m",
				   (unsigned long long)kd->ino);
	return 0;
}

static int usk_bind(int fd, const struct usk_kd *kd, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	memcpy(sa.sun_path, kd->name, kd->name_len);
	socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + kd->name_len);
	if (bind(fd, (struct sockaddr *)&sa, len) < 0)
		return fs_stub_err(err, errlen, errno, "unix socket %llu: bind '%s%.*s': %m",
				   (unsigned long long)kd->ino, kd->name[0] ? "" : "@",
				   (int)kd->name_len - 1, kd->name + (kd->name[0] ? 0 : 1));
	return 0;
}

/* Stub: send kd's queued messages through fd (connected to kd's socket), or to the
 * name with sendto when to_name. */
static int usk_requeue(int fd, const struct usk_kd *kd, bool to_name, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + kd->name_len);
	size_t off = 0;
	memcpy(sa.sun_path, kd->name, kd->name_len);
	for (size_t i = 0; i < kd->nmsg; i++) {
		size_t done = 0;
		do {
			ssize_t n =
				sendto(fd, kd->data + off + done, kd->lens[i] - done,
				       MSG_DONTWAIT | MSG_NOSIGNAL,
				       to_name ? (struct sockaddr *)&sa : NULL, to_name ? len : 0);
			if (n < 0)
				return fs_stub_err(err, errlen, errno,
						   "unix socket %llu: requeue %u bytes: %m",
						   (unsigned long long)kd->ino, kd->lens[i]);
			done += (size_t)n;
		} while (done < kd->lens[i] && kd->type == SOCK_STREAM);
		if (done != kd->lens[i])
			return fs_stub_err(err, errlen, EIO, "unix socket %llu: short requeue",
					   (unsigned long long)kd->ino);
		off += kd->lens[i];
	}
	return 0;
}

/* Stub: shutdown bits and status flags, last. */
static int usk_finish(int fd, const struct usk_kd *kd, char *err, size_t errlen)
{
	static const int how[4] = { -1, SHUT_RD, SHUT_WR, SHUT_RDWR };
	if (kd->shutdown && shutdown(fd, how[kd->shutdown]) < 0 && errno != ENOTCONN)
		return fs_stub_err(err, errlen, errno, "unix socket %llu: shutdown: %m",
				   (unsigned long long)kd->ino);
	if (fcntl(fd, F_SETFL, kd->flags) < 0)
		return fs_stub_err(err, errlen, errno, "unix socket: F_SETFL: %m");
	return 0;
}

static struct usk_kd *usk_partner(struct fs_rst *r, const struct usk_kd *kd)
{
	for (size_t i = 0; i < r->nfiles; i++) {
		struct usk_kd *o = r->files[i].ops == &fd_unix_ops ? r->files[i].kd : NULL;
		if (o && o->ino == kd->peer)
			return o->peer == kd->ino ? o : NULL;
	}
	return NULL;
}

/* Restorer: the peer of a connected socket must be restored too and point back. */
static int unix_linked(struct fs_rst *r, struct rst_file *f)
{
	const struct usk_kd *kd = f->kd;
	if (kd->peer && !usk_partner(r, kd))
		return pr_err_ret(-EBADMSG,
				  "PID %d: unix socket %llu (file %u): its peer %llu is not among "
				  "the restored files",
				  r->pid, (unsigned long long)kd->ino, f->id,
				  (unsigned long long)kd->peer);
	return 0;
}

/* Stub: both ends of a connected pair; returns ours, leaves the partner's in pre_fd. */
static int usk_open_pair(struct fs_rst *r, struct usk_kd *kd, int base, char *err, size_t errlen)
{
	struct usk_kd *pk = usk_partner(r, kd);
	int sv[2], e;
	if (!pk)
		return fs_stub_err(err, errlen, ENOENT, "unix socket %llu: peer %llu not restored",
				   (unsigned long long)kd->ino, (unsigned long long)kd->peer);
	if (socketpair(AF_UNIX, kd->type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0)
		return fs_stub_err(err, errlen, errno, "socketpair: %m");
	sv[0] = fs_stub_move_high(sv[0], base);
	sv[1] = fs_stub_move_high(sv[1], base);
	if (sv[0] < 0 || sv[1] < 0)
		return fs_stub_err(err, errlen, EMFILE, "socketpair: no fd above %d", base);
	if ((e = usk_setup(sv[0], kd, err, errlen)) < 0 ||
	    (e = usk_setup(sv[1], pk, err, errlen)) < 0)
		return e;
	if (kd->type == SOCK_DGRAM &&
	    ((kd->name_len && (e = usk_bind(sv[0], kd, err, errlen)) < 0) ||
	     (pk->name_len && (e = usk_bind(sv[1], pk, err, errlen)) < 0)))
		return e;
	if ((e = usk_requeue(sv[1], kd, false, err, errlen)) < 0 ||
	    (e = usk_requeue(sv[0], pk, false, err, errlen)) < 0 ||
	    (e = usk_finish(sv[0], kd, err, errlen)) < 0 ||
	    (e = usk_finish(sv[1], pk, err, errlen)) < 0)
		return e;
	pk->pre_fd = sv[1];
	return sv[0];
}

/* Stub: a socket without a peer: socket, bind, listen, requeue datagrams. */
static int usk_open_single(struct usk_kd *kd, int base, char *err, size_t errlen)
{
	int e, fd = socket(AF_UNIX, kd->type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return fs_stub_err(err, errlen, errno, "socket(AF_UNIX): %m");
	if ((fd = fs_stub_move_high(fd, base)) < 0)
		return fs_stub_err(err, errlen, -fd, "socket: no fd above %d", base);
	if ((e = usk_setup(fd, kd, err, errlen)) < 0 ||
	    (kd->name_len && (e = usk_bind(fd, kd, err, errlen)) < 0))
		return e;
	if (kd->state == USK_LISTEN && listen(fd, kd->backlog) < 0)
		return fs_stub_err(err, errlen, errno, "unix socket %llu: listen: %m",
				   (unsigned long long)kd->ino);
	if (kd->nmsg) {
		int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (s < 0)
			return fs_stub_err(err, errlen, errno, "socket(AF_UNIX): %m");
		e = usk_requeue(s, kd, true, err, errlen);
		close(s);
		if (e < 0)
			return e;
	}
	return (e = usk_finish(fd, kd, err, errlen)) < 0 ? e : fd;
}

static int unix_open(struct fs_rst *r, struct rst_file *f, int base, char *err, size_t errlen)
{
	struct usk_kd *kd = f->kd;
	if (kd->pre_fd >= 0)
		return kd->pre_fd;
	if (kd->peer)
		return usk_open_pair(r, kd, base, err, errlen);
	return usk_open_single(kd, base, err, errlen);
}

const struct fd_ops fd_unix_ops = {
	.name = "unix",
	.kind = FD_KIND__FDK_UNIX,
	.match = unix_match,
	.dump = unix_dump,
	.prepare = unix_prepare,
	.open = unix_open,
	.release = unix_release,
	.linked = unix_linked,
	.finish = unix_finish,
};
