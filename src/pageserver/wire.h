/*
 * wire: the page-server protocol's frames, names and handshake (docs/pageserver.md).
 *
 * A frame is a 24-byte little-endian header (struct ps_hdr) and `len` payload bytes.
 * Control payloads are protobuf messages from proto/pageserver.proto; FILE_DATA
 * payloads are file bytes, raw or one lz4 block (PS_F_LZ4).
 *
 * Invariants:
 *  - Every received header is validated by ps_hdr_decode() before any payload byte is
 *    read or any memory allocated: magic, known type, allowed flags, len and raw_len
 *    within the per-type bound. The decoder is pure (no I/O) and fuzzed.
 *  - Names from a peer are used only after ps_name_ok() / ps_image_name_ok(); they are
 *    single path components from a fixed vocabulary.
 *  - I/O helpers take a timeout: a peer that stops sending is dropped, never waited on
 *    forever. They return 0 or -errno and do not log (callers name the peer and stage).
 */
#ifndef FERRY_PS_WIRE_H
#define FERRY_PS_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <protobuf-c/protobuf-c.h>

#include "pageserver.pb-c.h"

#define PS_VERSION     1
#define PS_FRAME_MAGIC 0x77595246u /* "FRYw" little endian */
#define PS_HDR_SIZE    24
#define PS_MAX_CTRL    (1u << 20)  /* protobuf control payload */
#define PS_MAX_COMMIT  (16u << 20) /* ROUND_COMMIT: inventory.img bytes */
#define PS_MAX_CHUNK   (1u << 20)  /* FILE_DATA bytes after decompression */
#define PS_MAX_OPEN    64	   /* files open at once in a round */
#define PS_NONCE_LEN   32
#define PS_PROOF_LEN   32 /* HMAC-SHA256 */
#define PS_KEY_MIN     32 /* bytes in a key file */

/* Frame flags */
#define PS_F_LZ4 0x1u /* FILE_DATA: payload is one lz4 block of raw_len bytes */

/* Features (PsHello.features / PsWelcome.features) */
#define PS_FEAT_LZ4 (1ull << 0)

enum ps_type {
	PS_HELLO = 1,
	PS_WELCOME = 2,
	PS_AUTH = 3,
	PS_READY = 4,
	PS_ROUND_BEGIN = 8,
	PS_FILE_OPEN = 9,
	PS_FILE_DATA = 10,
	PS_FILE_CLOSE = 11,
	PS_FILE_ABORT = 12,
	PS_ROUND_COMMIT = 13,
	PS_ROUND_DONE = 14,
	PS_ROUND_ABORT = 15,
	PS_ERROR = 31,
	/* 32..63: migrate's hand-over (docs/migrate.md, proto/migrate.proto); the page
	 * server hands them to its extension (pageserver.h struct ps_ext) */
	PS_MIG_RESTORE = 32,  /* C->S MigRestore */
	PS_MIG_RESTORED = 33, /* S->C MigRestored */
	PS_MIG_HANDOVER = 34, /* C->S empty */
	PS_MIG_RUNNING = 35,  /* S->C MigRunning */
	PS_MIG_STATUS = 36,   /* C->S MigStatus (a new connection, when in doubt) */
	PS_MIG_STATE = 37,    /* S->C MigState */
	PS_MIG_WARM = 38,     /* C->S MigWarm: stage a pre-copy round (warm destination) */
	PS_MIG_WARMED = 39,   /* S->C MigWarmed */
};
#define PS_MIG_FIRST 32
#define PS_MIG_LAST  63

struct ps_hdr {
	uint32_t magic;
	uint16_t type;
	uint16_t flags;
	uint64_t len;	  /* payload bytes */
	uint32_t file;	  /* FILE_* frames: the file id; else 0 */
	uint32_t raw_len; /* FILE_DATA: bytes after decompression (== len when raw) */
};

/* Header <-> bytes. */
void ps_hdr_encode(const struct ps_hdr *h, uint8_t out[PS_HDR_SIZE]);
/* Decode and validate a header. 0, or -EPROTO with *why set to a static string that
 * names the cause ("bad frame magic", "frame of 9223372036854775808 bytes"...). */
int ps_hdr_decode(const uint8_t in[PS_HDR_SIZE], struct ps_hdr *h, const char **why);
/* "HELLO", "FILE_DATA", ... or "unknown". */
const char *ps_type_name(unsigned type);

/* A source or round name: 1-63 chars of [A-Za-z0-9._-], not starting with '.'. */
bool ps_name_ok(const char *s);
/* An image file name a round may hold (fixed vocabulary of prefixes and suffixes). */
bool ps_image_name_ok(const char *s);
/* --prev-images-dir as sent in an inventory: "../<round>". 0 and the round name in
 * out, or -EINVAL. */
int ps_parent_name(const char *rel, char out[64]);

/* ---- blocking I/O on a connected stream socket, timeout in ms per wait ---------- */
/* Send one frame: header + payload (protobuf message packed, or raw bytes). */
int ps_send_msg(int fd, unsigned type, uint32_t file, const ProtobufCMessage *msg, int timeout_ms);
int ps_send_raw(int fd, unsigned type, uint16_t flags, uint32_t file, const void *buf, size_t len,
		uint32_t raw_len, int timeout_ms);
/* Send ERROR {code, message}. Best effort (a dead peer is fine). */
void ps_send_error(int fd, int code, int timeout_ms, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Receive and validate one header: 0, -EPROTO (*why set), -ETIMEDOUT, -ECONNRESET
 * (orderly close or reset), -errno. */
int ps_recv_hdr(int fd, struct ps_hdr *h, const char **why, int timeout_ms);
/* Receive exactly len payload bytes. */
int ps_recv_full(int fd, void *buf, size_t len, int timeout_ms);
/* Decode a protobuf payload (pure): 0 or -EPROTO. Free with
 * protobuf_c_message_free_unpacked(*out, NULL). */
int ps_unpack(const ProtobufCMessageDescriptor *desc, const void *buf, size_t len,
	      ProtobufCMessage **out);

/* ---- handshake (src/pageserver/handshake.c) -------------------------------------- */
struct ps_key {
	bool set;
	uint8_t k[32]; /* SHA-256 of the key file */
};

/* Load a key file (at least PS_KEY_MIN bytes). 0 or -errno (logged: names the file). */
int ps_key_load(const char *path, struct ps_key *key);

/* Client side: HELLO, check WELCOME (version, page size, arch, proof), AUTH, READY.
 * key NULL or unset: no authentication (the server must not require it). On success
 * *features holds the agreed features. 0 or -errno, logged with the cause (a server
 * ERROR message is quoted). */
int ps_handshake_client(int fd, const struct ps_key *key, const char *source, uint64_t features,
			uint64_t *agreed, int timeout_ms);

/* Server side: read HELLO, answer, check AUTH; sends ERROR and returns -errno (logged)
 * on a bad version, arch, page size, name or proof. On success *hello is the decoded
 * HELLO (free with ps_hello__free_unpacked) and *features the agreed set. */
int ps_handshake_server(int fd, const struct ps_key *key, uint64_t features, PsHello **hello,
			uint64_t *agreed, int timeout_ms);

/* The key proofs (exposed for tests): server=true gives HMAC-SHA256(K, "ferry-server"
 * || nc || ns), server=false HMAC-SHA256(K, "ferry-client" || ns || nc). */
void ps_proof(const struct ps_key *key, bool server, const uint8_t nc[PS_NONCE_LEN],
	      const uint8_t ns[PS_NONCE_LEN], uint8_t out[PS_PROOF_LEN]);

#endif
