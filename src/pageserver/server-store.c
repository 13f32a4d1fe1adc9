/*
 * server-store: the page server's writer thread (store.h): FILE_DATA chunks are written
 * and hashed here while the connection's thread receives the next ones.
 *
 * A ring of PS_STORE_SLOTS chunk buffers: slots [tail, head) are queued, the writer
 * takes them in order. One mutex and one condition variable for both directions (the
 * hand-offs are per MiB: contention is negligible).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>

#include "common/util.h"
#include "pageserver/store.h"
#include "pageserver/wire.h"

struct ps_store {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
	uint8_t *mem; /* PS_STORE_SLOTS * PS_MAX_CHUNK */
	struct ps_store_file *file[PS_STORE_SLOTS];
	size_t len[PS_STORE_SLOTS];
	uint64_t head, tail;
	bool stop;
	uint64_t busy_ns; /* writing and hashing */
	int err;	  /* sticky */
	struct ps_store_file *err_file;
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

static void *writer_main(void *arg)
{
	struct ps_store *s = arg;
	pthread_mutex_lock(&s->lock);
	for (;;) {
		while (s->tail == s->head && !s->stop)
			pthread_cond_wait(&s->cond, &s->lock);
		if (s->tail == s->head)
			break;
		unsigned k = s->tail % PS_STORE_SLOTS;
		struct ps_store_file *f = s->file[k];
		bool skip = s->err != 0;
		pthread_mutex_unlock(&s->lock);
		const uint8_t *buf = s->mem + (size_t)k * PS_MAX_CHUNK;
		uint64_t t0 = now_ns();
		int r = skip ? 0 : write_full(f->fd, buf, s->len[k]);
		if (!skip && r == 0) {
			XXH64_update(f->xs, buf, s->len[k]);
			f->written += s->len[k];
			flush_behind(f);
		}
		uint64_t dt = now_ns() - t0;
		pthread_mutex_lock(&s->lock);
		s->busy_ns += dt;
		if (r < 0 && !s->err) {
			s->err = r;
			s->err_file = f;
		}
		s->tail++;
		pthread_cond_broadcast(&s->cond);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

int ps_store_new(struct ps_store **out)
{
	struct ps_store *s = calloc(1, sizeof(*s));
	sigset_t all, old;
	int r;

	if (!s || !(s->mem = malloc((size_t)PS_STORE_SLOTS * PS_MAX_CHUNK))) {
		free(s);
		return -ENOMEM;
	}
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old); /* inherited by the thread */
	r = pthread_create(&s->thread, NULL, writer_main, s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r) {
		pthread_mutex_destroy(&s->lock);
		pthread_cond_destroy(&s->cond);
		free(s->mem);
		free(s);
		return -r;
	}
	*out = s;
	return 0;
}

void ps_store_free(struct ps_store *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	s->stop = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->thread, NULL);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	free(s->mem);
	free(s);
}

uint8_t *ps_store_buf(struct ps_store *s)
{
	pthread_mutex_lock(&s->lock);
	while (s->head - s->tail == PS_STORE_SLOTS)
		pthread_cond_wait(&s->cond, &s->lock);
	unsigned k = s->head % PS_STORE_SLOTS;
	pthread_mutex_unlock(&s->lock);
	return s->mem + (size_t)k * PS_MAX_CHUNK;
}

int ps_store_put(struct ps_store *s, struct ps_store_file *f, size_t len,
		 struct ps_store_file **failed)
{
	pthread_mutex_lock(&s->lock);
	unsigned k = s->head % PS_STORE_SLOTS;
	s->file[k] = f;
	s->len[k] = len;
	s->head++;
	pthread_cond_broadcast(&s->cond);
	int r = s->err;
	*failed = s->err_file;
	pthread_mutex_unlock(&s->lock);
	return r;
}

uint64_t ps_store_busy_ns(struct ps_store *s)
{
	pthread_mutex_lock(&s->lock);
	uint64_t v = s->busy_ns;
	pthread_mutex_unlock(&s->lock);
	return v;
}

int ps_store_drain(struct ps_store *s, struct ps_store_file **failed)
{
	pthread_mutex_lock(&s->lock);
	while (s->tail != s->head)
		pthread_cond_wait(&s->cond, &s->lock);
	int r = s->err;
	*failed = s->err_file;
	pthread_mutex_unlock(&s->lock);
	return r;
}
