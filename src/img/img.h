/*
 * img: the image directory and its files.
 *
 * Format (docs/images.md): every image file except raw page data starts with a u32
 * magic (little endian) identifying its type, followed by records: u32 length + a
 * protobuf message of that length. pages-<id>.img is raw page data, no header.
 * inventory.img is written last and lists every other file with its size and hash
 * (the manifest: XXH64, or XXH3_64bits for page data written to a local directory
 * without a sink), plus its own trailing u64 xxh64: a directory without a valid
 * inventory is incomplete, and a file whose size or hash differs is corrupt.
 *
 * Invariants:
 *  - Readers treat every byte as untrusted: record lengths are bounded by
 *    IMG_MAX_RECORD, files by IMG_MAX_META before being loaded, hashes are verified
 *    before any record is decoded; the pure decoder (img_buf_*) is fuzzed.
 *  - Writers fsync each file on close and the directory on commit.
 *  - Names are a fixed vocabulary built with img_name(); they never contain '/'.
 *
 * Typical workload: a few dozen small metadata files plus one large pages file per
 * process; page data is streamed (img_writer_raw / img_stream_read), never loaded whole.
 */
#ifndef FERRY_IMG_H
#define FERRY_IMG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <protobuf-c/protobuf-c.h>

#include "inventory.pb-c.h"

#define IMG_VERSION    1
#define IMG_MAX_RECORD (64u << 20)  /* one protobuf record */
#define IMG_MAX_META   (256u << 20) /* one metadata file loaded in memory */
#define IMG_MAX_FILES  65536	    /* files in one directory's manifest */

/* Magics: "FRY" + a type letter, little endian. */
#define IMG_MAGIC(c)	     (0x00595246u | ((uint32_t)(c) << 24))
#define IMG_MAGIC_INVENTORY  IMG_MAGIC('I')
#define IMG_MAGIC_PSTREE     IMG_MAGIC('P')
#define IMG_MAGIC_CORE	     IMG_MAGIC('C')
#define IMG_MAGIC_MM	     IMG_MAGIC('M')
#define IMG_MAGIC_PAGEMAP    IMG_MAGIC('G')
#define IMG_MAGIC_FDINFO     IMG_MAGIC('D')
#define IMG_MAGIC_FILES	     IMG_MAGIC('F')
#define IMG_MAGIC_PIPES_DATA IMG_MAGIC('p')
#define IMG_MAGIC_GHOST	     IMG_MAGIC('g')
#define IMG_MAGIC_FS	     IMG_MAGIC('S')
#define IMG_MAGIC_TCP	     IMG_MAGIC('T')
#define IMG_MAGIC_UNIX	     IMG_MAGIC('U')
#define IMG_MAGIC_EVENTFD    IMG_MAGIC('E')
#define IMG_MAGIC_TIMERS     IMG_MAGIC('t')
#define IMG_MAGIC_LOCKS	     IMG_MAGIC('L')
#define IMG_MAGIC_MISC	     IMG_MAGIC('X')
#define IMG_MAGIC_RAW	     0 /* pages-*.img: no header */

/* PagemapEntry.flags */
#define PE_PRESENT 0x1u /* data follows in this round's pages file */
#define PE_PARENT  0x2u /* data is in the parent images directory (pre-dump chain) */
#define PE_ZERO	   0x4u /* range reads as zeroes (written explicitly on restore) */

/* VmaEntry.madv: advice to re-apply on restore (from smaps VmFlags) */
#define VMA_MADV_DONTFORK   (1u << 0)
#define VMA_MADV_DONTDUMP   (1u << 1)
#define VMA_MADV_HUGEPAGE   (1u << 2)
#define VMA_MADV_NOHUGEPAGE (1u << 3)
#define VMA_MADV_MERGEABLE  (1u << 4)
#define VMA_MADV_WIPEONFORK (1u << 5)

/* InventoryEntry.kind */
#define IMG_KIND_DUMP	 0
#define IMG_KIND_PREDUMP 1

/* Build an image name: img_name(buf, "core-%d.img", tid). Returns buf. */
const char *img_name(char buf[64], const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- directory ---------------------------------------------------------------- */
struct img_dir;

/* Create (mkdir -p) an images directory for writing. Refuses a directory that
 * already holds an inventory.img unless it is removed first (-EEXIST).
 * Returns 0 and *out (free with img_dir_free), or -errno (logged). */
int img_dir_create(const char *path, struct img_dir **out);
/* Open a complete directory for reading: loads and verifies inventory.img (magic,
 * version, own hash, manifest bounds). Returns 0 or -errno (logged with the cause). */
int img_dir_open(const char *path, struct img_dir **out);
void img_dir_free(struct img_dir *d);
int img_dir_fd(const struct img_dir *d);
const char *img_dir_path(const struct img_dir *d);
/* Reader only: the verified inventory (owned by d). */
const InventoryEntry *img_dir_inventory(const struct img_dir *d);
/* Reader only: is NAME listed in the manifest? */
bool img_dir_has(const struct img_dir *d, const char *name);
/* Writer only: write inventory.img (inv->manifest is filled from the files closed so
 * far), fsync it and the directory. After this the directory is complete. */
int img_dir_commit(struct img_dir *d, InventoryEntry *inv);
/* Fill the host fields of an inventory (version, kernel, arch, page size). */
void img_inventory_init(InventoryEntry *inv);

/* ---- writing -------------------------------------------------------------------- */
struct img_writer;

/* Create NAME in d (O_EXCL). magic IMG_MAGIC_RAW writes no header. */
int img_writer_open(struct img_dir *d, const char *name, uint32_t magic, struct img_writer **out);
/* Append one record. 0 or -errno (logged). */
int img_write_pb(struct img_writer *w, const ProtobufCMessage *msg);
/* Append raw bytes (page data, ghost file contents). */
int img_write_raw(struct img_writer *w, const void *buf, size_t len);
/* The fd, for zero-copy writers (splice, io_uring). Bytes written through it must be
 * reported with img_writer_account() so size and hash stay right. -1 when the file
 * goes only to a sink (page data streamed to a page server): use img_writer_put. */
int img_writer_fd(struct img_writer *w);
void img_writer_account(struct img_writer *w, const void *buf, size_t len);
uint64_t img_writer_size(const struct img_writer *w);
/* Flush, fsync, close and add to the manifest. Frees w. 0 or -errno (logged). */
int img_writer_close(struct img_writer *w);
/* Close and unlink (error paths). Frees w; NULL is fine. */
void img_writer_abort(struct img_writer *w);

/* Write bytes that were already hashed with img_writer_account() (the page writer
 * thread: the reader thread hashes, this one writes). Goes to the local file and/or the
 * sink, like img_write_raw. 0 or -errno (logged). */
int img_writer_put(struct img_writer *w, const void *buf, size_t len);

/* ---- sinks: a second destination for written images (the page server) ----------- *
 * A sink receives every file written to a directory, byte for byte and in order, and
 * the inventory at commit. Page data (pages-*.img, magic IMG_MAGIC_RAW) goes to the
 * sink only (img_writer_fd() returns -1 for it): the local directory keeps everything
 * else, which the next pre-dump round reads back (dirty state, pagemaps). Any sink error
 * fails the write that hit it. Ops may block; write is called by one thread at a time
 * per file, but several files may be open at once and from different threads. */
struct img_sink_ops {
	/* A writable directory was created at PATH: a new round begins. */
	int (*begin)(void *sink, const char *path);
	/* A new file in the round; *fh is the sink's handle for it. */
	int (*open)(void *sink, const char *name, uint32_t magic, void **fh);
	/* Bytes of the file, in order (magic header and records included). */
	int (*write)(void *sink, void *fh, const void *buf, size_t len);
	/* The file is complete: its size and xxh64 (as in the manifest: with a sink every
	 * file, page data included, is hashed with XXH64). */
	int (*close)(void *sink, void *fh, uint64_t size, uint64_t hash);
	/* The file is dropped (error path). fh is freed. */
	void (*abort)(void *sink, void *fh);
	/* The round is complete: the exact bytes of inventory.img. Returns once the peer
	 * has made it durable (0) or refused it (-errno, logged). */
	int (*commit)(void *sink, const void *inv, size_t len);
	/* The round is dropped: a directory freed without a successful commit. */
	void (*discard)(void *sink);
	/* Optional: about `bytes` of page data of process pid come next (UINT64_MAX: not
	 * known), for the sink's progress line. */
	void (*expect)(void *sink, pid_t pid, uint64_t bytes);
};

/* Every writable directory created from now on in this process (img_dir_create) also
 * goes to SINK (NULL: none). Set once by the command before it dumps. */
void img_set_sink(const struct img_sink_ops *ops, void *sink);
/* Tell the sink, if any, what the next page data of process pid amounts to (see
 * img_sink_ops.expect). */
void img_sink_expect(pid_t pid, uint64_t bytes);

/* ---- reading metadata files ----------------------------------------------------- */
/* A verified, in-memory image: the pure decoder works on this. */
struct img_buf {
	const uint8_t *data;
	size_t len;
	size_t pos;
	uint32_t magic;
	void *owned; /* freed by img_buf_free */
};

/* Load NAME from d: must be in the manifest, size and hash must match, magic must be
 * MAGIC. Returns 0, -ENOENT if absent (not logged: callers decide if optional), or
 * -EBADMSG / -errno (logged); *out is NULL on any error. Free with img_buf_free. */
int img_load(struct img_dir *d, const char *name, uint32_t magic, struct img_buf **out);
void img_buf_free(struct img_buf *b);

/* Pure decoding of untrusted bytes (no I/O). img_buf_init checks the magic and sets
 * pos past it. img_buf_next decodes the next record with DESC: returns 1 and *msg
 * (free with protobuf_c_message_free_unpacked(*msg, NULL)), 0 at a clean end, or
 * -EBADMSG on a truncated/oversized/undecodable record (not logged). */
int img_buf_init(struct img_buf *b, const void *data, size_t len, uint32_t magic);
int img_buf_next(struct img_buf *b, const ProtobufCMessageDescriptor *desc, ProtobufCMessage **msg);
/* Read exactly one record that must be the only one: 0 or -EBADMSG. */
int img_buf_one(struct img_buf *b, const ProtobufCMessageDescriptor *desc, ProtobufCMessage **msg);

/* Convenience: load NAME and decode its single record. -ENOENT not logged. */
int img_read_one(struct img_dir *d, const char *name, uint32_t magic,
		 const ProtobufCMessageDescriptor *desc, ProtobufCMessage **msg);

/* ---- reading raw (page) files as a stream --------------------------------------- */
struct img_stream;

/* Open NAME (must be in the manifest) for sequential reading; the hash is checked
 * by img_stream_finish once every byte was read. */
int img_stream_open(struct img_dir *d, const char *name, struct img_stream **out);
/* Read exactly len bytes; -EBADMSG if the file is shorter (logged). */
int img_stream_read(struct img_stream *s, void *buf, size_t len);
uint64_t img_stream_left(const struct img_stream *s);
/* Its file, for pread()s of other threads alongside the stream (its position is the
 * stream's: never read() or lseek() it). */
int img_stream_fd(const struct img_stream *s);
/* All bytes read and the hash matches: 0; else -EBADMSG (logged). Frees s. */
int img_stream_finish(struct img_stream *s);
void img_stream_free(struct img_stream *s);

/* Encode inv as the whole inventory file (magic, length, record, XXH64 of them): *out
 * (malloc'ed, freed by the caller) of *len bytes. 0 or -ENOMEM. Pure. */
int img_inventory_encode(const InventoryEntry *inv, uint8_t **out, size_t *len);
/* Decode the whole inventory file from bytes (pure; used by img_dir_open and fuzzing). */
int img_inventory_decode(const void *data, size_t len, InventoryEntry **out);

#endif
