/*
 * test_wire: unit tests of src/pageserver/wire.c and handshake.c: the header codec and
 * its per-type bounds, the name vocabulary, parent names, framed I/O over a socketpair,
 * protobuf round trips, the HMAC proofs against an independent computation, and whole
 * handshakes (no key, right key, wrong key, missing key, bad version) between a forked
 * server and the test. No root needed. Each test runs in a forked child.
 */
#include <errno.h>
#include <fcntl.h>
#include <lz4.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "pageserver/wire.h"

#define CHECK(cond) do { if (!(cond)) { \
	fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); exit(1); } } while (0)
#define CHECK_EQ(a, b) do { long long __a = (long long)(a), __b = (long long)(b); if (__a != __b) { \
	fprintf(stderr, "FAIL %s:%d: %s == %lld, expected %s == %lld\n", __FILE__, __LINE__, \
		#a, __a, #b, __b); exit(1); } } while (0)

static int decode(struct ps_hdr h, const char **why)
{
	uint8_t b[PS_HDR_SIZE];
	struct ps_hdr out;
	ps_hdr_encode(&h, b);
	return ps_hdr_decode(b, &out, why);
}

static struct ps_hdr hdr(unsigned type, uint64_t len)
{
	struct ps_hdr h = { .magic = PS_FRAME_MAGIC, .type = type, .len = len };
	return h;
}

static void test_hdr_roundtrip(void)
{
	struct ps_hdr h = { PS_FRAME_MAGIC, PS_FILE_DATA, PS_F_LZ4, 1234, 0xdeadbeef, 4096 };
	struct ps_hdr o;
	uint8_t b[PS_HDR_SIZE];
	const char *why = NULL;
	ps_hdr_encode(&h, b);
	/* little endian on the wire, fixed offsets */
	CHECK(!memcmp(b, "FRYw", 4));
	CHECK_EQ(b[4], PS_FILE_DATA);
	CHECK_EQ(b[8], 1234 & 0xff);
	CHECK_EQ(b[9], 1234 >> 8);
	CHECK_EQ(b[16], 0xef);
	CHECK_EQ(b[19], 0xde);
	CHECK_EQ(ps_hdr_decode(b, &o, &why), 0);
	CHECK(!memcmp(&h, &o, sizeof(h)));
	CHECK(!strcmp(ps_type_name(PS_ROUND_COMMIT), "ROUND_COMMIT"));
	CHECK(!strcmp(ps_type_name(77), "unknown"));
}

static void test_hdr_bounds(void)
{
	const char *why = NULL;
	struct ps_hdr h;

	/* a length of 2^63 on every type is refused, and the reason names it */
	for (unsigned t = 0; t < 70; t++) {
		h = hdr(t, 1ull << 63);
		CHECK_EQ(decode(h, &why), -EPROTO);
		CHECK(why && why[0]);
	}
	h = hdr(PS_HELLO, 1ull << 63);
	decode(h, &why);
	CHECK(strstr(why, "9223372036854775808"));
	/* bad magic */
	h = hdr(PS_HELLO, 10);
	h.magic = 0x12345678;
	CHECK_EQ(decode(h, &why), -EPROTO);
	CHECK(strstr(why, "magic"));
	/* unknown types, including the unassigned part of the migrate range */
	unsigned unknown[] = { 0, 5, 7, 16, 30, 40, 63, 65535 };
	for (size_t i = 0; i < ARRAY_SIZE(unknown); i++) {
		CHECK_EQ(decode(hdr(unknown[i], 0), &why), -EPROTO);
		CHECK(strstr(why, "unknown frame type"));
	}
	/* control bound */
	CHECK_EQ(decode(hdr(PS_FILE_OPEN, PS_MAX_CTRL), &why), 0);
	CHECK_EQ(decode(hdr(PS_FILE_OPEN, PS_MAX_CTRL + 1), &why), -EPROTO);
	CHECK_EQ(decode(hdr(PS_HELLO, PS_MAX_CTRL + 1), &why), -EPROTO);
	/* commit bound */
	CHECK_EQ(decode(hdr(PS_ROUND_COMMIT, PS_MAX_COMMIT), &why), 0);
	CHECK_EQ(decode(hdr(PS_ROUND_COMMIT, PS_MAX_COMMIT + 1), &why), -EPROTO);
	/* empty types */
	CHECK_EQ(decode(hdr(PS_READY, 0), &why), 0);
	CHECK_EQ(decode(hdr(PS_READY, 1), &why), -EPROTO);
	CHECK_EQ(decode(hdr(PS_ROUND_ABORT, 1), &why), -EPROTO);
	/* migrate's frames: HANDOVER is empty, the others are control messages */
	CHECK_EQ(decode(hdr(PS_MIG_HANDOVER, 0), &why), 0);
	CHECK_EQ(decode(hdr(PS_MIG_HANDOVER, 1), &why), -EPROTO);
	CHECK_EQ(decode(hdr(PS_MIG_RESTORE, PS_MAX_CTRL), &why), 0);
	CHECK_EQ(decode(hdr(PS_MIG_STATE, PS_MAX_CTRL + 1), &why), -EPROTO);
	CHECK_EQ(decode(hdr(PS_MIG_WARM, PS_MAX_CTRL), &why), 0);
	CHECK_EQ(decode(hdr(PS_MIG_WARMED, PS_MAX_CTRL + 1), &why), -EPROTO);
	CHECK(!strcmp(ps_type_name(PS_MIG_RUNNING), "MIG_RUNNING"));
	/* flags only on FILE_DATA, only known ones */
	h = hdr(PS_FILE_CLOSE, 10);
	h.flags = PS_F_LZ4;
	CHECK_EQ(decode(h, &why), -EPROTO);
	h = hdr(PS_FILE_DATA, 10);
	h.raw_len = 10;
	CHECK_EQ(decode(h, &why), 0);
	h.flags = 0x2;
	CHECK_EQ(decode(h, &why), -EPROTO);
	/* raw data: len == raw_len <= PS_MAX_CHUNK */
	h = hdr(PS_FILE_DATA, PS_MAX_CHUNK);
	h.raw_len = PS_MAX_CHUNK;
	CHECK_EQ(decode(h, &why), 0);
	h.len = h.raw_len = PS_MAX_CHUNK + 1;
	CHECK_EQ(decode(h, &why), -EPROTO);
	h.len = 5;
	h.raw_len = 6;
	CHECK_EQ(decode(h, &why), -EPROTO);
	/* lz4: len <= LZ4_compressBound(PS_MAX_CHUNK), raw_len <= PS_MAX_CHUNK */
	h = hdr(PS_FILE_DATA, LZ4_compressBound(PS_MAX_CHUNK));
	h.flags = PS_F_LZ4;
	h.raw_len = PS_MAX_CHUNK;
	CHECK_EQ(decode(h, &why), 0);
	h.len++;
	CHECK_EQ(decode(h, &why), -EPROTO);
	h.len = 100;
	h.raw_len = PS_MAX_CHUNK + 1;
	CHECK_EQ(decode(h, &why), -EPROTO);
	h.raw_len = 0;
	CHECK_EQ(decode(h, &why), -EPROTO);
	/* raw_len and file id only where they belong */
	h = hdr(PS_ROUND_COMMIT, 100);
	h.raw_len = 100;
	CHECK_EQ(decode(h, &why), -EPROTO);
	h = hdr(PS_ROUND_BEGIN, 10);
	h.file = 3;
	CHECK_EQ(decode(h, &why), -EPROTO);
	h = hdr(PS_FILE_CLOSE, 10);
	h.file = 3;
	CHECK_EQ(decode(h, &why), 0);
}

static void test_names(void)
{
	const char *good[] = { "a", "round-0", "host_1.2", "A.b-c_d", "x123" };
	const char *badn[] = { "", ".", "..", "../x", "a/b", ".hidden", "a b", "a\\b", "é",
			       "x\ny", NULL };
	char s64[65], s63[64];
	for (size_t i = 0; i < ARRAY_SIZE(good); i++)
		CHECK(ps_name_ok(good[i]));
	for (size_t i = 0; i < ARRAY_SIZE(badn); i++)
		CHECK(!ps_name_ok(badn[i]));
	memset(s64, 'a', 64);
	s64[64] = 0;
	memset(s63, 'a', 63);
	s63[63] = 0;
	CHECK(!ps_name_ok(s64));
	CHECK(ps_name_ok(s63));
}

static void test_image_names(void)
{
	/* the whole vocabulary the engine and fs write */
	const char *good[] = { "pstree.img", "files.img", "pipes-data.img", "core-1.img",
			       "core-4194304.img", "mm-77.img", "pagemap-12.img", "pages-0.img",
			       "pages-4294967295.img", "fdinfo-5.img", "ghost-3.img",
			       "sysc-100.img", "dirty-42.state" };
	const char *badn[] = { "inventory.img", "inventory.img.tmp", "parent", "../x",
			       "a/b", "../pstree.img", "pstree.img/", "/pstree.img", ".", "",
			       "core.img", "core-.img", "core--1.img", "core-01.img",
			       "core-1.state", "dirty-1.img", "pages-4294967296.img",
			       "pages-99999999999.img", "core-1.img.tmp", "pstree-1.img",
			       "xcore-1.img", "core-1x.img", "core-1", "CORE-1.img",
			       ".lock", NULL };
	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		if (!ps_image_name_ok(good[i]))
			fprintf(stderr, "refused '%s'\n", good[i]);
		CHECK(ps_image_name_ok(good[i]));
	}
	for (size_t i = 0; i < ARRAY_SIZE(badn); i++) {
		if (ps_image_name_ok(badn[i]))
			fprintf(stderr, "accepted '%s'\n", badn[i] ? badn[i] : "(null)");
		CHECK(!ps_image_name_ok(badn[i]));
	}
	char s64[70];
	snprintf(s64, sizeof(s64), "core-%s.img", "1234567890123456789012345678901234567890");
	CHECK(!ps_image_name_ok(s64));
}

static void test_parent_names(void)
{
	char out[64];
	CHECK_EQ(ps_parent_name("../round-1", out), 0);
	CHECK(!strcmp(out, "round-1"));
	const char *badn[] = { "round-1", "../", "../..", "../.", "../a/b", "../../x", "./x",
			       "..//x", "/abs", "", "../.x", NULL };
	for (size_t i = 0; i < ARRAY_SIZE(badn); i++)
		CHECK_EQ(ps_parent_name(badn[i], out), -EINVAL);
	char long_name[80] = "../";
	memset(long_name + 3, 'a', 64);
	long_name[67] = 0;
	CHECK_EQ(ps_parent_name(long_name, out), -EINVAL);
}

static void test_io_roundtrip(void)
{
	int sv[2];
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	PsFileOpen fo = PS_FILE_OPEN__INIT;
	fo.id = 7;
	fo.name = "core-1.img";
	fo.magic = 0x43595246;
	CHECK_EQ(ps_send_msg(sv[0], PS_FILE_OPEN, 7, &fo.base, 1000), 0);
	struct ps_hdr h;
	const char *why = NULL;
	CHECK_EQ(ps_recv_hdr(sv[1], &h, &why, 1000), 0);
	CHECK_EQ(h.type, PS_FILE_OPEN);
	CHECK_EQ(h.file, 7);
	uint8_t buf[256];
	CHECK(h.len < sizeof(buf));
	CHECK_EQ(ps_recv_full(sv[1], buf, h.len, 1000), 0);
	ProtobufCMessage *m;
	CHECK_EQ(ps_unpack(&ps_file_open__descriptor, buf, h.len, &m), 0);
	PsFileOpen *got = (PsFileOpen *)m;
	CHECK_EQ(got->id, 7);
	CHECK(!strcmp(got->name, "core-1.img"));
	CHECK_EQ(got->magic, 0x43595246);
	protobuf_c_message_free_unpacked(m, NULL);
	/* truncated or garbage protobuf is refused */
	CHECK_EQ(ps_unpack(&ps_file_open__descriptor, buf, h.len - 1, &m), -EPROTO);
	CHECK_EQ(ps_unpack(&ps_file_open__descriptor, "\xff\xff\xff", 3, &m), -EPROTO);

	/* a raw payload larger than the socket buffer arrives whole (short sends) */
	size_t big = 4u << 20;
	uint8_t *src = malloc(big), *dst = malloc(big);
	CHECK(src && dst);
	for (size_t i = 0; i < big; i++)
		src[i] = (uint8_t)(i * 131 + 7);
	pid_t pid = fork();
	if (pid == 0) {
		close(sv[1]);
		_exit(ps_send_raw(sv[0], PS_ROUND_COMMIT, 0, 0, src, big, 0, 5000) ? 1 : 0);
	}
	CHECK_EQ(ps_recv_hdr(sv[1], &h, &why, 5000), 0);
	CHECK_EQ(h.type, PS_ROUND_COMMIT);
	CHECK_EQ(h.len, big);
	CHECK_EQ(h.raw_len, 0);
	CHECK_EQ(ps_recv_full(sv[1], dst, big, 5000), 0);
	CHECK(!memcmp(src, dst, big));
	int st;
	CHECK_EQ(waitpid(pid, &st, 0), pid);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);

	/* an ERROR frame carries code and one line */
	ps_send_error(sv[0], ENOSPC, 1000, "disk full writing '%s'\nsecond", "pages-1.img");
	CHECK_EQ(ps_recv_hdr(sv[1], &h, &why, 1000), 0);
	CHECK_EQ(h.type, PS_ERROR);
	CHECK_EQ(ps_recv_full(sv[1], buf, h.len, 1000), 0);
	CHECK_EQ(ps_unpack(&ps_error__descriptor, buf, h.len, &m), 0);
	CHECK_EQ(((PsError *)m)->code, ENOSPC);
	CHECK(!strchr(((PsError *)m)->message, '\n'));
	CHECK(strstr(((PsError *)m)->message, "pages-1.img"));
	protobuf_c_message_free_unpacked(m, NULL);

	/* timeouts and closes */
	CHECK_EQ(ps_recv_hdr(sv[1], &h, &why, 50), -ETIMEDOUT);
	CHECK_EQ(write(sv[0], "FRYw", 4), 4);
	CHECK_EQ(ps_recv_hdr(sv[1], &h, &why, 50), -ETIMEDOUT);
	close(sv[0]);
	CHECK_EQ(ps_recv_hdr(sv[1], &h, &why, 50), -ECONNRESET);
	free(src);
	free(dst);
}

/* An independent HMAC-SHA256 of label || a || b with the one-shot API. */
static void ref_proof(const uint8_t k[32], const char *label, const uint8_t *a,
		      const uint8_t *b, uint8_t out[32])
{
	uint8_t msg[64 + 32];
	size_t l = strlen(label);
	memcpy(msg, label, l);
	memcpy(msg + l, a, 32);
	memcpy(msg + l + 32, b, 32);
	crypto_auth_hmacsha256_state st;
	crypto_auth_hmacsha256_init(&st, k, 32);
	crypto_auth_hmacsha256_update(&st, msg, l + 64);
	crypto_auth_hmacsha256_final(&st, out);
}

static void test_proofs(void)
{
	struct ps_key k1 = { .set = true }, k2 = { .set = true };
	uint8_t nc[32], ns[32], p[32], q[32], r[32];
	CHECK(sodium_init() >= 0);
	for (int i = 0; i < 32; i++) {
		k1.k[i] = i;
		k2.k[i] = i;
		nc[i] = 0xa0 + i;
		ns[i] = 0x10 + i;
	}
	k2.k[31] ^= 1;
	/* right key: the documented construction */
	ps_proof(&k1, true, nc, ns, p);
	ref_proof(k1.k, "ferry-server", nc, ns, r);
	CHECK(!memcmp(p, r, 32));
	ps_proof(&k1, false, nc, ns, q);
	ref_proof(k1.k, "ferry-client", ns, nc, r);
	CHECK(!memcmp(q, r, 32));
	/* labels not interchangeable: a server proof never passes as a client proof, even
	 * with the nonces swapped (reflection) */
	CHECK(memcmp(p, q, 32));
	ps_proof(&k1, false, ns, nc, q);
	CHECK(memcmp(p, q, 32));
	/* wrong key, other nonces: different proofs */
	ps_proof(&k2, true, nc, ns, q);
	CHECK(memcmp(p, q, 32));
	ps_proof(&k1, true, ns, nc, q);
	CHECK(memcmp(p, q, 32));
}

static void key_file(const char *path, const char *content, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	CHECK(fd >= 0);
	CHECK_EQ(write(fd, content, strlen(content)), (long)strlen(content));
	close(fd);
	chmod(path, mode);
}

static void test_key_load(void)
{
	char dir[] = "/tmp/ferry-test-wire.XXXXXX", p[128];
	struct ps_key k, k2;
	CHECK(mkdtemp(dir));
	snprintf(p, sizeof(p), "%s/key", dir);
	key_file(p, "0123456789abcdef0123456789abcdef", 0600);
	CHECK_EQ(ps_key_load(p, &k), 0);
	CHECK(k.set);
	uint8_t want[32];
	crypto_hash_sha256(want, (const uint8_t *)"0123456789abcdef0123456789abcdef", 32);
	CHECK(!memcmp(k.k, want, 32));
	key_file(p, "short key", 0600);
	CHECK_EQ(ps_key_load(p, &k2), -EINVAL);
	CHECK(!k2.set);
	CHECK(ps_key_load("/nonexistent/key", &k2) < 0);
	CHECK(ps_key_load(dir, &k2) < 0);
	unlink(p);
	rmdir(dir);
}

/* ---- whole handshakes: a forked server on one end of a socketpair ---- */
struct hs_case {
	const struct ps_key *skey, *ckey;
	int want_client, want_server;
};

static void run_handshake(const struct hs_case *c)
{
	int sv[2];
	uint64_t agreed = 0;
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		PsHello *h = NULL;
		uint64_t f = 0;
		close(sv[0]);
		int r = ps_handshake_server(sv[1], c->skey, PS_FEAT_LZ4, &h, &f, 2000);
		if (r == 0 && (!h || strcmp(h->source, "src-1") || f != PS_FEAT_LZ4))
			_exit(100);
		if (h)
			ps_hello__free_unpacked(h, NULL);
		_exit(r == c->want_server ? 0 : 101);
	}
	close(sv[1]);
	int r = ps_handshake_client(sv[0], c->ckey, "src-1", PS_FEAT_LZ4 | (1ull << 9), &agreed,
				    2000);
	close(sv[0]);
	CHECK_EQ(r, c->want_client);
	if (r == 0)
		CHECK_EQ(agreed, PS_FEAT_LZ4);
	int st;
	CHECK_EQ(waitpid(pid, &st, 0), pid);
	CHECK(WIFEXITED(st));
	CHECK_EQ(WEXITSTATUS(st), 0);
}

static void test_handshakes(void)
{
	struct ps_key a = { .set = true }, b = { .set = true }, none = { .set = false };
	memset(a.k, 1, 32);
	memset(b.k, 2, 32);
	struct hs_case cases[] = {
		{ NULL, NULL, 0, 0 },		    /* no key on either side */
		{ &none, &none, 0, 0 },
		{ &a, &a, 0, 0 },		    /* right key */
		{ &a, &b, -EACCES, -EACCES },	    /* wrong key: the client refuses the server */
		{ &a, NULL, -EACCES, -EACCES },	    /* server requires a key */
		{ NULL, &a, -EACCES, -EACCES },	    /* client requires a key */
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		run_handshake(&cases[i]);
}

/* A HELLO with another version gets an ERROR naming both versions. */
static void test_bad_version(void)
{
	int sv[2];
	uint8_t nonce[32] = { 0 }, buf[1024];
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	pid_t pid = fork();
	if (pid == 0) {
		PsHello *h;
		uint64_t f;
		close(sv[0]);
		_exit(ps_handshake_server(sv[1], NULL, 0, &h, &f, 2000) == -EPROTONOSUPPORT ? 0
											: 1);
	}
	close(sv[1]);
	PsHello hello = PS_HELLO__INIT;
	hello.version = 99;
	hello.page_size = page_size;
	hello.arch = "x86_64";
	hello.kernel = "k";
	hello.source = "s";
	hello.nonce.data = nonce;
	hello.nonce.len = 32;
	CHECK_EQ(ps_send_msg(sv[0], PS_HELLO, 0, &hello.base, 1000), 0);
	struct ps_hdr h;
	const char *why;
	CHECK_EQ(ps_recv_hdr(sv[0], &h, &why, 2000), 0);
	CHECK_EQ(h.type, PS_ERROR);
	CHECK(h.len < sizeof(buf));
	CHECK_EQ(ps_recv_full(sv[0], buf, h.len, 1000), 0);
	ProtobufCMessage *m;
	CHECK_EQ(ps_unpack(&ps_error__descriptor, buf, h.len, &m), 0);
	CHECK_EQ(((PsError *)m)->code, EPROTONOSUPPORT);
	CHECK(strstr(((PsError *)m)->message, "99"));
	CHECK(strstr(((PsError *)m)->message, "1"));
	protobuf_c_message_free_unpacked(m, NULL);
	int st;
	CHECK_EQ(waitpid(pid, &st, 0), pid);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static const struct {
	const char *name;
	void (*fn)(void);
} tests[] = {
	{ "hdr_roundtrip", test_hdr_roundtrip },
	{ "hdr_bounds", test_hdr_bounds },
	{ "names", test_names },
	{ "image_names", test_image_names },
	{ "parent_names", test_parent_names },
	{ "io_roundtrip", test_io_roundtrip },
	{ "proofs", test_proofs },
	{ "key_load", test_key_load },
	{ "handshakes", test_handshakes },
	{ "bad_version", test_bad_version },
};

int main(void)
{
	int failed = 0;
	util_init();
	signal(SIGPIPE, SIG_IGN);
	log_init(NULL, getenv("TEST_VERBOSE") ? LOG_DEBUG : -1);
	for (size_t i = 0; i < ARRAY_SIZE(tests); i++) {
		fflush(stdout);
		pid_t pid = fork();
		if (pid == 0) {
			tests[i].fn();
			exit(0);
		}
		int st = 0;
		if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st)) {
			printf("  fail: %s (status %#x)\n", tests[i].name, st);
			failed++;
		} else {
			printf("  ok: %s\n", tests[i].name);
		}
	}
	return failed ? 1 : 0;
}
