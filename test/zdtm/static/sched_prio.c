/*
 * sched_prio: scheduling state: nice 7, policy SCHED_BATCH, CPU affinity to one CPU,
 * and the I/O priority (best-effort class, level 6). After the restore each reads back
 * the same.
 */
#include <sched.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "zdtmtst.h"

#define IOPRIO_WHO_PROCESS 1
#define IOPRIO_PRIO(cls, data) (((cls) << 13) | (data))

int main(int argc, char **argv)
{
	struct sched_param sp = { 0 };
	cpu_set_t set, now;
	char msg[512];
	int n = 0;
	int cpu, nice0, pol0, io0, ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	test_init(argc, argv);
	if (setpriority(PRIO_PROCESS, 0, 7) || sched_setscheduler(0, SCHED_BATCH, &sp))
		fail("setpriority/sched_setscheduler: %m");
	cpu = ncpu > 1 ? ncpu - 1 : 0;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		fail("sched_setaffinity: %m");
	if (syscall(SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, IOPRIO_PRIO(2, 6)))
		fail("ioprio_set: %m");
	nice0 = getpriority(PRIO_PROCESS, 0);
	pol0 = sched_getscheduler(0);
	io0 = syscall(SYS_ioprio_get, IOPRIO_WHO_PROCESS, 0);

	test_ready();
	test_wait_sigterm();

	/* report every difference at once */
	if (getpriority(PRIO_PROCESS, 0) != nice0)
		n += snprintf(msg + n, sizeof(msg) - n, " nice %d (was %d)",
			      getpriority(PRIO_PROCESS, 0), nice0);
	if (sched_getscheduler(0) != pol0)
		n += snprintf(msg + n, sizeof(msg) - n, " policy %d (was %d)",
			      sched_getscheduler(0), pol0);
	if (sched_getaffinity(0, sizeof(now), &now))
		fail("sched_getaffinity: %m");
	if (!CPU_EQUAL(&now, &set))
		n += snprintf(msg + n, sizeof(msg) - n, " affinity: %d CPUs (was only cpu %d)",
			      CPU_COUNT(&now), cpu);
	if (syscall(SYS_ioprio_get, IOPRIO_WHO_PROCESS, 0) != io0)
		n += snprintf(msg + n, sizeof(msg) - n, " ioprio %#lx (was %#x)",
			      syscall(SYS_ioprio_get, IOPRIO_WHO_PROCESS, 0), io0);
	if (n)
		fail("differs:%s", msg);
	pass();
}
