/*
 * fs: the file descriptors of a process, one fd kind per file (fd-<kind>.c) behind a
 * small ops table (fs-priv.h).
 *
 * Dump (in the ferry process, target frozen): every fd of the task is classified by
 * kind, described in files.img (one FileEntry per open file description, shared ids
 * for descriptions shared between fds), fdinfo-<pid>.img (fd number -> file id,
 * FD_CLOEXEC), plus per-kind data images (pipe buffers, ghost file contents).
 * An fd of a kind ferry does not support fails the dump, naming the fd, its kind and
 * the process, before anything is changed.
 *
 * Restore: fs_rst_prepare() runs in the restorer before the task is created;
 * fs_rst_in_stub() runs inside the new task (a copy of the restorer's memory, before it
 * is taken over by ptrace) and installs every fd at its exact number with its flags and
 * offset, closing every other fd except *keep_fd (moved out of the way if it collides).
 * The stub cannot log: errors come back as -errno plus a message in err.
 */
#ifndef FERRY_FS_H
#define FERRY_FS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct img_dir;
struct fs_dump;
struct fs_rst;

struct fs_dump_opts {
	int shell_job; /* allow tty fds (restored as the restorer's terminal) */
};

/* Start dumping files into d. 0 or -errno. */
int fs_dump_init(struct img_dir *d, const struct fs_dump_opts *o, struct fs_dump **out);
/* Dump the fd table of pid (frozen); pidfd for pidfd_getfd. Writes fdinfo-<pid>.img.
 * 0 or -errno (logged, naming fd, kind and pid). */
int fs_dump_task(struct fs_dump *fd, pid_t pid, int pidfd);
/* Write files.img and per-kind images. 0 or -errno (logged). */
int fs_dump_finish(struct fs_dump *fd);
/* (dump engine, memfd mappings) After fs_dump_task(fd, pid, ...): the FileEntry id of a
 * description held by an fd of pid that refers to the file (dev, ino) (dev as st_dev,
 * i.e. makedev(major, minor) of smaps). 0 and *id, or -ENOENT when pid holds no fd of
 * that file (not logged). Implemented by src/fs; the engine links to it weakly and keeps
 * refusing memfd mappings until it exists. */
int fs_dump_file_id(struct fs_dump *fd, pid_t pid, uint64_t dev, uint64_t ino, uint32_t *id);
void fs_dump_free(struct fs_dump *fd);
/* The dump failed after fs_dump_finish (images not committed, or a refused hand-over)
 * and the tree is about to resume: undo what the finish did to live resources (TCP
 * sockets back out of repair mode, the network lock removed). Idempotent; NULL is fine. */
void fs_dump_resume(struct fs_dump *fd);

/* Load what restoring pid's fds needs (before the task exists). 0 or -errno (logged). */
int fs_rst_prepare(struct img_dir *d, pid_t pid, int shell_job, struct fs_rst **out);
/* In the new task: install all fds. 0 or -errno with a message in err (no logging). */
int fs_rst_in_stub(struct fs_rst *r, int *keep_fd, char *err, size_t errlen);
/* Restorer-side clean-up after the task is restored or failed. NULL is fine. */
void fs_rst_free(struct fs_rst *r);

/*
 * Process trees (issue 3). The restorer creates every task as a descendant of itself
 * (clone3 set_tid), so every task inherits the restorer's fd table at creation. Open
 * file descriptions used by more than one process of the tree (a shared file, both ends
 * of a pipe or socketpair held by different processes, a shared memfd...) are therefore
 * created ONCE in the restorer by fs_rst_tree_prepare, at high fd numbers above every
 * target fd number of the tree; each task's stub then dups the ones it uses to their
 * numbers (sharing offsets and buffers for real), opens its private ones itself, and
 * closes everything else.
 */
struct fs_rst_tree;

/* Load fdinfo/files/data images of every process of pids[] (restorer, before any task
 * exists) and create the shared descriptions. 0 or -errno (logged). The shared
 * descriptions are O_CLOEXEC fds of the restorer (inherited by clone, not by exec); the
 * restorer's RLIMIT_NOFILE soft limit may be raised to place them. A single process is
 * a tree of one: fs_rst_prepare/fs_rst_in_stub are implemented on these calls. */
int fs_rst_tree_prepare(struct img_dir *d, const pid_t *pids, size_t n, int shell_job,
			struct fs_rst_tree **out);
/* In the stub of pid: install its fd table exactly; close every other fd except the
 * n_keep fds of keep[] (moved and updated in place when they collide with a target
 * number; entries < 0 are ignored). Epoll registrations are made here too, in the stub
 * of the process that owned them, so call it for every process of the tree. 0 or
 * -errno with a message in err (no logging); -ENOENT for a pid not prepared. */
int fs_rst_tree_in_stub(struct fs_rst_tree *t, pid_t pid, int *keep, size_t n_keep, char *err,
			size_t errlen);
/* The restorer's fd of a shared description by FileEntry id (e.g. a memfd to map from
 * /proc/<restorer>/fd/N into a task), or -ENOENT. */
int fs_rst_tree_file_fd(struct fs_rst_tree *t, uint32_t file_id);
/* NULL is fine. */
void fs_rst_tree_free(struct fs_rst_tree *t);

#endif
