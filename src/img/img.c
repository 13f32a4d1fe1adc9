/*
 * img: image directory, writers, verified readers. See img.h for the format and
 * invariants. Each file is hashed whole, header included, seed 0: XXH64 (the manifest's
 * xxh64) for every file, except page data written to a local directory without a sink,
 * which is hashed with XXH3_64bits (the manifest's xxh3, xxh64 then 0): about 4x less
 * CPU on the dump's critical thread. A sink (the page server) always gets XXH64, which
 * is what its peer verifies. Readers verify whichever hash the manifest entry carries.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <xxhash.h>
#if defined(__x86_64__)
/* XXH3_64bits(_update) become the library's runtime-dispatched versions (AVX2 where the
 * CPU has it: ~2.5x the baseline SSE2 build's speed here); same results on every CPU. */
#include <xxh_x86dispatch.h>
#endif

#include "common/log.h"
#include "common/util.h"
#include "img/img.h"

#define WBUF_SIZE (1u << 20)

struct manifest_item {
	char name[64];
	uint64_t size;
	uint64_t hash;
	bool xxh3; /* hash is XXH3_64bits, else XXH64 */
};

/* A streaming whole-file hash of either kind (seed 0). */
struct fhash {
	bool xxh3;
	XXH64_state_t *s64;
	XXH3_state_t *s3;
};

static int fhash_init(struct fhash *h, bool xxh3)
{
	h->xxh3 = xxh3;
	h->s64 = NULL;
	h->s3 = NULL;
	if (xxh3) {
		if (!(h->s3 = XXH3_createState()))
			return -ENOMEM;
		XXH3_64bits_reset(h->s3);
	} else {
		if (!(h->s64 = XXH64_createState()))
			return -ENOMEM;
		XXH64_reset(h->s64, 0);
	}
	return 0;
}

static void fhash_update(struct fhash *h, const void *buf, size_t len)
{
	if (h->xxh3)
		XXH3_64bits_update(h->s3, buf, len);
	else
		XXH64_update(h->s64, buf, len);
}

static uint64_t fhash_digest(const struct fhash *h)
{
	return h->xxh3 ? XXH3_64bits_digest(h->s3) : XXH64_digest(h->s64);
}

static void fhash_fini(struct fhash *h)
{
	XXH64_freeState(h->s64);
	XXH3_freeState(h->s3);
	h->s64 = NULL;
	h->s3 = NULL;
}

struct img_dir {
	int dirfd;
	char *path;
	bool writer;
	bool committed;
	const struct img_sink_ops *sink_ops; /* writer: every file also goes there */
	void *sink;
	InventoryEntry *inv;	     /* reader: verified inventory */
	struct manifest_item *items; /* writer: closed files */
	size_t n_items, cap_items;
};

struct img_writer {
	struct img_dir *d;
	int fd;	   /* -1: the file goes only to the sink */
	void *fh;  /* the sink's handle, NULL without a sink */
	bool sunk; /* fh is valid */
	char name[64];
	struct fhash h;
	uint64_t size;
	uint8_t *buf;
	size_t blen;
};

struct img_stream {
	int fd;
	char name[64];
	uint64_t size, pos, want_hash;
	struct fhash h;
};

const char *img_name(char buf[64], const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, 64, fmt, ap);
	va_end(ap);
	return buf;
}

static const struct img_sink_ops *g_sink_ops;
static void *g_sink;

void img_set_sink(const struct img_sink_ops *ops, void *sink)
{
	g_sink_ops = ops;
	g_sink = ops ? sink : NULL;
}

void img_sink_expect(pid_t pid, uint64_t bytes)
{
	if (g_sink_ops && g_sink_ops->expect)
		g_sink_ops->expect(g_sink, pid, bytes);
}

/* Page data (pages-*.img) is the only kind a sink keeps alone: the other raw files
 * (dirty-*.state, sysc-*.img) are read back by the next round and stay local too. */
static bool is_page_data(const char *name, uint32_t magic)
{
	return magic == IMG_MAGIC_RAW && !strncmp(name, "pages-", 6);
}

static bool name_ok(const char *name)
{
	size_t n = strlen(name);
	return n > 0 && n < 64 && !strchr(name, '/') && strcmp(name, ".") && strcmp(name, "..");
}

int img_dir_create(const char *path, struct img_dir **out)
{
	int r = mkdir_p(path, 0700);
	if (r < 0)
		return pr_err_ret(r, "cannot create images directory '%s'", path);
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return pr_perror("cannot open images directory '%s'", path);
	if (faccessat(fd, "inventory.img", F_OK, 0) == 0) {
		close(fd);
		pr_err("images directory '%s' already holds a complete dump (remove it first)",
		       path);
		return -EEXIST;
	}
	struct img_dir *d = calloc(1, sizeof(*d));
	if (!d || !(d->path = strdup(path))) {
		free(d);
		close(fd);
		return -ENOMEM;
	}
	d->dirfd = fd;
	d->writer = true;
	if (g_sink_ops) {
		r = g_sink_ops->begin(g_sink, path);
		if (r < 0) {
			img_dir_free(d);
			return r;
		}
		d->sink_ops = g_sink_ops;
		d->sink = g_sink;
	}
	*out = d;
	return 0;
}

void img_inventory_init(InventoryEntry *inv)
{
	static struct utsname u;
	uname(&u);
	inventory_entry__init(inv);
	inv->img_version = IMG_VERSION;
	inv->kernel = u.release;
	inv->arch = u.machine;
	inv->page_size = page_size;
}

int img_inventory_decode(const void *data, size_t len, InventoryEntry **out)
{
	struct img_buf b;
	ProtobufCMessage *m;

	if (len < 4 + 4 + 8)
		return -EBADMSG;
	uint64_t want;
	memcpy(&want, (const uint8_t *)data + len - 8, 8);
	if (XXH64(data, len - 8, 0) != want)
		return -EBADMSG;
	if (img_buf_init(&b, data, len - 8, IMG_MAGIC_INVENTORY) < 0)
		return -EBADMSG;
	if (img_buf_one(&b, &inventory_entry__descriptor, &m) < 0)
		return -EBADMSG;
	InventoryEntry *inv = (InventoryEntry *)m;
	if (inv->n_manifest > IMG_MAX_FILES) {
		inventory_entry__free_unpacked(inv, NULL);
		return -EBADMSG;
	}
	for (size_t i = 0; i < inv->n_manifest; i++) {
		if (!name_ok(inv->manifest[i]->name)) {
			inventory_entry__free_unpacked(inv, NULL);
			return -EBADMSG;
		}
	}
	*out = inv;
	return 0;
}

int img_dir_open(const char *path, struct img_dir **out)
{
	char *data = NULL;
	size_t len;
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return pr_perror("cannot open images directory '%s'", path);
	int r = read_file_at(fd, "inventory.img", &data, &len, 1u << 24);
	if (r == -ENOENT) {
		close(fd);
		pr_err("images directory '%s' is incomplete or empty: no inventory.img", path);
		return -ENOENT;
	}
	if (r < 0) {
		close(fd);
		return pr_err_ret(r, "cannot read '%s/inventory.img'", path);
	}
	InventoryEntry *inv = NULL;
	if (len >= 4) {
		uint32_t magic;
		memcpy(&magic, data, 4);
		if (magic != IMG_MAGIC_INVENTORY) {
			free(data);
			close(fd);
			pr_err("'%s/inventory.img' is not a ferry inventory (magic %#x)", path,
			       magic);
			return -EBADMSG;
		}
	}
	r = img_inventory_decode(data, len, &inv);
	free(data);
	if (r < 0) {
		close(fd);
		pr_err("'%s/inventory.img' is corrupt (checksum or format)", path);
		return r;
	}
	if (inv->img_version != IMG_VERSION) {
		pr_err("images in '%s' have format version %u; this ferry reads version %u", path,
		       inv->img_version, IMG_VERSION);
		inventory_entry__free_unpacked(inv, NULL);
		close(fd);
		return -EPROTONOSUPPORT;
	}
	if (inv->page_size != page_size) {
		pr_err("images in '%s' have page size %u, this host %zu", path, inv->page_size,
		       page_size);
		inventory_entry__free_unpacked(inv, NULL);
		close(fd);
		return -EPROTONOSUPPORT;
	}
	struct img_dir *d = calloc(1, sizeof(*d));
	if (!d || !(d->path = strdup(path))) {
		free(d);
		inventory_entry__free_unpacked(inv, NULL);
		close(fd);
		return -ENOMEM;
	}
	d->dirfd = fd;
	d->inv = inv;
	*out = d;
	return 0;
}

void img_dir_free(struct img_dir *d)
{
	if (!d)
		return;
	if (d->inv)
		inventory_entry__free_unpacked(d->inv, NULL);
	if (d->sink_ops && !d->committed)
		d->sink_ops->discard(d->sink);
	if (d->dirfd >= 0)
		close(d->dirfd);
	free(d->items);
	free(d->path);
	free(d);
}

int img_dir_fd(const struct img_dir *d)
{
	return d->dirfd;
}

const char *img_dir_path(const struct img_dir *d)
{
	return d->path;
}

const InventoryEntry *img_dir_inventory(const struct img_dir *d)
{
	return d->inv;
}

static const ManifestEntry *manifest_find(const struct img_dir *d, const char *name)
{
	if (!d->inv)
		return NULL;
	for (size_t i = 0; i < d->inv->n_manifest; i++)
		if (!strcmp(d->inv->manifest[i]->name, name))
			return d->inv->manifest[i];
	return NULL;
}

/* Does DATA match the entry's hash (XXH3 when the entry has one, else XXH64)? */
static bool manifest_hash_ok(const ManifestEntry *me, const void *data, size_t len)
{
	if (me->has_xxh3)
		return XXH3_64bits(data, len) == me->xxh3;
	return XXH64(data, len, 0) == me->xxh64;
}

bool img_dir_has(const struct img_dir *d, const char *name)
{
	return manifest_find(d, name) != NULL;
}

/* ---- writer ---- */

int img_writer_open(struct img_dir *d, const char *name, uint32_t magic, struct img_writer **out)
{
	if (!name_ok(name))
		return pr_err_ret(-EINVAL, "bad image name '%s'", name);
	struct img_writer *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->buf = malloc(WBUF_SIZE);
	if (!w->buf || fhash_init(&w->h, !d->sink_ops && is_page_data(name, magic)) < 0) {
		free(w->buf);
		fhash_fini(&w->h);
		free(w);
		return -ENOMEM;
	}
	w->d = d;
	snprintf(w->name, sizeof(w->name), "%s", name);
	w->fd = -1;
	int r = 0;
	if (d->sink_ops) {
		r = d->sink_ops->open(d->sink, name, magic, &w->fh);
		w->sunk = r == 0;
	}
	if (r == 0 && !(d->sink_ops && is_page_data(name, magic))) {
		/* O_RDWR: the page writer may map the file (dump-mem.c direct batches) */
		w->fd = openat(d->dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (w->fd < 0)
			r = pr_perror("cannot create image '%s/%s'", d->path, name);
	}
	if (r < 0) {
		if (w->sunk && d->sink_ops)
			d->sink_ops->abort(d->sink, w->fh);
		free(w->buf);
		fhash_fini(&w->h);
		free(w);
		return r;
	}
	*out = w;
	if (magic != IMG_MAGIC_RAW) {
		int r = img_write_raw(w, &magic, 4);
		if (r < 0) {
			img_writer_abort(w);
			return r;
		}
	}
	return 0;
}

/* Bytes (already hashed) to the local file and the sink. */
static int writer_out(struct img_writer *w, const void *buf, size_t len)
{
	if (w->fd >= 0) {
		int r = write_full(w->fd, buf, len);
		if (r < 0)
			return pr_err_ret(r, "cannot write image '%s/%s'", w->d->path, w->name);
	}
	if (w->sunk)
		return w->d->sink_ops->write(w->d->sink, w->fh, buf, len);
	return 0;
}

static int writer_flush(struct img_writer *w)
{
	if (!w->blen)
		return 0;
	int r = writer_out(w, w->buf, w->blen);
	w->blen = 0;
	return r;
}

int img_writer_put(struct img_writer *w, const void *buf, size_t len)
{
	int r = writer_flush(w);
	return r < 0 ? r : writer_out(w, buf, len);
}

int img_write_raw(struct img_writer *w, const void *buf, size_t len)
{
	fhash_update(&w->h, buf, len);
	w->size += len;
	if (w->blen + len > WBUF_SIZE) {
		int r = writer_flush(w);
		if (r < 0)
			return r;
	}
	if (len >= WBUF_SIZE)
		return writer_out(w, buf, len);
	memcpy(w->buf + w->blen, buf, len);
	w->blen += len;
	return 0;
}

int img_write_pb(struct img_writer *w, const ProtobufCMessage *msg)
{
	size_t len = protobuf_c_message_get_packed_size(msg);
	if (len > IMG_MAX_RECORD)
		return pr_err_ret(-EFBIG, "record of %zu bytes too large for '%s'", len, w->name);
	uint8_t stackbuf[4096];
	uint8_t *p = len <= sizeof(stackbuf) ? stackbuf : malloc(len);
	if (!p)
		return -ENOMEM;
	protobuf_c_message_pack(msg, p);
	uint32_t l32 = len;
	int r = img_write_raw(w, &l32, 4);
	if (r == 0)
		r = img_write_raw(w, p, len);
	if (p != stackbuf)
		free(p);
	return r;
}

int img_writer_fd(struct img_writer *w)
{
	if (w->sunk)
		return -1; /* every byte must reach the sink too: use img_writer_put */
	(void)writer_flush(w);
	return w->fd;
}

void img_writer_account(struct img_writer *w, const void *buf, size_t len)
{
	fhash_update(&w->h, buf, len);
	w->size += len;
}

uint64_t img_writer_size(const struct img_writer *w)
{
	return w->size;
}

static int dir_add_item(struct img_dir *d, const char *name, uint64_t size, uint64_t hash,
			bool xxh3)
{
	if (d->n_items == d->cap_items) {
		size_t cap = d->cap_items ? d->cap_items * 2 : 32;
		void *n = realloc(d->items, cap * sizeof(*d->items));
		if (!n)
			return -ENOMEM;
		d->items = n;
		d->cap_items = cap;
	}
	struct manifest_item *it = &d->items[d->n_items++];
	snprintf(it->name, sizeof(it->name), "%s", name);
	it->size = size;
	it->hash = hash;
	it->xxh3 = xxh3;
	return 0;
}

int img_writer_close(struct img_writer *w)
{
	uint64_t hash = fhash_digest(&w->h);
	int r = writer_flush(w);
	if (r == 0 && w->fd >= 0 && fsync(w->fd) < 0)
		r = pr_perror("cannot sync image '%s/%s'", w->d->path, w->name);
	if (w->sunk) {
		if (r == 0)
			r = w->d->sink_ops->close(w->d->sink, w->fh, w->size, hash);
		else
			w->d->sink_ops->abort(w->d->sink, w->fh);
		w->sunk = false;
	}
	if (r == 0)
		r = dir_add_item(w->d, w->name, w->size, hash, w->h.xxh3);
	if (w->fd >= 0 && close(w->fd) < 0 && r == 0)
		r = pr_perror("cannot close image '%s/%s'", w->d->path, w->name);
	if (r < 0 && w->fd >= 0)
		(void)unlinkat(w->d->dirfd, w->name, 0);
	w->fd = -1;
	free(w->buf);
	fhash_fini(&w->h);
	free(w);
	return r;
}

void img_writer_abort(struct img_writer *w)
{
	if (!w)
		return;
	if (w->sunk)
		w->d->sink_ops->abort(w->d->sink, w->fh);
	if (w->fd >= 0) {
		close(w->fd);
		(void)unlinkat(w->d->dirfd, w->name, 0);
	}
	free(w->buf);
	fhash_fini(&w->h);
	free(w);
}

/* inventory.img under a temporary name, then renamed: a crash never leaves a half one. */
static int inventory_write(struct img_dir *d, const void *buf, size_t len)
{
	int fd = openat(d->dirfd, "inventory.img.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
			0600);
	if (fd < 0)
		return pr_perror("cannot create '%s/inventory.img'", d->path);
	int r = write_full(fd, buf, len);
	if (r < 0)
		pr_err_ret(r, "cannot write '%s/inventory.img'", d->path);
	else if (fsync(fd) < 0)
		r = pr_perror("cannot sync '%s/inventory.img'", d->path);
	close(fd);
	if (r == 0 && renameat(d->dirfd, "inventory.img.tmp", d->dirfd, "inventory.img") < 0)
		r = pr_perror("cannot rename '%s/inventory.img'", d->path);
	if (r == 0 && fsync(d->dirfd) < 0)
		r = pr_perror("cannot sync images directory '%s'", d->path);
	if (r < 0)
		(void)unlinkat(d->dirfd, "inventory.img.tmp", 0);
	return r;
}

int img_dir_commit(struct img_dir *d, InventoryEntry *inv)
{
	ManifestEntry *ents = calloc(d->n_items ? d->n_items : 1, sizeof(*ents));
	ManifestEntry **ptrs = calloc(d->n_items ? d->n_items : 1, sizeof(*ptrs));
	int r = -ENOMEM;
	if (!ents || !ptrs)
		goto out;
	for (size_t i = 0; i < d->n_items; i++) {
		manifest_entry__init(&ents[i]);
		ents[i].name = d->items[i].name;
		ents[i].size = d->items[i].size;
		if (d->items[i].xxh3) {
			ents[i].has_xxh3 = 1;
			ents[i].xxh3 = d->items[i].hash;
		} else {
			ents[i].xxh64 = d->items[i].hash;
		}
		ptrs[i] = &ents[i];
	}
	inv->n_manifest = d->n_items;
	inv->manifest = ptrs;

	uint8_t *buf;
	size_t len;
	if ((r = img_inventory_encode(inv, &buf, &len)) < 0)
		goto out;
	r = inventory_write(d, buf, len);
	/* The peer commits last: local metadata first, so a round the peer holds always
	 * has its local half (the next pre-dump reads it). */
	if (r == 0 && d->sink_ops) {
		r = d->sink_ops->commit(d->sink, buf, len);
		if (r < 0)
			(void)unlinkat(d->dirfd, "inventory.img", 0);
	}
	free(buf);
	if (r == 0)
		d->committed = true;
out:
	inv->n_manifest = 0;
	inv->manifest = NULL;
	free(ents);
	free(ptrs);
	return r;
}

/* ---- pure codec ---- */

int img_inventory_encode(const InventoryEntry *inv, uint8_t **out, size_t *len)
{
	size_t plen = protobuf_c_message_get_packed_size(&inv->base);
	uint8_t *buf = malloc(4 + 4 + plen + 8);
	if (!buf)
		return -ENOMEM;
	uint32_t magic = IMG_MAGIC_INVENTORY, l32 = plen;
	memcpy(buf, &magic, 4);
	memcpy(buf + 4, &l32, 4);
	protobuf_c_message_pack(&inv->base, buf + 8);
	uint64_t h = XXH64(buf, 8 + plen, 0);
	memcpy(buf + 8 + plen, &h, 8);
	*out = buf;
	*len = 8 + plen + 8;
	return 0;
}

int img_buf_init(struct img_buf *b, const void *data, size_t len, uint32_t magic)
{
	memset(b, 0, sizeof(*b));
	b->data = data;
	b->len = len;
	if (magic == IMG_MAGIC_RAW)
		return 0;
	if (len < 4)
		return -EBADMSG;
	memcpy(&b->magic, data, 4);
	if (b->magic != magic)
		return -EBADMSG;
	b->pos = 4;
	return 0;
}

int img_buf_next(struct img_buf *b, const ProtobufCMessageDescriptor *desc, ProtobufCMessage **msg)
{
	uint32_t len;
	if (b->pos == b->len)
		return 0;
	if (b->len - b->pos < 4)
		return -EBADMSG;
	memcpy(&len, b->data + b->pos, 4);
	if (len > IMG_MAX_RECORD || len > b->len - b->pos - 4)
		return -EBADMSG;
	ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, len, b->data + b->pos + 4);
	if (!m)
		return -EBADMSG;
	b->pos += 4 + len;
	*msg = m;
	return 1;
}

int img_buf_one(struct img_buf *b, const ProtobufCMessageDescriptor *desc, ProtobufCMessage **msg)
{
	int r = img_buf_next(b, desc, msg);
	if (r <= 0)
		return -EBADMSG;
	if (b->pos != b->len) {
		protobuf_c_message_free_unpacked(*msg, NULL);
		*msg = NULL;
		return -EBADMSG;
	}
	return 0;
}

/* ---- verified readers ---- */

int img_load(struct img_dir *d, const char *name, uint32_t magic, struct img_buf **out)
{
	const ManifestEntry *me = manifest_find(d, name);
	*out = NULL;
	if (!me)
		return -ENOENT;
	if (me->size > IMG_MAX_META) {
		pr_err("image '%s/%s' is too large (%llu bytes)", d->path, name,
		       (unsigned long long)me->size);
		return -EBADMSG;
	}
	int fd = openat(d->dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		/* Listed but gone: corrupt directory, never "optional and absent" (-ENOENT). */
		int e = errno;
		e = e > 0 ? e : EIO;
		pr_err("image '%s/%s' listed in the inventory is missing: %s", d->path, name,
		       strerror(e));
		return e == ENOENT ? -EBADMSG : -e;
	}
	struct img_buf *b = calloc(1, sizeof(*b));
	uint8_t *data = malloc(me->size ? me->size : 1);
	int r = 0;
	if (!b || !data) {
		r = -ENOMEM;
		goto fail;
	}
	ssize_t n = read_full(fd, data, me->size);
	if (n < 0) {
		r = pr_err_ret((int)n, "cannot read image '%s/%s'", d->path, name);
		goto fail;
	}
	char extra;
	if ((uint64_t)n != me->size || read(fd, &extra, 1) != 0) {
		pr_err("image '%s/%s' is truncated or has the wrong size (expected %llu bytes)",
		       d->path, name, (unsigned long long)me->size);
		r = -EBADMSG;
		goto fail;
	}
	if (!manifest_hash_ok(me, data, me->size)) {
		pr_err("image '%s/%s' is corrupt: checksum mismatch", d->path, name);
		r = -EBADMSG;
		goto fail;
	}
	if (img_buf_init(b, data, me->size, magic) < 0) {
		pr_err("image '%s/%s' has a wrong magic", d->path, name);
		r = -EBADMSG;
		goto fail;
	}
	b->owned = data;
	close(fd);
	*out = b;
	return 0;
fail:
	close(fd);
	free(data);
	free(b);
	return r;
}

void img_buf_free(struct img_buf *b)
{
	if (!b)
		return;
	free(b->owned);
	free(b);
}

int img_read_one(struct img_dir *d, const char *name, uint32_t magic,
		 const ProtobufCMessageDescriptor *desc, ProtobufCMessage **msg)
{
	struct img_buf *b = NULL;
	int r = img_load(d, name, magic, &b);
	if (r < 0)
		return r;
	if (!b) /* never: img_load sets *out when it returns 0 */
		return -EIO;
	r = img_buf_one(b, desc, msg);
	if (r < 0)
		pr_err("image '%s/%s' is corrupt: cannot decode its record", d->path, name);
	img_buf_free(b);
	return r;
}

int img_stream_open(struct img_dir *d, const char *name, struct img_stream **out)
{
	const ManifestEntry *me = manifest_find(d, name);
	if (!me) {
		pr_err("image '%s/%s' is not listed in the inventory", d->path, name);
		return -ENOENT;
	}
	struct img_stream *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->fd = -1;
	if (fhash_init(&s->h, me->has_xxh3) < 0) {
		fhash_fini(&s->h);
		free(s);
		return -ENOMEM;
	}
	s->fd = openat(d->dirfd, name, O_RDONLY | O_CLOEXEC);
	if (s->fd < 0) {
		int e = errno;
		e = e > 0 ? e : EIO;
		pr_err("image '%s/%s' listed in the inventory is missing: %s", d->path, name,
		       strerror(e));
		int r = e == ENOENT ? -EBADMSG : -e;
		fhash_fini(&s->h);
		free(s);
		return r;
	}
	struct stat st;
	if (fstat(s->fd, &st) == 0 && (uint64_t)st.st_size != me->size) {
		pr_err("image '%s/%s' is truncated or has the wrong size (%lld, expected %llu "
		       "bytes)",
		       d->path, name, (long long)st.st_size, (unsigned long long)me->size);
		img_stream_free(s);
		return -EBADMSG;
	}
	(void)posix_fadvise(s->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->size = me->size;
	s->want_hash = me->has_xxh3 ? me->xxh3 : me->xxh64;
	*out = s;
	return 0;
}

int img_stream_read(struct img_stream *s, void *buf, size_t len)
{
	if (len > s->size - s->pos) {
		pr_err("image '%s' is shorter than its pagemap says", s->name);
		return -EBADMSG;
	}
	ssize_t n = read_full(s->fd, buf, len);
	if (n < 0)
		return pr_err_ret((int)n, "cannot read image '%s'", s->name);
	if ((size_t)n != len) {
		pr_err("image '%s' is truncated", s->name);
		return -EBADMSG;
	}
	fhash_update(&s->h, buf, len);
	s->pos += len;
	return 0;
}

uint64_t img_stream_left(const struct img_stream *s)
{
	return s->size - s->pos;
}

int img_stream_fd(const struct img_stream *s)
{
	return s->fd;
}

int img_stream_finish(struct img_stream *s)
{
	int r = 0;
	if (s->pos != s->size) {
		pr_err("image '%s' has %llu bytes more than its pagemap describes", s->name,
		       (unsigned long long)(s->size - s->pos));
		r = -EBADMSG;
	} else if (fhash_digest(&s->h) != s->want_hash) {
		pr_err("image '%s' is corrupt: checksum mismatch", s->name);
		r = -EBADMSG;
	}
	img_stream_free(s);
	return r;
}

void img_stream_free(struct img_stream *s)
{
	if (!s)
		return;
	if (s->fd >= 0)
		close(s->fd);
	fhash_fini(&s->h);
	free(s);
}
