/*
 * test_img: unit tests of src/img (image directory, framing, manifest, verified readers,
 * pure decoder). No root needed. Each test runs in a forked child, so a crash fails that
 * test only. Exit 0 all passed, 1 any failed.
 *
 * The corruption tests are exhaustive on small files: every truncation length, every bit
 * flip, must be rejected with -EBADMSG (never accepted, never a crash).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/log.h"
#include "common/util.h"
#include "img/img.h"
#include "core.pb-c.h"
#include "mm.pb-c.h"
#include "pagemap.pb-c.h"
#include "pstree.pb-c.h"

#define CHECK(cond) do { if (!(cond)) { \
	fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); exit(1); } } while (0)
#define CHECK_EQ(a, b) do { long long __a = (long long)(a), __b = (long long)(b); if (__a != __b) { \
	fprintf(stderr, "FAIL %s:%d: %s == %lld, expected %s == %lld\n", __FILE__, __LINE__, \
		#a, __a, #b, __b); exit(1); } } while (0)

static char tmpdir[256];

/* ---- fixtures ---- */

static void path_of(char *buf, size_t n, const char *dir, const char *name)
{
	snprintf(buf, n, "%s/%s", dir, name);
}

static void make_dir(const char *sub, char *out, size_t n)
{
	snprintf(out, n, "%s/%s", tmpdir, sub);
}

static void fill_pstree(PstreeEntry *e, uint32_t *threads, uint32_t pid)
{
	pstree_entry__init(e);
	e->pid = pid;
	e->ppid = pid > 100 ? 100 : 0;
	e->pgid = 100;
	e->sid = 7;
	threads[0] = pid;
	threads[1] = pid + 1;
	e->threads = threads;
	e->n_threads = 2;
}

struct core_fix {
	CoreEntry core;
	ThreadCoreEntry th;
	UserRegsEntry regs;
	TaskCoreEntry task;
	CredsEntry creds;
	uint8_t xsave[832];
};

static void fill_core(struct core_fix *c)
{
	core_entry__init(&c->core);
	thread_core_entry__init(&c->th);
	user_regs_entry__init(&c->regs);
	task_core_entry__init(&c->task);
	creds_entry__init(&c->creds);
	c->regs.rip = 0x7f0000001234ull;
	c->regs.sp = 0x7ffd00000000ull;
	c->regs.rax = (uint64_t)-4;
	for (size_t i = 0; i < sizeof(c->xsave); i++)
		c->xsave[i] = (uint8_t)(i * 7);
	c->th.tid = 101;
	c->th.regs = &c->regs;
	c->th.xsave.data = c->xsave;
	c->th.xsave.len = sizeof(c->xsave);
	c->th.sigmask = 1ull << 9;
	c->th.comm = "worker";
	c->task.comm = "demo";
	c->task.cwd = "/tmp";
	c->task.root = "/";
	c->task.creds = &c->creds;
	c->creds.cap_eff = 0x1ffffffffffull;
	c->core.thread = &c->th;
	c->core.task = &c->task;
}

static int write_one(struct img_dir *d, const char *name, uint32_t magic,
		     const ProtobufCMessage *const *msgs, size_t n)
{
	struct img_writer *w;
	int r = img_writer_open(d, name, magic, &w);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		r = img_write_pb(w, msgs[i]);
		if (r < 0) {
			img_writer_abort(w);
			return r;
		}
	}
	return img_writer_close(w);
}

/* A complete directory: pstree (3 records), core, mm, pagemap (head + 2), pages (3). */
static void write_sample_dir(const char *path)
{
	struct img_dir *d;
	PstreeEntry ps[3];
	uint32_t th[3][2];
	struct core_fix c;
	MmEntry mm;
	VmaEntry vma[2], *vmas[2] = { &vma[0], &vma[1] };
	PagemapHead ph;
	PagemapEntry pe[2];
	uint8_t page[4096];

	CHECK_EQ(img_dir_create(path, &d), 0);
	for (int i = 0; i < 3; i++)
		fill_pstree(&ps[i], th[i], 100 + i);
	const ProtobufCMessage *pm[] = { &ps[0].base, &ps[1].base, &ps[2].base };
	CHECK_EQ(write_one(d, "pstree.img", IMG_MAGIC_PSTREE, pm, 3), 0);

	fill_core(&c);
	const ProtobufCMessage *cm[] = { &c.core.base };
	CHECK_EQ(write_one(d, "core-101.img", IMG_MAGIC_CORE, cm, 1), 0);

	mm_entry__init(&mm);
	mm.start_code = 0x400000;
	mm.end_code = 0x401000;
	mm.exe_path = "/bin/true";
	for (int i = 0; i < 2; i++) {
		vma_entry__init(&vma[i]);
		vma[i].start = 0x10000 * (i + 1);
		vma[i].end = vma[i].start + 0x2000;
		vma[i].kind = i ? VMA_KIND__VMA_FILE : VMA_KIND__VMA_ANON;
		vma[i].path = i ? "/lib/x.so" : NULL;
	}
	mm.vmas = vmas;
	mm.n_vmas = 2;
	const ProtobufCMessage *mmm[] = { &mm.base };
	CHECK_EQ(write_one(d, "mm-100.img", IMG_MAGIC_MM, mmm, 1), 0);

	pagemap_head__init(&ph);
	ph.pages_id = 1;
	ph.nr_pages = 3;
	for (int i = 0; i < 2; i++) {
		pagemap_entry__init(&pe[i]);
		pe[i].vaddr = 0x10000 + i * 0x10000;
		pe[i].nr_pages = i ? 1 : 2;
		pe[i].flags = PE_PRESENT;
	}
	const ProtobufCMessage *gm[] = { &ph.base, &pe[0].base, &pe[1].base };
	CHECK_EQ(write_one(d, "pagemap-100.img", IMG_MAGIC_PAGEMAP, gm, 3), 0);

	struct img_writer *w;
	CHECK_EQ(img_writer_open(d, "pages-1.img", IMG_MAGIC_RAW, &w), 0);
	for (int i = 0; i < 3; i++) {
		memset(page, i == 1 ? 0 : 0xa0 + i, sizeof(page));
		CHECK_EQ(img_write_raw(w, page, sizeof(page)), 0);
	}
	CHECK_EQ(img_writer_size(w), 3 * 4096);
	CHECK_EQ(img_writer_close(w), 0);

	InventoryEntry inv;
	img_inventory_init(&inv);
	inv.root_pid = 100;
	inv.kind = IMG_KIND_DUMP;
	CHECK_EQ(img_dir_commit(d, &inv), 0);
	img_dir_free(d);
}

static bool msg_equal(const ProtobufCMessage *a, const ProtobufCMessage *b)
{
	size_t la = protobuf_c_message_get_packed_size(a);
	size_t lb = protobuf_c_message_get_packed_size(b);
	if (la != lb || a->descriptor != b->descriptor)
		return false;
	uint8_t *pa = malloc(la + 1), *pb = malloc(lb + 1);
	CHECK(pa && pb);
	protobuf_c_message_pack(a, pa);
	protobuf_c_message_pack(b, pb);
	bool eq = !memcmp(pa, pb, la);
	free(pa);
	free(pb);
	return eq;
}

static void read_whole(const char *path, uint8_t **data, size_t *len)
{
	char *buf;
	CHECK_EQ(read_file(path, &buf, len, 1 << 24), 0);
	*data = (uint8_t *)buf;
}

static void write_whole(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0);
	CHECK_EQ(write_full(fd, data, len), 0);
	close(fd);
}

/* ---- tests ---- */

static void test_roundtrip(void)
{
	char dir[512];
	struct img_dir *d;
	make_dir("rt", dir, sizeof(dir));
	write_sample_dir(dir);

	CHECK_EQ(img_dir_open(dir, &d), 0);
	const InventoryEntry *inv = img_dir_inventory(d);
	CHECK_EQ(inv->img_version, IMG_VERSION);
	CHECK_EQ(inv->root_pid, 100);
	CHECK_EQ(inv->n_manifest, 5);
	CHECK(img_dir_has(d, "pstree.img") && img_dir_has(d, "pages-1.img"));
	CHECK(!img_dir_has(d, "inventory.img") && !img_dir_has(d, "core-1.img"));

	struct img_buf *b;
	ProtobufCMessage *m;
	PstreeEntry ps;
	uint32_t th[2];
	CHECK_EQ(img_load(d, "pstree.img", IMG_MAGIC_PSTREE, &b), 0);
	for (int i = 0; i < 3; i++) {
		fill_pstree(&ps, th, 100 + i);
		CHECK_EQ(img_buf_next(b, &pstree_entry__descriptor, &m), 1);
		CHECK(msg_equal(m, &ps.base));
		CHECK_EQ(((PstreeEntry *)m)->threads[1], 101 + i);
		protobuf_c_message_free_unpacked(m, NULL);
	}
	CHECK_EQ(img_buf_next(b, &pstree_entry__descriptor, &m), 0);
	img_buf_free(b);

	struct core_fix c;
	fill_core(&c);
	CHECK_EQ(img_read_one(d, "core-101.img", IMG_MAGIC_CORE, &core_entry__descriptor, &m), 0);
	CHECK(msg_equal(m, &c.core.base));
	CHECK_EQ(((CoreEntry *)m)->thread->regs->rip, 0x7f0000001234ull);
	protobuf_c_message_free_unpacked(m, NULL);

	CHECK_EQ(img_read_one(d, "mm-100.img", IMG_MAGIC_MM, &mm_entry__descriptor, &m), 0);
	CHECK_EQ(((MmEntry *)m)->n_vmas, 2);
	CHECK(!strcmp(((MmEntry *)m)->vmas[1]->path, "/lib/x.so"));
	protobuf_c_message_free_unpacked(m, NULL);

	CHECK_EQ(img_load(d, "pagemap-100.img", IMG_MAGIC_PAGEMAP, &b), 0);
	CHECK_EQ(img_buf_next(b, &pagemap_head__descriptor, &m), 1);
	CHECK_EQ(((PagemapHead *)m)->nr_pages, 3);
	protobuf_c_message_free_unpacked(m, NULL);
	for (int i = 0; i < 2; i++) {
		CHECK_EQ(img_buf_next(b, &pagemap_entry__descriptor, &m), 1);
		CHECK_EQ(((PagemapEntry *)m)->nr_pages, i ? 1 : 2);
		protobuf_c_message_free_unpacked(m, NULL);
	}
	CHECK_EQ(img_buf_next(b, &pagemap_entry__descriptor, &m), 0);
	img_buf_free(b);

	struct img_stream *s;
	uint8_t page[4096];
	CHECK_EQ(img_stream_open(d, "pages-1.img", &s), 0);
	CHECK_EQ(img_stream_left(s), 3 * 4096);
	for (int i = 0; i < 3; i++) {
		CHECK_EQ(img_stream_read(s, page, sizeof(page)), 0);
		CHECK_EQ(page[0], i == 1 ? 0 : 0xa0 + i);
		CHECK(i == 1 ? is_zero(page, sizeof(page)) : page[4095] == 0xa0 + i);
	}
	CHECK_EQ(img_stream_finish(s), 0);
	CHECK_EQ(img_load(d, "nothere.img", IMG_MAGIC_CORE, &b), -ENOENT);
	img_dir_free(d);
}

/* Every truncation of a small image: rejected through the manifest, and by the pure
 * decoder unless the cut falls exactly on a record boundary. */
static void test_truncation(void)
{
	char dir[512], file[600];
	uint8_t *data;
	size_t len;
	make_dir("trunc", dir, sizeof(dir));
	write_sample_dir(dir);
	path_of(file, sizeof(file), dir, "pstree.img");
	read_whole(file, &data, &len);
	CHECK(len > 20);

	size_t boundaries[8], nb = 0, pos = 4;
	while (pos < len && nb < 8) {
		boundaries[nb++] = pos;
		uint32_t l;
		memcpy(&l, data + pos, 4);
		pos += 4 + l;
	}
	CHECK_EQ(pos, len);
	for (size_t cut = 0; cut < len; cut++) {
		struct img_buf b;
		ProtobufCMessage *m;
		int r = img_buf_init(&b, data, cut, IMG_MAGIC_PSTREE), n = 0;
		while (r == 0 && (r = img_buf_next(&b, &pstree_entry__descriptor, &m)) == 1) {
			protobuf_c_message_free_unpacked(m, NULL);
			n++;
			r = 0;
			if (b.pos == b.len)
				break;
		}
		bool boundary = false;
		for (size_t i = 0; i < nb; i++)
			boundary |= boundaries[i] == cut;
		if (boundary) {
			CHECK_EQ(r, 0);
			CHECK(n < 3);
		} else {
			CHECK_EQ(r, -EBADMSG);
		}

		struct img_dir *d;
		struct img_buf *lb;
		write_whole(file, data, cut);
		CHECK_EQ(img_dir_open(dir, &d), 0);
		CHECK_EQ(img_load(d, "pstree.img", IMG_MAGIC_PSTREE, &lb), -EBADMSG);
		img_dir_free(d);
	}

	/* the inventory itself at every length */
	uint8_t *inv;
	size_t ilen;
	path_of(file, sizeof(file), dir, "inventory.img");
	read_whole(file, &inv, &ilen);
	for (size_t cut = 0; cut < ilen; cut++) {
		InventoryEntry *e;
		CHECK_EQ(img_inventory_decode(inv, cut, &e), -EBADMSG);
	}
	free(inv);
	free(data);
}

/* Every single-bit flip of a metadata image and of the inventory is detected. */
static void test_bitflips(void)
{
	char dir[512], file[600];
	uint8_t *data;
	size_t len;
	struct img_dir *d;
	struct img_buf *b;
	make_dir("flip", dir, sizeof(dir));
	write_sample_dir(dir);

	path_of(file, sizeof(file), dir, "pagemap-100.img");
	read_whole(file, &data, &len);
	for (size_t bit = 0; bit < len * 8; bit++) {
		data[bit / 8] ^= 1u << (bit % 8);
		write_whole(file, data, len);
		data[bit / 8] ^= 1u << (bit % 8);
		CHECK_EQ(img_dir_open(dir, &d), 0);
		CHECK_EQ(img_load(d, "pagemap-100.img", IMG_MAGIC_PAGEMAP, &b), -EBADMSG);
		img_dir_free(d);
	}
	write_whole(file, data, len);
	free(data);

	path_of(file, sizeof(file), dir, "inventory.img");
	read_whole(file, &data, &len);
	for (size_t bit = 0; bit < len * 8; bit++) {
		data[bit / 8] ^= 1u << (bit % 8);
		InventoryEntry *e;
		CHECK_EQ(img_inventory_decode(data, len, &e), -EBADMSG);
		if (bit % 7 == 0) {	/* through the directory too, on a sample */
			write_whole(file, data, len);
			CHECK(img_dir_open(dir, &d) < 0);
		}
		data[bit / 8] ^= 1u << (bit % 8);
	}
	write_whole(file, data, len);
	CHECK_EQ(img_dir_open(dir, &d), 0);
	img_dir_free(d);
	free(data);
}

/* A record length of 2^32-1, and a manifest size of 2^40: rejected, not allocated
 * (the address space is limited so an allocation attempt would show as -ENOMEM). */
static void test_oversized(void)
{
	uint8_t buf[64] = { 0 };
	uint32_t magic = IMG_MAGIC_CORE, l = 0xffffffffu;
	struct img_buf b;
	ProtobufCMessage *m;
	memcpy(buf, &magic, 4);
	memcpy(buf + 4, &l, 4);
	CHECK_EQ(img_buf_init(&b, buf, sizeof(buf), IMG_MAGIC_CORE), 0);
	CHECK_EQ(img_buf_next(&b, &core_entry__descriptor, &m), -EBADMSG);
	l = IMG_MAX_RECORD + 1;
	memcpy(buf + 4, &l, 4);
	CHECK_EQ(img_buf_init(&b, buf, sizeof(buf), IMG_MAGIC_CORE), 0);
	CHECK_EQ(img_buf_next(&b, &core_entry__descriptor, &m), -EBADMSG);

	/* hand-made inventory whose manifest claims a 1 TiB file */
	char dir[512], file[600];
	make_dir("big", dir, sizeof(dir));
	CHECK_EQ(mkdir_p(dir, 0700), 0);
	path_of(file, sizeof(file), dir, "core-1.img");
	write_whole(file, buf, 8);
	InventoryEntry inv;
	ManifestEntry me, *mp = &me;
	img_inventory_init(&inv);
	manifest_entry__init(&me);
	me.name = "core-1.img";
	me.size = 1ull << 40;
	inv.manifest = &mp;
	inv.n_manifest = 1;
	uint8_t *out;
	size_t olen;
	CHECK_EQ(img_inventory_encode(&inv, &out, &olen), 0);
	path_of(file, sizeof(file), dir, "inventory.img");
	write_whole(file, out, olen);
	free(out);

#ifndef __SANITIZE_ADDRESS__	/* ASan reserves terabytes of address space */
	struct rlimit rl = { 512ul << 20, 512ul << 20 };
	CHECK_EQ(setrlimit(RLIMIT_AS, &rl), 0);
#endif
	struct img_dir *d;
	struct img_buf *lb;
	CHECK_EQ(img_dir_open(dir, &d), 0);
	CHECK_EQ(img_load(d, "core-1.img", IMG_MAGIC_CORE, &lb), -EBADMSG);
	img_dir_free(d);
}

static void test_wrong_magic(void)
{
	char dir[512], file[600];
	struct img_dir *d;
	struct img_buf *b;
	uint8_t four[4] = { 'F', 'R', 'Y', 'Z' };
	make_dir("magic", dir, sizeof(dir));
	write_sample_dir(dir);
	CHECK_EQ(img_dir_open(dir, &d), 0);
	CHECK_EQ(img_load(d, "core-101.img", IMG_MAGIC_PSTREE, &b), -EBADMSG);
	CHECK_EQ(img_load(d, "core-101.img", IMG_MAGIC_CORE, &b), 0);
	img_buf_free(b);
	img_dir_free(d);

	struct img_buf pb;
	CHECK_EQ(img_buf_init(&pb, four, 4, IMG_MAGIC_CORE), -EBADMSG);
	CHECK_EQ(img_buf_init(&pb, four, 3, IMG_MAGIC_CORE), -EBADMSG);
	/* an inventory with another file's magic */
	path_of(file, sizeof(file), dir, "inventory.img");
	uint8_t *data;
	size_t len;
	read_whole(file, &data, &len);
	memcpy(data, four, 4);
	write_whole(file, data, len);
	free(data);
	CHECK_EQ(img_dir_open(dir, &d), -EBADMSG);
}

static void test_missing_and_extra(void)
{
	char dir[512], file[600];
	struct img_dir *d;
	struct img_buf *b;
	struct img_stream *s;
	make_dir("missing", dir, sizeof(dir));
	write_sample_dir(dir);

	path_of(file, sizeof(file), dir, "mm-100.img");
	CHECK_EQ(unlink(file), 0);
	CHECK_EQ(img_dir_open(dir, &d), 0);
	CHECK(img_dir_has(d, "mm-100.img"));
	CHECK(img_load(d, "mm-100.img", IMG_MAGIC_MM, &b) < 0);

	/* one extra byte at the end of a metadata file and of the pages file */
	path_of(file, sizeof(file), dir, "core-101.img");
	int fd = open(file, O_WRONLY | O_APPEND);
	CHECK(fd >= 0);
	CHECK_EQ(write_full(fd, "x", 1), 0);
	close(fd);
	CHECK_EQ(img_load(d, "core-101.img", IMG_MAGIC_CORE, &b), -EBADMSG);
	path_of(file, sizeof(file), dir, "pages-1.img");
	fd = open(file, O_WRONLY | O_APPEND);
	CHECK(fd >= 0);
	CHECK_EQ(write_full(fd, "", 1), 0);
	close(fd);
	CHECK_EQ(img_stream_open(d, "pages-1.img", &s), -EBADMSG);
	img_dir_free(d);

	/* a directory without inventory is incomplete */
	path_of(file, sizeof(file), dir, "inventory.img");
	CHECK_EQ(unlink(file), 0);
	CHECK_EQ(img_dir_open(dir, &d), -ENOENT);
}

static void test_version(void)
{
	char dir[512];
	struct img_dir *d;
	InventoryEntry inv;
	make_dir("version", dir, sizeof(dir));
	CHECK_EQ(img_dir_create(dir, &d), 0);
	img_inventory_init(&inv);
	inv.img_version = IMG_VERSION + 1;
	CHECK_EQ(img_dir_commit(d, &inv), 0);
	img_dir_free(d);
	CHECK_EQ(img_dir_open(dir, &d), -EPROTONOSUPPORT);
}

static void test_create_rules(void)
{
	char dir[512];
	struct img_dir *d;
	struct img_writer *w;
	make_dir("complete", dir, sizeof(dir));
	write_sample_dir(dir);
	CHECK_EQ(img_dir_create(dir, &d), -EEXIST);

	make_dir("names/deep/er", dir, sizeof(dir));
	CHECK_EQ(img_dir_create(dir, &d), 0);
	CHECK_EQ(img_writer_open(d, "a/b.img", IMG_MAGIC_CORE, &w), -EINVAL);
	CHECK_EQ(img_writer_open(d, "../x.img", IMG_MAGIC_CORE, &w), -EINVAL);
	CHECK_EQ(img_writer_open(d, "..", IMG_MAGIC_CORE, &w), -EINVAL);
	CHECK_EQ(img_writer_open(d, "", IMG_MAGIC_CORE, &w), -EINVAL);
	char longname[80];
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = 0;
	CHECK_EQ(img_writer_open(d, longname, IMG_MAGIC_CORE, &w), -EINVAL);
	/* the same name twice: O_EXCL */
	CHECK_EQ(img_writer_open(d, "core-1.img", IMG_MAGIC_CORE, &w), 0);
	CHECK_EQ(img_writer_close(w), 0);
	CHECK_EQ(img_writer_open(d, "core-1.img", IMG_MAGIC_CORE, &w), -EEXIST);
	/* an aborted writer leaves no file and no manifest entry */
	CHECK_EQ(img_writer_open(d, "core-2.img", IMG_MAGIC_CORE, &w), 0);
	img_writer_abort(w);
	CHECK(faccessat(img_dir_fd(d), "core-2.img", F_OK, 0) < 0);
	InventoryEntry inv;
	img_inventory_init(&inv);
	CHECK_EQ(img_dir_commit(d, &inv), 0);
	img_dir_free(d);
	CHECK_EQ(img_dir_open(dir, &d), 0);
	CHECK(img_dir_has(d, "core-1.img") && !img_dir_has(d, "core-2.img"));
	CHECK_EQ(img_dir_inventory(d)->n_manifest, 1);
	img_dir_free(d);

	char buf[64];
	CHECK(!strcmp(img_name(buf, "core-%d.img", 42), "core-42.img"));
}

/* The stream reader: same-size corruption is found by the hash at finish; short
 * reads and reads past the end are refused. */
static void test_stream_hash(void)
{
	char dir[512], file[600];
	struct img_dir *d;
	struct img_stream *s;
	uint8_t page[4096];
	make_dir("stream", dir, sizeof(dir));
	write_sample_dir(dir);

	CHECK_EQ(img_dir_open(dir, &d), 0);
	CHECK_EQ(img_stream_open(d, "pages-1.img", &s), 0);
	CHECK_EQ(img_stream_read(s, page, 4096), 0);
	CHECK_EQ(img_stream_finish(s), -EBADMSG);	/* not all read */
	CHECK_EQ(img_stream_open(d, "pages-1.img", &s), 0);
	uint8_t *big = malloc(4 * 4096);
	CHECK(big);
	CHECK_EQ(img_stream_read(s, big, 4 * 4096), -EBADMSG);	/* past the end */
	img_stream_free(s);
	free(big);
	CHECK_EQ(img_stream_open(d, "absent.img", &s), -ENOENT);

	path_of(file, sizeof(file), dir, "pages-1.img");
	int fd = open(file, O_WRONLY);
	CHECK(fd >= 0);
	CHECK_EQ(pwrite_full(fd, "\x01", 1, 4096 + 100), 0);	/* inside the zero page */
	close(fd);
	CHECK_EQ(img_stream_open(d, "pages-1.img", &s), 0);
	for (int i = 0; i < 3; i++)
		CHECK_EQ(img_stream_read(s, page, sizeof(page)), 0);
	CHECK_EQ(img_stream_finish(s), -EBADMSG);
	img_dir_free(d);
}

/* Encode INV with its XXH64 trailer into DIR/inventory.img (hand-made inventories). */
static void inventory_put(const char *dir, InventoryEntry *inv)
{
	char file[600];
	uint8_t *out;
	size_t olen;
	CHECK_EQ(img_inventory_encode(inv, &out, &olen), 0);
	path_of(file, sizeof(file), dir, "inventory.img");
	write_whole(file, out, olen);
	free(out);
}

/* Read the whole pages-1.img of DIR through the stream reader: img_stream_finish's code. */
static int stream_all(const char *dir)
{
	struct img_dir *d;
	struct img_stream *s;
	uint8_t page[4096];
	CHECK_EQ(img_dir_open(dir, &d), 0);
	CHECK_EQ(img_stream_open(d, "pages-1.img", &s), 0);
	while (img_stream_left(s))
		CHECK_EQ(img_stream_read(s, page, sizeof(page)), 0);
	int r = img_stream_finish(s);
	img_dir_free(d);
	return r;
}

/* Which hash each manifest entry carries: local page data XXH3 (xxh64 0), every other
 * file XXH64; an entry in the older form (XXH64 only, as every ferry wrote before xxh3)
 * still verifies; a hash of the wrong kind is refused. */
static void test_hash_kinds(void)
{
	char dir[512], file[600];
	uint8_t *data, *pages;
	size_t len, plen;
	make_dir("kinds", dir, sizeof(dir));
	write_sample_dir(dir);
	path_of(file, sizeof(file), dir, "inventory.img");
	read_whole(file, &data, &len);
	InventoryEntry *inv;
	CHECK_EQ(img_inventory_decode(data, len, &inv), 0);
	free(data);
	ManifestEntry *pe = NULL;
	for (size_t i = 0; i < inv->n_manifest; i++) {
		ManifestEntry *me = inv->manifest[i];
		path_of(file, sizeof(file), dir, me->name);
		read_whole(file, &data, &len);
		if (!strcmp(me->name, "pages-1.img")) {
			pe = me;
			CHECK(me->has_xxh3);
			CHECK_EQ(me->xxh3, XXH3_64bits(data, len));
			CHECK_EQ(me->xxh64, 0);
		} else {
			CHECK(!me->has_xxh3);
			CHECK_EQ(me->xxh64, XXH64(data, len, 0));
		}
		free(data);
	}
	CHECK(pe);
	CHECK_EQ(stream_all(dir), 0);

	path_of(file, sizeof(file), dir, "pages-1.img");
	read_whole(file, &pages, &plen);
	uint64_t x3 = pe->xxh3, x64 = XXH64(pages, plen, 0);
	free(pages);
	/* the older form: XXH64 only */
	pe->has_xxh3 = 0;
	pe->xxh64 = x64;
	inventory_put(dir, inv);
	CHECK_EQ(stream_all(dir), 0);
	/* a claimed XXH64 that is in fact the XXH3 value, and the reverse */
	pe->xxh64 = x3;
	inventory_put(dir, inv);
	CHECK_EQ(stream_all(dir), -EBADMSG);
	pe->has_xxh3 = 1;
	pe->xxh3 = x64;
	pe->xxh64 = 0;
	inventory_put(dir, inv);
	CHECK_EQ(stream_all(dir), -EBADMSG);
	/* XXH3 form again, then one flipped bit in the data */
	pe->xxh3 = x3;
	inventory_put(dir, inv);
	CHECK_EQ(stream_all(dir), 0);
	int fd = open(file, O_WRONLY);
	CHECK(fd >= 0);
	CHECK_EQ(pwrite_full(fd, "\xa4", 1, 2 * 4096 + 7), 0); /* 0xa2 ^ 0x06 */
	close(fd);
	CHECK_EQ(stream_all(dir), -EBADMSG);
	inventory_entry__free_unpacked(inv, NULL);
}

/* A sink that keeps what it is told (test_sink_hash). */
struct rec_sink {
	uint64_t close_hash, close_size;
	int closes;
	uint8_t *inv;
	size_t inv_len;
};
static int rs_begin(void *s, const char *p) { (void)s; (void)p; return 0; }
static int rs_open(void *s, const char *n, uint32_t m, void **fh)
{
	(void)n; (void)m;
	*fh = s;
	return 0;
}
static int rs_write(void *s, void *fh, const void *b, size_t l)
{
	(void)s; (void)fh; (void)b; (void)l;
	return 0;
}
static int rs_close(void *s, void *fh, uint64_t size, uint64_t hash)
{
	struct rec_sink *r = s;
	(void)fh;
	r->close_hash = hash;
	r->close_size = size;
	r->closes++;
	return 0;
}
static void rs_abort(void *s, void *fh) { (void)s; (void)fh; }
static int rs_commit(void *s, const void *inv, size_t len)
{
	struct rec_sink *r = s;
	r->inv = malloc(len);
	CHECK(r->inv);
	memcpy(r->inv, inv, len);
	r->inv_len = len;
	return 0;
}
static void rs_discard(void *s) { (void)s; }

/* With a sink (the page server verifies XXH64), page data keeps XXH64 everywhere: the
 * close hash and the manifest the peer receives. */
static void test_sink_hash(void)
{
	static const struct img_sink_ops ops = { rs_begin, rs_open, rs_write, rs_close,
						 rs_abort, rs_commit, rs_discard };
	struct rec_sink rs = { 0 };
	char dir[512];
	uint8_t page[3 * 4096];
	struct img_dir *d;
	struct img_writer *w;
	make_dir("sink", dir, sizeof(dir));
	for (size_t i = 0; i < sizeof(page); i++)
		page[i] = (uint8_t)(i * 7 + 1);
	img_set_sink(&ops, &rs);
	CHECK_EQ(img_dir_create(dir, &d), 0);
	CHECK_EQ(img_writer_open(d, "pages-1.img", IMG_MAGIC_RAW, &w), 0);
	CHECK_EQ(img_writer_fd(w), -1);
	img_writer_account(w, page, sizeof(page));
	CHECK_EQ(img_writer_put(w, page, sizeof(page)), 0);
	CHECK_EQ(img_writer_close(w), 0);
	CHECK_EQ(rs.closes, 1);
	CHECK_EQ(rs.close_size, sizeof(page));
	CHECK_EQ(rs.close_hash, XXH64(page, sizeof(page), 0));
	InventoryEntry inv, *got;
	img_inventory_init(&inv);
	inv.root_pid = 1;
	CHECK_EQ(img_dir_commit(d, &inv), 0);
	img_dir_free(d);
	img_set_sink(NULL, NULL);
	CHECK_EQ(img_inventory_decode(rs.inv, rs.inv_len, &got), 0);
	CHECK_EQ(got->n_manifest, 1);
	CHECK(!got->manifest[0]->has_xxh3);
	CHECK_EQ(got->manifest[0]->xxh64, XXH64(page, sizeof(page), 0));
	inventory_entry__free_unpacked(got, NULL);
	free(rs.inv);
}

static void test_buf_one(void)
{
	uint8_t buf[256];
	size_t n = 0;
	uint32_t magic = IMG_MAGIC_PSTREE;
	PstreeEntry e;
	uint32_t th[2];
	fill_pstree(&e, th, 5);
	memcpy(buf, &magic, 4);
	n = 4;
	for (int i = 0; i < 2; i++) {
		uint32_t l = protobuf_c_message_get_packed_size(&e.base);
		memcpy(buf + n, &l, 4);
		protobuf_c_message_pack(&e.base, buf + n + 4);
		n += 4 + l;
	}
	struct img_buf b;
	ProtobufCMessage *m;
	CHECK_EQ(img_buf_init(&b, buf, n, IMG_MAGIC_PSTREE), 0);
	CHECK_EQ(img_buf_one(&b, &pstree_entry__descriptor, &m), -EBADMSG);	/* two records */
	CHECK_EQ(img_buf_init(&b, buf, 4, IMG_MAGIC_PSTREE), 0);
	CHECK_EQ(img_buf_one(&b, &pstree_entry__descriptor, &m), -EBADMSG);	/* none */
	CHECK_EQ(img_buf_init(&b, buf, n, IMG_MAGIC_PSTREE), 0);
	CHECK_EQ(img_buf_next(&b, &pstree_entry__descriptor, &m), 1);
	CHECK(msg_equal(m, &e.base));
	protobuf_c_message_free_unpacked(m, NULL);
	/* a record that is not a valid message (required fields missing) */
	uint8_t bad[] = { 0, 0, 0, 0, 2, 0, 0, 0, 0x08, 0x01 };
	memcpy(bad, &magic, 4);
	CHECK_EQ(img_buf_init(&b, bad, sizeof(bad), IMG_MAGIC_PSTREE), 0);
	CHECK_EQ(img_buf_next(&b, &pstree_entry__descriptor, &m), -EBADMSG);
}

static const struct {
	const char *name;
	void (*fn)(void);
} tests[] = {
	{ "roundtrip", test_roundtrip },
	{ "truncation", test_truncation },
	{ "bitflips", test_bitflips },
	{ "oversized", test_oversized },
	{ "wrong_magic", test_wrong_magic },
	{ "missing_and_extra", test_missing_and_extra },
	{ "version", test_version },
	{ "create_rules", test_create_rules },
	{ "stream_hash", test_stream_hash },
	{ "buf_one", test_buf_one },
	{ "hash_kinds", test_hash_kinds },
	{ "sink_hash", test_sink_hash },
};

/* `test_img --write-sample DIR` only writes the sample directory (for trying
 * `ferry show` and seeding the fuzz corpus). */
int main(int argc, char **argv)
{
	int failed = 0;
	util_init();
	if (argc == 3 && !strcmp(argv[1], "--write-sample")) {
		log_init(NULL, LOG_ERROR);
		write_sample_dir(argv[2]);
		return 0;
	}
	/* errors the tests provoke on purpose are not printed unless asked */
	log_init(NULL, getenv("TEST_VERBOSE") ? LOG_DEBUG : -1);
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/ferry-test-img.XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
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
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", tmpdir);
	printf("test_img: %zu tests, %d failed\n", ARRAY_SIZE(tests), failed);
	return failed ? 1 : 0;
}
