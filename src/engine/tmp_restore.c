/* Temporary until src/engine/restore.c lands: delete this file then. */
#include <errno.h>
#include "common/log.h"
#include "engine/engine.h"
int restore_main(const struct ferry_opts *o, int *s) { pr_err("restore: not built yet"); return -ENOSYS; }
