/*
 * migrate: live migration, source and destination sides (docs/migrate.md).
 */
#ifndef FERRY_MIGRATE_H
#define FERRY_MIGRATE_H

struct ps_hdr;

/* `migrate` / `ferry migrate`: parses its own options (argv[0] is the command name).
 * Exit status: 0 migrated (or --pre-dump round done), 1 failed and the tree runs here,
 * 2 usage, 3 hand-over in doubt (the tree is left stopped here; see the message). */
int migrate_main(int argc, char **argv);

/* The page server's extension for frame types 32..63 (the destination's hand-over):
 * see src/pageserver/pageserver.h struct ps_ext. */
int mig_dest_frame(void *ctx, int fd, const struct ps_hdr *h, const char *source, int dirfd,
		   int srcfd, int timeout_ms);

#endif
