/*
 * client: the source side of the page server (docs/pageserver.md, docs/transport.md).
 *
 * ps_client_start() connects, authenticates and installs an image sink (img_set_sink):
 * from then on every images directory the dump creates is a round on the server and
 * every file written into it is streamed (page data only there). ps_client_finish()
 * prints the transport statistics and closes.
 *
 * Invariants: one mutex around the connection (files are written from the dump's page
 * writer thread and from the main thread); the first connection error is sticky and
 * logged once, quoting the server's ERROR message when it sent one.
 */
#ifndef FERRY_PS_CLIENT_H
#define FERRY_PS_CLIENT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct ps_client_opts {
	const char *address; /* server host or address; NULL: 127.0.0.1 */
	int port;
	const char *auth_key;  /* key file, NULL: no authentication */
	const char *source_id; /* NULL: "<hostname>-<pid>" */
	int compress;	       /* PS_COMPRESS_* (sender.h) */
	bool json;	       /* ps_client_finish prints {"transport": ...} on stdout */
	bool progress;	       /* progress line on stderr when it is a terminal */
	pid_t pid;	       /* root of the dumped tree: the default source id */
	int kind;	       /* IMG_KIND_DUMP / IMG_KIND_PREDUMP: the rounds' kind */
	int timeout_ms;	       /* per wait on the socket; 0: 60 s */
	bool no_sink;	       /* a control connection only (migrate's STATUS): no sink */
};

struct ps_client;

/* Connect (bounded), handshake, install the image sink. 0 and *out, or -errno (logged
 * with the address and the cause). */
int ps_client_start(const struct ps_client_opts *o, struct ps_client **out);

/* The statistics of the last round (committed or dropped). 0, or -ENOENT before any. */
struct ps_round_info {
	char name[64];
	bool committed;
	uint64_t bytes; /* file bytes streamed (page data and metadata) */
	uint64_t wire;	/* bytes on the wire */
	double secs;	/* ROUND_BEGIN to ROUND_DONE */
};
int ps_client_last_round(const struct ps_client *c, struct ps_round_info *out);

/* The kind (IMG_KIND_*) of the rounds begun from now on. */
void ps_client_set_kind(struct ps_client *c, int kind);

/* Between rounds: send a TYPE frame with REQ (NULL: empty payload) and wait at most
 * timeout_ms for the answer, which must be a WANT frame decoded with DESC into *reply
 * (free with protobuf_c_message_free_unpacked). An ERROR answer is logged quoting the
 * server and returned as -its code; no answer is -ETIMEDOUT, a closed connection
 * -ECONNRESET (logged). Used by migrate's hand-over. */
struct ProtobufCMessageDescriptor;
struct ProtobufCMessage;
int ps_client_call(struct ps_client *c, unsigned type, const struct ProtobufCMessage *req,
		   unsigned want, const struct ProtobufCMessageDescriptor *desc,
		   struct ProtobufCMessage **reply, int timeout_ms);

/* For the progress line's total and ETA (shown when stderr is a terminal): the pages of
 * process pid are about to be copied into the round in progress, at most `bytes` of
 * them (UINT64_MAX: not known, every populated page). The figure is capped by the
 * process's VmRSS + VmSwap (/proc/pid/status: O(1), read only when the line is shown)
 * and added to the round's expected total. Called (through img_sink_expect, the image
 * sink's expect op) by the dump engine once per process, after it selected the pages
 * and before it copies them; with several processes the
 * total grows as each is announced. Thread-safe; a no-op without a streaming client. */
void ps_progress_expect(pid_t pid, uint64_t bytes);

/* Remove the sink, print statistics (ok: the command succeeded), close and free.
 * Returns 0, or -errno if a round was left open (NULL c is fine). */
int ps_client_finish(struct ps_client *c, bool ok);

#endif
