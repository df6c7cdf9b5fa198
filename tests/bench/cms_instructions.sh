#!/usr/bin/env bash
# Ingest cost of cms_agg, counted in CPU instructions: valgrind (callgrind) runs a single-user
# backend over a scan of ROWS skewed text keys (50,000 distinct, a few very frequent), once per
# query: count(*), cms_agg with its default heavy-hitter list (64, the path that looks keys up
# in the list's hash index) and cms_agg without a list (heavy = 0: the counters only). The counts
# repeat to the instruction (the index's hash keys are random per list, which moves them by a
# few hundredths of a percent). Reported: instructions per row above count(*).
# Usage: cms_instructions.sh [ROWS]   (about 2 minutes for 200,000 rows; needs valgrind)
set -euo pipefail
{ # One block, read whole before it runs.
source "$(dirname "$0")/lib.sh"
NAME=cmscount
DB=cmscount
ROWS="${1:-200000}"
callgrind_init "$NAME"

echo "==> cluster $NAME: a $ROWS-row table of skewed text keys"
callgrind_db
psql -X -q -v ON_ERROR_STOP=1 -d "$DB" <<SQL
CREATE EXTENSION pg_distcount;
-- g*g mod 50,000 visits some residues far more often than others: a skewed stream.
CREATE TABLE hits AS SELECT 'page-' || ((g::bigint * g) % 50000) AS k FROM generate_series(1, $ROWS) g;
VACUUM ANALYZE hits;
SQL
callgrind_stop

queries=(
    "count|SELECT count(*) FROM hits"
    "heavy64|SELECT distcount.cms_total(distcount.cms_agg(k)) FROM hits"
    "counters_only|SELECT distcount.cms_total(distcount.cms_agg(k, 0.001, 0.01, 0)) FROM hits"
)
callgrind_queries "${queries[@]}"

echo "Instructions per row above count(*) of the same scan ($ROWS rows, serial plan):"
awk -v c="${TOTAL[count]}" -v h="${TOTAL[heavy64]}" -v z="${TOTAL[counters_only]}" -v r="$ROWS" 'BEGIN {
    printf "  count(*) %6.1f a row;  cms_agg, heavy list of 64 %7.1f;  cms_agg, counters only %7.1f above it\n",
        c / r, (h - c) / r, (z - c) / r }'
}
