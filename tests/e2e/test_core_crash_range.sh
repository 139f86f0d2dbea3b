#!/usr/bin/env bash
# Crash recovery with a range source (see crash_common.sh).
MODE=range
source "$DROVER_SRC_DIR/tests/e2e/crash_common.sh"
