# Sourced by tests/container/run: the base images, made with debootstrap because no registry is
# reachable here. Each is a bookworm minbase root with its packages already installed, cached as
# a tarball under $DROVER_CONTAINER_CACHE so later runs skip the download.
# The mirror: DEBIAN_MIRROR, else the first one apt on this machine uses for bookworm.
apt_mirror() {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        if [ -r "$f" ]; then
            awk '/^URIs:/ {u = $2} /^Suites:/ && / bookworm( |$)/ && u {print u; exit}' "$f"
        fi
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        if [ -r "$f" ]; then awk '$1 == "deb" && $3 == "bookworm" {print $2; exit}' "$f"; fi
    done
}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-$(apt_mirror | sed -n 1p)}
: "${DROVER_CONTAINER_CACHE:=/var/cache/drover-container}"

# What the Dockerfile's build stage compiles with, what its run stage needs, and Redis.
BASE_BUILD_PKGS="build-essential,cmake,pkg-config,libhiredis-dev,libcjson-dev,libcurl4-openssl-dev,libssl-dev,libmicrohttpd-dev,libpq-dev,file"
BASE_RUN_PKGS="libhiredis0.14,libcjson1,libcurl4,libssl3,libmicrohttpd12,libpq5,ca-certificates,tini"
BASE_REDIS_PKGS="redis-server,redis-tools"

# trim_root DIR: drops what bookworm-slim leaves out too (docs, man pages, translations) and
# apt's downloads.
trim_root() {
    rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/* "$1"/usr/share/doc/* \
        "$1"/usr/share/man/* "$1"/usr/share/info/* "$1"/usr/share/locale/* "$1"/var/log/*.log
}

# base_tarball NAME PKGS: prints the cached rootfs tarball, running debootstrap if missing.
base_tarball() {
    local name=$1 pkgs=$2 key tar root
    key=$(printf '%s %s %s' "$pkgs" "$DEBIAN_MIRROR" slim | sha1sum | cut -c1-10)
    tar="$DROVER_CONTAINER_CACHE/$name-$key.tar"
    if [ ! -s "$tar" ]; then
        mkdir -p "$DROVER_CONTAINER_CACHE"
        root=$(mktemp -d "$DROVER_CONTAINER_CACHE/root-$name-XXXXXX")
        chmod 755 "$root" # mktemp made it 0700: it becomes the image's /
        echo "container: debootstrap $name ($pkgs) into $root" >&2
        if ! nice -n 10 debootstrap --variant=minbase --include="$pkgs" bookworm "$root" \
                "$DEBIAN_MIRROR" >"$root.log" 2>&1; then
            tail -20 "$root.log" >&2
            rm -rf "$root"
            return 1
        fi
        trim_root "$root"
        tar -C "$root" -cf "$tar.part" . && mv "$tar.part" "$tar"
        rm -rf "$root" "$root.log"
    fi
    echo "$tar"
}
