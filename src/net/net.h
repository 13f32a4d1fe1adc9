/*
 * net: the network module's contract (src/net): the network lock (netlock.c), TCP
 * connection repair (tcp.c) and the options of the TCP support (set by main).
 *
 * Network lock. While a tree is checkpointed (and until it is restored),
 * packets of its TCP connections must reach no socket: a host without the socket would
 * answer RST and the peer would drop the connection. One nftables table per lock (in
 * the current network namespace), named by the caller (e.g. "ferry_<root pid>", so
 * concurrent dumps of different trees do not collide), holds two sets of 4-tuples
 * (IPv4, IPv6) and drops every packet matching one of them, in both directions, at the
 * input and output hooks. The table is made with the `nft` command (nftables), fed a
 * script on stdin.
 *
 * Used by the TCP dump (lock before a socket enters repair mode), the restore (unlock
 * once every socket is rebuilt), `ferry net-unlock` and, later, migrate.
 */
#ifndef FERRY_NET_H
#define FERRY_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define NETLOCK_NAME_MAX 64

struct net_tuple {	 /* one TCP connection, seen from the local socket */
	int family;	 /* AF_INET or AF_INET6 */
	uint8_t src[16]; /* local address (4 bytes used for AF_INET), network order */
	uint8_t dst[16]; /* remote address */
	uint16_t sport;	 /* local port, host order */
	uint16_t dport;	 /* remote port */
};

/* Is name a valid lock name ([A-Za-z_][A-Za-z0-9_]*, < NETLOCK_NAME_MAX)? */
int netlock_name_ok(const char *name);
/* Block the n connections of t[] (both directions) under the lock name, creating its
 * table if needed; adding a connection already blocked is fine. 0 or -errno (logged
 * with nft's message). */
int netlock_lock(const char *name, const struct net_tuple *t, size_t n);
/* Remove the lock name and everything it blocks. A lock that does not exist is not an
 * error. 0 or -errno (logged). */
int netlock_unlock(const char *name);

/* ---- options ---------------------------------------------------------------------- */

struct net_opts {
	bool tcp_established; /* dump: established connections allowed (--tcp-established) */
	bool leave_running;   /* dump: the tree resumes after the dump (--leave-running): the
			       * sockets leave repair mode and the lock is removed at the end of
			       * the fd dump (fs_dump_finish), before the tree runs again */
};

/* Set the options (main, before dump_main). Default: all false. */
void net_opts_set(const struct net_opts *o);
const struct net_opts *net_opts_get(void);

/* The lock name of the tree rooted at pid: "ferry_<pid>" into buf (>= NETLOCK_NAME_MAX). */
const char *net_lock_name(char *buf, size_t len, int pid);

/* ---- TCP repair (tcp.c) ----------------------------------------------------------- */

#include "tcp.pb-c.h"

/* TCP_REPAIR on/off (off: with a window probe when probe). 0 or -errno (not logged). */
int tcpr_repair(int fd, bool on, bool probe);
/* Read the repair state of an established socket already in repair mode into te
 * (te->inq.data and te->outq.data malloc'd, freed with the message). The socket is left
 * in repair mode with no queue selected. 0 or -errno; on error why says what failed. */
int tcpr_dump(int fd, TcpStreamEntry *te, char *why, size_t whylen);
/* Are a and b the two ends of one connection (same network namespace)? IPv4 and
 * IPv4-mapped IPv6 addresses compare equal (a dual-stack socket's peer may be AF_INET). */
bool tcpr_is_peer(const InetSkEntry *a, const InetSkEntry *b);
/* The first sequence number of te's send queue (snd_una at the dump). */
uint32_t tcpr_snd_una(const TcpStreamEntry *te);
/* peer is the other end of te's connection, dumped with it: how many bytes at the head of
 * te's send queue peer already holds (sent, received, their ACK not yet processed when
 * the lock fell: delayed, or dropped by the lock). 0 when the two do not fit together. */
uint32_t tcpr_peer_received(const TcpStreamEntry *te, const TcpStreamEntry *peer);
/* How a restored send queue starts. The peer's receive queue may already hold the head
 * of it (sent, received, the ACK delayed or dropped by the lock). Resent as new data,
 * such bytes start a stream whose segments (cut by the restored MSS) need not end where
 * the peer's rcv_nxt is; the peer's ACK then covers bytes the sender has not sent, which
 * the kernel discards with the data it carries, and with the window closed the
 * connection stalls both ways. So: */
struct tcpr_outq {
	uint32_t acked;	   /* head bytes the peer is known to hold (tcpr_peer_received, peer
			    * in the tree): dropped, the queue starts after them */
	uint32_t inflight; /* the next bytes: sent at the dump, the peer may hold some (a
			    * peer outside the tree): queued in repair mode as sent, so any
			    * ACK of the peer is valid; what it lacks is retransmitted */
};
/* Rebuild an established connection on fd (a fresh socket() of the right family):
 * repair on, sequence numbers, timestamp, MSS, bind(src), connect(dst) (no SYN in repair
 * mode), repair options, the receive queue, the in-flight bytes (q), the window (its
 * right edge as dumped), repair off (no probe). The rest of the send queue (from byte
 * q->acked + q->inflight on) is NOT sent: tcpr_send_queue does it once the lock is gone.
 * 0 or -errno with a message in why (not logged). */
int tcpr_restore(int fd, const TcpStreamEntry *te, const struct tcpr_outq *q,
		 const struct sockaddr *src, socklen_t srclen, const struct sockaddr *dst,
		 socklen_t dstlen, char *why, size_t whylen);
/* After the lock is gone: repair on and off again with a window probe, so the peer
 * answers at once with its ACK and current window (a window update lost to the lock
 * would otherwise wait for the persist timer). 0 or -errno (not logged). */
int tcpr_window_probe(int fd);
/* Send the saved send queue normally (the socket is out of repair mode). Waits (bounded,
 * 10 s) for room in the send buffer. 0 or -errno with a message in why. */
int tcpr_send_queue(int fd, const uint8_t *data, size_t len, char *why, size_t whylen);

#endif
