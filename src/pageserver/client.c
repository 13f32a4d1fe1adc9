/*
 * client: connection to the page server and the image sink that streams rounds to it.
 * See client.h for the contract; the protocol is docs/pageserver.md.
 *
 * Round: begin -> ROUND_BEGIN{basename of the directory, kind}; every file -> FILE_OPEN,
 * FILE_DATA..., FILE_CLOSE{size, xxh64} (or FILE_ABORT); commit -> ROUND_COMMIT{the
 * inventory bytes}, then ROUND_DONE or ERROR from the server (the only round trip);
 * discard -> ROUND_ABORT. File ids are a counter, unique for the connection.
 *
 * Errors: a send that fails (or data the server sent while we stream, which can only
 * be an ERROR before it closes) ends the connection; the server's ERROR message, read
 * with a short timeout, is quoted as the cause in the one logged line.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "img/img.h"
#include "pageserver/client.h"
#include "pageserver/sender.h"
#include "pageserver/wire.h"

#define CONNECT_TIMEOUT_MS 10000
#define ERROR_WAIT_MS	   1000	      /* reading the server's ERROR after a failed send */
#define SNDBUF		   (8u << 20) /* bytes in flight: several FILE_DATA frames */

struct round_stat {
	char name[64];
	bool committed;
	uint32_t files;
	double secs;
	struct ps_send_stats st;
};

struct ps_client {
	pthread_mutex_t lock;
	int fd;
	struct ps_sender *snd;
	char peer[300];
	char source[64];
	int kind, mode, timeout_ms;
	bool json;
	int err; /* sticky: the connection is gone (logged) */
	uint32_t next_id;
	bool in_round;
	bool sink;     /* this client installed the image sink */
	bool progress; /* the progress line is shown (stderr is a terminal) */
	uint64_t t_begin;
	uint32_t files;
	char round[64];
	struct round_stat *rounds;
	size_t n_rounds;
};

struct ps_file {
	uint32_t id;
	char name[64];
};

/* ---- connection errors ----------------------------------------------------------- */

/* The payload of an ERROR frame whose header h was read: its code (> 0) and one-line
 * message, or 0 if it cannot be read or decoded. */
static int error_payload(struct ps_client *c, const struct ps_hdr *h, char *msg, size_t sz,
			 int wait_ms)
{
	void *buf = malloc(h->len ? h->len : 1);
	ProtobufCMessage *m = NULL;
	int code = 0;
	if (buf && ps_recv_full(c->fd, buf, h->len, wait_ms) == 0 &&
	    ps_unpack(&ps_error__descriptor, buf, h->len, &m) == 0) {
		PsError *e = (PsError *)m;
		snprintf(msg, sz, "%s", e->message);
		for (char *p = msg; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				*p = '?';
		code = e->code > 0 && e->code < 4096 ? e->code : EPROTO;
		protobuf_c_message_free_unpacked(m, NULL);
	}
	free(buf);
	return code;
}

/* Read a frame the server sent (it only sends ERROR before closing mid-round): its code
 * and message, or 0 if none came within the wait. */
static int server_error(struct ps_client *c, char *msg, size_t sz, int wait_ms)
{
	struct ps_hdr h;
	const char *why;
	if (ps_recv_hdr(c->fd, &h, &why, wait_ms) < 0 || h.type != PS_ERROR)
		return 0;
	return error_payload(c, &h, msg, sz, wait_ms);
}

/* The connection failed with r while doing `what`: log once (the server's message when
 * it sent one), make it sticky. Returns the error. */
static int conn_fail(struct ps_client *c, int r, const char *what)
{
	char msg[512];
	if (c->err)
		return c->err;
	int code = server_error(c, msg, sizeof(msg), ERROR_WAIT_MS);
	if (code) {
		pr_err("page server %s: %s (while %s)", c->peer, msg, what);
		r = -code;
	} else {
		pr_err("page server %s: connection failed while %s: %s", c->peer, what,
		       strerror(r < 0 ? -r : EIO));
	}
	c->err = r < 0 ? r : -EIO;
	return c->err;
}

/* Mid-stream: has the server said something (it never does unless it fails)? */
static int check_pending(struct ps_client *c, const char *what)
{
	struct pollfd p = { .fd = c->fd, .events = POLLIN };
	if (poll(&p, 1, 0) == 1)
		return conn_fail(c, -ECONNRESET, what);
	return 0;
}

static int send_pb(struct ps_client *c, unsigned type, uint32_t file, const ProtobufCMessage *msg,
		   const char *what)
{
	size_t len = protobuf_c_message_get_packed_size(msg);
	uint8_t stackbuf[1024], *buf = len <= sizeof(stackbuf) ? stackbuf : malloc(len);
	if (!buf)
		return -ENOMEM;
	protobuf_c_message_pack(msg, buf);
	int r = ps_sender_frame(c->snd, type, file, buf, len);
	if (buf != stackbuf)
		free(buf);
	return r < 0 ? conn_fail(c, r, what) : 0;
}

/* ---- the image sink ------------------------------------------------------------- */

static int sink_begin(void *sink, const char *path)
{
	struct ps_client *c = sink;
	char buf[4096], what[128];
	snprintf(buf, sizeof(buf), "%s", path);
	size_t n = strlen(buf);
	while (n > 1 && buf[n - 1] == '/')
		buf[--n] = 0;
	const char *base = strrchr(buf, '/') ? strrchr(buf, '/') + 1 : buf;
	if (!ps_name_ok(base)) {
		pr_err("images directory '%s': its name '%s' cannot be a page server round "
		       "(1-63 characters of A-Z a-z 0-9 . _ -, not starting with '.')",
		       path, base);
		return -EINVAL;
	}
	pthread_mutex_lock(&c->lock);
	int r = c->err;
	if (r == 0 && c->in_round)
		r = pr_err_ret(-EBUSY, "page server %s: round '%s' still open", c->peer, c->round);
	if (r == 0) {
		PsRoundBegin m = PS_ROUND_BEGIN__INIT;
		m.name = (char *)base;
		m.kind = c->kind;
		snprintf(what, sizeof(what), "beginning round '%.63s'", base);
		r = send_pb(c, PS_ROUND_BEGIN, 0, &m.base, what);
	}
	if (r == 0) {
		snprintf(c->round, sizeof(c->round), "%.63s", base);
		c->in_round = true;
		c->files = 0;
		c->t_begin = now_ns();
		ps_sender_stats_reset(c->snd);
	}
	pthread_mutex_unlock(&c->lock);
	return r;
}

static int sink_open(void *sink, const char *name, uint32_t magic, void **fh)
{
	struct ps_client *c = sink;
	struct ps_file *f = calloc(1, sizeof(*f));
	char what[128];
	if (!f)
		return -ENOMEM;
	snprintf(f->name, sizeof(f->name), "%s", name);
	pthread_mutex_lock(&c->lock);
	f->id = ++c->next_id;
	PsFileOpen m = PS_FILE_OPEN__INIT;
	m.id = f->id;
	m.name = f->name;
	m.magic = magic;
	snprintf(what, sizeof(what), "opening '%s'", name);
	int r = c->err ? c->err : send_pb(c, PS_FILE_OPEN, f->id, &m.base, what);
	if (r == 0)
		c->files++;
	pthread_mutex_unlock(&c->lock);
	if (r < 0) {
		free(f);
		return r;
	}
	*fh = f;
	return 0;
}

static int sink_write(void *sink, void *fh, const void *buf, size_t len)
{
	struct ps_client *c = sink;
	struct ps_file *f = fh;
	char what[128];
	snprintf(what, sizeof(what), "sending '%s'", f->name);
	pthread_mutex_lock(&c->lock);
	int r = c->err;
	if (r == 0 && (r = ps_sender_data(c->snd, f->id, buf, len)) < 0)
		r = conn_fail(c, r, what);
	if (r == 0)
		r = check_pending(c, what);
	pthread_mutex_unlock(&c->lock);
	return r;
}

static int sink_close(void *sink, void *fh, uint64_t size, uint64_t hash)
{
	struct ps_client *c = sink;
	struct ps_file *f = fh;
	char what[128];
	snprintf(what, sizeof(what), "closing '%s'", f->name);
	PsFileClose m = PS_FILE_CLOSE__INIT;
	m.id = f->id;
	m.size = size;
	m.xxh64 = hash;
	pthread_mutex_lock(&c->lock);
	int r = c->err ? c->err : send_pb(c, PS_FILE_CLOSE, f->id, &m.base, what);
	pthread_mutex_unlock(&c->lock);
	free(f);
	return r;
}

static void sink_abort(void *sink, void *fh)
{
	struct ps_client *c = sink;
	struct ps_file *f = fh;
	PsFileAbort m = PS_FILE_ABORT__INIT;
	m.id = f->id;
	pthread_mutex_lock(&c->lock);
	if (!c->err)
		(void)send_pb(c, PS_FILE_ABORT, f->id, &m.base, "dropping a file");
	pthread_mutex_unlock(&c->lock);
	free(f);
}

/* The round's statistics, kept for ps_client_finish. */
static void round_record(struct ps_client *c, bool committed)
{
	struct round_stat *n = realloc(c->rounds, (c->n_rounds + 1) * sizeof(*n));
	if (!n)
		return;
	c->rounds = n;
	struct round_stat *rs = &c->rounds[c->n_rounds++];
	memset(rs, 0, sizeof(*rs));
	snprintf(rs->name, sizeof(rs->name), "%s", c->round);
	rs->committed = committed;
	rs->files = c->files;
	rs->secs = (now_ns() - c->t_begin) / 1e9;
	ps_sender_stats(c->snd, &rs->st);
}

/* The answer to a call: a WANT frame decoded with DESC, or the server's ERROR. */
static int call_reply(struct ps_client *c, unsigned want, const ProtobufCMessageDescriptor *desc,
		      ProtobufCMessage **reply, int timeout_ms, const char *what)
{
	struct ps_hdr h;
	const char *why = "";
	char msg[512];
	int r = ps_recv_hdr(c->fd, &h, &why, timeout_ms);
	if (r == -ETIMEDOUT) {
		pr_err("page server %s: no answer within %d s while %s", c->peer, timeout_ms / 1000,
		       what);
		return c->err = r;
	}
	if (r == -EPROTO) {
		pr_err("page server %s: bad frame while %s: %s", c->peer, what, why);
		return c->err = r;
	}
	if (r < 0)
		return conn_fail(c, r, what);
	if (h.type == PS_ERROR) {
		int code = error_payload(c, &h, msg, sizeof(msg), c->timeout_ms);
		pr_err("page server %s: %s (while %s)", c->peer, code ? msg : "undecodable ERROR",
		       what);
		return c->err = code ? -code : -EPROTO;
	}
	if (h.type != want) {
		pr_err("page server %s: unexpected %s frame while %s", c->peer,
		       ps_type_name(h.type), what);
		return c->err = -EPROTO;
	}
	void *buf = malloc(h.len ? h.len : 1);
	if (!buf)
		return -ENOMEM;
	r = ps_recv_full(c->fd, buf, h.len, c->timeout_ms);
	if (r < 0)
		r = conn_fail(c, r, what);
	else if (ps_unpack(desc, buf, h.len, reply) < 0)
		r = c->err = pr_err_ret(-EPROTO, "page server %s: undecodable %s", c->peer,
					ps_type_name(h.type));
	free(buf);
	return r;
}

/* Wait for the server's answer to ROUND_COMMIT (the server fsyncs: a longer wait). */
static int commit_reply(struct ps_client *c, const char *what)
{
	ProtobufCMessage *m = NULL;
	int r = call_reply(c, PS_ROUND_DONE, &ps_round_done__descriptor, &m, c->timeout_ms * 5,
			   what);
	if (r == 0 && m) {
		PsRoundDone *d = (PsRoundDone *)m;
		pr_info("page server %s: round stored as '%s' (%llu bytes, %u files)", c->peer,
			d->path, (unsigned long long)d->bytes, d->files);
		protobuf_c_message_free_unpacked(m, NULL);
	}
	return r;
}

static int sink_commit(void *sink, const void *inv, size_t len)
{
	struct ps_client *c = sink;
	char what[128];
	pthread_mutex_lock(&c->lock);
	snprintf(what, sizeof(what), "committing round '%s'", c->round);
	int r = c->err;
	if (r == 0 && len > PS_MAX_COMMIT)
		r = pr_err_ret(-EFBIG, "inventory of %zu bytes too large for the page server", len);
	if (r == 0 && (r = ps_sender_frame(c->snd, PS_ROUND_COMMIT, 0, inv, len)) < 0)
		r = conn_fail(c, r, what);
	if (r == 0)
		r = commit_reply(c, what);
	ps_sender_progress_end(c->snd);
	round_record(c, r == 0);
	c->in_round = false;
	pthread_mutex_unlock(&c->lock);
	return r;
}

static void sink_discard(void *sink)
{
	struct ps_client *c = sink;
	pthread_mutex_lock(&c->lock);
	if (c->in_round) {
		if (!c->err)
			(void)ps_sender_frame(c->snd, PS_ROUND_ABORT, 0, NULL, 0);
		ps_sender_progress_end(c->snd);
		round_record(c, false);
		c->in_round = false;
	}
	pthread_mutex_unlock(&c->lock);
}

/* ---- progress total ------------------------------------------------------------- */

/* The client whose sink is installed, for ps_progress_expect (one per process). */
static pthread_mutex_t g_live_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ps_client *g_live;

/* VmRSS + VmSwap of pid in bytes, or UINT64_MAX when unreadable. From
 * /proc/pid/status: the mm's counters, O(1) (smaps_rollup walks the page tables: ~0.1 s
 * for 4 GiB, which a dump would add to the freeze). */
static uint64_t proc_resident(pid_t pid)
{
	char path[64], line[256];
	uint64_t kib = 0;
	bool got = false;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return UINT64_MAX;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long v;
		if (sscanf(line, "VmRSS: %llu kB", &v) == 1 ||
		    sscanf(line, "VmSwap: %llu kB", &v) == 1) {
			kib += v;
			got = true;
		}
	}
	fclose(f);
	return got ? kib << 10 : UINT64_MAX;
}

void ps_progress_expect(pid_t pid, uint64_t bytes)
{
	pthread_mutex_lock(&g_live_lock);
	struct ps_client *c = g_live;
	if (c && c->progress) {
		uint64_t res = proc_resident(pid);
		pthread_mutex_lock(&c->lock);
		if (c->in_round)
			ps_sender_expect(c->snd, bytes < res ? bytes : res);
		pthread_mutex_unlock(&c->lock);
	}
	pthread_mutex_unlock(&g_live_lock);
}

static void sink_expect(void *sink, pid_t pid, uint64_t bytes)
{
	(void)sink;
	ps_progress_expect(pid, bytes);
}

static const struct img_sink_ops sink_ops = {
	.begin = sink_begin,
	.open = sink_open,
	.write = sink_write,
	.close = sink_close,
	.abort = sink_abort,
	.commit = sink_commit,
	.discard = sink_discard,
	.expect = sink_expect,
};

/* ---- connection ------------------------------------------------------------------ */

/* Connect to one address within CONNECT_TIMEOUT_MS: the fd (blocking) or -errno. */
static int connect_one(const struct addrinfo *ai)
{
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
			ai->ai_protocol);
	if (fd < 0)
		return -errno;
	int r = 0;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		r = -errno;
		if (r == -EINPROGRESS) {
			struct pollfd p = { .fd = fd, .events = POLLOUT };
			int n = poll(&p, 1, CONNECT_TIMEOUT_MS);
			socklen_t sl = sizeof(int);
			int e = 0;
			if (n == 0)
				r = -ETIMEDOUT;
			else if (n < 0)
				r = -errno;
			else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &sl) < 0)
				r = -errno;
			else
				r = -e;
		}
	}
	if (r == 0 && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0)
		r = -errno;
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

/* Socket options for a bulk stream: a large send buffer (SNDBUFFORCE when allowed,
 * else what SNDBUF grants) keeps several chunks in flight; NODELAY sends the small
 * control frames (FILE_CLOSE, ROUND_COMMIT) without waiting for an ACK. */
static void tune_socket(int fd)
{
	int v = SNDBUF, one = 1;
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof(v)) < 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static int client_connect(struct ps_client *c, const char *addr, int port)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
	char ps[16];
	snprintf(ps, sizeof(ps), "%d", port);
	int r = getaddrinfo(addr, ps, &hints, &res);
	if (r) {
		pr_err("page server '%s': cannot resolve: %s", addr, gai_strerror(r));
		return -EHOSTUNREACH;
	}
	r = -EHOSTUNREACH;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		r = connect_one(ai);
		if (r >= 0)
			break;
	}
	freeaddrinfo(res);
	if (r < 0)
		return pr_err_ret(r, "cannot connect to page server %s", c->peer);
	c->fd = r;
	tune_socket(c->fd);
	return 0;
}

/* "<hostname>-<pid>", made a valid name (other characters become '-', the host part
 * is cut to fit). */
static void default_source(char out[64], pid_t pid)
{
	char host[256] = "host", tail[16];
	(void)gethostname(host, sizeof(host) - 1);
	host[sizeof(host) - 1] = 0;
	int tl = snprintf(tail, sizeof(tail), "-%d", (int)pid);
	size_t hl = strlen(host);
	if (hl > (size_t)(63 - tl))
		hl = 63 - tl;
	for (size_t i = 0; i < hl; i++) {
		char ch = host[i];
		bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			  (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
		host[i] = ok ? ch : '-';
	}
	if (host[0] == '.')
		host[0] = '_';
	snprintf(out, 64, "%.*s%s", (int)hl, host, tail);
}

int ps_client_start(const struct ps_client_opts *o, struct ps_client **out)
{
	const char *addr = o->address ? o->address : "127.0.0.1";
	struct ps_key key = { 0 };
	uint64_t agreed = 0;
	int r;

	if (o->port <= 0 || o->port > 65535)
		return pr_err_ret(-EINVAL, "page server port %d is out of range", o->port);
	struct ps_client *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->lock, NULL);
	c->fd = -1;
	c->kind = o->kind;
	c->mode = o->compress;
	c->json = o->json;
	c->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 60000;
	snprintf(c->peer, sizeof(c->peer), strchr(addr, ':') ? "[%s]:%d" : "%s:%d", addr, o->port);
	for (char *p = c->peer; *p; p++) /* it goes into log lines and JSON as is */
		if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
			*p = '?';
	if (o->source_id)
		snprintf(c->source, sizeof(c->source), "%s", o->source_id);
	else
		default_source(c->source, o->pid);
	if (!ps_name_ok(c->source) || (o->source_id && strlen(o->source_id) > 63)) {
		r = pr_err_ret(-EINVAL,
			       "source id '%s' is not a valid name (1-63 characters "
			       "of A-Z a-z 0-9 . _ -, not starting with '.')",
			       o->source_id ? o->source_id : c->source);
		goto fail;
	}
	if (o->auth_key && (r = ps_key_load(o->auth_key, &key)) < 0)
		goto fail;
	if ((r = client_connect(c, addr, o->port)) < 0)
		goto fail;
	r = ps_handshake_client(c->fd, key.set ? &key : NULL, c->source,
				o->compress != PS_COMPRESS_OFF ? PS_FEAT_LZ4 : 0, &agreed,
				c->timeout_ms);
	if (r < 0)
		goto fail;
	if (o->compress == PS_COMPRESS_ON && !(agreed & PS_FEAT_LZ4))
		pr_warn("page server %s does not take lz4: sending uncompressed", c->peer);
	r = ps_sender_new(c->fd, o->compress, agreed & PS_FEAT_LZ4, c->timeout_ms, &c->snd);
	if (r < 0)
		goto fail;
	ps_sender_progress(c->snd, o->progress, 0);
	c->progress = o->progress && isatty(STDERR_FILENO);
	pr_info("page server %s: connected, source '%s', compression %s", c->peer, c->source,
		ps_compress_name(o->compress));
	if (!o->no_sink) {
		img_set_sink(&sink_ops, c);
		c->sink = true;
		pthread_mutex_lock(&g_live_lock);
		g_live = c;
		pthread_mutex_unlock(&g_live_lock);
	}
	*out = c;
	return 0;
fail:
	if (c->fd >= 0)
		close(c->fd);
	pthread_mutex_destroy(&c->lock);
	free(c);
	return r;
}

int ps_client_last_round(const struct ps_client *c, struct ps_round_info *out)
{
	if (!c->n_rounds)
		return -ENOENT;
	const struct round_stat *rs = &c->rounds[c->n_rounds - 1];
	snprintf(out->name, sizeof(out->name), "%s", rs->name);
	out->committed = rs->committed;
	out->bytes = rs->st.bytes;
	out->wire = rs->st.wire;
	out->secs = rs->secs;
	return 0;
}

void ps_client_set_kind(struct ps_client *c, int kind)
{
	pthread_mutex_lock(&c->lock);
	c->kind = kind;
	pthread_mutex_unlock(&c->lock);
}

int ps_client_call(struct ps_client *c, unsigned type, const ProtobufCMessage *req, unsigned want,
		   const ProtobufCMessageDescriptor *desc, ProtobufCMessage **reply, int timeout_ms)
{
	char what[96];
	int r;
	snprintf(what, sizeof(what), "waiting for %s", ps_type_name(want));
	pthread_mutex_lock(&c->lock);
	r = c->err;
	if (r == 0 && c->in_round)
		r = pr_err_ret(-EBUSY, "page server %s: %s inside a round", c->peer,
			       ps_type_name(type));
	if (r == 0) {
		if (req)
			r = send_pb(c, type, 0, req, what);
		else if ((r = ps_sender_frame(c->snd, type, 0, NULL, 0)) < 0)
			r = conn_fail(c, r, what);
	}
	if (r == 0)
		r = call_reply(c, want, desc, reply, timeout_ms, what);
	pthread_mutex_unlock(&c->lock);
	return r;
}

static const char *decision(const struct ps_client *c, const struct ps_send_stats *st)
{
	if (c->mode != PS_COMPRESS_AUTO)
		return st->lz4_chunks ? "on" : "off";
	if (!st->lz4_chunks)
		return st->same_host && !st->probes ? "auto: off (same host)" : "auto: off";
	return st->lz4_chunks == st->chunks ? "auto: on" : "auto: mixed";
}

static void round_print(const struct ps_client *c, const struct round_stat *rs, bool json,
			bool first)
{
	const struct ps_send_stats *st = &rs->st;
	double rate = rs->secs > 0 ? st->bytes / rs->secs : 0;
	double ratio = st->lz4_in ? (double)st->lz4_out / st->lz4_in : 1.0;
	if (!json) {
		pr_info("page server %s: round '%s' %s: %llu bytes in %u files, %llu on the "
			"wire, %.3f s, %.0f MB/s, lz4 %s (%llu of %llu chunks, ratio %.2f)",
			c->peer, rs->name, rs->committed ? "committed" : "dropped",
			(unsigned long long)st->bytes, rs->files, (unsigned long long)st->wire,
			rs->secs, rate / 1e6, decision(c, st), (unsigned long long)st->lz4_chunks,
			(unsigned long long)st->chunks, ratio);
		return;
	}
	printf("%s{\"round\":\"%s\",\"committed\":%s,\"files\":%u,\"bytes\":%llu,"
	       "\"wire_bytes\":%llu,\"seconds\":%.6f,\"rate\":%.0f,"
	       "\"compression\":{\"decision\":\"%s\",\"chunks\":%llu,\"lz4_chunks\":%llu,"
	       "\"ratio\":%.4f,\"probes\":%llu,\"switches\":%llu,\"lz4_seconds\":%.6f,"
	       "\"est_link_rate\":%.0f,\"est_lz4_rate\":%.0f,\"est_ratio\":%.4f,"
	       "\"est_idle\":%.3f},\"send_wait_seconds\":%.6f}",
	       first ? "" : ",", rs->name, rs->committed ? "true" : "false", rs->files,
	       (unsigned long long)st->bytes, (unsigned long long)st->wire, rs->secs, rate,
	       decision(c, st), (unsigned long long)st->chunks, (unsigned long long)st->lz4_chunks,
	       ratio, (unsigned long long)st->probes, (unsigned long long)st->switches,
	       st->lz4_ns / 1e9, st->est_link, st->est_lz4, st->est_ratio, st->est_idle,
	       st->send_ns / 1e9);
}

int ps_client_finish(struct ps_client *c, bool ok)
{
	if (!c)
		return 0;
	if (c->sink)
		img_set_sink(NULL, NULL);
	pthread_mutex_lock(&g_live_lock);
	if (g_live == c)
		g_live = NULL;
	pthread_mutex_unlock(&g_live_lock);
	int r = c->in_round ? -EBUSY : 0;
	if (c->in_round)
		sink_discard(c);
	for (size_t i = 0; i < c->n_rounds; i++)
		round_print(c, &c->rounds[i], false, i == 0);
	if (c->json) {
		printf("{\"transport\":{\"server\":\"%s\",\"source\":\"%s\",\"compress\":\"%s\","
		       "\"ok\":%s,\"rounds\":[",
		       c->peer, c->source, ps_compress_name(c->mode), ok ? "true" : "false");
		for (size_t i = 0; i < c->n_rounds; i++)
			round_print(c, &c->rounds[i], true, i == 0);
		printf("]}}\n");
		fflush(stdout);
	}
	ps_sender_free(c->snd);
	if (c->fd >= 0)
		close(c->fd);
	pthread_mutex_destroy(&c->lock);
	free(c->rounds);
	free(c);
	return r;
}
