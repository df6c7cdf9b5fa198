# Sourced by the test tools: which PostgreSQL is under test, and where this checkout keeps its
# clusters for it.
#
#   PG_CONFIG  the server under test: as given, else the one of major $PG (default 15)
#   PG_MAJOR   its major version (PG, when also given, must agree)
#   STATE      this checkout's clusters and pgrx test data for that major. As root the clusters
#              belong to the `postgres` user, which may not reach the checkout (a clone under
#              /root or in a `mktemp -d`), so they live under /var/lib/pg_distcount/ then; as
#              any other user (the clusters are its own) under target/. PG_DISTCOUNT_STATE
#              overrides the base directory.
#   CLUSTERS   $STATE/clusters: one directory per named cluster (tests/tools/cluster.sh)
#   as_owner   runs a command as the clusters' owner
DISTCOUNT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
if [ -z "${PG_CONFIG:-}" ]; then
    PG_CONFIG="$("$DISTCOUNT_ROOT/tests/tools/postgres.sh" pg_config "${PG:-15}")"
fi
export PG_CONFIG
if [ ! -x "$PG_CONFIG" ]; then
    echo "no pg_config at $PG_CONFIG: run 'make deps${PG:+ PG=$PG}' first" >&2
    exit 1
fi
PG_MAJOR="$("$PG_CONFIG" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')"
if [ -n "${PG:-}" ] && [ "$PG" != "$PG_MAJOR" ]; then
    echo "PG=$PG but PG_CONFIG=$PG_CONFIG is PostgreSQL $PG_MAJOR" >&2
    exit 1
fi
export PG_MAJOR

if [ -n "${PG_DISTCOUNT_STATE:-}" ]; then
    STATE="$PG_DISTCOUNT_STATE/pg$PG_MAJOR"
elif [ "$(id -u)" = 0 ]; then
    STATE="/var/lib/pg_distcount/$(basename "$DISTCOUNT_ROOT")-$(printf '%s' "$DISTCOUNT_ROOT" | sha256sum | cut -c1-10)/pg$PG_MAJOR"
else
    STATE="$DISTCOUNT_ROOT/target/pg$PG_MAJOR"
fi
CLUSTERS="$STATE/clusters"
mkdir -p "$CLUSTERS"
# Which checkout the state belongs to, so that tests/tools/prune_states.sh can tell the state of
# a checkout deleted without `make clean` (the clusters it leaves can fill a disk).
[ -f "$(dirname "$STATE")/checkout" ] || printf '%s\n' "$DISTCOUNT_ROOT" >"$(dirname "$STATE")/checkout"
if [ "$(id -u)" = 0 ]; then
    # The directories down to the clusters are open to the `postgres` user (root's umask may
    # be 077); the clusters themselves belong to it.
    chmod a+rx "$CLUSTERS" "$STATE" "$(dirname "$STATE")"
    [ -n "${PG_DISTCOUNT_STATE:-}" ] || chmod a+rx /var/lib/pg_distcount
    # From /: PostgreSQL's programs look up their own path and change back to the working
    # directory, which `postgres` may not be allowed to enter.
    as_owner() { (cd / && runuser -u postgres -- "$@"); }
else
    as_owner() { "$@"; }
fi
