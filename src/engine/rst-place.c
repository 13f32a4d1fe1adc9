/*
 * rst-place: file ranges read into memory by helper threads (rst-place.h).
 *
 * Used by the warm staging: writing fresh memory is bound by its first touch (page
 * faults the hypervisor backs: ~1 GB/s a core here), which scales with the cores, so
 * the pages of a large round are placed by several threads while the staging's own
 * thread reads the stream for its hash.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "engine/rst-place.h"

#define JOB_MAX	   (16UL << 20)
#define PAR_MIN	   (64UL << 20)
#define MAX_HELPER 16

struct place_job {
	uint64_t off, len;
	uint8_t *dst;
};

struct rst_place {
	int fd;
	struct place_job *j;
	size_t n, cap;
	atomic_size_t next;
	atomic_int err;
	pthread_t t[MAX_HELPER];
	int started;
};

int rst_place_threads(uint64_t bytes)
{
	const char *env = getenv("FERRY_WARM_THREADS");
	long n = env ? strtol(env, NULL, 10) : sysconf(_SC_NPROCESSORS_ONLN);
	if (!env && n > 4)
		n = 4;
	if (n < 1 || bytes < PAR_MIN)
		return 1;
	return n > MAX_HELPER ? MAX_HELPER : (int)n;
}

int rst_place_new(int fd, struct rst_place **out)
{
	struct rst_place *pl = calloc(1, sizeof(*pl));
	if (!pl)
		return -ENOMEM;
	pl->fd = fd;
	atomic_init(&pl->next, 0);
	atomic_init(&pl->err, 0);
	*out = pl;
	return 0;
}

int rst_place_add(struct rst_place *pl, uint64_t off, void *dst, uint64_t len)
{
	for (uint64_t k = 0; k < len; k += JOB_MAX) {
		if (pl->n == pl->cap) {
			size_t cap = pl->cap ? 2 * pl->cap : 64;
			void *nj = realloc(pl->j, cap * sizeof(*pl->j));
			if (!nj)
				return -ENOMEM;
			pl->j = nj;
			pl->cap = cap;
		}
		pl->j[pl->n++] = (struct place_job){ .off = off + k,
						     .len = min_t(uint64_t, JOB_MAX, len - k),
						     .dst = (uint8_t *)dst + k };
	}
	return 0;
}

/* Take jobs until none is left or one failed. */
static void *helper_main(void *arg)
{
	struct rst_place *pl = arg;
	for (;;) {
		size_t k = atomic_fetch_add(&pl->next, 1);
		if (k >= pl->n || atomic_load(&pl->err))
			break;
		const struct place_job *j = &pl->j[k];
		ssize_t r = pread_full(pl->fd, j->dst, j->len, (off_t)j->off);
		if (r != (ssize_t)j->len) {
			int zero = 0;
			atomic_compare_exchange_strong(&pl->err, &zero, r < 0 ? (int)r : -EBADMSG);
			break;
		}
	}
	return NULL;
}

int rst_place_start(struct rst_place *pl, int n)
{
	for (int i = 0; i < n && i < MAX_HELPER && pl->n; i++) {
		if (pthread_create(&pl->t[pl->started], NULL, helper_main, pl) != 0)
			break;
		pl->started++;
	}
	return pl->started;
}

int rst_place_join(struct rst_place *pl, const char *what, bool cancel)
{
	int e, zero = 0;
	if (cancel)
		atomic_compare_exchange_strong(&pl->err, &zero, -ECANCELED);
	else if (!pl->started)
		helper_main(pl);
	for (int i = 0; i < pl->started; i++)
		pthread_join(pl->t[i], NULL);
	e = atomic_load(&pl->err);
	if (e == -EBADMSG)
		pr_err("warm: '%s' is shorter than its pagemap says", what);
	else if (e < 0 && e != -ECANCELED)
		pr_err("warm: cannot read '%s': %s", what, strerror(-e));
	free(pl->j);
	free(pl);
	return e;
}
