/*
 * server-conn: one page-server connection, served in its own forked child.
 *
 * After the handshake, rounds: ROUND_BEGIN creates <D>/<source>/<round>/ (holding
 * <D>/<source>/.lock for the whole session), FILE_* frames stream files into it,
 * ROUND_COMMIT checks the inventory's manifest against what was received and makes the
 * round complete the way a local dump does (inventory.img.tmp, fsync, rename, fsync).
 *
 * Invariants:
 *  - Nothing received is used as a path: source and round names pass ps_name_ok(),
 *    file names ps_image_name_ok(), the parent ps_parent_name(); every open is an
 *    openat() under a directory fd with O_NOFOLLOW (and O_EXCL for files).
 *  - A round that does not commit (error, ROUND_ABORT, lost connection, SIGTERM) is
 *    removed before the ERROR goes out, so nothing partial ever looks complete.
 *  - Memory is bounded: the writer thread's PS_STORE_SLOTS chunk buffers (store.h), one
 *    lz4 buffer (LZ4_compressBound(PS_MAX_CHUNK)), one payload buffer per frame of at
 *    most PS_MAX_COMMIT freed after it, at most PS_MAX_OPEN open files and
 *    IMG_MAX_FILES received files per round.
 *  - FILE_DATA is received here and written and hashed by the writer thread
 *    (server-store.c); FILE_CLOSE, FILE_ABORT and any removal first wait until the
 *    writer is done with what was queued (ps_store_drain), and a write error it hit is
 *    reported like one of ours.
 *  - Each error is logged once here with the cause (the log prefix names the peer) and
 *    sent to the peer as ERROR {code, same line}.
 */
#include <errno.h>
#include <fcntl.h>
#include <lz4.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/log.h"
#include "common/util.h"
#include "img/img.h"
#include "pageserver/pageserver.h"
#include "pageserver/store.h"

#define DRAIN_MS 2000

struct pfile {
	bool used;
	uint32_t id;
	char name[64];
	uint64_t size;		 /* bytes received (queued to the writer) */
	struct ps_store_file sf; /* fd and hash: the writer's until the next drain */
};

struct done_file {
	char name[64];
	uint64_t size, hash;
	bool listed; /* seen in the manifest at commit */
};

struct conn {
	const struct ps_serve *s;
	int fd;
	uint64_t features;
	char source[64];
	int srcfd, lockfd;
	/* the current round: rdfd >= 0 */
	int rdfd;
	char round[64];
	uint32_t kind;
	struct pfile files[PS_MAX_OPEN];
	unsigned n_open;
	struct done_file *done;
	size_t n_done, cap_done;
	uint64_t bytes, wire_bytes;
	struct ps_store *store; /* the writer thread, from a round's first FILE_DATA to its end */
	uint8_t *comp;
	char emsg[320]; /* the cause, for the peer's ERROR */
	int ecode;
	uint64_t recv_ns, wait_ns; /* FILE_DATA: receiving (waits included); waiting for a buffer */
	uint64_t busy_ns;	   /* the writer threads of past rounds: writing and hashing */
};

static const struct ps_ext *g_ext;

void pageserver_set_ext(const struct ps_ext *x)
{
	g_ext = x;
}

static volatile sig_atomic_t g_stop;
static volatile int g_conn_fd = -1;

static void on_sigterm(int sig)
{
	g_stop = 1;
	if (g_conn_fd >= 0)
		shutdown(g_conn_fd, SHUT_RDWR); /* the blocked wait returns at once */
}

void ps_serve_sigterm(int fd)
{
	struct sigaction sa = { .sa_handler = on_sigterm };
	g_conn_fd = fd;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
}

/* Log the cause once and keep it for the peer's ERROR; evaluates to -code. */
#define conn_fail(c, code, fmt, ...)                                                               \
	({                                                                                         \
		int __code = (code); /* before snprintf can touch errno */                         \
		if (__code <= 0)                                                                   \
			__code = EIO;                                                              \
		snprintf((c)->emsg, sizeof((c)->emsg), fmt, ##__VA_ARGS__);                        \
		(c)->ecode = __code;                                                               \
		pr_err("%s", (c)->emsg);                                                           \
		-__code;                                                                           \
	})

/* Why a payload read failed, for the log and the peer. */
static const char *recv_cause(const struct conn *c, int r)
{
	static char buf[64];
	if (r != -ETIMEDOUT)
		return strerror(-r);
	snprintf(buf, sizeof(buf), "idle timeout (nothing for %d s)", c->s->timeout_ms / 1000);
	return buf;
}

static int io_code(int r)
{
	return r == -EDQUOT || r == -ENOSPC ? ENOSPC : -r;
}

/* ---- removing a partial round ---------------------------------------------------- */

/* The writer is done with f (drained) when this is called. */
static void file_drop(struct conn *c, struct pfile *f, bool unlink_it)
{
	if (f->sf.fd >= 0)
		close(f->sf.fd);
	if (unlink_it && c->rdfd >= 0)
		(void)unlinkat(c->rdfd, f->name, 0);
	if (f->sf.xs)
		XXH64_freeState(f->sf.xs);
	memset(f, 0, sizeof(*f));
	f->sf.fd = -1;
	c->n_open--;
}

/* The writer's error as ours: logged, kept for the peer. */
static int store_fail(struct conn *c, int r, const struct ps_store_file *f)
{
	return conn_fail(c, io_code(r), "%s writing '%s/%s/%s' on the page server",
			 io_code(r) == ENOSPC ? "disk full" : strerror(-r), c->source, c->round,
			 f && f->name ? f->name : "?");
}

/* Wait until the writer is done with everything queued: 0 or its error (reported). */
static int store_drain(struct conn *c)
{
	struct ps_store_file *bad = NULL;
	int r = c->store ? ps_store_drain(c->store, &bad) : 0;
	return r < 0 ? store_fail(c, r, bad) : 0;
}

/* The round ends (committed or not): files closed, the writer thread stopped, so that
 * between rounds the process is single-threaded again (migrate's extension frames may
 * restore from here: unshare(CLONE_NEWNS) and the like refuse a threaded process). */
static void round_reset(struct conn *c)
{
	struct ps_store_file *bad;
	if (c->store) /* its error, if any, was reported or no longer matters */
		(void)ps_store_drain(c->store, &bad);
	for (unsigned i = 0; i < PS_MAX_OPEN; i++)
		if (c->files[i].used)
			file_drop(c, &c->files[i], false);
	if (c->store) {
		c->busy_ns += ps_store_busy_ns(c->store);
		ps_store_free(c->store);
		c->store = NULL;
	}
	if (c->rdfd >= 0)
		close(c->rdfd);
	c->rdfd = -1;
	c->n_done = 0;
	c->bytes = c->wire_bytes = 0;
}

/* The round did not commit: its files and directory go. */
static void round_remove(struct conn *c)
{
	int r;
	if (c->rdfd < 0)
		return;
	round_reset(c);
	r = rmdir_files_at(c->srcfd, c->round);
	if (r < 0)
		pr_err("cannot remove partial round '%s/%s': %s", c->source, c->round,
		       strerror(-r));
	else
		pr_info("removed partial round '%s/%s'", c->source, c->round);
}

/* ---- frames ------------------------------------------------------------------------ */

/* Read the payload of a control frame and decode it with DESC. Returns the message
 * (free with protobuf_c_message_free_unpacked), or NULL with the cause logged and
 * c->ecode (> 0) set. */
static ProtobufCMessage *recv_ctrl(struct conn *c, const struct ps_hdr *h,
				   const ProtobufCMessageDescriptor *desc)
{
	uint8_t *buf = h->len ? malloc(h->len) : NULL;
	ProtobufCMessage *m = NULL;
	int r;

	if (h->len && !buf) {
		conn_fail(c, ENOMEM, "no memory for a %s frame", ps_type_name(h->type));
		return NULL;
	}
	r = ps_recv_full(c->fd, buf, h->len, c->s->timeout_ms);
	if (r < 0) {
		free(buf);
		conn_fail(c, -r, "reading %s: %s", ps_type_name(h->type), recv_cause(c, r));
		return NULL;
	}
	r = ps_unpack(desc, buf, h->len, &m);
	free(buf);
	if (r < 0 || !m) {
		conn_fail(c, EPROTO, "undecodable %s payload", ps_type_name(h->type));
		return NULL;
	}
	return m;
}

/* Open (creating on demand) the source directory and take its session lock. */
static int source_open(struct conn *c)
{
	if (c->srcfd >= 0)
		return 0;
	if (mkdirat(c->s->dirfd, c->source, 0755) < 0 && errno != EEXIST)
		return conn_fail(c, io_code(-errno), "cannot create source directory '%s': %m",
				 c->source);
	c->srcfd = openat(c->s->dirfd, c->source, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (c->srcfd < 0)
		return conn_fail(c, errno, "cannot open source directory '%s': %m", c->source);
	c->lockfd = openat(c->srcfd, ".lock", O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (c->lockfd < 0)
		return conn_fail(c, io_code(-errno), "cannot open '%s/.lock': %m", c->source);
	if (flock(c->lockfd, LOCK_EX | LOCK_NB) < 0)
		return conn_fail(c, errno == EWOULDBLOCK ? EBUSY : errno,
				 "source '%s' is in use by another session", c->source);
	return 0;
}

static int round_begin(struct conn *c, const struct ps_hdr *h)
{
	ProtobufCMessage *m;
	PsRoundBegin *rb;
	int r;

	if (c->rdfd >= 0)
		return conn_fail(c, EPROTO, "ROUND_BEGIN inside round '%s'", c->round);
	if (!(m = recv_ctrl(c, h, &ps_round_begin__descriptor)))
		return -c->ecode;
	rb = (PsRoundBegin *)m;
	if (!ps_name_ok(rb->name) || rb->kind > IMG_KIND_PREDUMP) {
		r = conn_fail(c, EINVAL, "bad round name '%.64s' or kind %u", rb->name, rb->kind);
		ps_round_begin__free_unpacked(rb, NULL);
		return r;
	}
	strcpy(c->round, rb->name);
	c->kind = rb->kind;
	ps_round_begin__free_unpacked(rb, NULL);
	if ((r = source_open(c)) < 0)
		return r;
	int old = openat(c->srcfd, c->round, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (old >= 0) {
		bool complete = faccessat(old, "inventory.img", F_OK, AT_SYMLINK_NOFOLLOW) == 0;
		close(old);
		if (complete)
			return conn_fail(c, EEXIST,
					 "round '%s/%s' is complete already (remove it first)",
					 c->source, c->round);
		pr_warn("removing leftover partial round '%s/%s'", c->source, c->round);
		if ((r = rmdir_files_at(c->srcfd, c->round)) < 0)
			return conn_fail(c, -r, "cannot remove leftover round '%s/%s': %s",
					 c->source, c->round, strerror(-r));
	}
	if (mkdirat(c->srcfd, c->round, 0755) < 0)
		return conn_fail(c, io_code(-errno), "cannot create round '%s/%s': %m", c->source,
				 c->round);
	c->rdfd = openat(c->srcfd, c->round, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (c->rdfd < 0) {
		r = conn_fail(c, errno, "cannot open round '%s/%s': %m", c->source, c->round);
		(void)unlinkat(c->srcfd, c->round, AT_REMOVEDIR);
		return r;
	}
	pr_info("round '%s/%s' begins (%s)", c->source, c->round,
		c->kind == IMG_KIND_PREDUMP ? "pre-dump" : "dump");
	return 0;
}

static struct pfile *file_find(struct conn *c, uint32_t id)
{
	for (unsigned i = 0; i < PS_MAX_OPEN; i++)
		if (c->files[i].used && c->files[i].id == id)
			return &c->files[i];
	return NULL;
}

static int file_open(struct conn *c, const struct ps_hdr *h)
{
	ProtobufCMessage *m;
	PsFileOpen *fo;
	struct pfile *f = NULL;
	int r = 0;

	if (!(m = recv_ctrl(c, h, &ps_file_open__descriptor)))
		return -c->ecode;
	fo = (PsFileOpen *)m;
	if (h->file && h->file != fo->id)
		r = conn_fail(c, EPROTO, "FILE_OPEN for id %u in a frame of file %u", fo->id,
			      h->file);
	else if (!ps_image_name_ok(fo->name))
		r = conn_fail(c, EINVAL, "refused image name '%.64s' (not a ferry image name)",
			      fo->name);
	else if (file_find(c, fo->id))
		r = conn_fail(c, EPROTO, "file id %u is open already", fo->id);
	else if (c->n_open >= PS_MAX_OPEN)
		r = conn_fail(c, EMFILE, "more than %d files open at once", PS_MAX_OPEN);
	else if (c->n_done >= IMG_MAX_FILES)
		r = conn_fail(c, EMFILE, "more than %u files in a round", IMG_MAX_FILES);
	if (r < 0)
		goto out;
	for (unsigned i = 0; i < PS_MAX_OPEN && !f; i++)
		if (!c->files[i].used)
			f = &c->files[i];
	f->sf.fd = openat(c->rdfd, fo->name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			  0644);
	if (f->sf.fd < 0) {
		r = conn_fail(c, errno == EEXIST ? EEXIST : io_code(-errno),
			      "cannot create '%s/%s/%s': %m", c->source, c->round, fo->name);
		f->sf.fd = -1;
		goto out;
	}
	f->sf.xs = XXH64_createState();
	if (!f->sf.xs) {
		close(f->sf.fd);
		f->sf.fd = -1;
		(void)unlinkat(c->rdfd, fo->name, 0);
		r = conn_fail(c, ENOMEM, "no memory for a file hash");
		goto out;
	}
	XXH64_reset(f->sf.xs, 0);
	f->used = true;
	f->id = fo->id;
	f->size = 0;
	f->sf.written = f->sf.flushed = 0;
	strcpy(f->name, fo->name);
	f->sf.name = f->name;
	c->n_open++;
out:
	ps_file_open__free_unpacked(fo, NULL);
	return r;
}

static int file_data(struct conn *c, const struct ps_hdr *h)
{
	struct pfile *f = file_find(c, h->file);
	bool lz4 = h->flags & PS_F_LZ4;
	int r, n = (int)h->raw_len;

	if (!f)
		return conn_fail(c, EPROTO, "FILE_DATA for file id %u that is not open", h->file);
	if (lz4 && !(c->features & PS_FEAT_LZ4))
		return conn_fail(c, EPROTO, "lz4 FILE_DATA without the lz4 feature agreed");
	if (!c->store && (r = ps_store_new(&c->store)) < 0)
		return conn_fail(c, -r, "cannot start the writer thread: %s", strerror(-r));
	if (lz4 && !c->comp && !(c->comp = malloc(LZ4_compressBound(PS_MAX_CHUNK))))
		return conn_fail(c, ENOMEM, "no memory for an lz4 buffer");
	uint64_t t0 = now_ns();
	uint8_t *buf = ps_store_buf(c->store); /* waits while the writer is behind */
	uint64_t t1 = now_ns();
	r = ps_recv_full(c->fd, lz4 ? c->comp : buf, h->len, c->s->timeout_ms);
	c->wait_ns += t1 - t0;
	c->recv_ns += now_ns() - t1;
	if (r < 0)
		return conn_fail(c, -r, "reading data of '%s' (%llu bytes in): %s", f->name,
				 (unsigned long long)f->size, recv_cause(c, r));
	if (lz4 &&
	    LZ4_decompress_safe((const char *)c->comp, (char *)buf, (int)h->len, PS_MAX_CHUNK) != n)
		return conn_fail(c, EBADMSG, "bad lz4 block for '%s' (%llu bytes in)", f->name,
				 (unsigned long long)f->size);
	f->size += n;
	c->bytes += n;
	c->wire_bytes += h->len;
	struct ps_store_file *bad = NULL;
	if (n && (r = ps_store_put(c->store, &f->sf, n, &bad)) < 0)
		return store_fail(c, r, bad);
	return 0;
}

static int file_close(struct conn *c, const struct ps_hdr *h)
{
	ProtobufCMessage *m;
	PsFileClose *fc;
	struct pfile *f;

	if (!(m = recv_ctrl(c, h, &ps_file_close__descriptor)))
		return -c->ecode;
	fc = (PsFileClose *)m;
	f = file_find(c, fc->id);
	uint64_t size = fc->size, hash = fc->xxh64, got;
	uint32_t id = fc->id;
	ps_file_close__free_unpacked(fc, NULL);
	if (!f)
		return conn_fail(c, EPROTO, "FILE_CLOSE of file id %u that is not open", id);
	int r = store_drain(c); /* every byte of it written and hashed */
	if (r < 0)
		return r;
	got = XXH64_digest(f->sf.xs);
	if (size != f->size || hash != got)
		return conn_fail(c, EBADMSG,
				 "'%s' differs: received %llu bytes (xxh64 %016llx), client sent "
				 "%llu (%016llx)",
				 f->name, (unsigned long long)f->size, (unsigned long long)got,
				 (unsigned long long)size, (unsigned long long)hash);
	if (fsync(f->sf.fd) < 0)
		return conn_fail(c, io_code(-errno), "cannot sync '%s/%s/%s': %m", c->source,
				 c->round, f->name);
	if (c->n_done == c->cap_done) {
		size_t cap = c->cap_done ? c->cap_done * 2 : 32;
		struct done_file *d = realloc(c->done, cap * sizeof(*d));
		if (!d)
			return conn_fail(c, ENOMEM, "no memory for the file list");
		c->done = d;
		c->cap_done = cap;
	}
	struct done_file *d = &c->done[c->n_done++];
	strcpy(d->name, f->name);
	d->size = size;
	d->hash = got;
	d->listed = false;
	pr_debug("file '%s' complete: %llu bytes", f->name, (unsigned long long)size);
	file_drop(c, f, false);
	return 0;
}

static int file_abort(struct conn *c, const struct ps_hdr *h)
{
	ProtobufCMessage *m;
	struct pfile *f;
	uint32_t id;

	if (!(m = recv_ctrl(c, h, &ps_file_abort__descriptor)))
		return -c->ecode;
	id = ((PsFileAbort *)m)->id;
	ps_file_abort__free_unpacked((PsFileAbort *)m, NULL);
	if (!(f = file_find(c, id)))
		return conn_fail(c, EPROTO, "FILE_ABORT of file id %u that is not open", id);
	int r = store_drain(c);
	if (r < 0)
		return r;
	pr_debug("file '%s' aborted by the client", f->name);
	file_drop(c, f, true);
	return 0;
}

/* ---- commit ------------------------------------------------------------------------ */

static int done_cmp(const void *a, const void *b)
{
	return strcmp(((const struct done_file *)a)->name, ((const struct done_file *)b)->name);
}

/* The manifest must list exactly the files this round received, same sizes and hashes. */
static int manifest_check(struct conn *c, const InventoryEntry *inv)
{
	for (unsigned i = 0; i < PS_MAX_OPEN; i++)
		if (c->files[i].used)
			return conn_fail(c, EPROTO, "'%s' is still open at ROUND_COMMIT",
					 c->files[i].name);
	if (inv->kind != c->kind)
		return conn_fail(c, EINVAL, "inventory of kind %u in a round begun as kind %u",
				 inv->kind, c->kind);
	if (inv->n_manifest != c->n_done)
		return conn_fail(c, EBADMSG, "inventory lists %zu files, the round received %zu",
				 inv->n_manifest, c->n_done);
	if (c->n_done)
		qsort(c->done, c->n_done, sizeof(*c->done), done_cmp);
	for (size_t i = 0; i < inv->n_manifest; i++) {
		const ManifestEntry *m = inv->manifest[i];
		struct done_file key, *d;
		if (strlen(m->name) >= sizeof(key.name) ||
		    !(d = bsearch(strcpy(key.name, m->name), c->done, c->n_done, sizeof(*d),
				  done_cmp)))
			return conn_fail(c, EBADMSG, "inventory lists '%.64s', not received",
					 m->name);
		if (d->listed)
			return conn_fail(c, EBADMSG, "inventory lists '%s' twice", d->name);
		d->listed = true;
		if (d->size != m->size || d->hash != m->xxh64)
			return conn_fail(c, EBADMSG,
					 "inventory says '%s' has %llu bytes (xxh64 %016llx), "
					 "received %llu (%016llx)",
					 d->name, (unsigned long long)m->size,
					 (unsigned long long)m->xxh64, (unsigned long long)d->size,
					 (unsigned long long)d->hash);
	}
	return 0;
}

/* inventory.parent, if set, is "../<round>" naming a complete round of this source;
 * the round gets a `parent` symlink to it. */
static int parent_check(struct conn *c, const InventoryEntry *inv)
{
	char pname[64], link[80];
	int pfd;
	bool complete;

	if (!inv->parent || !inv->parent[0])
		return 0;
	if (ps_parent_name(inv->parent, pname) < 0 || !strcmp(pname, c->round))
		return conn_fail(c, EINVAL, "parent '%.80s' is not ../<another round>",
				 inv->parent);
	pfd = openat(c->srcfd, pname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (pfd < 0)
		return conn_fail(c, ENOENT, "parent round '%s/%s' is not on this server", c->source,
				 pname);
	complete = faccessat(pfd, "inventory.img", F_OK, AT_SYMLINK_NOFOLLOW) == 0;
	close(pfd);
	if (!complete)
		return conn_fail(c, ENOENT, "parent round '%s/%s' is incomplete", c->source, pname);
	snprintf(link, sizeof(link), "../%s", pname);
	if (symlinkat(link, c->rdfd, "parent") < 0)
		return conn_fail(c, io_code(-errno), "cannot link '%s/%s/parent': %m", c->source,
				 c->round);
	return 0;
}

/* inventory.img.tmp, fsync, rename, fsync the round and source directories. */
static int inventory_write(struct conn *c, const void *buf, size_t len)
{
	int fd = openat(c->rdfd, "inventory.img.tmp",
			O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	int r;

	if (fd < 0)
		return conn_fail(c, io_code(-errno), "cannot create '%s/%s/inventory.img': %m",
				 c->source, c->round);
	r = write_full(fd, buf, len);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	close(fd);
	if (r == 0 && renameat(c->rdfd, "inventory.img.tmp", c->rdfd, "inventory.img") < 0)
		r = -errno;
	if (r == 0 && (fsync(c->rdfd) < 0 || fsync(c->srcfd) < 0))
		r = -errno;
	if (r < 0) {
		(void)unlinkat(c->rdfd, "inventory.img.tmp", 0);
		(void)unlinkat(c->rdfd, "inventory.img", 0);
		return conn_fail(c, io_code(r), "%s writing '%s/%s/inventory.img'",
				 io_code(r) == ENOSPC ? "disk full" : strerror(-r), c->source,
				 c->round);
	}
	return 0;
}

static int round_done(struct conn *c, uint64_t t0)
{
	PsRoundDone d = PS_ROUND_DONE__INIT;
	char path[130];
	int r;

	snprintf(path, sizeof(path), "%s/%s", c->source, c->round);
	d.path = path;
	d.bytes = c->bytes;
	d.files = c->n_done;
	d.has_wire_bytes = true;
	d.wire_bytes = c->wire_bytes;
	pr_info("round '%s' complete: %zu files, %llu bytes (%llu on the wire), commit %.1f ms",
		path, c->n_done, (unsigned long long)c->bytes, (unsigned long long)c->wire_bytes,
		(now_ns() - t0) / 1e6);
	round_reset(c); /* complete: it stays */
	r = ps_send_msg(c->fd, PS_ROUND_DONE, 0, &d.base, c->s->timeout_ms);
	if (r < 0)
		return conn_fail(c, -r, "round '%s' is complete but ROUND_DONE failed: %s", path,
				 strerror(-r));
	return 0;
}

static int round_commit(struct conn *c, const struct ps_hdr *h)
{
	uint64_t t0 = now_ns();
	InventoryEntry *inv = NULL;
	uint8_t *buf = malloc(h->len ? h->len : 1);
	int r;

	if (!buf)
		return conn_fail(c, ENOMEM, "no memory for an inventory of %llu bytes",
				 (unsigned long long)h->len);
	if ((r = ps_recv_full(c->fd, buf, h->len, c->s->timeout_ms)) < 0) {
		r = conn_fail(c, -r, "reading ROUND_COMMIT: %s", recv_cause(c, r));
		goto out;
	}
	if (img_inventory_decode(buf, h->len, &inv) < 0) {
		r = conn_fail(c, EBADMSG, "inventory.img of round '%s/%s' is corrupt", c->source,
			      c->round);
		goto out;
	}
	if ((r = manifest_check(c, inv)) < 0 || (r = parent_check(c, inv)) < 0 ||
	    (r = inventory_write(c, buf, h->len)) < 0)
		goto out;
	r = round_done(c, t0);
out:
	if (inv)
		inventory_entry__free_unpacked(inv, NULL);
	free(buf);
	return r;
}

/* ---- the connection ---------------------------------------------------------------- */

static int client_error(struct conn *c, const struct ps_hdr *h)
{
	ProtobufCMessage *m = recv_ctrl(c, h, &ps_error__descriptor);
	int r;
	if (!m)
		return -c->ecode;
	PsError *e = (PsError *)m;
	pr_err("client reported an error: '%s'", e->message);
	r = e->code > 0 && e->code < 4096 ? -e->code : -EPROTO;
	ps_error__free_unpacked(e, NULL);
	c->ecode = 0; /* no ERROR back */
	return r;
}

static int dispatch(struct conn *c, const struct ps_hdr *h)
{
	bool in_round = c->rdfd >= 0;
	switch (h->type) {
	case PS_ROUND_BEGIN:
		return round_begin(c, h);
	case PS_ERROR:
		return client_error(c, h);
	case PS_FILE_OPEN:
	case PS_FILE_DATA:
	case PS_FILE_CLOSE:
	case PS_FILE_ABORT:
	case PS_ROUND_COMMIT:
	case PS_ROUND_ABORT:
		if (!in_round)
			return conn_fail(c, EPROTO, "%s outside a round", ps_type_name(h->type));
		break;
	default:
		if (h->type >= PS_MIG_FIRST && h->type <= PS_MIG_LAST && g_ext && !in_round) {
			int r = g_ext->frame(g_ext->ctx, c->fd, h, c->source, c->s->dirfd, c->srcfd,
					     c->s->timeout_ms);
			c->ecode = 0; /* the extension answered for itself */
			return r;
		}
		return conn_fail(c, EPROTO, "unexpected %s frame", ps_type_name(h->type));
	}
	switch (h->type) {
	case PS_FILE_OPEN:
		return file_open(c, h);
	case PS_FILE_DATA:
		return file_data(c, h);
	case PS_FILE_CLOSE:
		return file_close(c, h);
	case PS_FILE_ABORT:
		return file_abort(c, h);
	case PS_ROUND_COMMIT:
		return round_commit(c, h);
	default: /* PS_ROUND_ABORT */
		pr_info("client aborted round '%s/%s'", c->source, c->round);
		round_remove(c);
		return 0;
	}
}

/* Frames until the client closes between rounds (0) or an error (-errno). */
static int serve_rounds(struct conn *c)
{
	struct ps_hdr h;
	const char *why = NULL;
	int r;

	for (;;) {
		r = ps_recv_hdr(c->fd, &h, &why, c->s->timeout_ms);
		if (g_stop)
			return conn_fail(c, ESHUTDOWN, "page server stopping (signal)%s%s%s",
					 c->rdfd >= 0 ? ": dropping round '" : "",
					 c->rdfd >= 0 ? c->round : "", c->rdfd >= 0 ? "'" : "");
		if (r == -ECONNRESET && c->rdfd < 0)
			return 0;
		if (r == -ECONNRESET)
			return conn_fail(c, ECONNRESET, "connection lost in round '%s/%s'",
					 c->source, c->round);
		if (r == -ETIMEDOUT)
			return conn_fail(c, ETIMEDOUT, "no frame for %d s (idle timeout)%s%s",
					 c->s->timeout_ms / 1000, c->rdfd >= 0 ? " in round " : "",
					 c->rdfd >= 0 ? c->round : "");
		if (r == -EPROTO)
			return conn_fail(c, EPROTO, "bad frame: %s", why);
		if (r < 0)
			return conn_fail(c, -r, "receiving: %s", strerror(-r));
		pr_trace("%s file %u len %llu", ps_type_name(h.type), h.file,
			 (unsigned long long)h.len);
		if ((r = dispatch(c, &h)) < 0)
			return r;
	}
}

/* After an ERROR: stop writing and read what the peer still sends for a bounded time,
 * so that it reads our ERROR instead of a reset. */
static void drain(int fd)
{
	uint64_t end = now_ns() + DRAIN_MS * 1000000ull;
	char buf[16384];

	if (shutdown(fd, SHUT_WR) < 0)
		return;
	for (;;) {
		uint64_t now = now_ns();
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (now >= end || poll(&p, 1, (int)((end - now) / 1000000) + 1) <= 0)
			return;
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
			return;
	}
}

/* A fixed receive buffer of RCVBUF (when the kernel lets us exceed rmem_max: else the
 * autotuning, whose ceiling is tcp_rmem[2], stays). Measured on the 2-core VM, 4 GiB
 * rounds on loopback, interleaved with autotuning: faster in 5 of 6 pairs (best 5.9 vs
 * 6.1 s, others 10.2 vs 12.1, 10.5 vs 14.0 s) and the connection's system time lower in
 * all 6 (4.5 vs 5.3 s): the sender runs further ahead while the receiving threads wait
 * for a CPU, and the window is not re-tuned as the round goes. */
#define RCVBUF (32 << 20)

static void rcvbuf_set(int fd)
{
	int v = RCVBUF;
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof(v));
}

int ps_serve_conn(const struct ps_serve *s, int fd)
{
	struct conn c = { .s = s, .fd = fd, .srcfd = -1, .lockfd = -1, .rdfd = -1 };
	int etimeout = s->timeout_ms < 5000 ? s->timeout_ms : 5000;
	PsHello *hello = NULL;
	int r;

	for (unsigned i = 0; i < PS_MAX_OPEN; i++)
		c.files[i].sf.fd = -1;
	rcvbuf_set(fd);
	r = ps_handshake_server(fd, s->key, PS_FEAT_LZ4, &hello, &c.features, s->timeout_ms);
	if (r == 0) {
		strcpy(c.source, hello->source); /* ps_name_ok: at most 63 chars */
		pr_info("client '%s' (kernel %.64s) connected, features %#llx", c.source,
			hello->kernel, (unsigned long long)c.features);
		ps_hello__free_unpacked(hello, NULL);
		r = serve_rounds(&c);
	}
	round_remove(&c);
	if (c.lockfd >= 0) /* the next session of this source may start */
		close(c.lockfd);
	c.lockfd = -1;
	if (r < 0) {
		if (c.ecode && !g_stop)
			ps_send_error(fd, c.ecode, etimeout, "%s", c.emsg);
		if (!g_stop)
			drain(fd);
	} else {
		struct rusage ru;
		getrusage(RUSAGE_SELF, &ru);
		pr_info("client '%s' closed the connection (peak RSS %ld KiB, cpu %.2f s user "
			"%.2f s system; data: %.2f s receiving, %.2f s waiting for the writer, "
			"which wrote and hashed for %.2f s)",
			c.source, ru.ru_maxrss, ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6,
			ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6, c.recv_ns / 1e9,
			c.wait_ns / 1e9, c.busy_ns / 1e9);
	}
	ps_store_free(c.store); /* NULL: round_remove stopped it */
	free(c.comp);
	free(c.done);
	if (c.lockfd >= 0)
		close(c.lockfd);
	if (c.srcfd >= 0)
		close(c.srcfd);
	g_conn_fd = -1;
	close(fd);
	return r;
}
