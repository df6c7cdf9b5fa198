#!/usr/bin/env bash
# Cost of one Count-Min point query (cms_estimate) against the size of the sketch: sketches of
# epsilon 0.01, 0.001 and 0.0001 over the same events (dense forms of format version 2; their
# sizes, forms and overflow lists are printed first), and a default sketch of the first 1,000
# events (sparse form: a point query decodes one bucket of codes a row), queried
# stored in a table with the type's default storage ("stored": the same sketch for every call,
# which a call site keeps after two calls; "rotating": a different stored copy on each call,
# read chunk by chunk, see src/common/toast.rs), in a column forced to compressed storage ("compressed": a different
# copy each call, each fetched and decompressed whole), and in memory. The goal: a point query
# on the stored large sketch within 2x of the small one.
# One cluster, interleaved rounds, medians.
# Usage: cms_point_query.sh [ROUNDS] [CALLS] [EVENTS]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
CLUSTER="$ROOT/tests/tools/cluster.sh"
ROUNDS="${1:-3}"
CALLS="${2:-200000}"
EVENTS="${3:-1000000}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"; "$CLUSTER" stop cmspoint >/dev/null 2>&1 || true' EXIT
source "$(dirname "$0")/lib.sh"

"$CLUSTER" start cmspoint
eval "$("$CLUSTER" env cmspoint)"
dropdb --if-exists cms_point
createdb cms_point
echo "==> building sketches of $EVENTS Zipf-like events at three sizes"
psql -X -q -d cms_point -v ON_ERROR_STOP=1 <<SQL
CREATE EXTENSION pg_distcount;
SELECT setseed(0.25);
CREATE TEMP TABLE events AS
    SELECT floor(200000 * power(random(), 4))::bigint AS k FROM generate_series(1, $EVENTS);
-- stored: the type's default storage; compressed: a column forced to compressed storage.
CREATE TABLE stored (size text PRIMARY KEY, c distcount.cms);
CREATE TABLE compressed (size text PRIMARY KEY, c distcount.cms);
ALTER TABLE compressed ALTER COLUMN c SET STORAGE EXTENDED;
INSERT INTO stored
    SELECT size, distcount.cms_agg(k, epsilon, 0.01)
    FROM events, (VALUES ('small', 0.01), ('medium', 0.001), ('large', 0.0001)) s(size, epsilon)
    GROUP BY size;
INSERT INTO stored SELECT 'sparse', distcount.cms_agg(k) FROM (SELECT k FROM events LIMIT 1000) e;
INSERT INTO compressed SELECT * FROM stored;
-- 20 stored copies of each sketch (each its own TOAST value), read in turn.
CREATE TABLE rotating AS SELECT size, copy, c FROM stored, generate_series(0, 19) copy;
CREATE TABLE compressed_rotating (LIKE rotating);
ALTER TABLE compressed_rotating ALTER COLUMN c SET STORAGE EXTENDED;
INSERT INTO compressed_rotating SELECT * FROM rotating;
VACUUM ANALYZE stored, compressed, rotating, compressed_rotating;
SQL
psql -X -d cms_point -c "
SELECT s.size, (distcount.cms_info(s.c) ->> 'width')::int AS width,
       distcount.cms_info(s.c) ->> 'counter_form' AS form, distcount.cms_info(s.c) ->> 'counter_bytes' AS cell_bytes,
       distcount.cms_info(s.c) ->> 'overflow' AS overflow, octet_length(s.c::bytea) AS bytes,
       pg_column_size(s.c) AS stored_bytes, pg_column_size(c.c) AS compressed_bytes
FROM stored s JOIN compressed c USING (size) ORDER BY bytes"

# Each query makes CALLS point queries (a twentieth of them on the compressed column, whose
# large sketch takes milliseconds a call); the keys run over the key range.
calls_for() { if [ "$1" = compressed ]; then echo $((CALLS / 20)); else echo "$CALLS"; fi; }
query() { # WHERE SIZE
    case "$1" in
        rotating) echo "SELECT sum(distcount.cms_estimate(t.c, g % 200000)) FROM generate_series(1, $CALLS) g
                        JOIN rotating t ON t.copy = g % 20 AND t.size = '$2'" ;;
        compressed) echo "SELECT sum(distcount.cms_estimate(t.c, g % 200000)) FROM generate_series(1, $(calls_for "$1")) g
                          JOIN compressed_rotating t ON t.copy = g % 20 AND t.size = '$2'" ;;
        memory) echo "WITH m AS MATERIALIZED (SELECT distcount.cms_union_agg(c) AS c FROM stored WHERE size = '$2')
                      SELECT sum(distcount.cms_estimate(m.c, g % 200000)) FROM m, generate_series(1, $(calls_for "$1")) g" ;;
        *) echo "SELECT sum(distcount.cms_estimate(t.c, g % 200000)) FROM $1 t, generate_series(1, $(calls_for "$1")) g WHERE t.size = '$2'" ;;
    esac
}
run() { # WHERE SIZE -> milliseconds
    psql -X -q -d cms_point -c "SET max_parallel_workers_per_gather = 0" \
         -c "EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) $(query "$1" "$2")" -tA |
        python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Execution Time"])'
}
places=(stored rotating compressed memory)
sizes=(sparse small medium large)
echo "==> $ROUNDS interleaved rounds of $CALLS cms_estimate calls per sketch ($(calls_for compressed) on the compressed column)"
for round in $(seq 1 "$ROUNDS"); do
    for place in "${places[@]}"; do
        for size in "${sizes[@]}"; do
            ms="$(run "$place" "$size")"
            echo "    round $round  $place $size: $ms ms"
            echo "${place}_$size $ms" >>"$WORK/results"
        done
    done
done

echo
printf '%-12s %14s %14s %14s %14s %16s\n' where "sparse us/call" "small us/call" "medium us/call" "large us/call" "large / small"
for place in "${places[@]}"; do
    p="$(median_of "$WORK/results" "${place}_sparse")"
    s="$(median_of "$WORK/results" "${place}_small")"
    m="$(median_of "$WORK/results" "${place}_medium")"
    l="$(median_of "$WORK/results" "${place}_large")"
    awk -v w="$place" -v p="$p" -v s="$s" -v m="$m" -v l="$l" -v n="$(calls_for "$place")" \
        'BEGIN { printf "%-12s %14.2f %14.2f %14.2f %14.2f %15.2fx\n", w, p * 1000 / n, s * 1000 / n, m * 1000 / n, l * 1000 / n, l / s }'
done
dropdb cms_point
