/*
 * cwd: the working directory is a directory created by the test, with spaces in its
 * path. After the restore getcwd() and the directory's identity (dev, inode) are the
 * same and relative paths resolve there.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "zdtmtst.h"

int main(int argc, char **argv)
{
	char dir[4200], sub[4300], cwd0[4400], cwd1[4400];
	struct stat st0, st1;
	int fd;

	test_init(argc, argv);
	snprintf(dir, sizeof(dir), "%s/cwd dir with  spaces", test_dir());
	snprintf(sub, sizeof(sub), "%s/sub dir", dir);
	if ((mkdir(dir, 0755) && errno != EEXIST) || (mkdir(sub, 0755) && errno != EEXIST))
		fail("mkdir %s: %m", sub);
	if (chdir(sub) || !getcwd(cwd0, sizeof(cwd0)) || stat(".", &st0))
		fail("chdir %s: %m", sub);
	fd = open("marker", O_CREAT | O_WRONLY, 0644);
	if (fd < 0)
		fail("create marker: %m");
	close(fd);

	test_ready();
	test_wait_sigterm();

	if (!getcwd(cwd1, sizeof(cwd1)))
		fail("getcwd: %m");
	if (strcmp(cwd0, cwd1))
		fail("cwd is '%s', was '%s'", cwd1, cwd0);
	if (stat(".", &st1) || st1.st_dev != st0.st_dev || st1.st_ino != st0.st_ino)
		fail("cwd is another directory (inode %lu, was %lu)", (unsigned long)st1.st_ino,
		     (unsigned long)st0.st_ino);
	if (access("marker", F_OK))
		fail("relative path does not resolve in the cwd: %m");
	unlink("marker");
	chdir("/");
	rmdir(sub);
	rmdir(dir);
	pass();
}
