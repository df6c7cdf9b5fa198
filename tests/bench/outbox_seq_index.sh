#!/usr/bin/env bash
# What the relay's index on distcount.outbox (seq) costs a bulk write: one INSERT ... SELECT of
# BULK rows through the table-mode outbox triggers (row and statement form), rolled back, with
# the index and with it dropped inside the same rolled-back transaction; server time from
# EXPLAIN ANALYZE, interleaved rounds, median of the per-round ratios (with / without).
# Usage: outbox_seq_index.sh [ROUNDS] [BULK]   (defaults 5, 100000)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
CLUSTER="$ROOT/tests/tools/cluster.sh"
ROUNDS="${1:-5}"
BULK="${2:-100000}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
source "$(dirname "$0")/lib.sh"

"$CLUSTER" start bench
eval "$("$CLUSTER" env bench)"
dropdb --if-exists seq_index_bench
createdb seq_index_bench
export PGDATABASE=seq_index_bench
psql -X -q -v ON_ERROR_STOP=1 <<'SQL'
CREATE EXTENSION pg_distcount;
CREATE TABLE orders_row (id bigserial PRIMARY KEY, customer_id int, status text, total numeric,
                         created_at timestamptz DEFAULT now());
CREATE TRIGGER orders_outbox AFTER INSERT ON orders_row
    FOR EACH ROW EXECUTE FUNCTION distcount.outbox_trigger('Order', 'id', 'table');
CREATE TABLE orders_stmt (LIKE orders_row INCLUDING ALL);
CREATE TRIGGER orders_outbox AFTER INSERT ON orders_stmt REFERENCING NEW TABLE AS t
    FOR EACH STATEMENT EXECUTE FUNCTION distcount.outbox_statement_trigger('Order', 'id', 'table');
SQL

: >"$WORK/times"
for round in $(seq 1 "$ROUNDS"); do
    for form in row stmt; do
        for index in with without; do
            ms="$(psql -X -q -tA <<SQL | sed -nE 's/.*"Execution Time": ([0-9.]+).*/\1/p'
BEGIN;
$([ "$index" = without ] && echo "DROP INDEX distcount.outbox_seq_idx;")
EXPLAIN (ANALYZE, FORMAT JSON)
INSERT INTO orders_$form (customer_id, status, total)
SELECT i % 1000, 'new', i FROM generate_series(1, $BULK) AS i;
ROLLBACK;
SQL
)"
            echo "    round $round  $form trigger, $index outbox_seq_idx: $ms ms"
            echo "$form/$index $ms $round" >>"$WORK/times"
        done
    done
done
printf '\n%-16s %14s %14s %12s\n' "trigger" "with ms" "without ms" "with/without"
for form in row stmt; do
    ratio="$(awk -v f="$form" '$1 == f "/with" { w[$3] = $2 } $1 == f "/without" { o[$3] = $2 }
                END { for (r in w) print w[r] / o[r] }' "$WORK/times" | median)"
    awk -v f="$form" -v w="$(median_of "$WORK/times" "$form/with")" -v o="$(median_of "$WORK/times" "$form/without")" \
        -v x="$ratio" 'BEGIN { printf "%-16s %14.1f %14.1f %11.3fx\n", f, w, o, x }'
done
dropdb seq_index_bench
"$CLUSTER" stop bench
