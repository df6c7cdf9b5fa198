-- Bad input to the sharded counters gives a clear ERROR with its SQLSTATE.
-- error_of() (from setup) shows "SQLSTATE: message | detail".

-- NULL names (22004) and empty names (22023), everywhere a name is taken.
SELECT error_of($$ SELECT counter_create(NULL) $$);
SELECT error_of($$ SELECT counter_create('') $$);
SELECT error_of($$ SELECT counter_add(NULL) $$);
SELECT error_of($$ SELECT counter_add('', 1) $$);
SELECT error_of($$ SELECT counter_value(NULL) $$);
SELECT error_of($$ SELECT counter_value_cached(NULL) $$);
SELECT error_of($$ SELECT counter_reshard(NULL, 4) $$);
SELECT error_of($$ SELECT counter_drop(NULL) $$);

-- Shard counts outside 1..1024 (22023) or NULL (22004).
SELECT error_of($$ SELECT counter_create('c', 0) $$);
SELECT error_of($$ SELECT counter_create('c', -1) $$);
SELECT error_of($$ SELECT counter_create('c', 1025) $$);
SELECT error_of($$ SELECT counter_create('c', NULL) $$);
SELECT counter_create('c', 1024);
SELECT error_of($$ SELECT counter_reshard('c', 0) $$);
SELECT error_of($$ SELECT counter_reshard('c', 2000) $$);
SELECT error_of($$ SELECT counter_reshard('c', NULL) $$);
-- (The library must be loaded for the setting to be checked: backend_slot() loads it.)
SELECT backend_slot() >= 0 AS loaded;
SELECT error_of($$ SET pg_distcount.default_shards = 0 $$);
SELECT error_of($$ SET pg_distcount.default_shards = 1025 $$);

-- Unknown or NULL mode.
SELECT error_of($$ SELECT counter_create('d', 4, 'rows') $$);
SELECT error_of($$ SELECT counter_create('d', 4, NULL) $$);

-- NULL delta (22004); bad max_age (22004, 22023).
SELECT error_of($$ SELECT counter_add('c', NULL) $$);
SELECT error_of($$ SELECT counter_value_cached('c', NULL) $$);
SELECT error_of($$ SELECT counter_value_cached('c', '-1 second') $$);

-- Creating twice (42710); resharding, rolling up or dropping what does not exist (42704).
SELECT error_of($$ SELECT counter_create('c') $$);
SELECT error_of($$ SELECT counter_reshard('nope', 4) $$);
SELECT error_of($$ SELECT counter_rollup('nope') $$);
SELECT error_of($$ SELECT counter_drop('nope') $$);

-- Overflow (22003): one slot, and the sum of several slots when read or rolled up.
SELECT counter_add('big', 9223372036854775807);
SELECT error_of($$ SELECT counter_add('big', 1) $$);
SELECT counter_value('big');
SELECT counter_create('sum', 4);
INSERT INTO distcount.counter_slot (id, slot, value, name)
SELECT id, g, 4611686018427387904, name FROM distcount.counter, generate_series(0, 1) g WHERE name = 'sum';
SELECT error_of($$ SELECT counter_value('sum') $$);
SELECT error_of($$ SELECT counter_rollup('sum') $$);
SELECT error_of($$ SELECT value FROM counters WHERE name = 'sum' $$);
-- counter_rollup() reports one counter's failure as a warning and rolls up the others.
SELECT counter_add('c', 7);
SELECT counter_rollup();
SELECT counter_value_cached('c', '1 hour');

-- Nothing was lost: the failed operations left every value as it was.
SELECT counter_value('big'), counter_value('c');
SELECT counter_drop(name) FROM distcount.counter ORDER BY name;

-- counter_node() says which Citus worker holds a counter; without Citus it says that it needs
-- Citus, after the name checks.
SELECT counter_node('c');
SELECT counter_node(NULL);
SELECT counter_node('');
