/*
 * rseq: glibc registers an rseq area for each thread. After the restore it must still
 * be registered with the kernel: the test scribbles an impossible cpu_id into the area,
 * delivers itself a signal (the kernel refreshes a registered rseq area on signal
 * delivery), and expects a valid cpu number back, equal to what sched_getcpu() says
 * when nothing migrated in between. The same check runs once before the checkpoint to
 * prove this kernel behaves so.
 */
#include <sched.h>
#include <string.h>
#include <sys/rseq.h>
#include <unistd.h>

#include "zdtmtst.h"

#define BOGUS 0x7ffff00u

static void h(int sig) { (void)sig; }

static struct rseq *area(void)
{
	return (struct rseq *)((char *)__builtin_thread_pointer() + __rseq_offset);
}

/* returns the refreshed cpu_id, or BOGUS when the kernel did not refresh it */
static unsigned int refresh(void)
{
	volatile struct rseq *rs = area();
	rs->cpu_id = BOGUS;
	raise(SIGUSR1);
	return rs->cpu_id;
}

int main(int argc, char **argv)
{
	long ncpu = sysconf(_SC_NPROCESSORS_CONF);
	struct sigaction sa;
	unsigned int c;
	int i, cpu;

	test_init(argc, argv);
	if (__rseq_size == 0)
		test_skip("glibc did not register rseq (glibc.pthread.rseq=0?)");
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = h;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	c = refresh();
	if (c == BOGUS || c >= (unsigned int)ncpu)
		test_skip("this kernel does not refresh rseq cpu_id on signal delivery");

	test_ready();
	test_wait_sigterm();

	c = refresh();
	if (c == BOGUS)
		fail("rseq area not refreshed: rseq is not registered after the restore");
	if (c >= (unsigned int)ncpu)
		fail("rseq cpu_id %u out of range", c);
	for (i = 0; i < 100; i++) {
		unsigned int before = area()->cpu_id;
		cpu = sched_getcpu();
		if (cpu < 0)
			fail("sched_getcpu: %m");
		if ((unsigned int)cpu == before && area()->cpu_id == before)
			break;
	}
	if (i == 100)
		fail("sched_getcpu() %d never agrees with rseq cpu_id %u", cpu, area()->cpu_id);
	pass();
}
