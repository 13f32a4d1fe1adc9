/*
 * server-store: the page server's writer thread (store.h): FILE_DATA chunks are written
 * and hashed here while the connection's thread receives the next ones, through a ring
 * of PS_STORE_SLOTS chunk buffers (common/wring.h: order, sticky error, signals
 * blocked in the writer).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>

#include "common/util.h"
#include "common/wring.h"
#include "pageserver/store.h"
#include "pageserver/wire.h"

struct ps_store {
	struct wring *q;
	unsigned slot; /* the one ps_store_buf gave */
	struct ps_store_file *file[PS_STORE_SLOTS];
	size_t len[PS_STORE_SLOTS];
	struct ps_store_file *err_file; /* the file of the first write error (writer) */
};

/* Start writeback of every FLUSH_STEP written and wait for the step before it, so the
 * fsync at FILE_CLOSE finds little left to write: on a disk, the round's time becomes
 * max(network, disk) instead of their sum (1 GiB: the commit wait went from ~1.8 s to
 * the last steps). Advisory: errors surface at fsync. A no-op on tmpfs. */
#define FLUSH_STEP (8u << 20)

static void flush_behind(struct ps_store_file *f)
{
	if (f->written - f->flushed < FLUSH_STEP)
		return;
	(void)sync_file_range(f->fd, f->flushed, f->written - f->flushed, SYNC_FILE_RANGE_WRITE);
	if (f->flushed >= FLUSH_STEP)
		(void)sync_file_range(f->fd, f->flushed - FLUSH_STEP, FLUSH_STEP,
				      SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
					      SYNC_FILE_RANGE_WAIT_AFTER);
	f->flushed = f->written;
}

/* The writer thread's work on one chunk: write, hash, start writeback. */
static int chunk_store(void *arg, unsigned k, uint8_t *buf)
{
	struct ps_store *s = arg;
	struct ps_store_file *f = s->file[k];
	int r = write_full(f->fd, buf, s->len[k]);
	if (r < 0) {
		if (!s->err_file)
			s->err_file = f;
		return r;
	}
	XXH64_update(f->xs, buf, s->len[k]);
	f->written += s->len[k];
	flush_behind(f);
	return 0;
}

int ps_store_new(struct ps_store **out)
{
	struct ps_store *s = calloc(1, sizeof(*s));
	int r;

	if (!s)
		return -ENOMEM;
	if ((r = wring_start(PS_STORE_SLOTS, PS_MAX_CHUNK, chunk_store, s, &s->q)) < 0) {
		free(s);
		return r;
	}
	*out = s;
	return 0;
}

void ps_store_free(struct ps_store *s)
{
	if (!s)
		return;
	(void)wring_stop(s->q);
	free(s);
}

uint8_t *ps_store_buf(struct ps_store *s)
{
	uint8_t *buf;
	(void)wring_get(s->q, &s->slot, &buf); /* an error comes back from ps_store_put */
	return buf;
}

int ps_store_put(struct ps_store *s, struct ps_store_file *f, size_t len,
		 struct ps_store_file **failed)
{
	s->file[s->slot] = f;
	s->len[s->slot] = len;
	int r = wring_put(s->q);
	*failed = s->err_file;
	return r;
}

uint64_t ps_store_busy_ns(struct ps_store *s)
{
	return wring_busy_ns(s->q);
}

int ps_store_drain(struct ps_store *s, struct ps_store_file **failed)
{
	int r = wring_drain(s->q);
	*failed = s->err_file;
	return r;
}
