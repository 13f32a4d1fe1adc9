/*
 * fuzz_img: libFuzzer target for the image decoders, which read untrusted bytes.
 *
 * The first input byte selects what is fed the rest: the inventory decoder
 * (img_inventory_decode), the record framing + protobuf decoder (img_buf_init +
 * img_buf_next) for one message type, or the `ferry show` JSON printer
 * (show_image_buf, from tools/show.c, included here because the fuzz build links only
 * src/common and src/img). The printer writes into a FILE that discards bytes (no I/O)
 * while checking that the JSON it produced is balanced: every { and [ closed, strings
 * terminated. Any crash, leak, sanitizer report or unbalanced output is a failure.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../tools/show.c"

/* ---- a FILE that only checks JSON balance ---- */
struct jcheck {
	long depth;
	bool in_str, esc, bad;
};

static ssize_t jcheck_write(void *c, const char *buf, size_t n)
{
	struct jcheck *j = c;
	for (size_t i = 0; i < n; i++) {
		char ch = buf[i];
		if (j->in_str) {
			if (j->esc)
				j->esc = false;
			else if (ch == '\\')
				j->esc = true;
			else if (ch == '"')
				j->in_str = false;
			else if ((unsigned char)ch < 0x20)
				j->bad = true;	/* raw control character inside a string */
			continue;
		}
		if (ch == '"')
			j->in_str = true;
		else if (ch == '{' || ch == '[')
			j->depth++;
		else if (ch == '}' || ch == ']')
			j->bad |= --j->depth < 0;
	}
	return n;
}

static const struct {
	const char *name;		/* for show_image_buf */
	uint32_t magic;
	const ProtobufCMessageDescriptor *desc;
} fuzz_types[] = {
	{ "pstree.img", IMG_MAGIC_PSTREE, &pstree_entry__descriptor },
	{ "core-1.img", IMG_MAGIC_CORE, &core_entry__descriptor },
	{ "mm-1.img", IMG_MAGIC_MM, &mm_entry__descriptor },
	{ "pagemap-1.img", IMG_MAGIC_PAGEMAP, &pagemap_entry__descriptor },
	{ "pagemap-2.img", IMG_MAGIC_PAGEMAP, &pagemap_head__descriptor },
	{ "inventory.img", IMG_MAGIC_INVENTORY, &inventory_entry__descriptor },
	{ "files.img", IMG_MAGIC_FILES, &file_entry__descriptor },
	{ "fdinfo-1.img", IMG_MAGIC_FDINFO, &fdinfo_entry__descriptor },
	{ "pipes-data.img", IMG_MAGIC_PIPES_DATA, &pipe_data_entry__descriptor },
	{ "ghost-1.img", IMG_MAGIC_GHOST, &ghost_file_entry__descriptor },
	{ "pages-1.img", IMG_MAGIC_RAW, NULL },
	{ "unknown.bin", 0, NULL },	/* show: type chosen by magic */
};

static void fuzz_records(uint32_t magic, const ProtobufCMessageDescriptor *desc,
			 const uint8_t *data, size_t len)
{
	struct img_buf b;
	ProtobufCMessage *m;
	if (!desc || img_buf_init(&b, data, len, magic) < 0)
		return;
	for (int i = 0; i < 1 << 16; i++) {
		size_t before = b.pos;
		int r = img_buf_next(&b, desc, &m);
		if (r <= 0)
			break;
		if (b.pos <= before || b.pos > b.len)
			abort();	/* no progress or past the end */
		protobuf_c_message_free_unpacked(m, NULL);
	}
}

static void fuzz_show(const char *name, const uint8_t *data, size_t len)
{
	struct jcheck j = { 0 };
	cookie_io_functions_t io = { .write = jcheck_write };
	FILE *f = fopencookie(&j, "w", io);
	if (!f)
		return;
	int r = show_image_buf(f, name, data, len, 0);
	fclose(f);
	if (r == 0 && (j.bad || j.depth || j.in_str))
		abort();	/* unbalanced JSON from an accepted input */
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	util_init();
	log_init(NULL, -1);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	unsigned sel = data[0];
	data++;
	size--;
	unsigned n = ARRAY_SIZE(fuzz_types);
	if (sel == 0xff) {
		InventoryEntry *inv;
		if (img_inventory_decode(data, size, &inv) == 0)
			inventory_entry__free_unpacked(inv, NULL);
		return 0;
	}
	if (sel & 0x80)
		fuzz_show(fuzz_types[(sel & 0x7f) % n].name, data, size);
	else
		fuzz_records(fuzz_types[sel % n].magic, fuzz_types[sel % n].desc, data, size);
	return 0;
}
