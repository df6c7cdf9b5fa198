#!/usr/bin/env bash
# CPU cost of the outbox triggers, counted in instructions: valgrind (callgrind) runs a
# single-user backend over one INSERT ... SELECT of ROWS rows into a table with
# distcount.outbox_trigger in table mode, one in message mode, the same two with
# distcount.outbox_statement_trigger (the form for bulk statements), and one without a trigger. The
# counts repeat to within a few hundredths of a percent (event ids are random, so the outbox's
# id index sees different keys), so small differences can be read. Reported: instructions per
# row above the plain insert. Then single-row transactions: TXNS one-row INSERTs, each its own
# transaction (the single-user backend commits each statement), without a trigger and with the
# row trigger in table and message mode: instructions per transaction above the plain one.
# Usage: outbox_instructions.sh [ROWS] [TXNS]   (defaults 20000, 2000; about 2 minutes; needs
# valgrind)
set -euo pipefail
{ # One block, read whole before it runs.
source "$(dirname "$0")/lib.sh"
NAME=outboxcount
DB=outboxcount
ROWS="${1:-20000}"
TXNS="${2:-2000}"
callgrind_init "$NAME"

echo "==> cluster $NAME: tables orders_plain, orders_table, orders_message, orders_stmt_table, orders_stmt_message"
callgrind_db
psql -X -q -v ON_ERROR_STOP=1 -d "$DB" <<'SQL'
CREATE EXTENSION pg_distcount;
DO $$
DECLARE v text;
BEGIN
    FOREACH v IN ARRAY ARRAY['plain', 'table', 'message', 'stmt_table', 'stmt_message'] LOOP
        EXECUTE format('CREATE TABLE orders_%s (id bigserial PRIMARY KEY, customer_id int NOT NULL,
                        status text NOT NULL, total numeric(10,2) NOT NULL, note text)', v);
        IF v LIKE 'stmt_%' THEN
            EXECUTE format('CREATE TRIGGER outbox AFTER INSERT ON orders_%s REFERENCING NEW TABLE AS added
                            FOR EACH STATEMENT EXECUTE FUNCTION distcount.outbox_statement_trigger(''Order'', ''id'', %L)',
                           v, substr(v, 6));
        ELSIF v <> 'plain' THEN
            EXECUTE format('CREATE TRIGGER outbox AFTER INSERT OR UPDATE OR DELETE ON orders_%s FOR EACH ROW
                            EXECUTE FUNCTION distcount.outbox_trigger(''Order'', ''id'', %L)', v, v);
        END IF;
    END LOOP;
END
$$;
SQL
callgrind_stop

declare -A TOTAL
i=0
for v in plain table message stmt_table stmt_message; do
    i=$((i + 1))
    # A note with a quote, a backslash and a tab in every row, so the JSON escaper has work.
    printf '%s\n' "INSERT INTO orders_$v (customer_id, status, total, note) SELECT g % 1000, 'new', g / 100.0, E'say \"hi\"\\\\\\tnow ' || g FROM generate_series(1, $ROWS) g;" >"$WORK/$v.sql"
    echo "    [$i/5] callgrind: $v"
    TOTAL[$v]="$(callgrind_total "$v")"
done

echo "Instructions per row of the outbox triggers ($ROWS-row INSERT ... SELECT, above the same insert without a trigger):"
awk -v p="${TOTAL[plain]}" -v t="${TOTAL[table]}" -v m="${TOTAL[message]}" \
    -v st="${TOTAL[stmt_table]}" -v sm="${TOTAL[stmt_message]}" -v r="$ROWS" 'BEGIN {
    printf "  plain insert %8.0f a row\n", p / r
    printf "  row trigger:       table mode %8.0f above it (%.2fx plain);  message mode %8.0f above it (%.2fx)\n",
        (t - p) / r, t / p, (m - p) / r, m / p
    printf "  statement trigger: table mode %8.0f above it (%.2fx plain);  message mode %8.0f above it (%.2fx)\n",
        (st - p) / r, st / p, (sm - p) / r, sm / p }'

i=0
for v in plain table message; do
    i=$((i + 1))
    for ((t = 1; t <= TXNS; t++)); do
        printf '%s\n' "INSERT INTO orders_$v (customer_id, status, total, note) VALUES ($t % 1000, 'new', $t / 100.0, E'say \"hi\"\\\\\\tnow ' || $t);"
    done >"$WORK/single_$v.sql"
    echo "    [$i/3] callgrind: $TXNS single-row transactions, $v"
    TOTAL[single_$v]="$(callgrind_total "single_$v")"
done
echo "Instructions per single-row transaction ($TXNS one-row INSERTs, each committed; above the same without a trigger):"
awk -v p="${TOTAL[single_plain]}" -v t="${TOTAL[single_table]}" -v m="${TOTAL[single_message]}" -v r="$TXNS" 'BEGIN {
    printf "  plain insert %8.0f a transaction\n", p / r
    printf "  row trigger:       table mode %8.0f above it (%.2fx plain);  message mode %8.0f above it (%.2fx)\n",
        (t - p) / r, t / p, (m - p) / r, m / p }'
}
