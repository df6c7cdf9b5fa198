-- Aggregate states kept as values of the SQL type (expanded objects updated in place,
-- src/common/aggregate.rs): every plan shape gives the answer of a plain serial aggregate.
-- k takes 2,000 values in each group: hll sketches stay sparse (up to 2,048 values at
-- p = 14), whose bytes follow from the set of values alone (a dense sketch's martingale count
-- follows the order rows arrive in; hll_martingale.sql).
CREATE TABLE ev AS
SELECT i AS id, i % 7 AS g, (i * 7919) % 2000 AS k, 'key-' || (i % 300) AS t,
       gcounter_inc(NULL, i % 10 + 1, 'node-' || (i % 5)) AS gc,
       pncounter_inc(NULL, i % 10 - 4, 'node-' || (i % 5)) AS pn
FROM generate_series(1, 60000) i;
ANALYZE ev;

-- Which overloads keep which state (internal only where the argument type is polymorphic).
SELECT a.aggfnoid::regprocedure AS aggregate, a.aggtranstype::regtype AS state
FROM pg_aggregate a JOIN pg_proc p ON p.oid = a.aggfnoid
WHERE p.pronamespace = 'distcount'::regnamespace
  AND (p.proargtypes[0] IN ('bigint'::regtype, 'text'::regtype, 'anyelement'::regtype)
       OR p.proname LIKE '%merge_agg' OR p.proname LIKE '%union_agg')
ORDER BY a.aggfnoid::regprocedure::text;

-- The answers of one serial plan, to compare every other plan with.
CREATE TABLE serial_answer AS
SELECT g, hll_agg(k)::bytea AS h, approx_count_distinct(t) AS n, cms_agg(t, 0.01, 0.05, 0)::bytea AS c,
       gcounter_merge_agg(gc)::bytea AS gsum, pncounter_merge_agg(pn)::bytea AS psum
FROM ev GROUP BY g;

CREATE FUNCTION same_as_serial(query text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE differing bigint;
BEGIN
    EXECUTE format('SELECT count(*) FROM (%s) q FULL JOIN serial_answer s USING (g)
                    WHERE q.h IS DISTINCT FROM s.h OR q.n IS DISTINCT FROM s.n OR q.c IS DISTINCT FROM s.c
                       OR q.gsum IS DISTINCT FROM s.gsum OR q.psum IS DISTINCT FROM s.psum', query)
    INTO differing;
    RETURN CASE WHEN differing = 0 THEN 'same' ELSE differing || ' groups differ' END;
END $$;
\set answer 'SELECT g, hll_agg(k)::bytea AS h, approx_count_distinct(t) AS n, cms_agg(t, 0.01, 0.05, 0)::bytea AS c, gcounter_merge_agg(gc)::bytea AS gsum, pncounter_merge_agg(pn)::bytea AS psum FROM '

-- Sorted groups, hashed groups, and hashed groups spilled to disk at a tiny work_mem.
SET enable_hashagg = off;
SELECT same_as_serial(:'answer' || 'ev GROUP BY g') AS sorted;
RESET enable_hashagg;
SET enable_sort = off;
SELECT same_as_serial(:'answer' || 'ev GROUP BY g') AS hashed;
-- 60,000 groups of one row, then folded into the 7: states of every group in memory at once.
SET work_mem = '64kB';
CREATE FUNCTION spill_batches(query text) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE line text; batches integer := 0;
BEGIN
    FOR line IN EXECUTE 'EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) ' || query LOOP
        IF line ~ 'Batches: \d+' THEN
            batches := greatest(batches, substring(line FROM 'Batches: (\d+)')::integer);
        END IF;
    END LOOP;
    RETURN batches;
END $$;
SELECT spill_batches('SELECT id, hll_agg(k), cms_agg(t, 0.01, 0.05, 0), gcounter_merge_agg(gc) FROM ev GROUP BY id') > 1
    AS spilled;
SELECT count(*) FILTER (WHERE folded.h = s.h) AS hll_groups_equal,
       count(*) FILTER (WHERE folded.c = s.c) AS cms_groups_equal,
       count(*) FILTER (WHERE folded.gsum = s.gsum) AS gcounter_groups_equal
FROM (SELECT g, hll_union_agg(h1)::bytea AS h, cms_union_agg(c1)::bytea AS c, gcounter_merge_agg(g1)::bytea AS gsum
      FROM (SELECT id, min(g) AS g, hll_agg(k) AS h1, cms_agg(t, 0.01, 0.05, 0) AS c1, gcounter_merge_agg(gc) AS g1
            FROM ev GROUP BY id) per_row
      GROUP BY g) folded
JOIN serial_answer s USING (g);
RESET work_mem;
RESET enable_sort;

-- Parallel workers: partial states cross as flat values, combined by the union functions.
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
SET enable_hashagg = off;
EXPLAIN (COSTS OFF) SELECT g, approx_count_distinct(t) FROM ev GROUP BY g;
SELECT same_as_serial(:'answer' || 'ev GROUP BY g') AS parallel;
RESET ALL;

-- Partitionwise aggregation: each partition's partial state reaches the combine function as a
-- read-only pointer to the object, not as bytes.
CREATE TABLE ev_parts (LIKE ev) PARTITION BY HASH (id);
CREATE TABLE ev_p0 PARTITION OF ev_parts FOR VALUES WITH (MODULUS 3, REMAINDER 0);
CREATE TABLE ev_p1 PARTITION OF ev_parts FOR VALUES WITH (MODULUS 3, REMAINDER 1);
CREATE TABLE ev_p2 PARTITION OF ev_parts FOR VALUES WITH (MODULUS 3, REMAINDER 2);
INSERT INTO ev_parts SELECT * FROM ev;
ANALYZE ev_parts;
SET enable_partitionwise_aggregate = on;
SET max_parallel_workers_per_gather = 0;
EXPLAIN (COSTS OFF) SELECT g, hll_agg(k) FROM ev_parts GROUP BY g;
SELECT same_as_serial(:'answer' || 'ev_parts GROUP BY g') AS partitionwise;
RESET ALL;

-- Window frames: the final function reads the state between rows and must leave it intact.
SELECT count(*) FILTER (WHERE running_h IS DISTINCT FROM fresh_h) AS hll_frames_differing,
       count(*) FILTER (WHERE running_g IS DISTINCT FROM fresh_g) AS gcounter_frames_differing
FROM (SELECT id,
             hll_agg(k) OVER w AS running_h,
             gcounter_merge_agg(gc) OVER w AS running_g
      FROM ev WHERE id <= 400 WINDOW w AS (ORDER BY id ROWS UNBOUNDED PRECEDING)) r
JOIN LATERAL (SELECT hll_agg(k) AS fresh_h, gcounter_merge_agg(gc) AS fresh_g
              FROM ev e WHERE e.id <= r.id) f ON true;

-- Zero rows: the same neutral values as before.
SELECT hll_agg(k) = hll_empty() AS hll_empty, approx_count_distinct(k) AS none,
       gcounter_value(gcounter_merge_agg(gc)) AS g0, cms_total(cms_agg(t)) AS c0
FROM ev WHERE false;

-- The support functions, called by hand: finals read a stored value; transition functions run
-- only inside their aggregate.
SELECT hll_final(hll_agg(k)) = hll_agg(k) AS final_of_value, hll_count_final(hll_agg(k)) = # hll_agg(k) AS count_of_value
FROM ev;
SELECT error_of($$ SELECT distcount.hll_union_trans(NULL, distcount.hll_empty()) $$);
SELECT error_of($$ SELECT distcount.hll_agg_trans(distcount.hll_empty(), 1::bigint) $$);
SELECT error_of($$ SELECT distcount.gcounter_merge_trans(NULL, '{}'::distcount.gcounter) $$);
SELECT error_of($$ SELECT distcount.cms_agg_trans(NULL::distcount.cms, 'a'::text) $$);

-- An aggregate of the user's own that hands one family's internal state to another's final
-- function gets a clean error, not a misread of memory.
CREATE AGGREGATE confused(anyelement) (
    SFUNC = distcount.cms_agg_trans, STYPE = internal, FINALFUNC = distcount.hll_final);
SELECT error_of($$ SELECT confused(t) FROM ev $$);
CREATE AGGREGATE confused_count(anyelement) (
    SFUNC = distcount.hll_agg_trans, STYPE = internal, FINALFUNC = distcount.cms_final);
SELECT error_of($$ SELECT confused_count(t) FROM ev $$);
DROP AGGREGATE confused(anyelement);
DROP AGGREGATE confused_count(anyelement);
DROP TABLE ev, ev_parts, serial_answer;
DROP FUNCTION same_as_serial(text), spill_batches(text);
