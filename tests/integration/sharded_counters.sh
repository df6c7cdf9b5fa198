#!/usr/bin/env bash
# Sharded counters on a cluster of their own (shardtest, pg_distcount preloaded):
#   1. 32 pgbench clients x counter_add on slot, delta and auto-created counters while another
#      process rolls up and reshards (up and down): every committed transaction counted exactly;
#   2. kill -9 of the postmaster during the load, restart: each value lies between the
#      transactions pgbench saw acknowledged and that plus the client count;
#   3. the roll-up worker folds delta rows with nobody calling counter_rollup.
source "$(dirname "$0")/../tools/integration_lib.sh"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
CLUSTER="$ROOT/tests/tools/cluster.sh"
NAME=shardtest
CLIENTS=32
WORK="$(mktemp -d)"
chmod 755 "$WORK"
cleanup() {
    [ -n "${LOOP_PID:-}" ] && kill "$LOOP_PID" 2>/dev/null
    "$CLUSTER" stop "$NAME" >/dev/null 2>&1 || true
    rm -rf "$WORK" "$CLUSTERS/$NAME"
}
trap cleanup EXIT

"$CLUSTER" stop "$NAME" >/dev/null 2>&1 || true
rm -rf "$CLUSTERS/$NAME"
# The worker starts paused (interval 0); part 3 switches it on.
"$CLUSTER" start "$NAME" "shared_preload_libraries = 'pg_distcount'" "pg_distcount.rollup_database = 'shard_it'" \
    "pg_distcount.rollup_interval = 0" "max_connections = 100"
eval "$("$CLUSTER" env "$NAME")"
DATA="$CLUSTERS/$NAME/data"
createdb shard_it
export PGDATABASE=shard_it
sql -c "CREATE EXTENSION pg_distcount"

committed_of() { sed -nE 's/^number of transactions actually processed: ([0-9]+).*/\1/p' "$1"; }

# ---- 1. exact totals under load, with roll-ups and reshards running ---------------------------
sql >/dev/null <<'SQL'
SELECT distcount.counter_create('hits', 16);
SELECT distcount.counter_create('views', 16, 'deltas');
CREATE TABLE ledger (d bigint NOT NULL);
SQL
cat >"$WORK/load.sql" <<'SQL'
\set d random(-3, 5)
BEGIN;
SELECT distcount.counter_add('hits');
SELECT distcount.counter_add('views', :d);
SELECT distcount.counter_add('fresh');
INSERT INTO ledger (d) VALUES (:d);
COMMIT;
SQL
# Another process: roll-ups of one and of all counters, and reshards up and down, in a loop.
(
    n=0
    while :; do
        sql -c "SELECT distcount.counter_rollup()" >/dev/null
        sql -c "SELECT distcount.counter_reshard('hits', 2)" >/dev/null
        sql -c "SELECT distcount.counter_rollup('hits')" >/dev/null
        sql -c "SELECT distcount.counter_reshard('hits', 64)" >/dev/null
        sql -c "SELECT distcount.counter_reshard('fresh', 3)" >/dev/null 2>&1 || true
        sql -c "SELECT distcount.counter_rollup('views')" >/dev/null
        sql -c "SELECT distcount.counter_reshard('fresh', 40)" >/dev/null 2>&1 || true
        n=$((n + 1))
        # Renamed into place: the kill below can land between a truncation and its write.
        echo "$n" >"$WORK/cycles.new" && mv "$WORK/cycles.new" "$WORK/cycles"
        sleep 0.1
    done
) &
LOOP_PID=$!
echo "==> pgbench: $CLIENTS clients x counter_add for 15 s, roll-ups and reshards alongside"
pgbench -n -c "$CLIENTS" -j 4 -T 15 -f "$WORK/load.sql" >"$WORK/pgbench1.out" 2>&1 || true
kill "$LOOP_PID" 2>/dev/null; wait "$LOOP_PID" 2>/dev/null || true
LOOP_PID=
grep -E "^(number of|tps)" "$WORK/pgbench1.out" || cat "$WORK/pgbench1.out"
committed="$(committed_of "$WORK/pgbench1.out")"
echo "    $committed transactions committed, $(cat "$WORK/cycles" 2>/dev/null || echo 0) roll-up/reshard cycles alongside"
check "the load ran (more than 1000 transactions)" "yes" "$([ "${committed:-0}" -gt 1000 ] && echo yes || echo no)"
check "roll-ups and reshards ran during the load (at least 3 cycles)" "yes" \
    "$([ "$(cat "$WORK/cycles" 2>/dev/null || echo 0)" -ge 3 ] && echo yes || echo no)"
check "pgbench saw no failed transaction" "" "$(grep -E '^number of failed transactions: [1-9]' "$WORK/pgbench1.out" || true)"
check "the ledger holds one row per committed transaction" "$committed" "$(sql -c "SELECT count(*) FROM ledger")"
check "slots counter (resharded 16 -> 2 -> 64 ...) equals committed transactions" "$committed" \
    "$(sql -c "SELECT distcount.counter_value('hits')")"
check "auto-created counter (32 clients raced to create it) equals committed transactions" "$committed" \
    "$(sql -c "SELECT distcount.counter_value('fresh')")"
check "deltas counter equals the sum of the committed deltas" "$(sql -c "SELECT sum(d) FROM ledger")" \
    "$(sql -c "SELECT distcount.counter_value('views')")"
check "exactly one counter row per name" "3" "$(sql -c "SELECT count(*) FROM distcount.counter")"
sql -c "SELECT distcount.counter_rollup()" >/dev/null
check "after a final roll-up, the view shows the same values" "$committed $committed $(sql -c "SELECT sum(d) FROM ledger")" \
    "$(sql -c "SELECT string_agg(value::text, ' ' ORDER BY array_position(ARRAY['hits','fresh','views'], name)) FROM distcount.counters")"
check "after a final roll-up, the cached values equal the exact ones" "0" \
    "$(sql -c "SELECT count(*) FROM distcount.counters WHERE cached_value IS DISTINCT FROM value")"
check "after a final roll-up, no delta rows and no non-zero slots are left" "0 0" \
    "$(sql -c "SELECT (SELECT count(*) FROM distcount.counter_delta) || ' ' || (SELECT count(*) FROM distcount.counter_slot WHERE value <> 0)")"
# Slots come from dense backend numbers: 8 concurrent sessions on 64 shards get 8 slots.
sql -c "SELECT distcount.counter_create('spread', 64)" >/dev/null
echo "SELECT distcount.counter_add('spread');" >"$WORK/spread.sql"
pgbench -n -c 8 -j 2 -t 200 -f "$WORK/spread.sql" >/dev/null 2>&1
check "8 concurrent writers on 64 shards wrote 8 different slots, 200 adds each" "8 1600 200 200" \
    "$(sql -c "SELECT count(*) || ' ' || sum(value) || ' ' || min(value) || ' ' || max(value)
               FROM distcount.counter_slot s JOIN distcount.counter c USING (id) WHERE c.name = 'spread'")"

# ---- 2. kill -9 of the postmaster during the load -------------------------------------------
sql >/dev/null <<'SQL'
SELECT distcount.counter_create('crash_slots', 16);
SELECT distcount.counter_create('crash_deltas', 16, 'deltas');
SQL
cat >"$WORK/crash.sql" <<'SQL'
BEGIN;
SELECT distcount.counter_add('crash_slots');
SELECT distcount.counter_add('crash_deltas');
COMMIT;
SQL
echo "==> pgbench: $CLIENTS clients for up to 60 s; kill -9 of the postmaster after 6 s"
pgbench -n -c "$CLIENTS" -j 4 -T 60 -f "$WORK/crash.sql" >"$WORK/pgbench2.out" 2>&1 &
BENCH_PID=$!
sleep 6
kill_postmaster "$DATA"
wait "$BENCH_PID" || true
grep -E "^(number of|tps)" "$WORK/pgbench2.out" || tail -3 "$WORK/pgbench2.out"
acked="$(committed_of "$WORK/pgbench2.out")"
acked="${acked:-0}"
"$CLUSTER" start "$NAME"
for _ in $(seq 1 30); do sql -c "SELECT 1" >/dev/null 2>&1 && break; sleep 1; done
slots_after="$(sql -c "SELECT distcount.counter_value('crash_slots')")"
deltas_after="$(sql -c "SELECT distcount.counter_value('crash_deltas')")"
echo "    acknowledged $acked; after restart: slots counter $slots_after, deltas counter $deltas_after"
check "the load ran before the crash (more than 100 acknowledged)" "yes" "$([ "$acked" -gt 100 ] && echo yes || echo no)"
check "slots counter after the crash is within [acknowledged, acknowledged + $CLIENTS]" "yes" \
    "$([ "$slots_after" -ge "$acked" ] && [ "$slots_after" -le $((acked + CLIENTS)) ] && echo yes || echo no)"
check "deltas counter after the crash is within [acknowledged, acknowledged + $CLIENTS]" "yes" \
    "$([ "$deltas_after" -ge "$acked" ] && [ "$deltas_after" -le $((acked + CLIENTS)) ] && echo yes || echo no)"
check "both counters, written in one transaction, agree" "$slots_after" "$deltas_after"
sql -c "SELECT distcount.counter_rollup()" >/dev/null
check "a roll-up after recovery keeps the value" "$slots_after" "$(sql -c "SELECT distcount.counter_value('crash_slots')")"

# ---- 3. the roll-up worker -------------------------------------------------------------------
worker_pid="$(sql -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_distcount rollup'")"
check "the roll-up worker runs" "yes" "$([ -n "$worker_pid" ] && echo yes || echo no)"
sql >/dev/null <<'SQL'
SELECT distcount.counter_create('bg', 4, 'deltas');
SELECT distcount.counter_add('bg', g) FROM generate_series(1, 100) g;
SELECT distcount.counter_add('bg_slots', 5);
-- A counter whose roll-up fails (its base would overflow) must not stop the others.
SELECT distcount.counter_create('bg_broken', 2);
INSERT INTO distcount.counter_slot (id, slot, value, name)
SELECT id, g, 4611686018427387904, name FROM distcount.counter, generate_series(0, 1) g WHERE name = 'bg_broken';
SQL
sleep 1.5
check "while the worker is paused (interval 0), the delta rows stay" "100" \
    "$(sql -c "SELECT delta_rows FROM distcount.counters WHERE name = 'bg'")"
sql -c "ALTER SYSTEM SET pg_distcount.rollup_interval = '100ms'" -c "SELECT pg_reload_conf()" >/dev/null
for _ in $(seq 1 100); do
    [ "$(sql -c "SELECT delta_rows FROM distcount.counters WHERE name = 'bg'")" = 0 ] && break
    sleep 0.2
done
check "the worker folded the delta rows, nobody calling counter_rollup" "0 5050 5050" \
    "$(sql -c "SELECT v.delta_rows || ' ' || c.base || ' ' || c.cached_value FROM distcount.counters v JOIN distcount.counter c USING (name) WHERE name = 'bg'")"
for _ in $(seq 1 50); do
    [ "$(sql -c "SELECT cached_value FROM distcount.counter WHERE name = 'bg_slots'")" = 5 ] && break
    sleep 0.2
done
check "the worker rolled up a slots counter too" "5 5" \
    "$(sql -c "SELECT base || ' ' || cached_value FROM distcount.counter WHERE name = 'bg_slots'")"
sql -c "SELECT distcount.counter_add('bg', 1000)" >/dev/null
for _ in $(seq 1 50); do
    [ "$(sql -c "SELECT delta_rows FROM distcount.counters WHERE name = 'bg'")" = 0 ] && break
    sleep 0.2
done
check "the worker keeps going after a failing counter, pass after pass" "6050" \
    "$(sql -c "SELECT base FROM distcount.counter WHERE name = 'bg'")"
check "the failing counter was logged, not fatal" "yes" \
    "$(grep -q 'roll-up of counter "bg_broken" failed' "$CLUSTERS/$NAME/server.log" && echo yes || echo no)"
check "the worker is still the same process" "$worker_pid" \
    "$(sql -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_distcount rollup'")"
finish
