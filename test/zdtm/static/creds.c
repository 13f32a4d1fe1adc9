/*
 * creds: real and effective uid/gid 65534 with a saved uid/gid of 0, two supplementary
 * groups, the capability sets the kernel derives from that (effective empty, permitted
 * kept because the saved uid is 0), securebits and dumpable. After the restore
 * getresuid, getresgid, getgroups, capget, PR_GET_SECUREBITS and PR_GET_DUMPABLE return
 * the same, and the saved root uid still works (seteuid(0) and back).
 */
#include <grp.h>
#include <linux/capability.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "zdtmtst.h"

struct creds {
	uid_t r, e, s;
	gid_t gr, ge, gs;
	gid_t groups[16];
	int ngroups;
	struct __user_cap_data_struct cap[2];
	int securebits, dumpable;
};

static void take(struct creds *c)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };

	memset(c, 0, sizeof(*c));
	getresuid(&c->r, &c->e, &c->s);
	getresgid(&c->gr, &c->ge, &c->gs);
	c->ngroups = getgroups(16, c->groups);
	if (syscall(SYS_capget, &h, c->cap))
		fail("capget: %m");
	c->securebits = prctl(PR_GET_SECUREBITS);
	c->dumpable = prctl(PR_GET_DUMPABLE);
}

static void compare(const struct creds *a, const struct creds *b)
{
	if (a->r != b->r || a->e != b->e || a->s != b->s)
		fail("uids %d/%d/%d, were %d/%d/%d", b->r, b->e, b->s, a->r, a->e, a->s);
	if (a->gr != b->gr || a->ge != b->ge || a->gs != b->gs)
		fail("gids %d/%d/%d, were %d/%d/%d", b->gr, b->ge, b->gs, a->gr, a->ge, a->gs);
	if (a->ngroups != b->ngroups || memcmp(a->groups, b->groups, a->ngroups * sizeof(gid_t)))
		fail("supplementary groups differ (%d, were %d)", b->ngroups, a->ngroups);
	if (memcmp(a->cap, b->cap, sizeof(a->cap)))
		fail("capabilities: eff %08x%08x prm %08x%08x inh %08x%08x, were eff %08x%08x "
		     "prm %08x%08x inh %08x%08x", b->cap[1].effective, b->cap[0].effective,
		     b->cap[1].permitted, b->cap[0].permitted, b->cap[1].inheritable,
		     b->cap[0].inheritable, a->cap[1].effective, a->cap[0].effective,
		     a->cap[1].permitted, a->cap[0].permitted, a->cap[1].inheritable,
		     a->cap[0].inheritable);
	if (a->securebits != b->securebits)
		fail("securebits %#x, were %#x", b->securebits, a->securebits);
	if (a->dumpable != b->dumpable)
		fail("dumpable %d, was %d", b->dumpable, a->dumpable);
}

int main(int argc, char **argv)
{
	gid_t groups[] = { 65534, 100 };
	struct creds a, b;

	test_init(argc, argv);
	if (geteuid() != 0)
		test_skip("needs root");
	if (setgroups(2, groups) || setresgid(65534, 65534, 0) || setresuid(65534, 65534, 0))
		fail("set ids: %m");
	/* the ready file lives in the runner's root-owned directory: write it as root
	 * through the saved uid, then drop again (the end state is the same) */
	if (seteuid(0))
		fail("seteuid(0): %m");
	test_ready();
	if (seteuid(65534))
		fail("seteuid(65534): %m");
	take(&a);
	if (a.cap[0].effective || !a.cap[0].permitted)
		fail("setup: unexpected capabilities eff %x prm %x", a.cap[0].effective,
		     a.cap[0].permitted);

	test_wait_sigterm();

	take(&b);
	compare(&a, &b);
	if (seteuid(0) || geteuid() != 0 || seteuid(65534))
		fail("the saved root uid does not work any more: %m");
	pass();
}
