#!/usr/bin/env bash
# cpack makes a .deb of the build: it holds both programs, their man pages and completions
# where Debian keeps them, and depends on the runtime libraries the programs link (computed by
# dpkg-shlibdeps, so a library the build adds shows up without a list to keep true).
set -euo pipefail
B=${DROVER_BIN_DIR:?}
fail() { echo "FAIL: $*" >&2; exit 1; }
command -v dpkg-shlibdeps >/dev/null || { echo "SKIPPED: dpkg-shlibdeps missing (dpkg-dev)"; exit 0; }
TMP=$(mktemp -d /tmp/drover-deb-XXXXXX)
trap 'rm -rf "$TMP"' EXIT

(cd "$TMP" && cpack -G DEB --config "$B/CPackConfig.cmake" -B "$TMP/out" >"$TMP/cpack.log" 2>&1) ||
    { tail -20 "$TMP/cpack.log" >&2; fail "cpack"; }
deb=$(ls "$TMP"/out/drover_*.deb)
files=$(dpkg-deb -c "$deb" | awk '{print $NF}')
for f in ./usr/bin/drover ./usr/bin/drover-worker ./usr/share/man/man1/drover.1 \
    ./usr/share/man/man1/drover-worker.1 ./usr/share/bash-completion/completions/drover \
    ./usr/share/bash-completion/completions/drover-worker; do
    grep -qxF "$f" <<<"$files" || fail "$deb lacks $f"
done
depends=$(dpkg-deb -f "$deb" Depends)
has_dep() { tr ',' '\n' <<<"$depends" | grep "^ *$1\( \|:\|$\)" >/dev/null; }
for lib in libc6 libhiredis0.14 libcjson1 libcurl4 libmicrohttpd12; do
    has_dep "$lib" || fail "Depends lacks $lib: $depends"
done
# Whatever else the programs link themselves must be depended on too (libpq5, libssl3 when
# built in): each NEEDED library's package.
needed=$(objdump -p "$B/drover" "$B/drover-worker" | awk '$1 == "NEEDED" {print $2}' | sort -u)
for so in $needed; do
    path=$(ldd "$B/drover" "$B/drover-worker" | awk -v so="$so" '$1 == so {p = $3} END {print p}')
    # dpkg knows a library by the path its package installed: /usr/lib or /lib (merged /usr).
    pkg=$( (dpkg -S "$path" || dpkg -S "/usr$path") 2>/dev/null | sed -n '1s/:.*//p')
    case $pkg in "" | libc6) continue ;; esac
    has_dep "$pkg" || fail "Depends lacks $pkg ($so): $depends"
done
[ "$(dpkg-deb -f "$deb" Package)" = drover ] || fail "package name"
echo "ok: $(basename "$deb"): Depends: $depends"
