#!/usr/bin/env bash
# The generated man pages and bash completions (cmake/gen_docs.cmake) agree with --help: every
# flag --help lists, for drover-worker and for each drover command, is an option entry of the
# man page and a word the completion offers; the pages format without groff warnings.
set -euo pipefail
B=${DROVER_BIN_DIR:?}
fail() { echo "FAIL: $*" >&2; exit 1; }

# help_flags PROGRAM [CMD]: the flags of --help's Options list (lines "  --flag ...").
help_flags() { "$@" --help | sed -n 's/^  \(-h, \)\{0,1\}\(--[a-z0-9-]*\).*/\2/p'; }
# man_flags PAGE: the flags of the page's option entries (".B \-\-flag").
man_flags() { sed -n 's/^\.B \(\\-h, \)\{0,1\}\(\(\\-\)\{2\}[a-z0-9\\-]*\).*/\2/p' "$1" | sed 's/\\-/-/g'; }
# completes PROGRAM WORD...: what the completion offers after the words (the last is completed).
completes() {
    local prog=$1
    shift
    bash -c 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
             complete -p "$1" >/dev/null; $(complete -p "$1" | sed "s/.*-F \([^ ]*\).*/\1/")
             printf "%s\n" "${COMPREPLY[@]}"' sh "$B/completions/$prog" "$prog" "$@"
}

for page in drover drover-worker; do
    [ -s "$B/man/$page.1" ] || fail "no man page $B/man/$page.1"
    if command -v groff >/dev/null; then
        warn=$(groff -man -Tutf8 -ww -z "$B/man/$page.1" 2>&1)
        [ -z "$warn" ] || fail "groff warns about $page.1: $warn"
    fi
done

# check PAGE_FLAGS COMPLETED LABEL PROGRAM [CMD]
check() {
    local want man comp label=$3
    want=$(help_flags "${@:4}" | sort -u)
    [ -n "$want" ] || fail "$label --help lists no flags"
    comm -23 <(echo "$want") <(echo "$1" | sort -u) | grep . &&
        fail "$label: flags in --help but not in the man page (above)"
    comm -23 <(echo "$want" | grep -v '^--help$') <(echo "$2" | sort -u) | grep . &&
        fail "$label: flags in --help that the completion does not offer (above)"
    return 0
}

wman=$(man_flags "$B/man/drover-worker.1")
check "$wman" "$(completes drover-worker drover-worker --)" drover-worker "$B/drover-worker"
n=1
# The drover page: one subsection per command, each with its own option entries.
for cmd in $("$B/drover" --help-commands); do
    grep -q "^\.SS \"drover $cmd\"" "$B/man/drover.1" || fail "drover.1 has no section for $cmd"
    section=$(awk -v h=".SS \"drover $cmd\"" '$0 == h {on = 1; next} /^\.S[SH] / {on = 0} on' \
        "$B/man/drover.1")
    check "$(man_flags <(echo "$section"))" "$(completes drover drover "$cmd" --)" "drover $cmd" \
        "$B/drover" "$cmd"
    grep -q "^\.B $cmd\$" "$B/man/drover.1" || fail "drover.1 does not list $cmd under COMMANDS"
    completes drover drover "${cmd:0:2}" | grep -x "$cmd" >/dev/null || fail "completion does not offer $cmd"
    n=$((n + 1))
done
# Common flags may come before the command.
completes drover drover --re | grep -x -- --redis >/dev/null || fail "completion of a flag before the command"
echo "ok: drover-worker and $((n - 1)) drover commands: man pages and completions match --help"
