/*
 * predump: `ferry pre-dump -t PID -D DIR [--prev-images-dir REL]`: one round of
 * iterative memory copy while the tree keeps running (docs/predump.md).
 *
 * A round, for every live process of the tree (each with its own dirty tracker):
 *   seize the tree -> checks -> smaps -> attach the tracker kept from the previous round
 *   (dirty_attach on DIR/REL/dirty-<pid>.state) or arm a new one (DIRTY_ARM_KEEP; the
 *   first round, or when tracking was lost: that process is copied whole, logged) ->
 *   release (the tree runs again) -> dirty_scan while running -> copy the written pages
 *   with process_vm_readv while running -> pagemap-<pid>.img (PE_PRESENT for what was
 *   copied, PE_PARENT for what the chain holds and nobody wrote since) + pages-<pid>.img
 *   + dirty-<pid>.state -> inventory (kind IMG_KIND_PREDUMP, parent REL).
 * The tree is stopped only while the trackers are attached or armed, never while pages
 * are copied.
 *
 * Invariants: a page is PE_PARENT only if the previous round listed it (PRESENT or
 * PARENT: by induction some round stored it) and the tracker did not report it since,
 * inside a current VMA. On any failure after a tracker was armed or scanned here, the
 * tracker is torn down (the tree is seized again to close the kept fd): the next round
 * finds no tracking and copies whole, never trusting a consumed state. The target is
 * left running, with no ferry mapping; the directory is left without inventory (an
 * incomplete round that restore refuses), or removed when this round created it.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/user.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "engine/dirty.h"
#include "engine/dump.h"
#include "engine/engine.h"
#include "img/img.h"

/* One process of the round. */
struct pd_proc {
	pid_t pid;
	struct proc_vma *vmas;
	size_t n_vmas;
	struct dirty_tracker *t;
	bool armed_now;		  /* armed in this invocation (else attached) */
	bool scanned;		  /* the tracker's state moved past the saved one */
	struct dirty_range *held; /* what the chain holds (previous round's pagemap) */
	size_t n_held;
	uint64_t from; /* the previous round stopped copying there (UINT64_MAX: no) */
	uint64_t cut;  /* this round stopped copying there (UINT64_MAX: no) */
	uint64_t pages, parent;
	uint64_t track_ns; /* attach or arm + registration, inside the freeze */
	char *sysc;	   /* sysc-<pid>.img text, built in the freeze, written after it */
	size_t sysc_len;
};

/* Later rounds, per process of the snapshot read before the tree is seized (smaps
 * walks the page tables, ~25 ms per GiB here: too slow inside the freeze): the tracker
 * attached before the freeze (dirty_attach needs no stopped target), the chain's held
 * ranges, or the attach error. */
struct pd_att {
	struct dirty_tracker *t;
	int attach_err;
	struct dirty_range *held;
	size_t n_held;
	uint64_t from;
};

struct predump {
	const struct ferry_opts *o;
	struct proc_snap *snap; /* the tree's VMA lists before the freeze (later rounds) */
	struct pd_att *att;	/* att[i]: for snap[i].pid */
	size_t n_snap;
	struct img_dir *d;
	struct img_dir *prev; /* the previous round, or NULL */
	char prev_path[4096];
	bool dir_existed;
	struct dump_tree tree;
	struct pd_proc *p;
	size_t n;
	uint64_t t0, freeze_ns, scan_ns, copy_ns;
	uint64_t budget;	       /* --max-bytes: pages this round may still copy */
	uint64_t seize_ns, release_ns; /* parts of the freeze */
};

int predump_prev_open(const struct ferry_opts *o, char *path, size_t len, struct img_dir **out)
{
	const char *rel = o->prev_images_dir;
	const InventoryEntry *inv;
	int r;

	*out = NULL;
	if (snprintf(path, len, "%s/%s", rel[0] == '/' ? "" : o->images_dir, rel) >= (int)len)
		return pr_err_ret(-ENAMETOOLONG, "--prev-images-dir '%s' is too long", rel);
	if ((r = img_dir_open(path, out)) < 0)
		return pr_err_ret(r, "cannot open the previous round '%s'", path);
	inv = img_dir_inventory(*out);
	/* a dump with --leave-running --track-mem may be a parent too */
	if ((inv->kind != IMG_KIND_PREDUMP && inv->kind != IMG_KIND_DUMP) ||
	    inv->root_pid != (uint32_t)o->pid) {
		img_dir_free(*out);
		*out = NULL;
		return pr_err_ret(-EINVAL, "'%s' is not a pre-dump round of process %d", path,
				  o->pid);
	}
	return 0;
}

int predump_state_store(struct img_dir *d, const struct dirty_tracker *t, pid_t pid)
{
	char tmp[4200], name[64], *buf = NULL;
	struct img_writer *w = NULL;
	size_t len = 0;
	int r;

	snprintf(tmp, sizeof(tmp), "%s/.dirty-%d.state.tmp", img_dir_path(d), pid);
	if ((r = dirty_save(t, tmp)) < 0)
		return r;
	r = read_file(tmp, &buf, &len, 1u << 30);
	(void)unlink(tmp);
	if (r < 0)
		return pr_err_ret(r, "cannot read back '%s'", tmp);
	r = img_writer_open(d, img_name(name, "dirty-%d.state", pid), IMG_MAGIC_RAW, &w);
	if (r == 0 && (r = img_write_raw(w, buf, len)) < 0)
		img_writer_abort(w);
	else if (r == 0)
		r = img_writer_close(w);
	free(buf);
	return r;
}

/* ---- interrupted sleeps across rounds --------------------------------------------
 * A freeze interrupts a restartable sleep; resumed, the thread continues in
 * restart_syscall (219), whose kernel restart block a restore cannot recreate. Each
 * round records, per thread stopped at a syscall, the syscall number with its rip and
 * first four arguments (unchanged by the restart) in sysc-<pid>.img: one text line
 * "tid nr rip rdi rsi rdx r10" (hex). A thread found in restart_syscall takes the
 * number recorded by the previous round for the same tid, rip and arguments; the final
 * dump stores that number, so restore re-runs the call as after a plain dump. */
#define NR_RESTART_SYSCALL 219
#define ERESTART_LOW	   512 /* -ERESTARTSYS .. -ERESTART_RESTARTBLOCK (516) */
#define ERESTART_HIGH	   516

int predump_sc_lookup(const char *prev_path, pid_t pid, pid_t tid, const struct user_regs_struct *r,
		      uint64_t *nr)
{
	char path[4200], *buf, *line;
	size_t len;
	int found = 0;

	snprintf(path, sizeof(path), "%s/sysc-%d.img", prev_path, pid);
	if (read_file(path, &buf, &len, 1u << 20) < 0)
		return 0;
	for (line = buf; line && *line && !found;
	     line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
		unsigned long long v[7];
		if (sscanf(line, "%llx %llx %llx %llx %llx %llx %llx", &v[0], &v[1], &v[2], &v[3],
			   &v[4], &v[5], &v[6]) != 7)
			continue;
		if ((pid_t)v[0] == tid && v[2] == r->rip && v[3] == r->rdi && v[4] == r->rsi &&
		    v[5] == r->rdx && v[6] == r->r10 && v[1] != NR_RESTART_SYSCALL && v[1] < 1024) {
			*nr = v[1];
			found = 1;
		}
	}
	free(buf);
	return found;
}

/* Record the interrupted syscalls of c's threads (seized) for the next round, as text
 * in pp (written by pd_sc_write once the tree runs again). */
static int pd_sc_collect(struct predump *s, struct dump_ctx *c, struct pd_proc *pp)
{
	FILE *f = open_memstream(&pp->sysc, &pp->sysc_len);

	if (!f)
		return -ENOMEM;
	for (size_t k = 0; k < c->sz.n_tids; k++) {
		struct user_regs_struct g;
		uint64_t nr;
		long rax;
		if (ptrace(PTRACE_GETREGS, c->sz.tids[k], NULL, &g) < 0)
			continue;
		rax = (long)g.rax;
		if ((long)g.orig_rax < 0 || rax < -ERESTART_HIGH || rax > -ERESTART_LOW)
			continue;
		nr = g.orig_rax;
		if (nr == NR_RESTART_SYSCALL &&
		    !(s->prev && predump_sc_lookup(s->prev_path, c->pid, c->sz.tids[k], &g, &nr)))
			continue;
		fprintf(f, "%x %llx %llx %llx %llx %llx %llx\n", c->sz.tids[k],
			(unsigned long long)nr, g.rip, g.rdi, g.rsi, g.rdx, g.r10);
	}
	return fclose(f) == 0 ? 0 : -ENOMEM;
}

static int pd_sc_write(struct predump *s, struct pd_proc *pp)
{
	struct img_writer *w = NULL;
	char name[64];
	int r = img_writer_open(s->d, img_name(name, "sysc-%d.img", pp->pid), IMG_MAGIC_RAW, &w);

	if (r == 0 && (r = img_write_raw(w, pp->sysc ? pp->sysc : "", pp->sysc_len)) < 0)
		img_writer_abort(w);
	else if (r == 0)
		r = img_writer_close(w);
	return r;
}

/* Arm a new tracker in c (seized): its own remote session on the leader. */
static int pd_exact(pid_t pid, const struct proc_vma *vmas, size_t n, struct proc_vma **out,
		    size_t **oidx, size_t *nout);

bool dump_files_shared(const struct dump_tree *t, const struct dump_ctx *c)
{
	if (c->files_owner)
		return true;
	for (size_t i = 0; i < t->n; i++)
		if (t->p[i].files_owner == c->pid)
			return true;
	return false;
}

static int pd_arm(const struct dump_tree *tree, struct dump_ctx *c, struct pd_proc *pp, bool snap)
{
	unsigned int flags =
		DIRTY_ARM_KEEP | (dump_files_shared(tree, c) ? 0 : DIRTY_ARM_CLOSE_STALE);
	struct remote rt = { 0 };
	/* with a snapshot, only the VMAs /proc/PID/maps still shows (pd_exact leaves
	 * vmas NULL when it fails: nothing of c's list may be freed here) */
	struct proc_vma *vmas = snap ? NULL : c->vmas;
	size_t n = snap ? 0 : c->n_vmas, *idx = NULL;
	uint64_t t0 = now_ns(), t1 = 0, t2 = 0;
	int r = snap ? pd_exact(c->pid, c->vmas, c->n_vmas, &vmas, &idx, &n) : 0;
	if (r == 0 && (t1 = now_ns()) && (r = remote_init(&rt, c->pid, 0)) == 0) {
		t2 = now_ns();
		r = dirty_arm(&rt, c->pid, c->sz.pidfd, vmas, n, flags, &pp->t);
	}
	pr_debug("pre-dump: process %d: maps %.2f ms, remote_init %.2f ms, dirty_arm %.2f ms",
		 c->pid, t1 ? (t1 - t0) / 1e6 : 0.0, t2 ? (t2 - t1) / 1e6 : 0.0,
		 t2 ? (now_ns() - t2) / 1e6 : 0.0);
	if (snap) {
		free(vmas);
		free(idx);
	}
	/* the scan must see the registrations (VmFlags uw), else it takes them for new
	 * memory: mark them instead of reading smaps again */
	if (r == 0)
		dirty_mark_registered(pp->t, c->vmas, c->n_vmas);
	if (remote_fini(&rt) < 0 && r == 0) {
		dirty_free(pp->t); /* cannot happen in practice: fini after a good session */
		pp->t = NULL;
		r = -EIO;
	}
	pp->armed_now = r == 0;
	return r;
}

#define PD_MAX_SNAP 4096

/* Before the freeze (rounds after the first): the processes of the tree as they are
 * now (children of each main thread, breadth first) and their smaps. Best effort: a
 * process missed here is read while seized; one that vanished is simply absent. */
static int pd_presnap(struct predump *s)
{
	int r = proc_snap_tree(s->o->pid, &s->snap, &s->n_snap, PD_MAX_SNAP);
	if (r == 0 && !(s->att = calloc(s->n_snap + 1, sizeof(*s->att))))
		r = -ENOMEM;
	return r;
}

static struct pd_att *pd_att_find(struct predump *s, pid_t pid)
{
	for (size_t i = 0; i < s->n_snap; i++)
		if (s->snap[i].pid == pid)
			return &s->att[i];
	return NULL;
}

/* Later rounds, before the freeze: attach to every listed process's tracker and read
 * what the chain holds for it (state file, pidfd_getfd, the previous pagemap: up to
 * tens of ms under load, none of it needs the target stopped). A process that exec'd
 * or closed the fd in between is caught by the scan (its VMAs are not uw: whole) and
 * by the next round's attach. -ENOMEM only; attach errors are kept per process. */
static int pd_preattach(struct predump *s)
{
	char path[4200];

	for (size_t i = 0; s->prev && i < s->n_snap; i++) {
		struct pd_att *sn = &s->att[i];
		pid_t pid = s->snap[i].pid;
		int pidfd = sys_pidfd_open(pid, 0), r;
		if (pidfd < 0)
			continue; /* gone, or attached while seized */
		snprintf(path, sizeof(path), "%s/dirty-%d.state", s->prev_path, pid);
		r = dirty_attach(pid, pidfd, path, &sn->t);
		close(pidfd);
		if (r == 0) {
			r = dump_held_ranges(s->prev, pid, &sn->held, &sn->n_held, &sn->from);
			if (r == -ENOENT)
				r = 0; /* nothing held: every page is copied */
		}
		if (r == -ENOMEM)
			return r;
		if (r < 0 && sn->t) {
			dirty_free(sn->t);
			sn->t = NULL;
		}
		sn->attach_err = r;
	}
	return 0;
}

/* The VMAs of a snapshot list whose bounds /proc/PID/maps still shows exactly (target
 * seized; cheap: no page-table walk), as shallow copies in *out with their indexes in
 * *oidx: only those are registered, so a stale range never splits the VMA that
 * replaced it; the others are reported whole by the scan and registered next round.
 * 0 or -errno. */
static int pd_exact(pid_t pid, const struct proc_vma *vmas, size_t n, struct proc_vma **out,
		    size_t **oidx, size_t *nout)
{
	char path[64], *buf, *line;
	size_t len, k = 0;
	struct proc_vma *cand = calloc(n ? n : 1, sizeof(*cand));
	size_t *idx = calloc(n ? n : 1, sizeof(*idx));
	int r = -ENOMEM;

	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	if (!cand || !idx || (r = read_file(path, &buf, &len, 64u << 20)) < 0) {
		free(cand);
		free(idx);
		return r;
	}
	size_t j = 0;
	for (line = buf; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
		unsigned long long a, b;
		if (sscanf(line, "%llx-%llx", &a, &b) != 2)
			continue;
		while (j < n && vmas[j].start < a)
			j++;
		if (j < n && vmas[j].start == a && vmas[j].end == b) {
			cand[k] = vmas[j];
			idx[k++] = j;
		}
	}
	free(buf);
	*out = cand; /* shallow copies: paths stay owned by vmas */
	*oidx = idx;
	*nout = k;
	return 0;
}

static int pd_register_exact(struct pd_proc *pp, struct proc_vma *vmas, size_t n)
{
	struct proc_vma *cand = NULL;
	size_t *idx = NULL, k = 0;
	int r = pd_exact(pp->pid, vmas, n, &cand, &idx, &k);
	if (r == 0 && (r = dirty_register_new(pp->t, cand, k)) == 0)
		for (size_t i = 0; i < k; i++)
			vmas[idx[i]].vmflags |= cand[i].vmflags & VMF_UFFD_WP;
	free(cand);
	free(idx);
	return r;
}

/* Attach to the tracker of the previous round, or arm one (full copy, reason logged). */
static int pd_track(struct predump *s, struct dump_ctx *c, struct pd_proc *pp, bool snap)
{
	char path[4200];
	int r = -ENOENT;

	if (s->prev) {
		struct pd_att *sn = pd_att_find(s, c->pid);
		if (sn && (sn->t || sn->attach_err)) { /* attached before the freeze */
			pp->t = sn->t;
			pp->held = sn->held;
			pp->n_held = sn->n_held;
			pp->from = sn->from;
			r = sn->attach_err;
			sn->t = NULL;
			sn->held = NULL;
			if (r == 0)
				return 0;
		} else {
			snprintf(path, sizeof(path), "%s/dirty-%d.state", s->prev_path, c->pid);
			r = dirty_attach(c->pid, c->sz.pidfd, path, &pp->t);
			if (r == 0) {
				r = dump_held_ranges(s->prev, c->pid, &pp->held, &pp->n_held,
						     &pp->from);
				if (r == -ENOENT)
					r = 0; /* nothing held: every page is copied */
				return r;
			}
		}
		pr_info("pre-dump: process %d: no tracking from the previous round (%s): "
			"armed again, copied whole",
			c->pid,
			r == -ENOENT   ? "new process or no state file"
			: r == -ESTALE ? "tracking lost: fd closed, exec or pid reused"
				       : "state file refused");
	}
	return pd_arm(&s->tree, c, pp, snap);
}

/* Seized part: checks, smaps, trackers. */
static int pd_seized(struct predump *s)
{
	struct dump_tree *t = &s->tree;
	int r = dump_tree_check(t);

	if (r == 0 && !(s->p = calloc(t->n, sizeof(*s->p))))
		r = -ENOMEM;
	for (size_t i = 0; r == 0 && i < t->n; i++) {
		struct dump_ctx *c = &t->p[i];
		if (c->zombie)
			continue;
		struct pd_proc *pp = &s->p[s->n++];
		uint64_t t0 = now_ns(), t1, t2;
		bool snap;
		pp->pid = c->pid;
		pp->from = pp->cut = UINT64_MAX;
		c->vmas = proc_snap_take(s->snap, s->n_snap, c->pid, &c->n_vmas);
		snap = c->vmas != NULL;
		if (!snap && (r = proc_parse_smaps(c->pid, &c->vmas, &c->n_vmas)) < 0)
			break;
		t1 = now_ns();
		if ((r = dump_vmas_check(c)) < 0 || (r = pd_sc_collect(s, c, pp)) < 0 ||
		    (r = pd_track(s, c, pp, snap)) < 0)
			break;
		t2 = now_ns();
		/* memory new since the last round is registered now, while seized (the
		 * running scan must not: dirty_set_running) */
		if (!pp->armed_now &&
		    (r = snap ? pd_register_exact(pp, c->vmas, c->n_vmas)
			      : dirty_register_new(pp->t, c->vmas, c->n_vmas)) < 0)
			break;
		dirty_set_running(pp->t, true);
		pp->track_ns = now_ns() - t1;
		pr_debug("pre-dump: process %d seized: smaps %.2f ms%s, %s %.2f ms, register new "
			 "memory %.2f ms",
			 c->pid, (t1 - t0) / 1e6, snap ? " (read before the freeze)" : "",
			 pp->armed_now ? "arm" : "attach", (t2 - t1) / 1e6, (now_ns() - t2) / 1e6);
		pp->vmas = c->vmas; /* ours now: the tree is released before the copy */
		pp->n_vmas = c->n_vmas;
		c->vmas = NULL;
		c->n_vmas = 0;
	}
	return r;
}

/* vmas-<pid>.img: the round's VMA layout (an MmEntry with only its vmas), which the
 * warm destination of a migration stages the memory by (docs/migrate.md). */
static int pd_vmas_write(struct predump *s, const struct pd_proc *pp)
{
	char name[64];
	MmEntry mm;
	VmaEntry *ve = calloc(pp->n_vmas + 1, sizeof(*ve));
	VmaEntry **vp = calloc(pp->n_vmas + 1, sizeof(*vp));
	struct img_writer *w = NULL;
	int r = -ENOMEM;

	if (ve && vp) {
		mm_entry__init(&mm);
		for (size_t i = 0; i < pp->n_vmas; i++) {
			dump_vma_fill(&pp->vmas[i], &ve[i]);
			vp[i] = &ve[i];
		}
		mm.n_vmas = pp->n_vmas;
		mm.vmas = vp;
		r = img_writer_open(s->d, img_name(name, "vmas-%d.img", pp->pid), IMG_MAGIC_MM, &w);
		if (r == 0 && (r = img_write_pb(w, &mm.base)) < 0)
			img_writer_abort(w);
		else if (r == 0)
			r = img_writer_close(w);
	}
	free(ve);
	free(vp);
	return r;
}

/* Running part for one process: scan, copy, state. */
static int pd_copy(struct predump *s, struct pd_proc *pp)
{
	struct dirty_range *dirty = NULL;
	size_t nd = 0;
	uint64_t t0 = now_ns();
	int r = dirty_scan(pp->t, pp->vmas, pp->n_vmas, &dirty, &nd);

	pp->scanned = true;
	s->scan_ns += now_ns() - t0;
	/* the previous round stopped copying at pp->from: the rest is new to the chain */
	if (r == 0 && pp->held && (r = dump_dirty_from(&dirty, &nd, pp->from)) < 0)
		free(dirty);
	if (r < 0)
		return r;
	struct dump_ctx c = { .o = s->o,
			      .pid = pp->pid,
			      .d = s->d,
			      .vmas = pp->vmas,
			      .n_vmas = pp->n_vmas,
			      .running = true,
			      /* without a held set (first round, re-armed) the scan reported
			       * every populated page: the plain selection is the same */
			      .delta = pp->held != NULL,
			      .dirty = dirty,
			      .n_dirty = nd,
			      .held = pp->held,
			      .n_held = pp->n_held,
			      .budget = s->o->max_bytes ? &s->budget : NULL };
	t0 = now_ns();
	r = pd_sc_write(s, pp);
	if (r == 0)
		r = pd_vmas_write(s, pp);
	if (r == 0)
		r = dump_pages_write(&c);
	s->copy_ns += now_ns() - t0;
	free(dirty);
	pp->pages = c.pages_written;
	pp->parent = c.pages_parent;
	pp->cut = c.cut;
	if (r == 0)
		r = predump_state_store(s->d, pp->t, pp->pid);
	if (r == 0 && dirty_tracker_untracked_pages(pp->t))
		pr_debug("pre-dump: process %d: %llu pages untracked (copied whole every round)",
			 pp->pid, (unsigned long long)dirty_tracker_untracked_pages(pp->t));
	return r;
}

/* After a failure: a tracker armed or scanned here no longer matches any saved state;
 * close it in the target (seize again for the injected close) so the next round sees
 * -ESTALE and copies whole. Without a session, unregistering leaves an idle fd whose
 * ranges the next scan reports whole (docs/dirty.md). */
static void pd_untrack(struct pd_proc *pp)
{
	struct seized sz = { .pidfd = -1 };
	struct remote rt = { 0 };
	bool seized = false;

	if (!pp->armed_now && !pp->scanned) {
		dirty_free(pp->t); /* the saved state still describes it exactly */
		pp->t = NULL;
		return;
	}
	if ((seized = seize_process(pp->pid, &sz) == 0) && remote_init(&rt, pp->pid, 0) == 0) {
		(void)dirty_disarm(pp->t, &rt);
		(void)remote_fini(&rt);
	} else {
		(void)dirty_disarm(pp->t, NULL);
	}
	pp->t = NULL;
	if (seized)
		seize_release(&sz, SEIZE_RESUME);
	pr_info("pre-dump: process %d: tracking stopped after the failure", pp->pid);
}

/* Remove the directory this failed round created (only regular files are in it). */
static void pd_rmdir(struct predump *s)
{
	DIR *dir = opendir(s->o->images_dir);
	struct dirent *e;
	if (!dir)
		return;
	while ((e = readdir(dir)))
		if (e->d_type == DT_REG)
			(void)unlinkat(dirfd(dir), e->d_name, 0);
	closedir(dir);
	(void)rmdir(s->o->images_dir);
}

static int pd_commit(struct predump *s)
{
	InventoryEntry inv;
	img_inventory_init(&inv);
	inv.root_pid = s->o->pid;
	inv.kind = IMG_KIND_PREDUMP;
	inv.parent = s->prev ? (char *)s->o->prev_images_dir : NULL;
	inv.has_dump_time_ns = 1;
	inv.dump_time_ns = (uint64_t)time(NULL) * 1000000000ull;
	return img_dir_commit(s->d, &inv);
}

/* Did the round stop at its byte budget (some process not copied to its end)? */
static bool pd_partial(const struct predump *s)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->p[i].cut != UINT64_MAX)
			return true;
	return false;
}

/* --json: one line {"round": {...}} on stdout for the round (docs/predump.md). */
static void pd_json(const struct predump *s, uint64_t pages, uint64_t parent, bool partial)
{
	uint64_t track = 0;

	for (size_t i = 0; i < s->n; i++)
		track += s->p[i].track_ns;
	printf("{\"round\": {\"kind\": \"pre-dump\", \"pid\": %d, \"first\": %s, "
	       "\"freeze_ms\": %.3f, \"seize_ms\": %.3f, \"track_ms\": %.3f, \"release_ms\": %.3f, "
	       "\"scan_ms\": %.3f, \"copy_ms\": %.3f, "
	       "\"total_ms\": %.3f, \"pages_written\": %llu, \"pages_parent\": %llu, "
	       "\"bytes\": %llu, \"partial\": %s, \"procs\": [",
	       s->o->pid, s->prev ? "false" : "true", s->freeze_ns / 1e6, s->seize_ns / 1e6,
	       track / 1e6, s->release_ns / 1e6, s->scan_ns / 1e6, s->copy_ns / 1e6,
	       (now_ns() - s->t0) / 1e6, (unsigned long long)pages, (unsigned long long)parent,
	       (unsigned long long)pages * page_size, partial ? "true" : "false");
	for (size_t i = 0; i < s->n; i++) {
		const struct pd_proc *pp = &s->p[i];
		printf("%s{\"pid\": %d, \"armed\": %s, \"mode\": \"%s\", \"track_ms\": %.3f, "
		       "\"pages_written\": %llu, \"pages_parent\": %llu}",
		       i ? ", " : "", pp->pid, pp->armed_now ? "true" : "false",
		       pp->t && dirty_tracker_mode(pp->t) == DIRTY_MODE_HASH ? "hash" : "uffd",
		       pp->track_ns / 1e6, (unsigned long long)pp->pages,
		       (unsigned long long)pp->parent);
	}
	printf("]}}\n");
	fflush(stdout);
}

static int pd_finish(struct predump *s, int r)
{
	uint64_t pages = 0, parent = 0;
	if (s->tree.p)
		dump_tree_release(&s->tree, SEIZE_RESUME);
	for (size_t i = 0; i < s->n; i++) {
		pages += s->p[i].pages;
		parent += s->p[i].parent;
	}
	bool partial = pd_partial(s);
	if (r == 0 && s->o->json)
		pd_json(s, pages, parent, partial);
	for (size_t i = 0; i < s->n; i++) {
		struct pd_proc *pp = &s->p[i];
		if (r < 0 && pp->t)
			pd_untrack(pp);
		dirty_free(pp->t);
		proc_vmas_free(pp->vmas, pp->n_vmas);
		free(pp->held);
		free(pp->sysc);
	}
	if (r < 0 && s->d && !s->dir_existed)
		pd_rmdir(s);
	if (r == 0 && s->o->scan_ns)
		*s->o->scan_ns = s->scan_ns;
	if (r == 0 && s->o->partial)
		*s->o->partial = partial;
	if (r == 0)
		pr_info("pre-dump of %d (%zu processes) into '%s': %llu pages copied, %llu in "
			"the parent chain%s; freeze %.2f ms, scan %.2f ms, copy %.1f ms, total "
			"%.1f ms",
			s->o->pid, s->n, s->o->images_dir, (unsigned long long)pages,
			(unsigned long long)parent,
			partial ? " (partial: --max-bytes reached, the next round copies "
				  "the rest)"
				: "",
			s->freeze_ns / 1e6, s->scan_ns / 1e6, s->copy_ns / 1e6,
			(now_ns() - s->t0) / 1e6);
	free(s->p);
	for (size_t i = 0; s->att && i < s->n_snap; i++) {
		dirty_free(s->att[i].t); /* attached, never used: its state is still exact */
		free(s->att[i].held);
	}
	free(s->att);
	proc_snap_free(s->snap, s->n_snap);
	img_dir_free(s->prev);
	img_dir_free(s->d);
	return r;
}

int predump_main(const struct ferry_opts *o)
{
	struct predump s = { .o = o, .tree = { .o = o }, .t0 = now_ns() };
	struct stat sb;
	int r;

	/* at least one page: a round always makes progress */
	s.budget = o->max_bytes ? max_t(uint64_t, 1, o->max_bytes / page_size) : 0;

	if (o->pid <= 0 || o->pid == getpid())
		return pr_err_ret(-EINVAL, "pre-dump: invalid pid %d", o->pid);
	if (!o->images_dir || !*o->images_dir)
		return pr_err_ret(-EINVAL, "pre-dump: no images directory (-D)");
	s.dir_existed = stat(o->images_dir, &sb) == 0;
	if ((r = img_dir_create(o->images_dir, &s.d)) < 0)
		goto out;
	/* after DIR exists: REL is relative to it ("../pre1") */
	if (o->prev_images_dir &&
	    (r = predump_prev_open(o, s.prev_path, sizeof(s.prev_path), &s.prev)) < 0)
		goto out;
	if ((r = pd_presnap(&s)) < 0 || (r = pd_preattach(&s)) < 0)
		goto out;
	uint64_t f0 = now_ns(), f1, f2;
	if ((r = dump_tree_seize(&s.tree)) < 0)
		goto out;
	f1 = now_ns();
	r = pd_seized(&s);
	/* the tree as it is now, for the warm destination of a migration (no restore
	 * reads a pre-dump round's pstree) */
	if (r == 0)
		r = dump_pstree_write(&s.tree, s.d);
	f2 = now_ns();
	dump_tree_release(&s.tree, SEIZE_RESUME); /* the tree runs again */
	s.freeze_ns = now_ns() - f0;
	s.seize_ns = f1 - f0;
	s.release_ns = now_ns() - f2;
	for (size_t i = 0; r == 0 && i < s.n; i++)
		r = pd_copy(&s, &s.p[i]);
	if (r == 0)
		r = pd_commit(&s);
out:
	return pd_finish(&s, r);
}
