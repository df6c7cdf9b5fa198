#!/usr/bin/env bash
# Citus for the tests: built once per machine and PostgreSQL major, and a coordinator with two
# workers made of tests/tools/cluster.sh clusters.
#
#   citus.sh ensure            build and install Citus for the PostgreSQL of PG_CONFIG, unless
#                              that PostgreSQL already has this Citus version; exit 3 (with a
#                              printed reason) where Citus cannot run on that major
#   citus.sh start NAME        start clusters NAME_coord, NAME_w1, NAME_w2 with Citus preloaded,
#                              create database $CITUS_DB (default distcount_citus), CREATE
#                              EXTENSION citus on each, register the workers on the coordinator
#   citus.sh env NAME [NODE]   print PGHOST/PGPORT/PGUSER/PGDATABASE exports of NODE (coord,
#                              w1 or w2; default coord)
#   citus.sh plan NAME QUERY [AGG...]
#                              how Citus runs QUERY (on the coordinator, database $CITUS_DB):
#                              "split (worker_partial_agg)" where the workers compute partial
#                              states of a user aggregate, "split (AGG on the workers)" where a
#                              worker query calls aggregate AGG itself (built-ins, and Citus's
#                              special cases by name such as hll_union_agg), "pulled to
#                              coordinator" otherwise (the workers only scan)
#   citus.sh stop NAME         stop the three clusters
#   citus.sh destroy NAME      stop them and remove their data directories
#
# Environment:
#   PG_CONFIG       the PostgreSQL to use (default /usr/lib/postgresql/15/bin/pg_config)
#   CITUS_TARBALL   the Citus source (default ../shared/vendor/citus-13.2.2.tar.gz beside the
#                   checkout, else /work/shared/vendor/)
#   CITUS_CACHE     where builds are kept, one directory per Citus version and PostgreSQL major
#                   (default: the cache of tests/tools/postgres.sh, so PG_DISTCOUNT_CACHE moves
#                   it too); a fresh clone reuses it
#   CITUS_JOBS      parallel make jobs (default: the number of cores)
#
# What `ensure` changes on the machine: as root (or through sudo) it apt-get installs the Debian
# packages Citus's build needs (liblz4-dev libzstd-dev libkrb5-dev, and gcc/make if missing),
# builds in the cache directory, and `make install`s citus.so, citus_columnar.so, their SQL
# scripts and headers into the directories of PG_CONFIG (as root or through sudo only where
# this user cannot write them). Citus is configured --without-libcurl:
# with libcurl it would try to send anonymous usage statistics to a public host from every test
# cluster.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
# PG_CONFIG (or PG) and CLUSTERS, this checkout's cluster directory for that major.
source "$ROOT/tests/tools/common.sh"
CITUS_VERSION=13.2.2
# A clone anywhere (CI clones into a temporary directory) finds the workplace's shared folder too.
if [ -z "${CITUS_TARBALL:-}" ]; then
    for candidate in "$ROOT/../shared/vendor" /work/shared/vendor; do
        CITUS_TARBALL="$candidate/citus-$CITUS_VERSION.tar.gz"
        [ -f "$CITUS_TARBALL" ] && break
    done
fi
CITUS_DB="${CITUS_DB:-distcount_citus}"
CLUSTER="$ROOT/tests/tools/cluster.sh"
EXIT_UNSUPPORTED=3

say() { printf '==> %s\n' "$*"; }
die() { printf 'citus.sh: %s\n' "$*" >&2; exit 1; }

pg_major() { "$PG_CONFIG" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/'; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi
}

# Runs an install into the server's directories: directly for a user who owns them (a server
# unpacked by tests/tools/postgres.sh, or any PG_CONFIG of one's own), else as root.
as_server_owner() {
    local dir
    for dir in "$("$PG_CONFIG" --pkglibdir)" "$("$PG_CONFIG" --sharedir)/extension" "$("$PG_CONFIG" --includedir-server)"; do
        if [ ! -w "$dir" ]; then
            as_root "$@" || die "installing into $dir (not writable by $(id -un)) as root failed: run as root, give this user sudo, or use a PG_CONFIG of a server this user owns"
            return
        fi
    done
    "$@"
}

# Debian packages the build needs that are not installed yet.
install_build_deps() {
    local wanted=(gcc make liblz4-dev libzstd-dev libkrb5-dev) missing=() p
    for p in "${wanted[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
    done
    [ "${#missing[@]}" = 0 ] && return 0
    say "apt-get install ${missing[*]} (Citus build dependencies)"
    command -v apt-get >/dev/null || die "no apt-get: install ${missing[*]} by hand"
    if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null; then
        say "apt-get update, then install again"
        as_root apt-get update -q >/dev/null
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
    fi
}

# The PG 15 branch of pg_version_compat.h defines a static inline have_createdb_privilege();
# PostgreSQL 15 minor releases that declare the function in commands/dbcommands.h (15.20 does)
# then fail to compile. Delete that definition there; where the header does not declare it, or
# on 16 and later (whose branch only #defines the name), nothing changes.
apply_header_fix() {
    local src="$1" major="$2" header
    header="$("$PG_CONFIG" --includedir-server)/commands/dbcommands.h"
    [ "$major" = 15 ] || return 0
    grep -q 'have_createdb_privilege' "$header" 2>/dev/null || return 0
    say "header fix: $header declares have_createdb_privilege(); deleting Citus's static inline copy"
    sed -i -e '/^static inline bool$/{N;/\nhave_createdb_privilege(void)$/{:a;N;/\n}$/!ba;d}}' \
        "$src/src/include/pg_version_compat.h"
}

# Runs make in the background and prints a line every 30 s until it ends; the output goes to LOG.
make_with_progress() {
    local dir="$1" log="$2" total started pid rc n
    total="$(find "$dir/src" -name '*.c' | wc -l)"
    started=$SECONDS
    (cd "$dir" && make -j"${CITUS_JOBS:-$(nproc)}" >"$log" 2>&1) &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
        kill -0 "$pid" 2>/dev/null || break
        n="$(find "$dir/src" -name '*.o' | wc -l)"
        [ "$n" -le "$total" ] || total=$n # a few sources are generated during the build
        echo "    still building… $n of about $total files compiled ($((SECONDS - started)) s)"
    done
    rc=0
    wait "$pid" || rc=$?
    if [ "$rc" != 0 ]; then
        echo "--- last lines of $log ---" >&2
        tail -30 "$log" >&2
        die "make failed (exit $rc), full log in $log"
    fi
    say "compiled in $((SECONDS - started)) s"
}

ensure() {
    local major pkglib sharedir cache build src stamp want_stamp started
    started=$SECONDS
    major="$(pg_major)"
    case "$major" in
    15 | 16 | 17) ;;
    *)
        echo "Citus $CITUS_VERSION supports PostgreSQL 15 to 17; $PG_CONFIG is PostgreSQL $major"
        exit "$EXIT_UNSUPPORTED"
        ;;
    esac
    pkglib="$("$PG_CONFIG" --pkglibdir)"
    sharedir="$("$PG_CONFIG" --sharedir)"
    cache="${CITUS_CACHE:-$("$ROOT/tests/tools/postgres.sh" cache)}"
    build="$cache/citus-$CITUS_VERSION-pg$major"
    src="$build/citus-$CITUS_VERSION"
    stamp="$build/built-for"
    # Reused by every PostgreSQL of the same release (a copy of it elsewhere too).
    want_stamp="citus $CITUS_VERSION for $("$PG_CONFIG" --version)"

    mkdir -p "$build"
    chmod 755 "$cache" "$build"
    # One ensure at a time per build directory (two test runs may start together).
    exec 9>"$build/lock"
    flock 9

    local built=0
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want_stamp" ] && [ -f "$src/src/backend/distributed/citus.so" ]; then
        built=1
    fi
    if [ "$built" = 1 ] && cmp -s "$src/src/backend/distributed/citus.so" "$pkglib/citus.so" &&
        [ -f "$sharedir/extension/citus.control" ] && [ -f "$pkglib/citus_columnar.so" ]; then
        say "Citus $CITUS_VERSION is installed for PostgreSQL $major ($pkglib), build cached in $build"
        return 0
    fi

    if [ "$built" = 0 ]; then
        [ -f "$CITUS_TARBALL" ] || die "Citus source not found: $CITUS_TARBALL (set CITUS_TARBALL)"
        say "building Citus $CITUS_VERSION for PostgreSQL $major in $build (2 to 4 minutes on 2 cores)"
        install_build_deps
        rm -rf "$src" "$stamp"
        say "unpacking $CITUS_TARBALL"
        tar -xzf "$CITUS_TARBALL" -C "$build"
        [ -d "$src" ] || die "$CITUS_TARBALL did not unpack to citus-$CITUS_VERSION/"
        apply_header_fix "$src" "$major"
        say "configure (log: $build/configure.log)"
        (cd "$src" && ./configure PG_CONFIG="$PG_CONFIG" --without-libcurl >"$build/configure.log" 2>&1) ||
            { tail -20 "$build/configure.log" >&2; die "configure failed, log in $build/configure.log"; }
        say "make (log: $build/make.log)"
        make_with_progress "$src" "$build/make.log"
        echo "$want_stamp" >"$stamp"
        chmod -R o+rX "$build"
    fi

    say "make install into $pkglib (log: $build/install.log)"
    (cd "$src" && as_server_owner make install PG_CONFIG="$PG_CONFIG" >"$build/install.log" 2>&1) ||
        { tail -20 "$build/install.log" >&2; die "make install failed, log in $build/install.log"; }
    say "Citus $CITUS_VERSION installed for PostgreSQL $major in $((SECONDS - started)) s"
}

node_dir() { echo "$CLUSTERS/$1"; }
node_env() { "$CLUSTER" env "$1"; echo "export PGDATABASE='$CITUS_DB'"; }
node_port() { cat "$(node_dir "$1")/port"; }
node_sock() { echo "$(node_dir "$1")/socket"; }
node_sql() { # node_sql CLUSTER DB SQL
    psql -X -q -v ON_ERROR_STOP=1 -tA -h "$(node_sock "$1")" -p "$(node_port "$1")" -U postgres -d "$2" -c "$3"
}

start() {
    local name="$1" node
    for node in "${name}_coord" "${name}_w1" "${name}_w2"; do
        # citus.local_hostname: how a node reaches itself (shard moves, background tasks); the
        # clusters listen on their sockets only.
        "$CLUSTER" start "$node" "shared_preload_libraries = 'citus'" "max_worker_processes = 16" \
            "max_connections = 200" "citus.local_hostname = '$(node_sock "$node")'"
        if [ "$(node_sql "$node" postgres "SELECT count(*) FROM pg_database WHERE datname = '$CITUS_DB'")" = 0 ]; then
            node_sql "$node" postgres "CREATE DATABASE $CITUS_DB"
        fi
        node_sql "$node" "$CITUS_DB" "SET client_min_messages = warning; CREATE EXTENSION IF NOT EXISTS citus"
    done
    # Nodes reach each other over their Unix sockets: a host that starts with / is a socket
    # directory to libpq, and so to Citus.
    say "registering ${name}_w1 and ${name}_w2 on ${name}_coord"
    node_sql "${name}_coord" "$CITUS_DB" \
        "SELECT citus_set_coordinator_host('$(node_sock "${name}_coord")', $(node_port "${name}_coord"))" >/dev/null
    for node in "${name}_w1" "${name}_w2"; do
        node_sql "${name}_coord" "$CITUS_DB" \
            "SELECT citus_add_node('$(node_sock "$node")', $(node_port "$node"))" >/dev/null
    done
    node_sql "${name}_coord" "$CITUS_DB" \
        "SELECT string_agg(format('%s:%s (%s)', nodename, nodeport, noderole), ', ' ORDER BY nodeid) FROM pg_dist_node" |
        sed 's/^/    nodes: /'
}

plan() {
    local name="$1" query="$2" workers agg
    shift 2
    workers="$(node_sql "${name}_coord" "$CITUS_DB" "EXPLAIN (VERBOSE) $query" | sed -n 's/^ *Query: //p')"
    [ -n "$workers" ] || die "no worker query in the plan of: $query"
    if grep -q 'worker_partial_agg' <<<"$workers"; then
        echo "split (worker_partial_agg)"
        return
    fi
    for agg in "$@"; do
        if grep -q "$agg(" <<<"$workers"; then
            echo "split ($agg on the workers)"
            return
        fi
    done
    echo "pulled to coordinator"
}

cmd="${1:-}"
case "$cmd" in
ensure) ensure ;;
start) start "${2:?usage: citus.sh start NAME}" ;;
plan) plan "${2:?usage: citus.sh plan NAME QUERY [AGG...]}" "${3:?usage: citus.sh plan NAME QUERY [AGG...]}" "${@:4}" ;;
env)
    name="${2:?usage: citus.sh env NAME [coord|w1|w2]}"
    node_env "${name}_${3:-coord}"
    ;;
stop | destroy)
    name="${2:?usage: citus.sh $cmd NAME}"
    for node in "${name}_coord" "${name}_w1" "${name}_w2"; do
        "$CLUSTER" stop "$node"
        if [ "$cmd" = destroy ]; then rm -rf "$(node_dir "$node")"; fi
    done
    ;;
*)
    echo "usage: $0 ensure | start NAME | env NAME [coord|w1|w2] | plan NAME QUERY [AGG...] | stop NAME | destroy NAME" >&2
    exit 2
    ;;
esac
