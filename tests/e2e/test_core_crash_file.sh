#!/usr/bin/env bash
# Crash recovery with a file source (see crash_common.sh).
MODE=file
source "$DROVER_SRC_DIR/tests/e2e/crash_common.sh"
