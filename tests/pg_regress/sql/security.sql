-- Safe for every role: the four roles a deployment has (writer, reader, relay, admin), each with
-- exactly the grants the README's Security section lists, do their work; what they are not
-- granted, and what an attacker tries, fails with a clear error and changes nothing.
-- (search_path.sql plants hostile operators and functions; this file covers privileges.)

SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_writer, regress_reader, regress_relay, regress_relay2, regress_admin,
    regress_stranger, regress_attacker;
RESET client_min_messages;
CREATE ROLE regress_writer;
CREATE ROLE regress_reader;
CREATE ROLE regress_relay;
CREATE ROLE regress_relay2;
CREATE ROLE regress_admin;
CREATE ROLE regress_stranger;
CREATE ROLE regress_attacker;

-- The README's grants, verbatim.
GRANT USAGE ON SCHEMA distcount TO regress_writer, regress_reader, regress_relay, regress_relay2, regress_admin;
-- writer
GRANT EXECUTE ON FUNCTION distcount.counter_add(text, bigint),
                          distcount.outbox_emit(text, text, text, jsonb, text) TO regress_writer;
GRANT INSERT (id, aggregatetype, aggregateid, type, payload, headers, tracingspancontext)
    ON distcount.outbox TO regress_writer;
GRANT USAGE ON SEQUENCE distcount.outbox_seq TO regress_writer;
-- reader
GRANT EXECUTE ON FUNCTION distcount.counter_value(text),
                          distcount.counter_value_cached(text, interval) TO regress_reader;
-- relay
GRANT SELECT ON distcount.outbox, distcount.outbox_stats TO regress_relay, regress_relay2;
GRANT SELECT, INSERT, UPDATE, DELETE
    ON distcount.outbox_consumer, distcount.outbox_pending, distcount.outbox_dead TO regress_relay, regress_relay2;
GRANT EXECUTE ON FUNCTION distcount.cdc_heartbeat(text) TO regress_relay, regress_relay2;
-- admin
GRANT EXECUTE ON FUNCTION distcount.counter_create(text, integer, text), distcount.counter_drop(text),
    distcount.counter_reshard(text, integer), distcount.counter_rollup(text),
    distcount.counter_value(text), distcount.counter_value_cached(text, interval),
    distcount.node_rotate(), distcount.node_retire(text, text),
    distcount.crdt_replicate_setup(regclass, text, text[], text),
    distcount.outbox_trigger(), distcount.outbox_statement_trigger(),
    distcount.outbox_cleanup(interval), distcount.cdc_heartbeat(text) TO regress_admin;
GRANT SELECT ON distcount.counters TO regress_admin;
GRANT SELECT, INSERT, UPDATE ON distcount.crdt_replica_object TO regress_admin;
DO $$ BEGIN
    EXECUTE format('GRANT CREATE ON DATABASE %I TO regress_admin, regress_attacker', current_database());
END $$;

-- The admin owns the application's schema: a table with an outbox trigger, a CRDT table.
CREATE SCHEMA app AUTHORIZATION regress_admin;
GRANT USAGE ON SCHEMA app TO regress_writer, regress_reader;
SET ROLE regress_admin;
CREATE TABLE app.orders (id int PRIMARY KEY, "k\" text NOT NULL, total int);
CREATE TRIGGER orders_outbox AFTER INSERT OR UPDATE ON app.orders
    FOR EACH ROW EXECUTE FUNCTION distcount.outbox_trigger('Order', 'id', 'table');
CREATE TABLE app.shipments (id int PRIMARY KEY, "k\" text NOT NULL, "a""b" int NOT NULL DEFAULT 7);
CREATE TRIGGER shipments_outbox AFTER INSERT ON app.shipments REFERENCING NEW TABLE AS t
    FOR EACH STATEMENT EXECUTE FUNCTION distcount.outbox_statement_trigger('Shipment', 'k\', 'both');
CREATE TRIGGER shipments_outbox_update AFTER UPDATE ON app.shipments REFERENCING NEW TABLE AS t
    FOR EACH STATEMENT EXECUTE FUNCTION distcount.outbox_statement_trigger('Shipment', 'k\,a"b', 'table');
CREATE TABLE app.likes (post int PRIMARY KEY, g distcount.gcounter NOT NULL DEFAULT '{}',
                        p distcount.pncounter NOT NULL DEFAULT '{}');
GRANT SELECT, INSERT, UPDATE ON app.orders, app.shipments, app.likes TO regress_writer;
GRANT SELECT ON app.likes TO regress_reader;
SELECT distcount.counter_create('likes:1', 4);
RESET ROLE;

-- ---------------------------------------------------------------------------------------------
-- The writer: increments, sharded counters, outbox events (found 1, 7a, 8)
-- ---------------------------------------------------------------------------------------------
SET ROLE regress_writer;
SELECT distcount.gcounter_value(distcount.gcounter_inc(NULL)) AS g,
       distcount.pncounter_value(distcount.pncounter_inc(NULL, -3)) AS p;
INSERT INTO app.likes VALUES (1, distcount.gcounter_inc(NULL, 5), distcount.pncounter_inc(NULL, 2));
UPDATE app.likes SET g = distcount.gcounter_inc(g) WHERE post = 1;
SELECT distcount.counter_add('likes:1'), distcount.counter_add('likes:1', 4), distcount.counter_add('views:new');
INSERT INTO app.orders VALUES (1, 'a', 10), (2, 'b', 20);
UPDATE app.orders SET total = 11 WHERE id = 1;
-- The statement trigger, with a key column named k\ and standard_conforming_strings off.
SET standard_conforming_strings = off;
INSERT INTO app.shipments VALUES (1, 'ship-1'), (2, 'ship-2');
UPDATE app.shipments SET "a""b" = 8 WHERE id = 2;
RESET standard_conforming_strings;
SELECT distcount.outbox_emit('Customer', 'c-1', 'CustomerMerged', '{"into": "c-2"}') IS NOT NULL AS emitted;
-- A writer may choose its message prefix, within bounds.
SET pg_distcount.outbox_message_prefix = '';
SELECT error_of($$ SELECT distcount.outbox_emit('Customer', 'c-1', 'X', '{}', 'message') $$);
SET pg_distcount.outbox_message_prefix = 'app.events';
SELECT distcount.outbox_emit('Customer', 'c-1', 'X', '{}', 'message') IS NOT NULL AS emitted_with_prefix;
SELECT set_config('pg_distcount.outbox_message_prefix', repeat('p', 129), false) IS NOT NULL AS long_prefix_set;
SELECT error_of($$ SELECT distcount.outbox_emit('Customer', 'c-1', 'X', '{}', 'message') $$);
RESET pg_distcount.outbox_message_prefix;
-- Values the relay relies on come from the server, not from the writer.
SELECT error_of($$ INSERT INTO distcount.outbox (aggregatetype, aggregateid, type, txid) VALUES ('X', '1', 'Y', '3') $$);
SELECT error_of($$ INSERT INTO distcount.outbox (aggregatetype, aggregateid, type, seq) VALUES ('X', '1', 'Y', 1) $$);
SELECT error_of($$ INSERT INTO distcount.outbox (aggregatetype, aggregateid, type, created_at) VALUES ('X', '1', 'Y', now()) $$);
-- Writers write events; they do not read them, nor change counter rows behind the functions.
SELECT error_of($$ SELECT count(*) FROM distcount.outbox $$);
SELECT error_of($$ UPDATE distcount.counter SET cached_value = 1000000, cached_at = now() $$);
SELECT error_of($$ UPDATE distcount.counter_slot SET value = value + 1000 $$);
SELECT error_of($$ INSERT INTO distcount.counter_delta VALUES (1, 1000) $$);
SELECT error_of($$ SELECT distcount.counter_drop('likes:1') $$);
SELECT error_of($$ SELECT * FROM distcount.node $$);
SELECT error_of($$ SELECT * FROM distcount.node_fingerprint() $$);
SELECT error_of($$ SELECT distcount.node_rotate() $$);
SELECT error_of($$ SELECT distcount.cdc_heartbeat() $$);
RESET ROLE;
SELECT aggregatetype, aggregateid, type, payload FROM distcount.outbox ORDER BY seq;

-- ---------------------------------------------------------------------------------------------
-- The reader: values, estimates, aggregates; nothing that writes
-- ---------------------------------------------------------------------------------------------
SET ROLE regress_reader;
SELECT distcount.counter_value('likes:1') AS likes, distcount.counter_value_cached('likes:1', '1 hour') AS cached;
SELECT distcount.gcounter_value(g) AS g, distcount.pncounter_value(p) AS p FROM app.likes;
SELECT distcount.hll_count(distcount.hll_agg(x)) AS distinct_x,
       distcount.cms_estimate(distcount.cms_agg(x % 3), 1) AS ones
FROM generate_series(1, 1000) x;
SELECT error_of($$ SELECT distcount.counter_add('likes:1', 1000) $$);
SELECT error_of($$ SELECT distcount.counter_create('mine') $$);
SELECT error_of($$ SELECT distcount.outbox_emit('Order', '1', 'OrderPaid', '{}', 'message') $$);
SELECT error_of($$ SELECT distcount.outbox_claim('search') $$);
SELECT error_of($$ SELECT * FROM distcount.counters $$);
RESET ROLE;

-- ---------------------------------------------------------------------------------------------
-- Relays: each consumer belongs to a role; another relay cannot claim, ack, nack, retry or
-- drop its events, through the functions or the tables (found 7b, 7c)
-- ---------------------------------------------------------------------------------------------
SET ROLE regress_relay;
SELECT aggregatetype, aggregateid, type FROM distcount.outbox_claim('search', 100) ORDER BY seq;
SELECT consumer, relay_role FROM distcount.outbox_consumer;
SET ROLE regress_relay2;
SELECT error_of($$ SELECT distcount.outbox_claim('search') $$);
SELECT error_of(format($$ SELECT distcount.outbox_ack('search', ARRAY[%L::uuid]) $$,
    (SELECT id FROM distcount.outbox ORDER BY seq LIMIT 1)));
SELECT error_of(format($$ SELECT distcount.outbox_nack('search', %L::uuid, 'x') $$,
    (SELECT id FROM distcount.outbox ORDER BY seq LIMIT 1)));
SELECT error_of($$ SELECT distcount.outbox_retry_dead('search') $$);
SELECT error_of($$ SELECT distcount.outbox_drop_consumer('search') $$);
-- Past the functions, row-level security hides the other consumer's rows.
SELECT count(*) AS pending_seen FROM distcount.outbox_pending;
UPDATE distcount.outbox_pending SET attempts = 0, leased_until = NULL WHERE consumer = 'search';
DELETE FROM distcount.outbox_pending WHERE consumer = 'search';
SELECT error_of($$ UPDATE distcount.outbox_consumer SET relay_role = 'regress_relay2' WHERE consumer = 'search' $$);
SELECT error_of($$ INSERT INTO distcount.outbox_consumer (consumer, relay_role) VALUES ('hijack', 'regress_relay') $$);
-- Its own consumer works.
SELECT count(*) AS claimed FROM distcount.outbox_claim('audit', 100);
SELECT consumer, queued FROM distcount.outbox_stats ORDER BY consumer;
-- Bounded message prefixes.
SELECT distcount.cdc_heartbeat() IS NOT NULL AS heartbeat;
SELECT error_of($$ SELECT distcount.cdc_heartbeat(repeat('x', 1000000)) $$);
SELECT error_of($$ SELECT distcount.cdc_heartbeat('') $$);
RESET ROLE;
SET ROLE regress_relay;
SELECT count(*) AS still_queued FROM distcount.outbox_pending WHERE consumer = 'search';
SELECT distcount.outbox_ack('search', array_agg(p.id)) AS acked
FROM distcount.outbox_pending p WHERE p.consumer = 'search' AND p.is_head;
RESET ROLE;
SELECT consumer, relay_role FROM distcount.outbox_consumer WHERE consumer IN ('search', 'audit') ORDER BY 1;

-- ---------------------------------------------------------------------------------------------
-- The admin: counters, nodes, replication set-up; the stranger: unrelated DDL (found 5)
-- ---------------------------------------------------------------------------------------------
SET ROLE regress_admin;
SELECT distcount.counter_reshard('likes:1', 2);
SELECT distcount.counter_rollup() >= 0 AS rolled_up;
SELECT name, shards, value FROM distcount.counters ORDER BY name;
SELECT distcount.counter_drop('views:new');
SELECT length(distcount.node_rotate()) = 36 AS rotated;
SELECT run_on, regexp_replace(command, 'CONNECTION ''[^'']*''', 'CONNECTION ''...''') AS command
FROM distcount.crdt_replicate_setup('app.likes', 'sapporo', ARRAY['hakata']);
SELECT distcount.outbox_cleanup('1 hour') AS cleaned;
RESET ROLE;
DROP PUBLICATION crdt_sapporo;

SET ROLE regress_stranger;
CREATE TEMP TABLE mine (x int);
CREATE FUNCTION pg_temp.noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER mine_noop BEFORE INSERT ON mine FOR EACH ROW EXECUTE FUNCTION pg_temp.noop();
INSERT INTO mine VALUES (1);
SELECT error_of($$ SELECT distcount.gcounter_inc(NULL) $$);
RESET ROLE;

-- ---------------------------------------------------------------------------------------------
-- crdt_replicate_setup never adopts what it did not create (found 3)
-- ---------------------------------------------------------------------------------------------
CREATE TABLE public.ran (who text, as_user text);
GRANT INSERT ON public.ran TO PUBLIC;
SET ROLE regress_attacker;
CREATE SCHEMA crdt_osaka;
CREATE FUNCTION crdt_osaka.planted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.ran VALUES ('planted trigger', current_user);
    BEGIN EXECUTE 'ALTER ROLE regress_attacker SUPERUSER'; EXCEPTION WHEN OTHERS THEN NULL; END;
    RETURN NEW;
END $$;
CREATE TABLE crdt_osaka."public.cart" (id int PRIMARY KEY, g text);
CREATE TRIGGER planted BEFORE INSERT ON crdt_osaka."public.cart" FOR EACH ROW EXECUTE FUNCTION crdt_osaka.planted();
RESET ROLE;
CREATE TABLE public.cart (id int PRIMARY KEY, g distcount.gcounter NOT NULL DEFAULT '{}');
INSERT INTO public.cart VALUES (1, '{"osaka": 2}');
SELECT error_of($$ SELECT * FROM distcount.crdt_replicate_setup('public.cart', 'osaka', ARRAY['kyoto']) $$);
SELECT * FROM public.ran;
SELECT rolsuper FROM pg_roles WHERE rolname = 'regress_attacker';
-- The same with a planted schema of a peer: the setup stops before making anything.
SET ROLE regress_attacker;
DROP TABLE crdt_osaka."public.cart";
CREATE SCHEMA crdt_kyoto;
RESET ROLE;
SELECT error_of($$ SELECT * FROM distcount.crdt_replicate_setup('public.cart', 'nara', ARRAY['kyoto']) $$);
SELECT count(*) AS setup_rolled_back FROM pg_namespace WHERE nspname = 'crdt_nara';

-- ---------------------------------------------------------------------------------------------
-- Tenants get their own per-origin tables; odd names work (found 4)
-- ---------------------------------------------------------------------------------------------
CREATE SCHEMA tenant1;
CREATE SCHEMA tenant2;
CREATE SCHEMA "Tenant ""3"".x";
CREATE TABLE tenant1.visits (site text PRIMARY KEY, g distcount.gcounter NOT NULL DEFAULT '{}');
CREATE TABLE tenant2.visits (site text PRIMARY KEY, g distcount.gcounter NOT NULL DEFAULT '{}');
CREATE TABLE "Tenant ""3"".x"."Visits.with.a.very.long.name.that.passes.sixty.three.bytes"
    (site text PRIMARY KEY, g distcount.gcounter NOT NULL DEFAULT '{}');
INSERT INTO tenant1.visits VALUES ('home', '{"nara": 100}');
INSERT INTO tenant2.visits VALUES ('home', '{"nara": 3}');
SELECT count(*) FROM distcount.crdt_replicate_setup('tenant1.visits', 'nara', ARRAY['ueno']);
SELECT count(*) FROM distcount.crdt_replicate_setup('tenant2.visits', 'nara', ARRAY['ueno']);
SELECT count(*) FROM distcount.crdt_replicate_setup(
    '"Tenant ""3"".x"."Visits.with.a.very.long.name.that.passes.sixty.three.bytes"', 'nara', ARRAY['ueno']);
SELECT n.nspname, c.relname, octet_length(c.relname) AS bytes
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname IN ('crdt_nara', 'crdt_ueno') AND c.relkind = 'r' ORDER BY 1, 2;
SELECT * FROM crdt_nara."tenant1.visits";
SELECT * FROM crdt_nara."tenant2.visits";
-- A peer's row for tenant1 merges into tenant1 only.
INSERT INTO crdt_ueno."tenant1.visits" VALUES ('home', '{"ueno": 7}');
SELECT 'tenant1' AS tenant, * FROM tenant1.visits UNION ALL SELECT 'tenant2', * FROM tenant2.visits ORDER BY 1;
-- A second run reuses what the first made.
SELECT count(*) FROM distcount.crdt_replicate_setup('tenant1.visits', 'nara', ARRAY['ueno']);
DROP PUBLICATION crdt_nara;

-- ---------------------------------------------------------------------------------------------
-- Forged bytes and ambiguous calls (found 11, 12)
-- ---------------------------------------------------------------------------------------------
-- A text key edited to hold a NUL byte, or bytes invalid in the server encoding.
SELECT distcount.cms_add(distcount.cms_empty(0.1, 0.1, 4), 'ab'::text)::bytea AS good \gset
SELECT position('\x6162'::bytea IN :'good'::bytea) AS key_at \gset
SELECT error_of(format('SELECT %L::bytea::distcount.cms', overlay(:'good'::bytea PLACING '\x6100'::bytea FROM :key_at)));
SELECT error_of(format('SELECT %L::bytea::distcount.cms', overlay(:'good'::bytea PLACING '\x61ff'::bytea FROM :key_at)));
SELECT error_of(format('SELECT %L::distcount.cms',
    'cms1:' || translate(encode(overlay(:'good'::bytea PLACING '\x6100'::bytea FROM :key_at), 'base64'), E'\n', '')));
SELECT item FROM distcount.cms_topk(:'good'::bytea::distcount.cms, 1);
-- Every type resolves hll_agg, approx_count_distinct, cms_agg, cms_agg_weighted and topk_agg
-- to one aggregate.
DO $$
DECLARE t regtype;
BEGIN
    FOR t IN SELECT oid::regtype FROM pg_type
              WHERE typtype IN ('b', 'e', 'r', 'm', 'd', 'c') AND typisdefined AND typname NOT LIKE 'pg_toast%'
    LOOP
        BEGIN
            EXECUTE format('EXPLAIN SELECT distcount.hll_agg(NULL::%1$s), distcount.approx_count_distinct(NULL::%1$s), '
                           'distcount.cms_agg(NULL::%1$s, 0.1, 0.1), distcount.cms_agg_weighted(NULL::%1$s, 1, 0.1, 0.1), '
                           'distcount.topk_agg(NULL::%1$s), distcount.topk_agg(NULL::%1$s, 10)', t);
        EXCEPTION WHEN ambiguous_function THEN
            RAISE WARNING 'ambiguous for type %: %', t, SQLERRM;
        END;
    END LOOP;
END $$;
SELECT distcount.hll_count(distcount.hll_agg(adbin)) >= 0 AS node_trees FROM pg_attrdef;

-- ---------------------------------------------------------------------------------------------
-- The catalog: what PUBLIC may do, and every SECURITY DEFINER function pins search_path (found 6)
-- ---------------------------------------------------------------------------------------------
SELECT c.relname, c.relkind, a.privilege_type
FROM pg_class c
CROSS JOIN LATERAL aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a
WHERE c.relnamespace = 'distcount'::regnamespace AND a.grantee = 0
ORDER BY 1, 3;
SELECT p.oid::regprocedure AS definer_without_pinned_path
FROM pg_proc p
WHERE p.pronamespace = 'distcount'::regnamespace AND p.prosecdef
  AND NOT coalesce(p.proconfig, '{}') @> ARRAY['search_path=pg_catalog, pg_temp'];
SELECT p.oid::regprocedure AS sql_function_without_pinned_path
FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
WHERE p.pronamespace = 'distcount'::regnamespace AND l.lanname IN ('sql', 'plpgsql')
  AND NOT coalesce(p.proconfig, '{}') @> ARRAY['search_path=pg_catalog, pg_temp']
ORDER BY p.oid::regprocedure::text;
-- What any role given USAGE on the schema can run beyond pure functions: the relay functions
-- (which need the relay's table grants and check the consumer's role), trigger and event
-- trigger functions, and internals that read or change nothing of anyone else's.
SELECT p.oid::regprocedure AS public_may_run
FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
WHERE p.pronamespace = 'distcount'::regnamespace
  AND has_function_privilege('regress_stranger', p.oid, 'EXECUTE')
  AND (p.provolatile = 'v' OR p.prosecdef)
ORDER BY p.oid::regprocedure::text;

-- ---------------------------------------------------------------------------------------------
-- Clean up
-- ---------------------------------------------------------------------------------------------
SELECT rolname, rolsuper FROM pg_roles WHERE rolname LIKE 'regress\_%' ORDER BY 1;
DROP SCHEMA app, tenant1, tenant2, "Tenant ""3"".x", crdt_osaka, crdt_kyoto, crdt_nara, crdt_ueno, crdt_sapporo, crdt_hakata CASCADE;
DROP TABLE public.cart, public.ran;
DELETE FROM distcount.crdt_replica_object;
SELECT distcount.outbox_drop_consumer(c) FROM unnest(ARRAY['search', 'audit']) c;
DELETE FROM distcount.outbox;
SELECT distcount.counter_drop('likes:1');
DO $$ BEGIN
    EXECUTE format('REVOKE CREATE ON DATABASE %I FROM regress_admin, regress_attacker', current_database());
END $$;
DROP OWNED BY regress_writer, regress_reader, regress_relay, regress_relay2, regress_admin,
    regress_stranger, regress_attacker;
DROP ROLE regress_writer, regress_reader, regress_relay, regress_relay2, regress_admin,
    regress_stranger, regress_attacker;
