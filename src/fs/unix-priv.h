/*
 * unix-priv: what fd-unix.c and unix-diag.c share (AF_UNIX sockets).
 */
#ifndef FERRY_UNIX_PRIV_H
#define FERRY_UNIX_PRIV_H

#include <stddef.h>
#include <stdint.h>

#include "fs/fs-priv.h"

struct usk_info {	    /* one socket as sock_diag reports it */
	uint32_t ino, peer; /* peer 0 = none */
	uint8_t type, state, shutdown;
	uint32_t icons;	       /* pending connections (listening) */
	uint32_t rqlen, wqlen; /* listening: backlog in use / max backlog */
	uint32_t vfs_ino, vfs_dev;
	char name[108]; /* sun_path bytes (abstract: starts with 0) */
	size_t name_len;
};

struct usk_diag {
	struct usk_info *v; /* sorted by ino */
	size_t n, cap;
};

/* Load every AF_UNIX socket of our netns. 0 or -errno (logged). */
int usk_diag_load(struct usk_diag **out);
/* The socket with that inode, or NULL. */
const struct usk_info *usk_diag_find(const struct usk_diag *t, uint64_t ino);
void usk_diag_free(struct usk_diag *t);

#endif
