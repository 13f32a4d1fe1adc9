/*
 * fpu_sse: xmm0-xmm15 (and ymm0-ymm15 when the CPU and OS support AVX) hold patterns
 * across the checkpoint. The registers are loaded in asm, the ready file is renamed in
 * place with a raw syscall (no libc call may touch the registers after loading), then
 * the asm spins on test_sigterm, set by the SIGTERM handler (the kernel saves and
 * restores the vector state around the handler), and stores the registers to compare.
 */
#include <cpuid.h>
#include <string.h>

#include "zdtmtst.h"

#define NREG 16
#define W 32

static unsigned char in[NREG * W] __attribute__((aligned(64)));
static unsigned char out[NREG * W] __attribute__((aligned(64)));
static char tmp[4200], path[4200];
static long rename_rc;

static int has_avx(void)
{
	unsigned int a, b, c, d, lo, hi;
	if (!__get_cpuid(1, &a, &b, &c, &d))
		return 0;
	if (!(c & bit_AVX) || !(c & bit_OSXSAVE))
		return 0;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return (lo & 6) == 6;
}

/* rename(tmp, path) as a raw syscall when tmp is set; then spin until SIGTERM */
#define READY_AND_SPIN \
	"test %[tmp], %[tmp]\n\t" \
	"jz 2f\n\t" \
	"mov $82, %%eax\n\t" \
	"mov %[tmp], %%rdi\n\t" \
	"mov %[path], %%rsi\n\t" \
	"syscall\n\t" \
	"mov %%rax, %[rc]\n\t" \
	"2: pause\n\t" \
	"cmpl $0, %[flag]\n\t" \
	"je 2b\n\t"

#define XMM_CLOBBERS "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", \
	"xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15"

static void run_sse(const char *t, const char *p)
{
	__asm__ volatile(
		"movdqu 0(%[in]), %%xmm0\n\t"    "movdqu 32(%[in]), %%xmm1\n\t"
		"movdqu 64(%[in]), %%xmm2\n\t"   "movdqu 96(%[in]), %%xmm3\n\t"
		"movdqu 128(%[in]), %%xmm4\n\t"  "movdqu 160(%[in]), %%xmm5\n\t"
		"movdqu 192(%[in]), %%xmm6\n\t"  "movdqu 224(%[in]), %%xmm7\n\t"
		"movdqu 256(%[in]), %%xmm8\n\t"  "movdqu 288(%[in]), %%xmm9\n\t"
		"movdqu 320(%[in]), %%xmm10\n\t" "movdqu 352(%[in]), %%xmm11\n\t"
		"movdqu 384(%[in]), %%xmm12\n\t" "movdqu 416(%[in]), %%xmm13\n\t"
		"movdqu 448(%[in]), %%xmm14\n\t" "movdqu 480(%[in]), %%xmm15\n\t"
		READY_AND_SPIN
		"movdqu %%xmm0, 0(%[out])\n\t"    "movdqu %%xmm1, 32(%[out])\n\t"
		"movdqu %%xmm2, 64(%[out])\n\t"   "movdqu %%xmm3, 96(%[out])\n\t"
		"movdqu %%xmm4, 128(%[out])\n\t"  "movdqu %%xmm5, 160(%[out])\n\t"
		"movdqu %%xmm6, 192(%[out])\n\t"  "movdqu %%xmm7, 224(%[out])\n\t"
		"movdqu %%xmm8, 256(%[out])\n\t"  "movdqu %%xmm9, 288(%[out])\n\t"
		"movdqu %%xmm10, 320(%[out])\n\t" "movdqu %%xmm11, 352(%[out])\n\t"
		"movdqu %%xmm12, 384(%[out])\n\t" "movdqu %%xmm13, 416(%[out])\n\t"
		"movdqu %%xmm14, 448(%[out])\n\t" "movdqu %%xmm15, 480(%[out])\n\t"
		: [rc] "=m"(rename_rc)
		: [in] "r"(in), [out] "r"(out), [tmp] "r"(t), [path] "r"(p), [flag] "m"(test_sigterm)
		: "rax", "rcx", "rdx", "rdi", "rsi", "r11", "memory", "cc", XMM_CLOBBERS);
}

static void run_avx(const char *t, const char *p)
{
	__asm__ volatile(
		"vmovdqu 0(%[in]), %%ymm0\n\t"    "vmovdqu 32(%[in]), %%ymm1\n\t"
		"vmovdqu 64(%[in]), %%ymm2\n\t"   "vmovdqu 96(%[in]), %%ymm3\n\t"
		"vmovdqu 128(%[in]), %%ymm4\n\t"  "vmovdqu 160(%[in]), %%ymm5\n\t"
		"vmovdqu 192(%[in]), %%ymm6\n\t"  "vmovdqu 224(%[in]), %%ymm7\n\t"
		"vmovdqu 256(%[in]), %%ymm8\n\t"  "vmovdqu 288(%[in]), %%ymm9\n\t"
		"vmovdqu 320(%[in]), %%ymm10\n\t" "vmovdqu 352(%[in]), %%ymm11\n\t"
		"vmovdqu 384(%[in]), %%ymm12\n\t" "vmovdqu 416(%[in]), %%ymm13\n\t"
		"vmovdqu 448(%[in]), %%ymm14\n\t" "vmovdqu 480(%[in]), %%ymm15\n\t"
		READY_AND_SPIN
		"vmovdqu %%ymm0, 0(%[out])\n\t"    "vmovdqu %%ymm1, 32(%[out])\n\t"
		"vmovdqu %%ymm2, 64(%[out])\n\t"   "vmovdqu %%ymm3, 96(%[out])\n\t"
		"vmovdqu %%ymm4, 128(%[out])\n\t"  "vmovdqu %%ymm5, 160(%[out])\n\t"
		"vmovdqu %%ymm6, 192(%[out])\n\t"  "vmovdqu %%ymm7, 224(%[out])\n\t"
		"vmovdqu %%ymm8, 256(%[out])\n\t"  "vmovdqu %%ymm9, 288(%[out])\n\t"
		"vmovdqu %%ymm10, 320(%[out])\n\t" "vmovdqu %%ymm11, 352(%[out])\n\t"
		"vmovdqu %%ymm12, 384(%[out])\n\t" "vmovdqu %%ymm13, 416(%[out])\n\t"
		"vmovdqu %%ymm14, 448(%[out])\n\t" "vmovdqu %%ymm15, 480(%[out])\n\t"
		"vzeroupper\n\t"
		: [rc] "=m"(rename_rc)
		: [in] "r"(in), [out] "r"(out), [tmp] "r"(t), [path] "r"(p), [flag] "m"(test_sigterm)
		: "rax", "rcx", "rdx", "rdi", "rsi", "r11", "memory", "cc", XMM_CLOBBERS);
}

int main(int argc, char **argv)
{
	int avx = has_avx(), w = avx ? 32 : 16, r, i;
	const char *t = NULL, *p = NULL;

	test_init(argc, argv);
	test_fill(in, sizeof(in), 0x55e);
	if (test_ready_prepare(tmp, path, sizeof(tmp)) == 0) {
		t = tmp;
		p = path;
	}
	if (avx)
		run_avx(t, p);
	else
		run_sse(t, p);
	if (rename_rc < 0)
		fail("rename of the ready file: %ld", rename_rc);
	for (r = 0; r < NREG; r++)
		for (i = 0; i < w; i++)
			if (in[r * W + i] != out[r * W + i])
				fail("%s%d byte %d: %#x, expected %#x", avx ? "ymm" : "xmm", r, i,
				     out[r * W + i], in[r * W + i]);
	test_msg("checked 16 %s registers\n", avx ? "ymm" : "xmm");
	pass();
}
