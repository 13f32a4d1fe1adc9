/*
 * wring: one producer, one consumer thread, a ring of buffers (wring.h). One mutex and
 * one condition variable for both directions: the hand-offs are per MiB or more, so
 * contention is negligible.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "common/util.h"
#include "common/wring.h"

struct wring {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
	wring_fn fn;
	void *arg;
	uint8_t *mem; /* n * size, mapped */
	unsigned n;
	size_t size;
	uint64_t head, tail;
	bool stop;
	int err; /* sticky */
	uint64_t busy_ns;
};

static void *consumer_main(void *a)
{
	struct wring *q = a;
	pthread_mutex_lock(&q->lock);
	for (;;) {
		while (q->tail == q->head && !q->stop)
			pthread_cond_wait(&q->cond, &q->lock);
		if (q->tail == q->head)
			break;
		unsigned k = q->tail % q->n;
		bool skip = q->err != 0;
		pthread_mutex_unlock(&q->lock);
		uint64_t t0 = now_ns();
		int r = skip ? 0 : q->fn(q->arg, k, q->mem + (size_t)k * q->size);
		uint64_t dt = now_ns() - t0;
		pthread_mutex_lock(&q->lock);
		q->busy_ns += dt;
		if (r < 0 && !q->err)
			q->err = r;
		q->tail++;
		pthread_cond_broadcast(&q->cond);
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

int wring_start(unsigned n, size_t size, wring_fn fn, void *arg, struct wring **out)
{
	struct wring *q = calloc(1, sizeof(*q));
	sigset_t all, old;
	int r;

	if (!q)
		return -ENOMEM;
	q->mem = mmap(NULL, n * size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (q->mem == MAP_FAILED) {
		r = -errno;
		free(q);
		return r;
	}
	q->n = n;
	q->size = size;
	q->fn = fn;
	q->arg = arg;
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->cond, NULL);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old); /* inherited by the thread */
	r = pthread_create(&q->thread, NULL, consumer_main, q);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r) {
		pthread_mutex_destroy(&q->lock);
		pthread_cond_destroy(&q->cond);
		munmap(q->mem, n * size);
		free(q);
		return -r;
	}
	*out = q;
	return 0;
}

int wring_get(struct wring *q, unsigned *slot, uint8_t **buf)
{
	pthread_mutex_lock(&q->lock);
	while (q->head - q->tail == q->n)
		pthread_cond_wait(&q->cond, &q->lock);
	unsigned k = q->head % q->n;
	int r = q->err;
	pthread_mutex_unlock(&q->lock);
	*slot = k;
	*buf = q->mem + (size_t)k * q->size;
	return r;
}

int wring_put(struct wring *q)
{
	pthread_mutex_lock(&q->lock);
	q->head++;
	pthread_cond_broadcast(&q->cond);
	int r = q->err;
	pthread_mutex_unlock(&q->lock);
	return r;
}

bool wring_full(struct wring *q)
{
	pthread_mutex_lock(&q->lock);
	bool full = q->head - q->tail == q->n;
	pthread_mutex_unlock(&q->lock);
	return full;
}

int wring_error(struct wring *q)
{
	pthread_mutex_lock(&q->lock);
	int r = q->err;
	pthread_mutex_unlock(&q->lock);
	return r;
}

int wring_drain(struct wring *q)
{
	pthread_mutex_lock(&q->lock);
	while (q->tail != q->head)
		pthread_cond_wait(&q->cond, &q->lock);
	int r = q->err;
	pthread_mutex_unlock(&q->lock);
	return r;
}

uint64_t wring_busy_ns(struct wring *q)
{
	pthread_mutex_lock(&q->lock);
	uint64_t v = q->busy_ns;
	pthread_mutex_unlock(&q->lock);
	return v;
}

int wring_stop(struct wring *q)
{
	if (!q)
		return 0;
	pthread_mutex_lock(&q->lock);
	q->stop = true;
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
	pthread_join(q->thread, NULL);
	int r = q->err;
	pthread_mutex_destroy(&q->lock);
	pthread_cond_destroy(&q->cond);
	munmap(q->mem, q->n * q->size);
	free(q);
	return r;
}
