/*
 * img_set_version: rewrite DIR/inventory.img with another format version, keeping every
 * other field and making its trailing checksum valid again, so that a reader sees a
 * well-formed inventory of a version it does not speak (negative tests).
 *
 *   img_set_version DIR VERSION
 *   img_set_version --rehash DIR [VERSION]
 *
 * --rehash also recomputes every manifest entry (size and xxh64 of the whole file, as
 * src/img writes them) from the files as they are now, so that deliberately damaged
 * images pass the checksums and reach the decoders and the restore logic behind them.
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

/* Read any file whole (empty allowed, up to 1 GiB). 0 or -errno. */
static int slurp_any(const char *path, uint8_t **buf, size_t *len)
{
	struct stat st;
	size_t off = 0;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || st.st_size > (1L << 30)) {
		close(fd);
		return -EFBIG;
	}
	*buf = malloc(st.st_size ? st.st_size : 1);
	if (!*buf) {
		close(fd);
		return -ENOMEM;
	}
	while (off < (size_t)st.st_size && (n = read(fd, *buf + off, st.st_size - off)) > 0)
		off += n;
	close(fd);
	*len = off;
	return 0;
}

/* Recompute size and hash of every manifest entry from DIR's files. 0 or -errno. */
static int rehash(const char *dir, InventoryEntry *inv)
{
	char path[4200];
	uint8_t *data;
	size_t len, i;
	int r;

	for (i = 0; i < inv->n_manifest; i++) {
		ManifestEntry *me = inv->manifest[i];
		snprintf(path, sizeof(path), "%s/%s", dir, me->name);
		data = NULL;
		len = 0;
		r = slurp_any(path, &data, &len);
		if (r < 0) {
			fprintf(stderr, "img_set_version: cannot read '%s': %s\n", path, strerror(-r));
			return r;
		}
		me->size = len;
		me->xxh64 = XXH64(data, len, 0);
		free(data);
	}
	return 0;
}

/* Encode INV as an inventory file and replace PATH with it atomically. 0 or -errno. */
static int write_inventory(const char *path, InventoryEntry *inv)
{
	uint8_t *buf;
	size_t len;
	char tmp[4300];
	int fd, r = img_inventory_encode(inv, &buf, &len);

	if (r < 0)
		return r;
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		r = -errno;
	} else {
		if (write(fd, buf, len) != (ssize_t)len || fsync(fd) < 0)
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
	unsigned long v = 0;
	int r, do_rehash = 0, set = 0;
	const char *dir;
	char *end;

	if (argc > 1 && !strcmp(argv[1], "--rehash")) {
		do_rehash = 1;
		argv++;
		argc--;
	}
	if (argc != 3 && !(do_rehash && argc == 2)) {
		fprintf(stderr, "usage: img_set_version [--rehash] DIR VERSION\n"
				"       img_set_version --rehash DIR\n");
		return 1;
	}
	dir = argv[1];
	if (argc == 3) {
		v = strtoul(argv[2], &end, 0);
		if (*end || v > UINT32_MAX) {
			fprintf(stderr, "img_set_version: bad version '%s'\n", argv[2]);
			return 1;
		}
		set = 1;
	}
	snprintf(path, sizeof(path), "%s/inventory.img", dir);
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
	if (set)
		inv->img_version = v;
	r = do_rehash ? rehash(dir, inv) : 0;
	if (!r)
		r = write_inventory(path, inv);
	inventory_entry__free_unpacked(inv, NULL);
	if (r < 0) {
		fprintf(stderr, "img_set_version: cannot write '%s': %s\n", path, strerror(-r));
		return 1;
	}
	return 0;
}
