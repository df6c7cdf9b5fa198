# Sourced by tests/integration/*.sh. They run against the test cluster whose PGHOST, PGPORT
# and PGUSER run_all.sh exports; `check` compares and counts, `finish` sets the exit status.
set -euo pipefail
# PG_CONFIG, PG_MAJOR, CLUSTERS (where tests/tools/cluster.sh keeps each cluster), as_owner.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

CHECKS_FAILED=0
START=$SECONDS
# stamp WHAT: a progress line with the seconds since the test began.
stamp() { printf '    [%d s] %s\n' "$((SECONDS - START))" "$*"; }
sql() { psql -X -q -v ON_ERROR_STOP=1 -tA "$@"; }

# check WHAT EXPECTED ACTUAL
check() {
    if [ "$2" = "$3" ]; then
        echo "ok: $1"
    else
        echo "FAILED: $1: expected [$2], got [$3]"
        CHECKS_FAILED=$((CHECKS_FAILED + 1))
    fi
}

fresh_db() {
    dropdb --if-exists "$1"
    createdb "$1"
    sql -d "$1" -c "CREATE EXTENSION pg_distcount"
}

# kill_postmaster DATA: kill -9 of the postmaster of the cluster in DATA, then wait until its
# backends have noticed and exited; any that linger are killed like the rest of a crashed server.
kill_postmaster() {
    local pm children alive p
    pm="$(head -1 "$1/postmaster.pid")"
    children="$(ps -o pid= --ppid "$pm" | tr '\n' ' ')"
    kill -9 "$pm"
    for _ in $(seq 1 50); do
        alive=""
        for p in $children; do kill -0 "$p" 2>/dev/null && alive="$alive $p"; done
        [ -z "$alive" ] && break
        sleep 0.2
    done
    for p in $alive; do kill -9 "$p" 2>/dev/null || true; done
}

# skip WHAT WHY: a check that cannot run here, said in the output and counted by run_all.sh.
skip() {
    echo "SKIPPED: $1: $2"
}

finish() {
    [ "$CHECKS_FAILED" = 0 ]
}
