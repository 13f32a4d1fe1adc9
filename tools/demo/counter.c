/*
 * counter: the demo workload. It keeps a counter and a running checksum of a 64 MiB
 * buffer it keeps rewriting, and prints one line per tick (every 100 ms) to stdout:
 *   tick 17 pid 1234 checksum ok
 * After a checkpoint/restore the numbering continues where it was and the checksum of
 * its memory still verifies, which shows that the process continued rather than restarted.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BUF_SIZE (64u << 20)

int main(void)
{
	uint64_t *buf = malloc(BUF_SIZE);
	size_t n = BUF_SIZE / sizeof(*buf);
	uint64_t tick = 0, expect = 0;

	if (!buf)
		return 1;
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (size_t i = 0; i < n; i++) {
		buf[i] = i * 2654435761u;
		expect += buf[i];
	}
	for (;;) {
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		uint64_t sum = 0;
		/* rewrite a slice, then verify the whole buffer */
		size_t slice = (tick * 4096) % n;
		for (size_t i = slice; i < slice + 4096 && i < n; i++) {
			expect -= buf[i];
			buf[i] += tick;
			expect += buf[i];
		}
		for (size_t i = 0; i < n; i++)
			sum += buf[i];
		printf("tick %llu pid %d checksum %s\n", (unsigned long long)tick, getpid(),
		       sum == expect ? "ok" : "BAD");
		if (sum != expect)
			return 2;
		tick++;
		nanosleep(&ts, NULL);
	}
}
