/*
 * sock_tcp_block.h: helpers of the sock_tcp_*inflight tests (included, one copy per
 * test): an nftables table of the test's own that drops the ACKs a receiver sends for
 * new data, so a sender is dumped with bytes in flight that the receiver already holds.
 *
 * The rule drops packets from (sport, dport) whose acknowledgement number differs from
 * the sender's snd_nxt read just before: a window update (which acknowledges nothing
 * new) still passes and lets the sender send into the window, every ACK of those bytes
 * is dropped, however soon the receiver sends it. No timing is involved. The 4-tuple is
 * a set element with a 60 s timeout, so a test killed for good blocks nothing for long;
 * the table itself is removed by the test (at exit, or after the restore).
 */
#ifndef SOCK_TCP_BLOCK_H
#define SOCK_TCP_BLOCK_H

#include <linux/sockios.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "zdtmtst.h"

static char blk_table[64];

/* CLOCK_MONOTONIC in ms. */
static uint64_t blk_now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

/* Segments fd sent that its peer has not acknowledged yet. */
static unsigned int blk_unacked(int fd)
{
	struct tcp_info ti;
	socklen_t l = sizeof(ti);
	memset(&ti, 0, sizeof(ti));
	if (getsockopt(fd, SOL_TCP, TCP_INFO, &ti, &l))
		fail("TCP_INFO: %m");
	return ti.tcpi_unacked;
}

/* Wait (2 s at most) until everything fd sent is acknowledged; who prefixes the
 * failure. */
static void blk_settle(int fd, const char *who)
{
	uint64_t end = blk_now_ms() + 2000;
	while (blk_unacked(fd) && blk_now_ms() < end)
		poll(NULL, 0, 5);
	if (blk_unacked(fd))
		fail("%s%u segments still unacknowledged after 2 s", who, blk_unacked(fd));
}

/* Feed script to `nft -f -`; its exit status (or -1). */
static int blk_nft(const char *script)
{
	FILE *f = popen("nft -f - 2>&1", "w");
	if (!f)
		return -1;
	fputs(script, f);
	return pclose(f);
}

/* Remove the table (a missing one is fine); 0 or nft's status. */
static int blk_del(void)
{
	char s[256];
	snprintf(s, sizeof(s), "add table ip %s\ndelete table ip %s\n", blk_table, blk_table);
	return blk_nft(s);
}

static void blk_del_atexit(void)
{
	(void)blk_del();
}

/* Make the table zdtm_<what>_<pid> (its chain and set, no rule yet); skip the test (77)
 * when nft cannot. */
static void blk_init(const char *what)
{
	char s[512];
	snprintf(blk_table, sizeof(blk_table), "zdtm_%s_%d", what, getpid());
	snprintf(s, sizeof(s),
		 "add table ip %s\n"
		 "add set ip %s blk { type inet_service . inet_service; flags timeout; }\n"
		 "add chain ip %s out { type filter hook output priority -310; }\n",
		 blk_table, blk_table, blk_table);
	if (blk_nft(s))
		test_skip("nft cannot make a table (no nft command or no CAP_NET_ADMIN)");
	atexit(blk_del_atexit);
}

/* The sender's snd_nxt: TCP_REPAIR (we are root, like the dump) for write_seq, minus
 * the bytes not sent yet. The socket leaves repair mode without a window probe. */
static uint32_t blk_snd_nxt(int fd)
{
	int on = TCP_REPAIR_ON, off = TCP_REPAIR_OFF_NO_WP, q = TCP_SEND_QUEUE, none = TCP_NO_QUEUE;
	int seq = 0, unsent = 0;
	socklen_t l = sizeof(seq);
	if (setsockopt(fd, SOL_TCP, TCP_REPAIR, &on, sizeof(on)) ||
	    setsockopt(fd, SOL_TCP, TCP_REPAIR_QUEUE, &q, sizeof(q)) ||
	    getsockopt(fd, SOL_TCP, TCP_QUEUE_SEQ, &seq, &l) || ioctl(fd, SIOCOUTQNSD, &unsent) ||
	    setsockopt(fd, SOL_TCP, TCP_REPAIR_QUEUE, &none, sizeof(none)) ||
	    setsockopt(fd, SOL_TCP, TCP_REPAIR, &off, sizeof(off)))
		fail("reading snd_nxt with TCP_REPAIR: %m");
	return (uint32_t)seq - (uint32_t)unsent;
}

/* From now on drop the packets sport -> dport (host order) acknowledging anything but
 * ack (the sender's snd_nxt). */
static void blk_acks(unsigned int sport, unsigned int dport, uint32_t ack)
{
	char s[512];
	snprintf(s, sizeof(s),
		 "add rule ip %s out ip saddr 127.0.0.1 tcp sport . tcp dport @blk "
		 "tcp ackseq != %u drop\n"
		 "add element ip %s blk { %u . %u timeout 60s }\n",
		 blk_table, ack, blk_table, sport, dport);
	if (blk_nft(s))
		fail("nft: cannot block the ACKs %u -> %u", sport, dport);
}

#endif
