-- Sharded counters: create, add, read exactly and from the cache, roll up, reshard, drop.
-- Other sessions' slots are simulated by writing slot rows directly (the integration test
-- tests/integration/sharded_counters.sh runs real concurrent writers).

SELECT counter_create('likes');
SELECT counter_add('likes');
SELECT counter_add('likes', 41);
SELECT counter_add('likes', -2);
SELECT counter_value('likes');
-- A name never created or added to reads as NULL, from both readers.
SELECT counter_value('never') IS NULL AS exact_null, counter_value_cached('never') IS NULL AS cached_null;

-- The write went to this backend's slot: backend_slot() % shards.
SELECT s.slot = backend_slot() % c.shards AS own_slot, s.value
  FROM distcount.counter c JOIN distcount.counter_slot s ON s.id = c.id WHERE c.name = 'likes';
SELECT name, mode, shards, value, slot_rows, delta_rows, last_rollup IS NULL AS never_rolled_up,
       cached_value, cached_at IS NULL AS no_cache
  FROM counters ORDER BY name;

-- An unknown name is created on first add, with pg_distcount.default_shards shards.
SHOW pg_distcount.default_shards;
SET pg_distcount.default_shards = 4;
SELECT counter_add('post:1', -3);
RESET pg_distcount.default_shards;
SELECT name, mode, shards, value FROM counters WHERE name = 'post:1';

-- Other sessions' slots (as if written by three other backends, 3, 7 and 15 slots away).
INSERT INTO distcount.counter_slot (id, slot, value, name)
SELECT c.id, (backend_slot() + v.offset_) % 16, v.value, c.name FROM distcount.counter c,
       (VALUES (3, 100), (7, 1000), (15, 10000)) v(offset_, value)
 WHERE c.name = 'likes';
SELECT counter_value('likes');

-- Without a roll-up there is no cache: the cached reader computes the exact value.
SELECT counter_value_cached('likes');
-- The roll-up folds every non-zero slot into the base and caches the value.
SELECT counter_rollup('likes');
SELECT c.base, c.cached_value, c.cached_at = c.last_rollup AS cache_time_is_rollup_time,
       (SELECT count(*) FROM distcount.counter_slot s WHERE s.id = c.id AND s.value <> 0) AS nonzero_slots
  FROM distcount.counter c WHERE c.name = 'likes';
SELECT counter_value('likes');
-- Nothing left to fold.
SELECT counter_rollup('likes');
-- After another add, the cache is stale: a generous max_age returns the cached value, a zero
-- max_age the exact one.
SELECT counter_add('likes', 5);
SELECT counter_value_cached('likes', '1 hour') AS cached, counter_value_cached('likes', '0') AS exact,
       counter_value('likes') AS value;

-- Reading from the cache never writes: the row's version stays the same.
SELECT xmin AS before_xmin FROM distcount.counter WHERE name = 'likes' \gset
SELECT counter_value_cached('likes', '1 hour');
SELECT xmin = :'before_xmin'::xid AS unchanged FROM distcount.counter WHERE name = 'likes';

-- Mode deltas: every add appends a row; the roll-up folds them into the base.
SELECT counter_create('views', 8, 'deltas');
SELECT counter_add('views', d) FROM generate_series(1, 10) d;
SELECT name, mode, shards, value, slot_rows, delta_rows FROM counters WHERE name = 'views';
SELECT counter_rollup('views');
SELECT name, mode, shards, value, slot_rows, delta_rows, cached_value FROM counters WHERE name = 'views';

-- Reshard down: slots 2 and above are folded into the base; the value does not move.
SELECT counter_create('shares', 8);
INSERT INTO distcount.counter_slot (id, slot, value, name)
SELECT c.id, g, 10 * g + 1, c.name FROM distcount.counter c, generate_series(0, 7) g WHERE c.name = 'shares';
SELECT counter_value('shares');
SELECT counter_reshard('shares', 2);
SELECT name, shards, value, slot_rows FROM counters WHERE name = 'shares';
SELECT base FROM distcount.counter WHERE name = 'shares';
-- A writer that still used the old count leaves a slot beyond the new one: it is counted,
-- and the next roll-up folds and deletes it.
INSERT INTO distcount.counter_slot (id, slot, value, name)
SELECT id, 5, 1000, name FROM distcount.counter WHERE name = 'shares';
SELECT counter_value('shares');
SELECT counter_rollup('shares');
SELECT name, shards, value, slot_rows FROM counters WHERE name = 'shares';
SELECT slot, value FROM distcount.counter_slot s JOIN distcount.counter c ON c.id = s.id
 WHERE c.name = 'shares' ORDER BY slot;
-- Reshard up: only the count changes.
SELECT counter_reshard('shares', 1024);
SELECT name, shards, value, slot_rows FROM counters WHERE name = 'shares';

-- counter_rollup() with no name rolls up every counter that has something to fold.
SELECT counter_add('likes', 1);
SELECT counter_add('views', 1);
SELECT counter_rollup();
SELECT name, value, cached_value FROM counters ORDER BY name;
SELECT counter_rollup();

-- Drop: the counter and its rows are gone; the name reads as NULL.
SELECT counter_drop('views');
SELECT counter_value('views') IS NULL AS gone;
SELECT count(*) FROM distcount.counter_delta;
SELECT counter_add('views');
SELECT name, mode, shards, value FROM counters WHERE name = 'views';

-- The values survive in a consistent snapshot: a roll-up moves value between rows in one
-- transaction, so a reader's sum never changes.
BEGIN;
SELECT counter_add('likes', 10);
SELECT counter_value('likes');
SELECT counter_rollup('likes');
SELECT counter_value('likes');
ROLLBACK;
SELECT counter_value('likes');

-- Labels: volatility, strictness, parallel safety, a pinned search_path, a comment each.
SELECT p.proname, pg_get_function_identity_arguments(p.oid) AS args, p.provolatile, p.proisstrict,
       p.proparallel, p.proconfig, obj_description(p.oid, 'pg_proc') IS NOT NULL AS commented
  FROM pg_proc p
 WHERE p.pronamespace = 'distcount'::regnamespace
   AND (p.proname LIKE 'counter\_%' OR p.proname = 'backend_slot')
 ORDER BY p.proname;
SELECT obj_description('distcount.counters'::regclass, 'pg_class') IS NOT NULL AS view_commented;
-- Slot rows leave room on each page for HOT updates.
SELECT reloptions FROM pg_class WHERE oid = 'distcount.counter_slot'::regclass;

SELECT counter_drop(name) FROM distcount.counter ORDER BY name;
SELECT count(*) FROM counters;

-- counter_add_direct is counter_add's write into a Citus worker's own shards: without Citus it
-- declines and writes nothing.
SELECT distcount.counter_add_direct('direct-x', 1, 0) AS direct, distcount.counter_value('direct-x') AS value;
