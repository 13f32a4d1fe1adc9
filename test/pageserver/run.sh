#!/bin/bash
# Page-server suite: test/pageserver/t_*.sh (see test/lib/run-scripts.sh).
#   test/pageserver/run.sh [--build DIR] [--timeout SEC] [NAME...]
exec "$(dirname "$0")/../lib/run-scripts.sh" pageserver "$@"
