#!/usr/bin/env bash
# Sharded counters on a Citus cluster (a coordinator and two workers, tests/tools/citus.sh),
# written and read from every node as an application role:
#   (a) before distcount.citus_setup() the counter functions refuse to run on a Citus node
#       (55000), and citus_setup() refuses to run on a worker; it distributes the three counter
#       tables by counter name, co-located, and a second call changes nothing;
#   (b) one value per counter wherever it is written or read: adds, reads, cached reads,
#       roll-ups, reshards and drops from the coordinator and both workers agree, with one
#       counter row per name in the cluster;
#   (c) triggers on distributed tables: a table distributed by the counter name and co-located
#       with distcount.counter counts its rows exactly from every node; a trigger whose counter
#       lives on another node fails at once with 0A000, and what it refused is not counted;
#   (d) the outbox: an outbox trigger on a distributed or reference table fails with 0A000
#       (at CREATE TRIGGER, or when it first fires on a table distributed after it was made);
#       outbox_emit on the coordinator in the transaction that writes them gives one event per
#       committed change, none on the workers;
#   (e) under load: pgbench clients on the coordinator and on both workers add to
#       CITUS_COUNTERS_NAMES counters (each transaction also writes a ledger row, in a table of
#       its own, and half of them insert into the triggered table), while a roll-up runs in
#       a loop and citus_move_shard_placement moves a counter shard between the workers; then
#       again while one worker is killed with kill -9 and restarted. Every committed increment is
#       counted exactly once: each counter's value, read on every node, equals its committed
#       ledger rows (and its rows in the triggered table) once the 2PC recovery of every node ran,
#       and the first phase, which must see no failed transaction, equals pgbench's own count.
# Where Citus cannot run on the PostgreSQL of PG_CONFIG, prints "SKIP: …" and passes. About 2
# minutes (CITUS_COUNTERS_SECONDS, default 20 s per load phase).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
source "$ROOT/tests/tools/integration_lib.sh"
CITUS="$ROOT/tests/tools/citus.sh"
CLUSTER="$ROOT/tests/tools/cluster.sh"
PGBENCH="$("$PG_CONFIG" --bindir)/pgbench"
LOAD_SECONDS="${CITUS_COUNTERS_SECONDS:-20}"
NAMES="${CITUS_COUNTERS_NAMES:-40}"
CLIENTS=3 # per node
NAME=cituscnt

# ---- Citus for this PostgreSQL ---------------------------------------------------------------
ensure_log="$(mktemp)"
set +e
"$CITUS" ensure 2>&1 | tee "$ensure_log"
ensure_rc=${PIPESTATUS[0]}
set -e
if [ "$ensure_rc" = 3 ]; then
    echo "SKIP: $(tail -1 "$ensure_log")"
    rm -f "$ensure_log"
    exit 0
fi
rm -f "$ensure_log"
[ "$ensure_rc" = 0 ] || { echo "FAILED: citus.sh ensure (exit $ensure_rc)"; exit 1; }
stamp "Citus ready"

# ---- the cluster -------------------------------------------------------------------------------
WORK="$(mktemp -d)"
chmod 755 "$WORK"
"$CITUS" destroy "$NAME" >/dev/null
trap 'kill $(jobs -p) 2>/dev/null || true; "$CITUS" stop "$NAME" >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
"$CITUS" start "$NAME"
eval "$("$CITUS" env "$NAME")"
# on NODE [psql options...]: psql on coord, w1 or w2 (as PGUSER, default postgres).
on() {
    local node="$1"
    shift
    (eval "$("$CITUS" env "$NAME" "$node")" && sql "$@")
}
# as_app NODE SQL: one statement as the application role.
as_app() { (eval "$("$CITUS" env "$NAME" "$1")" && PGUSER=app sql -c "$2"); }
# sqlstate NODE ROLE SQL: the SQLSTATE the statement fails with ("ok" if it does not).
sqlstate() {
    local out
    if out="$(eval "$("$CITUS" env "$NAME" "$1")" && PGUSER="$2" psql -X -q -tA -v ON_ERROR_STOP=1 -v VERBOSITY=sqlstate -c "$3" 2>&1)"; then
        echo ok
    else
        sed -nE 's/^ERROR: +([0-9A-Z]{5}).*/\1/p' <<<"$out" | head -1
    fi
}
# message NODE ROLE SQL: the error message, hint included.
message() {
    (eval "$("$CITUS" env "$NAME" "$1")" && PGUSER="$2" psql -X -q -tA -v ON_ERROR_STOP=1 -c "$3" 2>&1 || true)
}
stamp "three nodes up"

sql -c "CREATE EXTENSION pg_distcount"

# ---- (a) setup -----------------------------------------------------------------------------------
for node in coord w1; do
    check "counter_add on $node before citus_setup(): 55000" 55000 \
        "$(sqlstate "$node" postgres "SELECT distcount.counter_add('early')")"
done
check "the error names the way out" 1 \
    "$(message w2 postgres "SELECT distcount.counter_value('early')" | grep -c 'Call SELECT distcount.citus_setup() on the coordinator')"
check "citus_setup() on a worker: 55000" 55000 "$(sqlstate w1 postgres "SELECT distcount.citus_setup()")"
check "citus_setup(shard_count => 0): 22023" 22023 "$(sqlstate coord postgres "SELECT distcount.citus_setup(0)")"
setup="$(sql -c "SELECT distcount.citus_setup(16)")"
check "citus_setup()" "sharded counters distributed by name: 16 shards on 2 nodes" "$setup"
check "citus_setup() again changes nothing" "$setup" "$(sql -c "SELECT distcount.citus_setup(16)")"
check "the three tables distributed by name, co-located" "counter:name:1 counter_delta:name:1 counter_slot:name:1" \
    "$(sql -c "SELECT string_agg(format('%s:%s:%s', relname, col, g), ' ' ORDER BY relname)
                 FROM (SELECT relname, column_to_column_name(logicalrelid, partkey) AS col,
                              dense_rank() OVER (ORDER BY colocationid) AS g
                         FROM pg_dist_partition JOIN pg_class ON oid = logicalrelid
                        WHERE relnamespace = 'distcount'::regnamespace) t")"
check "counter shards on both workers" 2 \
    "$(sql -c "SELECT count(DISTINCT groupid) FROM pg_dist_shard JOIN pg_dist_placement USING (shardid)
                WHERE logicalrelid = 'distcount.counter'::regclass")"

# The application role: writes and reads counters, nothing else. Roles are propagated by Citus;
# grants on extension functions are given on every node.
sql -c "CREATE ROLE app LOGIN"
for node in coord w1 w2; do
    on "$node" <<'SQL'
SET citus.enable_ddl_propagation = off;
GRANT USAGE ON SCHEMA distcount TO app;
GRANT EXECUTE ON FUNCTION distcount.counter_add(text, bigint), distcount.counter_value(text),
    distcount.counter_value_cached(text, interval) TO app;
SQL
done
stamp "set up"

# ---- (b) one value wherever written or read --------------------------------------------------
as_app coord "SELECT distcount.counter_add('f', 3)" >/dev/null
as_app w1 "SELECT distcount.counter_add('f', 4)" >/dev/null
as_app w2 "SELECT distcount.counter_add('f', 5)" >/dev/null
for node in coord w1 w2; do
    check "counter_value('f') on $node" 12 "$(as_app "$node" "SELECT distcount.counter_value('f')")"
done
check "one row of counter 'f' in the cluster" 1 "$(sql -c "SELECT count(*) FROM distcount.counter WHERE name = 'f'")"
on w2 -c "SELECT distcount.counter_rollup('f')" >/dev/null
for node in coord w1 w2; do
    check "counter_value_cached('f') on $node after a roll-up on w2" 12 \
        "$(as_app "$node" "SELECT distcount.counter_value_cached('f', '1 hour')")"
done
check "slot rows of 'f' after the roll-up" "12:0" \
    "$(sql -c "SELECT base || ':' || (SELECT sum(value) FROM distcount.counter_slot WHERE name = 'f') FROM distcount.counter WHERE name = 'f'")"
on w1 -c "SELECT distcount.counter_reshard('f', 2)" >/dev/null
as_app w1 "SELECT distcount.counter_add('f', 1)" >/dev/null
check "counter_value('f') on w2 after a reshard on w1" 13 "$(as_app w2 "SELECT distcount.counter_value('f')")"
on w1 -c "SELECT distcount.counter_create('d', 4, 'deltas')" >/dev/null
as_app coord "SELECT distcount.counter_add('d', 7)" >/dev/null
as_app w2 "SELECT distcount.counter_add('d', -2)" >/dev/null
check "counter_rollup() on the coordinator folds every counter" 3 "$(sql -c "SELECT distcount.counter_rollup()")"
check "the counters view on the coordinator" "d:deltas:5 f:slots:13" \
    "$(sql -c "SELECT string_agg(name || ':' || mode || ':' || value, ' ' ORDER BY name) FROM distcount.counters")"
on w2 -c "SELECT distcount.counter_drop('d')" >/dev/null
for node in coord w1 w2; do
    check "a counter dropped on w2 is gone on $node" "" "$(as_app "$node" "SELECT distcount.counter_value('d')")"
done
check "counter_add(NULL) on a worker: 22004" 22004 "$(sqlstate w1 app "SELECT distcount.counter_add(NULL)")"
check "counter_value(NULL) on the coordinator: 22004" 22004 "$(sqlstate coord app "SELECT distcount.counter_value(NULL)")"
stamp "one value per counter"

# ---- (c) triggers on distributed tables --------------------------------------------------------
# likes is distributed by the post, co-located with the counters: the trigger's counter (named
# after the post) is on the node of the row. views is distributed by a bigint: its trigger's
# counter is on one node, its rows on both.
sql <<'SQL'
SET citus.enable_unsafe_triggers = on;
CREATE TABLE likes (post text NOT NULL, who integer);
SELECT create_distributed_table('likes', 'post', colocate_with => 'distcount.counter') \g /dev/null
CREATE FUNCTION count_like() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM distcount.counter_add(NEW.post);
    RETURN NULL;
END $$;
CREATE TRIGGER count_like AFTER INSERT ON likes FOR EACH ROW EXECUTE FUNCTION count_like();
CREATE TABLE views (id bigint, page text);
SELECT create_distributed_table('views', 'id') \g /dev/null
CREATE FUNCTION count_view() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM distcount.counter_add('views:all');
    RETURN NULL;
END $$;
CREATE TRIGGER count_view AFTER INSERT ON views FOR EACH ROW EXECUTE FUNCTION count_view();
-- The ledger of the load: one row per committed increment, written in the increment's
-- transaction. Not co-located with the counters: Citus refuses a transaction that reaches one
-- group of co-located shards as two users (the application role's INSERT, then counter_add,
-- which runs as the extension owner), README, Citus.
CREATE TABLE ledger (name text NOT NULL, node text NOT NULL);
SELECT create_distributed_table('ledger', 'name', colocate_with => 'none') \g /dev/null
GRANT INSERT, SELECT ON likes, views, ledger TO app;
SQL
for node in coord w1 w2; do
    as_app "$node" "INSERT INTO likes SELECT 'post-' || (n % 7), n FROM generate_series(1, 30) n" >/dev/null
done
check "likes counted by the co-located trigger, from every node" "0 of 7" \
    "$(sql -c "CREATE TEMP TABLE lc AS SELECT post, count(*) AS n FROM likes GROUP BY post;
               SELECT count(*) FILTER (WHERE distcount.counter_value(post) IS DISTINCT FROM n) || ' of ' || count(*) FROM lc")"
refused=0
accepted=0
for id in $(seq 1 16); do
    state="$(sqlstate coord app "INSERT INTO views VALUES ($id, 'p')")"
    case "$state" in
    ok) accepted=$((accepted + 1)) ;;
    0A000) refused=$((refused + 1)) ;;
    *) check "insert into views ($id): ok or 0A000" "ok or 0A000" "$state" ;;
    esac
done
check "inserts whose trigger's counter is on the other node are refused (0A000), others counted" \
    "refused>0 accepted>0" "$([ "$refused" -gt 0 ] && echo 'refused>0') $([ "$accepted" -gt 0 ] && echo 'accepted>0')"
check "views:all counts exactly the accepted rows" "$accepted:$accepted" \
    "$(sql -c "SELECT coalesce(distcount.counter_value('views:all'), 0) || ':' || (SELECT count(*) FROM views)")"
for id in $(seq 1 16); do
    if [ "$(sqlstate coord app "INSERT INTO views VALUES ($id, 'p')")" = 0A000 ]; then
        check "the refusal says how to do it" 1 \
            "$(message coord app "INSERT INTO views VALUES ($id, 'p')" | grep -c "HINT:  Name the counter after the row's distribution value")"
        break
    fi
done
stamp "triggers"

# ---- (d) the outbox ------------------------------------------------------------------------------
# An outbox trigger on a distributed or reference table is refused (0A000), at CREATE TRIGGER
# and, for a table distributed after its trigger was made, when it fires; events written with
# outbox_emit on the coordinator in the transaction that writes such tables are one per change.
sql <<'SQL'
CREATE TABLE orders (id bigint PRIMARY KEY, total numeric);
SELECT create_distributed_table('orders', 'id') \g /dev/null
CREATE TABLE countries (code text PRIMARY KEY, name text);
SELECT create_reference_table('countries') \g /dev/null
CREATE TABLE later (id bigint PRIMARY KEY);
CREATE TRIGGER later_outbox AFTER INSERT ON later FOR EACH ROW EXECUTE FUNCTION distcount.outbox_trigger('Later', 'id');
SET citus.enable_unsafe_triggers = on;
SELECT create_distributed_table('later', 'id') \g /dev/null
SQL
for t in "orders|Order|id" "countries|Country|code"; do
    IFS='|' read -r table type key <<<"$t"
    check "outbox trigger on $table (a Citus table): 0A000" 0A000 \
        "$(sqlstate coord postgres "SET citus.enable_unsafe_triggers = on; CREATE TRIGGER o AFTER INSERT ON $table FOR EACH ROW EXECUTE FUNCTION distcount.outbox_trigger('$type', '$key')")"
done
check "a table distributed after its outbox trigger: the write fails with 0A000" 0A000 \
    "$(sqlstate coord postgres "INSERT INTO later VALUES (1)")"
check "the refusal names the ways that work" 1 \
    "$(message coord postgres "INSERT INTO later VALUES (2)" | grep -c 'HINT:  Call distcount.outbox_emit')"
sql <<'SQL'
BEGIN;
INSERT INTO orders VALUES (1, 10), (2, 20);
SELECT distcount.outbox_emit('Order', id::text, 'OrderCreated', jsonb_build_object('id', id)) FROM (VALUES (1), (2)) v(id) \g /dev/null
INSERT INTO countries VALUES ('pt', 'Portugal');
SELECT distcount.outbox_emit('Country', 'pt', 'CountryCreated', '{"code": "pt"}') \g /dev/null
COMMIT;
BEGIN;
INSERT INTO orders VALUES (3, 30);
SELECT distcount.outbox_emit('Order', '3', 'OrderCreated', '{"id": 3}') \g /dev/null
ROLLBACK;
SQL
check "outbox_emit on the coordinator: one event per committed change, one id each" "Country:pt:1 Order:1:1 Order:2:1" \
    "$(sql -c "SELECT string_agg(format('%s:%s:%s', aggregatetype, aggregateid, n), ' ' ORDER BY aggregatetype, aggregateid)
                 FROM (SELECT aggregatetype, aggregateid, count(DISTINCT id) AS n FROM distcount.outbox GROUP BY 1, 2) e")"
for node in w1 w2; do
    check "no outbox event on $node" 0 "$(on "$node" -c "SELECT count(*) FROM distcount.outbox")"
done
stamp "outbox"

# ---- (e) load ----------------------------------------------------------------------------------
cat >"$WORK/ledger.sql" <<SQL
\\set k random(1, $NAMES)
BEGIN;
INSERT INTO ledger VALUES ('load-:k', ':node');
SELECT distcount.counter_add('load-:k');
COMMIT;
SQL
cat >"$WORK/like.sql" <<SQL
\\set k random(1, $NAMES)
INSERT INTO likes VALUES ('like-:k', :client_id);
SQL
# load TAG SECONDS: pgbench on the three nodes at once, in the background; logs in WORK.
load() {
    local node
    for node in coord w1 w2; do
        (eval "$("$CITUS" env "$NAME" "$node")" &&
            PGUSER=app "$PGBENCH" -n -c "$CLIENTS" -j 1 -T "$2" -D node="$node" \
                -f "$WORK/ledger.sql@1" -f "$WORK/like.sql@1" >"$WORK/$1-$node.log" 2>&1) &
    done
}
processed() { # processed TAG: transactions pgbench counted on all nodes
    cat "$WORK/$1"-*.log | sed -nE 's/^number of transactions actually processed: ([0-9]+).*/\1/p' | paste -sd+ | bc
}
failed() { # failed TAG: failed transactions and aborted clients on all nodes
    cat "$WORK/$1"-*.log | grep -cE 'aborted|^number of failed transactions: [1-9]|FATAL|error' || true
}
errors() { # errors TAG: the first distinct errors pgbench reported
    cat "$WORK/$1"-*.log | sed -nE 's/.*(ERROR|FATAL|error): +//p' | sed -E 's/client [0-9]+ //' | sort | uniq -c | sort -rn | head -3
}
rollups() { # a roll-up every 0.2 s until the file STOP appears
    while [ -d "$WORK" ] && [ ! -e "$WORK/stop-rollups" ]; do
        sql -c "SELECT distcount.counter_rollup()" >/dev/null 2>&1 || true
        sleep 0.2
    done
}
# verify WHAT: every counter's value, read on every node, equals its committed rows.
verify() {
    local node
    for node in coord w1 w2; do
        # "counters that differ / counters": the second part only shows how many were written.
        result="$(on "$node" -c "CREATE TEMP TABLE lc AS SELECT name, count(*) AS n FROM ledger GROUP BY name;
                SELECT count(*) FILTER (WHERE distcount.counter_value(name) IS DISTINCT FROM n) || ' of ' || count(*) FROM lc")"
        check "$1: load counters on $node equal their ledger rows ($result differ)" "0 of" "${result% *}"
        result="$(on "$node" -c "CREATE TEMP TABLE lc AS SELECT post, count(*) AS n FROM likes WHERE post LIKE 'like-%' GROUP BY post;
                SELECT count(*) FILTER (WHERE distcount.counter_value(post) IS DISTINCT FROM n) || ' of ' || count(*) FROM lc")"
        check "$1: like counters on $node equal the rows of likes ($result differ)" "0 of" "${result% *}"
    done
    check "$1: one counter row per name" 0 \
        "$(sql -c "SELECT count(*) FROM (SELECT name FROM distcount.counter GROUP BY name HAVING count(*) > 1) d")"
}

# Phase 1: a shard move during the load.
rollups &
rollup_pid=$!
load move "$LOAD_SECONDS"
sleep $((LOAD_SECONDS / 4))
read -r shard from to < <(sql -F' ' -c "
    SELECT s.shardid, n.nodeport, (SELECT o.nodeport FROM pg_dist_node o WHERE o.groupid > 0 AND o.groupid <> p.groupid LIMIT 1)
      FROM pg_dist_shard s JOIN pg_dist_placement p USING (shardid) JOIN pg_dist_node n USING (groupid)
     WHERE s.logicalrelid = 'distcount.counter'::regclass
       AND s.shardid = get_shard_id_for_distribution_column('distcount.counter', 'load-1')")
host_of() { sql -c "SELECT nodename FROM pg_dist_node WHERE nodeport = $1"; }
stamp "moving shard $shard (counter load-1 and its co-located shards) from port $from to $to during the load"
# The move can wait forever on the load: it holds the shard's metadata lock on one worker while it
# waits for it on the other, behind a multi-node transaction of the load that waits for the first
# worker (seen once on PostgreSQL 15, Citus 13.2.2; Citus's deadlock detection did not break it).
# A move that does not finish in 45 s (CITUS_MOVE_TIMEOUT) is cancelled, which releases its locks
# and lets the load go on; its leftovers are cleaned up and it runs again after the load.
move="SELECT citus_move_shard_placement($shard, '$(host_of "$from")', $from, '$(host_of "$to")', $to, shard_transfer_mode => 'force_logical')"
if PGOPTIONS="${PGOPTIONS:-} -c statement_timeout=${CITUS_MOVE_TIMEOUT:-45s}" sql -c "$move" >/dev/null 2>"$WORK/move.err"; then
    echo "    moved during the load"
else
    echo "    the move did not finish during the load ($(head -1 "$WORK/move.err")): moving again after it"
    while [ "$(jobs -rp | grep -vc "^$rollup_pid\$" || true)" -gt 0 ]; do sleep 1; done
    sql -c "CALL citus_cleanup_orphaned_resources()" >/dev/null
    sql -c "$move" >/dev/null
fi
check "shard $shard moved" "$to" "$(sql -c "SELECT n.nodeport FROM pg_dist_placement p JOIN pg_dist_node n USING (groupid) WHERE p.shardid = $shard")"
sleep 1
while [ "$(jobs -rp | grep -vc "^$rollup_pid\$" || true)" -gt 0 ]; do sleep 1; done
stamp "phase 1 done: $(processed move) transactions"
# The one failure a move may cause: a trigger's counter_add at the moment the shards switch
# nodes (the worker's metadata already names the new node; the transaction rolls back).
other="$(cat "$WORK"/move-*.log | grep -iE 'error|fatal|^number of failed transactions: [1-9]' |
    grep -v 'Run was aborted' | grep -vc 'is on another node than this trigger' || true)"
check "phase 1: no failed transaction but a trigger's during the shard switch" 0 "$other"
[ "$(failed move)" = 0 ] || errors move
ledger_rows="$(sql -c "SELECT count(*) FROM ledger") + $(sql -c "SELECT count(*) FROM likes WHERE post LIKE 'like-%'")"
check "phase 1: pgbench's transactions = ledger rows + rows of likes" "$(processed move)" "$(bc <<<"$ledger_rows")"
check "phase 1: the load ran (over 100 transactions)" yes "$([ "$(processed move)" -gt 100 ] && echo yes || echo no)"
verify "after the shard move"

# Phase 2: kill -9 of one worker during the load, then its restart and more load.
load kill "$LOAD_SECONDS"
sleep $((LOAD_SECONDS / 3))
stamp "kill -9 of ${NAME}_w2"
kill_postmaster "$CLUSTERS/${NAME}_w2/data"
sleep 2
"$CLUSTER" start "${NAME}_w2" >/dev/null
stamp "${NAME}_w2 restarted"
while [ "$(jobs -rp | grep -vc "^$rollup_pid\$" || true)" -gt 0 ]; do sleep 1; done
stamp "phase 2 done: $(processed kill) transactions before the clients stopped"
errors kill
check "phase 2: the kill made clients fail (the test saw the crash)" yes "$([ "$(failed kill)" -gt 0 ] && echo yes || echo no)"
load after 5
while [ "$(jobs -rp | grep -vc "^$rollup_pid\$" || true)" -gt 0 ]; do sleep 1; done
check "after the restart: writes go on from every node" 0 "$(failed after)"
[ "$(failed after)" = 0 ] || errors after
touch "$WORK/stop-rollups"
wait "$rollup_pid"
# A transaction over two nodes that was prepared on the killed worker is finished by the node that
# started it (its 2PC recovery runs every citus.recover_2pc_interval, 1 minute): until then its
# ledger row and its increment may disagree. Run the recovery on every node now.
for node in coord w1 w2; do on "$node" -c "SELECT recover_prepared_transactions()" >/dev/null; done
check "no prepared transaction left on any node" "0 0 0" \
    "$(for node in coord w1 w2; do on "$node" -c "SELECT count(*) FROM pg_prepared_xacts"; done | paste -sd' ')"
verify "after kill -9 and restart"
stamp "$(sql -c "SELECT count(*) FROM ledger") ledger rows, $(sql -c "SELECT count(*) FROM likes") likes"
stamp "done"
finish
