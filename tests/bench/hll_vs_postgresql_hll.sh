#!/usr/bin/env bash
# pg_distcount's HyperLogLog (schema distcount) against postgresql-hll (the Debian package
# postgresql-15-hll, type public.hll), side by side in one cluster, on the same tables:
#   ingest     hll_agg over a 10M-row table, bigint and text, against count(*) of the same scan
#   union      hll_union_agg over 100,000 stored p = 14 sketches
#   group by   1,000,000 groups of 10 rows at the default work_mem: time, peak memory, temp files
#   size       bytes of a sketch of 100 .. 1,000,000 distinct values
#   accuracy   relative error over many disjoint value ranges at n from 100 to 1000·m (p = 14)
# Timings are medians of interleaved rounds; ratios are what to read (absolute times on a shared
# 2-core machine are noise). Nothing here asserts on a timing.
# Usage: hll_vs_postgresql_hll.sh [ROUNDS]        (default 5; about 8 minutes on 2 cores)
#   HLL_BENCH_RANGES (default 200) and HLL_BENCH_RANGES_LARGEST (default 40, at n = 1000·m) set
#   the number of value ranges per n in the accuracy part; HLL_BENCH_INGEST_ONLY=1 runs only the
#   ingest part (more rounds of it in the same time: its timings are the noisiest).
# Writes tests/bench/results/hll_vs_postgresql_hll.tsv and hll_relative_error.svg.
set -euo pipefail
{ # The whole script is one block, so bash reads it all before it starts: editing the file during a
  # run cannot change what the run does.
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
CLUSTER="$ROOT/tests/tools/cluster.sh"
RESULTS="$ROOT/tests/bench/results"
TSV_OUT="$RESULTS/hll_vs_postgresql_hll.tsv"
SVG_OUT="$RESULTS/hll_relative_error.svg"
ROUNDS="${1:-5}"
ROWS=10000000
DB=hllbench
M=16384                     # registers at p = 14
RANGES="${HLL_BENCH_RANGES:-200}"             # value ranges per n up to 100·m
RANGES_LARGEST="${HLL_BENCH_RANGES_LARGEST:-40}"  # value ranges at n = 1000·m (16.4M values each)
WORK="$(mktemp -d)"
chmod 755 "$WORK"
START=$SECONDS
TSV="$WORK/hll_vs_postgresql_hll.tsv"   # moved to $RESULTS only when the whole run succeeds

cleanup() {
    local rc=$?
    rm -rf "$WORK"
    "$CLUSTER" stop hllbench || true
    [ "$rc" = 0 ] || echo "!! hll_vs_postgresql_hll.sh failed (exit $rc); see the error above" >&2
}
trap cleanup EXIT

# The installed build under test; checked again at the end, since a reinstall during the run
# would mix two builds in one set of figures.
SO="$("${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}" --pkglibdir)/pg_distcount.so"
so_id() { echo "$(sha256sum "$SO" | cut -c1-16) $(date -r "$SO" -u +%Y-%m-%dT%H:%M:%SZ)"; }
SO_START="$(so_id)"

mkdir -p "$RESULTS"
"$CLUSTER" start hllbench
eval "$("$CLUSTER" env hllbench)"
PSQL=(psql -X -q -v ON_ERROR_STOP=1 -d "$DB")
sql() { "${PSQL[@]}" -A -t "$@"; }
elapsed() { printf '%dm%02ds' $(((SECONDS - START) / 60)) $(((SECONDS - START) % 60)); }
source "$(dirname "$0")/lib.sh"
# tsv SECTION ITEM EXT N REP VALUE UNIT
tsv() { local IFS=$'\t'; echo "$*" >>"$TSV"; }
printf 'section\titem\text\tn\trep\tvalue\tunit\n' >"$TSV"

# Runs "name|statement" pairs in one session (extension libraries loaded first, so no first-call
# cost lands in a timing) and prints "name ms result cpu_ms" per statement: wall time from
# psql's \timing, and the CPU time the backend process used (user + system, from
# /proc/PID/stat, 10 ms ticks), which other tenants of a shared machine disturb far less.
TICK_MS="$(awk -v t="$(getconf CLK_TCK)" 'BEGIN { print 1000 / t }')"
timed_session() {
    local f="$WORK/session.sql" cpu="$WORK/session.cpu" pair
    : >"$cpu"
    {
        echo "SELECT distcount.hll_count(distcount.hll_empty(14)), public.hll_cardinality(public.hll_empty(14));"
        echo "SELECT pg_backend_pid() AS backend_pid \\gset"
        echo "\\setenv BACKEND_PID :backend_pid"
        echo '\timing on'
        for pair in "$@"; do
            echo "\\echo @q ${pair%%|*}"
            echo "\\! awk '{ print \$14 + \$15 }' /proc/\$BACKEND_PID/stat >>$cpu"
            echo "${pair#*|};"
            echo "\\! awk '{ print \$14 + \$15 }' /proc/\$BACKEND_PID/stat >>$cpu"
        done
    } >"$f"
    sql -f "$f" | awk '/^@q /{name=$2; res=""; next} /^Time: /{print name, $2, res; next} {res=$0}' >"$WORK/session.out"
    # Pair each statement with its CPU ticks (two readings per statement, in order).
    awk -v tick="$TICK_MS" 'NR == FNR { t[NR] = $1; next } { printf "%s %s %s %.0f\n", $1, $2, $3, (t[2 * FNR] - t[2 * FNR - 1]) * tick }' \
        "$cpu" "$WORK/session.out"
}

# ---------------------------------------------------------------------------------------------
echo "==> database $DB: extensions hll (postgresql-hll) and pg_distcount"
dropdb --if-exists "$DB" 2>/dev/null
createdb "$DB"
sql <<SQL
CREATE EXTENSION hll;
CREATE EXTENSION pg_distcount;
-- One backend per query, no JIT: a clean per-row cost (the fixed JIT compile time would blur it).
ALTER DATABASE $DB SET max_parallel_workers_per_gather = 0;
ALTER DATABASE $DB SET jit = off;
SQL
echo "    pg_distcount.so under test: sha256 ${SO_START% *}..., installed ${SO_START#* }"
tsv run pg_distcount_so pg_distcount - - "$SO_START" "sha256-prefix mtime"
printf '    postgresql-hll %s, pg_distcount %s, %s\n' \
    "$(sql -c "SELECT extversion FROM pg_extension WHERE extname = 'hll'")" \
    "$(sql -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_distcount'")" \
    "$(sql -c "SELECT version()" | cut -d, -f1)"
echo "    settings: max_parallel_workers_per_gather = 0, jit = off, work_mem = $(sql -c 'SHOW work_mem') (default), hash_mem_multiplier = $(sql -c 'SHOW hash_mem_multiplier'), shared_buffers = $(sql -c 'SHOW shared_buffers')"

echo "==> loading $((ROWS / 1000000))M rows: t(id bigint, s text = 'user-' || id)"
sql <<SQL
CREATE TABLE t (id bigint NOT NULL, s text NOT NULL);
INSERT INTO t SELECT g, 'user-' || g FROM generate_series(1, $ROWS) g;
VACUUM ANALYZE t;
SQL
echo "    table t: $(sql -c "SELECT pg_size_pretty(pg_relation_size('t'))") ($(elapsed))"

# ---------------------------------------------------------------------------------------------
# Ingest
ingest=(
    "count_star|SELECT count(*) FROM t"
    "bigint_distcount|SELECT distcount.hll_count(distcount.hll_agg(id)) FROM t"
    "bigint_postgresql-hll|SELECT public.hll_cardinality(public.hll_add_agg(public.hll_hash_bigint(id), 14)) FROM t"
    "text_distcount|SELECT distcount.hll_count(distcount.hll_agg(s)) FROM t"
    "text_postgresql-hll|SELECT public.hll_cardinality(public.hll_add_agg(public.hll_hash_text(s), 14)) FROM t"
)
echo "==> ingest: ${#ingest[@]} queries over $ROWS rows, 1 warm-up pass + $ROUNDS interleaved rounds (order rotates each round)"
timed_session "${ingest[@]}" >/dev/null
: >"$WORK/ingest"
for round in $(seq 1 "$ROUNDS"); do
    rotated=("${ingest[@]:$(((round - 1) % ${#ingest[@]}))}" "${ingest[@]:0:$(((round - 1) % ${#ingest[@]}))}")
    timed_session "${rotated[@]}" >"$WORK/round"
    line="    round $round:"
    for q in "${ingest[@]}"; do
        name="${q%%|*}"
        read -r _ ms res cpu < <(grep "^$name " "$WORK/round")
        echo "$name $ms $res $cpu" >>"$WORK/ingest"
        line+="  $name ${ms%.*} ms (cpu $cpu)"
        case "$name" in
            count_star) tsv ingest count_star none "$ROWS" "$round" "$ms" ms; tsv ingest_cpu count_star none "$ROWS" "$round" "$cpu" ms ;;
            *_distcount) tsv ingest "${name%_*}" pg_distcount "$ROWS" "$round" "$ms" ms; tsv ingest_cpu "${name%_*}" pg_distcount "$ROWS" "$round" "$cpu" ms; tsv ingest_estimate "${name%_*}" pg_distcount "$ROWS" "$round" "$res" count ;;
            *) tsv ingest "${name%_*}" postgresql-hll "$ROWS" "$round" "$ms" ms; tsv ingest_cpu "${name%_*}" postgresql-hll "$ROWS" "$round" "$cpu" ms; tsv ingest_estimate "${name%_*}" postgresql-hll "$ROWS" "$round" "$res" count ;;
        esac
    done
    echo "$line"
done
med() { awk -v n="$1" '$1 == n {print $2}' "$WORK/ingest" | median; }
est() { awk -v n="$1" '$1 == n {print $3; exit}' "$WORK/ingest"; }
ing_count="$(med count_star)"
declare -A ING_MS ING_NS ING_EST ING_RATIO
for col in bigint text; do
    for ext in distcount postgresql-hll; do
        ING_MS[$col.$ext]="$(med "${col}_$ext")"
        ING_NS[$col.$ext]="$(awk -v a="${ING_MS[$col.$ext]}" -v c="$ing_count" -v r="$ROWS" 'BEGIN {printf "%.1f", (a - c) * 1e6 / r}')"
        ING_EST[$col.$ext]="$(est "${col}_$ext")"
        e=pg_distcount; [ "$ext" = distcount ] || e=postgresql-hll
        tsv ingest_summary "${col}_median_ms" "$e" "$ROWS" median "${ING_MS[$col.$ext]}" ms
        tsv ingest_summary "${col}_ns_per_row_above_count" "$e" "$ROWS" median "${ING_NS[$col.$ext]}" ns
    done
    ING_RATIO[$col]="$(awk -v a="${ING_NS[$col.distcount]}" -v b="${ING_NS[$col.postgresql-hll]}" 'BEGIN {printf "%.2f", a / b}')"
    tsv ingest_summary "${col}_cost_ratio_distcount_over_hll" ratio "$ROWS" median "${ING_RATIO[$col]}" ratio
done
tsv ingest_summary count_star_median_ms none "$ROWS" median "$ing_count" ms
printf '    medians: count(*) %.0f ms; bigint %.0f / %.0f ms, text %.0f / %.0f ms (pg_distcount / postgresql-hll) (%s)\n' \
    "$ing_count" "${ING_MS[bigint.distcount]}" "${ING_MS[bigint.postgresql-hll]}" \
    "${ING_MS[text.distcount]}" "${ING_MS[text.postgresql-hll]}" "$(elapsed)"
# The same on backend CPU time.
cpu_med() { awk -v n="$1" '$1 == n {print $4}' "$WORK/ingest" | median; }
cpu_count="$(cpu_med count_star)"
for col in bigint text; do
    ours="$(cpu_med "${col}_distcount")"
    theirs="$(cpu_med "${col}_postgresql-hll")"
    ratio="$(awk -v a="$ours" -v b="$theirs" -v c="$cpu_count" 'BEGIN {printf "%.2f", (a - c) / (b - c)}')"
    tsv ingest_summary "${col}_cpu_cost_ratio_distcount_over_hll" ratio "$ROWS" median "$ratio" ratio
    printf '    backend CPU medians, %s: count(*) %.0f ms, pg_distcount %.0f ms, postgresql-hll %.0f ms: cost per row above count(*) %.1f / %.1f ns, ratio %s\n' \
        "$col" "$cpu_count" "$ours" "$theirs" \
        "$(awk -v a="$ours" -v c="$cpu_count" -v r="$ROWS" 'BEGIN {print (a - c) * 1e6 / r}')" \
        "$(awk -v a="$theirs" -v c="$cpu_count" -v r="$ROWS" 'BEGIN {print (a - c) * 1e6 / r}')" "$ratio"
done

# Ratios of medians suffer when the machine's speed drifts between rounds; the median of each
# round's own ratio is the steadier figure there. (A round where postgresql-hll did not take
# longer than count(*) has no ratio and is left out.)
per_round_ratios() { # COLUMN FIELD (2: wall ms, 4: CPU ms)
    awk -v col="$1" -v f="$2" '
        $1 == "count_star" { c = $f }
        $1 == col "_distcount" { d = $f }
        $1 == col "_postgresql-hll" && $f > c { print (d - c) / ($f - c) }' "$WORK/ingest"
}
for col in bigint text; do
    wall_ratio="$(per_round_ratios "$col" 2 | median)"
    cpu_ratio="$(per_round_ratios "$col" 4 | median)"
    kept="$(per_round_ratios "$col" 2 | wc -l)"
    tsv ingest_summary "${col}_per_round_cost_ratio" ratio "$ROWS" median "$wall_ratio" ratio
    tsv ingest_summary "${col}_per_round_cpu_cost_ratio" ratio "$ROWS" median "$cpu_ratio" ratio
    printf '    median of per-round ratios, %s: wall %.2f, CPU %.2f (%s of %s rounds)\n' "$col" "$wall_ratio" "$cpu_ratio" "$kept" "$ROUNDS"
done

if [ "${HLL_BENCH_INGEST_ONLY:-0}" = 1 ]; then
    echo "HLL_BENCH_INGEST_ONLY=1: stopping after the ingest part (figures above; tests/bench/results/ left as it was) ($(elapsed))"
    exit 0
fi

# ---------------------------------------------------------------------------------------------
# Union: 100,000 stored p = 14 sketches per extension. Sketch i holds the 100 ids with
# id % 100000 = i; the even-numbered half also gets one of 1,000 blocks of 10,000 consecutive ids
# (block (i/2) % 1000), which makes them dense (FULL in postgresql-hll). Built with each
# extension's own aggregate and union function from the same rows.
echo "==> union: building 100,000 stored p = 14 sketches per extension (half of them dense)"
sql <<'SQL'
CREATE TABLE base_d AS SELECT id / 10000 AS j, distcount.hll_agg(id, 14) AS h FROM t GROUP BY 1;
CREATE TABLE base_p AS SELECT id / 10000 AS j, public.hll_add_agg(public.hll_hash_bigint(id), 14) AS h FROM t GROUP BY 1;
CREATE TABLE small_d AS SELECT id % 100000 AS i, distcount.hll_agg(id, 14) AS h FROM t GROUP BY 1;
CREATE TABLE small_p AS SELECT id % 100000 AS i, public.hll_add_agg(public.hll_hash_bigint(id), 14) AS h FROM t GROUP BY 1;
CREATE TABLE sketches_d (i int PRIMARY KEY, h distcount.hll NOT NULL);
INSERT INTO sketches_d SELECT s.i, CASE WHEN s.i % 2 = 0 THEN distcount.hll_union(s.h, b.h) ELSE s.h END
  FROM small_d s JOIN base_d b ON b.j = (s.i / 2) % 1000;
CREATE TABLE sketches_p (i int PRIMARY KEY, h public.hll NOT NULL);
INSERT INTO sketches_p SELECT s.i, CASE WHEN s.i % 2 = 0 THEN public.hll_union(s.h, b.h) ELSE s.h END
  FROM small_p s JOIN base_p b ON b.j = (s.i / 2) % 1000;
DROP TABLE base_d, base_p, small_d, small_p;
VACUUM ANALYZE sketches_d, sketches_p;
SQL
read -r u_n_d u_dense_d u_avg_dense_d u_avg_sparse_d u_rel_d <<<"$(sql -F ' ' -c "
    SELECT count(*), count(*) FILTER (WHERE distcount.hll_info(h)->>'form' = 'dense'),
           round(avg(pg_column_size(h)) FILTER (WHERE distcount.hll_info(h)->>'form' = 'dense')),
           round(avg(pg_column_size(h)) FILTER (WHERE distcount.hll_info(h)->>'form' <> 'dense')),
           pg_total_relation_size('sketches_d') FROM sketches_d")"
read -r u_n_p u_dense_p u_avg_dense_p u_avg_sparse_p u_rel_p <<<"$(sql -F ' ' -c "
    SELECT count(*), count(*) FILTER (WHERE public.hll_type(h) = 4),
           round(avg(pg_column_size(h)) FILTER (WHERE public.hll_type(h) = 4)),
           round(avg(pg_column_size(h)) FILTER (WHERE public.hll_type(h) <> 4)),
           pg_total_relation_size('sketches_p') FROM sketches_p")"
echo "    pg_distcount:   $u_n_d sketches, $u_dense_d dense (avg $u_avg_dense_d B), others sparse (avg $u_avg_sparse_d B); table $((u_rel_d / 1048576)) MiB"
echo "    postgresql-hll: $u_n_p sketches, $u_dense_p FULL (avg $u_avg_dense_p B), others EXPLICIT/SPARSE (avg $u_avg_sparse_p B); table $((u_rel_p / 1048576)) MiB ($(elapsed))"
tsv union_setup sketches pg_distcount "$u_n_d" - "$u_n_d" count
tsv union_setup dense pg_distcount "$u_n_d" - "$u_dense_d" count
tsv union_setup avg_bytes_dense pg_distcount "$u_n_d" - "$u_avg_dense_d" bytes
tsv union_setup avg_bytes_sparse pg_distcount "$u_n_d" - "$u_avg_sparse_d" bytes
tsv union_setup table_bytes pg_distcount "$u_n_d" - "$u_rel_d" bytes
tsv union_setup sketches postgresql-hll "$u_n_p" - "$u_n_p" count
tsv union_setup dense postgresql-hll "$u_n_p" - "$u_dense_p" count
tsv union_setup avg_bytes_dense postgresql-hll "$u_n_p" - "$u_avg_dense_p" bytes
tsv union_setup avg_bytes_sparse postgresql-hll "$u_n_p" - "$u_avg_sparse_p" bytes
tsv union_setup table_bytes postgresql-hll "$u_n_p" - "$u_rel_p" bytes

union=(
    "union_distcount|SELECT distcount.hll_count(distcount.hll_union_agg(h)) FROM sketches_d"
    "union_postgresql-hll|SELECT public.hll_cardinality(public.hll_union_agg(h)) FROM sketches_p"
)
echo "==> union: hll_union_agg over all 100,000 sketches, 1 warm-up pass + $ROUNDS interleaved rounds"
timed_session "${union[@]}" >/dev/null
: >"$WORK/union"
for round in $(seq 1 "$ROUNDS"); do
    if [ $((round % 2)) = 0 ]; then order=("${union[1]}" "${union[0]}"); else order=("${union[@]}"); fi
    timed_session "${order[@]}" >"$WORK/round"
    read -r _ ms_d res_d _ < <(grep '^union_distcount ' "$WORK/round")
    read -r _ ms_p res_p _ < <(grep '^union_postgresql-hll ' "$WORK/round")
    echo "union_distcount $ms_d $res_d" >>"$WORK/union"
    echo "union_postgresql-hll $ms_p $res_p" >>"$WORK/union"
    tsv union union_agg pg_distcount 100000 "$round" "$ms_d" ms
    tsv union union_agg postgresql-hll 100000 "$round" "$ms_p" ms
    printf '    round %d:  pg_distcount %.0f ms (estimate %s)  postgresql-hll %.0f ms (estimate %.0f)\n' "$round" "$ms_d" "$res_d" "$ms_p" "$res_p"
done
un_d="$(awk '$1 == "union_distcount" {print $2}' "$WORK/union" | median)"
un_p="$(awk '$1 == "union_postgresql-hll" {print $2}' "$WORK/union" | median)"
un_speedup="$(awk -v d="$un_d" -v p="$un_p" 'BEGIN {printf "%.2f", p / d}')"
tsv union_summary union_agg_median_ms pg_distcount 100000 median "$un_d" ms
tsv union_summary union_agg_median_ms postgresql-hll 100000 median "$un_p" ms
tsv union_summary speedup_hll_over_distcount ratio 100000 median "$un_speedup" ratio
printf '    medians: pg_distcount %.0f ms, postgresql-hll %.0f ms: pg_distcount %.2fx faster (%s)\n' "$un_d" "$un_p" "$un_speedup" "$(elapsed)"

# ---------------------------------------------------------------------------------------------
# GROUP BY with 1,000,000 groups of 10 rows at the default work_mem, each run in a fresh backend.
# Peak memory of that backend: VmHWM (peak resident set; it also counts the shared_buffers pages
# the backend touched) read from /proc after the query, and the peak of RssAnon (private memory)
# sampled every 0.1 s while it runs. Temp files: pg_stat_database.temp_bytes before and after.
cat >"$WORK/sampler.sh" <<'EOF'
# sampler.sh PID OUT: follows /proc/PID/status until the process is gone; writes "peakRssAnon_kB VmHWM_kB".
pid=$1; out=$2; peak=0; hwm=0
while [ -e "/proc/$pid/status" ]; do
    while read -r key value _; do
        case "$key" in
            RssAnon:) [ "$value" -gt "$peak" ] && peak=$value ;;
            VmHWM:) hwm=$value ;;
        esac
    done <"/proc/$pid/status" 2>/dev/null || true
    sleep 0.1
done
echo "$peak $hwm" >"$out.tmp" && mv "$out.tmp" "$out"
EOF
declare -A GB_AGG GB_OUT
GB_AGG[baseline]="count(*)"
GB_OUT[baseline]="sum(h)"
GB_AGG[pg_distcount]="distcount.hll_agg(id)"
GB_OUT[pg_distcount]="sum(distcount.hll_count(h))"
GB_AGG[postgresql-hll]="public.hll_add_agg(public.hll_hash_bigint(id), 14)"
GB_OUT[postgresql-hll]="sum(public.hll_cardinality(h))"
gb_query() { echo "SELECT count(*), ${GB_OUT[$1]} FROM (SELECT id / 10 AS g, ${GB_AGG[$1]} AS h FROM t GROUP BY id / 10) s"; }
gb_variants=(baseline pg_distcount postgresql-hll)
echo "==> group by: 1,000,000 groups of 10 rows, work_mem $(sql -c 'SHOW work_mem'); variants: baseline count(*), pg_distcount, postgresql-hll; $ROUNDS interleaved rounds, fresh backend per run"
for v in "${gb_variants[@]}"; do
    plan="$(sql -c "EXPLAIN $(gb_query "$v")" | sed -nE 's/^ *(->  )?(HashAggregate|GroupAggregate|Sort|MixedAggregate|Incremental Sort)  \(cost.*/\2/p' | paste -sd'+' -)"
    echo "    plan for $v: $plan"
    tsv groupby_plan plan "$v" 1000000 - "$plan" plan
done
: >"$WORK/groupby"
for round in $(seq 1 "$ROUNDS"); do
    line="    round $round:"
    for v in "${gb_variants[@]}"; do
        rm -f "$WORK/mem"
        sql -v query="$(gb_query "$v")" >"$WORK/gb_out" <<SQL
SELECT pg_backend_pid() AS pid \gset
\setenv PID :pid
\! bash $WORK/sampler.sh \$PID $WORK/mem >/dev/null 2>&1 </dev/null &
SELECT temp_bytes AS tb0 FROM pg_stat_database WHERE datname = current_database() \gset
\timing on
\echo @q $v
:query;
\timing off
\! grep '^VmHWM' /proc/\$PID/status | awk '{print "@hwm", \$2}'
SELECT pg_stat_force_next_flush();
SELECT '@temp ' || (temp_bytes - :tb0) FROM pg_stat_database WHERE datname = current_database();
SQL
        for _ in $(seq 1 100); do [ -f "$WORK/mem" ] && break; sleep 0.1; done
        ms="$(awk '/^Time: /{print $2}' "$WORK/gb_out")"
        res="$(awk '/^@q /{getline; print; exit}' "$WORK/gb_out")"
        hwm="$(awk '/^@hwm /{print $2}' "$WORK/gb_out")"
        temp="$(awk '/^@temp /{print $2}' "$WORK/gb_out")"
        anon=nan; [ -f "$WORK/mem" ] && read -r anon _ <"$WORK/mem"
        echo "$v $ms $hwm $anon $temp $res" >>"$WORK/groupby"
        tsv groupby ms "$v" 1000000 "$round" "$ms" ms
        tsv groupby vmhwm_kb "$v" 1000000 "$round" "$hwm" kB
        tsv groupby peak_rss_anon_kb "$v" 1000000 "$round" "$anon" kB
        tsv groupby temp_bytes "$v" 1000000 "$round" "$temp" bytes
        tsv groupby result "$v" 1000000 "$round" "$res" "groups|sum of counts"
        line+="  $v $(printf '%.0f' "$ms") ms (VmHWM $((hwm / 1024)) MiB, anon $((anon / 1024)) MiB, temp $((temp / 1048576)) MiB)"
    done
    echo "$line"
done
declare -A GB_MS GB_HWM GB_ANON GB_TEMP GB_RES
for v in "${gb_variants[@]}"; do
    GB_MS[$v]="$(awk -v v="$v" '$1 == v {print $2}' "$WORK/groupby" | median)"
    GB_HWM[$v]="$(awk -v v="$v" '$1 == v {print $3}' "$WORK/groupby" | sort -g | tail -1)"
    GB_ANON[$v]="$(awk -v v="$v" '$1 == v {print $4}' "$WORK/groupby" | sort -g | tail -1)"
    GB_TEMP[$v]="$(awk -v v="$v" '$1 == v {print $5}' "$WORK/groupby" | median)"
    GB_RES[$v]="$(awk -v v="$v" '$1 == v {print $6; exit}' "$WORK/groupby")"
    tsv groupby_summary median_ms "$v" 1000000 median "${GB_MS[$v]}" ms
    tsv groupby_summary max_vmhwm_kb "$v" 1000000 max "${GB_HWM[$v]}" kB
    tsv groupby_summary max_peak_rss_anon_kb "$v" 1000000 max "${GB_ANON[$v]}" kB
    tsv groupby_summary median_temp_bytes "$v" 1000000 median "${GB_TEMP[$v]}" bytes
done
echo "    ($(elapsed))"

# ---------------------------------------------------------------------------------------------
echo "==> size: pg_column_size of one p = 14 sketch of n distinct values (generate_series)"
: >"$WORK/size"
for n in 100 1000 10000 1000000; do
    read -r sd fd sp tp <<<"$(sql -F ' ' -c "
        SELECT pg_column_size(d), distcount.hll_info(d)->>'form', pg_column_size(p),
               CASE public.hll_type(p) WHEN 1 THEN 'EMPTY' WHEN 2 THEN 'EXPLICIT' WHEN 3 THEN 'SPARSE' WHEN 4 THEN 'FULL' END
        FROM (SELECT distcount.hll_agg(g) AS d, public.hll_add_agg(public.hll_hash_bigint(g), 14) AS p
              FROM generate_series(1, $n) g) s")"
    echo "$n $sd $fd $sp $tp" >>"$WORK/size"
    tsv size bytes pg_distcount "$n" "$fd" "$sd" bytes
    tsv size bytes postgresql-hll "$n" "$tp" "$sp" bytes
    printf '    n = %9d: pg_distcount %6d B (%s), postgresql-hll %6d B (%s)\n' "$n" "$sd" "$fd" "$sp" "$tp"
done

# ---------------------------------------------------------------------------------------------
# Accuracy: for each n, RANGES disjoint ranges of consecutive bigints, range k of n-step j being
# (j*1000 + k)*10^9 + 1 .. + n (generate_series streamed through a ProjectSet, not the table);
# both extensions estimate the same values in the same pass.
ns=(100 1000 8192 16384 32768 44237 57344 81920 163840 491520 1638400 16384000)
echo "==> accuracy: n in {${ns[*]}} (m = $M, p = 14; 8192 = 0.5m, 44237 = 2.7m, 163840 = 10m, 1638400 = 100m, 16384000 = 1000m)"
echo "    $RANGES disjoint value ranges per n, $RANGES_LARGEST at n = 16384000 (1000m: 16.4M values a range, reduced to keep the run short)"
sql -c "CREATE TABLE acc (n bigint, k int, d float8, p float8)"
j=0
for n in "${ns[@]}"; do
    j=$((j + 1))
    K="$RANGES"; [ "$n" -ge 16384000 ] && K="$RANGES_LARGEST"
    t0=$SECONDS
    sql -c "INSERT INTO acc SELECT $n, k, e.d, e.p
        FROM generate_series(0, $K - 1) k CROSS JOIN LATERAL (
            SELECT distcount.hll_count(distcount.hll_agg(v))::float8 AS d,
                   public.hll_cardinality(public.hll_add_agg(public.hll_hash_bigint(v), 14)) AS p
            FROM (SELECT generate_series(($j * 1000 + k) * 1000000000::bigint + 1,
                                         ($j * 1000 + k) * 1000000000::bigint + $n) AS v) g) e"
    echo "    n = $n: $K ranges done in $((SECONDS - t0)) s ($(elapsed))"
done
sql -F $'\t' -c "SELECT 'accuracy', 'rel_err', 'pg_distcount', n, k, d / n - 1, 'fraction' FROM acc
                 UNION ALL
                 SELECT 'accuracy', 'rel_err', 'postgresql-hll', n, k, p / n - 1, 'fraction' FROM acc
                 ORDER BY 3, 4, 5" >>"$TSV"
sql -F ' ' -c "SELECT n, count(*),
        avg(d / n - 1), sqrt(avg((d / n - 1) ^ 2)), count(*) FILTER (WHERE d = n),
        avg(p / n - 1), sqrt(avg((p / n - 1) ^ 2)), count(*) FILTER (WHERE round(p) = n)
    FROM acc GROUP BY n ORDER BY n" >"$WORK/acc"
while read -r n k bd rd xd bp rp xp; do
    tsv accuracy_summary bias pg_distcount "$n" "$k" "$bd" fraction
    tsv accuracy_summary rms pg_distcount "$n" "$k" "$rd" fraction
    tsv accuracy_summary exact pg_distcount "$n" "$k" "$xd" count
    tsv accuracy_summary bias postgresql-hll "$n" "$k" "$bp" fraction
    tsv accuracy_summary rms postgresql-hll "$n" "$k" "$rp" fraction
    tsv accuracy_summary exact postgresql-hll "$n" "$k" "$xp" count
done <"$WORK/acc"

echo "==> plot"
python3 "$ROOT/tests/bench/plot_hll_error.py" "$TSV" "$WORK/hll_relative_error.svg"

# ---------------------------------------------------------------------------------------------
dropdb "$DB"
total="$(elapsed)"
tsv run total_seconds none - - "$((SECONDS - START))" s
tsv run rounds none - - "$ROUNDS" count

mib() { awk -v k="$1" 'BEGIN {printf "%.1f MiB", k / 1024}'; }
echo
echo "================ HyperLogLog: pg_distcount against postgresql-hll (p = 14), $ROUNDS rounds ================"
echo "Ingest, $ROWS rows, max_parallel_workers_per_gather = 0, jit = off; medians; cost per row above count(*) ($(printf '%.0f' "$ing_count") ms):"
printf '  %-8s %15s %15s %12s %12s %10s   %s\n' column "pg_distcount" "postgresql-hll" "pgd ns/row" "hll ns/row" "ratio" "(goal: ratio <= 0.5)"
for col in bigint text; do
    printf '  %-8s %12.0f ms %12.0f ms %12s %12s %10s\n' "$col" "${ING_MS[$col.distcount]}" "${ING_MS[$col.postgresql-hll]}" \
        "${ING_NS[$col.distcount]}" "${ING_NS[$col.postgresql-hll]}" "${ING_RATIO[$col]}"
done
printf '  estimates of 10,000,000: bigint %s / %.0f, text %s / %.0f\n' "${ING_EST[bigint.distcount]}" "${ING_EST[bigint.postgresql-hll]}" "${ING_EST[text.distcount]}" "${ING_EST[text.postgresql-hll]}"
echo "Union, hll_union_agg over 100,000 stored p = 14 sketches (pg_distcount $u_dense_d dense, postgresql-hll $u_dense_p FULL):"
printf '  pg_distcount %.0f ms, postgresql-hll %.0f ms: pg_distcount %sx faster (goal >= 2x)\n' "$un_d" "$un_p" "$un_speedup"
echo "GROUP BY id / 10 (1,000,000 groups of 10 rows), default work_mem, fresh backend per run:"
printf '  %-15s %-28s %10s %14s %16s %14s  %s\n' variant plan "median" "VmHWM (max)" "RssAnon peak" "temp written" "result (groups, sum of counts)"
for v in "${gb_variants[@]}"; do
    plan="$(awk -F'\t' -v v="$v" '$1 == "groupby_plan" && $3 == v {print $6}' "$TSV")"
    printf '  %-15s %-28s %7.1f s %14s %16s %10.0f MiB  %s\n' "$v" "$plan" "$(awk -v m="${GB_MS[$v]}" 'BEGIN {print m / 1000}')" \
        "$(mib "${GB_HWM[$v]}")" "$(mib "${GB_ANON[$v]}")" "$(awk -v b="${GB_TEMP[$v]}" 'BEGIN {print b / 1048576}')" "${GB_RES[$v]}"
done
echo "  (VmHWM counts the shared_buffers pages the backend touched; RssAnon is its private memory.)"
echo "Size, pg_column_size of one sketch (targets: 1,000 values <= 4,000 B; dense p = 14 <= 12,300 B):"
while read -r n sd fd sp tp; do
    printf '  n = %9d: pg_distcount %6d B %-8s  postgresql-hll %6d B (%s)\n' "$n" "$sd" "$fd" "$sp" "$tp"
done < <(awk '{print $1, $2, "(" $3 ")", $4, $5}' "$WORK/size")
echo "Accuracy, relative error over disjoint value ranges (theory 1.04/sqrt(m) = $(awk -v m=$M 'BEGIN {printf "%.3f", 104 / sqrt(m)}') %; goals: |bias| <= 0.3 %, RMS <= $(awk -v m=$M 'BEGIN {printf "%.3f", 1.05 * 104 / sqrt(m)}') %):"
printf '  %9s %7s %7s | %-36s | %-36s\n' n "n/m" ranges "pg_distcount: bias    RMS     exact" "postgresql-hll: bias  RMS     exact"
while read -r n k bd rd xd bp rp xp; do
    awk -v n="$n" -v m=$M -v k="$k" -v bd="$bd" -v rd="$rd" -v xd="$xd" -v bp="$bp" -v rp="$rp" -v xp="$xp" 'BEGIN {
        printf "  %9d %7.4g %7d | %+9.3f %% %7.3f %% %5d/%-5d | %+9.3f %% %7.3f %% %5d/%-5d\n", n, n / m, k, 100 * bd, 100 * rd, xd, k, 100 * bp, 100 * rp, xp, k }'
done <"$WORK/acc"
awk -v se="$(awk -v m=$M 'BEGIN {print 104 / sqrt(m)}')" -v a="$RANGES" -v b="$RANGES_LARGEST" 'BEGIN {
    printf "  (standard error of a bias figure = RMS / sqrt(ranges): about %.2f %% at %d ranges, %.2f %% at %d)\n", se / sqrt(a), a, se / sqrt(b), b }'
echo "Total run time: $total"
echo "pg_distcount.so: sha256 ${SO_START% *}..., installed ${SO_START#* }"
if [ "$(so_id)" != "$SO_START" ]; then
    echo "!! pg_distcount.so changed during the run (now $(so_id)): these figures mix two builds;" \
         "results not written, rerun." >&2
    exit 1
fi
mv "$TSV" "$TSV_OUT"
mv "$WORK/hll_relative_error.svg" "$SVG_OUT"
echo "Results: $TSV_OUT"
echo "Plot:    $SVG_OUT"
exit 0
}
