/*
 * prctl_misc: per-process prctl state: no_new_privs, child subreaper, timer slack,
 * THP disable, keepcaps and dumpable (0). After the restore each PR_GET_* returns what
 * was set.
 */
#include <stdio.h>
#include <sys/prctl.h>

#include "zdtmtst.h"

#define SLACK 123457

struct st { int nnp, subreaper, thp, keepcaps, dumpable; long slack; };

static void take(struct st *s)
{
	s->nnp = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
	if (prctl(PR_GET_CHILD_SUBREAPER, &s->subreaper))
		s->subreaper = -1;
	s->thp = prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0);
	s->keepcaps = prctl(PR_GET_KEEPCAPS);
	s->dumpable = prctl(PR_GET_DUMPABLE);
	s->slack = prctl(PR_GET_TIMERSLACK);
}

int main(int argc, char **argv)
{
	struct st a, b;
	char msg[512];
	int n;

	test_init(argc, argv);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_CHILD_SUBREAPER, 1) ||
	    prctl(PR_SET_TIMERSLACK, SLACK) || prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) ||
	    prctl(PR_SET_KEEPCAPS, 1) || prctl(PR_SET_DUMPABLE, 0))
		fail("prctl: %m");
	take(&a);
	if (a.nnp != 1 || a.subreaper != 1 || a.slack != SLACK || a.thp != 1 || a.keepcaps != 1 ||
	    a.dumpable != 0)
		fail("setup: nnp %d subreaper %d slack %ld thp %d keepcaps %d dumpable %d", a.nnp,
		     a.subreaper, a.slack, a.thp, a.keepcaps, a.dumpable);

	test_ready();
	test_wait_sigterm();

	take(&b);
	/* report every difference at once */
	n = 0;
#define CMP(f, fmt) if (b.f != a.f) n += snprintf(msg + n, sizeof(msg) - n, " " #f " " fmt " (was " fmt ")", b.f, a.f)
	CMP(nnp, "%d");
	CMP(subreaper, "%d");
	CMP(slack, "%ld");
	CMP(thp, "%d");
	CMP(keepcaps, "%d");
	CMP(dumpable, "%d");
	if (n)
		fail("differs:%s", msg);
	pass();
}
