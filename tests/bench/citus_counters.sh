#!/usr/bin/env bash
# Sharded counters on a Citus cluster against one plain node, in one run on one machine: pgbench
# clients each calling `SELECT distcount.counter_add('c-K')` for K random among COUNTERS counters
# (many different counters: the writes that distributing should spread).
#   one node      CLIENTS clients on a plain PostgreSQL with pg_distcount (no Citus)
#   2 workers     CLIENTS clients split over the two workers of a Citus cluster (coordinator
#                 and 2 workers, distcount.citus_setup(), 32 shards), each call run on the
#                 worker it reaches: half the counters are on that worker (written straight
#                 into its shard tables), half on the other (statements routed there)
#   routed        the same clients, each adding only to counters on the worker it is connected
#                 to (as an application that connects to the counter's node would), through a
#                 local table of those names on each worker (an index lookup per call)
#   coordinator   CLIENTS clients on the Citus coordinator
# Each figure is the median TPS of ROUNDS interleaved rounds of SECONDS seconds (after a warm-up
# round), with its ratio to one node. All nodes share this machine's cores, so the ratios show
# the cost of routing and of the extra servers, not the throughput of real separate workers. At
# the end the counters' sum is checked against the transactions pgbench counted.
# What a machine of its own per worker would give is estimated from the servers' CPU time per
# increment (all PostgreSQL processes of the variant's servers, from /proc, pgbench excluded):
# with each worker on a machine of its own and saturated, N workers do N × (one node's CPU per
# increment) / (the cluster's CPU per increment) times one node's increments. That is a
# projection from measured costs, not a measured speed-up.
#
#   PG_CONFIG=… bash tests/bench/citus_counters.sh [ROUNDS] [SECONDS]   (defaults 3 and 15)
# with the pg_distcount build to measure installed in that PostgreSQL. CITUS_BENCH_CLIENTS
# (default 8) and CITUS_BENCH_COUNTERS (default 10,000) set the load. Writes
# tests/bench/results/citus_counters.tsv. Where Citus cannot run, prints "skipped" and exits 0.
set -euo pipefail
{ # One block: bash reads the whole script before it starts, so editing it cannot change a run.
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
source "$ROOT/tests/tools/common.sh"
CITUS="$ROOT/tests/tools/citus.sh"
CLUSTER="$ROOT/tests/tools/cluster.sh"
RESULTS="$ROOT/tests/bench/results"
PGBENCH="$("$PG_CONFIG" --bindir)/pgbench"
ROUNDS="${1:-3}"
SECONDS_PER_ROUND="${2:-15}"
CLIENTS="${CITUS_BENCH_CLIENTS:-8}"
COUNTERS="${CITUS_BENCH_COUNTERS:-10000}"
NAME=cituscbench
PLAIN=cituscbench_plain
WORK="$(mktemp -d)"
chmod 755 "$WORK"
START=$SECONDS

cleanup() {
    local rc=$?
    rm -rf "$WORK"
    "$CITUS" destroy "$NAME" >/dev/null 2>&1 || true
    "$CLUSTER" stop "$PLAIN" >/dev/null 2>&1 || true
    rm -rf "$CLUSTERS/$PLAIN"
    [ "$rc" = 0 ] || echo "!! citus_counters.sh failed (exit $rc); see the error above" >&2
}
trap cleanup EXIT
elapsed() { printf '%dm%02ds' $(((SECONDS - START) / 60)) $(((SECONDS - START) % 60)); }
sql() { psql -X -q -v ON_ERROR_STOP=1 -tA "$@"; }

rc=0
"$CITUS" ensure || rc=$?
if [ "$rc" = 3 ]; then
    echo "skipped: Citus cannot run on this PostgreSQL (see the line above)"
    exit 0
fi
[ "$rc" = 0 ] || exit "$rc"

"$CITUS" destroy "$NAME" >/dev/null
"$CITUS" start "$NAME"
(eval "$("$CITUS" env "$NAME")" && sql -c "CREATE EXTENSION pg_distcount" &&
    sql -c "SELECT distcount.citus_setup(32)")
"$CLUSTER" stop "$PLAIN" >/dev/null 2>&1 || true
rm -rf "$CLUSTERS/$PLAIN"
"$CLUSTER" start "$PLAIN" "max_connections = 200"
(eval "$("$CLUSTER" env "$PLAIN")" && sql -c "CREATE EXTENSION pg_distcount")
echo "==> [$(elapsed)] clusters up: $NAME (coordinator, 2 workers) and $PLAIN (one node)"

printf '\\set k random(1, %d)\nSELECT distcount.counter_add('"'"'c-:k'"'"');\n' "$COUNTERS" >"$WORK/add.sql"
# For the routed variant: on each worker, a plain local table of the counter names whose shard
# is there, numbered from 1, and a script drawing from it.
for node in w1 w2; do
    (eval "$("$CITUS" env "$NAME" "$node")" && sql <<SQL
CREATE TABLE bench_local_names (i integer PRIMARY KEY, name text NOT NULL);
INSERT INTO bench_local_names
SELECT row_number() OVER (ORDER BY k), 'c-' || k
  FROM generate_series(1, $COUNTERS) AS k
 WHERE EXISTS (SELECT FROM pg_dist_placement p
                WHERE p.shardid = get_shard_id_for_distribution_column('distcount.counter', 'c-' || k)
                  AND p.groupid = (SELECT g.groupid FROM pg_dist_local_group g));
SQL
    )
    n="$(eval "$("$CITUS" env "$NAME" "$node")" && sql -c "SELECT count(*) FROM bench_local_names")"
    printf '\\set k random(1, %d)\nSELECT distcount.counter_add(name) FROM bench_local_names WHERE i = :k;\n' "$n" >"$WORK/add-$node.sql"
    echo "    $node holds $n of the $COUNTERS counters"
done

# cpu_ticks CLUSTER...: CPU time (clock ticks) of the clusters' PostgreSQL processes so far: the
# postmaster's own and its reaped children's (exited backends), and its live children's.
cpu_ticks() {
    local total=0 dir pm pid f
    for dir in "$@"; do
        pm="$(head -1 "$CLUSTERS/$dir/data/postmaster.pid")"
        read -r -a f <<<"$(sed -E 's/^.*\) //' "/proc/$pm/stat")"
        total=$((total + f[11] + f[12] + f[13] + f[14]))
        for pid in $(ps -o pid= --ppid "$pm"); do
            read -r -a f <<<"$(sed -E 's/^.*\) //' "/proc/$pid/stat" 2>/dev/null)" || continue
            [ "${#f[@]}" -gt 12 ] && total=$((total + f[11] + f[12]))
        done
    done
    echo "$total"
}
# servers_of VARIANT: the clusters whose CPU the variant uses.
servers_of() {
    case "$1" in
    plain) echo "$PLAIN" ;;
    *) echo "${NAME}_coord ${NAME}_w1 ${NAME}_w2" ;;
    esac
}

# run VARIANT: one round, prints the TPS (summed over the pgbench runs of the variant).
run() {
    local half=$((CLIENTS / 2)) out=() servers cpu0
    read -r -a servers <<<"$(servers_of "$1")"
    cpu0="$(cpu_ticks "${servers[@]}")"
    case "$1" in
    plain) out+=("$(eval "$("$CLUSTER" env "$PLAIN")" && "$PGBENCH" -n -c "$CLIENTS" -j 2 -T "$SECONDS_PER_ROUND" -f "$WORK/add.sql" 2>&1)") ;;
    coordinator) out+=("$(eval "$("$CITUS" env "$NAME")" && "$PGBENCH" -n -c "$CLIENTS" -j 2 -T "$SECONDS_PER_ROUND" -f "$WORK/add.sql" 2>&1)") ;;
    workers | routed)
        local script1="$WORK/add.sql" script2="$WORK/add.sql"
        [ "$1" = workers ] || { script1="$WORK/add-w1.sql"; script2="$WORK/add-w2.sql"; }
        (eval "$("$CITUS" env "$NAME" w1)" && "$PGBENCH" -n -c "$half" -j 1 -T "$SECONDS_PER_ROUND" -f "$script1" >"$WORK/w1.log" 2>&1) &
        (eval "$("$CITUS" env "$NAME" w2)" && "$PGBENCH" -n -c "$((CLIENTS - half))" -j 1 -T "$SECONDS_PER_ROUND" -f "$script2" >"$WORK/w2.log" 2>&1) &
        wait
        out+=("$(cat "$WORK/w1.log" "$WORK/w2.log")")
        ;;
    esac
    if grep -qE 'aborted|^number of failed transactions: [1-9]' <<<"${out[*]}"; then
        echo "!! $1: pgbench reported errors:" >&2
        echo "${out[*]}" >&2
        exit 1
    fi
    printf '%s\n' "${out[@]}" | sed -nE 's/^number of transactions actually processed: ([0-9]+).*/\1/p' >>"$WORK/$1.count"
    sleep 1 # the backends exit and are reaped, their CPU time moving to the postmaster's
    echo $(($(cpu_ticks "${servers[@]}") - cpu0)) >>"$WORK/$1.cpu"
    printf '%s\n' "${out[@]}" | sed -nE 's/^tps = ([0-9.]+) .*/\1/p' | paste -sd+ | bc
}
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

VARIANTS=(plain workers routed coordinator)
echo "==> [$(elapsed)] warm-up round (${SECONDS_PER_ROUND} s each)"
for v in "${VARIANTS[@]}"; do run "$v" >/dev/null; done
for round in $(seq 1 "$ROUNDS"); do
    for v in "${VARIANTS[@]}"; do
        tps="$(run "$v")"
        echo "$tps" >>"$WORK/$v.tps"
        echo "    [$(elapsed)] round $round, $v: $tps TPS"
    done
done

# Every transaction pgbench counted is one increment: the counters' sum must equal them.
expected_citus="$(cat "$WORK/workers.count" "$WORK/routed.count" "$WORK/coordinator.count" | paste -sd+ | bc)"
got_citus="$(eval "$("$CITUS" env "$NAME")" && sql -c "SELECT sum(value) FROM distcount.counters")"
expected_plain="$(paste -sd+ "$WORK/plain.count" | bc)"
got_plain="$(eval "$("$CLUSTER" env "$PLAIN")" && sql -c "SELECT sum(value) FROM distcount.counters")"
echo "==> counters' sum: Citus $got_citus of $expected_citus increments, one node $got_plain of $expected_plain"
[ "$got_citus" = "$expected_citus" ] && [ "$got_plain" = "$expected_plain" ] || { echo "!! counts differ" >&2; exit 1; }

mkdir -p "$RESULTS"
base="$(median <"$WORK/plain.tps")"
TICK_MS="$(bc -l <<<"1000 / $(getconf CLK_TCK)")"
# cpu_per_1000 VARIANT: the servers' CPU milliseconds per 1,000 increments, over every round
# (the warm-up included).
cpu_per_1000() {
    bc -l <<<"($(paste -sd+ "$WORK/$1.cpu")) * $TICK_MS * 1000 / ($(paste -sd+ "$WORK/$1.count"))"
}
plain_cpu="$(cpu_per_1000 plain)"
{
    printf 'variant\tclients\tcounters\tmedian_tps\tratio_to_one_node\tserver_cpu_ms_per_1000\tprojected_2_worker_machines\n'
    for v in "${VARIANTS[@]}"; do
        m="$(median <"$WORK/$v.tps")"
        c="$(cpu_per_1000 "$v")"
        printf '%s\t%s\t%s\t%.0f\t%.2f\t%.0f\t%s\n' "$v" "$CLIENTS" "$COUNTERS" "$m" "$(bc -l <<<"$m / $base")" "$c" \
            "$([ "$v" = plain ] && echo - || printf '%.2f' "$(bc -l <<<"2 * $plain_cpu / $c")")"
    done
} | tee "$RESULTS/citus_counters.tsv"
echo "==> [$(elapsed)] done; results in tests/bench/results/citus_counters.tsv"
exit 0
}
