/*
 * img_set_version: rewrite DIR/inventory.img with another format version, keeping every
 * other field and making its trailing checksum valid again, so that a reader sees a
 * well-formed inventory of a version it does not speak (negative tests).
 *
 *   img_set_version DIR VERSION
 *
 * The file layout is the one src/img/img.c writes (see img.h): u32 magic, u32 length,
 * the InventoryEntry message, u64 xxh64 of everything before it. The inventory is
 * decoded with the project's own img_inventory_decode, so only a valid file is touched.
 * Exit status: 0 done, 1 failure (message on stderr).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "img/img.h"

/* Read PATH whole into *buf (malloc'ed). 0 or -errno. */
static int slurp(const char *path, uint8_t **buf, size_t *len)
{
	struct stat st;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || st.st_size <= 0 || st.st_size > (1 << 24)) {
		close(fd);
		return -EINVAL;
	}
	*buf = malloc(st.st_size);
	if (!*buf) {
		close(fd);
		return -ENOMEM;
	}
	n = read(fd, *buf, st.st_size);
	close(fd);
	if (n != st.st_size) {
		free(*buf);
		return -EIO;
	}
	*len = n;
	return 0;
}

/* Encode INV as an inventory file and replace PATH with it atomically. 0 or -errno. */
static int write_inventory(const char *path, InventoryEntry *inv)
{
	size_t len = protobuf_c_message_get_packed_size(&inv->base);
	uint8_t *buf = malloc(8 + len + 8);
	uint32_t magic = IMG_MAGIC_INVENTORY, l32 = len;
	char tmp[4300];
	uint64_t h;
	int fd, r = 0;

	if (!buf)
		return -ENOMEM;
	memcpy(buf, &magic, 4);
	memcpy(buf + 4, &l32, 4);
	protobuf_c_message_pack(&inv->base, buf + 8);
	h = XXH64(buf, 8 + len, 0);
	memcpy(buf + 8 + len, &h, 8);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		r = -errno;
	} else {
		if (write(fd, buf, 16 + len) != (ssize_t)(16 + len) || fsync(fd) < 0)
			r = -errno ? -errno : -EIO;
		close(fd);
		if (!r && rename(tmp, path) < 0)
			r = -errno;
		if (r)
			unlink(tmp);
	}
	free(buf);
	return r;
}

int main(int argc, char **argv)
{
	InventoryEntry *inv;
	char path[4200];
	uint8_t *data = NULL;
	size_t len = 0;
	char *end;
	unsigned long v;
	int r;

	if (argc != 3) {
		fprintf(stderr, "usage: img_set_version DIR VERSION\n");
		return 1;
	}
	v = strtoul(argv[2], &end, 0);
	if (*end || v > UINT32_MAX) {
		fprintf(stderr, "img_set_version: bad version '%s'\n", argv[2]);
		return 1;
	}
	snprintf(path, sizeof(path), "%s/inventory.img", argv[1]);
	r = slurp(path, &data, &len);
	if (r < 0) {
		fprintf(stderr, "img_set_version: cannot read '%s': %s\n", path, strerror(-r));
		return 1;
	}
	r = img_inventory_decode(data, len, &inv);
	free(data);
	if (r < 0) {
		fprintf(stderr, "img_set_version: '%s' is not a valid inventory\n", path);
		return 1;
	}
	inv->img_version = v;
	r = write_inventory(path, inv);
	inventory_entry__free_unpacked(inv, NULL);
	if (r < 0) {
		fprintf(stderr, "img_set_version: cannot write '%s': %s\n", path, strerror(-r));
		return 1;
	}
	return 0;
}
