#!/usr/bin/env bash
# The relay's wake-up: a session that LISTENs on distcount_outbox and waits
# (distcount.outbox_relay_idle(true)) gets one notification per committed transaction that
# wrote outbox rows (row trigger, statement trigger, outbox_emit), also when a savepoint that
# wrote events was rolled back but the transaction wrote others; none for a rolled-back
# transaction, a transaction whose only events were in a rolled-back savepoint, message mode (no
# row for the relay), with pg_distcount.outbox_notify = off, or once the relay works again
# (outbox_relay_idle(false)): then writers send no NOTIFY (a LISTEN alone asks for none).
# The listener runs each writer as a separate psql (\!) and then a query, after which psql
# prints the notifications that arrived (after the marker's row): those after marker i belong
# to case i.
source "$(dirname "$0")/../tools/integration_lib.sh"
DB=outbox_notify
fresh_db "$DB"
export PGDATABASE=$DB
sql >/dev/null <<'SQL'
CREATE TABLE orders (id int PRIMARY KEY);
CREATE TRIGGER orders_outbox AFTER INSERT ON orders FOR EACH ROW EXECUTE FUNCTION distcount.outbox_trigger('Order', 'id');
CREATE TABLE lines (id int PRIMARY KEY);
CREATE TRIGGER lines_outbox AFTER INSERT ON lines REFERENCING NEW TABLE AS n
    FOR EACH STATEMENT EXECUTE FUNCTION distcount.outbox_statement_trigger('Line', 'id');
CREATE TABLE pings (id int PRIMARY KEY);
CREATE TRIGGER pings_outbox AFTER INSERT ON pings FOR EACH ROW EXECUTE FUNCTION distcount.outbox_trigger('Ping', 'id', 'message');
SQL

cases=(
    "rollback|0|BEGIN; INSERT INTO orders VALUES (1), (2); ROLLBACK;"
    "row trigger, 3 events, one commit|1|INSERT INTO orders VALUES (1), (2), (3);"
    "statement trigger, 1000 events|1|INSERT INTO lines SELECT generate_series(1, 1000);"
    "outbox_emit twice in one transaction|1|BEGIN; SELECT distcount.outbox_emit('A', '1', 'T', '{}'); SELECT distcount.outbox_emit('A', '2', 'T', '{}'); COMMIT;"
    "events, then a savepoint with events rolled back|1|BEGIN; INSERT INTO orders VALUES (10); SAVEPOINT s; INSERT INTO orders VALUES (11); ROLLBACK TO s; COMMIT;"
    "a rolled-back savepoint's events, then events|1|BEGIN; SAVEPOINT s; INSERT INTO orders VALUES (20); ROLLBACK TO s; INSERT INTO orders VALUES (21); COMMIT;"
    "only a rolled-back savepoint wrote events|0|BEGIN; SAVEPOINT s; INSERT INTO orders VALUES (30); ROLLBACK TO s; COMMIT;"
    "message mode only|0|INSERT INTO pings VALUES (1);"
    "pg_distcount.outbox_notify = off|0|SET pg_distcount.outbox_notify = off; INSERT INTO orders VALUES (40);"
    "a failed statement|0|INSERT INTO orders VALUES (50), (50);"
    "the relay works (idle false): no NOTIFY|0|INSERT INTO orders VALUES (60);|SELECT distcount.outbox_relay_idle(false);"
    "idle false twice changes nothing|0|INSERT INTO orders VALUES (61);|SELECT distcount.outbox_relay_idle(false);"
    "idle again (twice: one lock)|1|INSERT INTO orders VALUES (62);|SELECT distcount.outbox_relay_idle(true), distcount.outbox_relay_idle(true);"
    "a writer that is the idle relay itself notifies no one else|0|SELECT distcount.outbox_relay_idle(false), distcount.outbox_relay_idle(true); INSERT INTO orders VALUES (63);|SELECT distcount.outbox_relay_idle(false);"
)
script="LISTEN distcount_outbox;"$'\n'"SELECT distcount.outbox_relay_idle(true);"$'\n'
for i in "${!cases[@]}"; do
    IFS='|' read -r _ _ writer listener <<<"${cases[$i]}"
    [ -n "${listener:-}" ] && script+="$listener"$'\n'
    script+="\\! psql -X -q -o /dev/null -c \"$writer\" 2>/dev/null"$'\n'
    script+="SELECT 'marker $i';"$'\n'
done
out="$(psql -X -tA <<<"$script" 2>&1)"
for i in "${!cases[@]}"; do
    IFS='|' read -r what expected _ <<<"${cases[$i]}"
    got="$(awk -v i="$i" '
        BEGIN { m = -1 }
        /^marker / { m = $2 + 0; next }
        /Asynchronous notification "distcount_outbox"/ { n[m]++ }
        END { print n[i] + 0 }' <<<"$out")"
    check "$what: $expected notification(s)" "$expected" "$got"
done
check "the listener saw every marker" "${#cases[@]}" "$(grep -c '^marker ' <<<"$out")"
finish
