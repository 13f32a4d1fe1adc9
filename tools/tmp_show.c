/* Temporary until tools/show.c lands: delete this file then. */
#include <errno.h>
#include "common/log.h"
#include "engine/engine.h"
int show_main(const char *p) { pr_err("show: not built yet"); return -ENOSYS; }
