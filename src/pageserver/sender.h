/*
 * sender: the page server client's send pipeline (docs/transport.md).
 *
 * Frames (wire.h) go out through io_uring: the frames of one call (up to 8, each a
 * header and a payload iovec) form one SENDMSG with MSG_WAITALL, and only one is in
 * flight at a time, so the stream never interleaves; a send that still completes short
 * (an error or a signal) is finished synchronously. File data is cut into FILE_DATA
 * frames of at most PS_MAX_CHUNK bytes, each optionally one lz4 block.
 *
 * Compression: off, on, or auto. Auto keeps estimates of the link's send rate (wire
 * bytes/s), of lz4's speed (input bytes/s) and ratio, refreshed by compressing a sample
 * chunk now and then while off and every chunk while on, and compresses only when
 * compress-then-send of a chunk is estimated faster than sending it raw (with a margin):
 * on a fast link it stays off, on a slow or rate-limited one it turns on. With the peer
 * on the same host (loopback) and no rate limit, auto stays off without sampling: the
 * link is then a copy on the same CPUs that compression would only add to.
 *
 * Invariants: one thread at a time per sender (the client holds its connection lock);
 * every call returns only once its bytes were handed to the kernel (the caller may reuse
 * its buffer); the first error is sticky: every later call returns it.
 */
#ifndef FERRY_PS_SENDER_H
#define FERRY_PS_SENDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum ps_compress { PS_COMPRESS_OFF = 0, PS_COMPRESS_ON = 1, PS_COMPRESS_AUTO = 2 };

/* Parse "on" / "off" / "auto": the enum value or -EINVAL. */
int ps_compress_parse(const char *s);
const char *ps_compress_name(int mode);

struct ps_send_stats {
	uint64_t bytes;	     /* file bytes handed to ps_sender_data */
	uint64_t wire;	     /* bytes on the wire: headers and payloads of every frame */
	uint64_t chunks;     /* FILE_DATA frames */
	uint64_t lz4_chunks; /* of which sent compressed */
	uint64_t lz4_in;     /* raw bytes of the chunks sent compressed */
	uint64_t lz4_out;    /* their compressed size */
	uint64_t probes;     /* chunks compressed to sample (auto) */
	uint64_t switches;   /* auto: decision changes */
	uint64_t send_ns;    /* time spent waiting for sends */
	uint64_t lz4_ns;     /* time spent compressing */
	bool on;	     /* the current decision (auto), or the mode */
	double est_link;     /* estimates (auto): link bytes/s, lz4 input bytes/s, ratio */
	double est_lz4;
	double est_ratio;
	double est_idle; /* auto: share of a chain's time the sending thread was idle */
	bool same_host;	 /* the peer is on this host: auto stays off unless rate limited */
};

struct ps_sender;

/* A sender on the connected stream socket fd (not owned). mode: PS_COMPRESS_*; lz4_ok:
 * the peer agreed on PS_FEAT_LZ4 (without it nothing is compressed). timeout_ms bounds
 * each wait for the socket. 0 and *out, or -errno (logged). */
int ps_sender_new(int fd, int mode, bool lz4_ok, int timeout_ms, struct ps_sender **out);
void ps_sender_free(struct ps_sender *s);

/* Send one frame: header (type, flags 0, file) and len payload bytes. 0 or -errno (not
 * logged: the caller names the peer; see ps_sender_error). */
int ps_sender_frame(struct ps_sender *s, unsigned type, uint32_t file, const void *buf, size_t len);
/* Send len bytes of file `file` as FILE_DATA frames (compressed or not). 0 or -errno. */
int ps_sender_data(struct ps_sender *s, uint32_t file, const void *buf, size_t len);

/* Statistics since the last reset; reset zeroes the counters and the progress total
 * (estimates are kept): a new round. */
void ps_sender_stats(const struct ps_sender *s, struct ps_send_stats *st);
void ps_sender_stats_reset(struct ps_sender *s);

/* Progress line on stderr (when it is a terminal): on/off, and the expected total bytes
 * of the current round (0: unknown, the line shows bytes so far and the rate). The line
 * is updated at most 4 times a second and cleared by ps_sender_progress_end. */
void ps_sender_progress(struct ps_sender *s, bool on, uint64_t total);
void ps_sender_progress_end(struct ps_sender *s);
/* The current round is about to send `bytes` more file bytes (an estimate, e.g. the
 * pages the dump selected: an upper bound): total = max(total, bytes so far) + bytes,
 * so announcements made one after another (one per process) add up. */
void ps_sender_expect(struct ps_sender *s, uint64_t bytes);

/* Process-wide rate limit (token bucket on wire bytes) for every sender: bytes/s, 0 =
 * unlimited. For migrate --bandwidth. */
void ps_sender_set_rate(uint64_t bytes_per_s);

#endif
