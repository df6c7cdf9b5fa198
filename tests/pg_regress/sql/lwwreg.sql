-- lwwreg: last writer wins, on a hybrid logical clock.

-- The article's example: A writes ("Alice", 1000), B writes ("Bob", 1002); the merge keeps Bob,
-- in either order, and says what it discarded.
SELECT lww_set_at(NULL, '"Alice"', '2026-01-01 00:00:01+00', 'a') AS a,
       lww_set_at(NULL, '"Bob"', '2026-01-01 00:00:01.002+00', 'b') AS b \gset
SELECT lww_value(:'a' || :'b'::lwwreg) AS a_b, lww_value(:'b' || :'a'::lwwreg) AS b_a;
SELECT * FROM lww_merge_report(:'a', :'b');
SELECT (lww_merge_report(:'b', :'b')).discarded_value IS NULL AS nothing_discarded;

-- Equal stamps: the node id decides, then the value bytes.
SELECT lww_node(lww_set_at(NULL, '1', '2026-01-01+00', 'tokyo') || lww_set_at(NULL, '2', '2026-01-01+00', 'virginia')) AS tie_node,
       lww_value(lww_set_at(NULL, '1', '2026-01-01+00', 'tokyo') || lww_set_at(NULL, '2', '2026-01-01+00', 'tokyo')) AS tie_value;

-- A writer whose clock is an hour behind the stamp it read still wins over it: the write
-- keeps the stamp's time and counts its logical part up.
SELECT lww_set_at(NULL, '{"name": "Alice"}', now() + interval '1 hour', 'tokyo') AS read_state \gset
SELECT lww_set(:'read_state', '{"name": "Bob"}', 'virginia') AS written \gset
SELECT lww_value(:'read_state' || :'written'::lwwreg) AS winner,
       lww_stamp(:'written') = lww_stamp(:'read_state') AS same_time, lww_tick(:'written') AS tick;
-- A write stamped by its own older clock loses, and lww_set_at says so by keeping the register.
SELECT lww_set_at(:'read_state', '"late"', now(), 'osaka') = :'read_state'::lwwreg AS older_write_loses;

-- Text, binary and jsonb forms; values are stored canonical (jsonb's own form).
SELECT '{"node": "n", "stamp": "2026-12-04T19:40:00.123456Z", "tick": 2, "value": {"b": 1, "a": [1, 2.50]}}'::lwwreg;
SELECT '{}'::lwwreg AS empty, lww_value('{}') IS NULL AS no_value, lww_node('{}') IS NULL AS no_node;
SELECT r::text::lwwreg = r AS text_round_trip, r::bytea::lwwreg = r AS bytea_round_trip,
       r::jsonb -> 'value' = lww_value(r) AS jsonb_cast
FROM (SELECT lww_set(NULL, '{"x": [1, "two", null]}', 'n') AS r) s;

-- The merge aggregate: the greatest write, NULLs skipped, zero rows NULL; parallel plans agree.
CREATE TABLE profile_writes AS
SELECT i, lww_set_at(NULL, jsonb_build_object('v', i), '2026-01-01+00'::timestamptz + (i % 97) * interval '1 second',
                     'node' || (i % 3)) AS r
FROM generate_series(1, 20000) i;
SELECT lww_value(lww_merge_agg(r)) AS latest, lww_node(lww_merge_agg(r)) AS by_node FROM profile_writes;
SELECT lww_merge_agg(r) IS NULL AS zero_rows FROM profile_writes WHERE false;
SELECT lww_merge_agg(r) AS serial FROM profile_writes \gset
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
SELECT lww_merge_agg(r) = :'serial'::lwwreg AS parallel_equals_serial FROM profile_writes;
RESET ALL;
SELECT lww_merge_agg(r ORDER BY i DESC) = :'serial'::lwwreg AS order_does_not_matter FROM profile_writes;
SELECT count(*) AS distinct_registers FROM (SELECT r FROM profile_writes GROUP BY r) g;
DROP TABLE profile_writes;

-- Errors, each with its SQLSTATE.
SELECT error_of($$ SELECT lww_set(NULL, NULL, 'n') $$);
SELECT error_of($$ SELECT lww_set(NULL, '1', NULL) $$);
SELECT error_of($$ SELECT lww_set(NULL, '1', '') $$);
SELECT error_of($$ SELECT lww_set_at(NULL, '1', NULL, 'n') $$);
SELECT error_of($$ SELECT lww_set_at(NULL, '1', 'infinity', 'n') $$);
SELECT error_of($$ SELECT lww_set_at(NULL, '1', '10000-01-01+00', 'n') $$);
SELECT error_of($$ SELECT lww_set(NULL, to_jsonb(repeat('x', 1048577)), 'n') $$);
SELECT error_of($$ SELECT '{"stamp": "2026-12-04T19:40:00.123456Z", "node": "n", "tick": 0, "value": 1}'::lwwreg $$);
SELECT error_of($$ SELECT '{"node": "n", "stamp": "2026-12-04 19:40:00", "tick": 0, "value": 1}'::lwwreg $$);
SELECT error_of($$ SELECT '{"node": "n", "stamp": "2026-12-04T19:40:00.123456Z", "tick": 0, "value": {"a": }}'::lwwreg $$);
SELECT error_of($$ SELECT '{"node": "n", "stamp": "2026-12-04T19:40:00.123456Z", "tick": 0, "value": tru}'::lwwreg $$);
SELECT error_of($$ SELECT '\x0101'::bytea::lwwreg $$);
SELECT error_of($$ SELECT '\x0102'::bytea::lwwreg $$);
-- A value that is valid JSON but not jsonb's canonical text is refused in binary form.
SELECT error_of(format('SELECT %L::bytea::lwwreg',
    overlay(lww_set_at(NULL, '{"a": 1}', '2026-01-01+00', 'n')::bytea PLACING '{"a":1} '::bytea
            FROM length(lww_set_at(NULL, '{"a": 1}', '2026-01-01+00', 'n')::bytea) - 7)));
