/*
 * dirty: which pages of a running process were written since the last look, on kernels
 * without soft-dirty (docs/dirty.md).
 *
 * Primary mode (DIRTY_MODE_UFFD): a userfaultfd is created INSIDE the target by an
 * injected syscall, taken with pidfd_getfd, set up with UFFDIO_API (WP_ASYNC |
 * WP_UNPOPULATED) and UFFDIO_REGISTER mode WP on every VMA the kernel accepts; the ioctls
 * act on the target's mm. A scan is one PAGEMAP_SCAN per tracked VMA on
 * /proc/PID/pagemap (PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC, PAGE_IS_WRITTEN): it
 * returns the written pages and write-protects them again atomically.
 * Fallback mode (DIRTY_MODE_HASH): per-page XXH3_64 of the previous scan; a page whose
 * hash changed is dirty. Correct everywhere, costs a full read of the memory per scan.
 *
 * Contract of dirty_scan's answer (both modes): every page whose content may differ from
 * what it was at the previous scan of the same tracker (or, for the first scan, every
 * page that may hold data) lies in the returned ranges. In UFFD mode the answer is exact
 * for tracked VMAs: a page is reported iff it was written (or newly populated) since the
 * last scan; the first scan reports every populated page. Pages that are not populated
 * are never reported by UFFD mode: the caller selects present pages with pagemap anyway,
 * and a page that vanished (MADV_DONTNEED) must be taken from the caller's pagemap view
 * (absent = zero), never from the parent chain. Memory without tracking (new VMAs,
 * untracked VMAs) is reported whole. Ranges are page aligned, sorted, disjoint, merged.
 *
 * Target invariants: after dirty_arm the target has no ferry mapping, no changed signal
 * disposition, and no new fd except, with DIRTY_ARM_KEEP, the tracking fd at
 * dirty_tracker_kept_fd() (O_CLOEXEC, the highest free slot of its fd table). A failure
 * in dirty_arm closes every fd it created in the target and in ferry (which ends all
 * registrations): the target runs on untracked.
 *
 * Typical workload: arm once (target seized), then a scan per pre-dump round (target
 * seized for a few ms), cron-style across ferry invocations via dirty_save/dirty_attach.
 */
#ifndef FERRY_DIRTY_H
#define FERRY_DIRTY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "engine/proc.h"
#include "engine/remote.h"

struct dirty_range {
	uint64_t start, end; /* [start, end), page aligned */
};

enum dirty_mode { DIRTY_MODE_UFFD = 1, DIRTY_MODE_HASH = 2 };

/* dirty_arm flags */
#define DIRTY_ARM_KEEP                                                                             \
	(1u << 0)		 /* keep the target's copy of the uffd at the reserved fd          \
				  * so tracking outlives this ferry process */
#define DIRTY_ARM_HASH (1u << 1) /* hash mode from the start (tests, --no-uffd) */
#define DIRTY_ARM_SHARED_HASH                                                                      \
	(1u << 2) /* UFFD mode, but MAP_SHARED VMAs (shmem, shared                                 \
		   * files, memfd) by hash of the shared object: also sees                         \
		   * writes that bypass this process's page tables (write(2),                      \
		   * other processes). Kept across dirty_save/dirty_attach. */

#define DIRTY_ARM_CLOSE_STALE                                                                      \
	(1u << 3) /* UFFD mode: first close (injected) every ferry tracking uffd in the            \
		   * target's fd table (an abandoned series keeps its VMAs registered, and         \
		   * ours would get EBUSY). Only when no other process shares its fd table.        \
		   * The VMAs are then read again from smaps (uw flags changed). */

/* Environment: FERRY_DIRTY_FORCE_HASH=1 makes dirty_arm behave as with DIRTY_ARM_HASH
 * (the fallback for kernels without UFFD_FEATURE_WP_ASYNC, testable here). */
#define DIRTY_ENV_FORCE_HASH "FERRY_DIRTY_FORCE_HASH"

struct dirty_tracker;

/* Start tracking process pid. Preconditions: every thread of pid is seized and stopped,
 * rt is an open remote session on one of its threads (remote_init), pidfd is
 * pidfd_open(pid) (struct seized.pidfd), vmas/n is the current VMA list
 * (proc_parse_smaps). Injects userfaultfd(O_CLOEXEC|O_NONBLOCK) (retried with
 * UFFD_USER_MODE_ONLY on EPERM), takes it, registers every VMA it may: specials
 * ([vdso], [vvar], ...) and VM_IO are skipped, VMAs the process registered with its own
 * userfaultfd (VmFlags um/uw) and VMAs the kernel refuses are kept as "untracked: full
 * copy each round" (logged with the reason); PROT_NONE VMAs are not registered (WP
 * markers would allocate page tables for a whole reservation): each scan reports their
 * populated pages, and a part made accessible later (mprotect) is new memory. Without
 * DIRTY_ARM_KEEP the target's copy is closed (injected close) before returning; with it, the copy
 * is moved to the reserved fd. Falls back to hash mode (logged) when the kernel lacks WP_ASYNC, the
 * injected userfaultfd fails, or the target runs under seccomp (nothing is injected then). The
 * first dirty_scan reports every populated page. Returns 0 and *out (free with dirty_free), or
 * -errno (logged; target left untracked and without anything of ours). rt is left open (caller's
 * remote_fini). */
int dirty_arm(struct remote *rt, pid_t pid, int pidfd, const struct proc_vma *vmas, size_t n,
	      unsigned int flags, struct dirty_tracker **out);

/* A later ferry invocation: load the state written by dirty_save at state_path and, in
 * UFFD mode, take the kept fd again with pidfd_getfd(pidfd, kept_fd) and check it is a
 * ferry tracking uffd (anon_inode:[userfaultfd], fdinfo API line with WP_ASYNC). The
 * target need not be stopped. Returns 0 and *out, or (logged with the reason, nothing
 * changed in the target):
 *   -ESTALE  tracking is lost (the target closed the fd, exec'd, or is another process
 *            with the same pid): the caller re-arms with dirty_arm; that round's first scan
 *            reports everything (full copy).
 *   -ENOENT  no state file;  -EINVAL  state file corrupt or for another pid.
 * Hash-mode state needs no fd: the hashes come from the file. */
int dirty_attach(pid_t pid, int pidfd, const char *state_path, struct dirty_tracker **out);

/* One round. vmas/n: the CURRENT VMA list of the target (proc_parse_smaps, right before
 * this call). The target may run or be stopped: pre-dump rounds scan it running (seize,
 * read smaps, release, scan, copy: the scan is outside the freeze), the final dump and
 * `dump --track-mem` stopped. (Lost writes once blamed on stopped scans were a kernel
 * PAGEMAP_SCAN bug worked around in dirty.c: docs/dirty.md.) A VMA that changes between
 * smaps and the scan is caught next round. A write after the scan is reported by the
 * next scan. Tracked VMAs are scanned and
 * re-protected; memory not covered by the previous registrations (mmap, brk growth,
 * mremap, a VMA that lost its registration) is reported whole and registered now; VMAs
 * that no longer exist are dropped; untracked VMAs are reported whole. *out (malloc'd,
 * caller frees; NULL when *nout == 0) gets the dirty ranges. 0 or -errno (logged); after
 * a failure the tracker must be freed and the target re-armed (the scan may have
 * re-protected pages it did not report). */
int dirty_scan(struct dirty_tracker *t, const struct proc_vma *vmas, size_t n,
	       struct dirty_range **out, size_t *nout);

/* For scans while the target runs (pre-dump rounds): dirty_scan then never registers
 * memory it finds new (the VMA list may be stale by then, and registering a stale range
 * splits the VMA that replaced it: the process would see its own mremap fail with
 * EFAULT); such memory is reported whole, and registered by dirty_register_new at the
 * next seized moment. Default off (the final, frozen scan registers as before). */
void dirty_set_running(struct dirty_tracker *t, bool running);

/* Target seized, vmas/n read right now: register every VMA that is not registered yet
 * (no uw/um in VmFlags, not PROT_NONE, not special) and mark it VMF_UFFD_WP in vmas (as
 * smaps would now show it, so the list can be passed to the next dirty_scan, which may
 * run with the target running: it protects them and reports them whole). Ranges the
 * kernel refuses stay untracked (unmarked). 0 or -ENOMEM. */
int dirty_register_new(struct dirty_tracker *t, struct proc_vma *vmas, size_t n);

/* Set VMF_UFFD_WP in every VMA of vmas that t registered (dirty_arm), as smaps would
 * now show it: saves re-reading smaps (a page-table walk) before the first scan. */
void dirty_mark_registered(const struct dirty_tracker *t, struct proc_vma *vmas, size_t n);

/* Write the tracker's state (mode, pid, start time, kept fd, tracked and untracked
 * ranges, hashes in hash mode) to path atomically (tmp + rename, fsync). For cron-style
 * runs: requires DIRTY_ARM_KEEP in UFFD mode (-EINVAL otherwise, logged). 0 or -errno. */
int dirty_save(const struct dirty_tracker *t, const char *path);

/* Stop tracking: unregister every tracked range, close ferry's copy and, when rt is
 * given (an open remote session on the stopped target), the kept copy in the target
 * (injected close). A kept copy without rt stays open but idle (nothing registered; a
 * warning is logged); the final dump passes rt. Frees t. 0 or -errno (logged; t is
 * freed anyway). */
int dirty_disarm(struct dirty_tracker *t, struct remote *rt);

/* Free the tracker, closing ferry's copy of the uffd only (a kept copy in the target keeps
 * tracking alive). NULL is fine. */
void dirty_free(struct dirty_tracker *t);

enum dirty_mode dirty_tracker_mode(const struct dirty_tracker *t);
/* The fd number of the kept copy in the target, or -1 when none. Dumps skip this fd. */
int dirty_tracker_kept_fd(const struct dirty_tracker *t);
/* Number of pages in ranges that are untracked (reported whole every round). */
uint64_t dirty_tracker_untracked_pages(const struct dirty_tracker *t);

/* Is fd of process pid a ferry tracking uffd (anon_inode:[userfaultfd] whose fdinfo API
 * features include WP_ASYNC|WP_UNPOPULATED)? 1 yes, 0 no, -errno when unreadable.
 * For dumps (skip the fd) and for forked children that inherited a kept copy. */
int dirty_fd_probe(pid_t pid, int fd);

/* Test knob: the PAGEMAP_SCAN vector length in regions (0 = default 512, also the
 * maximum: see pm_scan_range in dirty.c for the kernel bug a longer vector hits), so
 * tests can force the "vector full, continue at walk_end" path. */
void dirty_set_scan_vec_len(size_t regions);

#endif
