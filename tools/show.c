/*
 * show: `ferry show FILE|DIR`, images decoded to JSON on stdout (like CRIU's crit show).
 *
 * The printer is generic: it walks a ProtobufCMessageDescriptor, so a new message in
 * an images .proto file prints without changes here; only the table that maps a file name
 * (and its magic) to a message type needs a line per new image kind. Formatting rules
 * (docs/show.md): 64-bit fields named like addresses or bit masks are hex strings
 * ("0x..."), other integers are numbers; enums print their value name; bytes print as
 * hex, or as {"len": N, "head": hex} past SHOW_BYTES_MAX; strings are escaped JSON
 * (invalid UTF-8 bytes become U+FFFD); absent optional fields are omitted.
 *
 * Invariants: every input byte is untrusted. show_image_buf() is pure (no I/O beyond
 * the FILE it is given) and is fuzzed. Output is built in memory and written to stdout
 * only once the whole input decoded, so a bad image never yields half a JSON document:
 * it gives one error line and a non-zero exit.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "engine/engine.h"
#include "img/img.h"
#include "core.pb-c.h"
#include "inventory.pb-c.h"
#include "mm.pb-c.h"
#include "pagemap.pb-c.h"
#include "pstree.pb-c.h"

#define SHOW_BYTES_MAX 64 /* longer bytes fields are summarized */
#define SHOW_MAX_DEPTH 32 /* nesting bound (our messages are far shallower) */

/*
 * Messages owned by other modules whose .proto may not exist in every tree yet: weak
 * references, NULL when the generated code is not linked in. Such images then print
 * as a summary instead of failing the build.
 */
#define WEAK_DESC(sym) extern const ProtobufCMessageDescriptor sym __attribute__((weak))
WEAK_DESC(file_entry__descriptor);
WEAK_DESC(fdinfo_entry__descriptor);
WEAK_DESC(fs_entry__descriptor);
WEAK_DESC(pipe_data_entry__descriptor);
WEAK_DESC(ghost_file_entry__descriptor);
WEAK_DESC(tcp_stream_entry__descriptor);
WEAK_DESC(unix_sk_entry__descriptor);
WEAK_DESC(eventfd_entry__descriptor);
WEAK_DESC(timerfd_entry__descriptor);
WEAK_DESC(file_lock_entry__descriptor);

/* One kind of image: its file name pattern, magic and messages. */
struct show_type {
	const char *pattern; /* fnmatch() on the base name */
	uint32_t magic;
	const char *magic_name;
	const ProtobufCMessageDescriptor *head; /* first record, or NULL */
	const ProtobufCMessageDescriptor *desc; /* every (other) record */
	bool raw_tail;				/* one record (desc), then raw bytes to the end */
};

static const struct show_type show_types[] = {
	{ "inventory.img", IMG_MAGIC_INVENTORY, "INVENTORY", NULL, &inventory_entry__descriptor },
	{ "pstree.img", IMG_MAGIC_PSTREE, "PSTREE", NULL, &pstree_entry__descriptor },
	{ "core-*.img", IMG_MAGIC_CORE, "CORE", NULL, &core_entry__descriptor },
	{ "mm-*.img", IMG_MAGIC_MM, "MM", NULL, &mm_entry__descriptor },
	{ "pagemap-*.img", IMG_MAGIC_PAGEMAP, "PAGEMAP", &pagemap_head__descriptor,
	  &pagemap_entry__descriptor },
	{ "pages-*.img", IMG_MAGIC_RAW, "RAW", NULL, NULL },
	{ "files.img", IMG_MAGIC_FILES, "FILES", NULL, &file_entry__descriptor },
	{ "fdinfo-*.img", IMG_MAGIC_FDINFO, "FDINFO", NULL, &fdinfo_entry__descriptor },
	{ "fs-*.img", IMG_MAGIC_FS, "FS", NULL, &fs_entry__descriptor },
	{ "pipes-data*.img", IMG_MAGIC_PIPES_DATA, "PIPES_DATA", NULL,
	  &pipe_data_entry__descriptor },
	{ "ghost-*.img", IMG_MAGIC_GHOST, "GHOST", NULL, &ghost_file_entry__descriptor, true },
	{ "tcp-*.img", IMG_MAGIC_TCP, "TCP", NULL, &tcp_stream_entry__descriptor },
	{ "unix*.img", IMG_MAGIC_UNIX, "UNIX", NULL, &unix_sk_entry__descriptor },
	{ "eventfd*.img", IMG_MAGIC_EVENTFD, "EVENTFD", NULL, &eventfd_entry__descriptor },
	{ "timer*.img", IMG_MAGIC_TIMERS, "TIMERS", NULL, &timerfd_entry__descriptor },
	{ "*locks*.img", IMG_MAGIC_LOCKS, "LOCKS", NULL, &file_lock_entry__descriptor },
	{ "misc*.img", IMG_MAGIC_MISC, "MISC", NULL, NULL },
};

/* The type of an image: by name first, then by its magic (renamed files). */
static const struct show_type *show_type_find(const char *name, const void *data, size_t len)
{
	const char *base = strrchr(name, '/');
	base = base ? base + 1 : name;
	for (size_t i = 0; i < ARRAY_SIZE(show_types); i++)
		if (!fnmatch(show_types[i].pattern, base, 0))
			return &show_types[i];
	if (len >= 4) {
		uint32_t magic;
		memcpy(&magic, data, 4);
		for (size_t i = 0; i < ARRAY_SIZE(show_types); i++)
			if (show_types[i].magic && show_types[i].magic == magic)
				return &show_types[i];
	}
	return NULL;
}

/* ---- JSON output ------------------------------------------------------------------ */

static void json_indent(FILE *f, int depth)
{
	fputc('\n', f);
	for (int i = 0; i < depth; i++)
		fputs("  ", f);
}

/* Length of a valid UTF-8 sequence at s (at most n bytes), 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	size_t l;
	uint32_t cp;
	if (s[0] < 0xc2 || s[0] > 0xf4)
		return 0;
	l = s[0] < 0xe0 ? 2 : s[0] < 0xf0 ? 3 : 4;
	if (l > n)
		return 0;
	cp = s[0] & (0x7f >> l);
	for (size_t i = 1; i < l; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((l == 3 && cp < 0x800) || (l == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return l;
}

static void json_string(FILE *f, const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	fputc('"', f);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = s[i];
		if (c == '"' || c == '\\') {
			fputc('\\', f);
			fputc(c, f);
		} else if (c == '\n') {
			fputs("\\n", f);
		} else if (c == '\t') {
			fputs("\\t", f);
		} else if (c < 0x20 || c == 0x7f) {
			fprintf(f, "\\u%04x", c);
		} else if (c < 0x80) {
			fputc(c, f);
		} else {
			size_t l = utf8_len(s + i, n - i);
			if (!l) {
				fputs("\\ufffd", f);
				continue;
			}
			fwrite(s + i, 1, l, f);
			i += l - 1;
		}
	}
	fputc('"', f);
}

static void json_hex(FILE *f, const uint8_t *p, size_t n)
{
	fputc('"', f);
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%02x", p[i]);
	fputc('"', f);
}

static bool name_has_suffix(const char *name, const char *suffix)
{
	size_t n = strlen(name), s = strlen(suffix);
	return n >= s && !strcmp(name + n - s, suffix);
}

/* The hex rule: addresses and bit masks read better in hex (docs/show.md). */
static bool field_is_hex(const char *name)
{
	static const char *const exact[] = { "start",	    "end",   "vaddr",	"rip",
					     "sp",	    "brk",   "handler", "restorer",
					     "robust_list", "mask",  "sigmask", "fs_base",
					     "gs_base",	    "xxh64", "xxh3" };
	for (size_t i = 0; i < ARRAY_SIZE(exact); i++)
		if (!strcmp(name, exact[i]))
			return true;
	return strstr(name, "addr") || strstr(name, "_pointer") || !strncmp(name, "start_", 6) ||
	       !strncmp(name, "end_", 4) || !strncmp(name, "cap_", 4) ||
	       name_has_suffix(name, "_start") || name_has_suffix(name, "_end") ||
	       name_has_suffix(name, "_mask") || name_has_suffix(name, "_brk");
}

static void json_message(FILE *f, const ProtobufCMessage *m, int depth);

static void json_enum(FILE *f, const ProtobufCEnumDescriptor *ed, int v)
{
	const ProtobufCEnumValue *ev = ed ? protobuf_c_enum_descriptor_get_value(ed, v) : NULL;
	if (ev)
		json_string(f, ev->name, strlen(ev->name));
	else
		fprintf(f, "%d", v);
}

/* Print one value of field fd stored at p. */
static void json_value(FILE *f, const ProtobufCFieldDescriptor *fd, const void *p, int depth)
{
	switch (fd->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		fprintf(f, "%" PRId32, *(const int32_t *)p);
		break;
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		fprintf(f, "%" PRIu32, *(const uint32_t *)p);
		break;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		fprintf(f, "%" PRId64, *(const int64_t *)p);
		break;
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		if (field_is_hex(fd->name))
			fprintf(f, "\"0x%" PRIx64 "\"", *(const uint64_t *)p);
		else
			fprintf(f, "%" PRIu64, *(const uint64_t *)p);
		break;
	case PROTOBUF_C_TYPE_FLOAT:
		fprintf(f, "%.9g", (double)*(const float *)p);
		break;
	case PROTOBUF_C_TYPE_DOUBLE:
		fprintf(f, "%.17g", *(const double *)p);
		break;
	case PROTOBUF_C_TYPE_BOOL:
		fputs(*(const protobuf_c_boolean *)p ? "true" : "false", f);
		break;
	case PROTOBUF_C_TYPE_ENUM:
		json_enum(f, fd->descriptor, *(const int *)p);
		break;
	case PROTOBUF_C_TYPE_STRING: {
		const char *s = *(char *const *)p;
		if (s)
			json_string(f, s, strlen(s));
		else
			fputs("null", f);
		break;
	}
	case PROTOBUF_C_TYPE_BYTES: {
		const ProtobufCBinaryData *b = p;
		if (b->len <= SHOW_BYTES_MAX) {
			json_hex(f, b->data, b->len);
		} else {
			fprintf(f, "{\"len\": %zu, \"head\": ", b->len);
			json_hex(f, b->data, 16);
			fputc('}', f);
		}
		break;
	}
	case PROTOBUF_C_TYPE_MESSAGE:
		json_message(f, *(ProtobufCMessage *const *)p, depth);
		break;
	}
}

static size_t field_elem_size(const ProtobufCFieldDescriptor *fd)
{
	switch (fd->type) {
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
	case PROTOBUF_C_TYPE_DOUBLE:
		return 8;
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_STRING:
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(void *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	default:
		return 4;
	}
}

/* Is an optional/oneof field present? (Pointer types: non-NULL; scalars: has_ flag.) */
static bool field_present(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *fd)
{
	const char *base = (const char *)m;
	if (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
		return *(const uint32_t *)(base + fd->quantifier_offset) == fd->id;
	if (fd->type == PROTOBUF_C_TYPE_STRING || fd->type == PROTOBUF_C_TYPE_MESSAGE)
		return *(void *const *)(base + fd->offset) != NULL;
	if (fd->label == PROTOBUF_C_LABEL_OPTIONAL)
		return *(const protobuf_c_boolean *)(base + fd->quantifier_offset);
	return true; /* proto3 "none" label: always printed */
}

static void json_message(FILE *f, const ProtobufCMessage *m, int depth)
{
	const ProtobufCMessageDescriptor *d;
	const char *base = (const char *)m;
	bool first = true;

	if (!m || depth > SHOW_MAX_DEPTH) {
		fputs("null", f);
		return;
	}
	d = m->descriptor;
	fputc('{', f);
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *fd = &d->fields[i];
		size_t n = 1;
		if (fd->label == PROTOBUF_C_LABEL_REPEATED)
			n = *(const size_t *)(base + fd->quantifier_offset);
		else if (fd->label != PROTOBUF_C_LABEL_REQUIRED && !field_present(m, fd))
			continue;
		fputs(first ? "" : ",", f);
		first = false;
		json_indent(f, depth + 1);
		fprintf(f, "\"%s\": ", fd->name);
		if (fd->label != PROTOBUF_C_LABEL_REPEATED) {
			json_value(f, fd, base + fd->offset, depth + 1);
			continue;
		}
		const char *arr = *(char *const *)(base + fd->offset);
		size_t es = field_elem_size(fd);
		bool scalar = fd->type != PROTOBUF_C_TYPE_MESSAGE;
		fputc('[', f);
		for (size_t k = 0; k < n; k++) {
			fputs(k ? (scalar ? ", " : ",") : "", f);
			if (!scalar)
				json_indent(f, depth + 2);
			json_value(f, fd, arr + k * es, depth + 2);
		}
		if (!scalar && n)
			json_indent(f, depth + 1);
		fputc(']', f);
	}
	if (!first)
		json_indent(f, depth);
	fputc('}', f);
}

/* ---- images ----------------------------------------------------------------------- */

/* Summary of raw page data: never dumped. */
struct pages_sum {
	uint64_t size, pages, zero_pages, tail;
};

static void pages_sum_add(struct pages_sum *s, const uint8_t *p, size_t n)
{
	s->size += n;
	for (size_t off = 0; off + page_size <= n; off += page_size) {
		s->pages++;
		if (is_zero(p + off, page_size))
			s->zero_pages++;
	}
	s->tail = n % page_size;
}

static void json_pages_sum(FILE *f, const struct pages_sum *s, int depth)
{
	fputc('{', f);
	json_indent(f, depth + 1);
	fputs("\"magic\": \"RAW\",", f);
	json_indent(f, depth + 1);
	fprintf(f, "\"size\": %" PRIu64 ", \"pages\": %" PRIu64 ", \"zero_pages\": %" PRIu64,
		s->size, s->pages, s->zero_pages);
	if (s->tail)
		fprintf(f, ", \"trailing_bytes\": %" PRIu64, s->tail);
	json_indent(f, depth);
	fputc('}', f);
}

static int show_records(FILE *f, const struct show_type *t, const void *data, size_t len, int depth)
{
	struct img_buf b;
	ProtobufCMessage *m;
	int r, n = 0;

	if (img_buf_init(&b, data, len, t->magic) < 0)
		return -EBADMSG;
	fputs("[", f);
	for (;;) {
		size_t at = b.pos;
		const ProtobufCMessageDescriptor *d = (n == 0 && t->head) ? t->head : t->desc;
		r = img_buf_next(&b, d, &m);
		if (r < 0) {
			pr_debug("record %d at offset %zu cannot be decoded", n, at);
			return r;
		}
		if (r == 0)
			break;
		fputs(n ? "," : "", f);
		json_indent(f, depth + 1);
		json_message(f, m, depth + 1);
		protobuf_c_message_free_unpacked(m, NULL);
		n++;
		if (t->raw_tail) {
			/* the rest is file content: summarized, like pages */
			fputc(',', f);
			json_indent(f, depth + 1);
			fprintf(f, "{\"raw_bytes\": %zu}", b.len - b.pos);
			break;
		}
	}
	if (n)
		json_indent(f, depth);
	fputc(']', f);
	return n;
}

/*
 * Print the image NAME, whose whole content is data/len, as one JSON object to f.
 * Pure: no I/O but f. Returns 0, -EBADMSG on undecodable input, -ENOENT for an
 * unknown image type. Output may be partial on error (callers buffer it).
 */
int show_image_buf(FILE *f, const char *name, const void *data, size_t len, int depth)
{
	const struct show_type *t = show_type_find(name, data, len);
	if (!t)
		return -ENOENT;
	if (t->magic == IMG_MAGIC_RAW) {
		struct pages_sum s = { 0 };
		pages_sum_add(&s, data, len);
		json_pages_sum(f, &s, depth);
		return 0;
	}
	if (len < 4)
		return -EBADMSG;
	fputc('{', f);
	json_indent(f, depth + 1);
	fprintf(f, "\"magic\": \"%s\",", t->magic_name);
	if (!t->desc) {
		/* Kind known by magic, but its message is not linked in this build. */
		json_indent(f, depth + 1);
		fprintf(f, "\"size\": %zu, \"note\": \"message type not known to this build\"",
			len);
	} else if (t->magic == IMG_MAGIC_INVENTORY) {
		InventoryEntry *inv;
		if (img_inventory_decode(data, len, &inv) < 0)
			return -EBADMSG;
		json_indent(f, depth + 1);
		fputs("\"entries\": [", f);
		json_indent(f, depth + 2);
		json_message(f, &inv->base, depth + 2);
		json_indent(f, depth + 1);
		fputc(']', f);
		inventory_entry__free_unpacked(inv, NULL);
	} else {
		json_indent(f, depth + 1);
		fputs("\"entries\": ", f);
		int r = show_records(f, t, data, len, depth + 1);
		if (r < 0)
			return r;
	}
	json_indent(f, depth);
	fputc('}', f);
	return 0;
}

static const char *show_strerr(int r)
{
	if (r == -ENOENT)
		return "unknown image type (neither its name nor its magic is known)";
	if (r == -EBADMSG)
		return "corrupt or truncated image (bad magic, record length or protobuf)";
	return strerror(-r);
}

/* A lone pages file: streamed (it can be far larger than metadata), summarized. */
static int show_file_pages(FILE *f, const char *path)
{
	struct pages_sum sum = { 0 };
	size_t cap = 256 * page_size;
	uint8_t *buf = malloc(cap);
	int r = 0, fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || !buf) {
		r = fd < 0 ? pr_perror("cannot open '%s'", path) : -ENOMEM;
		goto out;
	}
	for (;;) {
		ssize_t n = read_full(fd, buf, cap);
		if (n < 0) {
			r = pr_err_ret((int)n, "cannot read '%s'", path);
			goto out;
		}
		pages_sum_add(&sum, buf, n);
		if ((size_t)n < cap)
			break;
	}
	sum.tail = sum.size % page_size;
	json_pages_sum(f, &sum, 0);
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return r;
}

/* A lone file: read whole (bounded), no manifest check. pages-*.img is streamed. */
static int show_file(FILE *f, const char *path)
{
	char *data = NULL;
	size_t len = 0;
	const struct show_type *t = show_type_find(path, NULL, 0);
	if (t && t->magic == IMG_MAGIC_RAW)
		return show_file_pages(f, path);
	int r = read_file(path, &data, &len, IMG_MAX_META);
	if (r == -EFBIG) {
		pr_err("'%s' is larger than %u bytes: not an image ferry can show", path,
		       IMG_MAX_META);
		return r;
	}
	if (r < 0)
		return pr_err_ret(r, "cannot read '%s'", path);
	r = show_image_buf(f, path, data, len, 0);
	free(data);
	if (r < 0)
		pr_err("cannot show '%s': %s", path, show_strerr(r));
	return r;
}

/* pages-*.img of a directory: streamed through the verified reader, summarized. */
static int show_dir_pages(FILE *f, struct img_dir *d, const char *name, int depth)
{
	struct img_stream *s;
	struct pages_sum sum = { 0 };
	uint8_t *buf = malloc(256 * page_size);
	int r = buf ? img_stream_open(d, name, &s) : -ENOMEM;
	if (r < 0) {
		free(buf);
		return r;
	}
	while (r == 0 && img_stream_left(s)) {
		size_t n = min_t(uint64_t, img_stream_left(s), 256 * page_size);
		r = img_stream_read(s, buf, n);
		if (r == 0)
			pages_sum_add(&sum, buf, n);
	}
	sum.tail = sum.size % page_size;
	free(buf);
	if (r < 0) {
		img_stream_free(s);
		return r;
	}
	r = img_stream_finish(s);
	if (r == 0)
		json_pages_sum(f, &sum, depth);
	return r;
}

static int show_dir_image(FILE *f, struct img_dir *d, const char *name, int depth)
{
	const struct show_type *t = show_type_find(name, NULL, 0);
	struct img_buf *b;
	int r;

	if (!t) {
		pr_err("image '%s/%s' has a name ferry does not know", img_dir_path(d), name);
		return -ENOENT;
	}
	if (t->magic == IMG_MAGIC_RAW)
		return show_dir_pages(f, d, name, depth);
	r = img_load(d, name, t->magic, &b); /* checks size, hash and magic; logs */
	if (r == -ENOENT)
		pr_err("image '%s/%s' vanished", img_dir_path(d), name);
	if (r < 0)
		return r;
	r = show_image_buf(f, name, b->data, b->len, depth);
	if (r < 0)
		pr_err("image '%s/%s' is corrupt: %s", img_dir_path(d), name, show_strerr(r));
	img_buf_free(b);
	return r;
}

/* Names in the directory that the manifest does not list (leftovers, a parent link):
 * never read, only named, so a reader sees what the verification ignored. */
static void show_dir_unlisted(FILE *f, struct img_dir *d)
{
	int fd = openat(img_dir_fd(d), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	int n = 0;

	if (!dir) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((de = readdir(dir)) && n < 1000) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
		    !strcmp(de->d_name, "inventory.img") || img_dir_has(d, de->d_name))
			continue;
		fputs(n++ ? ", " : ",\n    \"unlisted\": [", f);
		json_string(f, de->d_name, strlen(de->d_name));
	}
	if (n)
		fputc(']', f);
	closedir(dir);
}

static void show_dir_summary(FILE *f, struct img_dir *d)
{
	const InventoryEntry *inv = img_dir_inventory(d);
	uint64_t total = 0;

	for (size_t i = 0; i < inv->n_manifest; i++)
		total += inv->manifest[i]->size;
	fputs("{\n  \"summary\": {\n    \"path\": ", f);
	json_string(f, img_dir_path(d), strlen(img_dir_path(d)));
	fprintf(f, ",\n    \"img_version\": %u,\n    \"kind\": \"%s\",\n    \"root_pid\": %u,",
		inv->img_version, inv->kind == IMG_KIND_PREDUMP ? "pre-dump" : "dump",
		inv->root_pid);
	fputs("\n    \"kernel\": ", f);
	json_string(f, inv->kernel, strlen(inv->kernel));
	fputs(",\n    \"arch\": ", f);
	json_string(f, inv->arch, strlen(inv->arch));
	if (inv->parent) {
		fputs(",\n    \"parent\": ", f);
		json_string(f, inv->parent, strlen(inv->parent));
	}
	fprintf(f,
		",\n    \"files\": %zu,\n    \"total_size\": %" PRIu64 ",\n    \"verified\": true",
		inv->n_manifest, total);
	show_dir_unlisted(f, d);
	fputs("\n  },", f);
}

/* A directory: verified (inventory, manifest sizes and hashes), then every image. */
static int show_dir(FILE *f, const char *path)
{
	struct img_dir *d;
	int r = img_dir_open(path, &d); /* logs the cause */
	if (r < 0)
		return r;
	const InventoryEntry *inv = img_dir_inventory(d);
	show_dir_summary(f, d);
	fputs("\n  \"images\": {\n    \"inventory.img\": {\n      \"magic\": \"INVENTORY\",", f);
	fputs("\n      \"entries\": [\n        ", f);
	json_message(f, &inv->base, 4);
	fputs("\n      ]\n    }", f);
	for (size_t i = 0; i < inv->n_manifest && r == 0; i++) {
		const char *name = inv->manifest[i]->name;
		fputs(",\n    ", f);
		json_string(f, name, strlen(name));
		fputs(": ", f);
		r = show_dir_image(f, d, name, 2);
	}
	fputs("\n  }\n}", f);
	img_dir_free(d);
	return r;
}

int show_main(const char *path)
{
	struct stat st;
	char *out = NULL;
	size_t len = 0;
	int r;

	if (stat(path, &st) < 0)
		return pr_perror("cannot show '%s'", path);
	FILE *f = open_memstream(&out, &len);
	if (!f)
		return pr_perror("cannot allocate output buffer");
	r = S_ISDIR(st.st_mode) ? show_dir(f, path) : show_file(f, path);
	fputc('\n', f);
	if (fclose(f) != 0 && r == 0)
		r = pr_perror("cannot build output");
	if (r == 0) {
		r = write_full(STDOUT_FILENO, out, len);
		if (r < 0)
			pr_err_ret(r, "cannot write to stdout");
	}
	free(out);
	return r;
}
