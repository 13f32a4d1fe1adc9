/*
 * netlock: nftables tables that drop the packets of given TCP connections (netlock.h).
 *
 * Table "inet <name>": sets v4 and v6 of concatenated (saddr . sport . daddr . dport)
 * keys, both orientations of every connection, and chains on the input and output hooks
 * at priority -300 (before conntrack and any filter of the host) with one drop rule per
 * set and hook. The script is piped to `nft -f -` in one transaction, so a lock is either fully
 * in place or absent. Unlock is "add table; delete table" (idempotent, one transaction).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "net/net.h"

#define NFT_TIMEOUT_MS 10000
#define NFT_ERR_MAX    1024

int netlock_name_ok(const char *name)
{
	size_t n = name ? strlen(name) : 0;
	if (!n || n >= NETLOCK_NAME_MAX || (name[0] >= '0' && name[0] <= '9'))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!(name[i] == '_' || (name[i] >= 'a' && name[i] <= 'z') ||
		      (name[i] >= 'A' && name[i] <= 'Z') || (name[i] >= '0' && name[i] <= '9')))
			return 0;
	return 1;
}

/* Read the child's stderr until EOF (bounded in size and time). */
static void nft_collect(int efd, char *err, size_t errlen)
{
	size_t got = 0;
	uint64_t end = now_ns() + (uint64_t)NFT_TIMEOUT_MS * 1000000ull;
	for (;;) {
		struct pollfd p = { .fd = efd, .events = POLLIN };
		uint64_t now = now_ns();
		if (now >= end || poll(&p, 1, (int)((end - now) / 1000000ull) + 1) <= 0)
			break;
		ssize_t n = read(efd, err + got, errlen - 1 - got);
		if (n <= 0)
			break;
		got += (size_t)n;
		if (got >= errlen - 1)
			break;
	}
	err[got] = 0;
	for (char *c = err; *c; c++)
		if (*c == '\n' && c[1])
			*c = ' ';
	if (got && err[got - 1] == '\n')
		err[got - 1] = 0;
}

/* Run `nft -f -` with script on stdin. 0 or -errno (logged with nft's stderr). */
static int nft_run(const char *script, const char *what)
{
	int in[2], er[2], status = 0;
	char err[NFT_ERR_MAX];
	if (pipe2(in, O_CLOEXEC) < 0)
		return pr_perror("pipe");
	if (pipe2(er, O_CLOEXEC) < 0) {
		close(in[0]);
		close(in[1]);
		return pr_perror("pipe");
	}
	pid_t pid = fork();
	if (pid == 0) {
		if (dup2(in[0], 0) < 0 || dup2(er[1], 1) < 0 || dup2(er[1], 2) < 0)
			_exit(127);
		/* PATH first; root's usual places when PATH lacks the sbin directories */
		execlp("nft", "nft", "-f", "-", (char *)NULL);
		execl("/usr/sbin/nft", "nft", "-f", "-", (char *)NULL);
		execl("/sbin/nft", "nft", "-f", "-", (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(er[1]);
	if (pid < 0) {
		close(in[1]);
		close(er[0]);
		return pr_perror("fork (nft)");
	}
	void (*old)(int) = signal(SIGPIPE, SIG_IGN);
	int w = write_full(in[1], script, strlen(script));
	signal(SIGPIPE, old);
	close(in[1]);
	nft_collect(er[0], err, sizeof(err));
	close(er[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && w == 0)
		return 0;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
		return pr_err_ret(-ENOENT, "network lock: %s: cannot run 'nft' (nftables)", what);
	pr_err("network lock: %s: nft failed (status %d): '%s'", what,
	       WIFEXITED(status) ? WEXITSTATUS(status) : -1, err);
	return -EIO;
}

/* Append "A . P . B . Q" for one orientation. */
static int put_key(char *buf, size_t len, size_t *off, int family, const uint8_t *a, uint16_t p,
		   const uint8_t *b, uint16_t q)
{
	char sa[INET6_ADDRSTRLEN], sb[INET6_ADDRSTRLEN];
	if (!inet_ntop(family, a, sa, sizeof(sa)) || !inet_ntop(family, b, sb, sizeof(sb)))
		return -EINVAL;
	int n = snprintf(buf + *off, len - *off, "%s%s . %u . %s . %u", *off ? ", " : "", sa, p, sb,
			 q);
	if (n < 0 || (size_t)n >= len - *off)
		return -ENOSPC;
	*off += (size_t)n;
	return 0;
}

/* The elements of one family, both orientations, or "" when none. */
static int keys_of(const struct net_tuple *t, size_t n, int family, char *buf, size_t len)
{
	size_t off = 0;
	int r = 0;
	buf[0] = 0;
	for (size_t i = 0; i < n && r == 0; i++) {
		if (t[i].family != family)
			continue;
		r = put_key(buf, len, &off, family, t[i].src, t[i].sport, t[i].dst, t[i].dport);
		if (r == 0)
			r = put_key(buf, len, &off, family, t[i].dst, t[i].dport, t[i].src,
				    t[i].sport);
	}
	return r;
}

int netlock_lock(const char *name, const struct net_tuple *t, size_t n)
{
	/* "add" creates what is absent; the rules are flushed and re-added in the same
	 * transaction, so locking more connections under one name never duplicates them
	 * and never opens a gap */
	static const char head[] =
		"add table inet %1$s\n"
		"add set inet %1$s v4 { type ipv4_addr . inet_service . ipv4_addr . inet_service; }\n"
		"add set inet %1$s v6 { type ipv6_addr . inet_service . ipv6_addr . inet_service; }\n"
		"add chain inet %1$s in { type filter hook input priority -300; policy accept; }\n"
		"add chain inet %1$s out { type filter hook output priority -300; policy accept; }\n"
		"flush chain inet %1$s in\n"
		"flush chain inet %1$s out\n"
		"add rule inet %1$s in ip saddr . tcp sport . ip daddr . tcp dport @v4 drop\n"
		"add rule inet %1$s in ip6 saddr . tcp sport . ip6 daddr . tcp dport @v6 drop\n"
		"add rule inet %1$s out ip saddr . tcp sport . ip daddr . tcp dport @v4 drop\n"
		"add rule inet %1$s out ip6 saddr . tcp sport . ip6 daddr . tcp dport @v6 drop\n";
	if (!netlock_name_ok(name))
		return pr_err_ret(-EINVAL, "network lock: bad name '%s'", name ? name : "");
	if (n > 65536)
		return pr_err_ret(-E2BIG, "network lock '%s': %zu connections", name, n);
	size_t len =
		sizeof(head) + 16 * NETLOCK_NAME_MAX + 256 + n * 2 * 2 * (INET6_ADDRSTRLEN + 20);
	char *script = malloc(len), *k4 = malloc(len / 2), *k6 = malloc(len / 2);
	int r = -ENOMEM;
	if (!script || !k4 || !k6)
		goto out;
	if ((r = keys_of(t, n, AF_INET, k4, len / 2)) < 0 ||
	    (r = keys_of(t, n, AF_INET6, k6, len / 2)) < 0) {
		r = pr_err_ret(r, "network lock '%s': bad address", name);
		goto out;
	}
	int off = snprintf(script, len, head, name);
	if (off >= 0 && (size_t)off < len && *k4)
		off += snprintf(script + off, len - (size_t)off, "add element inet %s v4 { %s }\n",
				name, k4);
	if (off >= 0 && (size_t)off < len && *k6)
		off += snprintf(script + off, len - (size_t)off, "add element inet %s v6 { %s }\n",
				name, k6);
	if (off < 0 || (size_t)off >= len) {
		r = pr_err_ret(-ENOSPC, "network lock '%s': script too long", name);
		goto out;
	}
	if ((r = nft_run(script, "lock")) == 0)
		pr_debug("network lock '%s': %zu connection(s) blocked", name, n);
out:
	free(script);
	free(k4);
	free(k6);
	return r;
}

int netlock_unlock(const char *name)
{
	char script[3 * NETLOCK_NAME_MAX + 64];
	if (!netlock_name_ok(name))
		return pr_err_ret(-EINVAL, "network lock: bad name '%s'", name ? name : "");
	snprintf(script, sizeof(script), "add table inet %s\ndelete table inet %s\n", name, name);
	int r = nft_run(script, "unlock");
	if (r == 0)
		pr_debug("network lock '%s' removed", name);
	return r;
}
