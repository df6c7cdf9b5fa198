# Sourced by tests/integration/*.sh. They run against the test cluster whose PGHOST, PGPORT
# and PGUSER run_all.sh exports; `check` compares and counts, `finish` sets the exit status.
set -euo pipefail

CHECKS_FAILED=0
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

finish() {
    [ "$CHECKS_FAILED" = 0 ]
}
