-- cms: frequencies, bounds, heavy hitters, unions and sliding windows.

-- A Zipf-like stream: a million events over 100,000 keys (deterministic: PG 15's PRNG).
-- Serial plans here: the heavy-hitter list depends on the order rows arrive in, and a parallel
-- plan would make that order, and so the expected output, vary between runs.
SET max_parallel_workers_per_gather = 0;
SELECT setseed(0.42);
CREATE TABLE events AS
    SELECT i AS id, floor(100000 * power(random(), 3))::int AS url FROM generate_series(1, 1000000) i;
CREATE TABLE truth AS SELECT url, count(*) AS n FROM events GROUP BY url;
CREATE TABLE sketch AS SELECT cms_agg(url) AS c FROM events;
SELECT cms_info(c) ->> 'width' AS width, cms_info(c) ->> 'depth' AS depth, cms_total(c) AS total,
       cms_info(c) ->> 'error_bound' AS error_bound FROM sketch;
-- Never below the truth; over truth + epsilon*N for at most a share delta of the keys.
SELECT count(*) AS keys,
       count(*) FILTER (WHERE cms_estimate(c, url) < n) AS below_truth,
       count(*) FILTER (WHERE cms_estimate(c, url) > n + 1000) <= 0.01 * count(*) AS within_delta
FROM truth, sketch;
-- The true top 10, from one sketch and from the union of 60 partition sketches.
CREATE TABLE parts AS SELECT id % 60 AS part, cms_agg(url) AS c FROM events GROUP BY 1;
SELECT (SELECT array_agg(url ORDER BY url) FROM (SELECT * FROM truth ORDER BY n DESC, url LIMIT 10) t)
     = (SELECT array_agg(item::int ORDER BY item::int) FROM cms_topk((SELECT c FROM sketch), 10))
       AS top10_one_sketch,
       (SELECT array_agg(url ORDER BY url) FROM (SELECT * FROM truth ORDER BY n DESC, url LIMIT 10) t)
     = (SELECT array_agg(item::int ORDER BY item::int) FROM cms_topk((SELECT cms_union_agg(c) FROM parts), 10))
       AS top10_union_of_60;
SELECT item, estimate, lower <= estimate AND estimate <= upper AS ordered, guaranteed
FROM cms_topk((SELECT cms_union_agg(c) FROM parts), 3);
-- The union of the parts has the same counters as the sketch of the whole.
SELECT (SELECT cms_estimate(cms_union_agg(c), 12345) FROM parts) = (SELECT cms_estimate(c, 12345) FROM sketch)
       AS union_estimates_match;

-- Point queries read only the header and one counter per row of a stored sketch: the type is
-- stored uncompressed (storage external), and a value of more than 16 kB is read by TOAST
-- slices. A compressed column and an in-memory copy give the same answers for every key.
SELECT a.attstorage AS sketch_storage, pg_column_size(c) = octet_length(c::bytea) AS stored_uncompressed,
       octet_length(c::bytea) > 16384 AS read_by_slices
FROM sketch, pg_attribute a WHERE a.attrelid = 'sketch'::regclass AND a.attname = 'c';
CREATE TABLE wide AS SELECT cms_agg(url, 0.0001, 0.01) AS c FROM events WHERE id <= 100000;
CREATE TABLE wide_compressed (c cms);
ALTER TABLE wide_compressed ALTER COLUMN c SET STORAGE EXTENDED;
INSERT INTO wide_compressed SELECT c FROM wide;
SELECT pg_column_size(w.c) = octet_length(w.c::bytea) AS wide_uncompressed,
       pg_column_size(z.c) < octet_length(z.c::bytea) AS wide_compressed,
       cms_info(w.c) ->> 'counter_form' AS form, cms_info(w.c) ->> 'counter_bytes' AS cell_bytes,
       (cms_info(w.c) ->> 'overflow')::int > 0 AS overflow_list
FROM wide w, wide_compressed z;
WITH in_memory AS MATERIALIZED (SELECT (SELECT cms_union_agg(c) FROM sketch) AS c, (SELECT cms_union_agg(c) FROM wide) AS w)
SELECT count(*) AS keys,
       count(*) FILTER (WHERE cms_estimate(s.c, url) <> cms_estimate(m.c, url)
                           OR cms_estimate(w.c, url) <> cms_estimate(m.w, url)
                           OR cms_estimate(z.c, url) <> cms_estimate(m.w, url)) AS estimates_differ,
       count(*) FILTER (WHERE cms_bounds_array(s.c, url) <> cms_bounds_array(m.c, url)
                           OR cms_bounds_array(w.c, url) <> cms_bounds_array(m.w, url)
                           OR cms_bounds_array(z.c, url) <> cms_bounds_array(m.w, url)) AS bounds_differ,
       count(*) FILTER (WHERE cms_exceeds(s.c, url, n) <> cms_exceeds(m.c, url, n)
                           OR cms_exceeds(w.c, url, n / 10) <> cms_exceeds(z.c, url, n / 10)) AS thresholds_differ,
       count(*) FILTER (WHERE cms_estimate(s.c, url) < n) AS below_truth,
       bool_and(cms_total(s.c) = 1000000 AND cms_total(w.c) = 100000 AND cms_total(z.c) = 100000) AS totals
FROM truth, sketch s, wide w, wide_compressed z, in_memory m WHERE url % 20 = 0;

-- A different stored sketch on every call (each read by slices above 16 kB) answers as an
-- in-memory copy: dense sketches of 1-byte cells with overflow lists, and the small sparse ones.
CREATE TABLE wide_parts AS
    SELECT id % 10 AS part, cms_agg(url, 0.0002, 0.01) AS c FROM events WHERE id <= 200000 GROUP BY 1;
SELECT count(*) AS calls, count(*) FILTER (WHERE big) AS on_slices,
       count(DISTINCT form) AS forms,
       count(*) FILTER (WHERE cms_estimate(c, k) <> cms_estimate(c + cms_empty(), k)
                           OR cms_total(c) <> cms_total(c + cms_empty())) AS differ
FROM (SELECT k, c, octet_length(c::bytea) > 16384 AS big, cms_info(c) ->> 'counter_form' AS form
      FROM generate_series(0, 99) k,
           (SELECT part, c FROM wide_parts UNION ALL
            SELECT 100 + id, cms_agg(url) FROM events WHERE id <= 20 GROUP BY id) p
      ORDER BY k, part OFFSET 0) s;
SELECT count(*) FILTER (WHERE (cms_info(c) ->> 'overflow')::int > 0) AS with_overflow_list
FROM wide_parts;

-- A point query reads each chunk it needs where the value's chunks would be had they been
-- written one after the other, and looks it up in the TOAST index when it is not there. Space
-- freed by deleted rows and reused scatters a value's chunks: the answers stay those of an
-- in-memory copy.
CREATE TABLE holes (id int, c cms);
INSERT INTO holes SELECT id % 200, cms_agg(url, 0.003, 0.01) FROM events WHERE id <= 20000 GROUP BY 1;
DELETE FROM holes WHERE id % 2 = 1;
VACUUM holes;
INSERT INTO holes SELECT 1000 + id % 10, cms_agg(url, 0.0002, 0.01) FROM events WHERE id <= 200000 GROUP BY id % 10;
SELECT c.relname AS holes_toast FROM pg_class c
WHERE c.oid = (SELECT reltoastrelid FROM pg_class WHERE relname = 'holes') \gset
SELECT count(*) FILTER (WHERE (blk, off) <> (CASE WHEN poff < 4 THEN pblk ELSE pblk + 1 END,
                                             CASE WHEN poff < 4 THEN poff + 1 ELSE 1 END)) > 0 AS chunks_out_of_place
FROM (SELECT (ctid::text::point)[0]::int AS blk, (ctid::text::point)[1]::int AS off,
             lag((ctid::text::point)[0]::int) OVER w AS pblk, lag((ctid::text::point)[1]::int) OVER w AS poff
      FROM pg_toast.:holes_toast
      WHERE chunk_id IN (SELECT chunk_id FROM pg_toast.:holes_toast GROUP BY 1 HAVING count(*) > 10)
      WINDOW w AS (PARTITION BY chunk_id ORDER BY chunk_seq)) s
WHERE pblk IS NOT NULL;
SELECT count(*) AS calls,
       count(*) FILTER (WHERE cms_estimate(c, k) <> cms_estimate(c + cms_empty(), k)
                           OR cms_bounds_array(c, k) <> cms_bounds_array(c + cms_empty(), k)) AS differ
FROM (SELECT k, c FROM generate_series(0, 199) k, holes WHERE id >= 1000 ORDER BY k, id OFFSET 0) s;
DROP TABLE holes;

-- Format version 1 (written by 0.1.0; stored values keep it until rewritten) is accepted by
-- every input path, with the same answers, and comes in as version 2.
SELECT cms_info(v1) ->> 'format_version' AS version, cms_info(v1) ->> 'counter_form' AS form,
       cms_total(v1) AS total, cms_estimate(v1, 'a'::bytea) AS a, cms_estimate(v1, 'c'::bytea) AS c,
       octet_length(v1::bytea) AS bytes, v1 = ('cms1:' || translate(encode(v1::bytea, 'base64'), E'\n', ''))::cms AS same_by_text
FROM (SELECT ('\x010001000000000000e03f000000000000e03f06000000010000000200000006000000000000000100000000000000'
              '020000000000020000040101000000610300000000000000000000000000000001010000006302000000000000000000000000000000')::bytea::cms AS v1) s;

-- Keys of any type; int2/int4/int8 alike; text keys kept whole in the heavy list.
SELECT cms_estimate(cms_agg(k::int2), 7::int8) AS ints_alike FROM (SELECT 7 AS k FROM generate_series(1, 5)) s;
SELECT * FROM cms_topk((SELECT cms_agg(k) FROM (VALUES ('/home'), ('/home'), ('/cart'), ('/home')) v(k)), 2);
SELECT * FROM cms_topk((SELECT cms_agg(k) FROM (VALUES ('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid)) v(k)), 1);

-- cms_add, weights, bounds and thresholds (rate limits).
SELECT cms_total(s), cms_estimate(s, 'alice'::text), cms_estimate(s, 'bob'::text), cms_estimate(s, 'carol'::text)
FROM (SELECT cms_add(cms_add(cms_add(NULL, 'alice'::text, 5), 'bob'::text), 'alice'::text, 2) AS s) x;
SELECT b.* FROM (SELECT cms_add(NULL, 'alice'::text, 5) AS s) x, cms_bounds(s, 'alice'::text) b;
SELECT cms_exceeds(s, 'alice'::text, 4) AS over_4, cms_exceeds(s, 'alice'::text, 5) AS over_5
FROM (SELECT cms_add(NULL, 'alice'::text, 5) AS s) x;
SELECT cms_total(cms_agg_weighted(k, w, 0.01, 0.01)) AS weighted_total,
       cms_estimate(cms_agg_weighted(k, w, 0.01, 0.01), 'x'::text) AS x
FROM (VALUES ('x', 10), ('y', 3), ('x', -4)) v(k, w);

-- Union and subtraction; a sliding window gives each frame's union.
SELECT cms_total(a + b) AS total, cms_total((a + b) - b) = cms_total(a) AS subtract_restores,
       (a + b) - b = a AS same_counters
FROM (SELECT cms_agg(url, 0.01, 0.01, 0) AS a FROM events WHERE id <= 1000) x,
     (SELECT cms_agg(url, 0.01, 0.01, 0) AS b FROM events WHERE id > 1000 AND id <= 3000) y;
CREATE TABLE minutes AS SELECT id / 100000 AS minute, cms_agg(url) AS c FROM events GROUP BY 1;
SELECT minute, cms_total(cms_union_agg(c) OVER w) AS last_3_minutes,
       sum(cms_total(c)) OVER w AS expected
FROM minutes WINDOW w AS (ORDER BY minute ROWS 2 PRECEDING) ORDER BY minute;

-- Zero rows give an empty sketch; sizes grow with the largest counter.
SELECT cms_total(cms_agg(url)), cms_info(cms_agg(url)) ->> 'bytes' AS bytes FROM events WHERE false;
SELECT cms_info(cms_agg(url)) ->> 'bytes' AS bytes_after_1000 FROM events WHERE id <= 1000;
SELECT cms_info(c) ->> 'bytes' AS bytes_after_1m, cms_info(c) ->> 'counter_bytes' AS counter_bytes FROM sketch;
SELECT cms_info(cms_empty(0.01, 0.05, 10, 'conservative'));

-- Text and binary forms round trip.
SELECT c::text::cms = c AS text_round_trip, c::bytea::cms = c AS bytea_round_trip FROM sketch;

-- Parallel plans give the serial answer (without heavy hitters, whose list depends on order).
SELECT cms_agg(url, 0.01, 0.01, 0) AS serial FROM events \gset
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
EXPLAIN (COSTS OFF) SELECT cms_agg(url, 0.01, 0.01, 0) FROM events;
SELECT cms_agg(url, 0.01, 0.01, 0) = :'serial'::cms AS parallel_equals_serial FROM events;
RESET ALL;

-- Point queries do not depend on input order or plan: small heavy lists (4) over skewed parts,
-- unioned in three orders, serially and in parallel, and over sliding frames.
CREATE TABLE cms_parts AS
  SELECT d AS day, cms_agg(((d * 17 + 1000 / (1 + x % 97)) % 500)::text, 0.01, 0.01, 4) AS hits
  FROM generate_series(1, 20) d, generate_series(1, 3000) x GROUP BY d;
SELECT bool_and(cms_estimate(a, k::text) = cms_estimate(b, k::text)
                AND cms_estimate(a, k::text) = cms_estimate(c, k::text)) AS same_estimates,
       bool_and(cms_bounds(a, k::text) = cms_bounds(c, k::text)) AS same_bounds,
       count(*) FILTER (WHERE cms_estimate(a, k::text) > 0) AS keys_seen
FROM (SELECT cms_union_agg(hits ORDER BY day) AS a, cms_union_agg(hits ORDER BY day DESC) AS b,
             cms_union_agg(hits ORDER BY md5(day::text)) AS c FROM cms_parts) s,
     generate_series(0, 1000) k;
-- (The heavy-hitter lists themselves differ by order here, as bounded lists must.)
SELECT count(DISTINCT (SELECT array_agg(t.item ORDER BY t.item) FROM cms_topk(u, 4) t)) AS distinct_top4_lists
FROM (SELECT cms_union_agg(hits ORDER BY day) FROM cms_parts
      UNION ALL SELECT cms_union_agg(hits ORDER BY day DESC) FROM cms_parts
      UNION ALL SELECT cms_union_agg(hits ORDER BY md5(day::text)) FROM cms_parts) AS s(u);
SELECT cms_union_agg(hits ORDER BY day) AS ordered FROM cms_parts \gset
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
SELECT bool_and(cms_estimate(p, k::text) = cms_estimate(:'ordered'::cms, k::text)) AS parallel_same_estimates
FROM (SELECT cms_union_agg(hits) AS p FROM cms_parts) s, generate_series(0, 1000) k;
RESET ALL;
-- A sliding frame gives what a fresh union of that frame gives.
SELECT bool_and(w.frame = (SELECT cms_union_agg(p.hits ORDER BY p.day) FROM cms_parts p
                           WHERE p.day BETWEEN w.day - 4 AND w.day)) AS frames_equal_fresh_unions
FROM (SELECT day, cms_union_agg(hits) OVER (ORDER BY day ROWS 4 PRECEDING) AS frame FROM cms_parts) w;
-- A zero-row aggregate of any shape is neutral in a union.
SELECT cms_union(z, :'ordered'::cms) = :'ordered'::cms AS zero_rows_neutral,
       cms_union(:'ordered'::cms, z) = :'ordered'::cms AS either_side
FROM (SELECT cms_agg(x, 0.2, 0.3, 1) AS z FROM generate_series(1, 0) x) e;
SELECT cms_union_agg(c) = :'ordered'::cms AS union_agg_skips_empty
FROM (SELECT :'ordered'::cms AS c UNION ALL SELECT cms_agg(x, 0.5, 0.5) FROM generate_series(1, 0) x) u;
DROP TABLE cms_parts;
