/*
 * proc: parsers for /proc/<pid>/{smaps,stat,status,task,auxv} (see proc.h).
 *
 * Pure readers: nothing here changes the target. Each parser reads the whole file
 * once into memory (bounded) and parses it there, so a file that changes while we
 * read it is seen as one snapshot of what the kernel printed.
 *
 * Invariants:
 *  - A vanished process gives -ESRCH (or -ENOENT), never logged; a malformed file
 *    gives -EINVAL, logged once naming the file.
 *  - smaps paths keep embedded spaces; a trailing " (deleted)" is stripped and flagged.
 *  - proc_read_auxv: *n counts u64 words (2 per entry, AT_NULL pair included).
 *
 * Typical workload: one smaps parse per process per dump round (hundreds of VMAs).
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "common/log.h"
#include "common/util.h"
#include "engine/proc.h"

#define SMAPS_MAX (256u << 20)
#define SMALL_MAX (1u << 20)

/* Read /proc/<pid>[/task/<tid>]/<name>; maps ENOENT to -ESRCH (process gone). */
static int proc_read(pid_t pid, pid_t tid, const char *name, char **buf, size_t *len, size_t max)
{
	char path[96];
	int r;

	if (tid)
		snprintf(path, sizeof(path), "/proc/%d/task/%d/%s", pid, tid, name);
	else
		snprintf(path, sizeof(path), "/proc/%d/%s", pid, name);
	r = read_file(path, buf, len, max);
	if (r == -ENOENT)
		return -ESRCH;
	return r;
}

static const struct {
	char name[3];
	uint32_t flag;
} vmflag_names[] = {
	{ "gd", VMF_GROWSDOWN },  { "sl", VMF_SEALED },	      { "dd", VMF_DONTDUMP },
	{ "dc", VMF_DONTCOPY },	  { "hg", VMF_HUGEPAGE },     { "nh", VMF_NOHUGEPAGE },
	{ "mg", VMF_MERGEABLE },  { "um", VMF_UFFD_MISSING }, { "uw", VMF_UFFD_WP },
	{ "sh", VMF_SHARED },	  { "io", VMF_IO },	      { "lo", VMF_LOCKED },
	{ "wf", VMF_WIPEONFORK }, { "nr", VMF_NORESERVE },
};

static uint32_t parse_vmflags(const char *s)
{
	uint32_t f = 0;

	while (*s) {
		while (*s == ' ')
			s++;
		if (!s[0] || !s[1])
			break;
		for (size_t i = 0; i < ARRAY_SIZE(vmflag_names); i++)
			if (s[0] == vmflag_names[i].name[0] && s[1] == vmflag_names[i].name[1] &&
			    (s[2] == ' ' || s[2] == 0))
				f |= vmflag_names[i].flag;
		while (*s && *s != ' ')
			s++;
	}
	return f;
}

static bool starts_with(const char *s, const char *p)
{
	return s && strncmp(s, p, strlen(p)) == 0;
}

/* Kind of a VMA from its path and sharing (path already stripped of " (deleted)"). */
static enum proc_vma_kind vma_kind(const struct proc_vma *v)
{
	const char *p = v->path;

	if (v->shared && (!p || starts_with(p, "/dev/zero") || starts_with(p, "/SYSV") ||
			  starts_with(p, "[anon_shmem")))
		/* Shared anonymous memory lives on the kernel's internal shmem mount: the
		 * kernel names it "/dev/zero (deleted)", SysV shm "/SYSV<key> (deleted)",
		 * and a named one "[anon_shmem:<name>]" (PR_SET_VMA_ANON_NAME). */
		return (p && p[0] == '/' && !v->deleted) ? PVMA_FILE : PVMA_SHMEM_ANON;
	if (!p || starts_with(p, "[anon:"))
		return PVMA_ANON;
	if (p[0] != '[')
		return PVMA_FILE;
	if (!strcmp(p, "[heap]"))
		return PVMA_HEAP;
	if (!strcmp(p, "[stack]"))
		return PVMA_STACK;
	if (!strcmp(p, "[vdso]"))
		return PVMA_VDSO;
	if (!strcmp(p, "[vvar]"))
		return PVMA_VVAR;
	if (!strcmp(p, "[vvar_vclock]"))
		return PVMA_VVAR_VCLOCK;
	if (!strcmp(p, "[vsyscall]"))
		return PVMA_VSYSCALL;
	return PVMA_OTHER_SPECIAL;
}

/* Parse one smaps header line ("start-end perms off maj:min ino   path"). line is
 * NUL-terminated (no newline). 0 or -EINVAL. */
static int parse_vma_header(char *line, struct proc_vma *v)
{
	unsigned long long start, end, off, ino;
	unsigned int maj, min;
	char perms[8];
	int pos = 0;

	if (sscanf(line, "%llx-%llx %7s %llx %x:%x %llu%n", &start, &end, perms, &off, &maj, &min,
		   &ino, &pos) != 7 ||
	    strlen(perms) != 4 || end <= start)
		return -EINVAL;
	memset(v, 0, sizeof(*v));
	v->start = start;
	v->end = end;
	v->pgoff = off;
	v->dev_major = maj;
	v->dev_minor = min;
	v->ino = ino;
	v->prot = (perms[0] == 'r' ? PROT_READ : 0) | (perms[1] == 'w' ? PROT_WRITE : 0) |
		  (perms[2] == 'x' ? PROT_EXEC : 0);
	v->shared = perms[3] == 's';

	char *p = line + pos;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p) {
		size_t len = strlen(p);
		static const char del[] = " (deleted)";
		if (len > sizeof(del) - 1 && !strcmp(p + len - (sizeof(del) - 1), del)) {
			v->deleted = true;
			p[len - (sizeof(del) - 1)] = 0;
		}
		v->path = strdup(p);
		if (!v->path)
			return -ENOMEM;
	}
	v->kind = vma_kind(v);
	return 0;
}

/* A header line starts with lowercase hex then '-'; field lines ("Size:") with a capital. */
static bool is_vma_header(const char *l)
{
	const char *p = l;

	while (isdigit((unsigned char)*p) || (*p >= 'a' && *p <= 'f'))
		p++;
	return p != l && *p == '-';
}

static int smaps_push(struct proc_vma **vmas, size_t *n, size_t *cap)
{
	if (*n < *cap)
		return 0;
	size_t nc = *cap ? *cap * 2 : 64;
	struct proc_vma *nv = realloc(*vmas, nc * sizeof(*nv));
	if (!nv)
		return -ENOMEM;
	*vmas = nv;
	*cap = nc;
	return 0;
}

int proc_parse_smaps(pid_t pid, struct proc_vma **out, size_t *n_out)
{
	struct proc_vma *vmas = NULL;
	size_t n = 0, cap = 0;
	char *buf, *line, *next;
	int r;

	r = proc_read(pid, 0, "smaps", &buf, NULL, SMAPS_MAX);
	if (r < 0)
		return r;
	for (line = buf; *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = 0;
		else
			next = line + strlen(line);
		if (is_vma_header(line)) {
			if ((r = smaps_push(&vmas, &n, &cap)) < 0)
				goto err;
			if ((r = parse_vma_header(line, &vmas[n])) < 0) {
				if (r == -EINVAL)
					pr_err("/proc/%d/smaps: bad line '%.200s'", pid, line);
				goto err;
			}
			n++;
		} else if (starts_with(line, "VmFlags:") && n) {
			vmas[n - 1].vmflags = parse_vmflags(line + 8);
		}
	}
	free(buf);
	*out = vmas;
	*n_out = n;
	return 0;
err:
	free(buf);
	proc_vmas_free(vmas, n);
	return r;
}

int proc_layout_same(pid_t pid, const struct proc_vma *v, size_t n)
{
	char *buf, *line, *next;
	size_t i = 0;
	bool same = true;
	int r = proc_read(pid, 0, "maps", &buf, NULL, SMAPS_MAX);

	if (r < 0)
		return r;
	for (line = buf; *line && same; line = next, i++) {
		struct proc_vma x;
		next = strchr(line, '\n');
		if (next)
			*next++ = 0;
		else
			next = line + strlen(line);
		if ((r = parse_vma_header(line, &x)) < 0) {
			free(buf);
			return r == -ENOMEM ? r : 0;
		}
		same = i < n && x.start == v[i].start && x.end == v[i].end &&
		       x.pgoff == v[i].pgoff && x.prot == v[i].prot && x.shared == v[i].shared &&
		       x.dev_major == v[i].dev_major && x.dev_minor == v[i].dev_minor &&
		       x.ino == v[i].ino && x.deleted == v[i].deleted &&
		       !strcmp(x.path ? x.path : "", v[i].path ? v[i].path : "");
		free(x.path);
	}
	free(buf);
	return same && i == n;
}

int proc_snap_tree(pid_t root, struct proc_snap **out, size_t *n, size_t max)
{
	size_t cap = 16, done;
	struct proc_snap *s = calloc(cap, sizeof(*s));

	*out = NULL;
	*n = 0;
	if (!s)
		return -ENOMEM;
	s[(*n)++].pid = root;
	for (done = 0; done < *n; done++) {
		char name[64], *buf, *p, *end;
		pid_t pid = s[done].pid;
		if (proc_parse_smaps(pid, &s[done].vmas, &s[done].n) < 0)
			s[done].vmas = NULL, s[done].n = 0;
		snprintf(name, sizeof(name), "task/%d/children", pid);
		if (proc_read(pid, 0, name, &buf, NULL, 1u << 20) < 0)
			continue; /* threads' children: found while seized */
		for (p = buf;; p = end) {
			long kid = strtol(p, &end, 10);
			if (end == p || *n >= max)
				break;
			if (*n == cap) {
				struct proc_snap *x = realloc(s, (cap *= 2) * sizeof(*x));
				if (!x) {
					free(buf);
					proc_snap_free(s, *n);
					*n = 0;
					return -ENOMEM;
				}
				s = x;
			}
			s[(*n)++] = (struct proc_snap){ .pid = (pid_t)kid };
		}
		free(buf);
	}
	*out = s;
	return 0;
}

struct proc_vma *proc_snap_take(struct proc_snap *s, size_t n, pid_t pid, size_t *nv)
{
	for (size_t i = 0; i < n; i++)
		if (s[i].pid == pid && s[i].vmas) {
			struct proc_vma *v = s[i].vmas;
			*nv = s[i].n;
			s[i].vmas = NULL;
			s[i].n = 0;
			return v;
		}
	return NULL;
}

void proc_snap_free(struct proc_snap *s, size_t n)
{
	for (size_t i = 0; s && i < n; i++)
		proc_vmas_free(s[i].vmas, s[i].n);
	free(s);
}

void proc_vmas_free(struct proc_vma *v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i].path);
	free(v);
}

/* Fields of /proc/<pid>/stat after "pid (comm)": index 0 is field 3 (state). */
#define STAT_FIELD(i) ((i)-3)
#define STAT_NFIELDS  50

int proc_parse_stat(pid_t pid, pid_t tid, struct proc_stat *st)
{
	unsigned long long f[STAT_NFIELDS] = { 0 };
	char *buf, *lp, *rp, *p;
	int r, nf = 0;

	r = proc_read(pid, tid, "stat", &buf, NULL, SMALL_MAX);
	if (r < 0)
		return r;
	memset(st, 0, sizeof(*st));
	/* comm may hold spaces and parentheses: it ends at the last ')'. */
	lp = strchr(buf, '(');
	rp = strrchr(buf, ')');
	if (!lp || !rp || rp < lp || rp[1] != ' ' || !rp[2])
		goto bad;
	st->pid = atoi(buf);
	snprintf(st->comm, sizeof(st->comm), "%.*s", (int)(rp - lp - 1), lp + 1);
	st->state = rp[2];
	p = rp + 3;
	for (nf = 1; nf < STAT_NFIELDS && *p; nf++) {
		char *end;
		while (*p == ' ')
			p++;
		if (!*p || *p == '\n')
			break;
		errno = 0;
		if (*p == '-')
			f[nf] = (unsigned long long)strtoll(p, &end, 10);
		else
			f[nf] = strtoull(p, &end, 10);
		if (end == p || errno)
			goto bad;
		p = end;
	}
	if (nf <= STAT_FIELD(20)) /* at least up to num_threads */
		goto bad;
	st->ppid = f[STAT_FIELD(4)];
	st->pgrp = f[STAT_FIELD(5)];
	st->session = f[STAT_FIELD(6)];
	st->tty_nr = f[STAT_FIELD(7)];
	st->flags = f[STAT_FIELD(9)];
	st->num_threads = f[STAT_FIELD(20)];
	st->start_code = f[STAT_FIELD(26)];
	st->end_code = f[STAT_FIELD(27)];
	st->start_stack = f[STAT_FIELD(28)];
	st->exit_signal = f[STAT_FIELD(38)];
	st->start_data = f[STAT_FIELD(45)];
	st->end_data = f[STAT_FIELD(46)];
	st->start_brk = f[STAT_FIELD(47)];
	st->arg_start = f[STAT_FIELD(48)];
	st->arg_end = f[STAT_FIELD(49)];
	st->env_start = f[STAT_FIELD(50)];
	st->env_end = f[STAT_FIELD(51)];
	st->exit_code = f[STAT_FIELD(52)];
	free(buf);
	return 0;
bad:
	pr_err("/proc/%d%s/stat: cannot parse", pid, tid ? "/task/N" : "");
	free(buf);
	return -EINVAL;
}

/* Parse up to max unsigned numbers of a status value (base 10). Returns the count. */
static size_t parse_list(const char *s, uint32_t *out, size_t max)
{
	size_t n = 0;
	char *end;

	while (n < max) {
		while (*s == ' ' || *s == '\t')
			s++;
		if (!isdigit((unsigned char)*s))
			break;
		out[n++] = strtoul(s, &end, 10);
		s = end;
	}
	return n;
}

static uint64_t hex64(const char *s)
{
	return strtoull(s, NULL, 16);
}

/* One "Key:\tvalue" line of status into st. */
static void status_line(const char *key, const char *val, struct proc_status *st)
{
	uint32_t tmp[8];

	if (!strcmp(key, "Uid"))
		parse_list(val, st->uid, 4);
	else if (!strcmp(key, "Gid"))
		parse_list(val, st->gid, 4);
	else if (!strcmp(key, "Groups"))
		st->ngroups = parse_list(val, st->groups, ARRAY_SIZE(st->groups));
	else if (!strcmp(key, "CapInh"))
		st->cap_inh = hex64(val);
	else if (!strcmp(key, "CapPrm"))
		st->cap_prm = hex64(val);
	else if (!strcmp(key, "CapEff"))
		st->cap_eff = hex64(val);
	else if (!strcmp(key, "CapBnd"))
		st->cap_bnd = hex64(val);
	else if (!strcmp(key, "CapAmb"))
		st->cap_amb = hex64(val);
	else if (!strcmp(key, "Umask"))
		st->umask = strtoul(val, NULL, 8);
	else if (!strcmp(key, "SigPnd"))
		st->sig_pnd = hex64(val);
	else if (!strcmp(key, "ShdPnd"))
		st->shd_pnd = hex64(val);
	else if (!strcmp(key, "SigBlk"))
		st->sig_blk = hex64(val);
	else if (!strcmp(key, "SigIgn"))
		st->sig_ign = hex64(val);
	else if (!strcmp(key, "SigCgt"))
		st->sig_cgt = hex64(val);
	else if (!strcmp(key, "TracerPid"))
		st->tracer_pid = atoi(val);
	else if (!strcmp(key, "NoNewPrivs"))
		st->no_new_privs = atoi(val);
	else if (!strcmp(key, "Seccomp"))
		st->seccomp = atoi(val);
	else if (!strcmp(key, "Threads"))
		st->threads = atol(val);
	else if (!strcmp(key, "Ngid"))
		st->ngid = atoi(val);
	else if (!strcmp(key, "NSpid")) {
		st->n_nspid = parse_list(val, tmp, ARRAY_SIZE(st->nspid));
		for (size_t i = 0; i < st->n_nspid; i++)
			st->nspid[i] = tmp[i];
	}
}

int proc_parse_status(pid_t pid, pid_t tid, struct proc_status *st)
{
	char *buf, *line, *next;
	bool seen_uid = false;
	int r;

	r = proc_read(pid, tid, "status", &buf, NULL, SMALL_MAX);
	if (r < 0)
		return r;
	memset(st, 0, sizeof(*st));
	for (line = buf; *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = 0;
		else
			next = line + strlen(line);
		char *colon = strchr(line, ':');
		if (!colon)
			continue;
		*colon = 0;
		if (!strcmp(line, "Uid"))
			seen_uid = true;
		status_line(line, colon + 1, st);
	}
	free(buf);
	if (!seen_uid) {
		pr_err("/proc/%d/status: no Uid line", pid);
		return -EINVAL;
	}
	return 0;
}

static int cmp_pid(const void *a, const void *b)
{
	pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;
	return (x > y) - (x < y);
}

int proc_list_tids(pid_t pid, pid_t **tids_out, size_t *n_out)
{
	char path[64];
	pid_t *tids = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	d = opendir(path);
	if (!d)
		return errno == ENOENT ? -ESRCH : -errno;
	while ((de = readdir(d))) {
		int tid;
		if (parse_int(de->d_name, &tid) < 0 || tid <= 0)
			continue;
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 16;
			pid_t *nt = realloc(tids, nc * sizeof(*nt));
			if (!nt) {
				closedir(d);
				free(tids);
				return -ENOMEM;
			}
			tids = nt;
			cap = nc;
		}
		tids[n++] = tid;
	}
	closedir(d);
	if (!n) {
		free(tids);
		return -ESRCH; /* a zombie leader whose threads are all gone lists nothing */
	}
	qsort(tids, n, sizeof(*tids), cmp_pid);
	/* The leader first, the rest ascending. */
	for (size_t i = 0; i < n; i++)
		if (tids[i] == pid) {
			memmove(tids + 1, tids, i * sizeof(*tids));
			tids[0] = pid;
			break;
		}
	*tids_out = tids;
	*n_out = n;
	return 0;
}

int proc_read_auxv(pid_t pid, uint64_t **auxv_out, size_t *n_out)
{
	char *buf;
	size_t len;
	int r;

	r = proc_read(pid, 0, "auxv", &buf, &len, SMALL_MAX);
	if (r < 0)
		return r;
	if (len % 16) {
		free(buf);
		pr_err("/proc/%d/auxv: odd size %zu", pid, len);
		return -EINVAL;
	}
	size_t n = len / 8;
	/* Keep only up to the AT_NULL pair. */
	uint64_t *a = (uint64_t *)buf; /* malloc'd: suitably aligned */
	for (size_t i = 0; i + 1 < n; i += 2)
		if (a[i] == 0) {
			n = i + 2;
			break;
		}
	*auxv_out = a;
	*n_out = n;
	return 0;
}
