#!/usr/bin/env bash
# Sharded counters against the hot row they replace, on one cluster with the same pgbench load
# (32 clients, one logical counter): interleaved rounds, medians, ratios.
#   hot       UPDATE hot SET n = n + 1 WHERE id = 1            (one row: a row-lock convoy)
#   slots16   distcount.counter_add('s16')                     (mode slots, 16 shards, the default)
#   slots32   distcount.counter_add('s32')                     (mode slots, 32 shards = writers)
#   deltas    distcount.counter_add('d')                       (mode deltas)
#   ceiling   UPDATE own SET n = n + 1 WHERE id = :client_id   (a row of its own per client: no
#             contention at all, the most one-row-update transactions this machine commits)
# with synchronous_commit on (durable; the WAL flush and group commit matter) and off (CPU).
# The roll-up worker runs (pg_distcount preloaded, every second), as it would in production.
# Then the per-call cost of reading (counter_value, counter_value_cached) against a plain
# SELECT of the hot row, and the bytes per counter with a million counters.
# Usage: sharded_counters.sh [ROUNDS] [SECONDS]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
CLUSTER="$ROOT/tests/tools/cluster.sh"
NAME=shardbench
ROUNDS="${1:-3}"
SECONDS_EACH="${2:-20}"
CLIENTS=32
WORK="$(mktemp -d)"
cleanup() {
    psql -X -q -d postgres -c "ALTER SYSTEM RESET pg_distcount.rollup_interval" >/dev/null 2>&1 || true
    "$CLUSTER" stop "$NAME" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

"$CLUSTER" start "$NAME" "shared_preload_libraries = 'pg_distcount'" "pg_distcount.rollup_database = 'shard_bench'" \
    "pg_distcount.rollup_interval = 1s" "max_connections = 100"
eval "$("$CLUSTER" env "$NAME")"
export PGDATABASE=shard_bench
# The worker rolls up every second during the load (a run stopped half-way may have paused it).
psql -X -q -d postgres -c "ALTER SYSTEM RESET pg_distcount.rollup_interval" -c "SELECT pg_reload_conf()" >/dev/null
psql -X -q -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'shard_bench'" | grep -q 1 || createdb shard_bench
q() { psql -X -q -v ON_ERROR_STOP=1 -tA "$@"; }
q >/dev/null <<'SQL'
DROP EXTENSION IF EXISTS pg_distcount CASCADE;
CREATE EXTENSION pg_distcount;
DROP TABLE IF EXISTS hot;
CREATE TABLE hot (id int PRIMARY KEY, n bigint NOT NULL DEFAULT 0);
INSERT INTO hot (id) VALUES (1);
DROP TABLE IF EXISTS own;
CREATE TABLE own (id int PRIMARY KEY, n bigint NOT NULL DEFAULT 0) WITH (fillfactor = 50);
INSERT INTO own (id) SELECT generate_series(0, 63);
SELECT distcount.counter_create('s16', 16);
SELECT distcount.counter_create('s32', 32);
SELECT distcount.counter_create('d', 16, 'deltas');
SQL

variants=(hot slots16 slots32 deltas ceiling)
declare -A statement=(
    [hot]="UPDATE hot SET n = n + 1 WHERE id = 1;"
    [slots16]="SELECT distcount.counter_add('s16');"
    [slots32]="SELECT distcount.counter_add('s32');"
    [deltas]="SELECT distcount.counter_add('d');"
    [ceiling]="UPDATE own SET n = n + 1 WHERE id = :client_id;"
)
for v in "${variants[@]}"; do echo "${statement[$v]}" >"$WORK/$v.sql"; done

source "$(dirname "$0")/lib.sh"

for commit in on off; do
    : >"$WORK/results"
    echo "==> synchronous_commit = $commit: $ROUNDS interleaved rounds x ${#variants[@]} variants x ${SECONDS_EACH} s, $CLIENTS clients, one counter"
    for round in $(seq 1 "$ROUNDS"); do
        for v in "${variants[@]}"; do
            q -c "CHECKPOINT" >/dev/null
            tps="$(PGOPTIONS="-c synchronous_commit=$commit" pgbench -n -c "$CLIENTS" -j 4 -T "$SECONDS_EACH" -f "$WORK/$v.sql" |
                   sed -nE 's/^tps = ([0-9.]+).*/\1/p')"
            echo "    round $round  $v: $tps tps"
            echo "$v $tps" >>"$WORK/results"
        done
    done
    hot="$(median_of "$WORK/results" hot)"
    printf '\n%-10s %12s %10s\n' variant "median tps" "this/hot"
    for v in "${variants[@]}"; do
        m="$(median_of "$WORK/results" "$v")"
        awk -v v="$v" -v m="$m" -v h="$hot" 'BEGIN { printf "%-10s %12.0f %9.2fx\n", v, m, m / h }'
    done
    echo
done

echo "==> sanity: every committed increment is in its counter"
q -c "SELECT 'hot ' || n FROM hot" -c "SELECT name || ' ' || value || ' (' || slot_rows || ' slot rows, ' || delta_rows || ' delta rows)' FROM distcount.counters ORDER BY name"

# Per-call read cost: N calls in a PL/pgSQL loop, median of 5, the loop's own cost subtracted.
echo
echo "==> read cost per call (median of 5 runs of 20,000 calls, one session, after a roll-up)"
q -c "SELECT distcount.counter_rollup()" >/dev/null
cat >"$WORK/per_call.sql" <<'SQL'
CREATE FUNCTION pg_temp.per_call_us(what text, n int DEFAULT 20000) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz; t1 timestamptz; t2 timestamptz; v bigint;
BEGIN
    t0 := clock_timestamp();
    FOR i IN 1..n LOOP v := i; END LOOP;
    t1 := clock_timestamp();
    FOR i IN 1..n LOOP EXECUTE what INTO v; END LOOP;
    t2 := clock_timestamp();
    RETURN (extract(epoch FROM (t2 - t1)) - extract(epoch FROM (t1 - t0))) * 1e6 / n;
END $$;
SQL
declare -A reads=(
    [hot_row_select]="SELECT n FROM hot WHERE id = 1"
    [value_slots32]="SELECT distcount.counter_value('s32')"
    [value_deltas]="SELECT distcount.counter_value('d')"
    [cached_hit]="SELECT distcount.counter_value_cached('s32', '1 hour')"
    [cached_miss]="SELECT distcount.counter_value_cached('s32', '0')"
)
order=(hot_row_select value_slots32 value_deltas cached_hit cached_miss)
: >"$WORK/reads"
for run in 1 2 3 4 5; do
    for r in "${order[@]}"; do
        # EXECUTE of a constant string: the plan is made once per call, like a client's
        # simple query; the same for every variant.
        us="$(q -f "$WORK/per_call.sql" -c "SELECT round(pg_temp.per_call_us(\$q\$${reads[$r]}\$q\$)::numeric, 2)")"
        echo "$r $us" >>"$WORK/reads"
    done
done
base="$(median_of "$WORK/reads" hot_row_select)"
printf '%-16s %12s %12s\n' read "us per call" "vs hot row"
for r in "${order[@]}"; do
    m="$(median_of "$WORK/reads" "$r")"
    awk -v r="$r" -v m="$m" -v b="$base" 'BEGIN { printf "%-16s %12.2f %11.2fx\n", r, m, m / b }'
done
echo "    (slots32: $(q -c "SELECT slot_rows FROM distcount.counters WHERE name = 's32'") slot rows; deltas: $(q -c "SELECT delta_rows FROM distcount.counters WHERE name = 'd'") delta rows left after the roll-up)"

# A million counters, one per post, each written once by counter_add (auto-created).
echo
echo "==> a million counters (one counter_add each, auto-created, default 16 shards)"
q -c "ALTER SYSTEM SET pg_distcount.rollup_interval = 0" -c "SELECT pg_reload_conf()" >/dev/null
q >/dev/null <<'SQL'
SELECT distcount.counter_drop(name) FROM distcount.counter;
TRUNCATE distcount.counter, distcount.counter_slot, distcount.counter_delta;
SQL
start=$(date +%s.%N)
q -c "SELECT count(distcount.counter_add('post:' || g)) FROM generate_series(1, 1000000) g" >/dev/null
end=$(date +%s.%N)
q -c "VACUUM ANALYZE distcount.counter" -c "VACUUM ANALYZE distcount.counter_slot" >/dev/null
q <<SQL
SELECT format('%s counters in %s s (%s us per first add)', count(*), round($end - $start, 1),
              round(($end - $start) * 1e6 / count(*), 1)) FROM distcount.counter;
SELECT format('%-40s %10s %8s bytes/counter', relname, pg_size_pretty(pg_total_relation_size(c.oid)),
              round(pg_total_relation_size(c.oid) / 1e6, 1))
  FROM pg_class c WHERE c.oid IN ('distcount.counter'::regclass, 'distcount.counter_slot'::regclass)
  ORDER BY relname;
SELECT format('%-40s %10s %8s bytes/counter', 'total (tables, indexes, TOAST)',
              pg_size_pretty(pg_total_relation_size('distcount.counter') + pg_total_relation_size('distcount.counter_slot')),
              round((pg_total_relation_size('distcount.counter') + pg_total_relation_size('distcount.counter_slot')) / 1e6, 1));
SQL
start=$(date +%s.%N)
q -c "SELECT distcount.counter_rollup()" >/dev/null
end=$(date +%s.%N)
echo "    a roll-up pass over the million counters (each with one non-zero slot): $(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }') s"
start=$(date +%s.%N)
q -c "SELECT distcount.counter_rollup()" >/dev/null
end=$(date +%s.%N)
echo "    a roll-up pass with nothing to fold: $(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }') s"
q -c "ALTER SYSTEM RESET pg_distcount.rollup_interval" -c "SELECT pg_reload_conf()" >/dev/null
# WITH (FORCE): the roll-up worker is connected to it.
q -d postgres -c "DROP DATABASE shard_bench WITH (FORCE)" >/dev/null
