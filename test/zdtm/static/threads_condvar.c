/*
 * threads_condvar: a bounded queue (mutex + two condition variables) between 2
 * producers and 2 consumers that keep running across the checkpoint, plus one thread
 * parked on a condition variable (futex wait) and one blocked in read() on a pipe.
 * Producers stamp each item with (producer, sequence); every consumer checks that the
 * sequence of each producer only grows, and counts. After the restore the main thread
 * waits (bounded) until 20000 more items went through, stops everyone, and checks:
 * produced == consumed + left in queue, sums agree, the parked thread wakes on the
 * signal, the reader gets its byte.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "zdtmtst.h"

#define NPROD 2
#define NCONS 2
#define QCAP 16
#define MORE 20000

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t not_empty = PTHREAD_COND_INITIALIZER, not_full = PTHREAD_COND_INITIALIZER;
static uint64_t q[QCAP];
static unsigned qh, qt;
static int stop;
static uint64_t produced[NPROD], produced_sum, consumed, consumed_sum;
static int order_errors;

static pthread_mutex_t park_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t park_cond = PTHREAD_COND_INITIALIZER;
static int park_go, park_woke, park_waiting;
static int rd_pipe[2];
static char rd_got;

static void *producer(void *arg)
{
	uint64_t id = (uintptr_t)arg, seq = 0;
	for (;;) {
		pthread_mutex_lock(&lock);
		while (qt - qh == QCAP && !stop)
			pthread_cond_wait(&not_full, &lock);
		if (stop) {
			pthread_mutex_unlock(&lock);
			return NULL;
		}
		q[qt++ % QCAP] = id << 56 | ++seq;
		produced[id]++;
		produced_sum += seq;
		pthread_cond_signal(&not_empty);
		pthread_mutex_unlock(&lock);
		if (seq % 64 == 0) {	/* leave the CPU to the rest of the suite */
			struct timespec ts = { 0, 200000 };
			nanosleep(&ts, NULL);
		}
	}
}

static void *consumer(void *arg)
{
	uint64_t last[NPROD] = { 0 };
	(void)arg;
	for (;;) {
		pthread_mutex_lock(&lock);
		while (qt == qh && !stop)
			pthread_cond_wait(&not_empty, &lock);
		if (qt == qh) {
			pthread_mutex_unlock(&lock);
			return NULL;
		}
		uint64_t v = q[qh++ % QCAP], id = v >> 56, seq = v & ((1ull << 56) - 1);
		if (id >= NPROD || seq <= last[id])
			order_errors++;
		else
			last[id] = seq;
		consumed++;
		consumed_sum += seq;
		pthread_cond_signal(&not_full);
		pthread_mutex_unlock(&lock);
	}
}

static void *parked(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&park_lock);
	park_waiting = 1;
	while (!park_go)
		pthread_cond_wait(&park_cond, &park_lock);
	park_woke = 1;
	pthread_mutex_unlock(&park_lock);
	return NULL;
}

static void *reader(void *arg)
{
	(void)arg;
	while (read(rd_pipe[0], &rd_got, 1) < 0 && errno == EINTR)
		;
	return NULL;
}

static uint64_t count(void)
{
	pthread_mutex_lock(&lock);
	uint64_t c = consumed;
	pthread_mutex_unlock(&lock);
	return c;
}

/* Wait (bounded, 20 s) until the consumers passed target. */
static int wait_count(uint64_t target)
{
	struct timespec ts = { 0, 1000000 };
	for (int i = 0; i < 20000; i++) {
		if (count() >= target)
			return 0;
		nanosleep(&ts, NULL);
	}
	return -1;
}

int main(int argc, char **argv)
{
	pthread_t p[NPROD], c[NCONS], pk, rd;
	uint64_t psum = 0;

	test_init(argc, argv);
	if (pipe(rd_pipe))
		fail("pipe: %m");
	for (uintptr_t i = 0; i < NPROD; i++)
		if (pthread_create(&p[i], NULL, producer, (void *)i))
			fail("pthread_create");
	for (int i = 0; i < NCONS; i++)
		if (pthread_create(&c[i], NULL, consumer, NULL))
			fail("pthread_create");
	if (pthread_create(&pk, NULL, parked, NULL) || pthread_create(&rd, NULL, reader, NULL))
		fail("pthread_create");
	if (wait_count(MORE))
		fail("the queue does not move before the checkpoint");
	for (;;) {	/* the parked thread is really waiting */
		pthread_mutex_lock(&park_lock);
		int w = park_waiting;
		pthread_mutex_unlock(&park_lock);
		if (w)
			break;
		sched_yield();
	}

	test_ready();
	test_wait_sigterm();

	if (wait_count(count() + MORE))
		fail("the queue stopped moving after the restore (%llu items)", (unsigned long long)count());
	pthread_mutex_lock(&lock);
	stop = 1;
	pthread_cond_broadcast(&not_empty);
	pthread_cond_broadcast(&not_full);
	pthread_mutex_unlock(&lock);
	for (int i = 0; i < NPROD; i++)
		pthread_join(p[i], NULL);
	for (int i = 0; i < NCONS; i++)
		pthread_join(c[i], NULL);
	pthread_mutex_lock(&park_lock);
	park_go = 1;
	pthread_cond_signal(&park_cond);
	pthread_mutex_unlock(&park_lock);
	pthread_join(pk, NULL);
	if (write(rd_pipe[1], "x", 1) != 1)
		fail("write: %m");
	pthread_join(rd, NULL);

	for (int i = 0; i < NPROD; i++)
		psum += produced[i];
	if (order_errors)
		fail("%d items out of order", order_errors);
	if (psum != consumed || produced_sum != consumed_sum)
		fail("produced %llu (sum %llu), consumed %llu (sum %llu)", (unsigned long long)psum,
		     (unsigned long long)produced_sum, (unsigned long long)consumed,
		     (unsigned long long)consumed_sum);
	if (!park_woke)
		fail("the parked thread did not wake");
	if (rd_got != 'x')
		fail("the reader got %d", rd_got);
	test_msg("%llu items\n", (unsigned long long)consumed);
	pass();
}
