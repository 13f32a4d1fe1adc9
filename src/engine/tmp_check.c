/* Temporary until src/engine/check.c lands: delete this file then. */
#include "common/log.h"
#include "engine/engine.h"
int check_main(const struct ferry_opts *o) { pr_err("check: not built yet"); return 1; }
