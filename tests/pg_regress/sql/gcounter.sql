-- gcounter: the worked example, text and binary forms, operators, aggregates.

-- Node A increments to 5, B to 3, C to 7, each on its own g_replica; merging gives 15.
CREATE TABLE g_replica (region text PRIMARY KEY, c gcounter);
INSERT INTO g_replica VALUES ('A', NULL), ('B', NULL), ('C', NULL);
UPDATE g_replica SET c = gcounter_inc(c, 5, 'A') WHERE region = 'A';
UPDATE g_replica SET c = gcounter_inc(c, 3, 'B') WHERE region = 'B';
UPDATE g_replica SET c = gcounter_inc(c, 1, 'C') WHERE region = 'C';
UPDATE g_replica SET c = gcounter_inc(c, 6, 'C') WHERE region = 'C';
SELECT region, c FROM g_replica ORDER BY region;
SELECT gcounter_merge_agg(c) AS merged, gcounter_value(gcounter_merge_agg(c)) AS total FROM g_replica;
SELECT * FROM gcounter_entries((SELECT gcounter_merge_agg(c) FROM g_replica));

-- Merging is idempotent: re-delivering a state changes nothing.
SELECT (SELECT gcounter_merge_agg(c) FROM g_replica) || c = (SELECT gcounter_merge_agg(c) FROM g_replica) AS idempotent
FROM g_replica ORDER BY region;

-- Increments: default by 1, a NULL counter is empty, a NULL increment changes nothing,
-- a zero increment adds no slot.
SELECT gcounter_inc(NULL, node => 'x');
SELECT gcounter_inc('{"x": 1}', 41, 'x');
SELECT gcounter_inc('{"x": 1}', NULL, 'x');
SELECT gcounter_inc(NULL, 0, 'x');
SELECT gcounter_inc(NULL, 9223372036854775807, 'x');

-- Text input: any order and spacing in, canonical (sorted, compact) out.
SELECT '{ "b" :2,"a":1 ,  "c": 3}'::gcounter;
SELECT '{}'::gcounter, gcounter_value('{}');
SELECT '{"zero": 0, "one": 1}'::gcounter AS zero_slots_dropped;
SELECT '{"quote\"back\\slash": 1, "日本": 2, "\u00e9": 3}'::gcounter;
-- Node ids sort by their UTF-8 bytes, whatever the database collation.
SELECT '{"b": 1, "B": 1, "a": 1, "é": 1}'::gcounter;

-- Equality, lattice order and merge.
SELECT '{"a": 1, "b": 2}'::gcounter = '{"b": 2, "a": 1}' AS eq,
       '{"a": 1}'::gcounter <> '{"a": 2}' AS ne,
       '{"a": 1}'::gcounter <= '{"a": 2, "b": 1}' AS le,
       '{"a": 3}'::gcounter <= '{"a": 2, "b": 1}' AS le_not,
       '{"a": 3}'::gcounter >= '{"a": 2}' AS ge,
       '{"a": 3}'::gcounter || '{"a": 2, "b": 1}' AS merged;
SELECT gcounter_merge(NULL, '{"a": 1}'), gcounter_merge('{"a": 1}', NULL), gcounter_merge(NULL, NULL) IS NULL AS both_null;

-- Hashing: DISTINCT and GROUP BY work on counters.
SELECT c, count(*) FROM (VALUES ('{"a": 1}'::gcounter), ('{"a": 1}'), ('{"b": 1}')) v(c) GROUP BY c ORDER BY c::text;
SELECT count(DISTINCT c) FROM (VALUES ('{"a": 1}'::gcounter), ('{"a": 1}'), ('{"b": 1}')) v(c);

-- Casts: bytea is the binary format; jsonb the text form.
SELECT '{"A": 5, "B": 3}'::gcounter::bytea;
SELECT '{"A": 5, "B": 3}'::gcounter::bytea::gcounter;
SELECT '{"A": 5, "B": 3}'::gcounter::jsonb, jsonb_typeof('{"A": 5}'::gcounter::jsonb -> 'A');
SELECT pg_column_size('{"A": 5, "B": 3}'::gcounter) AS bytes;

-- Aggregates: zero rows and all-NULL input give an empty counter; NULLs are skipped.
SELECT gcounter_merge_agg(c) FROM g_replica WHERE false;
SELECT gcounter_merge_agg(NULL::gcounter) FROM generate_series(1, 3);
SELECT gcounter_merge_agg(c) FILTER (WHERE region <> 'B') FROM g_replica;
SELECT region < 'B' AS early, gcounter_merge_agg(c) FROM g_replica GROUP BY 1 ORDER BY 1;

-- A parallel plan (partial aggregates, serialised states, combine) gives the same answer.
CREATE TABLE g_many AS
    SELECT gcounter_inc(NULL, i, 'node' || (i % 40)) AS c FROM generate_series(1, 100000) i;
ANALYZE g_many;
SELECT gcounter_merge_agg(c) AS serial_result FROM g_many \gset
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
EXPLAIN (COSTS OFF) SELECT gcounter_merge_agg(c) FROM g_many;
SELECT gcounter_merge_agg(c) = :'serial_result'::gcounter AS parallel_equals_serial,
       gcounter_value(gcounter_merge_agg(c)) AS total
FROM g_many;
RESET ALL;

-- The node id: the setting wins over the stored id.
SET pg_distcount.node_id = 'tokyo';
SELECT node_id(), gcounter_inc(NULL);
RESET pg_distcount.node_id;
SELECT node_id() = (SELECT id FROM distcount.node) AS stored_id_is_default,
       node_id() ~ '^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$' AS is_random_uuid;

-- ORDER BY and UNION use the byte order of the default btree class (arbitrary but stable).
SELECT c FROM (VALUES ('{"b": 1}'::gcounter), ('{"a": 2}'), ('{"a": 1}')) v(c) ORDER BY c;
SELECT '{"a": 1}'::gcounter UNION SELECT '{"a": 1}'::gcounter;
