/*
 * stack_deep: a deep recursion whose every frame holds a pattern; the process is
 * checkpointed at the bottom, then each frame verifies its data while unwinding.
 */
#include <string.h>

#include "zdtmtst.h"

#define DEPTH 3000
#define FRAME 256

static int bad_depth = -1;

static int __attribute__((noinline)) dive(int depth)
{
	volatile unsigned char buf[FRAME];
	int i, r;

	for (i = 0; i < FRAME; i++)
		buf[i] = (unsigned char)(depth * 31 + i * 7);
	if (depth == DEPTH) {
		test_ready();
		test_wait_sigterm();
		r = 0;
	} else {
		r = dive(depth + 1);
	}
	for (i = 0; i < FRAME; i++)
		if (buf[i] != (unsigned char)(depth * 31 + i * 7)) {
			bad_depth = depth;
			return r + 1;
		}
	return r;
}

int main(int argc, char **argv)
{
	int bad;

	test_init(argc, argv);
	bad = dive(0);
	if (bad)
		fail("%d frames corrupted (deepest bad frame %d)", bad, bad_depth);
	pass();
}
