/*
 * sendloop: loopback transport baselines for the page-server bench (tools/bench/pageserver.sh).
 *
 *   sendloop baseline MIB [DIR]
 *     A plain send() loop: MIB MiB of non-zero bytes (a 256 MiB buffer at most, cycled)
 *     in 1 MiB writes, each preceded by a
 *     24-byte header as a FILE_DATA frame would be, over a loopback TCP connection to a
 *     forked receiver that reads and discards; with DIR, a receiver that stores them
 *     instead: each 1 MiB payload read into one buffer and written to a new file in DIR
 *     with write() (no hash, no check: the least a receiver that keeps the bytes does),
 *     the file removed at the end. The time ends when the receiver has read (and
 *     written) the last byte. Prints "send_loop SECONDS BYTES_PER_S SENDER_CPU_S
 *     RECEIVER_CPU_S" (CPU seconds, user + system, of the send loop and the receiver).
 *   sendloop baseline MIB DIR|- place
 *     The least a migration's destination does with the bytes: with DIR, stored as
 *     above and also placed into fresh anonymous memory (the tree's, transparent huge
 *     pages as the warm staging maps them) by a second thread that follows the file as
 *     it grows (pread of what the writer has written: the two copies perfectly
 *     overlapped); with "-", received straight into fresh anonymous memory (no file).
 *     The time ends when the last byte is placed. Same output.
 *   sendloop sender MIB MODE RATE_MBPS random|heap
 *     The same bytes through the page-server sender (src/pageserver/sender.c: io_uring
 *     chains, lz4 per --compress MODE off|on|auto) to a forked discarding receiver,
 *     with the link limited to RATE_MBPS MB/s (0: unlimited), in 8 MiB calls as the
 *     dump's page writer makes them. Data: random (incompressible) or heap (heap-like
 *     objects, lz4 ratio ~0.38). Prints "sender SECONDS BYTES_PER_S WIRE_BYTES
 *     LZ4_CHUNKS CHUNKS SWITCHES ON
 *     LINK_EST LZ4_EST RATIO_EST PROBES IDLE_EST" (the auto estimates: bytes/s, bytes/s,
 *     out/in, the sending thread's idle share of a chain's time).
 *     With SENDLOOP_PROGRESS=1 in the environment the sender's progress line is on
 *     (shown when stderr is a terminal); SENDLOOP_EXPECT=BYTES also announces BYTES as
 *     the expected total (ps_sender_expect).
 *   sendloop zc MIB
 *     Like baseline, but each frame is sent with io_uring SEND_ZC (header and payload
 *     linked): the zero-copy variant the sender does not use (see docs/transport.md).
 *   sendloop uring MIB
 *     Like baseline, with one io_uring SENDMSG (MSG_WAITALL) of 8 frames (16 iovecs)
 *     at a time: the cost of io_uring itself next to the send() loop.
 *   sendloop sink PORTFILE
 *     A protocol receiver that discards: listens on 127.0.0.1 (ephemeral port, written
 *     to PORTFILE), serves one connection: handshake, then every frame is validated and
 *     read (lz4 blocks decompressed and checked against raw_len), ROUND_COMMIT answered
 *     with ROUND_DONE. Prints "sink BYTES WIRE_BYTES" when the client closes. Isolates
 *     the sender from the page server's disk writes.
 */
#include <errno.h>
#include <fcntl.h>
#include <lz4.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <liburing.h>

#include "common/util.h"
#include "pageserver/sender.h"
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
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		perror("sendloop: connect");
		exit(1);
	}
	return fd;
}

/* CPU seconds (user + system) of RUSAGE_SELF or RUSAGE_CHILDREN (the waited-for ones). */
static double cpu_s(int who)
{
	struct rusage ru;
	getrusage(who, &ru);
	return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
	       ru.ru_stime.tv_usec / 1e6;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The storing receiver: frames of a 24-byte header and a payload of `len` bytes;
 * each payload read whole into one buffer, then written to the file. */
static int store_frames(int c, int fd)
{
	uint8_t *buf = malloc(CHUNK), hdr[PS_HDR_SIZE];
	struct ps_hdr h;
	const char *why;
	if (!buf)
		return 1;
	while (ps_recv_full(c, hdr, sizeof(hdr), 60000) == 0) {
		if (ps_hdr_decode(hdr, &h, &why) < 0 || h.len > CHUNK ||
		    ps_recv_full(c, buf, h.len, 60000) < 0 || write_full(fd, buf, h.len) < 0) {
			perror("sendloop: storing receiver");
			return 1;
		}
	}
	return 0;
}

/* The placing receiver's memory: the tree's fresh anonymous memory, and for the
 * follower the file and how much of it the writer has written. */
struct place {
	uint8_t *mem;
	size_t len;
	int fd;
	_Atomic size_t written;
	pthread_mutex_t mu;
	pthread_cond_t cv;
};

static uint8_t *place_mem(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	(void)madvise(p, len, MADV_HUGEPAGE);
	return p;
}

static void place_publish(struct place *pl, size_t written)
{
	pthread_mutex_lock(&pl->mu);
	atomic_store(&pl->written, written);
	pthread_cond_signal(&pl->cv);
	pthread_mutex_unlock(&pl->mu);
}

/* The follower: copies what the writer has written from the file into the memory. */
static void *place_follow(void *arg)
{
	struct place *pl = arg;
	size_t done = 0;
	while (done < pl->len) {
		pthread_mutex_lock(&pl->mu);
		while (atomic_load(&pl->written) == done)
			pthread_cond_wait(&pl->cv, &pl->mu);
		size_t to = atomic_load(&pl->written);
		pthread_mutex_unlock(&pl->mu);
		if (to == SIZE_MAX)
			return (void *)1; /* the writer failed */
		if (pread_full(pl->fd, pl->mem + done, to - done, (off_t)done) < 0)
			return (void *)1;
		done = to;
	}
	return NULL;
}

/* The receiver of "place": len bytes of frames stored in fd (if >= 0) and placed. */
static int place_frames(int c, int fd, size_t len)
{
	struct place pl = { .mem = place_mem(len), .len = len, .fd = fd };
	uint8_t *buf = malloc(CHUNK), hdr[PS_HDR_SIZE];
	pthread_t th;
	struct ps_hdr h;
	const char *why;
	size_t off = 0;
	if (!pl.mem || !buf) {
		free(buf);
		return 1;
	}
	pthread_mutex_init(&pl.mu, NULL);
	pthread_cond_init(&pl.cv, NULL);
	if (fd >= 0 && pthread_create(&th, NULL, place_follow, &pl)) {
		free(buf);
		return 1;
	}
	while (off < len && ps_recv_full(c, hdr, sizeof(hdr), 60000) == 0) {
		if (ps_hdr_decode(hdr, &h, &why) < 0 || h.len > CHUNK || h.len > len - off)
			break;
		if (fd < 0) { /* straight into the tree */
			if (ps_recv_full(c, pl.mem + off, h.len, 60000) < 0)
				break;
		} else if (ps_recv_full(c, buf, h.len, 60000) < 0 ||
			   write_full(fd, buf, h.len) < 0) {
			break;
		}
		off += h.len;
		if (fd >= 0)
			place_publish(&pl, off);
	}
	void *r = NULL;
	if (fd >= 0) {
		if (off < len)
			place_publish(&pl, SIZE_MAX);
		pthread_join(th, &r);
	}
	free(buf);
	if (off < len || r) {
		perror("sendloop: placing receiver");
		return 1;
	}
	return 0;
}

/* A connection to a forked receiver that reads and discards everything, or with dir
 * stores the frames' payloads in a file there (dir "-": none), and with place_len
 * also places them into fresh memory; *pid its pid. */
static int discard_peer_in(pid_t *pid, const char *dir, size_t place_len)
{
	int port, lfd = listen_lo(&port);
	*pid = fork();
	if (*pid == 0) {
		int c = accept(lfd, NULL, NULL), st = 0;
		if (place_len && !strcmp(dir, "-"))
			_exit(place_frames(c, -1, place_len));
		if (dir) {
			char path[4096];
			snprintf(path, sizeof(path), "%s/sendloop-%d.data", dir, (int)getpid());
			int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
			st = fd < 0 ||
			     (place_len ? place_frames(c, fd, place_len) : store_frames(c, fd));
			if (fd >= 0)
				unlink(path);
			_exit(st);
		}
		char *buf = malloc(CHUNK);
		while (buf && read(c, buf, CHUNK) > 0)
			;
		_exit(0);
	}
	close(lfd);
	int fd = connect_lo(port), v = 8 << 20;
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof(v));
	return fd;
}

static int discard_peer(pid_t *pid)
{
	return discard_peer_in(pid, NULL, 0);
}

/* The bytes the baselines send: min(mib, 256) MiB of non-zero data, cycled, so that
 * like the dump's data they come from memory and not from a cache-hot 1 MiB buffer. */
#define SRC_MAX 256
static uint8_t *src_chunk(size_t mib, size_t i)
{
	static uint8_t *src;
	static size_t n;
	if (!src) {
		n = mib < SRC_MAX ? mib : SRC_MAX;
		src = malloc(n * CHUNK);
		if (!src) {
			perror("sendloop");
			exit(1);
		}
		for (size_t k = 0; k < n * CHUNK; k++)
			src[k] = (uint8_t)(k * 131 + 7) | 1;
	}
	return src + (i % n) * CHUNK;
}

/* The frame header the baselines send before every 1 MiB chunk (the source primed). */
static void chunk_hdr(size_t mib, uint8_t hdr[PS_HDR_SIZE])
{
	struct ps_hdr h = { .magic = PS_FRAME_MAGIC,
			    .type = PS_FILE_DATA,
			    .len = CHUNK,
			    .file = 1,
			    .raw_len = CHUNK };
	(void)src_chunk(mib, 0);
	ps_hdr_encode(&h, hdr);
}

static int baseline(size_t mib, const char *dir, bool place)
{
	pid_t pid;
	int fd = discard_peer_in(&pid, dir, place ? mib * CHUNK : 0);
	uint8_t hdr[PS_HDR_SIZE];
	chunk_hdr(mib, hdr);
	double t0 = now_s(), c0 = cpu_s(RUSAGE_SELF);
	for (size_t i = 0; i < mib; i++) {
		if (write_full(fd, hdr, sizeof(hdr)) < 0 ||
		    write_full(fd, src_chunk(mib, i), CHUNK) < 0) {
			perror("sendloop: send");
			return 1;
		}
	}
	shutdown(fd, SHUT_WR);
	int st;
	waitpid(pid, &st, 0); /* the receiver read (and stored) everything */
	double dt = now_s() - t0, c1 = cpu_s(RUSAGE_SELF);
	if (!WIFEXITED(st) || WEXITSTATUS(st)) {
		fprintf(stderr, "sendloop: the receiver failed\n");
		return 1;
	}
	printf("send_loop %.6f %.0f %.2f %.2f\n", dt, mib * (double)CHUNK / dt, c1 - c0,
	       cpu_s(RUSAGE_CHILDREN));
	return 0;
}

/* io_uring SEND_ZC of header + payload per frame, linked, one frame in flight. */
static int zc(size_t mib)
{
	pid_t pid;
	int fd = discard_peer(&pid);
	struct io_uring ring;
	uint8_t hdr[PS_HDR_SIZE];
	if (io_uring_queue_init(16, &ring, 0) < 0)
		return 1;
	chunk_hdr(mib, hdr);
	double t0 = now_s();
	for (size_t i = 0; i < mib; i++) {
		struct io_uring_sqe *a = io_uring_get_sqe(&ring), *b;
		io_uring_prep_send_zc(a, fd, hdr, sizeof(hdr), MSG_WAITALL, 0);
		a->flags |= IOSQE_IO_LINK;
		b = io_uring_get_sqe(&ring);
		io_uring_prep_send_zc(b, fd, src_chunk(mib, i), CHUNK, MSG_WAITALL, 0);
		io_uring_submit(&ring);
		/* each SEND_ZC posts its result and, when that has F_MORE, a notification
		 * once the kernel released the pages (then the buffer may change) */
		int results = 2, notifs = 0;
		while (results > 0 || notifs > 0) {
			struct io_uring_cqe *cqe;
			if (io_uring_wait_cqe(&ring, &cqe) < 0)
				return 1;
			if (cqe->flags & IORING_CQE_F_NOTIF) {
				notifs--;
			} else {
				results--;
				if (cqe->flags & IORING_CQE_F_MORE)
					notifs++;
				if (cqe->res < 0) {
					fprintf(stderr, "sendloop zc: %s\n", strerror(-cqe->res));
					return 1;
				}
			}
			io_uring_cqe_seen(&ring, cqe);
		}
	}
	shutdown(fd, SHUT_WR);
	int st;
	waitpid(pid, &st, 0);
	double dt = now_s() - t0;
	printf("send_zc %.6f %.0f\n", dt, mib * (double)CHUNK / dt);
	return 0;
}

/* io_uring, one SENDMSG of 8 frames (header + payload iovecs) per submission. */
static int uring(size_t mib)
{
	pid_t pid;
	int fd = discard_peer(&pid);
	struct io_uring ring;
	uint8_t hdr[PS_HDR_SIZE];
	struct iovec iov[16];
	if (io_uring_queue_init(16, &ring, 0) < 0)
		return 1;
	chunk_hdr(mib, hdr);
	double t0 = now_s();
	for (size_t i = 0; i < mib; i += 8) {
		int n = mib - i < 8 ? (int)(mib - i) : 8;
		for (int k = 0; k < n; k++) {
			iov[2 * k] = (struct iovec){ hdr, sizeof(hdr) };
			iov[2 * k + 1] = (struct iovec){ src_chunk(mib, i + k), CHUNK };
		}
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2 * n };
		struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
		struct io_uring_cqe *cqe;
		io_uring_prep_sendmsg(sqe, fd, &mh, MSG_WAITALL);
		io_uring_submit(&ring);
		if (io_uring_wait_cqe(&ring, &cqe) < 0 ||
		    cqe->res != (int)(n * (sizeof(hdr) + CHUNK))) {
			fprintf(stderr, "sendloop uring: short or failed send\n");
			return 1;
		}
		io_uring_cqe_seen(&ring, cqe);
	}
	shutdown(fd, SHUT_WR);
	int st;
	waitpid(pid, &st, 0);
	double dt = now_s() - t0;
	printf("uring %.6f %.0f\n", dt, mib * (double)CHUNK / dt);
	return 0;
}

/* Heap-like bytes (the kind of data tools/bench/heaphog holds) or random ones. */
static void fill(uint8_t *p, size_t len, bool heap)
{
	static const char *const w[] = { "user", "session", "config", "node", "entry", "key" };
	uint64_t x = 0x9e3779b97f4a7c15ull;
	for (size_t off = 0; off + 64 <= len; off += 64) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		uint64_t o[8] = { 0 };
		if (!heap) {
			for (int i = 0; i < 8; i++) {
				x ^= x << 13, x ^= x >> 7, x ^= x << 17;
				o[i] = x;
			}
			memcpy(p + off, o, 64);
			continue;
		}
		o[0] = (x & 7) * 16 + 33;
		o[1] = 0x7f0000000000ull + (x >> 20) % len / 64 * 64;
		o[2] = (x >> 8) & 1 ? 0x7f0000000000ull + (x >> 30) % len / 64 * 64 : 0;
		o[3] = (x >> 16) & 0xff;
		o[4] = (x >> 24) & 3;
		memcpy(p + off, o, 40);
		snprintf((char *)p + off + 40, 24, "%s_%u", w[(x >> 32) % 6],
			 (unsigned)(x >> 40) & 63);
	}
}

static int sender(size_t mib, const char *mode, double mbps, const char *data)
{
	size_t len = mib << 20, put = 8u << 20;
	int m = ps_compress_parse(mode);
	uint8_t *buf = malloc(len);
	pid_t pid;
	struct ps_sender *s;
	if (m < 0 || !buf)
		return 2;
	memset(buf, 0, len);
	fill(buf, len, !strcmp(data, "heap"));
	int fd = discard_peer(&pid);
	if (ps_sender_new(fd, m, true, 60000, &s) < 0)
		return 1;
	ps_sender_set_rate((uint64_t)(mbps * 1e6));
	if (getenv("SENDLOOP_PROGRESS"))
		ps_sender_progress(s, true, 0);
	const char *expect = getenv("SENDLOOP_EXPECT");
	if (getenv("SENDLOOP_PROGRESS") && expect)
		ps_sender_expect(s, strtoull(expect, NULL, 10));
	double t0 = now_s();
	for (size_t off = 0; off < len; off += put)
		if (ps_sender_data(s, 1, buf + off, len - off < put ? len - off : put) < 0) {
			fprintf(stderr, "sendloop sender: send failed\n");
			return 1;
		}
	shutdown(fd, SHUT_WR);
	int st;
	waitpid(pid, &st, 0);
	double dt = now_s() - t0;
	struct ps_send_stats ss;
	ps_sender_stats(s, &ss);
	printf("sender %.6f %.0f %llu %llu %llu %llu %d %.0f %.0f %.3f %llu %.3f\n", dt, len / dt,
	       (unsigned long long)ss.wire, (unsigned long long)ss.lz4_chunks,
	       (unsigned long long)ss.chunks, (unsigned long long)ss.switches, ss.on, ss.est_link,
	       ss.est_lz4, ss.est_ratio, (unsigned long long)ss.probes, ss.est_idle);
	ps_sender_free(s);
	free(buf);
	close(fd);
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
	if ((argc == 3 || argc == 4) && !strcmp(argv[1], "baseline"))
		return baseline(strtoull(argv[2], NULL, 10), argc == 4 ? argv[3] : NULL, false);
	if (argc == 5 && !strcmp(argv[1], "baseline") && !strcmp(argv[4], "place"))
		return baseline(strtoull(argv[2], NULL, 10), argv[3], true);
	if (argc == 3 && !strcmp(argv[1], "uring"))
		return uring(strtoull(argv[2], NULL, 10));
	if (argc == 3 && !strcmp(argv[1], "zc"))
		return zc(strtoull(argv[2], NULL, 10));
	if (argc == 6 && !strcmp(argv[1], "sender"))
		return sender(strtoull(argv[2], NULL, 10), argv[3], atof(argv[4]), argv[5]);
	if (argc == 3 && !strcmp(argv[1], "sink"))
		return sink(argv[2]);
	fprintf(stderr,
		"usage: sendloop baseline MIB [DIR] | baseline MIB DIR|- place | uring MIB | zc MIB | sink PORTFILE |\n"
		"       sendloop sender MIB off|on|auto RATE_MBPS random|heap\n");
	return 2;
}
