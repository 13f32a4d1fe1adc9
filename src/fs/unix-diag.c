/*
 * unix-diag: the AF_UNIX sockets of this network namespace, as sock_diag netlink
 * (NETLINK_SOCK_DIAG, SOCK_DIAG_BY_FAMILY, raw) reports them: inode, type, state, peer
 * inode, bound name, VFS inode of a filesystem name, pending connections, queue lengths
 * and shutdown bits. Loaded once per dump (all tasks are frozen: the table does not
 * change) and once per restore when a filesystem name must be checked for a live owner.
 * Every attribute length from the kernel is checked before it is used.
 */
#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "fs/unix-priv.h"

#define DIAG_BUF       (32 * 1024)
#define DIAG_MAX_SOCKS (1 << 22)

static int diag_cmp(const void *a, const void *b)
{
	const struct usk_info *x = a, *y = b;
	return (x->ino > y->ino) - (x->ino < y->ino);
}

static int diag_parse_one(struct usk_info *u, const struct unix_diag_msg *m, int len)
{
	memset(u, 0, sizeof(*u));
	u->ino = m->udiag_ino;
	u->type = m->udiag_type;
	u->state = m->udiag_state;
	for (struct rtattr *a = (struct rtattr *)(m + 1); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
		size_t pl = RTA_PAYLOAD(a);
		const void *d = RTA_DATA(a);
		switch (a->rta_type) {
		case UNIX_DIAG_NAME:
			if (pl > sizeof(u->name))
				return -EBADMSG;
			memcpy(u->name, d, pl);
			u->name_len = pl;
			break;
		case UNIX_DIAG_VFS:
			if (pl < sizeof(struct unix_diag_vfs))
				return -EBADMSG;
			u->vfs_ino = ((const struct unix_diag_vfs *)d)->udiag_vfs_ino;
			u->vfs_dev = ((const struct unix_diag_vfs *)d)->udiag_vfs_dev;
			break;
		case UNIX_DIAG_PEER:
			if (pl < 4)
				return -EBADMSG;
			memcpy(&u->peer, d, 4);
			break;
		case UNIX_DIAG_ICONS:
			u->icons = (uint32_t)(pl / 4);
			break;
		case UNIX_DIAG_RQLEN:
			if (pl < sizeof(struct unix_diag_rqlen))
				return -EBADMSG;
			u->rqlen = ((const struct unix_diag_rqlen *)d)->udiag_rqueue;
			u->wqlen = ((const struct unix_diag_rqlen *)d)->udiag_wqueue;
			break;
		case UNIX_DIAG_SHUTDOWN:
			if (pl < 1)
				return -EBADMSG;
			u->shutdown = *(const uint8_t *)d;
			break;
		}
	}
	return 0;
}

/* Append the sockets of one netlink datagram; 1 when the dump is done. */
static int diag_parse(struct usk_diag *t, const char *buf, size_t n)
{
	for (const struct nlmsghdr *h = (const void *)buf; NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
		if (h->nlmsg_type == NLMSG_DONE)
			return 1;
		if (h->nlmsg_type == NLMSG_ERROR) {
			const struct nlmsgerr *e = NLMSG_DATA(h);
			return h->nlmsg_len >= NLMSG_LENGTH(sizeof(*e)) && e->error ? e->error
										    : -EIO;
		}
		if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY ||
		    h->nlmsg_len < NLMSG_LENGTH(sizeof(struct unix_diag_msg)))
			return -EBADMSG;
		if (t->n == t->cap) {
			size_t cap = t->cap ? t->cap * 2 : 256;
			struct usk_info *v =
				cap > DIAG_MAX_SOCKS ? NULL : realloc(t->v, cap * sizeof(*v));
			if (!v)
				return -ENOMEM;
			t->v = v;
			t->cap = cap;
		}
		int len = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof(struct unix_diag_msg)));
		int r = diag_parse_one(&t->v[t->n], NLMSG_DATA(h), len);
		if (r < 0)
			return r;
		t->n++;
	}
	return 0;
}

int usk_diag_load(struct usk_diag **out)
{
	struct {
		struct nlmsghdr nlh;
		struct unix_diag_req r;
	} req = {
		.nlh = { .nlmsg_len = sizeof(req),
			 .nlmsg_type = SOCK_DIAG_BY_FAMILY,
			 .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP,
			 .nlmsg_seq = 1 },
		.r = { .sdiag_family = AF_UNIX,
		       .udiag_states = ~0U,
		       .udiag_show = UDIAG_SHOW_NAME | UDIAG_SHOW_VFS | UDIAG_SHOW_PEER |
				     UDIAG_SHOW_ICONS | UDIAG_SHOW_RQLEN },
	};
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	struct usk_diag *t = calloc(1, sizeof(*t));
	char *buf = malloc(DIAG_BUF);
	int r = 0, fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (fd < 0)
		r = pr_perror("socket(NETLINK_SOCK_DIAG)");
	else if (!t || !buf)
		r = -ENOMEM;
	else if (sendto(fd, &req, sizeof(req), 0, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		r = pr_perror("sock_diag request");
	while (r == 0) {
		ssize_t n = recv(fd, buf, DIAG_BUF, 0);
		if (n < 0)
			r = pr_perror("sock_diag recv");
		else if (n == 0)
			r = pr_err_ret(-EIO, "sock_diag: unexpected end");
		else if ((r = diag_parse(t, buf, (size_t)n)) < 0)
			pr_err("sock_diag: bad reply: %s", strerror(-r));
	}
	free(buf);
	if (fd >= 0)
		close(fd);
	if (r < 0) {
		usk_diag_free(t);
		return r;
	}
	if (t->n)
		qsort(t->v, t->n, sizeof(*t->v), diag_cmp);
	*out = t;
	return 0;
}

const struct usk_info *usk_diag_find(const struct usk_diag *t, uint64_t ino)
{
	struct usk_info key = { .ino = (uint32_t)ino };
	if (!t || !t->n || ino > UINT32_MAX)
		return NULL;
	return bsearch(&key, t->v, t->n, sizeof(*t->v), diag_cmp);
}

void usk_diag_free(struct usk_diag *t)
{
	if (!t)
		return;
	free(t->v);
	free(t);
}

void fd_unix_diag_free(struct usk_diag *t)
{
	usk_diag_free(t);
}
