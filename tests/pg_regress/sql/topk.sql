-- topk: frequent items with bounds, unions, equal values, round trips and bad input.

-- A skewed stream: 200,000 events over 20,000 keys (deterministic: PG 15's PRNG). Serial plans:
-- once a summary drops keys its contents depend on the order rows arrive in.
SET max_parallel_workers_per_gather = 0;
SELECT setseed(0.42);
CREATE TABLE tk_events AS
    SELECT i AS id, floor(20000 * power(random(), 3))::int AS url FROM generate_series(1, 200000) i;
CREATE TABLE tk_truth AS SELECT url, count(*) AS n FROM tk_events GROUP BY url;
CREATE TABLE tk_one AS SELECT topk_agg(url, 300) AS t FROM tk_events;
CREATE TABLE tk_parts AS SELECT id % 60 AS part, topk_agg(url, 300) AS t FROM tk_events GROUP BY 1;
CREATE TABLE tk_union AS SELECT topk_union_agg(t ORDER BY part) AS t FROM tk_parts;
CREATE VIEW tk_forms AS SELECT 'one sketch' AS form, t FROM tk_one UNION ALL SELECT 'union of 60', t FROM tk_union;
SELECT form, topk_info(t) - 'bytes' AS info, topk_total(t) AS total FROM tk_forms ORDER BY form;
-- Every item held: lower_bound <= truth <= upper_bound, the estimate between them; at most
-- capacity items; heaviest first.
SELECT form, count(*) AS items,
       count(*) FILTER (WHERE n < lower_bound OR n > upper_bound) AS bounds_broken,
       count(*) FILTER (WHERE estimate < lower_bound OR estimate > upper_bound) AS estimate_outside
FROM tk_forms, topk_items(t) JOIN tk_truth ON url = item::int GROUP BY form ORDER BY form;
SELECT form, bool_and(ordered) AS heaviest_first
FROM (SELECT form, upper_bound <= lag(upper_bound, 1, upper_bound) OVER (PARTITION BY form ORDER BY ord) AS ordered
      FROM tk_forms, topk_items(t) WITH ORDINALITY AS i(item, estimate, lower_bound, upper_bound, ord)) s
GROUP BY form ORDER BY form;
-- Keys held or not (every 20th key, and a key never seen): within topk_bounds (a key not
-- held: 0 to the floor, estimate 0).
SELECT form, count(*) AS keys, count(*) FILTER (WHERE (b).lower_bound = 0) AS not_held,
       count(*) FILTER (WHERE n < (b).lower_bound OR n > (b).upper_bound) AS bounds_broken,
       count(*) FILTER (WHERE (b).lower_bound = 0 AND (b).estimate <> 0) AS unheld_nonzero,
       count(*) FILTER (WHERE (b).estimate <> topk_estimate(t, url)) AS estimate_differs
FROM (SELECT form, t, url, n, topk_bounds(t, url) AS b
      FROM tk_forms, (SELECT * FROM tk_truth WHERE url % 20 = 0 UNION ALL SELECT -1, 0) k) s
GROUP BY form ORDER BY form;
-- The true top 10 and top 100 are the first 10 and 100 items, in one summary and the union.
SELECT form,
       (SELECT count(*) FROM (SELECT url FROM tk_truth ORDER BY n DESC, url LIMIT 10) x
         WHERE url IN (SELECT item::int FROM topk_items(t) LIMIT 10)) AS top10_found,
       (SELECT count(*) FROM (SELECT url FROM tk_truth ORDER BY n DESC, url LIMIT 100) x
         WHERE url IN (SELECT item::int FROM topk_items(t) LIMIT 100)) AS top100_found
FROM tk_forms ORDER BY form;
SELECT item, estimate, lower_bound, upper_bound FROM topk_items((SELECT t FROM tk_one)) LIMIT 3;
-- A parallel plan gives a summary whose bounds hold too.
SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
CREATE TABLE tk_parallel AS SELECT topk_agg(url, 300) AS t FROM tk_events;
RESET parallel_setup_cost; RESET parallel_tuple_cost; RESET min_parallel_table_scan_size;
SET max_parallel_workers_per_gather = 0;
SELECT count(*) AS items, count(*) FILTER (WHERE n < lower_bound OR n > upper_bound) AS bounds_broken,
       topk_total((SELECT t FROM tk_parallel)) AS total
FROM topk_items((SELECT t FROM tk_parallel)) JOIN tk_truth ON url = item::int;

-- Below capacity the summary is exact and the same for every order and grouping.
SELECT item, estimate, lower_bound, upper_bound
FROM topk_items((SELECT topk_agg(v) FROM unnest('{a,b,a,c,a,b}'::text[]) v));
SELECT (SELECT topk_agg(x ORDER BY x) FROM generate_series(1, 500) g, LATERAL (SELECT g % 37 AS x) s)::bytea
     = (SELECT topk_agg(x ORDER BY x DESC) FROM generate_series(1, 500) g, LATERAL (SELECT g % 37 AS x) s)::bytea
       AS same_in_both_orders,
       (SELECT topk_agg(g % 37) FROM generate_series(1, 500) g)::bytea
     = (SELECT topk_union_agg(t) FROM (SELECT topk_agg(g % 37) AS t FROM generate_series(1, 500) g GROUP BY g % 7) p)::bytea
       AS same_as_union_of_parts;
-- Beyond capacity: at most capacity items, a floor above 0, bounds still hold.
SELECT topk_info(t) - 'bytes' AS info,
       (SELECT count(*) FROM topk_items(t) i
         WHERE (SELECT count(*) FROM generate_series(1, 1000) g WHERE g % 50 = i.item::int)
               NOT BETWEEN i.lower_bound AND i.upper_bound) AS bounds_broken
FROM (SELECT topk_agg(g % 50, 10) AS t FROM generate_series(1, 1000) g) s;

-- Values equal under SQL equality are one item, shown in their canonical form: numerics by
-- value (1.0 = 1.00 = 1, shown as 1; 1.50 as 1.5), integers of any width, char(n) without
-- its padding.
SELECT item, estimate FROM topk_items((SELECT topk_agg(x) FROM unnest('{1.0,1.00,1,1.50,1.5,-0.0,2.250}'::numeric[]) x));
SELECT topk_estimate(topk_add(topk_add(topk_add(NULL, 42::int4), 42::int8), 42::int2, 3), 42::numeric) AS int_widths,
       topk_estimate(topk_add(topk_add(NULL, 'ab'::char(5)), 'ab '::char(3)), 'ab'::char(2)) AS padded_chars;
SELECT item FROM topk_items(topk_add(topk_add(topk_add(topk_add(topk_empty(4),
    'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid), '\x00ff'::bytea), 7::bigint), 'x'::text)) ORDER BY item;

-- Functions, operators and the empty summary.
SELECT topk_info(topk_empty()) AS default_empty, topk_info(topk_empty(5)) AS small_empty;
SELECT topk_info(t) AS zero_rows FROM (SELECT topk_agg(g) AS t FROM generate_series(1, 0) g) s;
SELECT (SELECT t FROM tk_one)::bytea = (SELECT topk_union(t, NULL) FROM tk_one)::bytea AS null_neutral,
       (SELECT t FROM tk_one)::bytea = (SELECT topk_union(topk_empty(7), t) FROM tk_one)::bytea AS empty_neutral,
       (SELECT a.t + b.t = b.t + a.t FROM tk_one a, tk_union b) AS commutative,
       (SELECT a.t <> b.t FROM tk_one a, tk_union b) AS one_differs_from_union,
       topk_union(NULL, NULL) IS NULL AS both_null,
       topk_estimate(topk_add(topk_empty(2), 'x'::text, 0), 'x'::text) AS weight_zero,
       topk_add(topk_empty(2), NULL::text)::bytea = topk_empty(2)::bytea AS null_value;
SELECT topk_items(topk_add(topk_add(NULL, 'k'::text, 5), 'k'::text, 7));

-- A point query's call site keeps the last summary it decoded (named by its TOAST identity when
-- stored, else by its bytes): the same answers as in-memory copies, with a different stored
-- summary on every call and with one summary for many calls in a row.
SELECT count(*) AS calls,
       count(*) FILTER (WHERE topk_estimate(t, k) <> topk_estimate(t + topk_empty(), k)
                           OR topk_bounds_array(t, k) <> topk_bounds_array(t + topk_empty(), k)) AS differ
FROM (SELECT k, t FROM generate_series(0, 199) k, tk_parts ORDER BY k, part OFFSET 0) p;
SELECT count(*) AS calls,
       count(*) FILTER (WHERE topk_estimate(t, k) <> topk_estimate(t + topk_empty(), k)
                           OR topk_bounds_array(t, k) <> topk_bounds_array(t + topk_empty(), k)) AS differ
FROM (SELECT k, t FROM generate_series(0, 199) k, tk_parts ORDER BY part, k OFFSET 0) p;

-- topk_trim: summaries built large (1,000 items), merged, and the union cut to 100 items keep
-- every bound (held and not held), hold 100 items with a floor at least the union's, and find
-- more of the true top 50 than the union of summaries built at 100.
-- (Each part's rows in id order: the contents past capacity depend on the order rows arrive in.)
CREATE TABLE tk_trim AS
    SELECT topk_union_agg(t ORDER BY part) AS big, topk_trim(topk_union_agg(t ORDER BY part), 100) AS t
    FROM (SELECT id % 60 AS part, topk_agg(url, 1000 ORDER BY id) AS t FROM tk_events GROUP BY 1) p;
SELECT topk_info(t) ->> 'items' AS items, topk_info(t) ->> 'capacity' AS capacity, topk_total(t) AS total,
       (topk_info(t) ->> 'floor')::bigint >= (topk_info(big) ->> 'floor')::bigint AS floor_at_least_unions,
       (topk_info(big) ->> 'items')::int > 100 AS union_held_more
FROM tk_trim;
SELECT count(*) AS keys, count(*) FILTER (WHERE (b).lower_bound > 0) AS held,
       count(*) FILTER (WHERE n < (b).lower_bound OR n > (b).upper_bound) AS bounds_broken
FROM (SELECT n, topk_bounds(t, url) AS b FROM tk_trim, (SELECT * FROM tk_truth UNION ALL SELECT -1, 0) k) s;
SELECT (SELECT count(*) FROM (SELECT url FROM tk_truth ORDER BY n DESC, url LIMIT 50) x
         WHERE url IN (SELECT item::int FROM topk_items(t) LIMIT 50)) AS trimmed_top50_found,
       (SELECT count(*) FROM (SELECT url FROM tk_truth ORDER BY n DESC, url LIMIT 50) x
         WHERE url IN (SELECT item::int FROM topk_items(u) LIMIT 50)) AS built_small_top50_found
FROM tk_trim, (SELECT topk_union_agg(t ORDER BY part) AS u
               FROM (SELECT id % 60 AS part, topk_agg(url, 100 ORDER BY id) AS t FROM tk_events GROUP BY 1) p) small;
-- The best-ranked items stay as they were; at or above the items held only the capacity
-- changes; trimmed summaries merge with bounds that hold.
SELECT (SELECT array_agg(i ORDER BY o) FROM topk_items(t) WITH ORDINALITY i(item, e, l, u, o) WHERE o <= 40)
     = (SELECT array_agg(i ORDER BY o) FROM topk_items(topk_trim(t, 40)) WITH ORDINALITY i(item, e, l, u, o))
       AS same_best_items,
       topk_trim(t, 300) = t AS same_capacity_unchanged,
       topk_info(topk_trim(t, 5000)) - 'bytes' AS raised_capacity
FROM tk_one;
SELECT (SELECT count(*) FROM topk_items(t)) AS items,
       (SELECT count(*) FROM topk_items(t) JOIN tk_truth ON url = item::int
         WHERE n < lower_bound OR n > upper_bound) AS bounds_broken,
       topk_info(t) ->> 'capacity' AS capacity
FROM (SELECT topk_union_agg(topk_trim(t, 50) ORDER BY part) AS t FROM tk_parts) s;
SELECT topk_trim(NULL, 5) IS NULL AS null_summary, topk_trim(topk_empty(), NULL) IS NULL AS null_capacity,
       topk_info(topk_trim(topk_empty(), 1)) AS empty_trimmed;

-- Round trips: text, bytea, binary send/recv (COPY BINARY).
SELECT t::text::topk::bytea = t::bytea AS text_round_trip,
       t::bytea::topk::text = t::text AS bytea_round_trip,
       topk_send(t) = t::bytea AS send_is_stored_form
FROM tk_one;
SELECT topk_add(topk_add(topk_empty(4), 'a'::text, 5), 'b'::text, 3)::text AS text_form,
       topk_add(topk_add(topk_empty(4), 'a'::text, 5), 'b'::text, 3)::bytea AS stored_form;
CREATE TABLE tk_copy (t topk);
INSERT INTO tk_copy SELECT t FROM tk_forms;
\copy tk_copy TO '/tmp/pg_distcount_topk_copy.bin' WITH (FORMAT binary)
CREATE TABLE tk_copied (t topk);
\copy tk_copied FROM '/tmp/pg_distcount_topk_copy.bin' WITH (FORMAT binary)
\! rm -f /tmp/pg_distcount_topk_copy.bin
SELECT count(*) AS rows_back, count(*) FILTER (WHERE c.t::bytea IN (SELECT t::bytea FROM tk_copy)) AS equal
FROM tk_copied c;

-- Bad input: clear errors with their SQLSTATEs.
SELECT error_of($$ SELECT topk_empty(0) $$);
SELECT error_of($$ SELECT topk_empty(2000000) $$);
SELECT error_of($$ SELECT topk_agg(g, -3) FROM generate_series(1, 3) g $$);
SELECT error_of($$ SELECT topk_add(NULL, 'a'::text, -1) $$);
SELECT error_of($$ SELECT topk_trim(topk_empty(), 0) $$);
SELECT error_of($$ SELECT topk_trim(t, -5) FROM tk_one $$);
SELECT error_of($$ SELECT topk_trim(topk_empty(), 1048577) $$);
SELECT error_of($$ SELECT topk_add(topk_add(NULL, 'a'::text, 9223372036854775807), 'b'::text) $$);
SELECT error_of($$ SELECT topk_add(topk_add(NULL, 'a'::text, 9223372036854775807), 'a'::text, 0) + topk_add(NULL, 'b'::text) $$);
SELECT error_of($$ SELECT topk_add(NULL, repeat('x', 20000)) $$);
SELECT error_of($$ SELECT 'cms1:AQ=='::topk $$);
SELECT error_of($$ SELECT 'topk1:AQ='::topk $$);
SELECT error_of($$ SELECT 'topk1:AQ=='::topk $$);
SELECT error_of($$ SELECT '\x02'::bytea::topk $$);
SELECT error_of($$ SELECT '\x010409000305000a6102000a6202000a63'::bytea::topk $$) AS valid;
SELECT error_of($$ SELECT '\x010409000305000a6102000a6202000a6300'::bytea::topk $$);
SELECT error_of($$ SELECT '\x010402000201000a6200000a61'::bytea::topk $$);
SELECT error_of($$ SELECT '\x010409000305000a6102060a6202000a63'::bytea::topk $$);
SELECT error_of($$ SELECT '\x010402000102000a00'::bytea::topk $$);
SELECT error_of($$ SELECT '\x010401000101000aff'::bytea::topk $$);
SELECT error_of($$ SELECT '\x0104010001010009'::bytea::topk $$);
SELECT error_of($$ SELECT '\x01840001'::bytea::topk $$);

DROP TABLE tk_events, tk_truth, tk_one, tk_parts, tk_union, tk_parallel, tk_trim, tk_copy, tk_copied CASCADE;
