#!/usr/bin/env bash
# Two faults that only show on a real server under real conditions:
#   1. A server started with RUST_BACKTRACE=1 in its environment (as a developer's shell or a
#      container image may have it): errors raised through the extension's Rust code, inside
#      SPI and outside it, show PostgreSQL's message and DETAIL only, never a Rust stack.
#   2. counter_drop racing counter_add under pgbench: rows that an add wrote after the drop
#      (orphans) are removed by the next counter_rollup(), and no live counter loses a
#      committed increment.
source "$(dirname "$0")/../tools/integration_lib.sh"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
CLUSTER="$ROOT/tests/tools/cluster.sh"
PG_CONFIG="${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}"
BINDIR="$("$PG_CONFIG" --bindir)"
NAME=errtest
WORK="$(mktemp -d)"
chmod 755 "$WORK"
cleanup() {
    [ -n "${DROPPER_PID:-}" ] && kill "$DROPPER_PID" 2>/dev/null
    "$CLUSTER" stop "$NAME" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
as_owner() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

"$CLUSTER" stop "$NAME" >/dev/null 2>&1 || true
"$CLUSTER" start "$NAME"
eval "$("$CLUSTER" env "$NAME")"
DATA="$(sql -d postgres -c 'SHOW data_directory')"
echo "==> restarting $NAME with RUST_BACKTRACE=1 in the server's environment"
as_owner env RUST_BACKTRACE=1 "$BINDIR/pg_ctl" -D "$DATA" -m fast -w restart >/dev/null
check "the server runs with RUST_BACKTRACE=1" "1" \
    "$(tr '\0' '\n' <"/proc/$(head -1 "$DATA/postmaster.pid")/environ" | sed -n 's/^RUST_BACKTRACE=//p')"

dropdb --if-exists errs >/dev/null 2>&1
sql -d postgres -c "DROP ROLE IF EXISTS errs_writer" >/dev/null
createdb errs
export PGDATABASE=errs
sql -c "CREATE EXTENSION pg_distcount"

# ---- 1. no Rust stack in any error ------------------------------------------------------------
sql >/dev/null <<'SQL'
CREATE ROLE errs_writer;
GRANT USAGE ON SCHEMA distcount TO errs_writer;
CREATE TABLE orders (id int PRIMARY KEY);
CREATE TRIGGER orders_outbox AFTER INSERT ON orders
    FOR EACH ROW EXECUTE FUNCTION distcount.outbox_trigger('Order', 'id', 'table');
CREATE TRIGGER orders_outbox_stmt AFTER INSERT ON orders REFERENCING NEW TABLE AS t
    FOR EACH STATEMENT EXECUTE FUNCTION distcount.outbox_statement_trigger('Order', 'id', 'table');
GRANT INSERT ON orders TO errs_writer;
CREATE TABLE likes (post int PRIMARY KEY, g distcount.gcounter NOT NULL DEFAULT '{}');
CREATE TABLE inbox (post int PRIMARY KEY, g distcount.gcounter NOT NULL DEFAULT '{}');
CREATE TRIGGER merge AFTER INSERT ON inbox FOR EACH ROW EXECUTE FUNCTION distcount.crdt_merge_into('public.likes');
SQL
errors="$WORK/errors"
: >"$errors"
run_failing() { # run_failing WHAT SQL: must fail; its whole report goes to $errors
    local out
    if out="$(psql -X -v VERBOSITY=verbose -v ON_ERROR_STOP=1 -c "$2" 2>&1)"; then
        check "$1 fails" "an error" "success"
    else
        printf '%s\n' "$out" >>"$errors"
        check "$1 fails with PostgreSQL's message" "1" "$(grep -c '^ERROR:' <<<"$out")"
    fi
}
# A permission error raised by PostgreSQL inside the outbox trigger's SPI insert (row form,
# then statement form), an error inside the merge trigger's SPI statement, errors the Rust
# code raises itself, and the node-copy refusal (its DETAIL is the extension's own).
run_failing "outbox row trigger without INSERT on the outbox" \
    "SET ROLE errs_writer; INSERT INTO orders VALUES (1)"
run_failing "outbox statement trigger without INSERT on the outbox" \
    "DROP TRIGGER orders_outbox ON orders; SET ROLE errs_writer; INSERT INTO orders VALUES (2)"
run_failing "merge into a table that refuses the row" \
    "ALTER TABLE likes ADD CHECK (post < 0); INSERT INTO inbox VALUES (1, '{\"a\": 1}')"
run_failing "bad cms bytes" "SELECT '\\x0102'::bytea::distcount.cms"
run_failing "bad counter text" "SELECT '{\"a\": -1}'::distcount.gcounter"
run_failing "a copy of a node" \
    "UPDATE distcount.node SET data_directory = '/elsewhere'; SELECT distcount.gcounter_inc(NULL)"
echo "--- the error reports (VERBOSITY verbose) ---"
cat "$errors"
check "no Rust stack frame or backtrace in any error report" "0" \
    "$(grep -ciE 'backtrace|rust_begin_unwind|::\{\{closure\}\}|at /root/|pgrx' "$errors" || true)"

# ---- 2. counter_drop racing counter_add ---------------------------------------------------------
sql >/dev/null <<'SQL'
SELECT distcount.counter_create('keep:' || i, 8) FROM generate_series(1, 4) i;
CREATE TABLE ledger (name text NOT NULL, d bigint NOT NULL);
SQL
cat >"$WORK/add.sql" <<'SQL'
\set k random(1, 4)
\set r random(1, 6)
BEGIN;
SELECT distcount.counter_add('keep:' || :k, 1);
INSERT INTO ledger VALUES ('keep:' || :k, 1);
SELECT distcount.counter_add('race:' || :r, 1);
COMMIT;
SQL
echo "==> 4 pgbench clients add to kept and raced counters while another session drops the raced ones"
(
    while :; do
        psql -X -q -tA -c "SELECT distcount.counter_drop(name) FROM distcount.counter WHERE name LIKE 'race:%'" \
            >/dev/null 2>&1 || true
        sleep 0.05
    done
) &
DROPPER_PID=$!
pgbench -n -c 4 -j 2 -T 8 -f "$WORK/add.sql" >"$WORK/pgbench.log" 2>&1 || true
kill "$DROPPER_PID" 2>/dev/null; wait "$DROPPER_PID" 2>/dev/null || true
DROPPER_PID=
grep -E "^number of (transactions actually processed|failed)" "$WORK/pgbench.log" || true
orphans_sql="SELECT (SELECT count(*) FROM distcount.counter_slot s WHERE NOT EXISTS (SELECT FROM distcount.counter c WHERE c.id = s.id))
                  + (SELECT count(*) FROM distcount.counter_delta d WHERE NOT EXISTS (SELECT FROM distcount.counter c WHERE c.id = d.id))"
echo "orphan rows before the roll-up: $(sql -c "$orphans_sql") (rows an add wrote after a concurrent drop)"
sql -c "SELECT distcount.counter_rollup()" >/dev/null
check "no orphan rows after counter_rollup()" "0" "$(sql -c "$orphans_sql")"
check "every committed increment of the kept counters is counted" \
    "$(sql -c "SELECT string_agg(name || '=' || n, ',' ORDER BY name) FROM (SELECT name, sum(d) n FROM ledger GROUP BY name) x")" \
    "$(sql -c "SELECT string_agg(name || '=' || distcount.counter_value(name), ',' ORDER BY name) FROM distcount.counter WHERE name LIKE 'keep:%'")"
finish
