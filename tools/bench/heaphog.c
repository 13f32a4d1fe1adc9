/*
 * heaphog SIZE_MB READY_FILE [verify]: a benchmark and test workload whose memory looks
 * like a real heap, so that lz4 finds what it finds in one: 64-byte objects made of a
 * header (size class, small flags), two pointers into the same arena, small integers,
 * a short ASCII string from a small vocabulary, and zero padding. Every object is a
 * pure function of its index (a cheap hash picks the fields), so the content can be
 * verified after a restore. Writes its pid to READY_FILE once filled, then sleeps until
 * SIGTERM; with "verify" it then checks every byte and exits 0 (intact) or 1.
 * lz4 compresses this to about a third, at a few hundred MB/s a core.
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define OBJ 64

static volatile sig_atomic_t stop;
static void on_term(int s)
{
	(void)s;
	stop = 1;
}

static const char *const words[] = { "user",  "session", "config", "buffer",  "node",	 "list",
				     "entry", "value",	 "key",	   "request", "handler", "cache",
				     "id",    "name",	 "path",   "status" };

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	return x ^ (x >> 33);
}

/* Object i of an arena mapped at base (the pointers are arena addresses). */
static void object(uint8_t *o, uint64_t i, uint64_t base, uint64_t nobj)
{
	uint64_t h = mix(i + 1);
	uint64_t w[8] = { 0 };
	w[0] = (h & 7) * 16 + 33;				    /* malloc-style size header */
	w[1] = base + (mix(h) % nobj) * OBJ;			    /* next */
	w[2] = (h >> 8) & 1 ? base + (mix(h + 1) % nobj) * OBJ : 0; /* parent or NULL */
	w[3] = (h >> 16) & 0xff;				    /* small counter */
	w[4] = (h >> 24) & 0x3;					    /* state enum */
	memcpy(o, w, 40);
	const char *s = words[(h >> 32) & 15];
	snprintf((char *)o + 40, 24, "%s_%u", s, (unsigned)((h >> 40) & 0x3f));
	size_t n = strlen((char *)o + 40);
	memset(o + 40 + n, 0, 24 - n);
}

int main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	size_t len = (size_t)strtoull(argv[1], NULL, 10) << 20;
	uint8_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return 3;
	uint64_t nobj = len / OBJ, base = (uint64_t)(uintptr_t)p;
	for (uint64_t i = 0; i < nobj; i++)
		object(p + i * OBJ, i, base, nobj);
	signal(SIGTERM, on_term);
	FILE *f = fopen(argv[2], "w");
	if (!f)
		return 4;
	fprintf(f, "%d\n", getpid());
	fclose(f);
	while (!stop)
		pause();
	if (argc > 3) {
		uint8_t want[OBJ];
		for (uint64_t i = 0; i < nobj; i++) {
			object(want, i, base, nobj);
			if (memcmp(want, p + i * OBJ, OBJ))
				return 1;
		}
	}
	return 0;
}
