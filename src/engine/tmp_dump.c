/* Temporary until src/engine/dump.c lands: delete this file then. */
#include <errno.h>
#include "common/log.h"
#include "engine/engine.h"
int dump_main(const struct ferry_opts *o) { pr_err("dump: not built yet"); return -ENOSYS; }
