#!/usr/bin/env bash
# Ingest cost of hll_agg against postgresql-hll's hll_add_agg, counted in CPU instructions:
# valgrind (callgrind) runs a single-user backend over a 1M-row scan, once per query. Unlike
# timings on a shared machine, the counts repeat to the instruction, so small differences can be
# read. Reported: instructions per row above count(*) of the same scan, and their ratio (the
# issue's goal for ingest is at most 0.5). numeric (values with two decimals) goes through the
# general path, whose canonical encoding calls numeric_out (issue 17); postgresql-hll hashes it
# with hll_hash_any, by its bytes.
# Usage: hll_instructions.sh          (about 2 minutes; needs valgrind, which `make deps` installs)
set -euo pipefail
{ # One block, read whole before it runs.
source "$(dirname "$0")/lib.sh"
NAME=hllcount
DB=hllcount
ROWS=1000000
callgrind_init "$NAME"

echo "==> cluster $NAME: $ROWS-row tables of bigint, of text ('user-' || id) and of numeric (id / 100)"
callgrind_db
psql -X -q -v ON_ERROR_STOP=1 -d "$DB" <<SQL
CREATE EXTENSION hll;
CREATE EXTENSION pg_distcount;
CREATE TABLE nums AS SELECT g::bigint AS id FROM generate_series(1, $ROWS) g;
CREATE TABLE texts AS SELECT 'user-' || g AS v FROM generate_series(1, $ROWS) g;
CREATE TABLE numerics AS SELECT (g / 100.0)::numeric(12,2) AS n FROM generate_series(1, $ROWS) g;
VACUUM ANALYZE nums, texts, numerics;
SQL
callgrind_stop

queries=(
    "count_bigint|SELECT count(*) FROM nums"
    "distcount_bigint|SELECT distcount.hll_count(distcount.hll_agg(id)) FROM nums"
    "postgresql-hll_bigint|SELECT public.hll_cardinality(public.hll_add_agg(public.hll_hash_bigint(id), 14)) FROM nums"
    "count_text|SELECT count(*) FROM texts"
    "distcount_text|SELECT distcount.hll_count(distcount.hll_agg(v)) FROM texts"
    "postgresql-hll_text|SELECT public.hll_cardinality(public.hll_add_agg(public.hll_hash_text(v), 14)) FROM texts"
    "count_numeric|SELECT count(*) FROM numerics"
    "distcount_numeric|SELECT distcount.hll_count(distcount.hll_agg(n)) FROM numerics"
    "postgresql-hll_numeric|SELECT public.hll_cardinality(public.hll_add_agg(public.hll_hash_any(n), 14)) FROM numerics"
)
callgrind_queries "${queries[@]}"

echo "Instructions per row above count(*) of the same scan ($ROWS rows, serial plan):"
for col in bigint text numeric; do
    awk -v c="${TOTAL[count_$col]}" -v d="${TOTAL[distcount_$col]}" -v h="${TOTAL[postgresql-hll_$col]}" \
        -v r="$ROWS" -v col="$col" 'BEGIN {
            printf "  %-6s  count(*) %6.1f a row;  pg_distcount %6.1f,  postgresql-hll %6.1f above it;  ratio %.3f\n",
                col, c / r, (d - c) / r, (h - c) / r, (d - c) / (h - c) }'
done
}
