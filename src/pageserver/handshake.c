/*
 * handshake: HELLO -> WELCOME -> AUTH -> READY, with the optional pre-shared key
 * (docs/pageserver.md, "Security model").
 *
 * With a key K (SHA-256 of the key file) both sides prove it: the server sends
 * HMAC-SHA256(K, "ferry-server" || Nc || Ns) in WELCOME, the client checks it before it
 * sends anything else and answers HMAC-SHA256(K, "ferry-client" || Ns || Nc) in AUTH,
 * which the server checks before it accepts any other frame. Nonces are fresh
 * (randombytes_buf) per connection, proofs are compared in constant time.
 *
 * Invariants: any mismatch (version, page size, arch, source name, missing, unwanted
 * or wrong proof) sends an ERROR naming the cause to the peer and logs one line
 * naming it here. Agreed features are the intersection of both sides'.
 */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "pageserver/wire.h"

#define KEY_FILE_MAX (1u << 20)

static const char label_server[] = "ferry-server";
static const char label_client[] = "ferry-client";

void ps_proof(const struct ps_key *key, bool server, const uint8_t nc[PS_NONCE_LEN],
	      const uint8_t ns[PS_NONCE_LEN], uint8_t out[PS_PROOF_LEN])
{
	crypto_auth_hmacsha256_state st;
	const char *label = server ? label_server : label_client;

	crypto_auth_hmacsha256_init(&st, key->k, sizeof(key->k));
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)label, strlen(label));
	crypto_auth_hmacsha256_update(&st, server ? nc : ns, PS_NONCE_LEN);
	crypto_auth_hmacsha256_update(&st, server ? ns : nc, PS_NONCE_LEN);
	crypto_auth_hmacsha256_final(&st, out);
	sodium_memzero(&st, sizeof(st));
}

static int sodium_ready(void)
{
	if (sodium_init() < 0)
		return pr_err_ret(-EIO, "libsodium cannot initialise");
	return 0;
}

int ps_key_load(const char *path, struct ps_key *key)
{
	struct stat st;
	uint8_t *buf = NULL;
	ssize_t n;
	int fd, r = 0;

	memset(key, 0, sizeof(*key));
	if ((r = sodium_ready()) < 0)
		return r;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return pr_perror("cannot open key file '%s'", path);
	if (fstat(fd, &st) < 0) {
		r = pr_perror("cannot stat key file '%s'", path);
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_size < PS_KEY_MIN || st.st_size > KEY_FILE_MAX) {
		r = pr_err_ret(-EINVAL, "key file '%s' must be a regular file of %d..%u bytes",
			       path, PS_KEY_MIN, KEY_FILE_MAX);
		goto out;
	}
	if (st.st_mode & (S_IRGRP | S_IROTH))
		pr_warn("key file '%s' is readable by group or others (chmod 600 it)", path);
	buf = sodium_malloc(st.st_size);
	if (!buf) {
		r = pr_err_ret(-ENOMEM, "key file '%s'", path);
		goto out;
	}
	n = read_full(fd, buf, st.st_size);
	if (n < 0 || n != st.st_size) {
		r = pr_err_ret(n < 0 ? (int)n : -EIO, "cannot read key file '%s'", path);
		goto out;
	}
	crypto_hash_sha256(key->k, buf, n);
	key->set = true;
out:
	if (buf)
		sodium_free(buf);
	close(fd);
	return r;
}

/* Receive one frame of type WANT into a freshly unpacked message. A peer ERROR is
 * quoted in the log and its code returned. */
static int recv_msg(int fd, unsigned want, const ProtobufCMessageDescriptor *desc,
		    ProtobufCMessage **out, const char *peer, int timeout_ms)
{
	struct ps_hdr h;
	const char *why = NULL;
	uint8_t *buf = NULL;
	int r;

	*out = NULL;
	r = ps_recv_hdr(fd, &h, &why, timeout_ms);
	if (r == -EPROTO) {
		ps_send_error(fd, EPROTO, timeout_ms, "%s", why);
		return pr_err_ret(r, "%s sent a bad frame: %s", peer, why);
	}
	if (r < 0)
		return pr_err_ret(r, "waiting for %s from %s", ps_type_name(want), peer);
	if (h.type != want && h.type != PS_ERROR) {
		ps_send_error(fd, EPROTO, timeout_ms, "expected %s, got %s", ps_type_name(want),
			      ps_type_name(h.type));
		return pr_err_ret(-EPROTO, "%s sent %s instead of %s", peer, ps_type_name(h.type),
				  ps_type_name(want));
	}
	if (h.len && !(buf = malloc(h.len)))
		return pr_err_ret(-ENOMEM, "%s frame from %s", ps_type_name(h.type), peer);
	if ((r = ps_recv_full(fd, buf, h.len, timeout_ms)) < 0) {
		free(buf);
		return pr_err_ret(r, "reading %s from %s", ps_type_name(h.type), peer);
	}
	if (h.type == PS_ERROR) {
		PsError *e = NULL;
		r = ps_unpack(&ps_error__descriptor, buf, h.len, (ProtobufCMessage **)&e);
		free(buf);
		if (r < 0 || !e)
			return pr_err_ret(-EPROTO, "%s sent an undecodable ERROR", peer);
		r = e->code > 0 && e->code < 4096 ? -e->code : -EPROTO;
		pr_err("%s refused: '%s'", peer, e->message);
		ps_error__free_unpacked(e, NULL);
		return r < 0 ? r : -EPROTO;
	}
	r = desc ? ps_unpack(desc, buf, h.len, out) : 0;
	free(buf);
	if (r < 0 || (desc && !*out)) {
		ps_send_error(fd, EPROTO, timeout_ms, "undecodable %s", ps_type_name(want));
		return pr_err_ret(-EPROTO, "%s sent an undecodable %s", peer, ps_type_name(want));
	}
	return 0;
}

/* Client side: check WELCOME (version, nonce, the server's proof) and fill AUTH.
 * 0 or -errno with an ERROR sent and the cause logged. */
static int welcome_check(int fd, const struct ps_key *key, const PsWelcome *w,
			 const uint8_t nc[PS_NONCE_LEN], uint8_t proof[PS_PROOF_LEN], PsAuth *auth,
			 int timeout_ms)
{
	bool keyed = key && key->set;

	if (w->version != PS_VERSION) {
		ps_send_error(fd, EPROTONOSUPPORT, timeout_ms,
			      "protocol version %u not supported (client speaks %u)", w->version,
			      PS_VERSION);
		return pr_err_ret(-EPROTONOSUPPORT,
				  "page server speaks protocol version %u, this client %u",
				  w->version, PS_VERSION);
	}
	if (w->nonce.len != PS_NONCE_LEN) {
		ps_send_error(fd, EPROTO, timeout_ms, "server nonce of %zu bytes", w->nonce.len);
		return pr_err_ret(-EPROTO, "page server sent a nonce of %zu bytes", w->nonce.len);
	}
	if (!keyed && w->has_proof) {
		ps_send_error(fd, EACCES, timeout_ms, "client has no key");
		return pr_err_ret(-EACCES, "page server uses a key: pass --auth-key FILE");
	}
	if (!keyed)
		return 0;
	ps_proof(key, true, nc, w->nonce.data, proof);
	if (!w->has_proof || w->proof.len != PS_PROOF_LEN ||
	    sodium_memcmp(proof, w->proof.data, PS_PROOF_LEN) != 0) {
		ps_send_error(fd, EACCES, timeout_ms, "server proof %s",
			      w->has_proof ? "wrong (different key)" : "missing");
		return pr_err_ret(-EACCES, "page server %s: not talking to it",
				  w->has_proof ? "proved another key" : "did not prove the key");
	}
	ps_proof(key, false, nc, w->nonce.data, proof);
	auth->has_proof = true;
	auth->proof.data = proof;
	auth->proof.len = PS_PROOF_LEN;
	return 0;
}

int ps_handshake_client(int fd, const struct ps_key *key, const char *source, uint64_t features,
			uint64_t *agreed, int timeout_ms)
{
	uint8_t nc[PS_NONCE_LEN], proof[PS_PROOF_LEN] = { 0 };
	PsHello hello = PS_HELLO__INIT;
	PsAuth auth = PS_AUTH__INIT;
	PsWelcome *w = NULL;
	ProtobufCMessage *m;
	struct utsname u;
	int r;

	if ((r = sodium_ready()) < 0)
		return r;
	uname(&u);
	randombytes_buf(nc, sizeof(nc));
	hello.version = PS_VERSION;
	hello.page_size = page_size;
	hello.arch = u.machine;
	hello.kernel = u.release;
	hello.features = features;
	hello.source = (char *)source;
	hello.nonce.data = nc;
	hello.nonce.len = sizeof(nc);
	hello.has_keyed = true;
	hello.keyed = key && key->set;
	if ((r = ps_send_msg(fd, PS_HELLO, 0, &hello.base, timeout_ms)) < 0)
		return pr_err_ret(r, "cannot send HELLO to the page server");
	if ((r = recv_msg(fd, PS_WELCOME, &ps_welcome__descriptor, &m, "the page server",
			  timeout_ms)) < 0)
		return r;
	w = (PsWelcome *)m;
	if ((r = welcome_check(fd, key, w, nc, proof, &auth, timeout_ms)) < 0)
		goto out;
	if ((r = ps_send_msg(fd, PS_AUTH, 0, &auth.base, timeout_ms)) < 0) {
		pr_err_ret(r, "cannot send AUTH to the page server");
		goto out;
	}
	if ((r = recv_msg(fd, PS_READY, NULL, &m, "the page server", timeout_ms)) < 0)
		goto out;
	*agreed = w->features & features;
	pr_debug("page server (kernel %s) ready, features %#llx", w->kernel,
		 (unsigned long long)*agreed);
out:
	sodium_memzero(proof, sizeof(proof));
	ps_welcome__free_unpacked(w, NULL);
	return r;
}

/* HELLO checks: 0 or -errno with an ERROR sent and the cause logged. */
static int hello_check(int fd, const PsHello *h, bool keyed, int timeout_ms)
{
	struct utsname u;
	uname(&u);
	if (h->version != PS_VERSION) {
		ps_send_error(fd, EPROTONOSUPPORT, timeout_ms,
			      "protocol version %u not supported (server speaks %u)", h->version,
			      PS_VERSION);
		return pr_err_ret(-EPROTONOSUPPORT, "client speaks protocol version %u, server %u",
				  h->version, PS_VERSION);
	}
	if (h->page_size != page_size) {
		ps_send_error(fd, EINVAL, timeout_ms, "page size %u, server has %zu", h->page_size,
			      page_size);
		return pr_err_ret(-EINVAL, "client page size %u, server %zu", h->page_size,
				  page_size);
	}
	if (strcmp(h->arch, u.machine)) {
		ps_send_error(fd, EINVAL, timeout_ms, "arch '%.32s', server is '%s'", h->arch,
			      u.machine);
		return pr_err_ret(-EINVAL, "client arch '%.32s', server '%s'", h->arch, u.machine);
	}
	if (!ps_name_ok(h->source)) {
		ps_send_error(fd, EINVAL, timeout_ms, "bad source name '%.64s'", h->source);
		return pr_err_ret(-EINVAL, "client sent a bad source name '%.64s'", h->source);
	}
	if (h->nonce.len != PS_NONCE_LEN) {
		ps_send_error(fd, EPROTO, timeout_ms, "client nonce of %zu bytes", h->nonce.len);
		return pr_err_ret(-EPROTO, "client nonce of %zu bytes", h->nonce.len);
	}
	if (keyed && !(h->has_keyed && h->keyed)) {
		ps_send_error(fd, EACCES, timeout_ms,
			      "the page server requires a key (--auth-key FILE)");
		return pr_err_ret(-EACCES, "client has no key, this server requires one");
	}
	if (!keyed && h->has_keyed && h->keyed) {
		ps_send_error(fd, EACCES, timeout_ms, "the page server has no key");
		return pr_err_ret(-EACCES, "client requires a key, this server has none");
	}
	return 0;
}

/* AUTH check against the expected proof (keyed) or its absence. */
static int auth_check(int fd, const PsAuth *a, const uint8_t *want, int timeout_ms)
{
	if (!want && a->has_proof) {
		ps_send_error(fd, EACCES, timeout_ms, "unexpected proof: server has no key");
		return pr_err_ret(-EACCES, "client sent a proof, this server has no key");
	}
	if (want && (!a->has_proof || a->proof.len != PS_PROOF_LEN ||
		     sodium_memcmp(want, a->proof.data, PS_PROOF_LEN) != 0)) {
		ps_send_error(fd, EACCES, timeout_ms, "client proof %s",
			      a->has_proof ? "wrong (different key)" : "missing");
		return pr_err_ret(-EACCES, "client proof %s: wrong key",
				  a->has_proof ? "does not match" : "missing");
	}
	return 0;
}

int ps_handshake_server(int fd, const struct ps_key *key, uint64_t features, PsHello **hello,
			uint64_t *agreed, int timeout_ms)
{
	uint8_t ns[PS_NONCE_LEN], sproof[PS_PROOF_LEN], cproof[PS_PROOF_LEN];
	bool keyed = key && key->set;
	PsWelcome w = PS_WELCOME__INIT;
	PsHello *h = NULL;
	ProtobufCMessage *m = NULL;
	struct utsname u;
	int r;

	*hello = NULL;
	if ((r = sodium_ready()) < 0)
		return r;
	if ((r = recv_msg(fd, PS_HELLO, &ps_hello__descriptor, &m, "client", timeout_ms)) < 0)
		return r;
	h = (PsHello *)m;
	if ((r = hello_check(fd, h, keyed, timeout_ms)) < 0)
		goto out;
	uname(&u);
	randombytes_buf(ns, sizeof(ns));
	w.version = PS_VERSION;
	w.features = h->features & features;
	w.nonce.data = ns;
	w.nonce.len = sizeof(ns);
	w.kernel = u.release;
	if (keyed) {
		ps_proof(key, true, h->nonce.data, ns, sproof);
		ps_proof(key, false, h->nonce.data, ns, cproof);
		w.has_proof = true;
		w.proof.data = sproof;
		w.proof.len = sizeof(sproof);
	}
	if ((r = ps_send_msg(fd, PS_WELCOME, 0, &w.base, timeout_ms)) < 0) {
		pr_err_ret(r, "cannot send WELCOME");
		goto out;
	}
	if ((r = recv_msg(fd, PS_AUTH, &ps_auth__descriptor, &m, "client", timeout_ms)) < 0)
		goto out;
	r = auth_check(fd, (PsAuth *)m, keyed ? cproof : NULL, timeout_ms);
	ps_auth__free_unpacked((PsAuth *)m, NULL);
	if (r < 0)
		goto out;
	if ((r = ps_send_raw(fd, PS_READY, 0, 0, NULL, 0, 0, timeout_ms)) < 0) {
		pr_err_ret(r, "cannot send READY");
		goto out;
	}
	*agreed = w.features;
	*hello = h;
	h = NULL;
out:
	sodium_memzero(cproof, sizeof(cproof));
	if (h)
		ps_hello__free_unpacked(h, NULL);
	return r;
}
