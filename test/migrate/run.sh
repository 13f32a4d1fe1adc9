#!/bin/bash
# Migration suite: test/migrate/t_*.sh (see test/lib/run-scripts.sh).
#   test/migrate/run.sh [--build DIR] [--timeout SEC] [NAME...]
exec "$(dirname "$0")/../lib/run-scripts.sh" migrate "$@"
