/*
 * fuzz_wire: libFuzzer target for the page-server decoders, which read bytes from an
 * untrusted peer (src/pageserver/wire.c, included here because the fuzz build links
 * only src/common and src/img).
 *
 * The first input byte selects the mode:
 *  - even: the rest is a stream of frames, decoded the way the server reads them:
 *    ps_hdr_decode, then (if the header is accepted and the payload is all there) the
 *    per-type payload decode: protobuf for control frames, LZ4_decompress_safe into a
 *    PS_MAX_CHUNK buffer for lz4 FILE_DATA (the result must be raw_len), the inventory
 *    decoder for ROUND_COMMIT. An accepted header must respect its type's bound.
 *  - odd: the rest, NUL-terminated, goes to the name checks; an accepted name must be a
 *    single safe path component.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/pageserver/wire.c"
#include "img/img.h"

static uint8_t chunk[PS_MAX_CHUNK];

static const ProtobufCMessageDescriptor *desc_of(unsigned type)
{
	switch (type) {
	case PS_HELLO: return &ps_hello__descriptor;
	case PS_WELCOME: return &ps_welcome__descriptor;
	case PS_AUTH: return &ps_auth__descriptor;
	case PS_ROUND_BEGIN: return &ps_round_begin__descriptor;
	case PS_FILE_OPEN: return &ps_file_open__descriptor;
	case PS_FILE_CLOSE: return &ps_file_close__descriptor;
	case PS_FILE_ABORT: return &ps_file_abort__descriptor;
	case PS_ROUND_DONE: return &ps_round_done__descriptor;
	case PS_ERROR: return &ps_error__descriptor;
	}
	return NULL;
}

static void check_bounds(const struct ps_hdr *h)
{
	uint64_t max = h->type == PS_ROUND_COMMIT ? PS_MAX_COMMIT
		       : h->type == PS_FILE_DATA  ? (uint64_t)LZ4_compressBound(PS_MAX_CHUNK)
		       : h->type == PS_READY || h->type == PS_ROUND_ABORT ? 0
									    : PS_MAX_CTRL;
	if (h->magic != PS_FRAME_MAGIC || h->len > max || !strcmp(ps_type_name(h->type), "unknown"))
		abort();
	if (h->type == PS_FILE_DATA && (h->raw_len > PS_MAX_CHUNK ||
					(!(h->flags & PS_F_LZ4) && h->len != h->raw_len)))
		abort();
	if (h->type != PS_FILE_DATA && (h->flags || h->raw_len))
		abort();
}

static void payload(const struct ps_hdr *h, const uint8_t *p)
{
	const ProtobufCMessageDescriptor *d = desc_of(h->type);
	ProtobufCMessage *m;

	if (d) {
		if (ps_unpack(d, p, h->len, &m) == 0)
			protobuf_c_message_free_unpacked(m, NULL);
	} else if (h->type == PS_FILE_DATA && (h->flags & PS_F_LZ4)) {
		int n = LZ4_decompress_safe((const char *)p, (char *)chunk, (int)h->len,
					    PS_MAX_CHUNK);
		if (n > (int)PS_MAX_CHUNK)
			abort();
	} else if (h->type == PS_ROUND_COMMIT) {
		InventoryEntry *inv;
		if (img_inventory_decode(p, h->len, &inv) == 0) {
			for (size_t i = 0; i < inv->n_manifest; i++)
				(void)ps_image_name_ok(inv->manifest[i]->name);
			if (inv->parent) {
				char out[64];
				(void)ps_parent_name(inv->parent, out);
			}
			inventory_entry__free_unpacked(inv, NULL);
		}
	}
}

static void frames(const uint8_t *data, size_t size)
{
	while (size >= PS_HDR_SIZE) {
		struct ps_hdr h;
		const char *why = NULL;
		if (ps_hdr_decode(data, &h, &why) < 0) {
			if (!why || !why[0])
				abort(); /* every refusal names its cause */
			return;
		}
		check_bounds(&h);
		data += PS_HDR_SIZE;
		size -= PS_HDR_SIZE;
		if (h.len > size)
			return;
		payload(&h, data);
		data += h.len;
		size -= h.len;
	}
}

static void names(const uint8_t *data, size_t size)
{
	char s[256], out[64];
	size_t n = size < sizeof(s) - 1 ? size : sizeof(s) - 1;
	memcpy(s, data, n);
	s[n] = 0;
	if ((ps_name_ok(s) || ps_image_name_ok(s)) &&
	    (strchr(s, '/') || s[0] == '.' || strlen(s) > 63))
		abort();
	if (ps_image_name_ok(s) && (!ps_name_ok(s) || strstr(s, "inventory")))
		abort();
	if (ps_parent_name(s, out) == 0 &&
	    (strchr(out, '/') || out[0] == '.' || strlen(out) > 63 || strcmp(s + 3, out)))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] & 1)
		names(data + 1, size - 1);
	else
		frames(data + 1, size - 1);
	return 0;
}
