-- pg_distcount demo: what `make demo` runs. Every family that exists so far, with real output.
\pset footer off
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_distcount;
SET search_path = public, distcount;

\echo
\echo '== G-Counter: node A increments to 5, B to 3, C to 7; merging by the maximum per node =='
SELECT gcounter_inc(NULL, 5, 'A') || gcounter_inc(NULL, 3, 'B') || gcounter_inc(NULL, 7, 'C') AS merged,
       gcounter_value(gcounter_inc(NULL, 5, 'A') || gcounter_inc(NULL, 3, 'B') || gcounter_inc(NULL, 7, 'C')) AS total;

\echo '== A re-delivered or older state changes nothing (merge is idempotent) =='
SELECT '{"A": 5, "B": 3, "C": 7}'::gcounter || '{"A": 4, "C": 7}' AS after_stale_redelivery;

\echo
\echo '== PN-Counter: P {A: 10, B: 5, C: 8}, N {A: 2, B: 1, C: 0} =='
SELECT c AS pncounter, pncounter_value(c) AS value
FROM (SELECT '{"A": [10, 2], "B": [5, 1], "C": [8, 0]}'::pncounter AS c) s;
SELECT * FROM pncounter_entries('{"A": [10, 2], "B": [5, 1], "C": [8, 0]}');

\echo
\echo '== Three regions count likes locally, then merge into one total =='
DROP TABLE IF EXISTS region_likes;
CREATE TABLE region_likes (region text PRIMARY KEY, likes pncounter);
INSERT INTO region_likes VALUES ('tokyo', NULL), ('virginia', NULL), ('frankfurt', NULL);
-- Each region writes only its own slot: 1,200 likes in Tokyo (and 15 unlikes), 800 in
-- Virginia, 450 in Frankfurt (and 5 unlikes).
UPDATE region_likes SET likes = pncounter_inc(likes, 1200, region) WHERE region = 'tokyo';
UPDATE region_likes SET likes = pncounter_inc(likes, -15, region) WHERE region = 'tokyo';
UPDATE region_likes SET likes = pncounter_inc(likes, 800, region) WHERE region = 'virginia';
UPDATE region_likes SET likes = pncounter_inc(likes, 450, region) WHERE region = 'frankfurt';
UPDATE region_likes SET likes = pncounter_inc(likes, -5, region) WHERE region = 'frankfurt';
SELECT region, likes, pncounter_value(likes) AS local_value FROM region_likes ORDER BY region;
SELECT pncounter_merge_agg(likes) AS merged, pncounter_value(pncounter_merge_agg(likes)) AS global_likes
FROM region_likes;

\echo
\echo '== HyperLogLog: distinct visitors per page and day, merged into a week =='
DROP TABLE IF EXISTS visits, daily_visitors;
CREATE TABLE visits AS
SELECT page, date '2026-11-23' + d AS day, (page * 100000 + d * 7000 + v) % (page * 40000) AS visitor
FROM generate_series(1, 3) page, generate_series(0, 6) d, generate_series(1, 20000 * page) v;
-- One small sketch per page and day, instead of keeping every visit.
CREATE TABLE daily_visitors AS
SELECT page, day, hll_agg(visitor) AS visitors FROM visits GROUP BY page, day;
SELECT d.page, # hll_union_agg(d.visitors) AS weekly_uniques,
       (SELECT count(DISTINCT visitor) FROM visits v WHERE v.page = d.page) AS exact,
       sum(pg_column_size(d.visitors)) AS sketch_bytes_for_7_days
FROM daily_visitors d GROUP BY d.page ORDER BY d.page;
SELECT approx_count_distinct(v % 123457) AS approx, count(DISTINCT v % 123457) AS exact
FROM generate_series(1, 1000000) v;

\echo
\echo '== Count-Min: hits per URL per minute, the top 5 of the last 10 minutes, a rate limit =='
DROP TABLE IF EXISTS url_minutes;
SELECT setseed(0.7) AS seeded \gset
CREATE TABLE url_minutes AS
SELECT minute, cms_agg(url) AS hits
FROM (SELECT i % 60 AS minute, '/item/' || floor(5000 * power(random(), 3))::int AS url
      FROM generate_series(1, 600000) i) s
GROUP BY minute;
SELECT item, estimate, guaranteed
FROM cms_topk((SELECT cms_union_agg(hits) FROM url_minutes WHERE minute >= 50), 5);
SELECT cms_exceeds(hits, '/item/0'::text, 500) AS item_0_over_500_in_minute_7,
       cms_estimate(hits, '/item/4999'::text) AS rare_item_estimate
FROM url_minutes WHERE minute = 7;

\echo
\echo '== LWW-Register: Alice writes at 1000 ms, Bob at 1002 ms; the merge keeps Bob and says what it dropped =='
SELECT lww_value(merged) AS winner, discarded_value, discarded_node
FROM lww_merge_report(lww_set_at(NULL, '"Alice"', '2026-01-01 00:00:01+00', 'a'),
                      lww_set_at(NULL, '"Bob"', '2026-01-01 00:00:01.002+00', 'b'));
\echo '== A profile read in Tokyo with a stamp an hour ahead; Virginia, whose clock is behind, still wins with its update =='
SELECT lww_set_at(NULL, '{"name": "Alice"}', now() + interval '1 hour', 'tokyo') AS read_state \gset
SELECT lww_value(:'read_state'::lwwreg || lww_set(:'read_state', '{"name": "Bob"}', 'virginia')) AS profile,
       lww_tick(lww_set(:'read_state', '{"name": "Bob"}', 'virginia')) AS logical_tick;

\echo
\echo '== OR-Set: a cart in two regions; Tokyo removes the milk while Virginia adds it again: the add wins =='
DROP TABLE IF EXISTS carts;
CREATE TABLE carts (region text PRIMARY KEY, cart orset);
INSERT INTO carts SELECT r, orset_add(orset_add(NULL, 'milk', 'virginia'), 'bread', 'virginia')
FROM unnest(ARRAY['tokyo', 'virginia']) r;      -- both regions have seen milk and bread
UPDATE carts SET cart = orset_remove(orset_remove(cart, 'milk'), 'bread') WHERE region = 'tokyo';
UPDATE carts SET cart = orset_add(orset_add(cart, 'milk', 'virginia'), 'eggs', 'virginia') WHERE region = 'virginia';
SELECT region, cart::text[] AS items FROM carts ORDER BY region;
SELECT orset_merge_agg(cart)::text[] AS merged_cart FROM carts;

\echo
\echo '== The local node id (pg_distcount.node_id, else made at CREATE EXTENSION) =='
SELECT node_id(), gcounter_inc(NULL) AS incremented_here;
