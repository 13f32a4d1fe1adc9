/*
 * rst-par: seize, build and let go the processes of a restored tree on several tracer
 * threads (one per CPU), each owning a share of the tree.
 *
 * A restorer thread mostly waits: for the task it drives to run a batch of injected
 * calls, then the task waits for it to write pages. With one tracer thread per CPU,
 * one builds a process while another process runs its batch, so both CPUs work.
 *
 * ptrace binds a tracee to the thread that seized it: only that thread may drive it,
 * and if it exits, its tracees are released (and killed: PTRACE_O_EXITKILL). So each
 * worker seizes its own processes (live processes in pstree order, dealt round-robin:
 * the root is worker 0's), each as soon as its stub reported READY (the main thread
 * reads the reports meanwhile: stubs still setting up overlap with building), builds
 * them and sets their final registers, then waits at a barrier. When every worker is
 * there: on success the main thread writes the pidfile, every worker detaches its
 * processes (leaves first) and worker 0 detaches the root last, once all others did;
 * on failure every worker returns and the caller rolls back.
 *
 * One worker only when processes depend on each other while built: shared anonymous
 * memory (a later task maps the first one's object through /proc/PID/map_files) and
 * fd tables shared by CLONE_FILES.
 *
 * Invariants: no process runs before every process is built and the pidfile written;
 * a worker touches only its own processes; the tree's state read by workers (images,
 * plan, fs lookups) is not written while they run.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "engine/rst-tree.h"

#define MAX_WORKERS 8

struct par {
	struct rst_tree *t;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int nw;	      /* tracer threads */
	int arrived;  /* workers at the barrier */
	int err;      /* the first error of anyone */
	int phase;    /* 0 building, 1 detach, 2 abort */
	int detached; /* workers done detaching their processes but the root */
	int finished; /* workers done */
	int *owner;   /* per process: its worker, -1 for a zombie */
	bool *ready;  /* per process: its READY came (rst_tree_collect) */
};

struct worker {
	struct par *p;
	int k;
	pthread_t th;
};

/* Whether process i belongs to worker k. */
static bool mine(const struct par *p, size_t i, int k)
{
	return p->owner[i] == k;
}

static void fail(struct par *p, int e)
{
	pthread_mutex_lock(&p->mu);
	if (e < 0 && !p->err)
		p->err = e;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

static void on_ready(void *arg, size_t i)
{
	struct par *p = arg;
	pthread_mutex_lock(&p->mu);
	p->ready[i] = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

/* Wait for process i's READY: 0, or the error that aborts everything. */
static int wait_ready(struct par *p, size_t i)
{
	pthread_mutex_lock(&p->mu);
	while (!p->ready[i] && !p->err)
		pthread_cond_wait(&p->cv, &p->mu);
	int e = p->ready[i] ? 0 : p->err;
	pthread_mutex_unlock(&p->mu);
	return e;
}

static int seize_one(struct rst *r)
{
	int st;
	if (ptrace(PTRACE_SEIZE, r->pid, 0, (void *)(long)PTRACE_O_EXITKILL) < 0)
		return pr_perror("PTRACE_SEIZE of stub %d", r->pid);
	r->traced = true;
	if (ptrace(PTRACE_INTERRUPT, r->pid, 0, 0) < 0)
		return pr_perror("PTRACE_INTERRUPT of stub %d", r->pid);
	if ((st = rst_wait_stop(r->pid, RST_STOP_TIMEOUT_MS)) < 0)
		return pr_err_ret(st, "stub %d did not stop", r->pid);
	return 0;
}

/* Each of the worker's processes as soon as it is ready (pstree order), then the
 * final registers of all. */
static int worker_build(struct par *p, int k)
{
	struct rst_tree *t = p->t;
	int e = 0;
	for (size_t i = 0; i < t->n && e == 0; i++)
		if (mine(p, i, k) && (e = wait_ready(p, i)) == 0 && (e = seize_one(&t->t[i])) == 0)
			e = rst_build(&t->t[i]);
	for (size_t i = 0; i < t->n && e == 0; i++)
		if (mine(p, i, k))
			e = rst_finish(&t->t[i]);
	return e;
}

/* Detach the worker's processes, leaves first; never the root (worker 0's, last). */
static int worker_detach(struct par *p, int k)
{
	int e = 0;
	for (size_t i = p->t->n; i-- > 1 && e == 0;)
		if (mine(p, i, k))
			e = rst_detach(&p->t->t[i]);
	return e;
}

/* At the barrier with error e: returns the phase the main thread decides. */
static int barrier(struct par *p, int e)
{
	pthread_mutex_lock(&p->mu);
	if (e < 0 && !p->err)
		p->err = e;
	p->arrived++;
	pthread_cond_broadcast(&p->cv);
	while (p->phase == 0)
		pthread_cond_wait(&p->cv, &p->mu);
	int phase = p->phase;
	pthread_mutex_unlock(&p->mu);
	return phase;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct par *p = w->p;
	int e = worker_build(p, w->k);

	if (barrier(p, e) == 1) {
		e = worker_detach(p, w->k);
		pthread_mutex_lock(&p->mu);
		p->detached++;
		pthread_cond_broadcast(&p->cv);
		while (w->k == 0 && p->detached < p->nw)
			pthread_cond_wait(&p->cv, &p->mu);
		pthread_mutex_unlock(&p->mu);
		if (w->k == 0 && e == 0)
			e = rst_detach(&p->t->t[0]); /* the root last */
	}
	pthread_mutex_lock(&p->mu);
	if (e < 0 && !p->err)
		p->err = e;
	p->finished++;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	rst_wait_fini();
	return NULL;
}

/* One worker per CPU, one only if processes depend on each other (see the top). */
static int workers_count(const struct rst_tree *t)
{
	const char *env = getenv("FERRY_RST_WORKERS"); /* for measurements */
	long n = env ? atol(env) : sysconf(_SC_NPROCESSORS_ONLN);
	size_t live = 0;

	for (size_t i = 0; i < t->n; i++) {
		const struct rst *r = &t->t[i];
		if (t->pst[i]->zombie)
			continue;
		live++;
		if (t->id[i].files_shared)
			return 1;
		for (size_t k = 0; r->mm && k < r->mm->n_vmas; k++)
			if (r->mm->vmas[k]->kind == VMA_KIND__VMA_SHMEM_ANON)
				return 1;
	}
	if (n < 1)
		n = 1;
	if (n > MAX_WORKERS)
		n = MAX_WORKERS;
	return (size_t)n > live ? (int)live : (int)n;
}

/* The main thread: READY reports, then the barrier, the hold (migrate), the pidfile, the
 * end. */
static int coordinate(struct par *p, int e)
{
	if (e == 0 && (e = rst_tree_collect(p->t, on_ready, p)) < 0)
		fail(p, e);
	pthread_mutex_lock(&p->mu);
	while (p->arrived < p->nw)
		pthread_cond_wait(&p->cv, &p->mu);
	e = p->err;
	pthread_mutex_unlock(&p->mu);
	if (e == 0 && ((e = rst_tree_hold(p->t)) < 0 || (e = rst_tree_pidfile(p->t)) < 0))
		fail(p, e);
	pthread_mutex_lock(&p->mu);
	p->phase = e == 0 ? 1 : 2;
	pthread_cond_broadcast(&p->cv);
	while (p->finished < p->nw)
		pthread_cond_wait(&p->cv, &p->mu);
	e = p->err;
	pthread_mutex_unlock(&p->mu);
	return e;
}

int rst_tree_build(struct rst_tree *t)
{
	struct par p = { .t = t, .nw = workers_count(t) };
	struct worker w[MAX_WORKERS] = { 0 };
	int e = 0, started = 0, live = 0;

	p.owner = calloc(t->n, sizeof(*p.owner));
	p.ready = calloc(t->n, sizeof(*p.ready));
	if (!p.owner || !p.ready) {
		free(p.owner);
		free(p.ready);
		return -ENOMEM;
	}
	for (size_t i = 0; i < t->n; i++) /* live processes dealt round-robin: root to 0 */
		p.owner[i] = t->pst[i]->zombie ? -1 : live++ % p.nw;
	pthread_mutex_init(&p.mu, NULL);
	pthread_cond_init(&p.cv, NULL);
	pr_debug("%d tracer threads", p.nw);
	for (int k = 0; k < p.nw && e == 0; k++) {
		w[k] = (struct worker){ .p = &p, .k = k };
		int te = pthread_create(&w[k].th, NULL, worker_main, &w[k]);
		if (te != 0)
			e = pr_err_ret(-te, "cannot start a restorer thread");
		else
			started++;
	}
	/* a thread that failed to start never comes: count it as arrived and finished */
	pthread_mutex_lock(&p.mu);
	p.arrived += p.nw - started;
	p.finished += p.nw - started;
	if (e < 0 && !p.err)
		p.err = e;
	pthread_cond_broadcast(&p.cv);
	pthread_mutex_unlock(&p.mu);
	e = coordinate(&p, e);
	for (int k = 0; k < started; k++)
		pthread_join(w[k].th, NULL);
	pthread_mutex_destroy(&p.mu);
	pthread_cond_destroy(&p.cv);
	free(p.owner);
	free(p.ready);
	return e;
}
