-- A hostile search_path: a role that owns a schema on a superuser's search_path, placed before
-- pg_catalog, plants operators, functions and domains (types for casts) under the names the
-- extension's statements use. Each records its call and tries to make the planter superuser.
-- The superuser then calls every function that runs SQL inside the extension and fires every
-- trigger: nothing planted runs.

SET client_min_messages = warning;
DROP SCHEMA IF EXISTS evil CASCADE;
DROP ROLE IF EXISTS regress_planter;
RESET client_min_messages;
CREATE ROLE regress_planter;
CREATE SCHEMA evil AUTHORIZATION regress_planter;
GRANT USAGE ON SCHEMA evil TO PUBLIC;
SET ROLE regress_planter;
CREATE TABLE evil.calls (what text, by_user text);
GRANT INSERT ON evil.calls TO PUBLIC;
CREATE FUNCTION evil.trap(what text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO evil.calls VALUES (what, current_user);
    BEGIN
        EXECUTE 'ALTER ROLE regress_planter SUPERUSER';
    EXCEPTION WHEN OTHERS THEN NULL;
    END;
    RETURN true;
END $$;
-- Operators: comparisons, arithmetic and concatenation on the types the extension's SQL uses.
DO $plant$
DECLARE
    op text;
    typ text;
    n int := 0;
BEGIN
    FOREACH typ IN ARRAY ARRAY['bigint', 'integer', 'smallint', 'text', 'name', 'oid', 'boolean',
        'uuid', 'jsonb', 'json', 'timestamptz', 'interval', 'xid8', 'numeric', 'bytea', 'pg_lsn',
        'regclass', 'regproc', '"char"', 'text[]', 'int2vector', 'pg_snapshot'] LOOP
        FOREACH op IN ARRAY ARRAY['=', '<>', '<', '>', '<=', '>='] LOOP
            n := n + 1;
            EXECUTE format('CREATE FUNCTION evil.op%s(%s, %s) RETURNS boolean LANGUAGE sql AS %L',
                           n, typ, typ, format('SELECT evil.trap(%L)', op || ' ' || typ));
            EXECUTE format('CREATE OPERATOR evil.%s (LEFTARG = %s, RIGHTARG = %s, FUNCTION = evil.op%s)',
                           op, typ, typ, n);
        END LOOP;
    END LOOP;
    FOREACH typ IN ARRAY ARRAY['bigint', 'integer', 'numeric', 'text', 'timestamptz', 'interval', 'text[]'] LOOP
        FOREACH op IN ARRAY ARRAY['+', '-', '||'] LOOP
            n := n + 1;
            EXECUTE format('CREATE FUNCTION evil.op%s(%s, %s) RETURNS %s LANGUAGE sql AS %L',
                           n, typ, typ, typ, format('SELECT CASE WHEN evil.trap(%L) THEN $1 END', op || ' ' || typ));
            EXECUTE format('CREATE OPERATOR evil.%s (LEFTARG = %s, RIGHTARG = %s, FUNCTION = evil.op%s)',
                           op, typ, typ, n);
        END LOOP;
    END LOOP;
END $plant$;
-- Functions of pg_catalog's names and signatures.
CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE sql AS $$ SELECT CASE WHEN evil.trap('now') THEN pg_catalog.now() END $$;
CREATE FUNCTION evil.clock_timestamp() RETURNS timestamptz LANGUAGE sql AS $$ SELECT CASE WHEN evil.trap('clock_timestamp') THEN pg_catalog.now() END $$;
CREATE FUNCTION evil.gen_random_uuid() RETURNS uuid LANGUAGE sql AS $$ SELECT CASE WHEN evil.trap('gen_random_uuid') THEN pg_catalog.gen_random_uuid() END $$;
CREATE FUNCTION evil.nextval(regclass) RETURNS bigint LANGUAGE sql AS $$ SELECT CASE WHEN evil.trap('nextval') THEN 1::bigint END $$;
CREATE FUNCTION evil.pg_current_xact_id() RETURNS xid8 LANGUAGE sql AS $$ SELECT CASE WHEN evil.trap('pg_current_xact_id') THEN pg_catalog.pg_current_xact_id() END $$;
CREATE FUNCTION evil.to_jsonb(anyelement) RETURNS jsonb LANGUAGE sql AS $$ SELECT CASE WHEN evil.trap('to_jsonb') THEN '{}'::jsonb END $$;
CREATE FUNCTION evil.current_setting(text) RETURNS text LANGUAGE sql AS $$ SELECT CASE WHEN evil.trap('current_setting') THEN '' END $$;
CREATE FUNCTION evil.pg_is_in_recovery() RETURNS boolean LANGUAGE sql AS $$ SELECT evil.trap('pg_is_in_recovery') $$;
CREATE FUNCTION evil.hashtext(text) RETURNS integer LANGUAGE sql AS $$ SELECT CASE WHEN evil.trap('hashtext') THEN 1 END $$;
CREATE FUNCTION evil.md5(text) RETURNS text LANGUAGE sql AS $$ SELECT CASE WHEN evil.trap('md5') THEN 'x' END $$;
CREATE FUNCTION evil.quote_ident(text) RETURNS text LANGUAGE sql AS $$ SELECT CASE WHEN evil.trap('quote_ident') THEN $1 END $$;
CREATE FUNCTION evil.format(text) RETURNS text LANGUAGE sql AS $$ SELECT CASE WHEN evil.trap('format') THEN $1 END $$;
CREATE FUNCTION evil.lower(text) RETURNS text LANGUAGE sql AS $$ SELECT CASE WHEN evil.trap('lower') THEN $1 END $$;
CREATE FUNCTION evil.pg_has_role(name, text) RETURNS boolean LANGUAGE sql AS $$ SELECT evil.trap('pg_has_role') $$;
CREATE FUNCTION evil.pg_try_advisory_xact_lock(integer, integer) RETURNS boolean LANGUAGE sql AS $$ SELECT evil.trap('pg_try_advisory_xact_lock') $$;
CREATE FUNCTION evil.gcounter_inc(text) RETURNS text LANGUAGE sql AS $$ SELECT CASE WHEN evil.trap('gcounter_inc') THEN $1 END $$;
-- Domains named like the built-in types: a cast to int4, text, jsonb... resolved through the
-- search_path would land on them and run their check.
DO $plant$
DECLARE
    typ text;
BEGIN
    FOREACH typ IN ARRAY ARRAY['int4', 'int8', 'text', 'jsonb', 'json', 'uuid', 'oid', 'regclass',
        'bool', 'xid8', 'bit', 'numeric', 'name'] LOOP
        EXECUTE format('CREATE DOMAIN evil.%I AS pg_catalog.%I CHECK (evil.trap(%L))', typ, typ, 'domain ' || typ);
    END LOOP;
END $plant$;
RESET ROLE;

-- The traps work: an unqualified operator under this search_path is the planted one.
SET search_path = evil, pg_catalog;
SELECT 1::pg_catalog.int8 = 2::pg_catalog.int8 AS planted_equals;
RESET search_path;
SELECT what, by_user FROM evil.calls;
DELETE FROM evil.calls;

-- The objects the calls below need, made under the ordinary search_path.
CREATE TABLE public.sp_likes (post int PRIMARY KEY, g distcount.gcounter NOT NULL DEFAULT '{}',
                              p distcount.pncounter NOT NULL DEFAULT '{}');
INSERT INTO public.sp_likes VALUES (1, '{"sendai": 1}', '{"sendai": [1, 0]}');
CREATE TABLE public.sp_orders (id int PRIMARY KEY, note text);
CREATE TABLE public.sp_items (id int PRIMARY KEY, note text);

-- Now as a superuser whose search_path starts with the planter's schema, in a new session.
\c
SET search_path = evil, pg_catalog;
-- Node identity and the CRDT types.
SELECT distcount.node_id() IS NOT NULL AS node_id;
SELECT distcount.gcounter_value(distcount.gcounter_inc(NULL)) AS g,
       distcount.pncounter_value(distcount.pncounter_inc(NULL, -1)) AS p;
SELECT (distcount.node_check()).verdict;
SELECT distcount.node_rotate() IS NOT NULL AS rotated;
SELECT distcount.node_retire('gone', 'sendai');
SELECT distcount.gcounter_prune('{"gone": 2, "sendai": 1}', 'gone', 'sendai') AS pruned,
       distcount.gcounter_prune_retired('{"gone": 2}') AS pruned_all,
       distcount.pncounter_prune_retired('{"gone": [2, 1]}') AS pruned_pn;
SELECT distcount.gcounter_value(distcount.gcounter_merge_agg(g)) AS merged FROM public.sp_likes;
-- Multi-region set-up and merge on arrival (the publish and merge triggers fire).
SELECT run_on FROM distcount.crdt_replicate_setup('public.sp_likes', 'sendai', ARRAY['kobe']);
SELECT distcount.crdt_merge_statement('public.sp_likes', 'public.sp_likes') IS NOT NULL AS statement;
UPDATE public.sp_likes SET g = distcount.gcounter_inc(g, 1, 'sendai');
INSERT INTO crdt_kobe."public.sp_likes" VALUES (1, '{"kobe": 5}', '{"kobe": [0, 2]}');
TABLE public.sp_likes;
-- Sharded counters.
SELECT distcount.counter_create('sp:1', 4);
SELECT distcount.counter_add('sp:1', 3), distcount.counter_add('sp:auto');
SELECT distcount.counter_value('sp:1') AS value, distcount.counter_value_cached('sp:1') AS cached;
SELECT distcount.counter_rollup('sp:1') AS folded_one;
SELECT distcount.counter_rollup() IS NOT NULL AS folded_all;
SELECT distcount.counter_reshard('sp:1', 2);
SELECT name, value FROM distcount.counters;
SELECT distcount.counter_drop('sp:1'), distcount.counter_drop('sp:auto');
-- Outbox: creating the triggers fires the event trigger; every mode and form writes.
CREATE TRIGGER sp_orders_table AFTER INSERT ON public.sp_orders
    FOR EACH ROW EXECUTE FUNCTION distcount.outbox_trigger('Order', 'id', 'table');
CREATE TRIGGER sp_orders_both AFTER UPDATE ON public.sp_orders
    FOR EACH ROW EXECUTE FUNCTION distcount.outbox_trigger('Order', 'id', 'both', '{aggregatetype}{Op}', 'old_new');
CREATE TRIGGER sp_orders_message AFTER DELETE ON public.sp_orders
    FOR EACH ROW EXECUTE FUNCTION distcount.outbox_trigger('Order', 'id,note', 'message');
CREATE TRIGGER sp_items_table AFTER INSERT ON public.sp_items REFERENCING NEW TABLE AS t
    FOR EACH STATEMENT EXECUTE FUNCTION distcount.outbox_statement_trigger('Item', 'id', 'table');
CREATE TRIGGER sp_items_both AFTER UPDATE ON public.sp_items REFERENCING NEW TABLE AS t
    FOR EACH STATEMENT EXECUTE FUNCTION distcount.outbox_statement_trigger('Item', 'id,note', 'both');
CREATE TRIGGER sp_items_message AFTER DELETE ON public.sp_items REFERENCING OLD TABLE AS t
    FOR EACH STATEMENT EXECUTE FUNCTION distcount.outbox_statement_trigger('Item', 'id', 'message');
INSERT INTO public.sp_orders VALUES (1, 'a');
UPDATE public.sp_orders SET note = 'b';
DELETE FROM public.sp_orders;
INSERT INTO public.sp_items VALUES (1, 'a'), (2, 'b');
UPDATE public.sp_items SET note = 'c';
DELETE FROM public.sp_items;
SELECT distcount.outbox_emit('Customer', 'c-1', 'Merged', '{}') IS NOT NULL AS table_mode,
       distcount.outbox_emit('Customer', 'c-1', 'Merged', '{}', 'message') IS NOT NULL AS message_mode,
       distcount.outbox_emit('Customer', 'c-1', 'Merged', '{}', 'both') IS NOT NULL AS both_mode;
SELECT distcount.cdc_heartbeat() IS NOT NULL AS heartbeat;
-- The relay.
SELECT aggregatetype, aggregateid, type FROM distcount.outbox_claim('sp', 100) ORDER BY seq;
SELECT distcount.outbox_nack('sp2', o.id, 'failed') FROM distcount.outbox_claim('sp2', 1) AS o;
SELECT distcount.outbox_ack('sp', ARRAY(SELECT p.id FROM distcount.outbox_pending p WHERE p.consumer OPERATOR(pg_catalog.=) 'sp')) AS acked;
SELECT distcount.outbox_retry_dead('sp') AS retried;
SELECT consumer, queued, dead FROM distcount.outbox_stats
WHERE consumer OPERATOR(pg_catalog.=) ANY (ARRAY['sp', 'sp2']) ORDER BY consumer;
SELECT count(*) IS NOT NULL AS slots FROM distcount.slot_lag;
SELECT distcount.outbox_cleanup('0 seconds') IS NOT NULL AS cleaned;
SELECT distcount.outbox_drop_consumer('sp'), distcount.outbox_drop_consumer('sp2');
-- The SQL-language functions of the sketches.
SELECT (distcount.hll_estimate(distcount.hll_agg(x))).estimate IS NOT NULL AS hll_estimate,
       distcount.hll_info(distcount.hll_agg(x)) IS NOT NULL AS hll_info,
       (distcount.cms_bounds(distcount.cms_agg(x), 1)).estimate IS NOT NULL AS cms_bounds,
       distcount.cms_info(distcount.cms_agg(x)) IS NOT NULL AS cms_info
FROM generate_series(1, 100) x;

-- Nothing planted ran, and the planter is no superuser.
RESET search_path;
SELECT what, by_user FROM evil.calls;
SELECT rolsuper FROM pg_roles WHERE rolname = 'regress_planter';

-- Clean up.
DROP PUBLICATION crdt_sendai;
DROP SCHEMA crdt_sendai, crdt_kobe CASCADE;
DELETE FROM distcount.crdt_replica_object;
DELETE FROM distcount.retired_node;
DELETE FROM distcount.outbox;
DROP TABLE public.sp_likes, public.sp_orders, public.sp_items;
DROP SCHEMA evil CASCADE;
DROP ROLE regress_planter;
