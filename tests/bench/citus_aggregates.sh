#!/usr/bin/env bash
# pg_distcount's aggregates on a Citus cluster (a coordinator and two workers, made by
# tests/tools/citus.sh), in one run on one machine:
#   approx_count_distinct(bigint)  over ROWS rows            distributed (32 shards) vs one node
#   hll_union_agg                  over SKETCHES stored hlls  distributed vs one node
#   cms_union_agg                  over SKETCHES stored cms   distributed vs one node
# and postgresql-hll on the same cluster and tables, where its `hll` extension is installed in
# that PostgreSQL (Debian: postgresql-15-hll; otherwise skipped with a message):
#   hll_cardinality(hll_add_agg(hll_hash_bigint(x)))  and  hll_union_agg, distributed and one node.
# "One node" is a plain table with the same rows on the coordinator. Each figure is the median of
# ROUNDS interleaved rounds (after one warm-up round); ratios are what to read (absolute times on
# a shared 2-core machine are noise, and all three nodes share its cores). Nothing asserts.
#
# Not part of `make bench` (tests/bench/run.sh); run it by hand, from a checkout:
#   PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config bash tests/bench/citus_aggregates.sh [ROUNDS]
# with the pg_distcount build to measure installed in that PostgreSQL (cargo pgrx install
# --release --pg-config "$PG_CONFIG"). The first run builds Citus (tests/tools/citus.sh ensure,
# 2 to 4 minutes here; cached); then a few minutes. CITUS_BENCH_ROWS (default 2,000,000) and
# CITUS_BENCH_SKETCHES (default 100,000) set the sizes. Writes
# tests/bench/results/citus_aggregates.tsv.
set -euo pipefail
{ # One block: bash reads the whole script before it starts, so editing it cannot change a run.
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
CITUS="$ROOT/tests/tools/citus.sh"
RESULTS="$ROOT/tests/bench/results"
ROUNDS="${1:-5}"
ROWS="${CITUS_BENCH_ROWS:-2000000}"
SKETCHES="${CITUS_BENCH_SKETCHES:-100000}"
NAME=citusbench
WORK="$(mktemp -d)"
START=$SECONDS
source "$ROOT/tests/bench/lib.sh"

cleanup() {
    local rc=$?
    rm -rf "$WORK"
    "$CITUS" stop "$NAME" >/dev/null 2>&1 || true
    [ "$rc" = 0 ] || echo "!! citus_aggregates.sh failed (exit $rc); see the error above" >&2
}
trap cleanup EXIT
elapsed() { printf '%dm%02ds' $(((SECONDS - START) / 60)) $(((SECONDS - START) % 60)); }

rc=0
"$CITUS" ensure || rc=$?
if [ "$rc" = 3 ]; then
    echo "skipped: Citus cannot run on this PostgreSQL (see the line above)"
    exit 0
fi
[ "$rc" = 0 ] || exit "$rc"

"$CITUS" destroy "$NAME" >/dev/null
"$CITUS" start "$NAME"
eval "$("$CITUS" env "$NAME")"
export PGOPTIONS="-c search_path=public"
sql() { psql -X -q -v ON_ERROR_STOP=1 -tA "$@"; }

sql -c "CREATE EXTENSION pg_distcount"
PHLL=0
if [ "$(sql -c "SELECT count(*) FROM pg_available_extensions WHERE name = 'hll'")" = 1 ]; then
    sql -c "CREATE EXTENSION hll"
    PHLL=1
else
    echo "postgresql-hll is not installed in this PostgreSQL (Debian: postgresql-$("$PG_CONFIG" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')-hll): its figures are skipped"
fi

echo "==> loading $ROWS rows and $SKETCHES sketches, distributed (32 shards) and local ($(elapsed))"
phll_col="" phll_val=""
if [ "$PHLL" = 1 ]; then
    phll_col=", ph public.hll"
    phll_val=", public.hll_add_agg(public.hll_hash_bigint(x))"
fi
sql <<SQL
CREATE TABLE rows_local (id bigint, x bigint);
INSERT INTO rows_local SELECT n, n * 7919 % ($ROWS / 2) FROM generate_series(1::bigint, $ROWS) n;
-- $SKETCHES groups of 20 values each: sparse or explicit hll sketches and small Count-Min ones.
CREATE TABLE sketches_local (id bigint, h distcount.hll, c distcount.cms $phll_col);
INSERT INTO sketches_local
SELECT k, distcount.hll_agg(x), distcount.cms_agg(x % 5000, 0.01, 0.05, 16) $phll_val
FROM (SELECT n / 20 AS k, n * 7919 % 1000000 AS x FROM generate_series(0::bigint, $SKETCHES * 20 - 1) n) s
GROUP BY k;
CREATE TABLE rows_dist (LIKE rows_local);
CREATE TABLE sketches_dist (LIKE sketches_local);
SELECT create_distributed_table('rows_dist', 'id', shard_count := 32) \\g /dev/null
SELECT create_distributed_table('sketches_dist', 'id', shard_count := 32) \\g /dev/null
INSERT INTO rows_dist SELECT * FROM rows_local;
INSERT INTO sketches_dist SELECT * FROM sketches_local;
VACUUM ANALYZE rows_local, rows_dist, sketches_local, sketches_dist;
SQL

# case|statement, for tables named by TABLE (rows_/sketches_ + dist or local).
CASES=(
    "acd|SELECT distcount.approx_count_distinct(x) FROM rows_TABLE"
    "hll_union|SELECT distcount.hll_count(distcount.hll_union_agg(h)) FROM sketches_TABLE"
    "cms_union|SELECT distcount.cms_total(distcount.cms_union_agg(c)) FROM sketches_TABLE"
)
if [ "$PHLL" = 1 ]; then
    CASES+=(
        "phll_add|SELECT public.hll_cardinality(public.hll_add_agg(public.hll_hash_bigint(x))) FROM rows_TABLE"
        "phll_union|SELECT public.hll_cardinality(public.hll_union_agg(ph)) FROM sketches_TABLE"
    )
fi

# How Citus runs each case on the workers.
echo "==> worker plans ($(elapsed))"
for c in "${CASES[@]}"; do
    q="${c#*|}"
    printf '    %-12s %s\n' "${c%%|*}" "$("$CITUS" plan "$NAME" "${q//TABLE/dist}" hll_union_agg hll_add_agg)"
done

# One session: a warm-up round, then ROUNDS rounds of every case on both tables, interleaved.
echo "==> $ROUNDS rounds ($(elapsed))"
{
    echo '\timing on'
    for round in $(seq 0 "$ROUNDS"); do
        for c in "${CASES[@]}"; do
            for t in dist local; do
                echo "\\echo @q $round ${c%%|*}_$t"
                echo "${c#*|}" | sed "s/TABLE/$t/;s/\$/;/"
            done
        done
    done
} >"$WORK/rounds.sql"
sql -f "$WORK/rounds.sql" |
    awk '/^@q /{round=$2; name=$3; next} /^Time: / { if (round > 0) print name, $2 }' >"$WORK/times"

mkdir -p "$RESULTS"
TSV="$RESULTS/citus_aggregates.tsv"
printf 'case\tmedian_ms\trounds\n' >"$TSV"
m() { median_of "$WORK/times" "$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "nan" }'; }
echo
printf '%-44s %12s %12s %10s\n' "median of $ROUNDS rounds, ms" distributed "one node" "dist/one"
for c in "${CASES[@]}"; do
    n="${c%%|*}"
    d="$(m "${n}_dist")"
    l="$(m "${n}_local")"
    printf '%s_dist\t%s\t%s\n%s_local\t%s\t%s\n' "$n" "$d" "$ROUNDS" "$n" "$l" "$ROUNDS" >>"$TSV"
    case "$n" in
    acd) label="approx_count_distinct(bigint), $ROWS rows" ;;
    hll_union) label="hll_union_agg, $SKETCHES sketches" ;;
    cms_union) label="cms_union_agg, $SKETCHES sketches" ;;
    phll_add) label="postgresql-hll hll_add_agg(hll_hash_bigint)" ;;
    phll_union) label="postgresql-hll hll_union_agg" ;;
    esac
    printf '%-44s %12.1f %12.1f %10s\n' "$label" "$d" "$l" "$(ratio "$d" "$l")"
done
if [ "$PHLL" = 1 ]; then
    echo
    echo "pg_distcount / postgresql-hll, both distributed:"
    echo "    approx_count_distinct(bigint) vs hll_add_agg(hll_hash_bigint):  $(ratio "$(m acd_dist)" "$(m phll_add_dist)")"
    echo "    hll_union_agg vs postgresql-hll hll_union_agg:                   $(ratio "$(m hll_union_dist)" "$(m phll_union_dist)")"
fi
echo
echo "wrote $TSV ($(elapsed))"
exit 0
}
