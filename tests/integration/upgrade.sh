#!/usr/bin/env bash
# The upgrade path: databases made by pg_distcount 0.1.0 (commit 4b9f3cb, built once per major
# into a cache outside the clone by tests/tools/extension_builds.sh) are brought to the build
# under test by ALTER EXTENSION pg_distcount UPDATE, the way a user does it: the cluster runs
# with 0.1.0's library and scripts, 0.2.0's are installed over them, the server restarts, and
# each database is updated. All of it happens in a private copy of the server under test, so
# neither it nor the system's PostgreSQL ever holds 0.1.0.
#   - values of every type (hll of every form, cms linear and conservative, gcounter, pncounter)
#     with indexes on them, outbox triggers and rows and a relay consumer half way, sharded
#     counters (slots and deltas), and two databases replicating a CRDT table to each other
#     (crdt_replicate_setup): every read (text and binary forms, estimates, merges, aggregates,
#     index scans) gives after the update what it gave before, writes go on, replication goes on;
#   - the updated schema equals a fresh install's (tests/tools/extension_schema.sql); a
#     difference is printed as a diff: lines with "-" are what the update lacks, "+" what it
#     has too much of;
#   - the pg_regress suite passes in a database created at 0.1.0 and updated.
# Where 0.1.0 cannot be built (PostgreSQL 18: it had no pg18 feature), prints SKIPPED and passes.
source "$(dirname "$0")/../tools/integration_lib.sh"
ROOT="$DISTCOUNT_ROOT"
BUILDS="$ROOT/tests/tools/extension_builds.sh"
CLUSTER="$ROOT/tests/tools/cluster.sh"
OLD_COMMIT=4b9f3cb
WORK="$(mktemp -d)"
chmod 755 "$WORK"

# ---- the builds --------------------------------------------------------------------------------
set +e
old="$("$BUILDS" release "$OLD_COMMIT")"
rc=$?
set -e
if [ "$rc" = 3 ]; then
    skip "upgrade from 0.1.0" "$old"
    exit 0
fi
[ "$rc" = 0 ] || { echo "FAILED: building 0.1.0 (exit $rc)"; exit 1; }
old_version="$(sed -nE "s/^default_version = '(.*)'$/\1/p" "$old/extension/pg_distcount.control")"
# The build under test: what run_all.sh installed into the server under test, or a directory of
# the same layout (UPGRADE_NEW_BUILD, for a server without it).
new="${UPGRADE_NEW_BUILD:-$WORK/new}"
[ -n "${UPGRADE_NEW_BUILD:-}" ] || "$BUILDS" current "$new"
new_version="$(sed -nE "s/^default_version = '(.*)'$/\1/p" "$new/extension/pg_distcount.control")"
echo "==> upgrading $old_version (from $old) to $new_version"
check "the build under test ships an upgrade script from $old_version" "yes" \
    "$([ -f "$new/extension/pg_distcount--$old_version--$new_version.sql" ] && echo yes || ls "$new/extension")"

# ---- a private server holding 0.1.0 ------------------------------------------------------------
server="$STATE/upgrade-server"
"$CLUSTER" stop upgrade >/dev/null 2>&1 || true
PG_CONFIG="$("$BUILDS" copy-server "$server")"
export PG_CONFIG
"$BUILDS" install "$old" "$PG_CONFIG"
rm -rf "$CLUSTERS/upgrade"
trap '"$CLUSTER" stop upgrade >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
"$CLUSTER" start upgrade "max_worker_processes = 16"
eval "$("$CLUSTER" env upgrade)"
stamp "server with $old_version up"

for db in up_data up_tokyo up_virginia up_regress; do
    createdb "$db"
    sql -d "$db" -c "CREATE EXTENSION pg_distcount"
done
check "the databases start at $old_version" "$old_version" \
    "$(sql -d up_data -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_distcount'")"

# ---- data at 0.1.0 -----------------------------------------------------------------------------
sql -d up_data >/dev/null <<'SQL'
SET search_path = public, distcount;
-- Sketches of 0 to ~40,000 values: every hll form (empty, explicit, sparse, dense), precisions
-- 10 to 16 and hll(12) columns; Count-Min sketches linear and conservative, with and without a
-- heavy-hitter list, keys of several types; counters with 1 to 300 node slots.
CREATE TABLE sketches (
    id int PRIMARY KEY, h hll, h12 hll(12), c cms, cc cms, g gcounter, p pncounter);
INSERT INTO sketches
SELECT i,
       (SELECT hll_agg(v, 10 + i % 7) FROM generate_series(1, (i * i * 7) % 40000) v),
       (SELECT hll_agg('s' || v) FROM generate_series(1, (i * 131) % 5000) v),
       (SELECT cms_agg('k' || (v % (1 + i)), 0.01, 0.02, 16) FROM generate_series(1, i * 20) v),
       (SELECT cms_add(cms_add(cms_empty(0.005, 0.01, i % 3 * 8, 'conservative'), v, v % 5 + 1), 'x'::text, i)
          FROM generate_series(1, 1) v),
       (SELECT gcounter_merge_agg(gcounter_inc(NULL, v * i, 'node-' || v)) FROM generate_series(1, 1 + i % 300) v),
       (SELECT pncounter_merge_agg(pncounter_inc(pncounter_inc(NULL, v * i, 'n' || v), -(v % 7), 'n' || v))
          FROM generate_series(1, 1 + i % 50) v)
FROM generate_series(1, 120) i;
INSERT INTO sketches VALUES
    (0, hll_empty(), hll_empty(12), cms_empty(0.01, 0.02, 16), cms_empty(0.005, 0.01, 0, 'conservative'), '{}', '{}'),
    (-1, NULL, NULL, NULL, NULL, NULL, NULL);
INSERT INTO sketches
SELECT -2, hll_agg(x), NULL, cms_agg(x, 0.01, 0.02, 16), NULL, gcounter_inc(NULL, 9223372036854775807, 'max'), '{"x": [5, 7]}'
  FROM (SELECT 42 AS x) s;
CREATE INDEX sketches_h_hash ON sketches USING hash (h);
CREATE INDEX sketches_h12_hash ON sketches USING hash (h12);
CREATE INDEX sketches_g_hash ON sketches USING hash (g);
CREATE INDEX sketches_p_btree ON sketches (p);
CREATE INDEX sketches_p_hash ON sketches USING hash (p);
CREATE INDEX sketches_c_bytes ON sketches ((c::bytea));

-- The outbox: a row trigger and a statement trigger, events in both, and a relay consumer that
-- has claimed and acknowledged part of them.
CREATE TABLE orders (id int PRIMARY KEY, note text);
CREATE TRIGGER orders_outbox AFTER INSERT OR UPDATE OR DELETE ON orders
    FOR EACH ROW EXECUTE FUNCTION outbox_trigger('Order', 'id');
CREATE TABLE lines (order_id int, n int, PRIMARY KEY (order_id, n));
CREATE TRIGGER lines_outbox AFTER INSERT ON lines REFERENCING NEW TABLE AS t
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_statement_trigger('Line', 'order_id');
INSERT INTO orders SELECT i, 'n' || i FROM generate_series(1, 60) i;
UPDATE orders SET note = 'changed' WHERE id <= 10;
DELETE FROM orders WHERE id > 55;
INSERT INTO lines SELECT i % 20, i FROM generate_series(1, 80) i;
SELECT outbox_emit('Manual', 'm1', 'ManualCreated', '{"a": 1}');
SQL
sql -d up_data -c "SELECT distcount.outbox_ack('relay', array_agg(id)) FROM distcount.outbox_claim('relay', 30)" >/dev/null
# A second consumer with events in flight: 5 leased for an hour (not acknowledged), one of them
# then dead-lettered (a nack at max attempts), the rest queued.
sql -d up_data -c "SELECT count(*) FROM distcount.outbox_claim('flight', 5, '1 hour')" >/dev/null
sql -d up_data -c "SET pg_distcount.outbox_max_attempts = 1;
    SELECT distcount.outbox_nack('flight', (SELECT id FROM distcount.outbox_pending WHERE consumer = 'flight' AND attempts > 0
                                             ORDER BY seq LIMIT 1), 'down')" >/dev/null
sql -d up_data >/dev/null <<'SQL'
SET search_path = public, distcount;
-- Sharded counters in both modes, written by several sessions' slots, one rolled up.
SELECT counter_create('likes', 8);
SELECT counter_create('views', 4, 'deltas');
SQL
for i in 1 2 3 4 5; do
    sql -d up_data -c "SELECT distcount.counter_add('likes', $i * 10), distcount.counter_add('views', $i), distcount.counter_add('auto', 1)" >/dev/null
done
sql -d up_data -c "SELECT distcount.counter_rollup('views')" >/dev/null
stamp "data written at $old_version"

# ---- replication between two databases at 0.1.0 -----------------------------------------------
# Two servers' worth of crdt_replicate_setup in one cluster: up_tokyo and up_virginia each
# publish their copy and subscribe to the other's. A subscription to a database of the same
# cluster needs its slot made beforehand (CREATE SUBSCRIPTION would wait for itself).
for db in up_tokyo up_virginia; do
    sql -d "$db" -c "CREATE TABLE likes (post bigint PRIMARY KEY, g distcount.gcounter, p distcount.pncounter)"
done
# crdt_replicate_setup on both first (each subscriber needs its inbox), then the commands it
# printed, each run on the database it names.
sql -d up_tokyo -F '|' -c "SELECT run_on, command FROM distcount.crdt_replicate_setup('public.likes', 'tokyo', ARRAY['virginia'])" >"$WORK/subscriptions"
sql -d up_virginia -F '|' -c "SELECT run_on, command FROM distcount.crdt_replicate_setup('public.likes', 'virginia', ARRAY['tokyo'])" >>"$WORK/subscriptions"
while IFS='|' read -r run_on cmd; do
    slot="$(sed -E 's/^CREATE SUBSCRIPTION ([a-z_0-9]+) .*/\1/' <<<"$cmd")"
    publisher="$( [ "$run_on" = tokyo ] && echo up_virginia || echo up_tokyo)"
    sql -d "$publisher" -c "SELECT pg_create_logical_replication_slot('$slot', 'pgoutput')" >/dev/null
    with="WITH (copy_data = true, create_slot = false, slot_name = '$slot')"
    sql -d "up_$run_on" -c "${cmd/"WITH (copy_data = true)"/$with}"
done <"$WORK/subscriptions"
increment() { # DB NODE POST BY
    sql -d "$1" -c "INSERT INTO likes VALUES ($3, distcount.gcounter_inc(NULL, $4, '$2'), distcount.pncounter_inc(NULL, -$4, '$2'))
                    ON CONFLICT (post) DO UPDATE SET g = distcount.gcounter_inc(likes.g, $4, '$2'),
                                                     p = distcount.pncounter_inc(likes.p, -$4, '$2')" >/dev/null
}
replicated() { # the same rows, byte for byte, in both databases within 60 s
    local a b
    for _ in $(seq 1 120); do
        a="$(sql -d up_tokyo -c "SELECT md5(string_agg(post || g::text || p::text, ',' ORDER BY post)) FROM likes")"
        b="$(sql -d up_virginia -c "SELECT md5(string_agg(post || g::text || p::text, ',' ORDER BY post)) FROM likes")"
        [ "$a" = "$b" ] && [ -n "$a" ] && { echo same; return; }
        sleep 0.5
    done
    echo "tokyo $a, virginia $b"
}
for post in 1 2 3; do increment up_tokyo tokyo "$post" 5; increment up_virginia virginia "$post" 7; done
check "replication at $old_version: both databases hold the merged counters" same "$(replicated)"
stamp "replication set up and converged at $old_version"

# ---- reads at 0.1.0 ----------------------------------------------------------------------------
# Every query's whole output is kept and compared after the update.
READS=(
    # Text and binary forms, stored and sent.
    "SELECT id, md5(h::text), md5(h12::text), md5(c::text), md5(cc::text), md5(g::text), md5(p::text) FROM sketches ORDER BY id"
    "SELECT id, md5(h::bytea), md5(h12::bytea), md5(c::bytea), md5(cc::bytea), md5(g::bytea), md5(p::bytea) FROM sketches ORDER BY id"
    "SELECT id, md5(hll_send(h)), md5(cms_send(c)), md5(gcounter_send(g)), md5(pncounter_send(p)) FROM sketches ORDER BY id"
    # Estimates and values.
    "SELECT id, hll_count(h), hll_count(h12), (hll_estimate(h, 0.9)).*, hll_info(h) FROM sketches ORDER BY id"
    "SELECT id, cms_total(c), cms_total(cc), cms_info(c), cms_info(cc) FROM sketches ORDER BY id"
    "SELECT s.id, t.* FROM sketches s, cms_topk(s.c, 5) t ORDER BY s.id, t.item"
    "SELECT id, gcounter_value(g), pncounter_value(p), g::jsonb, p::jsonb FROM sketches ORDER BY id"
    # Merges. A union computed now is written in the current format (0.2.0: dense hll registers
    # in 4 bits, cms format version 2) and an hll union may keep a martingale count, so hll
    # unions are compared by the registers' estimate (x || x: a union of dense sketches keeps no
    # count), which both builds give alike, and cms merges by their totals (their bytes are
    # compared below with those a fresh install makes of the same values).
    "SELECT a.id, (hll_estimate((a.h || b.h) || (a.h || b.h), 0.9)).estimate,
            (hll_estimate(hll_union(a.h12, b.h12) || hll_union(a.h12, b.h12), 0.9)).estimate, cms_total(a.c + b.c),
            md5((a.g || b.g)::bytea), md5((a.p || b.p)::bytea), a.g <= (a.g || b.g)
       FROM sketches a JOIN sketches b ON b.id = a.id + 1 WHERE a.id > 0 ORDER BY a.id"
    # Aggregates, overall and grouped.
    "SELECT (hll_estimate(hll_union_agg(h) || hll_union_agg(h), 0.9)).estimate,
            hll_count(hll_union_agg(h12) || hll_union_agg(h12)), cms_total(cms_union_agg(c)),
            md5(gcounter_merge_agg(g)::bytea), md5(pncounter_merge_agg(p)::bytea),
            md5(hll_agg(id)::bytea), approx_count_distinct(id), md5(hll_agg(id::text)::bytea) FROM sketches"
    "SELECT id % 7, (hll_estimate(hll_union_agg(h) || hll_union_agg(h), 0.9)).estimate, cms_total(cms_union_agg(c)), gcounter_value(gcounter_merge_agg(g)),
            pncounter_value(pncounter_merge_agg(p)) FROM sketches GROUP BY 1 ORDER BY 1"
    # Index scans find what sequential scans find.
    "SET enable_seqscan = off; SET enable_bitmapscan = off;
     SELECT count(*) FILTER (WHERE s.h = t.h), count(*) FILTER (WHERE s.g = t.g), count(*) FILTER (WHERE s.p = t.p),
            (SELECT count(*) FROM sketches x WHERE x.h12 ~<~ (SELECT h12 FROM sketches WHERE id = 60)),
            (SELECT count(*) FROM sketches x WHERE x.c::bytea = (SELECT c::bytea FROM sketches WHERE id = 7))
       FROM sketches s JOIN LATERAL (SELECT * FROM sketches y WHERE y.id = s.id) t ON true"
    "SET enable_seqscan = off; SET enable_bitmapscan = off;
     SELECT (SELECT id FROM sketches WHERE h = (SELECT h FROM sketches WHERE id = 33)),
            (SELECT id FROM sketches WHERE g = (SELECT g FROM sketches WHERE id = 34)),
            (SELECT id FROM sketches WHERE p = (SELECT p FROM sketches WHERE id = 35) ORDER BY id LIMIT 1),
            (SELECT string_agg(id::text, ',' ORDER BY g) FROM sketches WHERE g IS NOT NULL)"
    # The outbox, the relay's state, the counters.
    "SELECT md5(string_agg(id || aggregatetype || aggregateid || type || payload::text || seq, ',' ORDER BY seq)), count(*) FROM outbox"
    "SELECT consumer, count(*) FROM outbox_pending GROUP BY 1 ORDER BY 1"
    "SELECT consumer, id, seq, aggregatetype, aggregateid, is_head, attempts, leased_until > now() AS leased, last_error
       FROM outbox_pending WHERE attempts > 0 OR is_head ORDER BY consumer, seq"
    "SELECT consumer, id, seq, attempts, last_error FROM outbox_dead ORDER BY consumer, seq"
    "SELECT name, mode, shards, value FROM counters ORDER BY name"
    "SELECT counter_value('likes'), counter_value('views'), counter_value('auto')"
)
read_all() { # DB FILE
    local q
    for q in "${READS[@]}"; do
        echo "-- $q"
        PGOPTIONS="-c search_path=public,distcount" sql -d "$1" -c "$q" 2>&1 || true
    done >"$2"
}
read_all up_data "$WORK/before.txt"
stamp "reads recorded at $old_version ($(wc -l <"$WORK/before.txt") lines)"

# ---- install 0.2.0 over it, restart, update ----------------------------------------------------
"$CLUSTER" stop upgrade
"$BUILDS" install "$new" "$PG_CONFIG"
"$CLUSTER" start upgrade
for db in up_data up_tokyo up_virginia up_regress; do
    out="$(sql -d "$db" -c "ALTER EXTENSION pg_distcount UPDATE" 2>&1)" || echo "$out"
    check "ALTER EXTENSION pg_distcount UPDATE in $db gives $new_version" "$new_version" \
        "$(sql -d "$db" -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_distcount'")"
done
stamp "updated to $new_version"

# ---- the same answers --------------------------------------------------------------------------
read_all up_data "$WORK/after.txt"
if diff -u "$WORK/before.txt" "$WORK/after.txt" >"$WORK/reads.diff"; then
    check "every stored value reads, merges, aggregates and is found by its indexes as at $old_version" same same
else
    head -60 "$WORK/reads.diff"
    check "every stored value reads, merges, aggregates and is found by its indexes as at $old_version" same "differs (above)"
fi
# Writes go on: counters exact, new outbox events after the old, the relay picks up where it was.
check "sharded counters count on exactly" "160|16|6" \
    "$(sql -d up_data -c "SELECT distcount.counter_add('likes', 10), distcount.counter_add('views', 1), distcount.counter_add('auto', 1)" >/dev/null
       sql -d up_data -c "SELECT distcount.counter_rollup(); SELECT distcount.counter_value('likes'), distcount.counter_value('views'), distcount.counter_value('auto')" | tail -1)"
events_before="$(sql -d up_data -c "SELECT count(*) FROM distcount.outbox")"
sql -d up_data -c "INSERT INTO orders VALUES (100, 'after'); INSERT INTO lines VALUES (100, 1), (100, 2)" >/dev/null
check "the outbox triggers write after the update" "$((events_before + 3))|100|Line" \
    "$(sql -d up_data -c "SELECT count(*), (SELECT aggregateid FROM distcount.outbox WHERE aggregatetype = 'Order' ORDER BY seq DESC LIMIT 1),
                                 (SELECT aggregatetype FROM distcount.outbox ORDER BY seq DESC LIMIT 1) FROM distcount.outbox")"
for _ in $(seq 1 20); do
    n="$(sql -d up_data -c "SELECT count(*) FROM (SELECT distcount.outbox_ack('relay', array_agg(id)) FROM distcount.outbox_claim('relay', 1000)) x WHERE outbox_ack > 0")"
    [ "$n" = 0 ] && break
done
check "a lease of $old_version holds after the update (its events are not handed out again)" "0" \
    "$(sql -d up_data -c "SELECT count(*) FROM distcount.outbox_claim('flight', 1000, '1 millisecond') AS c
                           WHERE c.id IN (SELECT p.id FROM distcount.outbox_pending AS p
                                           WHERE p.consumer = 'flight' AND p.leased_until > now() + interval '30 minutes')")"
acked="$(sql -d up_data -c "SELECT distcount.outbox_ack('flight', array_agg(id)) FROM distcount.outbox_pending
                             WHERE consumer = 'flight' AND leased_until > now() + interval '30 minutes'")"
retried="$(sql -d up_data -c "SELECT distcount.outbox_retry_dead('flight')")"
check "events leased at $old_version are acknowledged after it, the dead letter retried" "4|1" "$acked|$retried"
for _ in $(seq 1 20); do
    n="$(sql -d up_data -c "SELECT count(*) FROM (SELECT distcount.outbox_ack('flight', array_agg(id)) FROM distcount.outbox_claim('flight', 1000)) x WHERE outbox_ack > 0")"
    [ "$n" = 0 ] && break
done
check "the relay consumers of $old_version drain every event after the update (relay_role: the updating role)" "0|0|postgres" \
    "$(sql -d up_data -c "SELECT (SELECT count(*) FROM distcount.outbox_pending), (SELECT count(*) FROM distcount.outbox_dead),
                                 string_agg(DISTINCT relay_role, ',') FROM distcount.outbox_consumer")"

# Replication: objects named the 0.1.0 way go on replicating, are recorded as the setup's, and a
# new setup in the same schemas (another table) is accepted.
for post in 1 4; do increment up_tokyo tokyo "$post" 11; increment up_virginia virginia "$post" 13; done
check "replication goes on after the update" same "$(replicated)"
check "the 0.1.0 replica objects are recorded as crdt_replicate_setup's" \
    "function crdt_tokyo.likes_publish,schema crdt_tokyo,schema crdt_virginia,table crdt_tokyo.likes,table crdt_virginia.likes" \
    "$(sql -d up_tokyo -c "SELECT string_agg(kind || ' ' || name, ',' ORDER BY kind, name) FROM distcount.crdt_replica_object")"
sql -d up_tokyo -c "CREATE TABLE views (page bigint PRIMARY KEY, g distcount.gcounter)"
sql -d up_tokyo -c "SELECT * FROM distcount.crdt_replicate_setup('public.views', 'tokyo', ARRAY['virginia'])" >/dev/null
check "a setup after the update reuses the 0.1.0 schemas and names the copies the new way" \
    'crdt_tokyo."public.views",crdt_virginia."public.views"' \
    "$(sql -d up_tokyo -c "SELECT string_agg(c.oid::regclass::text, ',' ORDER BY 1) FROM pg_class c WHERE c.relname = 'public.views'")"
stamp "writes and replication checked"

# ---- the schema of a fresh install -------------------------------------------------------------
createdb up_fresh
sql -d up_fresh -c "CREATE EXTENSION pg_distcount"
sql -d up_fresh -f "$ROOT/tests/tools/extension_schema.sql" >"$WORK/schema-fresh.txt"
for db in up_data up_regress; do
    sql -d "$db" -f "$ROOT/tests/tools/extension_schema.sql" >"$WORK/schema-$db.txt"
    if diff -u "$WORK/schema-fresh.txt" "$WORK/schema-$db.txt" >"$WORK/schema.diff"; then
        check "the schema of $db after the update is that of a fresh $new_version install ($(wc -l <"$WORK/schema-fresh.txt") facts)" same same
    else
        echo "--- schema of a fresh install (-) against $db updated from $old_version (+):"
        echo "--- '-' lines are what sql/pg_distcount--$old_version--$new_version.sql lacks, '+' what it leaves or makes too much"
        grep -E '^[-+][^-+]' "$WORK/schema.diff" | head -80
        check "the schema of $db after the update is that of a fresh $new_version install" same \
            "$(grep -cE '^[-+][^-+]' "$WORK/schema.diff") lines differ (above)"
    fi
done
stamp "schemas compared"

# Point estimates of Count-Min sketches changed on purpose in 0.2.0 (the counters only, the same
# for every input order; 0.1.0 also used the heavy-hitter list): after the update they must be
# what a fresh install answers for the same sketches. The fresh copy is read in by binary COPY,
# so it holds them in format version 2 where the updated database keeps 0.1.0's version 1:
# every answer, and every merge's bytes, must be the same from either (unions in a fixed order:
# the heavy-hitter list depends on it once it is full).
ESTIMATES="SELECT id, cms_estimate(c, 'k1'::text), (cms_bounds(c, 'k3'::text)).*, cms_exceeds(c, 'k2'::text, 5),
                  cms_estimate(cc, 'x'::text), cms_estimate(cc, 1), cms_total(c), cms_total(cc), s.*
           FROM sketches, cms_topk(c, 3) s ORDER BY id, s.item;
           SELECT a.id, md5((a.c + b.c)::bytea), md5((a.c - a.c)::bytea) FROM sketches a JOIN sketches b ON b.id = a.id + 1
           WHERE a.id > 0 ORDER BY a.id;
           SELECT md5(cms_union_agg(c ORDER BY id)::bytea), md5(cms_union_agg(cc ORDER BY id)::bytea) FROM sketches;
           SELECT id % 7, md5(cms_union_agg(c ORDER BY id)::bytea) FROM sketches GROUP BY 1 ORDER BY 1"
sql -d up_fresh -c "CREATE TABLE sketches (id int PRIMARY KEY, h distcount.hll, h12 distcount.hll(12), c distcount.cms,
                    cc distcount.cms, g distcount.gcounter, p distcount.pncounter)"
sql -d up_data -c "COPY sketches TO STDOUT (FORMAT binary)" | sql -d up_fresh -c "COPY sketches FROM STDIN (FORMAT binary)"
PGOPTIONS="-c search_path=public,distcount" sql -d up_fresh -c "$ESTIMATES" >"$WORK/estimates_fresh.txt" 2>&1
PGOPTIONS="-c search_path=public,distcount" sql -d up_data -c "$ESTIMATES" >"$WORK/estimates_updated.txt" 2>&1
diff -u "$WORK/estimates_fresh.txt" "$WORK/estimates_updated.txt" | head -40
check "Count-Min point estimates, top-k and merges after the update are a fresh install's for the same sketches" \
    "$(md5sum <"$WORK/estimates_fresh.txt")" "$(md5sum <"$WORK/estimates_updated.txt")"

# ---- the regression suite in an updated database -----------------------------------------------
PG_REGRESS="$(dirname "$("$PG_CONFIG" --pgxs)")/../test/regress/pg_regress"
schedule=(setup $(cd "$ROOT/tests/pg_regress/sql" && ls *.sql | sed 's/\.sql$//' | grep -vx setup))
# The suite's own files, with one more accepted output of setup: in a database that has the
# extension already, its CREATE EXTENSION IF NOT EXISTS says so in a NOTICE.
mkdir -p "$WORK/regress"
cp -r "$ROOT/tests/pg_regress/sql" "$ROOT/tests/pg_regress/expected" "$WORK/regress/"
sed 's/^CREATE EXTENSION IF NOT EXISTS pg_distcount;$/&\nNOTICE:  extension "pg_distcount" already exists, skipping/' \
    "$ROOT/tests/pg_regress/expected/setup.out" >"$WORK/regress/expected/setup_1.out"
chmod -R a+rwX "$WORK/regress"
if "$PG_REGRESS" --host="$PGHOST" --port="$PGPORT" --user=postgres --bindir="$("$PG_CONFIG" --bindir)" \
    --inputdir="$WORK/regress" --outputdir="$WORK/regress" --use-existing --dbname=up_regress \
    "${schedule[@]}" >"$WORK/regress/log" 2>&1; then
    check "pg_regress (${#schedule[@]} files) passes in a database updated from $old_version" passed passed
else
    grep -E 'FAILED|failed|not ok' "$WORK/regress/log" || tail -20 "$WORK/regress/log"
    head -80 "$WORK/regress/regression.diffs" 2>/dev/null || true
    check "pg_regress passes in a database updated from $old_version" passed failed
fi
stamp "done"
finish
