/*
 * fs-priv: what the fd kinds (fd-<kind>.c) share with the driver (fs.c, fs-restore.c).
 *
 * One kind = one `struct fd_ops` in its own file plus one line in the table of kinds
 * (fs.c). The driver owns the fd table, file ids and image files; a kind only
 * describes one open file description (dump) and reopens it (restore).
 *
 * Dump: the driver collects a `struct fd_parms` for every fd of the frozen task
 * (a local copy of the fd via pidfd_getfd, its fstat, the /proc link and the fdinfo
 * flags/pos), finds the kind whose match() accepts it, runs every kind's check() over
 * the whole table (so a dump fails before any image is written for the task), then
 * calls dump() once per new open file description.
 *
 * Restore: prepare() runs in the restorer (may log, allocate, touch the filesystem),
 * validates the untrusted FileEntry and fills a `struct rst_file`. open() runs in the
 * stub (a forked copy of the restorer): no logging, no allocation; it returns a new fd
 * numbered >= base (above every target number) or -errno with a message in err.
 */
#ifndef FERRY_FS_PRIV_H
#define FERRY_FS_PRIV_H

#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "files.pb-c.h"
#include "fs/fs.h"

/* Bounds applied to everything read from images. */
#define FS_MAX_FD	 (1 << 20)    /* fs.nr_open default: fd numbers are below */
#define FS_MAX_FILES	 (1 << 20)    /* FileEntry records in files.img */
#define FS_MAX_GHOST	 (1ULL << 30) /* content of one unlinked file */
#define FS_MAX_PIPE_SZ	 (1U << 28)   /* F_SETPIPE_SZ value */
#define FS_FD_FLAGS_MASK 0x3fffffffU  /* bits open(2) may carry */

/* Flags never passed to open() on restore. O_CLOEXEC shows in fdinfo flags (it is per
 * fd: FdinfoEntry). glibc's __O_TMPFILE includes O_DIRECTORY: use the kernel's bit. */
#define FS_DROP_FLAGS	 (O_CREAT | O_TRUNC | O_EXCL | O_CLOEXEC | O_NOCTTY)
#define FS_O_TMPFILE_BIT 020000000

/* ---- dump side ------------------------------------------------------------------ */

struct fd_parms {
	pid_t pid;
	int fd;		/* number in the target */
	int lfd;	/* our copy (pidfd_getfd), O_CLOEXEC; -1 if none */
	struct stat st; /* fstat of lfd */
	char *link;	/* readlink /proc/PID/fd/N (malloc'd, freed by the driver) */
	uint32_t flags; /* fdinfo flags, minus O_CLOEXEC */
	uint64_t pos;	/* fdinfo pos */
	bool cloexec;
	int shell_job;
};

struct dump_file { /* one open file description already described */
	FileEntry *fe;
	pid_t pid; /* first holder, for kcmp */
	int fd;
	dev_t dev;
	ino_t ino;
};

struct dump_pipe { /* one pipe or FIFO (by inode), dump-wide */
	dev_t dev;
	ino_t ino;
	uint32_t id;
	bool data_done;
	bool fifo;
	bool end_seen[2]; /* read end, write end seen in some task of the dump */
	pid_t pid;	  /* first holder, for the error line at finish */
	int fd;
};

struct dump_usk { /* one AF_UNIX socket seen in the dump, by inode */
	uint64_t ino, peer;
	pid_t pid;
	int fd;
};

struct usk_diag;  /* fd-unix.c: the sock_diag table, loaded once per dump */
struct inet_dump; /* fd-inet.c: sockets in repair mode and the network lock of a dump */

struct dump_fdref { /* one fd of a dumped task: for fs_dump_file_id */
	pid_t pid;
	uint32_t id;
	dev_t dev;
	ino_t ino;
};

struct fs_dump {
	struct img_dir *d;
	struct fs_dump_opts o;
	struct dump_file *files;
	size_t nfiles, cap_files;
	struct dump_pipe *pipes;
	size_t npipes, cap_pipes;
	uint32_t next_file_id;
	uint32_t next_pipe_id;
	struct img_writer *pipes_data; /* opened on the first pipe with data */
	struct dump_usk *usks;
	size_t nusks, cap_usks;
	struct dump_fdref *refs;
	size_t nrefs, cap_refs;
	struct usk_diag *diag;
	struct inet_dump *inet; /* fd-inet.c, NULL until the first TCP socket */
};

/* ---- restore side --------------------------------------------------------------- */

struct rst_pipe { /* one pipe or FIFO of the task */
	uint32_t id;
	uint8_t *data; /* buffered bytes (owned), may be NULL */
	size_t len;
	/* stub state */
	bool filled; /* data written into the new pipe/FIFO */
	int ends[2]; /* anonymous pipe: new ends (>= base), -1 before */
	bool end_used[2];
};

struct rst_file {
	uint32_t id;
	const struct fd_ops *ops;
	uint32_t flags; /* open flags, sanitized */
	uint64_t pos;
	char *path;    /* reg, fifo (owned) */
	uint32_t rdev; /* chr, tty */
	uint32_t pipe_size;
	struct rst_pipe *pipe; /* pipe, fifo */
	int ghost_fd;	       /* reg ghost / memfd: the restorer's prepared file; else -1 */
	int tmp_fd;	       /* stub: the opened file, >= base; -1 before */
	void *kd;	       /* kind data (malloc'd by prepare, freed by release) */
	/* tree */
	pid_t owner;	       /* first task (in pids[] order) that holds it */
	unsigned int nholders; /* tasks holding it */
	uint64_t group;	       /* descriptions created together (pipe ends, socketpair
				* ends): kind << 56 | id, 0 = none */
	bool shared;	       /* created once in the restorer (at shared_fd) */
	int shared_fd;
};

struct rst_fd {
	int fd;
	bool cloexec;
	struct rst_file *file;
};

struct rst_task { /* one process of the tree */
	pid_t pid;
	struct rst_fd *fds; /* sorted by fd */
	size_t nfds;
	struct rst_file **files; /* the distinct files it uses */
	size_t nfiles;
};

/* The restore context of a whole tree (a single process is a tree of one). */
struct fs_rst {
	struct img_dir *d;
	pid_t pid; /* prepare: the holder named in log lines */
	int shell_job;
	int tty_src;		/* restorer fd 0/1/2 that is a terminal, or -1 */
	struct rst_file *files; /* every file the tree uses, sorted by id */
	size_t nfiles;
	struct rst_pipe *pipes;
	size_t npipes;
	void *pipes_img; /* struct img_buf * of pipes-data.img, lazily loaded */
	struct rst_task *tasks;
	size_t ntasks;
	int tree_base;	      /* above every target fd number of the tree */
	struct rst_task *cur; /* stub: the task being installed */
};

struct fs_rst_tree {
	struct fs_rst r; /* first: fs_rst_prepare hands out &t->r */
};

/* ---- the ops table -------------------------------------------------------------- */

struct fd_ops {
	const char *name;
	FdKind kind;
	/* Does this kind handle p? Pure. */
	bool (*match)(const struct fd_parms *p);
	/* Optional: called with the whole table of the task (all classified) before any
	 * dump(); 0 or -errno (logged). */
	int (*check)(struct fs_dump *d, const struct fd_parms *all, size_t n, size_t i);
	/* Fill fe's sub-message (fe->id and fe->type are set); may write data images.
	 * Sub-messages and strings must be malloc'd (freed with free_unpacked). */
	int (*dump)(struct fs_dump *d, const struct fd_parms *p, FileEntry *fe);
	/* Restorer: validate fe (untrusted) and fill f. 0 or -errno (logged). */
	int (*prepare)(struct fs_rst *r, const FileEntry *fe, struct rst_file *f);
	/* Stub: open f at a number >= base. fd or -errno with a message in err. */
	int (*open)(struct fs_rst *r, struct rst_file *f, int base, char *err, size_t errlen);
	/* Restorer: release what prepare made (not f->path, freed by the driver). */
	void (*release)(struct rst_file *f);
	/* Optional, stub: after every fd of the task r->cur is at its number (epoll
	 * targets); f->tmp_fd is open. Called in the stub of every task holding f. 0 or
	 * -errno with a message in err. */
	int (*late)(struct fs_rst *r, struct rst_file *f, char *err, size_t errlen);
	/* Optional, restorer: after every file of the tree is prepared (cross-file checks,
	 * e.g. a socket's peer). 0 or -errno (logged). */
	int (*linked)(struct fs_rst *r, struct rst_file *f);
	/* Optional, dump: at fs_dump_finish, whole-dump checks (peers in the tree). */
	int (*finish)(struct fs_dump *d);
};

extern const struct fd_ops fd_reg_ops, fd_chr_ops, fd_tty_ops, fd_pipe_ops, fd_fifo_ops;
extern const struct fd_ops fd_eventfd_ops, fd_timerfd_ops, fd_signalfd_ops, fd_memfd_ops;
extern const struct fd_ops fd_inotify_ops, fd_epoll_ops, fd_unix_ops;
extern const struct fd_ops fd_inet_ops;

/* ---- helpers (fs.c / fs-restore.c) ---------------------------------------------- */

/* The dump-wide pipe record for (dev, ino), created if new. NULL on ENOMEM. */
struct dump_pipe *fs_dump_pipe(struct fs_dump *d, dev_t dev, ino_t ino);
/* Write one PipeDataEntry to pipes-data.img (opened on first use). 0 or -errno. */
int fs_dump_pipe_data(struct fs_dump *d, uint32_t pipe_id, const uint8_t *data, size_t len);
/* Peek at the buffered bytes of the pipe/FIFO p (not consumed) and record them once
 * per pipe; *pipe_id and *pipe_size describe it. 0 or -errno (logged). */
int fd_pipe_dump_common(struct fs_dump *d, const struct fd_parms *p, uint32_t *pipe_id,
			uint32_t *pipe_size);

/* The whole /proc/PID/fdinfo/FD of p, malloc'd into *out. 0 or -errno (logged). */
int fs_fdinfo_read(const struct fd_parms *p, char **out);
/* The value after "key:" (and blanks) on the line starting with key, or NULL. */
const char *fs_fdinfo_field(const char *buf, const char *key);
/* The first token of field key parsed in base: 0, -ENOENT (no such line), -EINVAL. */
int fs_fdinfo_u64(const char *buf, const char *key, int base, uint64_t *v);
/* Is p an anon inode of that name ("anon_inode:[eventfd]" or "anon_inode:eventfd")? */
bool fs_is_anon(const struct fd_parms *p, const char *name);

/* Restorer: the task's record of pipe id (created if new, data loaded from
 * pipes-data.img). NULL and logged on error. */
struct rst_pipe *fs_rst_pipe(struct fs_rst *r, uint32_t id);
/* Sanitize open flags from an image. */
uint32_t fs_sanitize_flags(uint32_t flags);
/* A checked absolute path from an image: strdup'd into *out. 0 or -EINVAL (logged). */
int fs_check_path(const char *path, char **out);

/* Stub helpers (no logging, no allocation). */
/* Move fd to the lowest free number >= base (close the old one). New fd or -errno. */
int fs_stub_move_high(int fd, int base);
/* snprintf into err and return -e (e > 0). */
int fs_stub_err(char *err, size_t errlen, int e, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* fd-tty.c: is rdev a terminal (supported with --shell-job)? */
bool fd_tty_is_terminal(dev_t rdev);

/* ghost.c: content of unlinked files. */
int fs_ghost_dump(struct fs_dump *d, const struct fd_parms *p, uint32_t id);
/* Recreate ghost id as an unlinked file next to path; returns an O_RDWR fd or -errno
 * (logged). */
int fs_ghost_prepare(struct fs_rst *r, uint32_t id, const char *path, mode_t mode);
/* Write the content of ghost-<id>.img into fd (sized to it); *size and *mode (the
 * dumped st_mode) are set. 0 or -errno (logged). */
int fs_ghost_fill(struct fs_rst *r, uint32_t id, int fd, uint64_t *size, uint32_t *mode);

/* fd-unix.c: release the sock_diag table. */
void fd_unix_diag_free(struct usk_diag *t);

/* fd-inet.c (from fs_dump_free): end of the dump's TCP state. After a successful dump
 * (fs_dump_finish ran) the sockets stay in repair mode and the lock stays (the tree is
 * killed) unless --leave-running released them at finish; after a failed dump repair
 * is turned off and the lock removed (the tree resumes). NULL d is fine. */
void fd_inet_dump_free(struct fs_dump *d);
/* fs_dump_resume for TCP: repair off and unlock after a finish that will not be used. */
void fd_inet_dump_resume(struct fs_dump *d);

#endif
