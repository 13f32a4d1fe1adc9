/*
 * mm_fields: the mm fields of /proc/self/stat (code, data, brk, stack, arg and env
 * bounds), the bytes of /proc/self/auxv, the /proc/self/exe target, cmdline and environ
 * are the same after the restore (argv[0] is rewritten in place first).
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "zdtmtst.h"

struct snap {
	unsigned long f[11];	/* stat fields 26,27,28,45..51 and brk via sbrk */
	char auxv[4096];
	ssize_t auxv_len;
	char exe[4096];
	char cmdline[8192];
	char environ[65536];
};

static const int fields[] = { 26, 27, 28, 45, 46, 47, 48, 49, 50, 51 };
static const char *names[] = { "start_code", "end_code", "start_stack", "start_data",
	"end_data", "start_brk", "arg_start", "arg_end", "env_start", "env_end", "brk" };

static void take(struct snap *s)
{
	char stat[4096], *p;
	int field = 3, i = 0;
	ssize_t n;

	memset(s, 0, sizeof(*s));
	if (test_read_file("/proc/self/stat", stat, sizeof(stat)) < 0)
		fail("read stat: %m");
	p = strrchr(stat, ')');
	if (!p)
		fail("bad stat");
	p += 2;		/* field 3 */
	while (*p && i < 10) {
		if (field == fields[i])
			s->f[i++] = strtoul(p, NULL, 10);
		p = strchr(p, ' ');
		if (!p)
			break;
		p++;
		field++;
	}
	if (i != 10)
		fail("stat has too few fields");
	s->f[10] = (unsigned long)sbrk(0);
	s->auxv_len = test_read_file("/proc/self/auxv", s->auxv, sizeof(s->auxv));
	n = readlink("/proc/self/exe", s->exe, sizeof(s->exe) - 1);
	if (n < 0 || s->auxv_len <= 0)
		fail("read auxv/exe: %m");
	test_read_file("/proc/self/cmdline", s->cmdline, sizeof(s->cmdline));
	test_read_file("/proc/self/environ", s->environ, sizeof(s->environ));
}

int main(int argc, char **argv)
{
	static struct snap a, b;
	int i;

	test_init(argc, argv);
	/* rewrite the argument area in place (as setproctitle does): /proc/self/cmdline
	 * reads it from memory, so it must come back with the memory */
	if (argc > 0 && argv[0][0])
		argv[0][strlen(argv[0]) - 1] = 'Z';
	take(&a);

	test_ready();
	test_wait_sigterm();

	take(&b);
	for (i = 0; i < 11; i++)
		if (a.f[i] != b.f[i])
			fail("%s: %#lx, was %#lx", names[i], b.f[i], a.f[i]);
	if (a.auxv_len != b.auxv_len || memcmp(a.auxv, b.auxv, a.auxv_len))
		fail("auxv differs (%zd vs %zd bytes)", b.auxv_len, a.auxv_len);
	if (strcmp(a.exe, b.exe))
		fail("exe is '%s', was '%s'", b.exe, a.exe);
	if (memcmp(a.cmdline, b.cmdline, sizeof(a.cmdline)))
		fail("cmdline differs");
	if (memcmp(a.environ, b.environ, sizeof(a.environ)))
		fail("environ differs");
	pass();
}
