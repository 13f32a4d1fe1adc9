/*
 * dump-mem: the address space of one process -> mm-<pid>.img, pagemap-<pid>.img and
 * pages-<pid>.img. Also the VMA checks (what cannot be dumped is refused by name) and
 * the link of memfd mappings to their fd (fs_dump_file_id).
 *
 * Which pages are stored (the agreement with restore, docs/dump.md):
 *  - anonymous private VMAs (heap, stack included): present or swapped pages whose
 *    content is not all zero; zero pages are absent from the images and read as zero
 *    after restore;
 *  - private file VMAs: pages that are present and not file pages (COW'd) or swapped,
 *    zero content included;
 *  - shared anonymous VMAs: every page the shmem object holds (SEEK_DATA on
 *    /proc/PID/map_files, whoever faulted it in), zero ones skipped;
 *  - shared file VMAs, vdso, vvar, vsyscall: nothing.
 * PagemapEntry runs never cross a VMA boundary; page data lies in entry order.
 *
 * Workload: up to many GiB per process, so the copy is batched and pipelined: the
 * populated ranges come from one PAGEMAP_SCAN ioctl per VMA (or, on kernels without it,
 * /proc/PID/pagemap read in 512 KiB chunks); pages are pulled with process_vm_readv (up
 * to 1024 remote iovecs, BATCH_BYTES per call) straight into a slot of a small ring,
 * zero pages are squeezed out in place, the slot is hashed (img_writer_account) and
 * handed to a writer thread that writes it at its offset (a pwrite() to the local file,
 * whose writeback it starts with sync_file_range so the final fsync is short, or
 * img_writer_put() to the page server's sender when the images are streamed). Ranges
 * process_vm_readv cannot read (PROT_NONE: EFAULT) are read through /proc/PID/mem.
 *
 * Direct batches (local tmpfs file only): writing into tmpfs costs more than reading
 * (each new page-cache page is allocated and charged: ~2.5x the process_vm_readv time
 * on the benchmark VM), and writes to one inode serialize on its lock. So when the ring
 * is full (the writer thread is behind), the reading thread does not wait: it maps the
 * file's next range, populates it (MADV_POPULATE_WRITE: pages allocated without the
 * inode lock, an error instead of SIGBUS when tmpfs is full, which then falls back to
 * the ring) and reads the batch straight into the file. Both cores then fill the file;
 * the data lands at the same offsets, in the same order, hashed in order by the reader.
 * The file is grown with ftruncate ahead of direct batches and cut to its real length at
 * the end. FERRY_DUMP_DIRECT=0 turns direct batches off; FERRY_DUMP_DIRECT=always
 * makes every batch direct, on any filesystem (tests: zdtm writes to ext4 and dumps
 * small processes, which would never take this path).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "common/wring.h"
#include "engine/dump.h"
#include "fs/fs.h"
#include "img/img.h"
#include "pagemap.pb-c.h"

/* src/fs provides it (fs.h); until it does, memfd mappings stay refused. */
#pragma weak fs_dump_file_id

#define PM_PRESENT  (1ULL << 63)
#define PM_SWAP	    (1ULL << 62)
#define PM_FILE	    (1ULL << 61)
#define PM_CHUNK    65536      /* pagemap entries per read (512 KiB) */
#define BATCH_BYTES (8u << 20) /* page data per process_vm_readv */
#define BATCH_IOV   1024
#define MAX_RUN	    UINT32_MAX /* pages per PagemapEntry */

/* PAGEMAP_SCAN, uapi of Linux 6.7 (include/uapi/linux/fs.h); our headers are 6.1. */
#define PAGE_IS_FILE	(1ULL << 2)
#define PAGE_IS_PRESENT (1ULL << 3)
#define PAGE_IS_SWAPPED (1ULL << 4)
#define PAGE_IS_PFNZERO (1ULL << 5)
struct pm_region {
	uint64_t start, end, categories;
};
struct pm_scan_arg {
	uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
	uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)

enum page_policy { POL_NONE, POL_ANON, POL_FILE_PRIVATE };

struct run {
	uint64_t vaddr;
	uint64_t len; /* bytes */
	uint32_t vma; /* index in c->vmas */
	bool check_zero;
	bool via_mem; /* PROT_NONE: process_vm_readv cannot read it */
};

struct pe { /* one PagemapEntry in memory */
	uint64_t vaddr;
	uint32_t nr;
	uint32_t vma;
};

/* Reader -> writer hand-off: NBUF batch buffers (common/wring.h). */
#define NBUF 4

struct pages_ctx {
	struct dump_ctx *c;
	int pm_fd, mem_fd;
	struct img_writer *w;
	int wfd;
	char wname[64]; /* pages-<pid>.img, for error lines */
	uint8_t *buf;	/* the batch being filled (a slot of the ring, or a direct map) */
	struct wring *ring;
	unsigned slot;	       /* the ring slot p->buf is (when not direct) */
	size_t slot_len[NBUF]; /* each queued slot's data: bytes, file offset */
	uint64_t slot_off[NBUF];
	uint64_t written, synced; /* writer thread: bytes written, writeback started */
	uint64_t file_off;	  /* page data bytes submitted so far: the next batch's offset */
	uint64_t file_size;	  /* the local file's size as grown for direct batches */
	bool direct_ok;		  /* direct batches allowed (local tmpfs file) */
	bool direct_all;	  /* every batch direct (FERRY_DUMP_DIRECT=always) */
	uint64_t n_direct;	  /* direct batches done */
	struct run runs[BATCH_IOV];
	size_t n_runs;
	uint64_t batch_len;
	bool no_scan; /* kernel without PAGEMAP_SCAN: read pagemap */
	struct pe *ents;
	size_t n_ents, cap_ents;
	uint64_t nr_pages;
	uint64_t selected; /* pages queued for copy (zero ones included): the budget's count */
	struct pe *par;	   /* PE_PARENT runs (delta mode), in address order */
	size_t n_par, cap_par;
	uint64_t nr_parent;
};

static bool kind_is_anon(enum proc_vma_kind k)
{
	return k == PVMA_ANON || k == PVMA_HEAP || k == PVMA_STACK || k == PVMA_SHMEM_ANON;
}

static enum page_policy vma_policy(const struct proc_vma *v)
{
	switch (v->kind) {
	case PVMA_ANON:
	case PVMA_HEAP:
	case PVMA_STACK:
	case PVMA_SHMEM_ANON:
		return POL_ANON;
	case PVMA_FILE:
		return v->shared ? POL_NONE : POL_FILE_PRIVATE;
	default:
		return POL_NONE;
	}
}

static bool kind_is_special(enum proc_vma_kind k)
{
	return k == PVMA_VDSO || k == PVMA_VVAR || k == PVMA_VVAR_VCLOCK || k == PVMA_VSYSCALL;
}

static bool is_memfd(const struct proc_vma *v)
{
	return v->kind == PVMA_FILE && v->deleted && v->path && !strncmp(v->path, "/memfd:", 7);
}

/* Does pid hold an fd of the file (dev, ino)? */
static bool holds_fd_of(pid_t pid, dev_t dev, uint64_t ino)
{
	char path[64];
	struct dirent *e;
	bool found = false;
	snprintf(path, sizeof(path), "/proc/%d/fd", pid);
	DIR *d = opendir(path);
	if (!d)
		return false;
	while (!found && (e = readdir(d))) {
		struct stat sb;
		if (e->d_name[0] != '.' && fstatat(dirfd(d), e->d_name, &sb, 0) == 0)
			found = sb.st_dev == dev && sb.st_ino == ino;
	}
	closedir(d);
	return found;
}

/* A memfd mapping can be dumped when the process holds the memfd as an fd too (its
 * content and identity then come from src/fs) and src/fs can name it. */
static bool memfd_ok(const struct dump_ctx *c, const struct proc_vma *v)
{
	const char *p = v->path, *why;
	if (!holds_fd_of(c->pid, makedev(v->dev_major, v->dev_minor), v->ino))
		why = "without holding the memfd as an fd";
	else if (!fs_dump_file_id)
		why = "(the fs module cannot link it to its fd yet)";
	else
		return true;
	pr_err("process %d: memfd mapping '%s' at %#llx-%#llx %s: not supported", c->pid, p,
	       (unsigned long long)v->start, (unsigned long long)v->end, why);
	return false;
}

int dump_vmas_check(struct dump_ctx *c)
{
	for (size_t i = 0; i < c->n_vmas; i++) {
		const struct proc_vma *v = &c->vmas[i];
		const char *p = v->path ? v->path : "";
		unsigned long long a = v->start, e = v->end;

		/* [vvar] and friends are VM_IO|VM_PFNMAP too: they are recreated, not copied. */
		if ((v->vmflags & VMF_IO) && !kind_is_special(v->kind))
			pr_err("process %d maps device memory at %#llx-%#llx ('%s'): not supported",
			       c->pid, a, e, p);
		else if (is_memfd(v) && memfd_ok(c, v))
			continue;
		else if (is_memfd(v))
			return -EOPNOTSUPP;
		else if (v->kind == PVMA_SHMEM_ANON && v->path && !strncmp(v->path, "/SYSV", 5))
			pr_err("process %d: SysV shared memory segment '%s' attached at "
			       "%#llx-%#llx: not supported",
			       c->pid, p, a, e);
		else if (v->kind == PVMA_FILE && v->deleted && !strcmp(p, "/[aio]"))
			pr_err("process %d: AIO context (io_setup ring) at %#llx-%#llx: not "
			       "supported yet",
			       c->pid, a, e);
		else if (v->kind == PVMA_FILE && v->deleted)
			pr_err("process %d: mapping of unlinked file '%s' at %#llx-%#llx not "
			       "supported yet",
			       c->pid, p, a, e);
		else if (v->kind == PVMA_OTHER_SPECIAL)
			pr_err("process %d: special mapping '%s' at %#llx-%#llx not supported",
			       c->pid, p, a, e);
		else if (v->kind == PVMA_VDSO && (v->vmflags & VMF_SEALED))
			pr_err("process %d: [vdso] is sealed by the kernel (cannot be moved on "
			       "restore): not supported",
			       c->pid);
		else
			continue;
		return -EOPNOTSUPP;
	}
	return 0;
}

char *dump_vdso_layout(const struct dump_ctx *c)
{
	char out[256] = "";
	size_t len = 0;
	for (size_t i = 0; i < c->n_vmas; i++) {
		const struct proc_vma *v = &c->vmas[i];
		const char *n = v->kind == PVMA_VVAR	      ? "[vvar]"
				: v->kind == PVMA_VVAR_VCLOCK ? "[vvar_vclock]"
				: v->kind == PVMA_VDSO	      ? "[vdso]"
							      : NULL;
		if (!n || len >= sizeof(out))
			continue;
		len += snprintf(out + len, sizeof(out) - len, "%s%s:%llu", len ? "," : "", n,
				(unsigned long long)(v->end - v->start));
	}
	return strdup(out);
}

/* ---- mm-<pid>.img ------------------------------------------------------------------ */

void dump_vma_fill(const struct proc_vma *v, VmaEntry *e)
{
	vma_entry__init(e);
	e->start = v->start;
	e->end = v->end;
	e->pgoff = v->pgoff;
	e->prot = v->prot;
	e->flags = (v->shared ? MAP_SHARED : MAP_PRIVATE) |
		   (kind_is_anon(v->kind) ? MAP_ANONYMOUS : 0) |
		   ((v->vmflags & VMF_GROWSDOWN) ? MAP_GROWSDOWN : 0) |
		   ((v->vmflags & VMF_NORESERVE) ? MAP_NORESERVE : 0);
	switch (v->kind) {
	case PVMA_HEAP:
		e->kind = VMA_KIND__VMA_ANON;
		e->has_is_heap = 1;
		e->is_heap = 1;
		break;
	case PVMA_STACK:
		e->kind = VMA_KIND__VMA_ANON;
		e->has_is_stack = 1;
		e->is_stack = 1;
		break;
	case PVMA_FILE:
		e->kind = VMA_KIND__VMA_FILE;
		e->path = v->path;
		e->has_dev = e->has_ino = 1;
		e->dev = makedev(v->dev_major, v->dev_minor);
		e->ino = v->ino;
		break;
	case PVMA_SHMEM_ANON:
		e->kind = VMA_KIND__VMA_SHMEM_ANON;
		e->has_shmid = 1;
		e->shmid = v->ino;
		break;
	case PVMA_VDSO:
		e->kind = VMA_KIND__VMA_VDSO;
		break;
	case PVMA_VVAR:
		e->kind = VMA_KIND__VMA_VVAR;
		break;
	case PVMA_VVAR_VCLOCK:
		e->kind = VMA_KIND__VMA_VVAR_VCLOCK;
		break;
	case PVMA_VSYSCALL:
		e->kind = VMA_KIND__VMA_VSYSCALL;
		break;
	default:
		e->kind = VMA_KIND__VMA_ANON;
		break;
	}
	uint64_t m = 0;
	if (v->vmflags & VMF_DONTCOPY)
		m |= VMA_MADV_DONTFORK;
	if (v->vmflags & VMF_DONTDUMP)
		m |= VMA_MADV_DONTDUMP;
	if (v->vmflags & VMF_HUGEPAGE)
		m |= VMA_MADV_HUGEPAGE;
	if (v->vmflags & VMF_NOHUGEPAGE)
		m |= VMA_MADV_NOHUGEPAGE;
	if (v->vmflags & VMF_MERGEABLE)
		m |= VMA_MADV_MERGEABLE;
	if (v->vmflags & VMF_WIPEONFORK)
		m |= VMA_MADV_WIPEONFORK;
	if (m) {
		e->has_madv = 1;
		e->madv = m;
	}
}

/* Link a memfd VMA to the FileEntry of the process's fd of that memfd. */
static int vma_file_id(struct dump_ctx *c, const struct proc_vma *v, VmaEntry *e)
{
	uint32_t id;
	int r = fs_dump_file_id ? fs_dump_file_id(c->fsd, c->pid, e->dev, e->ino, &id) : -ENOENT;
	if (r < 0)
		return pr_err_ret(r == -ENOENT ? -EOPNOTSUPP : r,
				  "process %d: memfd mapping '%s' at %#llx: no file id for it",
				  c->pid, v->path, (unsigned long long)v->start);
	e->has_file_id = 1;
	e->file_id = id;
	return 0;
}

/* /proc/PID/auxv as u64 values up to and including the AT_NULL pair. */
static int read_auxv(pid_t pid, uint64_t **out, size_t *n)
{
	char path[64], *buf;
	size_t len;
	snprintf(path, sizeof(path), "/proc/%d/auxv", pid);
	int r = read_file(path, &buf, &len, 64 << 10);
	if (r < 0)
		return pr_err_ret(r, "cannot read %s", path);
	uint64_t *a = (uint64_t *)buf;
	size_t cnt = len / 16 * 2;
	for (size_t i = 0; i + 1 < cnt; i += 2)
		if (a[i] == 0) {
			cnt = i + 2;
			break;
		}
	*out = a;
	*n = cnt;
	return 0;
}

int dump_mm_write(struct dump_ctx *c)
{
	char name[64], exe[PATH_MAX], path[64];
	MmEntry mm;
	VmaEntry *ve = calloc(c->n_vmas + 1, sizeof(*ve));
	VmaEntry **vp = calloc(c->n_vmas + 1, sizeof(*vp));
	uint64_t *auxv = NULL;
	struct img_writer *w = NULL;
	int r = -ENOMEM;

	if (!ve || !vp)
		goto out;
	snprintf(path, sizeof(path), "/proc/%d/exe", c->pid);
	ssize_t n = readlink(path, exe, sizeof(exe) - 1);
	if (n < 0) {
		r = pr_perror("cannot read link %s", path);
		goto out;
	}
	exe[n] = 0;
	mm_entry__init(&mm);
	if ((r = read_auxv(c->pid, &auxv, &mm.n_auxv)) < 0)
		goto out;
	mm.auxv = auxv;
	mm.start_code = c->st.start_code;
	mm.end_code = c->st.end_code;
	mm.start_data = c->st.start_data;
	mm.end_data = c->st.end_data;
	mm.start_stack = c->st.start_stack;
	mm.start_brk = c->st.start_brk;
	mm.brk = c->rs.brk;
	mm.arg_start = c->st.arg_start;
	mm.arg_end = c->st.arg_end;
	mm.env_start = c->st.env_start;
	mm.env_end = c->st.env_end;
	mm.exe_path = exe;
	for (size_t i = 0; i < c->n_vmas; i++) {
		dump_vma_fill(&c->vmas[i], &ve[i]);
		vp[i] = &ve[i];
		if (is_memfd(&c->vmas[i]) && (r = vma_file_id(c, &c->vmas[i], &ve[i])) < 0)
			goto out;
	}
	mm.n_vmas = c->n_vmas;
	mm.vmas = vp;

	if ((r = img_writer_open(c->d, img_name(name, "mm-%d.img", c->pid), IMG_MAGIC_MM, &w)) < 0)
		goto out;
	if ((r = img_write_pb(w, &mm.base)) < 0) {
		img_writer_abort(w);
		goto out;
	}
	r = img_writer_close(w);
out:
	free(auxv);
	free(ve);
	free(vp);
	return r;
}

/* ---- pagemap-<pid>.img + pages-<pid>.img ------------------------------------------ */

static int ent_add(struct pages_ctx *p, uint64_t vaddr, uint32_t vma)
{
	struct pe *last = p->ents && p->n_ents ? &p->ents[p->n_ents - 1] : NULL;
	p->nr_pages++;
	if (last && last->vma == vma && last->nr < MAX_RUN &&
	    last->vaddr + (uint64_t)last->nr * page_size == vaddr) {
		last->nr++;
		return 0;
	}
	if (!p->ents || p->n_ents >= p->cap_ents) {
		size_t cap = p->cap_ents ? p->cap_ents * 2 : 1024;
		struct pe *n = realloc(p->ents, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		p->ents = n;
		p->cap_ents = cap;
	}
	p->ents[p->n_ents++] = (struct pe){ .vaddr = vaddr, .nr = 1, .vma = vma };
	return 0;
}

/* Record [a, b) as PE_PARENT (merged with the previous run when contiguous). */
static int par_add(struct pages_ctx *p, uint64_t a, uint64_t b, uint32_t vma)
{
	struct pe *last = p->n_par ? &p->par[p->n_par - 1] : NULL;
	for (; a < b;) {
		uint64_t n = min_t(uint64_t, (b - a) / page_size, MAX_RUN);
		p->nr_parent += n;
		if (last && last->vma == vma && last->vaddr + (uint64_t)last->nr * page_size == a &&
		    (uint64_t)last->nr + n <= MAX_RUN) {
			last->nr += n;
			a += n * page_size;
			continue;
		}
		if (!p->par || p->n_par == p->cap_par) {
			size_t cap = p->cap_par ? p->cap_par * 2 : 256;
			struct pe *x = realloc(p->par, cap * sizeof(*x));
			if (!x)
				return -ENOMEM;
			p->par = x;
			p->cap_par = cap;
		}
		last = &p->par[p->n_par++];
		*last = (struct pe){ .vaddr = a, .nr = (uint32_t)n, .vma = vma };
		a += n * page_size;
	}
	return 0;
}

/* Running target (pre-dump): the VMA list may be stale, so a run can span memory that
 * was unmapped since. Read it page by page: only the pages that really cannot be read
 * (unmapped) are stored as zero; nothing refers to them later, since any memory mapped
 * there again is new to the tracker (reported whole). Readable pages of the same run
 * are kept: zeroing a whole run once lost a live TLS page next to an unmapped region.
 * Returns len. */
static ssize_t read_pagewise(struct pages_ctx *p, uint8_t *dst, uint64_t addr, uint64_t len)
{
	uint64_t lost = 0;
	for (uint64_t off = 0; off < len; off += page_size)
		if (pread_full(p->mem_fd, dst + off, page_size, addr + off) != (ssize_t)page_size) {
			memset(dst + off, 0, page_size);
			lost++;
		}
	if (lost)
		pr_debug("pre-dump: %d: %llu unreadable pages in %#llx+%llu (unmapped since "
			 "smaps), stored as zero",
			 p->c->pid, (unsigned long long)lost, (unsigned long long)addr,
			 (unsigned long long)len);
	return (ssize_t)len;
}

/* Read runs [from, to) of the batch into buf at off with process_vm_readv; the part it
 * cannot read (EFAULT, e.g. PROT_NONE) is read through /proc/PID/mem. */
static int batch_read_vm(struct pages_ctx *p, size_t from, size_t to, uint8_t *dst)
{
	struct iovec local, remote[BATCH_IOV];
	uint64_t total = 0;
	for (size_t i = from; i < to; i++) {
		remote[i - from].iov_base = (void *)(uintptr_t)p->runs[i].vaddr;
		remote[i - from].iov_len = p->runs[i].len;
		total += p->runs[i].len;
	}
	local.iov_base = dst;
	local.iov_len = total;
	ssize_t got = process_vm_readv(p->c->pid, &local, 1, remote, to - from, 0);
	if (got < 0) {
		if (errno == ESRCH)
			return pr_perror("process_vm_readv of %d", p->c->pid);
		got = 0;
	}
	if ((uint64_t)got == total)
		return 0;
	/* Fallback for the rest: find where process_vm_readv stopped. */
	uint64_t skip = got;
	for (size_t i = from; i < to; i++) {
		uint64_t len = p->runs[i].len;
		if (skip >= len) {
			skip -= len;
			dst += len;
			continue;
		}
		ssize_t n = pread_full(p->mem_fd, dst + skip, len - skip, p->runs[i].vaddr + skip);
		if (n != (ssize_t)(len - skip) && p->c->running)
			n = read_pagewise(p, dst + skip, p->runs[i].vaddr + skip, len - skip);
		if (n != (ssize_t)(len - skip))
			return pr_err_ret(n < 0 ? (int)n : -EIO,
					  "cannot read memory of %d at %#llx", p->c->pid,
					  (unsigned long long)(p->runs[i].vaddr + skip));
		dst += len;
		skip = 0;
	}
	return 0;
}

static int batch_read(struct pages_ctx *p)
{
	uint8_t *dst = p->buf;
	size_t i = 0;
	while (i < p->n_runs) {
		size_t j = i;
		uint64_t len = 0;
		if (p->runs[i].via_mem) {
			ssize_t n = pread_full(p->mem_fd, dst, p->runs[i].len, p->runs[i].vaddr);
			if (n != (ssize_t)p->runs[i].len && p->c->running)
				n = read_pagewise(p, dst, p->runs[i].vaddr, p->runs[i].len);
			if (n != (ssize_t)p->runs[i].len)
				return pr_err_ret(n < 0 ? (int)n : -EIO,
						  "cannot read memory of %d at %#llx", p->c->pid,
						  (unsigned long long)p->runs[i].vaddr);
			dst += p->runs[i].len;
			i++;
			continue;
		}
		while (j < p->n_runs && !p->runs[j].via_mem)
			len += p->runs[j++].len;
		int r = batch_read_vm(p, i, j, dst);
		if (r < 0)
			return r;
		dst += len;
		i = j;
	}
	return 0;
}

/* One slot's data to the file at its offset, or to the sink (sequential: no direct
 * batches then). 0 or -errno (logged). */
static int slot_write(struct pages_ctx *p, const uint8_t *buf, size_t len, uint64_t off)
{
	if (p->wfd < 0)
		return img_writer_put(p->w, buf, len); /* logs its own errors */
	int r = pwrite_full(p->wfd, buf, len, (off_t)off);
	return r < 0 ? pr_err_ret(r, "cannot write image '%s'", p->wname) : 0;
}

/* Writer thread, one full slot (its write error is sticky in the ring): written at its
 * offset, writeback started every 64 MiB. */
static int slot_consume(void *arg, unsigned slot, uint8_t *buf)
{
	struct pages_ctx *p = arg;
	int r = slot_write(p, buf, p->slot_len[slot], p->slot_off[slot]);
	if (r < 0)
		return r;
	p->written += p->slot_len[slot];
	if (p->wfd >= 0 && p->written - p->synced >= (64u << 20)) {
		/* everything up to this slot (direct batches write none on disk) */
		(void)sync_file_range(p->wfd, 0, p->slot_off[slot] + p->slot_len[slot],
				      SYNC_FILE_RANGE_WRITE);
		p->synced = p->written;
	}
	return 0;
}

static int ring_start(struct pages_ctx *p)
{
	int r = wring_start(NBUF, BATCH_BYTES, slot_consume, p, &p->ring);
	return r < 0 ? pr_err_ret(r, "cannot start the page writer (%u MiB of buffers)",
				  NBUF * (BATCH_BYTES >> 20))
		     : 0;
}

/* Map the file's range for the next batch (p->batch_len bytes at p->file_off), its
 * pages populated: p->buf then points into the file. 0, or -1 when it cannot (logged
 * at debug level; direct batches are then off for this file and the ring is used). */
static int direct_begin(struct pages_ctx *p)
{
	uint64_t end = p->file_off + p->batch_len;
	const char *why = "ftruncate";
	if (end > p->file_size) {
		if (ftruncate(p->wfd, (off_t)end) < 0)
			goto off;
		p->file_size = end;
	}
	why = "mmap";
	void *m = mmap(NULL, p->batch_len, PROT_READ | PROT_WRITE, MAP_SHARED, p->wfd,
		       (off_t)p->file_off);
	if (m == MAP_FAILED)
		goto off;
	/* every page present before process_vm_readv writes it: a full tmpfs is an
	 * error here (EFAULT/ENOMEM), never a SIGBUS in the copy */
	why = "MADV_POPULATE_WRITE";
	if (madvise(m, p->batch_len, MADV_POPULATE_WRITE) < 0) {
		int e = errno;
		munmap(m, p->batch_len);
		errno = e;
		goto off;
	}
	p->buf = m;
	return 0;
off:
	pr_debug("'%s': no more direct batches (%s at %llu: %s)", p->wname, why,
		 (unsigned long long)p->file_off, strerror(errno));
	p->direct_ok = false;
	return -1;
}

/* A free slot for the next batch; the write error if any. When the ring is full and
 * direct batches are allowed, *direct is set and p->buf maps the file instead of
 * waiting for the writer. */
static int ring_acquire(struct pages_ctx *p, bool *direct)
{
	*direct = false;
	bool full = (p->direct_all || wring_full(p->ring)) && !wring_error(p->ring);
	if (full && p->direct_ok && direct_begin(p) == 0) {
		*direct = true;
		p->n_direct++;
		return 0;
	}
	return wring_get(p->ring, &p->slot, &p->buf);
}

/* Hand the filled slot (len bytes at file offset off, already hashed) to the writer. */
static void ring_submit(struct pages_ctx *p, size_t len, uint64_t off)
{
	p->slot_len[p->slot] = len;
	p->slot_off[p->slot] = off;
	(void)wring_put(p->ring); /* an error comes back from the next acquire or the stop */
}

/* Drop zero pages of the batch in p->buf where asked, record the entries, hash the
 * rest and hand it to the writer (unless it is already in the file: direct). */
static int batch_squeeze(struct pages_ctx *p, bool direct)
{
	int r;
	uint8_t *src = p->buf, *dst = p->buf;
	for (size_t i = 0; i < p->n_runs; i++) {
		const struct run *ru = &p->runs[i];
		for (uint64_t off = 0; off < ru->len; off += page_size, src += page_size) {
			if (ru->check_zero && is_zero(src, page_size))
				continue;
			if ((r = ent_add(p, ru->vaddr + off, ru->vma)) < 0)
				return r;
			if (dst != src)
				memcpy(dst, src, page_size);
			dst += page_size;
		}
	}
	p->n_runs = 0;
	p->batch_len = 0;
	if (dst != p->buf) {
		img_writer_account(p->w, p->buf, dst - p->buf);
		if (!direct)
			ring_submit(p, dst - p->buf, p->file_off);
		p->file_off += dst - p->buf;
	}
	return 0;
}

/* Read the batch (into a ring slot, or straight into the file: direct), then squeeze,
 * record, hash and hand it on (batch_squeeze). */
static int batch_flush(struct pages_ctx *p)
{
	if (!p->n_runs)
		return 0;
	if (ferry_cancel) /* every 8 MiB: a cancelled migrate rolls back promptly */
		return pr_err_ret(-EINTR, "memory copy of %d interrupted by signal %d", p->c->pid,
				  (int)ferry_cancel);
	bool direct;
	size_t maplen = p->batch_len;
	int r = ring_acquire(p, &direct);
	if (r == 0)
		r = batch_read(p);
	if (r == 0)
		r = batch_squeeze(p, direct);
	if (direct)
		munmap(p->buf, maplen);
	return r;
}

/* Queue page vaddr of VMA vi; merges with the previous run when contiguous. */
static int page_queue(struct pages_ctx *p, uint64_t vaddr, uint32_t vi, bool check_zero,
		      bool via_mem)
{
	struct run *last = p->n_runs ? &p->runs[p->n_runs - 1] : NULL;
	bool merge = last && last->vma == vi && last->vaddr + last->len == vaddr;
	if (p->batch_len + page_size > BATCH_BYTES || (!merge && p->n_runs == BATCH_IOV)) {
		int r = batch_flush(p);
		if (r < 0)
			return r;
		merge = false;
	}
	p->batch_len += page_size;
	p->selected++;
	if (merge)
		last->len += page_size;
	else
		p->runs[p->n_runs++] = (struct run){ .vaddr = vaddr,
						     .len = page_size,
						     .vma = vi,
						     .check_zero = check_zero,
						     .via_mem = via_mem };
	return 0;
}

/* Does a page with these pagemap bits belong in the images under pol? */
static bool page_wanted(enum page_policy pol, bool present, bool swapped, bool file)
{
	if (pol == POL_ANON)
		return present || swapped;
	return (present && !file) || swapped;
}

/* A pagemap "swap" entry that is a pte marker (swap type SWP_PTE_MARKER, always the
 * last of the 5-bit type space: MAX_SWAPFILES is 32 minus the special types): the
 * uffd-wp markers the dirty tracker leaves in scanned holes (and guard markers). Not
 * data: the page reads as a hole. Without CAP_SYS_ADMIN the type reads 0: such entries
 * are then taken for swap and read (correct, only slower). */
static bool pm_is_marker(uint64_t e)
{
	return (e & PM_SWAP) && !(e & PM_PRESENT) && (e & 0x1f) == 31;
}

/* Queue the really swapped pages of [a, end) (PAGEMAP_SCAN says SWAPPED for pte
 * markers too: the pagemap entries tell them apart). */
static int swapped_queue(struct pages_ctx *p, uint64_t a, uint64_t end, uint32_t vi, bool zc,
			 bool mem)
{
	uint64_t pm[512];
	while (a < end) {
		uint64_t n = min_t(uint64_t, (end - a) / page_size, ARRAY_SIZE(pm));
		ssize_t got = pread_full(p->pm_fd, pm, n * 8, a / page_size * 8);
		if (got != (ssize_t)(n * 8))
			return pr_err_ret(got < 0 ? (int)got : -EIO,
					  "cannot read /proc/%d/pagemap at %#llx", p->c->pid,
					  (unsigned long long)a);
		for (uint64_t i = 0; i < n; i++, a += page_size) {
			int r = pm_is_marker(pm[i]) ? 0 : page_queue(p, a, vi, zc, mem);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

/* Queue [a, a + len) page by page (page_queue merges them back into runs). */
static int range_queue(struct pages_ctx *p, uint64_t a, uint64_t len, uint32_t vi, bool zc,
		       bool mem)
{
	for (uint64_t end = a + len; a < end; a += page_size) {
		int r = page_queue(p, a, vi, zc, mem);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Selection through PAGEMAP_SCAN (Linux 6.7): the kernel returns only the populated
 * ranges, so a sparse 100 GiB reservation costs microseconds instead of a 200 MiB read
 * of /proc/PID/pagemap. Same bits as the pagemap interface (vm_normal_page() decides
 * "file" in both). In anonymous VMAs pages mapped to the zero pfn are left out: they
 * read as zero.
 * Returns 0, -ENOTTY when the kernel lacks the ioctl (caller falls back), or -errno. */
static int vma_pages_scan(struct pages_ctx *p, uint32_t vi, uint64_t start, uint64_t end,
			  void *vecbuf, size_t veclen)
{
	const struct proc_vma *v = &p->c->vmas[vi];
	enum page_policy pol = vma_policy(v);
	struct pm_region *vec = vecbuf;
	struct pm_scan_arg a = {
		.size = sizeof(a),
		.start = start,
		.end = end,
		.vec = (uintptr_t)vec,
		.vec_len = veclen / sizeof(*vec),
		/* zero-pfn pages skipped only where zero pages are skipped anyway */
		.category_inverted = pol == POL_ANON ? PAGE_IS_PFNZERO : 0,
		.category_mask = pol == POL_ANON ? PAGE_IS_PFNZERO : 0,
		.category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
		.return_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED | PAGE_IS_FILE,
	};
	while (a.start < end) {
		long n = ioctl(p->pm_fd, PAGEMAP_SCAN, &a);
		if (n < 0)
			return (errno == ENOTTY || errno == EINVAL)
				       ? -ENOTTY
				       : pr_perror("PAGEMAP_SCAN of %d at %#llx", p->c->pid,
						   (unsigned long long)a.start);
		/* Kernel 6.18 may report regions beyond walk_end (seen on a 64 GiB VMA:
		 * walk_end at half, regions up to the end); the next call reports them
		 * again, so only what lies below walk_end is taken from this one. */
		uint64_t stop = min_t(uint64_t, a.walk_end, end);
		for (long i = 0; i < n && vec[i].start < stop; i++) {
			uint64_t c = vec[i].categories;
			uint64_t rend = min_t(uint64_t, vec[i].end, stop);
			if (!page_wanted(pol, c & PAGE_IS_PRESENT, c & PAGE_IS_SWAPPED,
					 c & PAGE_IS_FILE))
				continue;
			int r = (c & PAGE_IS_PRESENT)
					? range_queue(p, vec[i].start, rend - vec[i].start, vi,
						      pol == POL_ANON, !(v->prot & PROT_READ))
					: swapped_queue(p, vec[i].start, rend, vi, pol == POL_ANON,
							!(v->prot & PROT_READ));
			if (r < 0)
				return r;
		}
		if (stop <= a.start)
			return pr_err_ret(-EIO, "PAGEMAP_SCAN of %d made no progress at %#llx",
					  p->c->pid, (unsigned long long)a.start);
		a.start = stop;
	}
	return 0;
}

/* Selection by reading /proc/PID/pagemap (kernels without PAGEMAP_SCAN). */
static int vma_pages_read(struct pages_ctx *p, uint32_t vi, uint64_t start, uint64_t end,
			  uint64_t *pm)
{
	const struct proc_vma *v = &p->c->vmas[vi];
	enum page_policy pol = vma_policy(v);
	bool via_mem = !(v->prot & PROT_READ);
	for (uint64_t a = start; a < end;) {
		uint64_t n = min_t(uint64_t, (end - a) / page_size, PM_CHUNK);
		ssize_t got = pread_full(p->pm_fd, pm, n * 8, a / page_size * 8);
		if (got != (ssize_t)(n * 8))
			return pr_err_ret(got < 0 ? (int)got : -EIO,
					  "cannot read /proc/%d/pagemap at %#llx", p->c->pid,
					  (unsigned long long)a);
		for (uint64_t i = 0; i < n; i++, a += page_size) {
			uint64_t e = pm[i];
			if (pm_is_marker(e) ||
			    !page_wanted(pol, e & PM_PRESENT, e & PM_SWAP, e & PM_FILE))
				continue;
			int r = page_queue(p, a, vi, pol == POL_ANON, via_mem);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

/* Shared anonymous memory: select by the shmem object's own populated ranges
 * (SEEK_DATA/SEEK_HOLE on /proc/PID/map_files/...), not by this process's page tables:
 * a page written by another process (maybe gone since), or swapped out, has no PTE here.
 * Returns 0, 1 when map_files cannot be opened (caller selects by page tables), -errno. */
static int vma_pages_shmem(struct pages_ctx *p, uint32_t vi)
{
	const struct proc_vma *v = &p->c->vmas[vi];
	char path[96];
	snprintf(path, sizeof(path), "/proc/%d/map_files/%llx-%llx", p->c->pid,
		 (unsigned long long)v->start, (unsigned long long)v->end);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 1;
	off_t pos = v->pgoff, end = v->pgoff + (v->end - v->start);
	int r = 0;
	while (r == 0 && pos < end) {
		off_t data = lseek(fd, pos, SEEK_DATA), hole;
		if (data < 0 || data >= end)
			break; /* ENXIO: no data past pos */
		hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0 || hole > end)
			hole = end;
		data &= ~(off_t)(page_size - 1);
		r = range_queue(p, v->start + (data - v->pgoff), ROUND_UP(hole - data, page_size),
				vi, true, !(v->prot & PROT_READ));
		pos = ROUND_UP(hole, page_size);
	}
	close(fd);
	return r;
}

/* Select the wanted pages of [start, end) inside VMA vi (by page tables). */
static int range_pages(struct pages_ctx *p, uint32_t vi, uint64_t start, uint64_t end, uint64_t *pm)
{
	if (!p->no_scan) {
		int r = vma_pages_scan(p, vi, start, end, pm, PM_CHUNK * 8);
		if (r != -ENOTTY)
			return r;
		pr_debug("no PAGEMAP_SCAN: reading /proc/%d/pagemap", p->c->pid);
		p->no_scan = true;
	}
	return vma_pages_read(p, vi, start, end, pm);
}

/* Index of the first range of r[0..n) ending above addr. */
static size_t ranges_find(const struct dirty_range *r, size_t n, uint64_t addr)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (r[mid].end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* PE_PARENT for [a, b) minus the dirty ranges, within the held ranges. */
static int parent_span(struct pages_ctx *p, uint32_t vi, uint64_t a, uint64_t b)
{
	const struct dump_ctx *c = p->c;
	for (size_t h = ranges_find(c->held, c->n_held, a); h < c->n_held && c->held[h].start < b;
	     h++) {
		uint64_t s = max_t(uint64_t, a, c->held[h].start);
		uint64_t e = min_t(uint64_t, b, c->held[h].end);
		int r = s < e ? par_add(p, s, e, vi) : 0;
		if (r < 0)
			return r;
	}
	return 0;
}

/* Delta mode, [a, b) of one VMA: pages inside the dirty ranges are selected as usual;
 * the gaps between them become PE_PARENT where the chain holds them. */
static int vma_pages_delta(struct pages_ctx *p, uint32_t vi, uint64_t a, uint64_t b, uint64_t *pm)
{
	const struct dirty_range *d = p->c->dirty;
	uint64_t pos = a;
	int r = 0;

	for (size_t i = ranges_find(d, p->c->n_dirty, a);
	     r == 0 && i < p->c->n_dirty && d[i].start < b; i++) {
		uint64_t s = max_t(uint64_t, a, d[i].start);
		uint64_t e = min_t(uint64_t, b, d[i].end);
		if (pos < s)
			r = parent_span(p, vi, pos, s);
		if (r == 0)
			r = range_pages(p, vi, s, e, pm);
		pos = e;
	}
	if (r == 0 && pos < b)
		r = parent_span(p, vi, pos, b);
	return r;
}

/* The wanted pages of [a, b) of VMA vi (a shared anonymous VMA: given whole). */
static int vma_pages(struct pages_ctx *p, uint32_t vi, uint64_t a, uint64_t b, uint64_t *pm)
{
	const struct proc_vma *v = &p->c->vmas[vi];
	if (vma_policy(v) == POL_NONE)
		return 0;
	if (v->kind == PVMA_SHMEM_ANON) {
		/* always whole: other processes write it behind this one's tracker */
		int r = vma_pages_shmem(p, vi);
		if (r <= 0)
			return r;
	}
	/* PROT_NONE VMAs are not write-tracked (docs/dirty.md): stored whole */
	if (p->c->delta && v->kind != PVMA_SHMEM_ANON && v->prot != 0)
		return vma_pages_delta(p, vi, a, b, pm);
	return range_pages(p, vi, a, b, pm);
}

#define SLICE (64ull << 20) /* a budgeted copy checks its budget this often (address space) */

/* Every VMA's pages; with a budget (pages, shared by the tree's processes), the copy
 * stops at the first SLICE boundary (or VMA end) after it ran out and c->cut says
 * where: the pages from there on are left to the next round. */
static int pages_select(struct pages_ctx *p, uint64_t *pm)
{
	struct dump_ctx *c = p->c;
	int r = 0;

	c->cut = UINT64_MAX;
	for (size_t i = 0; r == 0 && i < c->n_vmas; i++) {
		const struct proc_vma *v = &c->vmas[i];
		/* without a budget, and for shared anonymous memory (copied whole or not at
		 * all), a VMA is one slice */
		bool whole = !c->budget || v->kind == PVMA_SHMEM_ANON;
		uint64_t step = whole ? v->end - v->start : SLICE;
		for (uint64_t a = v->start, b; r == 0 && a < v->end; a = b) {
			b = v->end - a > step ? a + step : v->end; /* (no overflow at the top) */
			if (c->budget && *c->budget == 0) {
				c->cut = a;
				return 0;
			}
			uint64_t before = p->selected;
			r = vma_pages(p, i, a, b, pm);
			if (c->budget)
				*c->budget -= min_t(uint64_t, *c->budget, p->selected - before);
		}
	}
	return r;
}

int dump_dirty_from(struct dirty_range **d, size_t *n, uint64_t from)
{
	if (from == UINT64_MAX)
		return 0;
	size_t k = ranges_find(*d, *n, from);  /* the first range ending above from */
	if (k < *n && (*d)[k].start <= from) { /* it holds from: it extends to the end */
		(*d)[k].end = UINT64_MAX;
		*n = k + 1;
		return 0;
	}
	struct dirty_range *x = realloc(*d, (k + 1) * sizeof(*x));
	if (!x)
		return -ENOMEM;
	x[k] = (struct dirty_range){ from, UINT64_MAX };
	*d = x;
	*n = k + 1;
	return 0;
}

static int open_proc(pid_t pid, const char *what, int *fd)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/%s", pid, what);
	*fd = open(path, O_RDONLY | O_CLOEXEC);
	return *fd < 0 ? pr_perror("cannot open %s", path) : 0;
}

/* One PagemapEntry record per run, all with flags. 0 or -errno (logged by img). */
static int pagemap_write_runs(struct img_writer *w, const struct pe *runs, size_t n, uint32_t flags)
{
	PagemapEntry e;
	int r = 0;

	for (size_t i = 0; r == 0 && i < n; i++) {
		pagemap_entry__init(&e);
		e.vaddr = runs[i].vaddr;
		e.nr_pages = runs[i].nr;
		e.flags = flags;
		r = img_write_pb(w, &e.base);
	}
	return r;
}

static int pagemap_write(struct pages_ctx *p)
{
	char name[64];
	struct img_writer *w;
	PagemapHead h;
	int r = img_writer_open(p->c->d, img_name(name, "pagemap-%d.img", p->c->pid),
				IMG_MAGIC_PAGEMAP, &w);
	if (r < 0)
		return r;
	pagemap_head__init(&h);
	h.pages_id = p->c->pid;
	h.nr_pages = p->nr_pages;
	if (p->c->cut != UINT64_MAX) {
		h.has_partial_from = true;
		h.partial_from = p->c->cut;
	}
	r = img_write_pb(w, &h.base);
	if (r == 0)
		r = pagemap_write_runs(w, p->ents, p->n_ents, PE_PRESENT);
	if (r == 0)
		r = pagemap_write_runs(w, p->par, p->n_par, PE_PARENT);
	if (r < 0) {
		img_writer_abort(w);
		return r;
	}
	return img_writer_close(w);
}

/* Direct batches: only for a local file on tmpfs (where allocating page-cache pages is
 * the bound; on a disk filesystem mmap writes would only add page faults), unless
 * FERRY_DUMP_DIRECT is 0 (never) or "always" (every batch, any filesystem). */
static void direct_setup(struct pages_ctx *p)
{
	const char *env = getenv("FERRY_DUMP_DIRECT");
	struct statfs sf;
	p->direct_all = env && !strcmp(env, "always");
	if (p->wfd < 0 || (env && !strcmp(env, "0")))
		p->direct_ok = false;
	else
		p->direct_ok =
			p->direct_all || (fstatfs(p->wfd, &sf) == 0 && sf.f_type == TMPFS_MAGIC);
}

/* Bytes this process's copy takes at most, for the page server's progress line: the
 * dirty ranges of a delta round, else unknown (UINT64_MAX: capped by its RSS there). */
static uint64_t pages_expected(const struct dump_ctx *c)
{
	if (!c->delta)
		return UINT64_MAX;
	uint64_t n = 0;
	for (size_t i = 0; i < c->n_dirty; i++) {
		if (c->dirty[i].end == UINT64_MAX)
			return UINT64_MAX; /* the rest of a partial round: unknown */
		n += c->dirty[i].end - c->dirty[i].start;
	}
	return n;
}

int dump_pages_write(struct dump_ctx *c)
{
	struct pages_ctx p = { .c = c, .pm_fd = -1, .mem_fd = -1 };
	uint64_t *pm = malloc(PM_CHUNK * 8);
	uint64_t t0 = now_ns();
	int r = -ENOMEM;

	if (!pm)
		goto out;
	if ((r = open_proc(c->pid, "pagemap", &p.pm_fd)) < 0 ||
	    (r = open_proc(c->pid, "mem", &p.mem_fd)) < 0)
		goto out;
	r = img_writer_open(c->d, img_name(p.wname, "pages-%d.img", c->pid), IMG_MAGIC_RAW, &p.w);
	if (r < 0)
		goto out;
	p.wfd = img_writer_fd(p.w);
	img_sink_expect(c->pid, pages_expected(c)); /* a streamed round's progress line */
	direct_setup(&p);
	r = ring_start(&p);
	if (r == 0)
		r = pages_select(&p, pm);
	if (r == 0)
		r = batch_flush(&p);
	int wr = wring_stop(p.ring); /* everything queued written, or the write error */
	if (r == 0)
		r = wr;
	/* direct batches grew the file ahead of the data: cut it to the data's length */
	if (r == 0 && p.file_size > p.file_off && ftruncate(p.wfd, (off_t)p.file_off) < 0)
		r = pr_perror("cannot truncate image '%s'", p.wname);
	if (r < 0) {
		img_writer_abort(p.w);
		goto out;
	}
	r = img_writer_close(p.w);
	if (r == 0)
		r = pagemap_write(&p);
	if (r == 0) {
		uint64_t dt = now_ns() - t0;
		c->pages_written = p.nr_pages;
		c->pages_parent = p.nr_parent;
		c->bytes_written = p.nr_pages * page_size;
		pr_debug("memory of %d: %llu pages in %zu runs, %llu in the parent chain, %.1f ms "
			 "(%.0f MiB/s), %llu batches read straight into the file",
			 c->pid, (unsigned long long)p.nr_pages, p.n_ents,
			 (unsigned long long)p.nr_parent, dt / 1e6,
			 dt ? (double)c->bytes_written / (1 << 20) / (dt / 1e9) : 0.0,
			 (unsigned long long)p.n_direct);
	}
out:
	if (p.pm_fd >= 0)
		close(p.pm_fd);
	if (p.mem_fd >= 0)
		close(p.mem_fd);
	free(p.ents);
	free(p.par);
	free(pm);
	return r;
}

static int range_cmp(const void *a, const void *b)
{
	const struct dirty_range *x = a, *y = b;
	return x->start < y->start ? -1 : x->start > y->start;
}

/* Append the PRESENT/PARENT runs of a decoded pagemap to *v (bounded by the caller's
 * validation: page aligned, non-empty, no overflow). */
static int held_collect(struct img_buf *b, struct dirty_range **v, size_t *n)
{
	size_t cap = 0;
	ProtobufCMessage *m;
	int r;
	while ((r = img_buf_next(b, &pagemap_entry__descriptor, &m)) == 1) {
		PagemapEntry *e = (PagemapEntry *)m;
		uint64_t len = (uint64_t)e->nr_pages * page_size;
		bool ok = e->vaddr % page_size == 0 && e->nr_pages && e->vaddr + len > e->vaddr;
		bool want = e->flags == PE_PRESENT || e->flags == PE_PARENT;
		if (ok && want && *n == cap) {
			struct dirty_range *x =
				realloc(*v, (cap = cap ? cap * 2 : 256) * sizeof(*x));
			if (!x)
				ok = false, r = -ENOMEM;
			else
				*v = x;
		}
		if (ok && want)
			(*v)[(*n)++] = (struct dirty_range){ e->vaddr, e->vaddr + len };
		protobuf_c_message_free_unpacked(m, NULL);
		if (!ok)
			return r == -ENOMEM ? r : -EBADMSG;
	}
	return r;
}

int dump_held_ranges(struct img_dir *d, pid_t pid, struct dirty_range **out, size_t *n,
		     uint64_t *from)
{
	char name[64];
	struct img_buf *b = NULL;
	ProtobufCMessage *h = NULL;
	struct dirty_range *v = NULL;
	size_t cnt = 0, k = 0;
	int r = img_load(d, img_name(name, "pagemap-%d.img", pid), IMG_MAGIC_PAGEMAP, &b);

	*out = NULL;
	*n = 0;
	*from = UINT64_MAX;
	if (r < 0)
		return r;
	if ((r = img_buf_next(b, &pagemap_head__descriptor, &h)) == 1) {
		PagemapHead *ph = (PagemapHead *)h;
		if (ph->has_partial_from)
			*from = ph->partial_from;
		protobuf_c_message_free_unpacked(h, NULL);
		r = *from != UINT64_MAX && *from % page_size ? -EBADMSG : held_collect(b, &v, &cnt);
	} else if (r == 0) {
		r = -EBADMSG;
	}
	img_buf_free(b);
	if (r < 0) {
		free(v);
		return pr_err_ret(r, "'%s/%s': cannot read the parent round's pagemap",
				  img_dir_path(d), name);
	}
	if (cnt)
		qsort(v, cnt, sizeof(*v), range_cmp);
	for (size_t i = 0; i < cnt; i++) {
		if (k && v[i].start <= v[k - 1].end)
			v[k - 1].end = max_t(uint64_t, v[k - 1].end, v[i].end);
		else
			v[k++] = v[i];
	}
	*out = v;
	*n = k;
	return 0;
}
