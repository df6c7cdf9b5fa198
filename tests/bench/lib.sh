# Sourced by the benchmarks in tests/bench/: helpers they share.

# median: the median of the numbers on standard input, one a line.
median() { sort -g | awk '{a[NR]=$1} END {if (NR == 0) print "nan"; else print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

# median_of FILE NAME: the median of the second field of the lines of FILE whose first field is NAME.
median_of() { awk -v name="$2" '$1 == name {print $2}' "$1" | median; }

# For the instruction counts (hll_instructions.sh, outbox_instructions.sh):
#   callgrind_init NAME   sets CLUSTER (tests/tools/cluster.sh), BINDIR (the server's), DATA
#                         (cluster NAME's data directory) and WORK (a scratch directory that the
#                         cluster's owner can write); on exit WORK goes, the cluster stops, and a
#                         failure shows the last valgrind log. Exits 0 with a note when valgrind
#                         is missing.
#   callgrind_db          starts the cluster and makes database $DB afresh (then load it with
#                         psql, and stop the cluster with callgrind_stop before counting)
#   callgrind_stop        stops the cluster: the single-user backend needs the data directory
#   callgrind_total NAME  runs a single-user backend of database $DB over $WORK/NAME.sql under
#                         callgrind and prints the instructions it executed (the cluster must be
#                         stopped: the backend needs the data directory to itself); with
#                         CALLGRIND_KEEP=DIR its profile is kept as DIR/NAME.out (callgrind_annotate).
#   callgrind_queries "NAME|SQL" ...
#                         callgrind_total of each query, in a serial plan, into TOTAL[NAME],
#                         saying which one runs.
callgrind_init() {
    CALLGRIND_CLUSTER="$1"
    CLUSTER="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/tests/tools/cluster.sh"
    BINDIR="$("${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}" --bindir)"
    DATA="$("$CLUSTER" dir "$CALLGRIND_CLUSTER")/data"
    WORK="$(mktemp -d)"
    chmod 1777 "$WORK"   # the backend under valgrind runs as the cluster's owner and writes here
    trap callgrind_cleanup EXIT
    if ! command -v valgrind >/dev/null; then
        echo "!! valgrind is not installed (make deps installs it); skipping the instruction counts"
        exit 0
    fi
}

callgrind_cleanup() {
    local rc=$?
    [ "$rc" = 0 ] || { echo "!! $(basename "$0") failed (exit $rc); the last valgrind log:" >&2; tail -5 "$WORK"/*.log >&2 2>/dev/null || true; }
    rm -rf "$WORK"
    "$CLUSTER" stop "$CALLGRIND_CLUSTER" >/dev/null 2>&1 || true
}

callgrind_total() {
    local as_owner=()
    [ "$(id -u)" != 0 ] || as_owner=(runuser -u postgres --)
    "${as_owner[@]}" valgrind --tool=callgrind --callgrind-out-file="$WORK/$1.out" \
        "$BINDIR/postgres" --single -D "$DATA" "$DB" <"$WORK/$1.sql" >"$WORK/$1.log" 2>&1 || return
    [ -z "${CALLGRIND_KEEP:-}" ] || { mkdir -p "$CALLGRIND_KEEP" && cp "$WORK/$1.out" "$CALLGRIND_KEEP/"; }
    awk '/^totals:/ {print $2}' "$WORK/$1.out"
}

callgrind_db() {
    "$CLUSTER" start "$CALLGRIND_CLUSTER" >/dev/null
    eval "$("$CLUSTER" env "$CALLGRIND_CLUSTER")"
    dropdb --if-exists "$DB" 2>/dev/null
    createdb "$DB"
}

callgrind_stop() { "$CLUSTER" stop "$CALLGRIND_CLUSTER" >/dev/null; }

callgrind_queries() {
    declare -gA TOTAL
    local i=0 pair name
    for pair in "$@"; do
        i=$((i + 1))
        name="${pair%%|*}"
        printf '%s\n%s;\n' "SET max_parallel_workers_per_gather = 0;" "${pair#*|}" >"$WORK/$name.sql"
        echo "    [$i/$#] callgrind: $name"
        TOTAL[$name]="$(callgrind_total "$name")"
    done
}

# For the comparisons with Apache DataSketches (cms_vs_datasketches.sh, hll_vs_datasketches.sh):
#   datasketches_cluster NAME DB  installs the Python packages datasketches and numpy (pip, for
#                                 this user) when they are missing, starts cluster NAME (stopped
#                                 on exit), sets PGHOST/PGPORT and makes database DB afresh.
datasketches_cluster() {
    DATASKETCHES_CLUSTER="$1"
    DATASKETCHES_CLUSTER_SH="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/tests/tools/cluster.sh"
    trap '"$DATASKETCHES_CLUSTER_SH" stop "$DATASKETCHES_CLUSTER" >/dev/null 2>&1 || true' EXIT
    if ! python3 -c 'import datasketches, numpy' 2>/dev/null; then
        echo "==> installing the Python packages datasketches and numpy (pip, for this user)"
        python3 -m pip install --quiet --user datasketches numpy ||
            python3 -m pip install --quiet --user --break-system-packages datasketches numpy
    fi
    "$DATASKETCHES_CLUSTER_SH" start "$DATASKETCHES_CLUSTER"
    eval "$("$DATASKETCHES_CLUSTER_SH" env "$DATASKETCHES_CLUSTER")"
    dropdb --if-exists "$2"
    createdb "$2"
}
