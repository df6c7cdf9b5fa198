#!/usr/bin/env bash
# What least privilege costs (README, Security), on one cluster, interleaved rounds, medians:
#   counter_add   the shipped SECURITY DEFINER function called by a writer role, against the same
#                 function made SECURITY INVOKER and called by a superuser (pgbench, 8 clients)
#   relay drain   outbox_claim + outbox_ack of the same events by a relay role (row-level security
#                 on the relay tables, consumer role checks) against a superuser (bypasses RLS)
# Usage: privilege_cost.sh [ROUNDS] [SECONDS] [EVENTS]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
CLUSTER="$ROOT/tests/tools/cluster.sh"
source "$ROOT/tests/bench/lib.sh"
NAME=privbench
ROUNDS="${1:-3}"
SECONDS_EACH="${2:-8}"
EVENTS="${3:-20000}"
WORK="$(mktemp -d)"
chmod 755 "$WORK"
cleanup() { "$CLUSTER" stop "$NAME" >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT

"$CLUSTER" start "$NAME" "max_connections = 60"
eval "$("$CLUSTER" env "$NAME")"
dropdb --if-exists priv_bench >/dev/null 2>&1
psql -X -q -d postgres -c "DROP ROLE IF EXISTS bench_writer" -c "DROP ROLE IF EXISTS bench_relay" >/dev/null
createdb priv_bench
export PGDATABASE=priv_bench
q() { psql -X -q -v ON_ERROR_STOP=1 -tA "$@"; }
q >/dev/null <<'SQL'
CREATE EXTENSION pg_distcount;
CREATE ROLE bench_writer LOGIN;
CREATE ROLE bench_relay LOGIN;
GRANT USAGE ON SCHEMA distcount TO bench_writer, bench_relay;
GRANT EXECUTE ON FUNCTION distcount.counter_add(text, bigint) TO bench_writer;
GRANT SELECT ON distcount.outbox TO bench_relay;
GRANT SELECT, INSERT, UPDATE, DELETE
    ON distcount.outbox_consumer, distcount.outbox_pending, distcount.outbox_dead TO bench_relay;
SELECT distcount.counter_create('c', 16);
SQL
echo "SELECT distcount.counter_add('c');" >"$WORK/add.sql"
tps() { pgbench -n -c 8 -j 2 -T "$SECONDS_EACH" -f "$WORK/add.sql" "$@" 2>/dev/null |
        sed -nE 's/^tps = ([0-9.]+) .*/\1/p'; }

# The relay drains EVENTS events over EVENTS/10 aggregates in batches of 500, one worker.
drain_ms() { # drain_ms ROLE CONSUMER
    psql -X -q -tA -U "$1" -v consumer="$2" >/dev/null <<'SQL'
SELECT count(*) FROM distcount.outbox_claim(:'consumer', 1);  -- creates the consumer
SQL
    local start end
    start=$(date +%s%N)
    psql -X -q -tA -U "$1" -v consumer="$2" >/dev/null <<'SQL'
DO $$
DECLARE ids uuid[];
BEGIN
    LOOP
        SELECT array_agg(e.id) INTO ids FROM distcount.outbox_claim(current_setting('bench.consumer'), 500) e;
        EXIT WHEN ids IS NULL;
        PERFORM distcount.outbox_ack(current_setting('bench.consumer'), ids);
        COMMIT;
    END LOOP;
END $$;
SQL
    end=$(date +%s%N)
    echo $(((end - start) / 1000000))
}

: >"$WORK/results"
for round in $(seq 1 "$ROUNDS"); do
    echo "==> round $round of $ROUNDS"
    q -c "ALTER FUNCTION distcount.counter_add(text, bigint) SECURITY DEFINER"
    echo "definer $(tps -U bench_writer)" >>"$WORK/results"
    q -c "ALTER FUNCTION distcount.counter_add(text, bigint) SECURITY INVOKER"
    echo "invoker $(tps -U postgres)" >>"$WORK/results"
    q -c "ALTER FUNCTION distcount.counter_add(text, bigint) SECURITY DEFINER"
    q -c "DELETE FROM distcount.outbox" -c "SELECT distcount.outbox_drop_consumer(consumer) FROM distcount.outbox_consumer" >/dev/null
    q -c "SELECT count(distcount.outbox_emit('Order', (i % ($EVENTS / 10))::text, 'Created', '{}', 'table')) FROM generate_series(1, $EVENTS) i" >/dev/null
    # Both consumers see every event; alternate which drains first.
    if [ $((round % 2)) = 1 ]; then
        echo "relay_role $(PGOPTIONS='-c bench.consumer=r'"$round" drain_ms bench_relay "r$round")" >>"$WORK/results"
        echo "superuser $(PGOPTIONS='-c bench.consumer=s'"$round" drain_ms postgres "s$round")" >>"$WORK/results"
    else
        echo "superuser $(PGOPTIONS='-c bench.consumer=s'"$round" drain_ms postgres "s$round")" >>"$WORK/results"
        echo "relay_role $(PGOPTIONS='-c bench.consumer=r'"$round" drain_ms bench_relay "r$round")" >>"$WORK/results"
    fi
done
cat "$WORK/results"
definer="$(median_of "$WORK/results" definer)"
invoker="$(median_of "$WORK/results" invoker)"
relay="$(median_of "$WORK/results" relay_role)"
superuser="$(median_of "$WORK/results" superuser)"
echo
echo "counter_add, 8 clients, medians of $ROUNDS rounds of ${SECONDS_EACH}s:"
awk -v d="$definer" -v i="$invoker" 'BEGIN {printf "  SECURITY DEFINER as writer %.0f tps, SECURITY INVOKER as superuser %.0f tps: %.3fx\n", d, i, i / d}'
echo "relay drain of $EVENTS events (batches of 500, one worker), medians:"
awk -v r="$relay" -v s="$superuser" 'BEGIN {printf "  relay role %d ms, superuser %d ms: %.3fx\n", r, s, r / s}'
