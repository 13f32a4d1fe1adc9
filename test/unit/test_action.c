/*
 * test_action: migrate's --action-script runner (src/migrate/action.c) with real
 * scripts in a temp dir: the stage and extra variables reach the script, exit 0 passes,
 * a non-zero exit and a signal are -ECANCELED, a hanging script is killed at the
 * timeout, a missing script is an error, our fds above 2 are not inherited.
 * Exit 0 all passed, 1 any failed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "migrate/action.h"

#define CHECK(cond) do { if (!(cond)) { \
	fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); exit(1); } } while (0)

static char dir[] = "/tmp/ferry-test-action.XXXXXX";

static const char *script(const char *name, const char *body)
{
	static char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	CHECK(f);
	fprintf(f, "#!/bin/sh\n%s\n", body);
	fclose(f);
	CHECK(chmod(path, 0700) == 0);
	return path;
}

static char *slurp(const char *name)
{
	char path[512], *s = NULL;
	size_t len;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	CHECK(read_file(path, &s, &len, 4096) == 0);
	return s;
}

int main(void)
{
	util_init();
	log_init(NULL, 0); /* errors are expected below: keep the output quiet */
	CHECK(mkdtemp(dir));
	char out[600], cmd[1200];
	snprintf(out, sizeof(out), "%s/out", dir);

	/* stage and extra variables arrive */
	snprintf(cmd, sizeof(cmd), "echo \"$FERRY_STAGE $FERRY_PID\" > %s", out);
	const char *ok = script("ok.sh", cmd);
	char *env[] = { "FERRY_PID=4242", NULL };
	CHECK(mig_action(ok, MIG_STAGE_PRE_DUMP, env, 10) == 0);
	char *s = slurp("out");
	CHECK(!strcmp(s, "pre-dump 4242\n"));
	free(s);

	/* no script: nothing runs */
	CHECK(mig_action(NULL, MIG_STAGE_PRE_RESTORE, NULL, 10) == 0);

	/* non-zero exit, killed by a signal, hanging past the timeout */
	CHECK(mig_action(script("fail.sh", "exit 3"), MIG_STAGE_PRE_RESTORE, NULL, 10) ==
	      -ECANCELED);
	CHECK(mig_action(script("sig.sh", "kill -9 $$"), MIG_STAGE_POST_DUMP, NULL, 10) ==
	      -ECANCELED);
	CHECK(mig_action(script("hang.sh", "exec sleep 100"), MIG_STAGE_NETWORK_LOCK, NULL, 1) ==
	      -ECANCELED);

	/* missing */
	char missing[600];
	snprintf(missing, sizeof(missing), "%s/nope.sh", dir);
	CHECK(mig_action(missing, MIG_STAGE_PRE_DUMP, NULL, 10) == -ENOENT);

	/* fds above 2 are not inherited (not even without O_CLOEXEC) */
	int fd = open("/dev/null", O_RDONLY);
	CHECK(fd > 2);
	snprintf(cmd, sizeof(cmd), "ls /proc/self/fd > %s", out);
	CHECK(mig_action(script("fds.sh", cmd), MIG_STAGE_POST_RESUME, NULL, 10) == 0);
	s = slurp("out");
	/* ls itself opens one fd for the listing (3); ours would be another number */
	char want[16];
	snprintf(want, sizeof(want), "\n%d\n", fd);
	CHECK(fd == 3 ? strstr(s, "\n4\n") == NULL : strstr(s, want) == NULL);
	free(s);
	close(fd);

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK(system(cmd) == 0);
	printf("test_action: all passed\n");
	return 0;
}
