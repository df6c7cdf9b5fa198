#!/usr/bin/env bash
# CPU cost of the outbox row trigger, counted in instructions: valgrind (callgrind) runs a
# single-user backend over one INSERT ... SELECT of ROWS rows into a table with
# distcount.outbox_trigger in table mode, one in message mode, and one without a trigger. The
# counts repeat to within a few hundredths of a percent (event ids are random, so the outbox's
# id index sees different keys), so small differences can be read. Reported: instructions per
# row above the plain insert.
# Usage: outbox_instructions.sh [ROWS]   (about 2 minutes for 20,000 rows; needs valgrind)
set -euo pipefail
{ # One block, read whole before it runs.
source "$(dirname "$0")/lib.sh"
NAME=outboxcount
DB=outboxcount
ROWS="${1:-20000}"
callgrind_init "$NAME"

echo "==> cluster $NAME: tables orders_plain, orders_table, orders_message"
callgrind_db
psql -X -q -v ON_ERROR_STOP=1 -d "$DB" <<'SQL'
CREATE EXTENSION pg_distcount;
DO $$
DECLARE v text;
BEGIN
    FOREACH v IN ARRAY ARRAY['plain', 'table', 'message'] LOOP
        EXECUTE format('CREATE TABLE orders_%s (id bigserial PRIMARY KEY, customer_id int NOT NULL,
                        status text NOT NULL, total numeric(10,2) NOT NULL, note text)', v);
        IF v <> 'plain' THEN
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
for v in plain table message; do
    i=$((i + 1))
    # A note with a quote, a backslash and a tab in every row, so the JSON escaper has work.
    printf '%s\n' "INSERT INTO orders_$v (customer_id, status, total, note) SELECT g % 1000, 'new', g / 100.0, E'say \"hi\"\\\\\\tnow ' || g FROM generate_series(1, $ROWS) g;" >"$WORK/$v.sql"
    echo "    [$i/3] callgrind: $v"
    TOTAL[$v]="$(callgrind_total "$v")"
done

echo "Instructions per row of the outbox row trigger ($ROWS-row INSERT ... SELECT, above the same insert without a trigger):"
awk -v p="${TOTAL[plain]}" -v t="${TOTAL[table]}" -v m="${TOTAL[message]}" -v r="$ROWS" 'BEGIN {
    printf "  plain insert %8.0f a row;  table mode %8.0f above it;  message mode %8.0f above it\n",
        p / r, (t - p) / r, (m - p) / r }'
}
