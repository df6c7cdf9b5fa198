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
#   (d) the outbox: row and statement outbox triggers on a distributed table (co-located with the counters)
#       and a reference table, written as the application role from every node: one event per
#       committed change with one id (a reference table's replicas write none but the one in the
#       lowest node group), on the node of the row's shard; the trigger's mode argument and a
#       SET LOCAL propagated by Citus choose the mode on the node that writes; every event is in
#       the decoded WAL (test_decoding) of that node;
#   (e) under load: pgbench clients on the coordinator and on both workers add to
#       CITUS_COUNTERS_NAMES counters (each transaction also writes a ledger row, in a table of
#       its own, and a third of them insert into the triggered table), while a roll-up runs in
#       a loop and citus_move_shard_placement moves a counter shard between the workers; then
#       again while one worker is killed with kill -9 and restarted. Every committed increment is
#       counted exactly once: each counter's value, read on every node, equals its committed
#       ledger rows (and its rows in the triggered table) once the 2PC recovery of every node ran,
#       and the first phase, which must see no failed transaction, equals pgbench's own count.
#       A third of the load's transactions insert an order and a tag: after both phases each
#       committed one is exactly one event, in the decoded WAL of the node that wrote it, and
#       the relay run on the coordinator (outbox_cluster_claim / _ack, as a relay role) delivers
#       every event of every node once.
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
# processed TAG: the transactions pgbench counted in the logs TAG-*.log (all nodes).
processed() {
    cat "$WORK/$1"-*.log | sed -nE 's/^number of transactions actually processed: ([0-9]+).*/\1/p' | paste -sd+ | bc
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
    distcount.counter_value_cached(text, interval), distcount.counter_node(text) TO app;
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
# Direct writes: on the node holding the counter's shard, counter_add writes the shard tables
# itself (counter_add_direct), its shard's metadata lock taken as Citus's router takes it, and the
# transaction marked for two-phase commit; elsewhere, or where that is not safe, it says no.
f_home=w1
f_away=w2
[ "$(on w1 -c "SELECT EXISTS (SELECT FROM pg_dist_placement p WHERE p.shardid = get_shard_id_for_distribution_column('distcount.counter', 'f') AND p.groupid = (SELECT groupid FROM pg_dist_local_group))")" = t ] ||
    { f_home=w2; f_away=w1; }
check "counter_add_direct('f') on its node ($f_home) writes" t "$(on "$f_home" -c "SELECT distcount.counter_add_direct('f', 2, 0)")"
check "counter_add_direct('f') on the other worker ($f_away) does not" f "$(on "$f_away" -c "SELECT distcount.counter_add_direct('f', 2, 0)")"
check "counter_add_direct('f') on the coordinator does not" f "$(sql -c "SELECT distcount.counter_add_direct('f', 2, 0)")"
check "counter_add_direct of a counter that does not exist, on either worker: no" "f f" \
    "$(on w1 -c "SELECT distcount.counter_add_direct('no-such', 1, 0)") $(on w2 -c "SELECT distcount.counter_add_direct('no-such', 1, 0)")"
check "counter_add_direct under REPEATABLE READ: no (the placement must be read after the lock)" f \
    "$(on "$f_home" -c "BEGIN ISOLATION LEVEL REPEATABLE READ" -c "SELECT distcount.counter_add_direct('f', 2, 0)" -c "COMMIT")"
check "counter_add_direct with Citus's local execution off: no" f \
    "$(on "$f_home" -c "SET citus.enable_local_execution = off" -c "SELECT distcount.counter_add_direct('f', 2, 0)")"
check "counter_add_direct is not the application's to call: 42501" 42501 \
    "$(sqlstate "$f_home" app "SELECT distcount.counter_add_direct('f', 2, 0)")"
# The lock a direct write holds is the one a shard move takes (exclusively, through
# lock_shard_metadata, on every node) before it switches the placements: while a direct write's
# transaction is open, that lock is not granted.
(on "$f_home" -c "BEGIN" -c "SELECT distcount.counter_add_direct('f', 0, 0)" \
    -c "SELECT pg_sleep(6) /* direct-lock-holder */" -c "ROLLBACK" >/dev/null) &
holder=$!
for _ in $(seq 1 50); do
    [ "$(on "$f_home" -c "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%/* direct-lock-holder */' AND state = 'active' AND pid <> pg_backend_pid()")" = 1 ] && break
    sleep 0.2
done
check "a direct write holds the metadata lock a shard move takes: 55P03 for the move's lock" 55P03 \
    "$(sqlstate "$f_home" postgres "SET lock_timeout = '500ms'; SELECT lock_shard_metadata(7, ARRAY[get_shard_id_for_distribution_column('distcount.counter', 'f')])")"
check "... and for the co-located slot shard's" 55P03 \
    "$(sqlstate "$f_home" postgres "SET lock_timeout = '500ms'; SELECT lock_shard_metadata(7, ARRAY[get_shard_id_for_distribution_column('distcount.counter_slot', 'f')])")"
wait "$holder"
check "... and granted once it ends" ok \
    "$(sqlstate "$f_home" postgres "SET lock_timeout = '500ms'; SELECT lock_shard_metadata(7, ARRAY[get_shard_id_for_distribution_column('distcount.counter', 'f')])")"
# counter_node() names f's node, for an application that connects there, from any node.
f_home_port="$(eval "$("$CITUS" env "$NAME" "$f_home")" && echo "$PGPORT")"
for node in coord w1 w2; do
    check "counter_node('f') as the application on $node: $f_home's port" "$f_home_port" \
        "$(as_app "$node" "SELECT nodeport FROM distcount.counter_node('f')")"
done
check "counter_node(NULL): 22004" 22004 "$(sqlstate w1 app "SELECT distcount.counter_node(NULL)")"
as_app "$f_home" "SELECT distcount.counter_add('f', 1)" >/dev/null
check "counter_value('f') after one direct write and a counter_add on its node" 16 "$(as_app coord "SELECT distcount.counter_value('f')")"
check "no 'no-such' counter was made" "" "$(sql -c "SELECT distcount.counter_value('no-such')")"
# A transaction on f's node that adds to 'f' there and writes a row on the other worker commits
# with two-phase commit (Citus logs the PREPARE it sends), as with Citus's own local writes,
# whichever comes first. As the application role: where the mark is made at pre-commit (Citus
# built for 16 and later hides the switch), it is made as counter_add's owner.
sql -c "CREATE TABLE tpc (k integer PRIMARY KEY)" -c "SELECT create_distributed_table('tpc', 'k')" -c "GRANT INSERT, SELECT ON tpc TO app" >/dev/null
k_away="$(on "$f_away" -c "SELECT k FROM generate_series(1, 1000) AS k WHERE EXISTS (SELECT FROM pg_dist_placement p WHERE p.shardid = get_shard_id_for_distribution_column('tpc', k) AND p.groupid = (SELECT groupid FROM pg_dist_local_group)) ORDER BY k LIMIT 2")"
k_first="$(head -1 <<<"$k_away")"
k_second="$(tail -1 <<<"$k_away")"
tpc_add_first="$(on "$f_home" -v ON_ERROR_STOP=1 -c "SET citus.log_remote_commands = on" -c "SET client_min_messages = log" \
    -c "SET ROLE app" -c "BEGIN" -c "SELECT distcount.counter_add('f', 1)" -c "INSERT INTO tpc VALUES ($k_first)" -c "COMMIT" 2>&1)"
tpc_row_first="$(on "$f_home" -v ON_ERROR_STOP=1 -c "SET citus.log_remote_commands = on" -c "SET client_min_messages = log" \
    -c "SET ROLE app" -c "BEGIN" -c "INSERT INTO tpc VALUES ($k_second)" -c "SELECT distcount.counter_add('f', 1)" -c "COMMIT" 2>&1)"
check "a direct write, then a row on the other worker: two-phase commit" 1 "$(grep -c "PREPARE TRANSACTION" <<<"$tpc_add_first")"
check "a row on the other worker, then a direct write: two-phase commit" 1 "$(grep -c "PREPARE TRANSACTION" <<<"$tpc_row_first")"
check "all committed" "18:2" "$(sql -c "SELECT distcount.counter_value('f') || ':' || (SELECT count(*) FROM tpc)")"
# A read is one snapshot: while writers add to 'mono' on w2 and roll-ups fold it on w1, the
# value read over and over on the coordinator (each statement a new snapshot on the shard's
# worker) never goes down. A read of the base and of the slots in two statements did, when a
# roll-up committed between them (CI, PostgreSQL 15: a counter one roll-up short of its rows).
as_app w2 "SELECT distcount.counter_add('mono')" >/dev/null
echo "SELECT distcount.counter_add('mono');" >"$WORK/mono_add.sql"
echo "SELECT distcount.counter_rollup('mono');" >"$WORK/mono_rollup.sql"
(eval "$("$CITUS" env "$NAME" w2)" && PGUSER=app "$PGBENCH" -n -c 2 -T 6 -f "$WORK/mono_add.sql" >"$WORK/mono_add-w2.log" 2>&1) &
mono_add=$!
(eval "$("$CITUS" env "$NAME" w1)" && "$PGBENCH" -n -c 1 -T 6 -f "$WORK/mono_rollup.sql" >"$WORK/mono_rollup-w1.log" 2>&1) &
mono_rollup=$!
mono="$(PGUSER=app sql -c "
    CREATE TEMP TABLE reads (i serial, v bigint);
    DO \$\$ BEGIN
        PERFORM pg_sleep(0.5);
        FOR i IN 1..2000 LOOP
            INSERT INTO reads (v) VALUES (distcount.counter_value('mono'));
        END LOOP;
    END \$\$;
    SELECT count(*) FILTER (WHERE v < prev) || ' of ' || count(*)
      FROM (SELECT v, lag(v) OVER (ORDER BY i) AS prev FROM reads) r")"
wait "$mono_add" "$mono_rollup"
check "counter_value on the coordinator never goes down under adds and roll-ups ($mono reads went down)" "0 of" "${mono% *}"
check "the roll-ups ran while it read" yes "$([ "$(processed mono_rollup)" -gt 100 ] && echo yes || echo no)"
check "counter_value('mono') equals its committed adds" "$(($(processed mono_add) + 1))" \
    "$(as_app coord "SELECT distcount.counter_value('mono')")"
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
# Outbox triggers on a distributed table (orders, co-located with the counters, so the load's
# shard move carries some of its rows) and a reference table (tags, a replica on every node):
# one event per committed change, in the outbox of one node (the shard's, or for a reference
# table the placement in the lowest node group); the trigger's mode argument and a propagated
# SET LOCAL choose the mode on the node that writes. A slot on every node decodes its WAL.
for node in coord w1 w2; do
    on "$node" -c "SELECT 1 FROM pg_create_logical_replication_slot('outbox_wal', 'test_decoding')" >/dev/null
done
sql <<'SQL'
SET citus.enable_unsafe_triggers = on;
CREATE TABLE orders (id text NOT NULL, total numeric);
SELECT create_distributed_table('orders', 'id', colocate_with => 'distcount.counter') \g /dev/null
CREATE TRIGGER orders_outbox AFTER INSERT OR UPDATE OR DELETE ON orders
    FOR EACH ROW EXECUTE FUNCTION distcount.outbox_trigger('Order', 'id');
CREATE TABLE tags (id text NOT NULL, label text);
SELECT create_reference_table('tags') \g /dev/null
CREATE TRIGGER tags_outbox AFTER INSERT OR UPDATE OR DELETE ON tags
    FOR EACH ROW EXECUTE FUNCTION distcount.outbox_trigger('Tag', 'id');
CREATE TABLE notes (id text NOT NULL);
SELECT create_distributed_table('notes', 'id', colocate_with => 'distcount.counter') \g /dev/null
CREATE TRIGGER notes_outbox AFTER INSERT ON notes
    FOR EACH ROW EXECUTE FUNCTION distcount.outbox_trigger('Note', 'id', 'message');
-- Distributed after its trigger was made: the shards get the trigger.
CREATE TABLE later (id bigint NOT NULL);
CREATE TRIGGER later_outbox AFTER INSERT ON later FOR EACH ROW EXECUTE FUNCTION distcount.outbox_trigger('Later', 'id');
SELECT create_distributed_table('later', 'id') \g /dev/null
-- The statement form (bulk writes): one pass per shard statement, a reference table's once.
CREATE TABLE bulk (id text NOT NULL, total numeric);
SELECT create_distributed_table('bulk', 'id', colocate_with => 'distcount.counter') \g /dev/null
CREATE TRIGGER bulk_outbox AFTER INSERT ON bulk REFERENCING NEW TABLE AS t
    FOR EACH STATEMENT EXECUTE FUNCTION distcount.outbox_statement_trigger('Bulk', 'id');
CREATE TABLE bulk_tags (id text NOT NULL);
SELECT create_reference_table('bulk_tags') \g /dev/null
CREATE TRIGGER bulk_tags_outbox AFTER INSERT ON bulk_tags REFERENCING NEW TABLE AS t
    FOR EACH STATEMENT EXECUTE FUNCTION distcount.outbox_statement_trigger('BulkTag', 'id');
GRANT INSERT, SELECT, UPDATE, DELETE ON orders, tags, notes, later, bulk, bulk_tags TO app;
CREATE ROLE relay LOGIN;
SQL
# Writers and the relay get the README's grants on every node (the outbox is each node's own).
for node in coord w1 w2; do
    on "$node" <<'SQL'
SET citus.enable_ddl_propagation = off;
GRANT INSERT (id, aggregatetype, aggregateid, type, payload, headers, tracingspancontext)
    ON distcount.outbox TO app;
GRANT USAGE ON SEQUENCE distcount.outbox_seq TO app;
GRANT USAGE ON SCHEMA distcount TO relay;
GRANT SELECT ON distcount.outbox TO relay;
GRANT SELECT, INSERT, UPDATE, DELETE
    ON distcount.outbox_consumer, distcount.outbox_pending, distcount.outbox_dead TO relay;
SQL
done
for node in coord w1 w2; do
    as_app "$node" "INSERT INTO orders SELECT 'o-$node-' || n, n FROM generate_series(1, 10) n" >/dev/null
    as_app "$node" "INSERT INTO tags SELECT 't-$node-' || n, 'x' FROM generate_series(1, 3) n" >/dev/null
    as_app "$node" "INSERT INTO notes VALUES ('n-$node')" >/dev/null
done
as_app w1 "UPDATE orders SET total = 0 WHERE id = 'o-coord-1'" >/dev/null
as_app w2 "DELETE FROM tags WHERE id = 't-w1-1'" >/dev/null
as_app coord "INSERT INTO later VALUES (1), (2), (3)" >/dev/null
as_app coord "INSERT INTO bulk SELECT 'b-coord-' || n, n FROM generate_series(1, 20) n" >/dev/null
as_app w1 "INSERT INTO bulk SELECT 'b-w1-' || n, n FROM generate_series(1, 12) n" >/dev/null
as_app w2 "INSERT INTO bulk_tags SELECT 'bt-w2-' || n FROM generate_series(1, 5) n" >/dev/null
as_app coord "INSERT INTO bulk_tags VALUES ('bt-coord-1'), ('bt-coord-2')" >/dev/null
# A session's mode reaches the workers as SET LOCAL with citus.propagate_set_commands = 'local'
# (statements sent one by one: Citus propagates a SET LOCAL as the text of its whole query string).
(eval "$("$CITUS" env "$NAME" coord)" && PGUSER=app sql) >/dev/null <<'SQL'
BEGIN;
INSERT INTO orders VALUES ('o-rolled-back', 1);
INSERT INTO tags VALUES ('t-rolled-back');
ROLLBACK;
SET citus.propagate_set_commands = 'local';
BEGIN;
SET LOCAL pg_distcount.outbox_mode = 'message';
INSERT INTO orders VALUES ('o-message', 1);
COMMIT;
SQL

# collect_events: every node's outbox rows, with the node's port, in the coordinator's table seen.
collect_events() {
    sql -c "DROP TABLE IF EXISTS seen; CREATE TABLE seen (node text, port integer, aggregatetype text, aggregateid text, type text, id uuid)"
    local node
    for node in coord w1 w2; do
        on "$node" -c "COPY (SELECT '$node', current_setting('port')::integer, aggregatetype, aggregateid, type, id
                               FROM distcount.outbox) TO STDOUT" | sql -c "COPY seen FROM STDIN"
    done
}
# collect_wal: every node's decoded outbox events (rows and messages), in the table decoded.
collect_wal() {
    sql -c "DROP TABLE IF EXISTS decoded; CREATE TABLE decoded (node text, form text, id uuid, aggregateid text)"
    local node
    for node in coord w1 w2; do
        on "$node" -c "COPY (
            SELECT '$node', 'row', (regexp_match(data, 'id\[uuid\]:''([0-9a-f-]+)'''))[1]::uuid,
                   (regexp_match(data, 'aggregateid\[character varying\]:''([^'']*)'''))[1]
              FROM pg_logical_slot_peek_changes('outbox_wal', NULL, NULL)
             WHERE data LIKE 'table distcount.outbox: INSERT:%'
            UNION ALL
            SELECT '$node', 'message', (b->>'id')::uuid, b->>'aggregateid'
              FROM pg_logical_slot_peek_changes('outbox_wal', NULL, NULL) AS c,
                   LATERAL regexp_match(c.data, '^message: transactional: 1 prefix: distcount\.outbox, sz: \d+ content:(.*)$') AS m,
                   LATERAL (SELECT m[1]::jsonb AS b) AS body
             WHERE m IS NOT NULL) TO STDOUT" | sql -c "COPY decoded FROM STDIN"
    done
}
collect_events
check "one event per committed change of orders, tags, later, bulk and bulk_tags, one id each" \
    "Bulk:32:32 BulkTag:7:7 Later:3:3 Order:31:31 Tag:10:10" \
    "$(sql -c "SELECT string_agg(format('%s:%s:%s', aggregatetype, n, ids), ' ' ORDER BY aggregatetype)
                 FROM (SELECT aggregatetype, count(*) AS n, count(DISTINCT id) AS ids FROM seen GROUP BY 1) e")"
check "each insert, update and delete of orders and tags is one event" 0 \
    "$(sql -c "SELECT count(*) FROM (SELECT aggregateid, type FROM seen GROUP BY 1, 2 HAVING count(*) > 1) d")"
check "order and bulk events on both workers, none on the coordinator" "Bulk:w1 w2 Order:w1 w2" \
    "$(sql -c "SELECT string_agg(aggregatetype || ':' || nodes, ' ' ORDER BY aggregatetype)
                 FROM (SELECT aggregatetype, string_agg(DISTINCT node, ' ' ORDER BY node) AS nodes FROM seen
                        WHERE aggregatetype IN ('Order', 'Bulk') GROUP BY 1) e")"
check "each order and bulk event on the node of its row's shard" 0 \
    "$(sql -c "SELECT count(*) FROM seen s WHERE aggregatetype IN ('Order', 'Bulk')
                 AND s.port IS DISTINCT FROM (SELECT n.nodeport FROM pg_dist_placement p JOIN pg_dist_node n USING (groupid)
                       WHERE p.shardid = get_shard_id_for_distribution_column(
                                 CASE s.aggregatetype WHEN 'Order' THEN 'orders' ELSE 'bulk' END, s.aggregateid))")"
check "the reference tables' events (row and statement triggers) all on one node" 1 \
    "$(sql -c "SELECT count(DISTINCT node) FROM seen WHERE aggregatetype IN ('Tag', 'BulkTag')")"
check "nothing of the rolled-back transaction" 0 "$(sql -c "SELECT count(*) FROM seen WHERE aggregateid LIKE '%rolled-back'")"
collect_wal
check "the trigger's mode argument (message) reaches the workers: one message per note, no row" "3:0" \
    "$(sql -c "SELECT count(*) FILTER (WHERE form = 'message') || ':' || (SELECT count(*) FROM seen WHERE aggregatetype = 'Note') FROM decoded WHERE aggregateid LIKE 'n-%'")"
check "SET LOCAL propagated: the worker wrote o-message as a message, no row" "1:0" \
    "$(sql -c "SELECT count(*) FILTER (WHERE form = 'message') || ':' || (SELECT count(*) FROM seen WHERE aggregateid = 'o-message') FROM decoded WHERE aggregateid = 'o-message'")"
check "every row event is in the decoded WAL of the node that wrote it" "0:0" \
    "$(sql -c "SELECT (SELECT count(*) FROM seen s WHERE NOT EXISTS (SELECT FROM decoded d WHERE d.node = s.node AND d.id = s.id AND d.form = 'row'))
                 || ':' || (SELECT count(*) FROM decoded d WHERE d.form = 'row' AND NOT EXISTS (SELECT FROM seen s WHERE d.node = s.node AND d.id = s.id))")"
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
# An order and a tag, each with its outbox trigger (keys unique per transaction).
cat >"$WORK/order.sql" <<SQL
\\set k random(1, 1000000000)
BEGIN;
INSERT INTO orders VALUES ('load-:node-:client_id-:k', 1);
INSERT INTO tags VALUES ('load-:node-:client_id-:k', 'x');
COMMIT;
SQL
# load TAG SECONDS: pgbench on the three nodes at once, in the background; logs in WORK.
load() {
    local node
    for node in coord w1 w2; do
        (eval "$("$CITUS" env "$NAME" "$node")" &&
            PGUSER=app "$PGBENCH" -n -c "$CLIENTS" -j 1 -T "$2" -D node="$node" \
                -f "$WORK/ledger.sql@1" -f "$WORK/like.sql@1" -f "$WORK/order.sql@1" >"$WORK/$1-$node.log" 2>&1) &
    done
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
ledger_rows="$(sql -c "SELECT count(*) FROM ledger") + $(sql -c "SELECT count(*) FROM likes WHERE post LIKE 'like-%'") + $(sql -c "SELECT count(*) FROM orders WHERE id LIKE 'load-%'")"
check "phase 1: pgbench's transactions = ledger rows + rows of likes + orders" "$(processed move)" "$(bc <<<"$ledger_rows")"
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

# The outbox after the load: every committed order and tag is exactly one event, in the decoded
# WAL of the node that wrote it, and the relay on the coordinator delivers each once.
collect_events
check "after the load: each committed order and tag is one event" "0 0" \
    "$(sql -c "SELECT count(*) FROM (SELECT id, count(*) AS n FROM orders WHERE id LIKE 'load-%' GROUP BY id) r
                 FULL JOIN (SELECT aggregateid AS id, count(*) AS n FROM seen WHERE aggregatetype = 'Order' AND aggregateid LIKE 'load-%' GROUP BY 1) e
                 USING (id) WHERE r.n IS DISTINCT FROM e.n") $(sql -c "
               SELECT count(*) FROM (SELECT id, count(*) AS n FROM tags WHERE id LIKE 'load-%' GROUP BY id) r
                 FULL JOIN (SELECT aggregateid AS id, count(*) AS n FROM seen WHERE aggregatetype = 'Tag' AND aggregateid LIKE 'load-%' GROUP BY 1) e
                 USING (id) WHERE r.n IS DISTINCT FROM e.n")"
check "after the load: order events on both workers, tag events on one node" "2 1" \
    "$(sql -c "SELECT count(DISTINCT node) FILTER (WHERE aggregatetype = 'Order') || ' ' || count(DISTINCT node) FILTER (WHERE aggregatetype = 'Tag') FROM seen WHERE aggregateid LIKE 'load-%'")"
collect_wal
check "after the load: the decoded WAL of each node holds exactly its row events" "0:0" \
    "$(sql -c "SELECT (SELECT count(*) FROM seen s WHERE NOT EXISTS (SELECT FROM decoded d WHERE d.node = s.node AND d.id = s.id AND d.form = 'row'))
                 || ':' || (SELECT count(*) FROM decoded d WHERE d.form = 'row' AND NOT EXISTS (SELECT FROM seen s WHERE d.node = s.node AND d.id = s.id))")"
for node in coord w1 w2; do on "$node" -c "SELECT pg_drop_replication_slot('outbox_wal')" >/dev/null; done
sql -c "CREATE TABLE delivered (id uuid); GRANT INSERT ON delivered TO relay"
(eval "$("$CITUS" env "$NAME" coord)" && PGUSER=relay sql) <<'SQL'
DO $$
DECLARE
    v_ids uuid[];
BEGIN
    LOOP
        SELECT array_agg(id) INTO v_ids FROM distcount.outbox_cluster_claim('citus-relay', 500);
        EXIT WHEN v_ids IS NULL;
        INSERT INTO delivered SELECT unnest(v_ids);
        PERFORM distcount.outbox_cluster_ack('citus-relay', v_ids);
    END LOOP;
END $$;
SQL
check "the relay on the coordinator delivered every row event of every node once" "$(sql -c "SELECT count(*) FROM seen"):0:0" \
    "$(sql -c "SELECT count(*) || ':' || (SELECT count(*) FROM (SELECT id FROM delivered GROUP BY id HAVING count(*) > 1) d)
                 || ':' || (SELECT count(*) FROM seen s WHERE NOT EXISTS (SELECT FROM delivered d WHERE d.id = s.id)) FROM delivered")"
stamp "$(sql -c "SELECT count(*) FROM ledger") ledger rows, $(sql -c "SELECT count(*) FROM likes") likes"
stamp "done"
finish
