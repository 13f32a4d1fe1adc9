/*
 * ps_peer: a scriptable page-server client for the hostile-peer tests
 * (test/pageserver/t_hostile_*.sh). It speaks the protocol with the project's own
 * codec (src/pageserver/wire.c) but lets a script send anything: garbage, truncated or
 * oversized frames, bad names, a wrong version, then check what the server answers.
 *
 *   ps_peer --port N [--address A] [--key FILE] [--source S] [--local DIR]
 *           [--timeout-ms MS] ACTION [ARGS]...
 *
 * Actions run in order on one connection (opened by the first action that needs it):
 *   hello                 full handshake (with --key: keyed); fails if not READY
 *   hello-version V       send a HELLO of protocol version V (then use expect-error)
 *   garbage N             send N pseudo-random bytes
 *   hello-forged          keyed HELLO, ignore the server's proof, answer a forged
 *                         AUTH proof (then use expect-error)
 *   truncated             send 10 bytes of a valid header, then stop writing
 *   data-short ID N K     a FILE_DATA header of N bytes, then only K of them
 *   shut                  stop writing (shutdown SHUT_WR)
 *   hdr TYPE LEN          send a frame header only (TYPE number, LEN any u64)
 *   begin NAME            ROUND_BEGIN (kind dump)
 *   open ID NAME          FILE_OPEN
 *   data ID N             N pattern bytes of file ID, raw, in chunks
 *   data-lz4 ID N         the same as lz4 blocks (PS_F_LZ4)
 *   lz4-bad ID RAW        one PS_F_LZ4 frame of junk that claims RAW bytes
 *   close ID              FILE_CLOSE with the size and xxh64 of what was sent
 *   close-bad ID          the same with a size one byte too large
 *   commit-garbage        ROUND_COMMIT of bytes that are no inventory
 *   mig-warm NAME         MIG_WARM of round NAME (migrate's staging request)
 *   mig-warm-queue NAME   the same with queue (staged in the background, answered at once)
 *   mig-restore NAME      MIG_RESTORE of round NAME
 *   expect-warmed         read until MIG_WARMED; prints "WARMED ok B bytes [cause]"
 *   round NAME PARENT N   a whole valid round written through img_* with a sink that
 *                         streams it (local metadata in --local DIR/NAME): pstree.img,
 *                         files.img, pages-1.img of N bytes; PARENT "../X" or "-";
 *                         fails unless ROUND_DONE arrives
 *   hold MS               keep the socket open, sending nothing, for MS ms
 *   expect-error TEXT     read until an ERROR whose message contains TEXT ("-": any);
 *                         prints it; fails on close or timeout without one
 *   expect-close          the server closes (EOF) within the timeout
 *   flood N HOLD_MS       N connections at once (forked, started together), each does
 *                         the handshake and holds HOLD_MS; prints "ready R busy B
 *                         failed F"; fails if F > 0 or R == 0
 * Exit 0 if every action did what it says, 1 otherwise (the failing action is printed).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <lz4.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/log.h"
#include "common/util.h"
#include "img/img.h"
#include "migrate.pb-c.h"
#include "pageserver/wire.h"
#include "pstree.pb-c.h"

static struct {
	const char *address, *key_file, *source, *local;
	int port, timeout_ms;
	struct ps_key key;
} g = { .address = "127.0.0.1", .source = "peer", .local = "/tmp", .timeout_ms = 5000 };

static int conn_fd = -1;

#define MAX_IDS 64
static struct {
	bool open;
	uint64_t size;
	XXH64_state_t *xs;
} ids[MAX_IDS];

static int die(const char *what)
{
	fprintf(stderr, "ps_peer: FAILED: %s\n", what);
	exit(1);
}

static int tcp_connect(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(g.port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || inet_pton(AF_INET, g.address, &a.sin_addr) != 1)
		return -1;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int sock(void)
{
	if (conn_fd < 0 && (conn_fd = tcp_connect()) < 0)
		die("cannot connect");
	return conn_fd;
}

/* ---- a sink for `round`: streams the files img writes ---------------------------- */
struct peer_fh {
	uint32_t id;
};
static uint32_t next_id;
static uint32_t round_kind = IMG_KIND_DUMP;

static int sk_begin(void *s, const char *path)
{
	PsRoundBegin rb = PS_ROUND_BEGIN__INIT;
	const char *slash = strrchr(path, '/');
	rb.name = (char *)(slash ? slash + 1 : path);
	rb.kind = round_kind;
	return ps_send_msg(sock(), PS_ROUND_BEGIN, 0, &rb.base, g.timeout_ms);
}

static int sk_open(void *s, const char *name, uint32_t magic, void **fh)
{
	PsFileOpen fo = PS_FILE_OPEN__INIT;
	struct peer_fh *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->id = next_id++;
	fo.id = f->id;
	fo.name = (char *)name;
	fo.magic = magic;
	*fh = f;
	return ps_send_msg(sock(), PS_FILE_OPEN, f->id, &fo.base, g.timeout_ms);
}

static int sk_write(void *s, void *fh, const void *buf, size_t len)
{
	const struct peer_fh *f = fh;
	const uint8_t *p = buf;
	while (len) {
		size_t n = len < PS_MAX_CHUNK ? len : PS_MAX_CHUNK;
		int r = ps_send_raw(sock(), PS_FILE_DATA, 0, f->id, p, n, n, g.timeout_ms);
		if (r < 0)
			return r;
		p += n;
		len -= n;
	}
	return 0;
}

static int sk_close(void *s, void *fh, uint64_t size, uint64_t hash)
{
	PsFileClose fc = PS_FILE_CLOSE__INIT;
	struct peer_fh *f = fh;
	fc.id = f->id;
	fc.size = size;
	fc.xxh64 = hash;
	free(f);
	return ps_send_msg(sock(), PS_FILE_CLOSE, fc.id, &fc.base, g.timeout_ms);
}

static void sk_abort(void *s, void *fh)
{
	PsFileAbort fa = PS_FILE_ABORT__INIT;
	struct peer_fh *f = fh;
	fa.id = f->id;
	free(f);
	(void)ps_send_msg(sock(), PS_FILE_ABORT, fa.id, &fa.base, g.timeout_ms);
}

static int last_error_code;

/* Read frames until one of type WANT (0 on it) or an ERROR (printed, its code in
 * last_error_code, returns 1); -errno on a receive error. */
static int wait_for(unsigned want, char *msg, size_t msglen)
{
	for (;;) {
		struct ps_hdr h;
		const char *why = NULL;
		uint8_t *buf;
		int r = ps_recv_hdr(sock(), &h, &why, g.timeout_ms);
		if (r < 0) {
			snprintf(msg, msglen, "%s", r == -EPROTO ? why : strerror(-r));
			return r;
		}
		buf = malloc(h.len + 1);
		if (!buf || ps_recv_full(sock(), buf, h.len, g.timeout_ms) < 0)
			die("reading a frame payload");
		if (h.type == PS_ERROR) {
			ProtobufCMessage *m;
			if (ps_unpack(&ps_error__descriptor, buf, h.len, &m) < 0)
				die("undecodable ERROR");
			PsError *e = (PsError *)m;
			snprintf(msg, msglen, "%s", e->message);
			printf("ERROR %d: %s\n", e->code, e->message);
			last_error_code = e->code;
			protobuf_c_message_free_unpacked(m, NULL);
			free(buf);
			return 1;
		}
		if (h.type == PS_ROUND_DONE) {
			ProtobufCMessage *m;
			if (ps_unpack(&ps_round_done__descriptor, buf, h.len, &m) < 0)
				die("undecodable ROUND_DONE");
			PsRoundDone *d = (PsRoundDone *)m;
			printf("ROUND_DONE %s files %u bytes %llu\n", d->path, d->files,
			       (unsigned long long)d->bytes);
			protobuf_c_message_free_unpacked(m, NULL);
		}
		free(buf);
		if (h.type == want)
			return 0;
	}
}

static int sk_commit(void *s, const void *inv, size_t len)
{
	char msg[512];
	int r = ps_send_raw(sock(), PS_ROUND_COMMIT, 0, 0, inv, len, 0, g.timeout_ms);
	if (r < 0)
		return r;
	r = wait_for(PS_ROUND_DONE, msg, sizeof(msg));
	if (r == 1)
		r = last_error_code > 0 ? -last_error_code : -EPROTO;
	if (r < 0)
		fprintf(stderr, "ps_peer: commit refused: %s\n", msg);
	return r;
}

static void sk_discard(void *s)
{
	(void)ps_send_raw(sock(), PS_ROUND_ABORT, 0, 0, NULL, 0, 0, g.timeout_ms);
}

static const struct img_sink_ops peer_sink = {
	.begin = sk_begin, .open = sk_open, .write = sk_write, .close = sk_close,
	.abort = sk_abort, .commit = sk_commit, .discard = sk_discard,
};

/* A tiny but real image set, through img_* and the sink. */
static int do_round(const char *name, const char *parent, size_t pages)
{
	char path[4096];
	struct img_dir *d;
	struct img_writer *w;
	PstreeEntry pe = PSTREE_ENTRY__INIT;
	InventoryEntry inv;
	uint8_t buf[4096];
	int r;

	snprintf(path, sizeof(path), "%s/%s", g.local, name);
	img_set_sink(&peer_sink, NULL);
	if ((r = img_dir_create(path, &d)) < 0)
		return r;
	pe.pid = 1;
	pe.pgid = 1;
	pe.sid = 1;
	if ((r = img_writer_open(d, "pstree.img", IMG_MAGIC_PSTREE, &w)) < 0 ||
	    (r = img_write_pb(w, &pe.base)) < 0 || (r = img_writer_close(w)) < 0)
		goto out;
	if ((r = img_writer_open(d, "files.img", IMG_MAGIC_FILES, &w)) < 0 ||
	    (r = img_writer_close(w)) < 0)
		goto out;
	if ((r = img_writer_open(d, "pages-1.img", IMG_MAGIC_RAW, &w)) < 0)
		goto out;
	for (size_t off = 0; off < pages && r == 0; off += sizeof(buf)) {
		size_t n = pages - off < sizeof(buf) ? pages - off : sizeof(buf);
		for (size_t i = 0; i < n; i++)
			buf[i] = (uint8_t)((off + i) * 7 + 1);
		r = img_write_raw(w, buf, n);
	}
	if (r < 0 || (r = img_writer_close(w)) < 0)
		goto out;
	img_inventory_init(&inv);
	inv.root_pid = 1;
	inv.kind = round_kind;
	inv.parent = strcmp(parent, "-") ? (char *)parent : NULL;
	r = img_dir_commit(d, &inv);
out:
	img_dir_free(d);
	img_set_sink(NULL, NULL);
	return r;
}

/* ---- crafted frames ------------------------------------------------------------ */

static void send_hello_version(unsigned v)
{
	PsHello h = PS_HELLO__INIT;
	uint8_t nonce[PS_NONCE_LEN] = { 1 };
	h.version = v;
	h.page_size = page_size;
	h.arch = "x86_64";
	h.kernel = "test";
	h.source = (char *)g.source;
	h.nonce.data = nonce;
	h.nonce.len = sizeof(nonce);
	if (ps_send_msg(sock(), PS_HELLO, 0, &h.base, g.timeout_ms) < 0)
		die("send HELLO");
}

/* A keyed client that cannot prove the key: the server must refuse its AUTH. */
static void send_forged_auth(void)
{
	uint8_t nonce[PS_NONCE_LEN] = { 3 }, proof[PS_PROOF_LEN];
	PsHello h = PS_HELLO__INIT;
	PsAuth a = PS_AUTH__INIT;
	char msg[512];

	h.version = PS_VERSION;
	h.page_size = page_size;
	h.arch = "x86_64";
	h.kernel = "test";
	h.source = (char *)g.source;
	h.nonce.data = nonce;
	h.nonce.len = sizeof(nonce);
	h.has_keyed = h.keyed = true;
	if (ps_send_msg(sock(), PS_HELLO, 0, &h.base, g.timeout_ms) < 0)
		die("send HELLO");
	if (wait_for(PS_WELCOME, msg, sizeof(msg)) != 0)
		die("no WELCOME");
	for (size_t i = 0; i < sizeof(proof); i++)
		proof[i] = (uint8_t)(i * 29 + 5);
	a.has_proof = true;
	a.proof.data = proof;
	a.proof.len = sizeof(proof);
	if (ps_send_msg(sock(), PS_AUTH, 0, &a.base, g.timeout_ms) < 0)
		die("send AUTH");
}

static void send_garbage(size_t n)
{
	uint8_t buf[4096];
	uint32_t x = 2463534242u;
	while (n) {
		size_t k = n < sizeof(buf) ? n : sizeof(buf);
		for (size_t i = 0; i < k; i++) {
			x ^= x << 13, x ^= x >> 17, x ^= x << 5;
			buf[i] = (uint8_t)x;
		}
		if (write_full(sock(), buf, k) < 0)
			return; /* the server may close first: that is fine */
		n -= k;
	}
}

static void send_hdr(unsigned type, uint64_t len)
{
	struct ps_hdr h = { .magic = PS_FRAME_MAGIC, .type = type, .len = len };
	uint8_t b[PS_HDR_SIZE];
	ps_hdr_encode(&h, b);
	if (write_full(sock(), b, sizeof(b)) < 0)
		die("send header");
}

static void send_data(uint32_t id, size_t n, bool lz4)
{
	uint8_t *buf = malloc(PS_MAX_CHUNK);
	char *comp = malloc(LZ4_compressBound(PS_MAX_CHUNK));
	if (id >= MAX_IDS || !buf || !comp)
		die("data: bad id");
	if (!ids[id].xs) {
		ids[id].xs = XXH64_createState();
		XXH64_reset(ids[id].xs, 0);
	}
	while (n) {
		size_t k = n < PS_MAX_CHUNK ? n : PS_MAX_CHUNK;
		for (size_t i = 0; i < k; i++)
			buf[i] = (uint8_t)((ids[id].size + i) * 13);
		if (lz4) {
			int cl = LZ4_compress_default((const char *)buf, comp, (int)k,
						      LZ4_compressBound(PS_MAX_CHUNK));
			if (cl <= 0 || ps_send_raw(sock(), PS_FILE_DATA, PS_F_LZ4, id, comp, cl,
						   k, g.timeout_ms) < 0)
				die("send lz4 FILE_DATA");
		} else if (ps_send_raw(sock(), PS_FILE_DATA, 0, id, buf, k, k, g.timeout_ms) < 0) {
			die("send FILE_DATA");
		}
		XXH64_update(ids[id].xs, buf, k);
		ids[id].size += k;
		n -= k;
	}
	free(buf);
	free(comp);
}

static void send_open(uint32_t id, const char *name)
{
	PsFileOpen fo = PS_FILE_OPEN__INIT;
	if (id < MAX_IDS && ids[id].xs) /* a new file under a reused id */
		XXH64_reset(ids[id].xs, 0);
	if (id < MAX_IDS)
		ids[id].size = 0;
	fo.id = id;
	fo.name = (char *)name;
	if (ps_send_msg(sock(), PS_FILE_OPEN, id, &fo.base, g.timeout_ms) < 0)
		die("send FILE_OPEN");
}

static void send_close(uint32_t id, uint64_t size_delta)
{
	PsFileClose fc = PS_FILE_CLOSE__INIT;
	if (id >= MAX_IDS)
		die("close: bad id");
	fc.id = id;
	fc.size = ids[id].size + size_delta;
	fc.xxh64 = ids[id].xs ? XXH64_digest(ids[id].xs) : XXH64(NULL, 0, 0);
	if (ps_send_msg(sock(), PS_FILE_CLOSE, id, &fc.base, g.timeout_ms) < 0)
		die("send FILE_CLOSE");
}

static void send_begin(const char *name)
{
	PsRoundBegin rb = PS_ROUND_BEGIN__INIT;
	rb.name = (char *)name;
	if (ps_send_msg(sock(), PS_ROUND_BEGIN, 0, &rb.base, g.timeout_ms) < 0)
		die("send ROUND_BEGIN");
}

static void expect_error(const char *text)
{
	char msg[512];
	int r = wait_for(PS_ERROR, msg, sizeof(msg));
	if (r != 1) {
		fprintf(stderr, "ps_peer: no ERROR: %s\n", msg);
		die("expect-error");
	}
	if (strcmp(text, "-") && !strstr(msg, text)) {
		fprintf(stderr, "ps_peer: ERROR '%s' lacks '%s'\n", msg, text);
		die("expect-error");
	}
}

/* MIG_WARMED must come (an ERROR or a close fails): the staging answered. */
static void expect_warmed(void)
{
	for (;;) {
		struct ps_hdr h;
		const char *why = NULL;
		ProtobufCMessage *m;
		uint8_t *buf;
		if (ps_recv_hdr(sock(), &h, &why, g.timeout_ms) < 0)
			die("expect-warmed: no frame");
		buf = malloc(h.len + 1);
		if (!buf || ps_recv_full(sock(), buf, h.len, g.timeout_ms) < 0)
			die("reading a frame payload");
		if (h.type == PS_ERROR)
			die("expect-warmed: ERROR instead");
		if (h.type != PS_MIG_WARMED) {
			free(buf);
			continue;
		}
		if (ps_unpack(&mig_warmed__descriptor, buf, h.len, &m) < 0)
			die("undecodable MIG_WARMED");
		MigWarmed *w = (MigWarmed *)m;
		printf("WARMED %s %llu bytes%s%s%s\n", w->ok ? "ok" : "failed",
		       (unsigned long long)w->bytes, w->has_queued && w->queued ? " (queued)" : "",
		       w->cause ? ": " : "", w->cause ? w->cause : "");
		protobuf_c_message_free_unpacked(m, NULL);
		free(buf);
		return;
	}
}

static void expect_close(void)
{
	uint8_t b[4096];
	uint64_t end = now_ns() + (uint64_t)g.timeout_ms * 1000000;
	while (now_ns() < end) {
		int r = ps_recv_full(sock(), b, 1, 100);
		if (r == -ECONNRESET)
			return;
		if (r < 0 && r != -ETIMEDOUT)
			return;
	}
	die("expect-close: still open");
}

static int handshake(int fd)
{
	uint64_t agreed;
	return ps_handshake_client(fd, &g.key, g.source, PS_FEAT_LZ4, &agreed, g.timeout_ms);
}

/* N connections started together; each handshakes and holds. */
static void flood(int n, int hold_ms)
{
	int go[2], ready = 0, busy = 0, failed = 0;
	pid_t *kids = calloc(n, sizeof(*kids));
	if (!kids || pipe(go) < 0)
		die("flood setup");
	for (int i = 0; i < n; i++) {
		kids[i] = fork();
		if (kids[i] == 0) {
			char c;
			close(go[1]);
			if (read(go[0], &c, 1) < 0) /* EOF: everyone starts now */
				_exit(3);
			int fd = tcp_connect();
			if (fd < 0)
				_exit(4);
			int r = handshake(fd);
			if (r == 0) {
				struct timespec ts = { hold_ms / 1000, (hold_ms % 1000) * 1000000L };
				nanosleep(&ts, NULL);
			}
			close(fd);
			_exit(r == 0 ? 0 : r == -EBUSY ? 2 : 1);
		}
		if (kids[i] < 0)
			die("fork");
	}
	close(go[0]);
	close(go[1]);
	for (int i = 0; i < n; i++) {
		int st;
		if (waitpid(kids[i], &st, 0) != kids[i] || !WIFEXITED(st))
			failed++;
		else if (WEXITSTATUS(st) == 0)
			ready++;
		else if (WEXITSTATUS(st) == 2)
			busy++;
		else
			failed++;
	}
	printf("flood: ready %d busy %d failed %d\n", ready, busy, failed);
	free(kids);
	if (failed || !ready)
		die("flood");
}

static unsigned long num(const char *s)
{
	uint64_t v;
	if (parse_u64(s, 0, &v) < 0)
		die("bad number");
	return v;
}

/* Run the action at argv[i]; returns the number of words consumed. */
static int action(int argc, char **argv, int i)
{
	const char *a = argv[i];
	int left = argc - i - 1;
#define NEED(n)                                                                                    \
	do {                                                                                       \
		if (left < (n))                                                                    \
			die(a);                                                                    \
	} while (0)
	if (!strcmp(a, "hello")) {
		if (handshake(sock()) < 0)
			die("hello");
		printf("READY\n");
		return 1;
	}
	if (!strcmp(a, "hello-version")) {
		NEED(1);
		send_hello_version(num(argv[i + 1]));
		return 2;
	}
	if (!strcmp(a, "garbage")) {
		NEED(1);
		send_garbage(num(argv[i + 1]));
		return 2;
	}
	if (!strcmp(a, "truncated")) {
		struct ps_hdr h = { .magic = PS_FRAME_MAGIC, .type = PS_HELLO, .len = 100 };
		uint8_t b[PS_HDR_SIZE];
		ps_hdr_encode(&h, b);
		if (write_full(sock(), b, 10) < 0)
			die("truncated");
		shutdown(sock(), SHUT_WR);
		return 1;
	}
	if (!strcmp(a, "hello-forged")) {
		send_forged_auth();
		return 1;
	}
	if (!strcmp(a, "data-short")) {
		NEED(3);
		size_t n = num(argv[i + 2]), k = num(argv[i + 3]);
		struct ps_hdr h = { .magic = PS_FRAME_MAGIC, .type = PS_FILE_DATA, .len = n,
				    .file = num(argv[i + 1]), .raw_len = n };
		uint8_t b[PS_HDR_SIZE], *p = calloc(1, k + 1);
		ps_hdr_encode(&h, b);
		if (!p || write_full(sock(), b, sizeof(b)) < 0 || write_full(sock(), p, k) < 0)
			die("data-short");
		free(p);
		return 4;
	}
	if (!strcmp(a, "shut")) {
		shutdown(sock(), SHUT_WR);
		return 1;
	}
	if (!strcmp(a, "hdr")) {
		NEED(2);
		send_hdr(num(argv[i + 1]), num(argv[i + 2]));
		return 3;
	}
	if (!strcmp(a, "begin")) {
		NEED(1);
		send_begin(argv[i + 1]);
		return 2;
	}
	if (!strcmp(a, "open")) {
		NEED(2);
		send_open(num(argv[i + 1]), argv[i + 2]);
		return 3;
	}
	if (!strcmp(a, "data")) {
		NEED(2);
		send_data(num(argv[i + 1]), num(argv[i + 2]), false);
		return 3;
	}
	if (!strcmp(a, "data-lz4")) {
		NEED(2);
		send_data(num(argv[i + 1]), num(argv[i + 2]), true);
		return 3;
	}
	if (!strcmp(a, "lz4-bad")) {
		static const char junk[] = "\xff\xff\xff\xff junk that is no lz4 block";
		NEED(2);
		if (ps_send_raw(sock(), PS_FILE_DATA, PS_F_LZ4, num(argv[i + 1]), junk,
				sizeof(junk), num(argv[i + 2]), g.timeout_ms) < 0)
			die("lz4-bad");
		return 3;
	}
	if (!strcmp(a, "close")) {
		NEED(1);
		send_close(num(argv[i + 1]), 0);
		return 2;
	}
	if (!strcmp(a, "close-bad")) {
		NEED(1);
		send_close(num(argv[i + 1]), 1);
		return 2;
	}
	if (!strcmp(a, "commit-garbage")) {
		static const char junk[] = "this is not an inventory at all";
		if (ps_send_raw(sock(), PS_ROUND_COMMIT, 0, 0, junk, sizeof(junk), 0,
				g.timeout_ms) < 0)
			die("commit-garbage");
		return 1;
	}
	if (!strcmp(a, "round")) {
		NEED(3);
		if (do_round(argv[i + 1], argv[i + 2], num(argv[i + 3])) < 0)
			die("round");
		return 4;
	}
	if (!strcmp(a, "mig-warm") || !strcmp(a, "mig-warm-queue")) {
		NEED(1);
		MigWarm mw = MIG_WARM__INIT;
		mw.round = argv[i + 1];
		mw.has_queue = mw.queue = !strcmp(a, "mig-warm-queue");
		if (ps_send_msg(sock(), PS_MIG_WARM, 0, &mw.base, g.timeout_ms) < 0)
			die("send MIG_WARM");
		return 2;
	}
	if (!strcmp(a, "mig-restore")) {
		NEED(1);
		MigRestore mr = MIG_RESTORE__INIT;
		mr.round = argv[i + 1];
		if (ps_send_msg(sock(), PS_MIG_RESTORE, 0, &mr.base, g.timeout_ms) < 0)
			die("send MIG_RESTORE");
		return 2;
	}
	if (!strcmp(a, "expect-warmed")) {
		expect_warmed();
		return 1;
	}
	if (!strcmp(a, "hold")) {
		NEED(1);
		unsigned long ms = num(argv[i + 1]);
		struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
		nanosleep(&ts, NULL);
		return 2;
	}
	if (!strcmp(a, "expect-error")) {
		NEED(1);
		expect_error(argv[i + 1]);
		return 2;
	}
	if (!strcmp(a, "expect-close")) {
		expect_close();
		return 1;
	}
	if (!strcmp(a, "flood")) {
		NEED(2);
		flood(num(argv[i + 1]), num(argv[i + 2]));
		return 3;
	}
	fprintf(stderr, "ps_peer: unknown action '%s'\n", a);
	exit(2);
}

int main(int argc, char **argv)
{
	int i = 1;
	util_init();
	signal(SIGPIPE, SIG_IGN);
	log_init(NULL, getenv("PS_PEER_VERBOSE") ? LOG_DEBUG : LOG_ERROR);
	log_set_prefix("ps_peer");
	for (; i + 1 < argc && !strncmp(argv[i], "--", 2); i += 2) {
		const char *o = argv[i], *v = argv[i + 1];
		if (!strcmp(o, "--port"))
			g.port = num(v);
		else if (!strcmp(o, "--address"))
			g.address = v;
		else if (!strcmp(o, "--key"))
			g.key_file = v;
		else if (!strcmp(o, "--source"))
			g.source = v;
		else if (!strcmp(o, "--local"))
			g.local = v;
		else if (!strcmp(o, "--timeout-ms"))
			g.timeout_ms = num(v);
		else if (!strcmp(o, "--kind"))
			round_kind = num(v);
		else
			break;
	}
	if (!g.port) {
		fprintf(stderr, "usage: ps_peer --port N [options] ACTION... (see the source)\n");
		return 2;
	}
	if (g.key_file && ps_key_load(g.key_file, &g.key) < 0)
		return 1;
	while (i < argc)
		i += action(argc, argv, i);
	if (conn_fd >= 0)
		close(conn_fd);
	return 0;
}
