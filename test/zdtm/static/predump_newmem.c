/*
 * predump_newmem: the address space keeps changing between (and during) pre-dump
 * rounds: a loop mmaps new regions, munmaps, grows them with mremap (moving them),
 * changes their protection (read-only, PROT_NONE, back), and grows and shrinks the
 * heap with brk, until SIGTERM. Every live region holds the pattern of its seed,
 * recorded after each operation completes (the loop runs on after the restore, so the
 * bookkeeping and memory stay consistent whenever the checkpoint hit). At the end every
 * region must hold its pattern and its recorded protection, the heap its pattern, and
 * the range unmapped last must not be mapped: memory that appeared after a round is
 * whole in the images, unmapped memory is gone, protections are the final ones.
 */
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "zdtmtst.h"

#define NS 32	   /* region slots */
#define MAXP 16	   /* pages per region before mremap */
#define BRK_MAX 64 /* heap pages we add at most */

struct slot {
	char *addr;
	size_t len;
	int prot;
	uint64_t seed;
};

static struct slot s[NS];
static size_t pg;
static char *brk0;
static size_t brk_len;
static uint64_t brk_seed, seq = 1;
static char *gone;	  /* start of the range unmapped last, or NULL */
static size_t gone_len;
static unsigned long ops;

static uint64_t rnd(void)
{
	static uint64_t x = 88172645463325252ull;
	x ^= x << 13, x ^= x >> 7, x ^= x << 17;
	return x;
}

/* A new mapping at [a, a+len) may reuse the range unmapped last. */
static void reused(const char *a, size_t len)
{
	if (gone && a < gone + gone_len && gone < a + len)
		gone = NULL; /* reused: nothing to check there */
}

static void op_map(struct slot *o)
{
	size_t len = (1 + rnd() % MAXP) * pg;
	char *a = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (a == MAP_FAILED)
		fail("mmap: %m");
	test_fill(a, len, seq);
	*o = (struct slot){a, len, PROT_READ | PROT_WRITE, seq++};
	reused(a, len);
}

static void op_unmap(struct slot *o)
{
	if (munmap(o->addr, o->len))
		fail("munmap: %m");
	gone = o->addr;
	gone_len = o->len;
	o->addr = NULL;
}

static void op_remap(struct slot *o)
{
	size_t len = o->len + (1 + rnd() % 4) * pg;
	if (o->prot != (PROT_READ | PROT_WRITE) && mprotect(o->addr, o->len, PROT_READ | PROT_WRITE))
		fail("mprotect: %m");
	char *a = mremap(o->addr, o->len, len, MREMAP_MAYMOVE);
	if (a == MAP_FAILED)
		fail("mremap: %m");
	reused(a, len);
	if (test_verify(a, o->len, o->seed) != (size_t)-1)
		fail("mremap lost the content of %p", (void *)a);
	test_fill(a, len, seq);
	*o = (struct slot){a, len, PROT_READ | PROT_WRITE, seq++};
}

static void op_protect(struct slot *o)
{
	static const int prots[] = {PROT_READ, PROT_NONE, PROT_READ | PROT_WRITE};
	int prot = prots[rnd() % 3];
	if (o->prot == (PROT_READ | PROT_WRITE) && prot == o->prot) { /* rewrite instead */
		test_fill(o->addr, o->len, seq);
		o->seed = seq++;
		return;
	}
	if (mprotect(o->addr, o->len, prot))
		fail("mprotect: %m");
	o->prot = prot;
}

static void op_brk(void)
{
	size_t want = (rnd() % BRK_MAX) * pg;
	if (sbrk((intptr_t)want - (intptr_t)brk_len) == (void *)-1)
		fail("sbrk: %m");
	brk_len = want;
	reused(brk0, brk_len);
	test_fill(brk0, brk_len, seq);
	brk_seed = seq++;
}

static void step(void)
{
	struct slot *o = &s[rnd() % NS];
	unsigned k = rnd() % 5;
	if (k == 4)
		op_brk();
	else if (!o->addr)
		op_map(o);
	else if (k == 0)
		op_unmap(o);
	else if (k == 1)
		op_remap(o);
	else
		op_protect(o);
	ops++;
}

static void verify(void)
{
	char perms[5];
	unsigned long a, e;
	for (int i = 0; i < NS; i++) {
		struct slot *o = &s[i];
		if (!o->addr)
			continue;
		if (test_vma_find(o->addr, &a, &e, perms) < 0)
			fail("region %d at %p is not mapped", i, (void *)o->addr);
		if ((perms[0] == 'r') != !!(o->prot & PROT_READ) ||
		    (perms[1] == 'w') != !!(o->prot & PROT_WRITE))
			fail("region %d at %p: %s, expected prot %d", i, (void *)o->addr, perms,
			     o->prot);
		if (o->prot != (PROT_READ | PROT_WRITE) &&
		    mprotect(o->addr, o->len, PROT_READ | PROT_WRITE))
			fail("mprotect: %m");
		if (test_verify(o->addr, o->len, o->seed) != (size_t)-1)
			fail("region %d at %p (%zu pages): not its content", i, (void *)o->addr,
			     o->len / pg);
	}
	if (brk_len && test_verify(brk0, brk_len, brk_seed) != (size_t)-1)
		fail("heap (%zu pages): not its content", brk_len / pg);
	if (gone && test_vma_find(gone, &a, &e, perms) == 0)
		fail("range %p unmapped last is mapped again (%lx-%lx %s)", (void *)gone, a, e,
		     perms);
}

int main(int argc, char **argv)
{
	unsigned long at_ready;

	test_init(argc, argv);
	pg = sysconf(_SC_PAGESIZE);
	brk0 = sbrk(0);
	while (ops < 2000)
		step();
	at_ready = ops;
	test_ready();
	while (!test_sigterm) {
		step();
		if (ops % 64 == 0)
			usleep(100); /* keep the tree seizable, still thousands of ops a second */
	}
	verify();
	test_msg("%lu operations (%lu before ready)\n", ops, at_ready);
	if (ops == at_ready)
		fail("no operation after ready");
	pass();
}
