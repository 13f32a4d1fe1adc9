/*
 * tid_robust: the clear_child_tid address (PR_GET_TID_ADDRESS) and the robust futex
 * list head (get_robust_list) that glibc set up for the main thread are the same after
 * the restore.
 */
#include <linux/futex.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "zdtmtst.h"

#ifndef PR_GET_TID_ADDRESS
#define PR_GET_TID_ADDRESS 40
#endif

int main(int argc, char **argv)
{
	void *tid0 = NULL, *tid1 = NULL, *head0 = NULL, *head1 = NULL;
	size_t len0 = 0, len1 = 0;

	test_init(argc, argv);
	if (prctl(PR_GET_TID_ADDRESS, &tid0))
		fail("PR_GET_TID_ADDRESS: %m");
	if (syscall(SYS_get_robust_list, 0, &head0, &len0))
		fail("get_robust_list: %m");
	if (!tid0 || !head0)
		fail("setup: tid address %p robust list %p", tid0, head0);

	test_ready();
	test_wait_sigterm();

	if (prctl(PR_GET_TID_ADDRESS, &tid1))
		fail("PR_GET_TID_ADDRESS: %m");
	if (syscall(SYS_get_robust_list, 0, &head1, &len1))
		fail("get_robust_list: %m");
	if (tid1 != tid0)
		fail("clear_child_tid %p, was %p", tid1, tid0);
	if (head1 != head0 || len1 != len0)
		fail("robust list %p/%zu, was %p/%zu", head1, len1, head0, len0);
	pass();
}
