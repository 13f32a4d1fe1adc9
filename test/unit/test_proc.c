/*
 * test_proc: the /proc parsers against this process's own files, where the truth is
 * known: mappings we make ourselves (anon, shared anon, a file with spaces in its name,
 * deleted afterwards), our stat/status values, our threads and our auxv.
 * Exit 0 pass, 1 fail; one line per failed check.
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "engine/proc.h"

static int failures;

#define CHECK(cond) do { if (!(cond)) { \
	printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); failures++; } } while (0)

static const struct proc_vma *find_vma(const struct proc_vma *v, size_t n, uint64_t addr)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].start <= addr && addr < v[i].end)
			return &v[i];
	return NULL;
}

static void test_anon(void)
{
	size_t ps = page_size;
	char *a = mmap(NULL, 3 * ps, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *s = mmap(NULL, 2 * ps, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct proc_vma *v;
	size_t n;

	CHECK(a != MAP_FAILED && s != MAP_FAILED);
	CHECK(madvise(a, 3 * ps, MADV_DONTDUMP) == 0);
	CHECK(proc_parse_smaps(getpid(), &v, &n) == 0);
	const struct proc_vma *x = find_vma(v, n, (uint64_t)a);
	CHECK(x && x->start == (uint64_t)a && x->end == (uint64_t)a + 3 * ps);
	CHECK(x && x->prot == (PROT_READ | PROT_EXEC) && !x->shared && x->kind == PVMA_ANON);
	CHECK(x && !x->path && (x->vmflags & VMF_DONTDUMP) && !(x->vmflags & VMF_SHARED));
	x = find_vma(v, n, (uint64_t)s);
	CHECK(x && x->start == (uint64_t)s && x->end == (uint64_t)s + 2 * ps);
	CHECK(x && x->prot == (PROT_READ | PROT_WRITE) && x->shared);
	CHECK(x && x->kind == PVMA_SHMEM_ANON && (x->vmflags & VMF_SHARED));
	for (size_t i = 1; i < n; i++)
		CHECK(v[i - 1].end <= v[i].start);
	/* Specials we always have. */
	int stack = 0, vdso = 0;
	for (size_t i = 0; i < n; i++) {
		if (v[i].kind == PVMA_STACK) {
			stack++;
			CHECK(v[i].vmflags & VMF_GROWSDOWN);
			CHECK((uint64_t)&n >= v[i].start && (uint64_t)&n < v[i].end);
		}
		if (v[i].kind == PVMA_VDSO) {
			vdso++;
			CHECK(v[i].start == getauxval(AT_SYSINFO_EHDR));
			CHECK(v[i].prot == (PROT_READ | PROT_EXEC));
		}
	}
	CHECK(stack == 1 && vdso == 1);
	x = find_vma(v, n, (uint64_t)&test_anon);
	CHECK(x && x->kind == PVMA_FILE && (x->prot & PROT_EXEC) && x->path && x->path[0] == '/');
	proc_vmas_free(v, n);
	munmap(a, 3 * ps);
	munmap(s, 2 * ps);
}

static void test_file(void)
{
	char dir[] = "/tmp/ferry proc (x) XXXXXX";
	char path[256];
	size_t ps = page_size;
	struct proc_vma *v;
	struct stat st;
	size_t n;

	if (!mkdtemp(dir)) {
		CHECK(!"mkdtemp");
		return;
	}
	snprintf(path, sizeof(path), "%s/a file  with spaces (1).dat", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
	CHECK(fd >= 0 && ftruncate(fd, 4 * ps) == 0 && fstat(fd, &st) == 0);
	char *m = mmap(NULL, 2 * ps, PROT_READ, MAP_SHARED, fd, ps);
	CHECK(m != MAP_FAILED);
	CHECK(proc_parse_smaps(getpid(), &v, &n) == 0);
	const struct proc_vma *x = find_vma(v, n, (uint64_t)m);
	CHECK(x && x->start == (uint64_t)m && x->end == (uint64_t)m + 2 * ps);
	CHECK(x && x->kind == PVMA_FILE && x->shared && x->prot == PROT_READ && x->pgoff == ps);
	CHECK(x && x->path && !strcmp(x->path, path) && !x->deleted);
	CHECK(x && x->ino == st.st_ino && x->dev_major == major(st.st_dev) &&
	      x->dev_minor == minor(st.st_dev));
	proc_vmas_free(v, n);

	/* Deleted: suffix stripped and flagged. */
	CHECK(unlink(path) == 0);
	CHECK(proc_parse_smaps(getpid(), &v, &n) == 0);
	x = find_vma(v, n, (uint64_t)m);
	CHECK(x && x->path && !strcmp(x->path, path) && x->deleted && x->kind == PVMA_FILE);
	proc_vmas_free(v, n);
	munmap(m, 2 * ps);
	close(fd);
	rmdir(dir);
}

static void *idle_thread(void *arg)
{
	int *p = arg;
	char c;
	(void)read(p[0], &c, 1);
	return NULL;
}

static void test_stat_status(void)
{
	struct proc_stat st;
	struct proc_status ss;
	const char name[] = "a) (b c)";
	sigset_t set;

	CHECK(prctl(PR_SET_NAME, name) == 0);
	CHECK(proc_parse_stat(getpid(), 0, &st) == 0);
	CHECK(st.pid == getpid() && st.ppid == getppid() && st.pgrp == getpgrp());
	CHECK(st.session == getsid(0));
	CHECK(!strcmp(st.comm, name));
	CHECK(st.state == 'R' && st.num_threads == 1 && !(st.flags & 0x00200000));
	CHECK(st.start_code <= (uint64_t)&test_stat_status &&
	      (uint64_t)&test_stat_status < st.end_code);
	CHECK(st.start_stack > (uint64_t)&st && st.exit_signal == SIGCHLD && st.exit_code == 0);
	CHECK(st.arg_start < st.arg_end && st.arg_end <= st.env_start && st.env_start < st.env_end);
	CHECK(st.start_brk >= st.end_data);
	(void)prctl(PR_SET_NAME, "test_proc");

	/* A kernel thread: kthreadd is pid 2 in the initial pid namespace. */
	if (proc_parse_stat(2, 0, &st) == 0 && !strcmp(st.comm, "kthreadd"))
		CHECK(st.flags & 0x00200000);

	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGRTMIN + 1);
	CHECK(sigprocmask(SIG_BLOCK, &set, NULL) == 0);
	CHECK(proc_parse_status(getpid(), 0, &ss) == 0);
	CHECK(ss.uid[0] == getuid() && ss.uid[1] == geteuid() && ss.gid[0] == getgid());
	CHECK(ss.sig_blk & (1ull << (SIGUSR1 - 1)));
	CHECK(ss.sig_blk & (1ull << (SIGRTMIN + 1 - 1)));
	CHECK(ss.tracer_pid == 0 && ss.threads == 1);
	CHECK(ss.n_nspid >= 1 && ss.nspid[0] == getpid());
	mode_t um = umask(027);
	CHECK(proc_parse_status(getpid(), 0, &ss) == 0 && ss.umask == 027);
	umask(um);
	CHECK(sigprocmask(SIG_UNBLOCK, &set, NULL) == 0);
}

static void test_tids_auxv(void)
{
	pthread_t th;
	int p[2];
	pid_t *tids;
	size_t n;
	uint64_t *auxv;

	CHECK(pipe(p) == 0);
	CHECK(pthread_create(&th, NULL, idle_thread, p) == 0);
	CHECK(proc_list_tids(getpid(), &tids, &n) == 0);
	CHECK(n == 2 && tids[0] == getpid() && tids[1] != getpid());
	if (n == 2) {
		struct proc_stat st;
		CHECK(proc_parse_stat(getpid(), tids[1], &st) == 0 && st.pid == tids[1]);
		CHECK(st.num_threads == 2);
	}
	free(tids);
	(void)write(p[1], "x", 1);
	pthread_join(th, NULL);
	close(p[0]);
	close(p[1]);

	CHECK(proc_read_auxv(getpid(), &auxv, &n) == 0);
	CHECK(n >= 4 && n % 2 == 0 && auxv[n - 2] == AT_NULL);
	int seen = 0;
	for (size_t i = 0; i + 1 < n; i += 2) {
		if (auxv[i] == AT_PAGESZ && auxv[i + 1] == page_size)
			seen |= 1;
		if (auxv[i] == AT_SYSINFO_EHDR && auxv[i + 1] == getauxval(AT_SYSINFO_EHDR))
			seen |= 2;
		if (auxv[i] == AT_ENTRY && auxv[i + 1] == getauxval(AT_ENTRY))
			seen |= 4;
	}
	CHECK(seen == 7);
	free(auxv);

	/* Gone processes: -ESRCH. A pid above pid_max never exists. */
	struct proc_stat st;
	CHECK(proc_parse_stat(0x7ffffff0, 0, &st) == -ESRCH);
	CHECK(proc_list_tids(0x7ffffff0, &tids, &n) == -ESRCH);
}

int main(int argc, char **argv)
{
	util_init();
	log_init(NULL, argc > 1 && !strcmp(argv[1], "-v") ? LOG_DEBUG : LOG_WARN);
	test_anon();
	test_file();
	test_stat_status();
	test_tids_auxv();
	if (failures) {
		printf("test_proc: %d checks failed\n", failures);
		return 1;
	}
	printf("test_proc: PASS\n");
	return 0;
}
