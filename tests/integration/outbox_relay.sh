#!/usr/bin/env bash
# The outbox relay under concurrency: four workers of one consumer drain 100,000 events over
# 2,000 aggregates while a producer keeps writing (each write holds its aggregate's row lock,
# as a business update does) and a transaction that wrote the lowest seq commits late. One
# worker "crashes" with a leased batch; poison events fail every time. Checks: every event
# delivered at least once, per-aggregate order kept, the late event not skipped, the crashed
# batch redelivered after its lease, poison events dead-lettered after exactly max attempts.
source "$(dirname "$0")/../tools/integration_lib.sh"
DB=outbox_relay
EVENTS=100000
AGGREGATES=2000
WORK="$(mktemp -d)"
chmod 755 "$WORK"
trap 'rm -rf "$WORK"' EXIT
fresh_db "$DB"
export PGDATABASE=$DB

sql >/dev/null <<SQL
ALTER DATABASE $DB SET pg_distcount.outbox_max_attempts = 3;
CREATE TABLE accounts (id int PRIMARY KEY, writes int NOT NULL DEFAULT 0);
INSERT INTO accounts (id) SELECT generate_series(0, $AGGREGATES - 1);
-- What the workers processed, in processing order (n).
CREATE TABLE delivery_log (n bigserial PRIMARY KEY, worker int, id uuid, seq bigint,
                           aggregatetype text, aggregateid text, poison boolean);
CREATE TABLE crashed (id uuid);
CREATE PROCEDURE relay_worker(worker int, crash_after_rounds int) LANGUAGE plpgsql AS \$\$
DECLARE
    rounds int := 0;
    idle int := 0;
    got int;
BEGIN
    CREATE TEMP TABLE my_batch (LIKE distcount.outbox);
    LOOP
        DELETE FROM my_batch;
        INSERT INTO my_batch SELECT * FROM distcount.outbox_claim('relay', 200, '2 seconds');
        GET DIAGNOSTICS got = ROW_COUNT;
        COMMIT;                                   -- the lease is taken
        IF got > 0 THEN
            rounds := rounds + 1;
        END IF;
        IF got > 0 AND rounds = crash_after_rounds THEN       -- "crash": leased, never acknowledged
            INSERT INTO crashed SELECT id FROM my_batch;
            COMMIT;
            RETURN;
        END IF;
        IF got = 0 THEN
            idle := idle + 1;
            -- Nothing for ~4 s: the work is done. Before its first batch a worker waits up to
            -- ~30 s: the first fill of the queue (100,000 events, by whichever worker takes
            -- the filler's lock) can take longer than 4 s on a loaded machine.
            EXIT WHEN idle > CASE WHEN rounds = 0 THEN 300 ELSE 40 END;
            PERFORM pg_sleep(0.1);
            CONTINUE;
        END IF;
        idle := 0;
        INSERT INTO delivery_log (worker, id, seq, aggregatetype, aggregateid, poison)
        SELECT worker, id, seq, aggregatetype, aggregateid, coalesce((payload->>'poison')::boolean, false)
          FROM my_batch ORDER BY seq;
        PERFORM distcount.outbox_ack('relay', array_agg(id))
           FROM my_batch WHERE NOT coalesce((payload->>'poison')::boolean, false);
        PERFORM distcount.outbox_nack('relay', id, 'poison event')
           FROM my_batch WHERE coalesce((payload->>'poison')::boolean, false);
        COMMIT;
    END LOOP;
END
\$\$;
SQL

# The late writer takes the lowest seq and commits after the workers have started.
psql -X -q -c "BEGIN; SELECT distcount.outbox_emit('Late', 'late-1', 'LateEvent', '{}'); SELECT pg_sleep(8); COMMIT;" \
    >/dev/null 2>&1 &
LATE_PID=$!
sleep 0.5
echo "==> writing $EVENTS events over $AGGREGATES aggregates (every 997th is poison)"
sql -c "SELECT count(distcount.outbox_emit('Account', (i % $AGGREGATES)::text, 'Tx',
                jsonb_build_object('n', i, 'poison', i % 997 = 0)))
          FROM generate_series(1, $EVENTS) AS i" >/dev/null

cat >"$WORK/produce.sql" <<SQL
\set a random(0, $AGGREGATES - 1)
BEGIN;
UPDATE accounts SET writes = writes + 1 WHERE id = :a;
SELECT distcount.outbox_emit('Account', ':a', 'Tx', '{"live": true}');
COMMIT;
SQL
echo "==> 4 relay workers (one crashes holding its 5th batch, then restarts) and a live producer"
start=$(date +%s)
pgbench -n -c 2 -j 1 -T 10 -f "$WORK/produce.sql" >"$WORK/producer.out" 2>&1 &
PRODUCER_PID=$!
pids=()
for w in 1 2 3; do
    psql -X -q -c "CALL relay_worker($w, 0)" >"$WORK/worker$w.out" 2>&1 &
    pids+=($!)
done
psql -X -q -c "CALL relay_worker(4, 5)" >"$WORK/worker4.out" 2>&1
crashed_leases="$(sql -c "SELECT count(*) FROM crashed")"
echo "    worker 4 crashed holding $crashed_leases leased events"
psql -X -q -c "CALL relay_worker(4, 0)" >"$WORK/worker4b.out" 2>&1 &
pids+=($!)
wait "$PRODUCER_PID" || true
wait "$LATE_PID" || true
failed=0
for p in "${pids[@]}"; do wait "$p" || failed=1; done
elapsed=$(( $(date +%s) - start ))
for f in "$WORK"/worker*.out; do [ -s "$f" ] && { echo "--- $f"; cat "$f"; }; done
check "workers finished without error" "0" "$failed"

total="$(sql -c "SELECT count(*) FROM distcount.outbox")"
live="$(sql -c "SELECT sum(writes) FROM accounts")"
echo "    $total events in all ($EVENTS bulk, 1 late, $live live), drained in ${elapsed}s"
check "events written: bulk + late + live" "$((EVENTS + 1 + live))" "$total"
check "the crash left leased events behind" "yes" "$([ "$crashed_leases" -gt 0 ] && echo yes || echo no)"
check "the crashed batch was redelivered after its lease ran out" "0" "$(sql -c "
    SELECT count(*) FROM crashed c WHERE NOT EXISTS (SELECT FROM delivery_log d WHERE d.id = c.id)")"
check "every event delivered at least once" "0" "$(sql -c "
    SELECT count(*) FROM distcount.outbox o WHERE NOT EXISTS (SELECT FROM delivery_log d WHERE d.id = o.id)")"
check "the late event was delivered" "1" "$(sql -c "SELECT count(DISTINCT id) FROM delivery_log WHERE aggregatetype = 'Late'")"
check "per-aggregate order: no event processed after a later event of its aggregate" "0" "$(sql -c "
    SELECT count(*) FROM (
        SELECT seq, max(seq) OVER (PARTITION BY aggregatetype, aggregateid ORDER BY n
                                   ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before
          FROM delivery_log) AS d
     WHERE d.seq < d.before")"
poison="$(sql -c "SELECT count(*) FROM distcount.outbox WHERE (payload->>'poison')::boolean")"
check "poison events dead-lettered" "$poison" "$(sql -c "SELECT count(*) FROM distcount.outbox_dead WHERE consumer = 'relay'")"
# An attempt is a claim: a delivery logged by a worker, or a claim lost in the crash.
check "each poison event attempted exactly 3 times" "0" "$(sql -c "
    SELECT count(*) FROM (
        SELECT o.id FROM distcount.outbox o
         WHERE (o.payload->>'poison')::boolean
           AND (SELECT count(*) FROM delivery_log d WHERE d.id = o.id)
             + (SELECT count(*) FROM crashed c WHERE c.id = o.id) <> 3) AS x")"
check "dead letters record attempts and error" "$poison" "$(sql -c "
    SELECT count(*) FROM distcount.outbox_dead WHERE attempts = 3 AND last_error = 'poison event'")"
check "nothing left queued" "0" "$(sql -c "SELECT count(*) FROM distcount.outbox_pending")"
redelivered="$(sql -c "SELECT count(*) FROM (SELECT id FROM delivery_log WHERE NOT poison GROUP BY id HAVING count(*) > 1) AS x")"
echo "    non-poison events delivered more than once: $redelivered"
check "outbox_stats agrees" "relay|0|0|0|$poison" "$(sql -c "SELECT consumer, queued, not_yet_queued, leased, dead FROM distcount.outbox_stats")"
finish
