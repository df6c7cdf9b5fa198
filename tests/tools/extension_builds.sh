#!/usr/bin/env bash
# Builds of pg_distcount for the upgrade tests, and private copies of a PostgreSQL server to
# install them into (so that the server under test, and the system's, are never touched).
#
#   extension_builds.sh release COMMIT    build pg_distcount as of COMMIT for the major of
#                                         PG_CONFIG, once (cached outside the clone), and print
#                                         the directory holding lib/pg_distcount.so and
#                                         extension/pg_distcount{.control,--*.sql}; exit 3 (with
#                                         a printed reason) where COMMIT does not support that
#                                         major
#   extension_builds.sh current DIR       copy the pg_distcount installed in PG_CONFIG's server
#                                         (what `cargo pgrx install` put there) into DIR, in the
#                                         same layout
#   extension_builds.sh package DIR       build this checkout for the major of PG_CONFIG (`cargo
#                                         pgrx package`, release: the build `make test PG=NN`
#                                         makes, so each reuses the other's) into DIR, same layout;
#                                         kept in the cache, named by the tree of src/, sql/ and
#                                         the manifests, when they are committed
#   extension_builds.sh copy-server DEST  copy PG_CONFIG's server (programs, libraries, share
#                                         directory) under DEST, at the same paths below DEST
#                                         (PostgreSQL finds its directories relative to its
#                                         programs), and print the copy's pg_config
#   extension_builds.sh install DIR PG_CONFIG_OF_COPY
#                                         install the files in DIR (a layout as above) into
#                                         that server, replacing what is there
#
# The cache is the one of tests/tools/postgres.sh: $PG_DISTCOUNT_CACHE, else
# /var/cache/pg_distcount as root, else ~/.cache/pg_distcount. A release build is a debug build
# (it only has to run, and is built in a few minutes), in
# $CACHE/pg_distcount-<version>-<commit>-pg<major>/, with a cargo target directory shared by all
# such builds in $CACHE/pg_distcount-release-target.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
if [ -z "${PG_CONFIG:-}" ]; then
    PG_CONFIG="$("$ROOT/tests/tools/postgres.sh" pg_config "${PG:-15}")"
fi
CACHE="$("$ROOT/tests/tools/postgres.sh" cache)"
EXIT_UNSUPPORTED=3

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'extension_builds.sh: %s\n' "$*" >&2; exit 1; }
major_of() { "$1" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/'; }

# collect OUT_DIR PKGLIBDIR SHAREDIR: the extension's files from a server's (or a package's)
# directories into OUT_DIR/lib and OUT_DIR/extension.
collect() {
    local out="$1" lib="$2" share="$3"
    mkdir -p "$out/lib" "$out/extension"
    [ -f "$lib/pg_distcount.so" ] || die "no pg_distcount.so in $lib"
    cp "$lib/pg_distcount.so" "$out/lib/"
    cp "$share/extension/pg_distcount.control" "$share"/extension/pg_distcount--*.sql "$out/extension/"
}

release() {
    local commit="$1" major version short dir tmp log started
    major="$(major_of "$PG_CONFIG")"
    git -C "$ROOT" rev-parse --verify -q "$commit^{commit}" >/dev/null ||
        die "commit $commit is not in the repository at $ROOT (a release build needs the git history)"
    short="$(git -C "$ROOT" rev-parse --short=10 "$commit^{commit}")"
    version="$(git -C "$ROOT" show "$commit:Cargo.toml" | sed -nE 's/^version = "(.*)"$/\1/p' | head -1)"
    if ! git -C "$ROOT" show "$commit:Cargo.toml" | grep -q "^pg$major = "; then
        echo "pg_distcount $version ($short) does not build for PostgreSQL $major (no pg$major feature)"
        exit "$EXIT_UNSUPPORTED"
    fi
    dir="$CACHE/pg_distcount-$version-$short-pg$major"
    if [ -f "$dir/built" ]; then
        echo "$dir"
        return 0
    fi
    mkdir -p "$CACHE"
    chmod 755 "$CACHE"
    # One build at a time per cache (a second caller waits, then finds it built).
    exec 9>"$CACHE/.pg_distcount-release.lock"
    flock 9
    if [ -f "$dir/built" ]; then
        echo "$dir"
        return 0
    fi
    say "building pg_distcount $version ($short) for PostgreSQL $major, once (debug build, a few minutes; cached in $dir)"
    started=$SECONDS
    rm -rf "$dir"
    tmp="$dir.tmp"
    rm -rf "$tmp"
    mkdir -p "$tmp/src"
    git -C "$ROOT" archive "$short" | tar -x -C "$tmp/src"
    log="$tmp/build.log"
    # PGRX_PG_CONFIG_PATH: pgrx's bindings come from this server, whatever ~/.pgrx/config.toml holds.
    if ! (cd "$tmp/src" && PGRX_PG_CONFIG_PATH="$PG_CONFIG" CARGO_TARGET_DIR="$CACHE/pg_distcount-release-target" \
        cargo pgrx package --debug --pg-config "$PG_CONFIG" --out-dir "$tmp/package") >"$log" 2>&1; then
        tail -30 "$log" >&2
        die "the build of $version ($short) failed; full log in $log"
    fi
    collect "$tmp" "$tmp/package$("$PG_CONFIG" --pkglibdir)" "$tmp/package$("$PG_CONFIG" --sharedir)"
    rm -rf "$tmp/src" "$tmp/package"
    chmod -R go+rX "$tmp"
    mv "$tmp" "$dir"
    touch "$dir/built"
    say "built in $((SECONDS - started)) s"
    echo "$dir"
}

package() {
    local out="$1" tmp major version short kept=""
    major="$(major_of "$PG_CONFIG")"
    # Where everything the build is made of is committed, the build is kept in the cache:
    # pg_upgrade.sh needs this checkout's build for 18 on 15, 16 and 17, and a release build
    # (fat LTO) of the crate takes minutes each time another major's was built in between.
    if [ -z "$(git -C "$ROOT" status --porcelain -- Cargo.toml Cargo.lock pg_distcount.control src sql 2>/dev/null || echo dirty)" ]; then
        # Named by what it is built from (commits that change only tests keep it).
        short="src$(git -C "$ROOT" ls-tree -r HEAD -- Cargo.toml Cargo.lock pg_distcount.control src sql | sha256sum | cut -c1-10)"
        version="$(sed -nE 's/^version = "(.*)"$/\1/p' "$ROOT/Cargo.toml" | head -1)"
        kept="$CACHE/pg_distcount-$version-$short-pg$major-release"
        if [ -f "$kept/built" ]; then
            say "this checkout's release build for PostgreSQL $major ($short), from $kept"
            mkdir -p "$out"
            cp -r "$kept/lib" "$kept/extension" "$out/"
            return 0
        fi
    fi
    tmp="$(mktemp -d)"
    # Release, like `cargo pgrx install --release` in run_all.sh: one build serves both, when
    # pgrx finds the server in ~/.pgrx/config.toml as it does there (install_deps.sh puts it
    # there; a change of PGRX_PG_CONFIG_PATH rebuilds pgrx). Else it is told by that variable.
    local pgrx_env=()
    grep -qs "^pg$major = \"$PG_CONFIG\"" "${PGRX_HOME:-$HOME/.pgrx}/config.toml" ||
        pgrx_env=(PGRX_PG_CONFIG_PATH="$PG_CONFIG")
    (cd "$ROOT" && env "${pgrx_env[@]}" cargo pgrx package --pg-config "$PG_CONFIG" --out-dir "$tmp") >&2 ||
        die "cargo pgrx package for $PG_CONFIG failed"
    collect "$out" "$tmp$("$PG_CONFIG" --pkglibdir)" "$tmp$("$PG_CONFIG" --sharedir)"
    rm -rf "$tmp"
    if [ -n "$kept" ]; then
        mkdir -p "$CACHE"
        rm -rf "$kept.tmp"
        mkdir -p "$kept.tmp"
        cp -r "$out/lib" "$out/extension" "$kept.tmp/"
        chmod -R go+rX "$kept.tmp"
        rm -rf "$kept"
        mv "$kept.tmp" "$kept"
        touch "$kept/built"
    fi
}

copy_server() {
    local dest="$1" top d copied=()
    top="$(dirname "$("$PG_CONFIG" --bindir)")"
    rm -rf "$dest"
    # The programs' parent (Debian: /usr/lib/postgresql/NN, with lib/ inside; a relocatable
    # build: its whole prefix), and the share and library directories where they lie elsewhere.
    for d in "$top" "$("$PG_CONFIG" --sharedir)" "$("$PG_CONFIG" --pkglibdir)"; do
        case "$d/" in "$top"/*) [ "$d" = "$top" ] || continue ;; esac
        mkdir -p "$dest$(dirname "$d")"
        cp -a "$d" "$dest$(dirname "$d")/"
        copied+=("$d")
    done
    chmod -R go+rX "$dest"
    [ "$("$dest$("$PG_CONFIG" --bindir)/pg_config" --sharedir)" = "$dest$("$PG_CONFIG" --sharedir)" ] ||
        die "the copy of $PG_CONFIG's server in $dest does not find its own directories"
    echo "$dest$("$PG_CONFIG" --bindir)/pg_config"
}

install_files() {
    local dir="$1" pg_config="$2"
    rm -f "$("$pg_config" --sharedir)"/extension/pg_distcount--*.sql
    cp "$dir/lib/pg_distcount.so" "$("$pg_config" --pkglibdir)/"
    cp "$dir"/extension/* "$("$pg_config" --sharedir)/extension/"
}

case "${1:-}" in
release) release "$2" ;;
current) collect "$2" "$("$PG_CONFIG" --pkglibdir)" "$("$PG_CONFIG" --sharedir)" ;;
package) package "$2" ;;
copy-server) copy_server "$2" ;;
install) install_files "$2" "$3" ;;
*)
    echo "usage: $0 release COMMIT | current DIR | package DIR | copy-server DEST | install DIR PG_CONFIG" >&2
    exit 2
    ;;
esac
