/*
 * pageserver: the destination side of the page-server protocol (docs/pageserver.md).
 *
 * `pageserver` / `ferry pageserver` listens on a TCP port and writes every round a
 * client streams into <-D>/<source>/<round>/, exactly the directory a local dump
 * writes. One forked child serves each connection (server-conn.c); the listener
 * (server.c) only accepts, counts and reaps children and handles SIGTERM/SIGINT.
 */
#ifndef FERRY_PAGESERVER_H
#define FERRY_PAGESERVER_H

#include <stdint.h>

#include "pageserver/wire.h"

/* Parses its own options (see --help). Returns the process exit status: 0 after a
 * clean stop (SIGTERM/SIGINT, or --once after a successful connection), 1 on an
 * error, 2 on a usage error. */
int pageserver_main(int argc, char **argv);

/* Frames of types PS_MIG_FIRST..PS_MIG_LAST (migrate's hand-over) go to this extension
 * when one is set (main sets migrate's; the page server itself knows no stages). frame()
 * gets the connection, the header (payload unread), the client's source name, the
 * server's -D fd and the source directory fd (-1 when this connection began no round;
 * else the session lock is held), reads the payload, answers, and returns 0 to go on
 * serving or -errno to end the connection (having sent its own ERROR). */
struct ps_ext {
	int (*frame)(void *ctx, int fd, const struct ps_hdr *h, const char *source, int dirfd,
		     int srcfd, int timeout_ms);
	void *ctx;
};
void pageserver_set_ext(const struct ps_ext *x);

/* ---- internal: the per-connection server (server-conn.c) ------------------------- */
struct ps_serve {
	int dirfd; /* the server's -D */
	const struct ps_key *key;
	int timeout_ms; /* per wait */
};

/* Serve one accepted connection until the client closes or an error: handshake, then
 * rounds. Runs in the forked child; SIGTERM makes it stop (partial round removed).
 * Returns 0 after an orderly close between rounds, else -errno (logged, the peer got
 * an ERROR when it could). Closes fd. */
int ps_serve_conn(const struct ps_serve *s, int fd);

/* Install the child's SIGTERM handler: it shuts the connection down so that the
 * blocked wait returns and the round is removed. */
void ps_serve_sigterm(int fd);

#endif
