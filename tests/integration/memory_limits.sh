#!/usr/bin/env bash
# Aggregate states live in PostgreSQL memory (src/common/arena.rs): on a server whose backends
# have a real memory limit (RLIMIT_AS through prlimit, inherited from the postmaster), run by a
# role with only CONNECT and USAGE, at work_mem = 4MB:
#   1. GROUP BY states far above work_mem (hll p = 18, dense; Count-Min of 64 MiB each) make
#      hash aggregation spill (EXPLAIN ANALYZE shows more than one batch) and still answer right;
#   2. the queries that used to abort the backend (and restart the whole server) end in an
#      answer or a clean ERROR, and the postmaster never restarts: its start time is unchanged
#      and its log has no "terminated by signal".
source "$(dirname "$0")/../tools/integration_lib.sh"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
CLUSTER="$ROOT/tests/tools/cluster.sh"
BINDIR="$("$PG_CONFIG" --bindir)"
NAME=memtest
# Address space per process: the server's own mappings (shared_buffers 128MB, libraries) take
# about 300 MB of it; the rest is well below what the queries' states would take unspilled.
LIMIT_BYTES=$((1536 * 1024 * 1024))
cleanup() { "$CLUSTER" stop "$NAME" >/dev/null 2>&1 || true; }
trap cleanup EXIT

"$CLUSTER" stop "$NAME" >/dev/null 2>&1 || true
"$CLUSTER" start "$NAME"
eval "$("$CLUSTER" env "$NAME")"
DATA="$(sql -d postgres -c 'SHOW data_directory')"
LOG="$("$CLUSTER" dir "$NAME")/server.log"
echo "==> restarting $NAME with a memory limit of $((LIMIT_BYTES >> 20)) MB per process (prlimit --as)"
as_owner "$BINDIR/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null
as_owner prlimit --as="$LIMIT_BYTES" \
    "$BINDIR/pg_ctl" -D "$DATA" -l "$LOG" -o "-p $PGPORT" -w -t 60 start >/dev/null
check "the postmaster runs under the limit" "$LIMIT_BYTES" \
    "$(awk '/Max address space/ {print $5}' "/proc/$(head -1 "$DATA/postmaster.pid")/limits")"
log_start=$(stat -c %s "$LOG")

dropdb --if-exists mem >/dev/null 2>&1
createdb mem
export PGDATABASE=mem
sql -c "CREATE EXTENSION pg_distcount"
sql -c "DROP ROLE IF EXISTS mem_reader" -c "CREATE ROLE mem_reader LOGIN" \
    -c "GRANT CONNECT ON DATABASE mem TO mem_reader" -c "GRANT USAGE ON SCHEMA distcount TO mem_reader"
started="$(sql -c 'SELECT pg_postmaster_start_time()')"

# as_reader SQL...: runs as the unprivileged role at work_mem 4MB; prints the result, or
# "ERROR <sqlstate>" when the statement fails (the SQLSTATE is what the check looks at).
as_reader() {
    local out
    if out="$(PGUSER=mem_reader PGOPTIONS="-c work_mem=4MB -c search_path=distcount" \
        psql -X -q -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -tA "$@" 2>&1)"; then
        echo "$out"
    else
        sed -n 's/^ERROR: *\([0-9A-Z]\{5\}\):.*/ERROR \1/p' <<<"$out" | head -1
        [ -n "$(sed -n 's/^ERROR: *\([0-9A-Z]\{5\}\):.*/x/p' <<<"$out")" ] || echo "FAILED: $out"
    fi
}

# ---- 1. hash aggregation sees the states and spills -------------------------------------------
# 500 groups of dense p = 18 sketches: 256 KiB of registers each, 128 MB in all, 4 MB allowed.
hll_groups="WITH s AS MATERIALIZED (SELECT distcount.hll_agg(x, 18) h FROM generate_series(1, 300000) x)
    SELECT g, distcount.hll_union_agg(h) u FROM s, generate_series(1, 500) g GROUP BY g"
plan="$(as_reader -c "SET enable_sort = off" \
    -c "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) $hll_groups")"
batches="$(sed -n 's/.*Batches: \([0-9]*\).*/\1/p' <<<"$plan" | head -1)"
echo "$plan" | grep -E "HashAggregate|Batches" | sed 's/^/    /'
check "hll_union_agg over 500 dense p = 18 groups spills at work_mem 4MB (batches > 1)" "yes" \
    "$([ "${batches:-0}" -gt 1 ] && echo yes || echo "no: ${batches:-no HashAggregate}")"
check "and every group still counts the 300,000 values (within 1 %)" "500" \
    "$(as_reader -c "SET enable_sort = off" -c "SELECT count(*) FILTER (WHERE abs(distcount.hll_count(u) - 300000) < 3000)
        FROM ($hll_groups) q")"

# ---- 2. the queries that aborted the backend ---------------------------------------------------
# 60 groups of Count-Min sketches of 64 MiB each (epsilon 3.3e-7): 3.8 GB unspilled.
cms_answer="$(as_reader -c "SELECT sum(distcount.cms_total(c)) FROM (SELECT k, distcount.cms_agg(g, 3.3e-7, 0.5) c
    FROM generate_series(1, 60) k, generate_series(1, 2) g GROUP BY k) s")"
check "60 groups of 64 MiB cms states: the right total or out of memory (53200)" "yes" \
    "$([[ "$cms_answer" = 120 || "$cms_answer" = "ERROR 53200" ]] && echo yes || echo "no: $cms_answer")"
echo "    (answer: $cms_answer)"

# 40 rows of one 51-byte value that decodes to 64 MiB, each its own group of cms_union_agg.
union_answer="$(as_reader -c "SELECT count(*), sum(distcount.cms_total(u)) FROM (
    SELECT g, distcount.cms_union_agg(c) u FROM (SELECT distcount.cms_empty(3.3e-7, 0.5) c) e,
    generate_series(1, 40) g GROUP BY g) s")"
check "40 groups of cms_union_agg over a 51-byte value of 64 MiB counters: an answer or 53200" "yes" \
    "$([[ "$union_answer" = "40|0" || "$union_answer" = "ERROR 53200" ]] && echo yes || echo "no: $union_answer")"
echo "    (answer: $union_answer)"

# cms_total reads the header: 200 rows of that value take no 64 MiB decode each.
check "cms_total of 200 rows of the 51-byte value" "0" \
    "$(as_reader -c "SELECT sum(distcount.cms_total(c)) FROM (SELECT distcount.cms_empty(3.3e-7, 0.5) c
        FROM generate_series(1, 200)) s")"

# ---- 3. the server stayed up ------------------------------------------------------------------
check "the postmaster did not restart" "$started" "$(sql -c 'SELECT pg_postmaster_start_time()')"
crashes="$(tail -c +"$((log_start + 1))" "$LOG" | grep -c -E "terminated by signal|server process .* was terminated|memory allocation of" || true)"
check "no backend was killed by a signal or aborted on allocation" "0" "$crashes"

dropdb mem
sql -d postgres -c "DROP ROLE mem_reader" >/dev/null
finish
