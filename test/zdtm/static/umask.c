/*
 * umask: a non-default umask (027) survives; a file created after the restore gets
 * the masked mode.
 */
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "zdtmtst.h"

int main(int argc, char **argv)
{
	char path[4200];
	struct stat st;
	mode_t m;
	int fd;

	test_init(argc, argv);
	umask(027);

	test_ready();
	test_wait_sigterm();

	m = umask(027);
	if (m != 027)
		fail("umask %03o, expected 027", m);
	snprintf(path, sizeof(path), "%s/umask.file", test_dir());
	fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0777);
	if (fd < 0 || fstat(fd, &st))
		fail("create %s: %m", path);
	close(fd);
	unlink(path);
	if ((st.st_mode & 0777) != 0750)
		fail("new file mode %03o, expected 750", st.st_mode & 0777);
	pass();
}
