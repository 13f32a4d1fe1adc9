/*
 * dirtier MIB READY STATUS MODE: the pre-dump benchmark workload (tools/bench/predump.sh).
 *
 * Maps MIB MiB of private anonymous memory, writes every page (non-zero), writes its pid
 * to READY, then dirties pages according to MODE until SIGTERM:
 *   rate:R     a writer thread writes random pages at R MB/s (R = 0: no writer), in
 *              10 ms ticks;
 *   round:PCT  on each SIGUSR1, PCT percent of the pages (distinct, spread over the
 *              whole region) are written at once.
 * SIGUSR2 runs a probe: PROBE_PAGES consecutive pages from a random offset written as
 * fast as possible (the per-page cost of a write, tracked or not).
 *
 * STATUS is one line, rewritten atomically (tmp + rename) every 100 ms and right after
 * each round or probe, so the script can read the work rate at any moment:
 *   pages N busy_ns N rounds N probes N probe_pages N probe_ns N
 * pages/busy_ns: every page write and the time spent in the writing bursts (the work
 * rate is pages / busy time: it drops when writes fault on write-protected pages);
 * probe_pages/probe_ns: those of the last probe.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE	    4096ul
#define PROBE_PAGES 4096ul
#define TICK_NS	    10000000ull

static uint64_t *mem;
static size_t npages;
static double rate_mbs;
static _Atomic uint64_t st_pages, st_busy_ns, st_rounds, st_probes, st_probe_pages, st_probe_ns;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* One page write: a new non-zero stamp in its first 64 bytes. */
static inline void page_write(size_t pg, uint64_t stamp)
{
	uint64_t *p = mem + pg * (PAGE / 8);
	for (int i = 0; i < 8; i++)
		p[i] = stamp + (uint64_t)i;
}

static void account(uint64_t pages, uint64_t ns)
{
	atomic_fetch_add(&st_pages, pages);
	atomic_fetch_add(&st_busy_ns, ns);
}

static void *writer(void *arg)
{
	uint64_t seed = 0x9E3779B97F4A7C15ull ^ (uint64_t)getpid(), done = 0, t0 = now_ns();
	double per_ns = rate_mbs * 1e6 / PAGE / 1e9; /* pages per ns */
	struct timespec next;

	(void)arg;
	clock_gettime(CLOCK_MONOTONIC, &next);
	for (;;) {
		uint64_t due = (uint64_t)((double)(now_ns() - t0) * per_ns), b0 = now_ns();
		if (due > done + (uint64_t)(per_ns * 1e9)) /* more than 1 s behind: drop it */
			done = due - (uint64_t)(per_ns * 1e9);
		uint64_t n = due - done;
		for (uint64_t i = 0; i < n; i++)
			page_write(xorshift(&seed) % npages, done + i + 1);
		done = due;
		if (n)
			account(n, now_ns() - b0);
		next.tv_nsec += (long)TICK_NS;
		if (next.tv_nsec >= 1000000000L) {
			next.tv_sec++;
			next.tv_nsec -= 1000000000L;
		}
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
	}
	return NULL;
}

static uint64_t gcd(uint64_t a, uint64_t b)
{
	while (b) {
		uint64_t t = a % b;
		a = b;
		b = t;
	}
	return a;
}

/* PCT percent of the pages, distinct: start + i * step (mod npages), step coprime. */
static void round_write(double pct, uint64_t *seed)
{
	uint64_t k = (uint64_t)((double)npages * pct / 100.0), start = xorshift(seed) % npages;
	uint64_t step = npages / 2 + 1 + xorshift(seed) % (npages / 4 + 1), t0 = now_ns();

	while (gcd(step, npages) != 1)
		step++;
	for (uint64_t i = 0; i < k; i++)
		page_write((start + i * step) % npages, t0 + i);
	account(k, now_ns() - t0);
	atomic_fetch_add(&st_rounds, 1);
}

static void probe(uint64_t *seed)
{
	uint64_t n = PROBE_PAGES < npages ? PROBE_PAGES : npages;
	uint64_t start = xorshift(seed) % (npages - n + 1), t0 = now_ns();

	for (uint64_t i = 0; i < n; i++)
		page_write(start + i, t0 + i);
	atomic_store(&st_probe_ns, now_ns() - t0);
	atomic_store(&st_probe_pages, n);
	atomic_fetch_add(&st_probes, 1);
}

static int status_write(const char *path)
{
	char tmp[4200];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (!f)
		return -1;
	fprintf(f,
		"pages %llu busy_ns %llu rounds %llu probes %llu probe_pages %llu probe_ns %llu\n",
		(unsigned long long)st_pages, (unsigned long long)st_busy_ns,
		(unsigned long long)st_rounds, (unsigned long long)st_probes,
		(unsigned long long)st_probe_pages, (unsigned long long)st_probe_ns);
	if (fclose(f) != 0)
		return -1;
	return rename(tmp, path);
}

int main(int argc, char **argv)
{
	double pct = 0;
	uint64_t seed = 0x2545F4914F6CDD1Dull ^ (uint64_t)getpid();
	sigset_t set;
	FILE *f;

	if (argc != 5 || (sscanf(argv[4], "rate:%lf", &rate_mbs) != 1 &&
			  sscanf(argv[4], "round:%lf", &pct) != 1)) {
		fprintf(stderr, "usage: dirtier MIB READY STATUS rate:MBPS|round:PCT\n");
		return 2;
	}
	npages = (size_t)strtoull(argv[1], NULL, 10) << 20 >> 12;
	if (npages < 2)
		return 2;
	mem = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return 3;
	for (size_t i = 0; i < npages; i++)
		page_write(i, i * 0x9E3779B97F4A7C15ull + 1);
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL); /* the writer inherits the mask */
	pthread_t th;
	if (rate_mbs > 0 && pthread_create(&th, NULL, writer, NULL) != 0)
		return 3;
	if (status_write(argv[3]) < 0 || !(f = fopen(argv[2], "w")))
		return 4;
	fprintf(f, "%d\n", getpid());
	fclose(f);
	for (;;) {
		struct timespec to = { 0, 100000000L };
		int sig = sigtimedwait(&set, NULL, &to);
		if (sig == SIGTERM)
			return 0;
		if (sig == SIGUSR1 && pct > 0)
			round_write(pct, &seed);
		if (sig == SIGUSR2)
			probe(&seed);
		(void)status_write(argv[3]);
	}
}
