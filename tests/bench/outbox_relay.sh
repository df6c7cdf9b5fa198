#!/usr/bin/env bash
# How fast the relay drains the outbox, against pgmq 1.5.1 (shared/vendor, pure SQL, built here
# with PGXS when the server lacks it), on one cluster, the same number of events:
#   pgmq    pgmq.read(queue, 30, BATCH) then pgmq.delete(queue, ids): no per-aggregate order,
#           no dead letters
#   relay   distcount.outbox_claim(consumer, BATCH) then distcount.outbox_ack(consumer, ids):
#           per-aggregate order, leases, dead letters
# Two loads of EVENTS events: unordered (one aggregate per event, no ordering constraint binds)
# and ordered (ORDERED_AGGREGATES aggregates, EVENTS / ORDERED_AGGREGATES events each, so each
# claim can hand out at most one event per aggregate); one and four workers (procedures that
# claim, commit, acknowledge, commit, in parallel psql sessions; a worker that gets nothing sleeps
# 2 to 20 ms, and stops once the acknowledged events, counted per system, reach EVENTS).
# Interleaved rounds, medians of the drain time (workers started to queue empty), ratios
# relay / pgmq (lower is better).
# Then the many-aggregates case (pgmq issue 496): 8 workers drain EVENTS events over 10,000
# aggregates; the slowest single claim after the first fill of the backlog is reported against
# CLAIM_BOUND_MS (default 500), the fill itself apart.
# Usage: outbox_relay.sh [ROUNDS] [EVENTS] [BATCH]   (defaults 3, 100000, 1000)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
CLUSTER="$ROOT/tests/tools/cluster.sh"
ROUNDS="${1:-3}"
EVENTS="${2:-100000}"
BATCH="${3:-1000}"
ORDERED_AGGREGATES="${ORDERED_AGGREGATES:-1000}"
CLAIM_BOUND_MS="${CLAIM_BOUND_MS:-500}"
PG_CONFIG="${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}"
WORK="$(mktemp -d)"
chmod 755 "$WORK"
trap 'rm -rf "$WORK"' EXIT
source "$(dirname "$0")/lib.sh"

if [ ! -f "$("$PG_CONFIG" --sharedir)/extension/pgmq--1.5.1.sql" ]; then
    echo "==> building pgmq 1.5.1 from shared/vendor (PGXS)"
    tar xzf "${PGMQ_TARBALL:-$ROOT/../shared/vendor/pgmq-1.5.1.tar.gz}" -C "$WORK"
    # Two runs: the install list is read before the first one makes pgmq--1.5.1.sql.
    make -s -C "$WORK"/pgmq-1.5.1/pgmq-extension PG_CONFIG="$PG_CONFIG" all >/dev/null
    make -s -C "$WORK"/pgmq-1.5.1/pgmq-extension PG_CONFIG="$PG_CONFIG" install >/dev/null
fi

"$CLUSTER" start bench
eval "$("$CLUSTER" env bench)"
dropdb --if-exists relay_bench
createdb relay_bench
export PGDATABASE=relay_bench
psql -X -q -v ON_ERROR_STOP=1 <<'SQL'
CREATE EXTENSION pg_distcount;
CREATE EXTENSION pgmq;
SELECT pgmq.create('bench');
-- Per claim (or read): its duration and end, for the slowest-claim figures.
CREATE UNLOGGED TABLE claim_log (system text, ms float8, got int, at timestamptz DEFAULT clock_timestamp());
-- Per acknowledgement (or delete): how many events it removed, written in its transaction. A
-- worker that finds nothing to take stops once they add up to every event: the same cheap check
-- for both systems (the relay's outbox_stats counts whole queues: idle workers polling it took
-- the CPU of the working one). A row each, not one running total, so acknowledgements do not
-- queue on one row lock.
CREATE UNLOGGED TABLE ack_log (system text, n bigint);
-- For a worker that got nothing, its idle-th time in a row: whether every event is acknowledged
-- (others may hold the heads now); else it sleeps 2 to 20 ms, and fails after a minute.
CREATE FUNCTION drained_or_wait(sys text, total bigint, idle int) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    n bigint := (SELECT coalesce(sum(a.n), 0) FROM ack_log AS a WHERE a.system = sys);
BEGIN
    IF n >= total THEN
        RETURN true;
    ELSIF idle > 3000 THEN
        RAISE EXCEPTION '%: % of % events acknowledged, none taken for a minute', sys, n, total;
    END IF;
    PERFORM pg_sleep(0.002 * least(idle, 10));
    RETURN false;
END
$$;
CREATE PROCEDURE drain_relay(batch int, total bigint) LANGUAGE plpgsql AS $$
DECLARE
    ids uuid[];
    idle int := 0;
    t timestamptz;
BEGIN
    LOOP
        t := clock_timestamp();
        SELECT array_agg(c.id) INTO ids FROM distcount.outbox_claim('bench', batch, '5 minutes') AS c;
        INSERT INTO claim_log (system, ms, got) VALUES ('relay', 1000 * extract(epoch FROM clock_timestamp() - t),
                                      coalesce(cardinality(ids), 0));
        COMMIT;
        IF ids IS NULL THEN
            idle := idle + 1;
            EXIT WHEN drained_or_wait('relay', total, idle);
            CONTINUE;
        END IF;
        idle := 0;
        INSERT INTO ack_log VALUES ('relay', distcount.outbox_ack('bench', ids));
        COMMIT;
    END LOOP;
END
$$;
CREATE PROCEDURE drain_pgmq(batch int, total bigint) LANGUAGE plpgsql AS $$
DECLARE
    ids bigint[];
    idle int := 0;
    t timestamptz;
BEGIN
    LOOP
        t := clock_timestamp();
        SELECT array_agg(r.msg_id) INTO ids FROM pgmq.read('bench', 300, batch) AS r;
        INSERT INTO claim_log (system, ms, got) VALUES ('pgmq', 1000 * extract(epoch FROM clock_timestamp() - t),
                                      coalesce(cardinality(ids), 0));
        COMMIT;
        IF ids IS NULL THEN
            idle := idle + 1;
            EXIT WHEN drained_or_wait('pgmq', total, idle);
            CONTINUE;
        END IF;
        idle := 0;
        INSERT INTO ack_log SELECT 'pgmq', count(*) FROM pgmq.delete('bench', ids);
        COMMIT;
    END LOOP;
END
$$;
SQL

# load SYSTEM AGGREGATES: EVENTS events, event i on aggregate i % AGGREGATES, payload {"n": i}.
load() {
    psql -X -q -v ON_ERROR_STOP=1 >/dev/null <<SQL
TRUNCATE claim_log;
TRUNCATE ack_log;
SELECT pgmq.purge_queue('bench');
SELECT distcount.outbox_drop_consumer('bench');
TRUNCATE distcount.outbox;
$(if [ "$1" = pgmq ]; then
    echo "INSERT INTO pgmq.q_bench (vt, message) SELECT clock_timestamp(), jsonb_build_object('n', i) FROM generate_series(1, $EVENTS) AS i;"
else
    echo "INSERT INTO distcount.outbox (aggregatetype, aggregateid, type, payload)
          SELECT 'Account', (i % $2)::text, 'Tx', jsonb_build_object('n', i) FROM generate_series(1, $EVENTS) AS i;"
fi)
VACUUM ANALYZE pgmq.q_bench;
VACUUM ANALYZE distcount.outbox;
VACUUM ANALYZE distcount.outbox_pending;
SQL
}

# drain SYSTEM WORKERS: prints the seconds from the workers' start to the last one's end.
drain() {
    local start end pids=() w
    start="$(date +%s.%N)"
    for w in $(seq 1 "$2"); do
        psql -X -q -v ON_ERROR_STOP=1 -c "CALL drain_$1($BATCH, $EVENTS)" >"$WORK/w$w.out" 2>&1 &
        pids+=($!)
    done
    for w in "${pids[@]}"; do wait "$w" || { cat "$WORK"/w*.out >&2; exit 1; }; done
    end="$(date +%s.%N)"
    awk -v s="$start" -v e="$end" 'BEGIN { printf "%.2f", e - s }'
}

# left SYSTEM: events not yet acknowledged (must be 0 after a drain).
left() {
    if [ "$1" = pgmq ]; then
        psql -X -qtA -c "SELECT count(*) FROM pgmq.q_bench"
    else
        psql -X -qtA -c "SELECT queued + not_yet_queued FROM distcount.outbox_stats WHERE consumer = 'bench'"
    fi
}

: >"$WORK/times"
echo "==> drain $EVENTS events, batches of $BATCH: $ROUNDS interleaved rounds"
for round in $(seq 1 "$ROUNDS"); do
    for load_name in unordered ordered; do
        aggregates=$EVENTS
        [ "$load_name" = unordered ] || aggregates=$ORDERED_AGGREGATES
        for workers in 1 4; do
            for system in pgmq relay; do
                load "$system" "$aggregates"
                s="$(drain "$system" "$workers")"
                n="$(left "$system")"
                [ "$n" = 0 ] || { echo "!! $system left $n events undrained" >&2; exit 1; }
                delivered="$(psql -X -qtA -c "SELECT sum(got) FROM claim_log")"
                [ "$delivered" -ge "$EVENTS" ] || { echo "!! $system delivered $delivered of $EVENTS" >&2; exit 1; }
                echo "    round $round  $load_name  $workers worker(s)  $system: ${s} s"
                echo "$load_name/$workers/$system $s $round" >>"$WORK/times"
            done
        done
    done
done

printf '\n%-22s %12s %12s %14s %12s\n' "load / workers" "pgmq s" "relay s" "relay / pgmq" "events/s"
for load_name in unordered ordered; do
    for workers in 1 4; do
        k="$load_name/$workers"
        p="$(median_of "$WORK/times" "$k/pgmq")"
        r="$(median_of "$WORK/times" "$k/relay")"
        ratio="$(awk -v k="$k" '$1 == k "/pgmq" { p[$3] = $2 } $1 == k "/relay" { r[$3] = $2 }
                    END { for (i in r) print r[i] / p[i] }' "$WORK/times" | median)"
        awk -v k="$k" -v p="$p" -v r="$r" -v x="$ratio" -v n="$EVENTS" \
            'BEGIN { printf "%-22s %12.2f %12.2f %13.2fx %12.0f\n", k, p, r, x, n / r }'
    done
done
echo "(relay / pgmq: median over rounds of the relay's drain time over pgmq's, same round; ordered = $ORDERED_AGGREGATES aggregates)"

echo
echo "==> many aggregates (pgmq issue 496): 8 workers drain $EVENTS events over 10,000 aggregates"
load relay 10000
s="$(drain relay 8)"
[ "$(left relay)" = 0 ] || { echo "!! events left undrained" >&2; exit 1; }
# The first claims fill the queue with the whole backlog (or wait for that fill): reported
# apart from the claims after it, whose bound is the one that matters for a running relay.
psql -X -qtA -F ' ' -c "
    WITH c AS (SELECT *, at - ms * interval '1 ms' AS began FROM claim_log WHERE got > 0),
         filled AS (SELECT min(at) AS t FROM c)
    SELECT count(*) FILTER (WHERE began >= filled.t),
           round(max(ms) FILTER (WHERE began < filled.t)::numeric, 1),
           round(max(ms) FILTER (WHERE began >= filled.t)::numeric, 1),
           round((percentile_cont(0.99) WITHIN GROUP (ORDER BY ms) FILTER (WHERE began >= filled.t))::numeric, 1),
           round((avg(ms) FILTER (WHERE began >= filled.t))::numeric, 1)
      FROM c, filled GROUP BY filled.t" | {
    read -r claims first max p99 avg
    echo "    drained in ${s} s; the first fill of the backlog: ${first} ms; $claims claims after it: slowest ${max} ms, p99 ${p99} ms, mean ${avg} ms"
    awk -v m="$max" -v b="$CLAIM_BOUND_MS" 'BEGIN { printf "    slowest claim after the fill %s the bound of %d ms\n", (m <= b ? "within" : "OVER"), b }'
}
dropdb relay_bench
"$CLUSTER" stop bench
