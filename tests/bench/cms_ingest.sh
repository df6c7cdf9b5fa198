#!/usr/bin/env bash
# Count-Min ingest cost per row against an exact GROUP BY count and against hll_agg on the same
# rows, and the size of the default sketch. One cluster, interleaved rounds, medians, ratios.
# Usage: cms_ingest.sh [ROUNDS] [ROWS]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
CLUSTER="$ROOT/tests/tools/cluster.sh"
ROUNDS="${1:-5}"
ROWS="${2:-5000000}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"; "$CLUSTER" stop cmsbench >/dev/null 2>&1 || true' EXIT

"$CLUSTER" start cmsbench
eval "$("$CLUSTER" env cmsbench)"
dropdb --if-exists cms_bench
createdb cms_bench
echo "==> loading $ROWS Zipf-like events over 100,000 keys"
psql -X -q -d cms_bench <<SQL
CREATE EXTENSION pg_distcount;
SELECT setseed(0.5);
CREATE TABLE events AS
    SELECT floor(100000 * power(random(), 3))::bigint AS k FROM generate_series(1, $ROWS);
VACUUM ANALYZE events;
SQL

declare -A query=(
    [count]="SELECT count(*) FROM events"
    [exact_group_by]="SELECT count(*) FROM (SELECT k, count(*) FROM events GROUP BY k) s"
    [cms_agg]="SELECT distcount.cms_total(distcount.cms_agg(k)) FROM events"
    [hll_agg]="SELECT distcount.hll_count(distcount.hll_agg(k)) FROM events"
)
variants=(count exact_group_by cms_agg hll_agg)
run() { # VARIANT -> milliseconds, serial plans for a clean per-row cost
    psql -X -q -d cms_bench -c "SET max_parallel_workers_per_gather = 0" \
         -c "EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) ${query[$1]}" -tA |
        python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Execution Time"])'
}
echo "==> $ROUNDS interleaved rounds, serial plans"
for round in $(seq 1 "$ROUNDS"); do
    for v in "${variants[@]}"; do
        ms="$(run "$v")"
        echo "    round $round  $v: $ms ms"
        echo "$v $ms" >>"$WORK/results"
    done
done
source "$(dirname "$0")/lib.sh"
base="$(median_of "$WORK/results" count)"
echo
printf '%-16s %12s %22s\n' query "median ms" "ns/row above count(*)"
for v in "${variants[@]}"; do
    m="$(median_of "$WORK/results" "$v")"
    awk -v v="$v" -v m="$m" -v b="$base" -v n="$ROWS" 'BEGIN { printf "%-16s %12.1f %22.1f\n", v, m, (m - b) * 1e6 / n }'
done

echo
echo "==> size of the default sketch (epsilon 0.001, delta 0.01, 64 heavy hitters)"
psql -X -d cms_bench -c "
SELECT 'empty' AS events, distcount.cms_info(distcount.cms_empty()) ->> 'bytes' AS bytes
UNION ALL SELECT '1,000', distcount.cms_info(distcount.cms_agg(k)) ->> 'bytes' FROM (SELECT k FROM events LIMIT 1000) s
UNION ALL SELECT '1,000,000', distcount.cms_info(distcount.cms_agg(k)) ->> 'bytes' FROM (SELECT k FROM events LIMIT 1000000) s"
dropdb cms_bench
