/*
 * wire: frame header codec, name validation, timed blocking socket I/O and protobuf
 * decoding for the page-server protocol (docs/pageserver.md, contract in wire.h).
 *
 * Invariants:
 *  - ps_hdr_decode() is pure and rejects anything outside the per-type bounds before a
 *    caller reads or allocates a payload byte; ps_unpack() is pure. Both are fuzzed
 *    (test/fuzz/fuzz_wire.c includes this file: it must only need libc, protobuf-c,
 *    lz4 and the generated proto code).
 *  - The encoder writes canonical headers: raw_len only on FILE_DATA, a file id only
 *    on FILE_* frames; the decoder refuses anything else.
 *  - Every wait on the socket is bounded by the caller's timeout; send never raises
 *    SIGPIPE. Nothing here logs: callers name the peer and the stage.
 */
#include <errno.h>
#include <lz4.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "pageserver/wire.h"

/* ---- header codec --------------------------------------------------------------- */

static void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = v;
	p[1] = v >> 8;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = v >> (8 * i);
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = v >> (8 * i);
}

static uint16_t get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get_le32(const uint8_t *p)
{
	uint32_t v = 0;
	for (int i = 3; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

void ps_hdr_encode(const struct ps_hdr *h, uint8_t out[PS_HDR_SIZE])
{
	put_le32(out, h->magic);
	put_le16(out + 4, h->type);
	put_le16(out + 6, h->flags);
	put_le64(out + 8, h->len);
	put_le32(out + 16, h->file);
	put_le32(out + 20, h->raw_len);
}

const char *ps_type_name(unsigned type)
{
	switch (type) {
	case PS_HELLO:
		return "HELLO";
	case PS_WELCOME:
		return "WELCOME";
	case PS_AUTH:
		return "AUTH";
	case PS_READY:
		return "READY";
	case PS_ROUND_BEGIN:
		return "ROUND_BEGIN";
	case PS_FILE_OPEN:
		return "FILE_OPEN";
	case PS_FILE_DATA:
		return "FILE_DATA";
	case PS_FILE_CLOSE:
		return "FILE_CLOSE";
	case PS_FILE_ABORT:
		return "FILE_ABORT";
	case PS_ROUND_COMMIT:
		return "ROUND_COMMIT";
	case PS_ROUND_DONE:
		return "ROUND_DONE";
	case PS_ROUND_ABORT:
		return "ROUND_ABORT";
	case PS_ERROR:
		return "ERROR";
	case PS_MIG_RESTORE:
		return "MIG_RESTORE";
	case PS_MIG_RESTORED:
		return "MIG_RESTORED";
	case PS_MIG_HANDOVER:
		return "MIG_HANDOVER";
	case PS_MIG_RUNNING:
		return "MIG_RUNNING";
	case PS_MIG_STATUS:
		return "MIG_STATUS";
	case PS_MIG_STATE:
		return "MIG_STATE";
	case PS_MIG_WARM:
		return "MIG_WARM";
	case PS_MIG_WARMED:
		return "MIG_WARMED";
	}
	return "unknown";
}

static bool type_is_file(unsigned type)
{
	return type == PS_FILE_OPEN || type == PS_FILE_DATA || type == PS_FILE_CLOSE ||
	       type == PS_FILE_ABORT;
}

/* The largest payload a frame of TYPE may carry; 0 for unknown types. */
static uint64_t type_max_len(unsigned type)
{
	switch (type) {
	case PS_READY:
	case PS_ROUND_ABORT:
	case PS_MIG_HANDOVER:
		return 0;
	case PS_ROUND_COMMIT:
		return PS_MAX_COMMIT;
	case PS_FILE_DATA:
		return (uint64_t)LZ4_compressBound(PS_MAX_CHUNK);
	default:
		return PS_MAX_CTRL;
	}
}

/* A reason with numbers in it: per thread, valid until the next decode. */
static __thread char why_buf[128];

static int bad(const char **why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(const char **why, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why_buf, sizeof(why_buf), fmt, ap);
	va_end(ap);
	*why = why_buf;
	return -EPROTO;
}

static int data_check(const struct ps_hdr *h, const char **why)
{
	if (h->raw_len > PS_MAX_CHUNK)
		return bad(why, "FILE_DATA of %u bytes (limit %u)", h->raw_len, PS_MAX_CHUNK);
	if (h->flags & PS_F_LZ4) {
		if (h->len == 0 || h->raw_len == 0)
			return bad(why, "empty lz4 FILE_DATA block");
		return 0; /* len <= LZ4_compressBound(PS_MAX_CHUNK) checked by the caller */
	}
	if (h->len != h->raw_len)
		return bad(why, "raw FILE_DATA of %llu bytes says %u", (unsigned long long)h->len,
			   h->raw_len);
	return 0;
}

int ps_hdr_decode(const uint8_t in[PS_HDR_SIZE], struct ps_hdr *h, const char **why)
{
	static const char *dummy;
	if (!why)
		why = &dummy;
	h->magic = get_le32(in);
	h->type = get_le16(in + 4);
	h->flags = get_le16(in + 6);
	h->len = get_le64(in + 8);
	h->file = get_le32(in + 16);
	h->raw_len = get_le32(in + 20);

	if (h->magic != PS_FRAME_MAGIC)
		return bad(why, "bad frame magic %#x (not a ferry page-server stream)", h->magic);
	if (!strcmp(ps_type_name(h->type), "unknown"))
		return bad(why, "unknown frame type %u", h->type);
	if (h->type == PS_FILE_DATA ? (h->flags & ~PS_F_LZ4) : h->flags)
		return bad(why, "unknown flags %#x on %s", h->flags, ps_type_name(h->type));
	if (h->len > type_max_len(h->type))
		return bad(why, "%s frame of %llu bytes (limit %llu)", ps_type_name(h->type),
			   (unsigned long long)h->len, (unsigned long long)type_max_len(h->type));
	if (h->type == PS_FILE_DATA)
		return data_check(h, why);
	if (h->raw_len)
		return bad(why, "raw_len %u on %s", h->raw_len, ps_type_name(h->type));
	if (h->file && !type_is_file(h->type))
		return bad(why, "file id %u on %s", h->file, ps_type_name(h->type));
	return 0;
}

/* ---- names ------------------------------------------------------------------------ */

bool ps_name_ok(const char *s)
{
	size_t n = 0;
	if (!s || !s[0] || s[0] == '.')
		return false;
	for (; s[n]; n++) {
		char c = s[n];
		if (n >= 63)
			return false;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

/*
 * Every image name the engine and fs write (grep img_name / img_writer_open under
 * src/). inventory.img is not here: it arrives only as ROUND_COMMIT. A new image kind
 * must be added here too, or page-server dumps refuse it (docs/pageserver.md).
 */
static const struct {
	const char *prefix; /* before "-<n>" or the suffix */
	bool numbered;	    /* "<prefix>-<n><suffix>" */
	const char *suffix;
} image_names[] = {
	{ "pstree", false, ".img" }, { "files", false, ".img" },  { "pipes-data", false, ".img" },
	{ "core", true, ".img" },    { "mm", true, ".img" },	  { "pagemap", true, ".img" },
	{ "pages", true, ".img" },   { "fdinfo", true, ".img" },  { "ghost", true, ".img" },
	{ "sysc", true, ".img" },    { "dirty", true, ".state" }, { "vmas", true, ".img" },
};

/* A decimal number as printf %d/%u of a non-negative id writes it: 1-10 digits, no
 * leading zero, fits 32 bits. Returns the digits consumed, 0 if none valid. */
static size_t number_len(const char *s)
{
	size_t n = 0;
	uint64_t v = 0;
	while (s[n] >= '0' && s[n] <= '9' && n < 11)
		v = v * 10 + (uint64_t)(s[n++] - '0');
	if (n == 0 || n > 10 || (n > 1 && s[0] == '0') || v > UINT32_MAX)
		return 0;
	return n;
}

bool ps_image_name_ok(const char *s)
{
	if (!s || !ps_name_ok(s))
		return false;
	for (size_t i = 0; i < sizeof(image_names) / sizeof(image_names[0]); i++) {
		size_t pl = strlen(image_names[i].prefix);
		const char *p = s;
		if (strncmp(p, image_names[i].prefix, pl))
			continue;
		p += pl;
		if (image_names[i].numbered) {
			size_t nl;
			if (*p != '-' || !(nl = number_len(p + 1)))
				continue;
			p += 1 + nl;
		}
		if (!strcmp(p, image_names[i].suffix))
			return true;
	}
	return false;
}

int ps_parent_name(const char *rel, char out[64])
{
	if (!rel || strncmp(rel, "../", 3) || !ps_name_ok(rel + 3))
		return -EINVAL;
	strcpy(out, rel + 3); /* ps_name_ok: at most 63 chars */
	return 0;
}

/* ---- timed I/O ---------------------------------------------------------------- */

static int wait_fd(int fd, short ev, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = ev };
	for (;;) {
		int r = poll(&p, 1, timeout_ms);
		if (r > 0)
			return 0; /* ready, hung up or in error: the next call says which */
		if (r == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

/* Send every byte of iov[0..n) (modified), waiting at most timeout_ms per wait. */
static int send_iov(int fd, struct iovec *iov, int n, int timeout_ms)
{
	while (n > 0) {
		struct msghdr m = { .msg_iov = iov, .msg_iovlen = n };
		ssize_t w = sendmsg(fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0) {
			int r;
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return errno == EPIPE ? -ECONNRESET : -errno;
			if ((r = wait_fd(fd, POLLOUT, timeout_ms)) < 0)
				return r;
			continue;
		}
		while (n > 0 && (size_t)w >= iov->iov_len) {
			w -= iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + w;
			iov->iov_len -= w;
		}
	}
	return 0;
}

int ps_send_raw(int fd, unsigned type, uint16_t flags, uint32_t file, const void *buf, size_t len,
		uint32_t raw_len, int timeout_ms)
{
	struct ps_hdr h = {
		.magic = PS_FRAME_MAGIC,
		.type = type,
		.flags = flags,
		.len = len,
		.file = type_is_file(type) ? file : 0,
		.raw_len = type == PS_FILE_DATA ? raw_len : 0,
	};
	uint8_t hb[PS_HDR_SIZE];
	struct iovec iov[2] = { { hb, sizeof(hb) }, { (void *)buf, len } };

	ps_hdr_encode(&h, hb);
	return send_iov(fd, iov, len ? 2 : 1, timeout_ms);
}

int ps_send_msg(int fd, unsigned type, uint32_t file, const ProtobufCMessage *msg, int timeout_ms)
{
	uint8_t small[512], *buf = small;
	size_t len = msg ? protobuf_c_message_get_packed_size(msg) : 0;
	int r;

	if (len > PS_MAX_CTRL)
		return -EMSGSIZE;
	if (len > sizeof(small) && !(buf = malloc(len)))
		return -ENOMEM;
	if (len)
		protobuf_c_message_pack(msg, buf);
	r = ps_send_raw(fd, type, 0, file, buf, len, 0, timeout_ms);
	if (buf != small)
		free(buf);
	return r;
}

void ps_send_error(int fd, int code, int timeout_ms, const char *fmt, ...)
{
	char line[512];
	PsError e = PS_ERROR__INIT;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	for (char *p = line; *p; p++) /* one line */
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	e.code = code < 0 ? -code : code;
	e.message = line;
	(void)ps_send_msg(fd, PS_ERROR, 0, &e.base, timeout_ms);
}

int ps_recv_full(int fd, void *buf, size_t len, int timeout_ms)
{
	uint8_t *p = buf;
	while (len > 0) {
		ssize_t n = recv(fd, p, len, MSG_DONTWAIT);
		if (n > 0) {
			p += n;
			len -= n;
			continue;
		}
		if (n == 0)
			return -ECONNRESET;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return errno == ECONNRESET ? -ECONNRESET : -errno;
		int r = wait_fd(fd, POLLIN, timeout_ms);
		if (r < 0)
			return r;
	}
	return 0;
}

int ps_recv_hdr(int fd, struct ps_hdr *h, const char **why, int timeout_ms)
{
	uint8_t b[PS_HDR_SIZE];
	int r = ps_recv_full(fd, b, sizeof(b), timeout_ms);
	if (r < 0)
		return r;
	return ps_hdr_decode(b, h, why);
}

int ps_unpack(const ProtobufCMessageDescriptor *desc, const void *buf, size_t len,
	      ProtobufCMessage **out)
{
	*out = protobuf_c_message_unpack(desc, NULL, len, buf);
	return *out ? 0 : -EPROTO;
}
