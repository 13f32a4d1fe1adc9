/*
 * memhog SIZE_MB READY_FILE: the benchmark workload. Maps SIZE_MB of private anonymous
 * memory, fills every page with non-zero data, writes its pid to READY_FILE and sleeps
 * until killed. With a third argument "verify" it checks its data on SIGTERM and exits 0
 * (intact) or 1.
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
static void on_term(int s)
{
	(void)s;
	stop = 1;
}

int main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	size_t len = (size_t)strtoull(argv[1], NULL, 10) << 20;
	uint64_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return 3;
	for (size_t i = 0; i < len / 8; i++)
		p[i] = i * 0x9E3779B97F4A7C15ull + 1;
	signal(SIGTERM, on_term);
	FILE *f = fopen(argv[2], "w");
	if (!f)
		return 4;
	fprintf(f, "%d\n", getpid());
	fclose(f);
	while (!stop)
		pause();
	if (argc > 3)
		for (size_t i = 0; i < len / 8; i++)
			if (p[i] != i * 0x9E3779B97F4A7C15ull + 1)
				return 1;
	return 0;
}
