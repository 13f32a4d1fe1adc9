/*
 * fpu_x87: the x87 control word (53-bit precision, round toward zero), four values on
 * the x87 register stack, and MXCSR (round toward zero, FTZ, DAZ) are held across the
 * checkpoint in asm (see fpu_sse.c for the ready/spin scheme). After, the control word
 * and MXCSR read back equal, the stack values are bit-exact, and a long double and a
 * float division give the same bits as before the checkpoint (the modes still apply).
 */
#include <string.h>

#include "zdtmtst.h"

#define CW    0x0e7f	/* all exceptions masked, PC = 53 bit, RC = toward zero */
#define MXCSR 0xffc0	/* masked, RZ, FTZ, DAZ */

static long double ld_in[4] __attribute__((aligned(16)));
static long double ld_out[4] __attribute__((aligned(16)));
static unsigned short cw_in = CW, cw_out;
static unsigned int mx_in = MXCSR, mx_out;
static char tmp[4200], path[4200];
static long rename_rc;

static volatile long double lda = 1.0L, ldb = 3.0L;
static volatile float fa = 1.0f, fb = 3.0f;

static void run(const char *t, const char *p)
{
	__asm__ volatile(
		"fninit\n\t"
		"fldcw %[cwi]\n\t"
		"ldmxcsr %[mxi]\n\t"
		"fldt 0(%[ld])\n\t" "fldt 16(%[ld])\n\t" "fldt 32(%[ld])\n\t" "fldt 48(%[ld])\n\t"
		"test %[tmp], %[tmp]\n\t"
		"jz 2f\n\t"
		"mov $82, %%eax\n\t"
		"mov %[tmp], %%rdi\n\t"
		"mov %[path], %%rsi\n\t"
		"syscall\n\t"
		"mov %%rax, %[rc]\n\t"
		"2: pause\n\t"
		"cmpl $0, %[flag]\n\t"
		"je 2b\n\t"
		"fnstcw %[cwo]\n\t"
		"stmxcsr %[mxo]\n\t"
		"fstpt 48(%[lo])\n\t" "fstpt 32(%[lo])\n\t" "fstpt 16(%[lo])\n\t" "fstpt 0(%[lo])\n\t"
		: [rc] "=m"(rename_rc), [cwo] "=m"(cw_out), [mxo] "=m"(mx_out)
		: [ld] "r"(ld_in), [lo] "r"(ld_out), [tmp] "r"(t), [path] "r"(p),
		  [flag] "m"(test_sigterm), [cwi] "m"(cw_in), [mxi] "m"(mx_in)
		: "rax", "rcx", "rdx", "rdi", "rsi", "r11", "memory", "cc",
		  "st", "st(1)", "st(2)", "st(3)", "st(4)", "st(5)", "st(6)", "st(7)");
}

int main(int argc, char **argv)
{
	const char *t = NULL, *p = NULL;
	long double q0, q1;
	float f0, f1;
	int i;

	test_init(argc, argv);
	ld_in[0] = 3.14159265358979323846264338327950288L;
	ld_in[1] = -2.5e300L;
	ld_in[2] = 1.0L / 7.0L;
	ld_in[3] = 1.0e-4940L;	/* denormal */
	if (test_ready_prepare(tmp, path, sizeof(tmp)) == 0) {
		t = tmp;
		p = path;
	}
	/* the same modes before the checkpoint, for the reference results */
	__asm__ volatile("fldcw %0\n\tldmxcsr %1" : : "m"(cw_in), "m"(mx_in));
	q0 = lda / ldb;
	f0 = fa / fb;
	run(t, p);
	q1 = lda / ldb;
	f1 = fa / fb;
	if (rename_rc < 0)
		fail("rename of the ready file: %ld", rename_rc);
	if (cw_out != CW)
		fail("x87 control word %#x, expected %#x", cw_out, CW);
	if (mx_out != MXCSR)
		fail("MXCSR %#x, expected %#x", mx_out, MXCSR);
	for (i = 0; i < 4; i++)
		if (memcmp(&ld_in[i], &ld_out[i], 10))
			fail("x87 stack value %d differs", i);
	if (memcmp(&q0, &q1, 10))
		fail("long double 1/3 differs: the x87 modes changed");
	if (memcmp(&f0, &f1, sizeof(f0)))
		fail("float 1/3 differs (%a vs %a): the MXCSR modes changed", (double)f1, (double)f0);
	pass();
}
