#!/usr/bin/env bash
# What an outbox event costs per business insert, on one cluster and the same tables:
#   plain      no trigger
#   table      distcount.outbox_trigger('Order', 'id', 'table')    a row in distcount.outbox
#   message    distcount.outbox_trigger('Order', 'id', 'message')  a logical decoding message
#   both       distcount.outbox_trigger('Order', 'id', 'both')
#   plpgsql    the usual hand-written PL/pgSQL outbox trigger, writing the same outbox row
#   stmt_table, stmt_message, stmt_both
#              distcount.outbox_statement_trigger('Order', 'id', MODE): AFTER INSERT ...
#              REFERENCING NEW TABLE ... FOR EACH STATEMENT, the form for bulk statements
# Two measures, interleaved rounds, medians, ratios against plain:
#   1. pgbench, 4 clients, one INSERT per transaction, synchronous_commit on and off;
#   2. one INSERT ... SELECT of BULK rows (row triggers fire per row): server time from
#      EXPLAIN ANALYZE, rolled back, so the CPU cost of the trigger shows without commit noise.
# Usage: outbox_insert.sh [ROUNDS] [SECONDS] [BULK]
# VARIANTS="plain table ..." picks variants (plain always first); COMMITS="on" one commit mode;
# PGBENCH=0 skips the pgbench measure, BULK=0 (the third argument) the bulk one; NOTIFY=off
# runs pgbench with pg_distcount.outbox_notify = off (no relay wake-up: CDC only).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
CLUSTER="$ROOT/tests/tools/cluster.sh"
ROUNDS="${1:-5}"
SECONDS_EACH="${2:-10}"
BULK="${3:-100000}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
source "$(dirname "$0")/lib.sh"

"$CLUSTER" start bench
eval "$("$CLUSTER" env bench)"
dropdb --if-exists outbox_bench
createdb outbox_bench
export PGDATABASE=outbox_bench
all_variants=(plain table message both plpgsql stmt_table stmt_message stmt_both)
read -r -a variants <<<"${VARIANTS:-${all_variants[*]}}"
[ "${variants[0]}" = plain ] || variants=(plain "${variants[@]}")
psql -X -q -v ON_ERROR_STOP=1 <<'SQL'
CREATE EXTENSION pg_distcount;
CREATE FUNCTION plpgsql_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r jsonb := to_jsonb(CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END);
BEGIN
    INSERT INTO distcount.outbox (aggregatetype, aggregateid, type, payload)
    VALUES (TG_ARGV[0], r ->> TG_ARGV[1],
            TG_ARGV[0] || CASE TG_OP WHEN 'INSERT' THEN 'Created' WHEN 'UPDATE' THEN 'Updated' ELSE 'Deleted' END,
            r);
    RETURN NULL;
END
$$;
DO $$
DECLARE v text;
BEGIN
    FOREACH v IN ARRAY ARRAY['plain', 'table', 'message', 'both', 'plpgsql',
                             'stmt_table', 'stmt_message', 'stmt_both'] LOOP
        EXECUTE format('CREATE TABLE orders_%s (id bigserial PRIMARY KEY, customer_id int NOT NULL,
                        status text NOT NULL, total numeric(10,2) NOT NULL,
                        created_at timestamptz NOT NULL DEFAULT now())', v);
        IF v IN ('table', 'message', 'both') THEN
            EXECUTE format('CREATE TRIGGER outbox AFTER INSERT OR UPDATE OR DELETE ON orders_%s FOR EACH ROW
                            EXECUTE FUNCTION distcount.outbox_trigger(''Order'', ''id'', %L)', v, v);
        ELSIF v LIKE 'stmt_%' THEN
            EXECUTE format('CREATE TRIGGER outbox AFTER INSERT ON orders_%s REFERENCING NEW TABLE AS added
                            FOR EACH STATEMENT EXECUTE FUNCTION distcount.outbox_statement_trigger(''Order'', ''id'', %L)',
                           v, substr(v, 6));
        ELSIF v = 'plpgsql' THEN
            EXECUTE format('CREATE TRIGGER outbox AFTER INSERT OR UPDATE OR DELETE ON orders_%s FOR EACH ROW
                            EXECUTE FUNCTION plpgsql_outbox(''Order'', ''id'')', v);
        END IF;
    END LOOP;
END
$$;
SQL
for v in "${variants[@]}"; do
    cat >"$WORK/$v.sql" <<SQL
\set c random(1, 1000)
INSERT INTO orders_$v (customer_id, status, total) VALUES (:c, 'new', :c * 1.5);
SQL
done
reset_tables() {
    psql -X -q -c "TRUNCATE distcount.outbox, $(printf 'orders_%s, ' "${all_variants[@]}" | sed 's/, $//')" >/dev/null
}

# report FILE UNIT: per variant the median, and the median over rounds of its cost relative to
# plain in the same round (the machine's speed drifts between rounds; within a round it is
# nearly the same for all variants). FILE lines: variant value round.
report() {
    local m r
    printf '\n%-10s %14s %12s\n' variant "median $2" "vs plain"
    for v in "${variants[@]}"; do
        m="$(median_of "$1" "$v")"
        r="$(awk -v v="$v" -v unit="$2" '
                $1 == "plain" { p[$3] = $2 } $1 == v { x[$3] = $2 }
                END { for (k in x) print (unit == "tps" ? p[k] / x[k] : x[k] / p[k]) }' "$1" | median)"
        awk -v v="$v" -v m="$m" -v r="$r" 'BEGIN { printf "%-10s %14.1f %11.2fx\n", v, m, r }'
    done
    echo "(vs plain: median over rounds of this insert's cost over a plain insert's, same round; lower is better)"
}

[ "${PGBENCH:-1}" = 1 ] || COMMITS=" "
for commit in ${COMMITS:-on off}; do
    : >"$WORK/tps"
    echo "==> pgbench, synchronous_commit = $commit: $ROUNDS interleaved rounds x ${#variants[@]} variants x ${SECONDS_EACH} s, 4 clients"
    for round in $(seq 1 "$ROUNDS"); do
        for v in "${variants[@]}"; do
            reset_tables
            tps="$(PGOPTIONS="-c synchronous_commit=$commit ${NOTIFY:+-c pg_distcount.outbox_notify=$NOTIFY}" pgbench -n -c 4 -j 2 -T "$SECONDS_EACH" -f "$WORK/$v.sql" |
                   sed -nE 's/^tps = ([0-9.]+).*/\1/p')"
            echo "    round $round  $v: $tps tps"
            echo "$v $tps $round" >>"$WORK/tps"
        done
    done
    report "$WORK/tps" tps
    echo
done

: >"$WORK/bulk"
[ "$BULK" -gt 0 ] || ROUNDS=0
echo "==> one INSERT ... SELECT of $BULK rows per variant (server time, rolled back): $ROUNDS interleaved rounds"
for round in $(seq 1 "$ROUNDS"); do
    for v in "${variants[@]}"; do
        reset_tables
        ms="$(psql -X -q -tA <<SQL | sed -nE 's/.*"Execution Time": ([0-9.]+).*/\1/p'
BEGIN;
EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON)
INSERT INTO orders_$v (customer_id, status, total)
SELECT i % 1000, 'new', i * 1.5 FROM generate_series(1, $BULK) AS i;
ROLLBACK;
SQL
)"
        echo "    round $round  $v: $ms ms"
        echo "$v $ms $round" >>"$WORK/bulk"
    done
done
[ "$ROUNDS" = 0 ] || report "$WORK/bulk" ms
[ "$ROUNDS" = 0 ] || for v in "${variants[@]}"; do
    m="$(median_of "$WORK/bulk" "$v")"
    awk -v v="$v" -v m="$m" -v n="$BULK" 'BEGIN { printf "%-10s %8.2f us per row\n", v, m * 1000 / n }'
done
dropdb outbox_bench
"$CLUSTER" stop bench
