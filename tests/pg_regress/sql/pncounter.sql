-- pncounter: the worked example, decrements, text and binary forms, operators, aggregates.

-- P {A: 10, B: 5, C: 8}, N {A: 2, B: 1, C: 0}: value 20.
SELECT pncounter_value('{"A": [10, 2], "B": [5, 1], "C": [8, 0]}') AS value;
SELECT * FROM pncounter_entries('{"C": [8, 0], "A": [10, 2], "B": [5, 1]}');

-- Built from increments on three replicas, then merged.
CREATE TABLE pn_replica (region text PRIMARY KEY, c pncounter);
INSERT INTO pn_replica
SELECT 'A', pncounter_inc(pncounter_inc(NULL, 10, 'A'), -2, 'A') UNION ALL
SELECT 'B', pncounter_inc(pncounter_inc(NULL, 5, 'B'), -1, 'B') UNION ALL
SELECT 'C', pncounter_inc(NULL, 8, 'C');
SELECT region, c, pncounter_value(c) FROM pn_replica ORDER BY region;
SELECT pncounter_merge_agg(c), pncounter_value(pncounter_merge_agg(c)) FROM pn_replica;

-- A negative increment goes to N; the value may go below zero.
SELECT pncounter_inc(NULL, -5, 'x') AS c, pncounter_value(pncounter_inc(NULL, -5, 'x')) AS value;
SELECT pncounter_inc('{"x": [3, 1]}', node => 'x');
SELECT pncounter_inc('{"x": [3, 1]}', NULL, 'x');
SELECT '{"x": [0, 0], "y": [0, 1]}'::pncounter AS zero_slots_dropped;

-- Merge takes P and N separately per node.
SELECT '{"a": [5, 1]}'::pncounter || '{"a": [3, 4], "b": [1, 0]}' AS merged;
SELECT '{"a": [5, 1]}'::pncounter <= '{"a": [5, 2]}' AS le,
       '{"a": [5, 1]}'::pncounter <= '{"a": [4, 2]}' AS le_not,
       '{"a": [5, 2]}'::pncounter >= '{"a": [5, 1]}' AS ge,
       '{"a": [1, 1]}'::pncounter = '{"a": [1, 1]}' AS eq,
       '{"a": [1, 1]}'::pncounter <> '{"a": [1, 2]}' AS ne;

-- Casts.
SELECT '{"A": [10, 2]}'::pncounter::bytea;
SELECT '{"A": [10, 2]}'::pncounter::bytea::pncounter;
SELECT '{"A": [10, 2]}'::pncounter::jsonb -> 'A' -> 1 AS n;

-- Aggregates over zero rows, NULLs and groups; a parallel plan agrees with a serial one.
SELECT pncounter_merge_agg(c) FROM pn_replica WHERE false;
SELECT pncounter_merge_agg(NULL::pncounter);
CREATE TABLE pn_many AS
    SELECT pncounter_inc(NULL, (i % 7) - 3, 'node' || (i % 25)) AS c FROM generate_series(1, 100000) i;
ANALYZE pn_many;
SELECT pncounter_merge_agg(c) AS serial_result FROM pn_many \gset
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
EXPLAIN (COSTS OFF) SELECT pncounter_merge_agg(c) FROM pn_many;
SELECT pncounter_merge_agg(c) = :'serial_result'::pncounter AS parallel_equals_serial FROM pn_many;
RESET ALL;
