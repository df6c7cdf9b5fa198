#!/usr/bin/env bash
# The cost of reading stored dense sketches, counted in CPU instructions (valgrind's callgrind
# on a single-user backend, as hll_instructions.sh): 1,000 stored p = 14 sketches of 20,000
# values each, half built by insertions (with the martingale count), half unions. Reported per
# sketch: reading the value alone (detoasting it: get_byte of the bytes, hll_type for
# postgresql-hll), hll_count of each, and hll_union_agg over all of them; the same for
# postgresql-hll's FULL sketches.
# Run it on two builds to compare their formats (the tables are written by the build
# installed); HLL_STORED_REUSE=1 keeps the tables of the previous run, so that a newer build
# is measured on the values an older one wrote.
# Usage: hll_stored_instructions.sh          (about a minute; needs valgrind)
set -euo pipefail
{ # One block, read whole before it runs.
source "$(dirname "$0")/lib.sh"
NAME=hllstored
DB=hllstored
SKETCHES=1000
callgrind_init "$NAME"

echo "==> cluster $NAME: $SKETCHES stored p = 14 sketches of 20,000 values, for each extension"
if [ -n "${HLL_STORED_REUSE:-}" ]; then
    "$CLUSTER" start "$CALLGRIND_CLUSTER" >/dev/null
    eval "$("$CLUSTER" env "$CALLGRIND_CLUSTER")"
    echo "    (HLL_STORED_REUSE: the tables of the previous run)"
else
callgrind_db
psql -X -q -v ON_ERROR_STOP=1 -d "$DB" <<SQL
CREATE EXTENSION hll;
CREATE EXTENSION pg_distcount;
SET max_parallel_workers_per_gather = 0;
-- Sketch k holds k·20,000 .. k·20,000 + 19,999; odd k as the union of two halves (no count).
CREATE TABLE stored_d AS
SELECT k, CASE WHEN k % 2 = 0 THEN distcount.hll_agg(v)
               ELSE distcount.hll_union(distcount.hll_agg(v) FILTER (WHERE v % 2 = 0), distcount.hll_agg(v) FILTER (WHERE v % 2 = 1)) END AS h
FROM generate_series(1, $SKETCHES) k, LATERAL generate_series(k * 20000::bigint, k * 20000::bigint + 19999) v
GROUP BY k;
CREATE TABLE stored_p AS
SELECT k, public.hll_add_agg(public.hll_hash_bigint(v), 14) AS h
FROM generate_series(1, $SKETCHES) k, LATERAL generate_series(k * 20000::bigint, k * 20000::bigint + 19999) v
GROUP BY k;
VACUUM ANALYZE stored_d, stored_p;
SQL
fi
read -r forms bytes <<<"$(psql -X -At -F ' ' -d "$DB" -c "
    SELECT string_agg(DISTINCT distcount.hll_info(h)->>'format_version', ','), round(avg(octet_length(h::bytea)))
    FROM stored_d")"
read -r bytes_p <<<"$(psql -X -At -d "$DB" -c "SELECT round(avg(pg_column_size(h))) FROM stored_p")"
echo "    pg_distcount: format version(s) $forms, $bytes bytes on average; postgresql-hll: $bytes_p bytes"
callgrind_stop

queries=(
    "read_d|SELECT sum(get_byte(h::bytea, 100)) FROM stored_d"
    "count_d|SELECT sum(distcount.hll_count(h)) FROM stored_d"
    "union_d|SELECT distcount.hll_count(distcount.hll_union_agg(h)) FROM stored_d"
    "read_p|SELECT sum(public.hll_type(h)) FROM stored_p"
    "count_p|SELECT sum(public.hll_cardinality(h)) FROM stored_p"
    "union_p|SELECT public.hll_cardinality(public.hll_union_agg(h)) FROM stored_p"
)
callgrind_queries "${queries[@]}"

echo "Instructions per stored sketch ($SKETCHES sketches; above reading: beyond detoasting the value):"
for ext in d p; do
    label="pg_distcount"; [ "$ext" = p ] && label="postgresql-hll"
    if [ -n "${KEEP_CALLGRIND:-}" ]; then cp "$WORK"/*.out "$KEEP_CALLGRIND"/; fi
    awk -v r="${TOTAL[read_$ext]}" -v c="${TOTAL[count_$ext]}" -v u="${TOTAL[union_$ext]}" \
        -v n="$SKETCHES" -v label="$label" 'BEGIN {
            printf "  %-15s reading %8.0f;  hll_count %8.0f (%8.0f above reading);  union_agg %8.0f (%8.0f above reading)\n",
                label, r / n, c / n, (c - r) / n, u / n, (u - r) / n }'
done
}
