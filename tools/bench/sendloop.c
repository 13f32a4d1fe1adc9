/*
 * sendloop: loopback transport baselines for the page-server bench (tools/bench/pageserver.sh).
 *
 *   sendloop baseline MIB
 *     A plain send() loop: MIB MiB of non-zero bytes in 1 MiB writes, each preceded by a
 *     24-byte header as a FILE_DATA frame would be, over a loopback TCP connection to a
 *     forked receiver that reads and discards. Prints "send_loop SECONDS BYTES_PER_S".
 *   sendloop sink PORTFILE
 *     A protocol receiver that discards: listens on 127.0.0.1 (ephemeral port, written
 *     to PORTFILE), serves one connection: handshake, then every frame is validated and
 *     read (lz4 blocks decompressed and checked against raw_len), ROUND_COMMIT answered
 *     with ROUND_DONE. Prints "sink BYTES WIRE_BYTES" when the client closes. Isolates
 *     the sender from the page server's disk writes.
 */
#include <errno.h>
#include <lz4.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "pageserver/wire.h"

#define CHUNK (1u << 20)

static int listen_lo(int *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 4) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &al) < 0) {
		perror("sendloop: listen");
		exit(1);
	}
	*port = ntohs(a.sin_port);
	return fd;
}

static int connect_lo(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		perror("sendloop: connect");
		exit(1);
	}
	return fd;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int baseline(size_t mib)
{
	int port, lfd = listen_lo(&port);
	pid_t pid = fork();
	if (pid == 0) {
		int c = accept(lfd, NULL, NULL);
		char *buf = malloc(CHUNK);
		ssize_t n;
		while (buf && (n = read(c, buf, CHUNK)) > 0)
			;
		_exit(0);
	}
	close(lfd);
	int fd = connect_lo(port), v = 8 << 20;
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof(v));
	uint8_t *buf = malloc(CHUNK), hdr[PS_HDR_SIZE];
	if (!buf)
		return 1;
	for (size_t i = 0; i < CHUNK; i++)
		buf[i] = (uint8_t)(i * 131 + 7) | 1;
	struct ps_hdr h = { .magic = PS_FRAME_MAGIC, .type = PS_FILE_DATA, .len = CHUNK,
			    .file = 1, .raw_len = CHUNK };
	ps_hdr_encode(&h, hdr);
	double t0 = now_s();
	for (size_t i = 0; i < mib; i++) {
		if (write_full(fd, hdr, sizeof(hdr)) < 0 || write_full(fd, buf, CHUNK) < 0) {
			perror("sendloop: send");
			return 1;
		}
	}
	shutdown(fd, SHUT_WR);
	int st;
	waitpid(pid, &st, 0); /* the receiver read everything */
	double dt = now_s() - t0;
	printf("send_loop %.6f %.0f\n", dt, mib * (double)CHUNK / dt);
	return 0;
}

/* Answer one frame; 1 when the client closed, -1 on a protocol error. */
static int sink_frame(int fd, uint8_t *buf, uint8_t *raw, uint64_t *bytes, uint64_t *wire)
{
	struct ps_hdr h;
	const char *why = "";
	int r = ps_recv_hdr(fd, &h, &why, 60000);
	if (r == -ECONNRESET)
		return 1;
	if (r < 0) {
		fprintf(stderr, "sendloop sink: %s %s\n", strerror(-r), why);
		return -1;
	}
	if (h.len && ps_recv_full(fd, buf, h.len, 60000) < 0)
		return -1;
	*wire += PS_HDR_SIZE + h.len;
	if (h.type == PS_FILE_DATA) {
		if (h.flags & PS_F_LZ4) {
			int n = LZ4_decompress_safe((char *)buf, (char *)raw, (int)h.len, CHUNK);
			if (n < 0 || (uint32_t)n != h.raw_len) {
				fprintf(stderr, "sendloop sink: bad lz4 block\n");
				return -1;
			}
		}
		*bytes += h.raw_len;
	} else if (h.type == PS_ROUND_COMMIT) {
		PsRoundDone d = PS_ROUND_DONE__INIT;
		d.path = "discarded";
		d.bytes = *bytes;
		if (ps_send_msg(fd, PS_ROUND_DONE, 0, &d.base, 60000) < 0)
			return -1;
	}
	return 0;
}

static int sink(const char *portfile)
{
	int port, lfd = listen_lo(&port);
	char s[16];
	snprintf(s, sizeof(s), "%d\n", port);
	FILE *f = fopen(portfile, "w");
	if (!f || fputs(s, f) < 0 || fclose(f) != 0)
		return 1;
	int fd = accept(lfd, NULL, NULL);
	PsHello *hello = NULL;
	uint64_t agreed, bytes = 0, wire = 0;
	if (fd < 0 || ps_handshake_server(fd, NULL, PS_FEAT_LZ4, &hello, &agreed, 10000) < 0)
		return 1;
	ps_hello__free_unpacked(hello, NULL);
	uint8_t *buf = malloc(PS_MAX_COMMIT), *raw = malloc(CHUNK);
	int r = 0;
	while (buf && raw && (r = sink_frame(fd, buf, raw, &bytes, &wire)) == 0)
		;
	printf("sink %llu %llu\n", (unsigned long long)bytes, (unsigned long long)wire);
	return r < 0;
}

int main(int argc, char **argv)
{
	util_init();
	if (argc == 3 && !strcmp(argv[1], "baseline"))
		return baseline(strtoull(argv[2], NULL, 10));
	if (argc == 3 && !strcmp(argv[1], "sink"))
		return sink(argv[2]);
	fprintf(stderr, "usage: sendloop baseline MIB | sendloop sink PORTFILE\n");
	return 2;
}
