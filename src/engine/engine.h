/*
 * engine: the commands ferry runs (dump, pre-dump, restore, check). Each takes the
 * parsed options and returns 0 or -errno after logging the cause once; main turns
 * that into an exit status.
 */
#ifndef FERRY_ENGINE_H
#define FERRY_ENGINE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct ferry_opts {
	pid_t pid;		     /* -t/--tree */
	const char *images_dir;	     /* -D/--images-dir */
	const char *prev_images_dir; /* --prev-images-dir (relative to images_dir) */
	const char *pidfile;	     /* --pidfile */
	const char *log_file;	     /* -o/--log-file */
	int verbosity;		     /* -v (0..4) */
	bool leave_running;	     /* --leave-running */
	bool shell_job;		     /* --shell-job */
	bool detach;		     /* -d/--restore-detached */
	bool track_mem;		     /* --track-mem */
	bool json;		     /* --json */
	bool pidns;		     /* restore --pidns: into a new pid namespace */
	/* migrate, source: called by dump once the images are committed, the tree still
	 * frozen; returns 0 to have the tree killed (handed over), -errno to have it resumed
	 * (rollback: dump_main then fails with that error). NULL: the usual kill/resume. */
	int (*on_frozen)(void *arg);
	void *on_frozen_arg;
	/* dump: where to store the monotonic time (now_ns) at which the tree is frozen */
	uint64_t *frozen_at;
	/* pre-dump: where to store the time its dirty scans took (ns; migrate's stop rule:
	 * the final dump scans as much, inside the freeze) */
	uint64_t *scan_ns;
	/* pre-dump --max-bytes: copy at most this many bytes of pages (0: no limit); the
	 * round then stops at a 64 MiB boundary and the next round copies the rest. partial:
	 * where to store whether it did (NULL: not wanted) */
	uint64_t max_bytes;
	bool *partial;
	/* migrate, destination: restore builds the tree, writes "ready <root host pid>
	 * <pidns>\n" to hold_fd and waits for one byte: 'g' lets the tree run, anything else or EOF
	 * kills it (rollback). Only when hold is set. */
	bool hold;
	int hold_fd;
	/* restore: a new pid namespace only if a pid of the tree is taken here (migrate);
	 * with hold, the "ready" line then says which ("ready <pid> <pidns 0|1>") */
	bool pidns_auto;
	/* migrate, destination: the memory a warm restorer staged while the rounds arrived
	 * (rst-warm.h); processes it covers are built from it. NULL: all cold. */
	struct rst_warm *warm;
};

/* ferry dump: freeze, write the images, then kill (default) or resume the process.
 * The process is never left frozen or changed on failure. 0 or -errno (logged). */
int dump_main(const struct ferry_opts *o);

/* ferry pre-dump: one round of memory copy while the tree keeps running (round 0
 * without o->prev_images_dir, else only what was written since that round); the
 * tracking survives in the target between invocations (docs/predump.md). The tree is
 * left running on success and failure. 0 or -errno (logged). */
int predump_main(const struct ferry_opts *o);

/* ferry restore: recreate the dumped process tree with its PIDs (with o->pidns inside a new
 * pid namespace under a ferry init). With o->detach returns once
 * it runs; otherwise waits and stores its wait status in *status. 0 or -errno. */
int restore_main(const struct ferry_opts *o, int *status);

/* ferry check: print one line per kernel feature. Returns 0 when every must-have
 * feature is present, 1 otherwise. */
int check_main(const struct ferry_opts *o);

/* ferry show FILE|DIR: JSON on stdout. 0 or -errno (logged). */
int show_main(const char *path);

#endif
