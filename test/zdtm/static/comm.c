/*
 * comm: the task name set with PR_SET_NAME (15 bytes, the maximum) survives: both
 * PR_GET_NAME and /proc/self/comm show it.
 */
#include <string.h>
#include <sys/prctl.h>

#include "zdtmtst.h"

#define NAME "zdtm-comm 15chr"

int main(int argc, char **argv)
{
	char name[32] = "", comm[64];

	test_init(argc, argv);
	if (prctl(PR_SET_NAME, NAME))
		fail("PR_SET_NAME: %m");

	test_ready();
	test_wait_sigterm();

	if (prctl(PR_GET_NAME, name) || strcmp(name, NAME))
		fail("PR_GET_NAME '%s', expected '%s'", name, NAME);
	if (test_read_file("/proc/self/comm", comm, sizeof(comm)) < 0)
		fail("read comm: %m");
	comm[strcspn(comm, "\n")] = '\0';
	if (strcmp(comm, NAME))
		fail("/proc/self/comm '%s', expected '%s'", comm, NAME);
	pass();
}
