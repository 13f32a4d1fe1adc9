/*
 * store: the page server's writer thread, one per connection (server-store.c).
 *
 * The connection's thread (server-conn.c) receives each FILE_DATA chunk straight into
 * a buffer of this ring and queues it; the writer thread writes it to its file and
 * hashes it (XXH64, streaming) while the next chunks are received, so that receiving
 * and storing overlap instead of taking turns (docs/pageserver.md, "Memory").
 *
 * Invariants:
 *  - At most PS_STORE_SLOTS buffers of PS_MAX_CHUNK bytes per connection; the
 *    connection's thread waits for a free one (the backpressure on the peer).
 *  - One writer, one FIFO: a file's bytes are written and hashed in the order received.
 *  - The first write error is sticky: later chunks are dropped unwritten, and every
 *    ps_store_put / ps_store_drain returns it with the file it hit.
 *  - A file's state (struct ps_store_file) belongs to the writer between ps_store_put
 *    and the next ps_store_drain; the caller reads its hash or closes its fd only after
 *    a drain.
 *  - The writer thread runs with every signal blocked.
 */
#ifndef FERRY_PS_STORE_H
#define FERRY_PS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <xxhash.h>

#define PS_STORE_SLOTS 8

/* A file being received; fd, xs (reset) and name set by the caller. */
struct ps_store_file {
	int fd;
	XXH64_state_t *xs;
	const char *name; /* for the caller's error message */
	uint64_t written; /* bytes written (writer) */
	uint64_t flushed; /* writeback started up to here (writer) */
};

struct ps_store;

/* Start the writer thread. 0 and *out, or -errno (not logged). */
int ps_store_new(struct ps_store **out);
/* Drain, stop the thread, free (NULL is fine). */
void ps_store_free(struct ps_store *s);

/* A free buffer of PS_MAX_CHUNK bytes for the next chunk (waits for the writer). */
uint8_t *ps_store_buf(struct ps_store *s);
/* Queue the first len bytes of the buffer ps_store_buf returned for file f. Returns 0,
 * or the sticky write error (-errno) with *failed set to the file it hit. */
int ps_store_put(struct ps_store *s, struct ps_store_file *f, size_t len,
		 struct ps_store_file **failed);
/* Wait until every queued chunk is written and hashed. 0, or the sticky error as for
 * ps_store_put. */
int ps_store_drain(struct ps_store *s, struct ps_store_file **failed);
/* Time the writer spent writing and hashing, in ns. */
uint64_t ps_store_busy_ns(struct ps_store *s);

#endif
