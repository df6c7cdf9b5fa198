-- hll: building, counting, unions, precisions, casts and aggregates.

-- Small sets are exact; int2, int4 and int8 of equal value are the same item.
SELECT hll_count(hll_agg(i)) AS exact_100 FROM generate_series(1, 100) i;
SELECT hll_agg(i::int2) = hll_agg(i::int4) AND hll_agg(i::int4) = hll_agg(i::int8) AS ints_alike
FROM generate_series(1, 500) i;
SELECT approx_count_distinct(i % 37) AS thirty_seven FROM generate_series(1, 10000) i;
-- Text by its bytes, bpchar without trailing blanks, uuid, and other types by their send form.
SELECT hll_agg(t) AS text_sketch FROM (VALUES ('a'), ('b'), ('a')) v(t);
SELECT hll_agg('x'::char(5)) = hll_agg('x'::text) AS bpchar_like_text;
SELECT approx_count_distinct(u) FROM (VALUES ('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid),
    ('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'), ('b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11')) v(u);
SELECT approx_count_distinct(d) AS days, approx_count_distinct(d::timestamptz) AS stamps,
       approx_count_distinct(x) AS numerics
FROM (SELECT date '2026-01-01' + (i % 30) AS d, (i % 11)::numeric / 3 AS x FROM generate_series(1, 1000) i) s;
-- Large sets: within a few standard errors (0.81% at p = 14).
SELECT abs(hll_count(hll_agg(i)) - 1000000) < 1000000 * 0.0081 * 3 AS within_3_sigma
FROM generate_series(1, 1000000) i;

-- The registers of a sketch without its martingale count (x || x is a union of two dense
-- sketches when x is dense, which keeps no count; an explicit or sparse x is itself); for
-- comparing insertion paths with unions, whose counts may differ (or be absent).
CREATE FUNCTION pg_temp.registers(h hll) RETURNS hll LANGUAGE sql AS 'SELECT h || h';

-- Text form (versioned, base64 of the binary form) and binary form round trip.
SELECT hll_empty(), hll_empty(10);
SELECT hll_agg(i)::text::hll = hll_agg(i) AS text_round_trip,
       hll_agg(i)::bytea::hll = hll_agg(i) AS bytea_round_trip
FROM generate_series(1, 20000) i;
-- A value of format version 1 is read, and written back in version 2.
SELECT 'hll1:AQEOGpm2iATKrPMBm67dAw=='::hll, # 'hll1:AQEOGpm2iATKrPMBm67dAw=='::hll AS count;

-- Info and sizes: explicit up to 128 values, then sparse in 32-bit tokens (format version 4,
-- form 9) up to 2^p/8 values (2,048 at p = 14, about 5,800 bytes), then dense in Huffman
-- codes (about 5,900 bytes at p = 14 from 10^5 values up; hll_huffman.sql).
SELECT hll_info(hll_empty()) AS empty;
SELECT hll_info(hll_agg(i)) AS hundred FROM generate_series(1, 100) i;
SELECT hll_info(hll_agg(i)) AS thousand FROM generate_series(1, 1000) i;
SELECT hll_info(hll_agg(i)) AS million FROM generate_series(1, 1000000) i;
SELECT n, hll_info(hll_agg(i)) AS info
FROM (VALUES (2048), (2049)) s(n), generate_series(1, n) i GROUP BY n ORDER BY n;
-- Sparse counts are exact in practice (two values share a 32-bit token in about 1 set of
-- 8,600 of 1,000 values): 200 disjoint sets of 1,000 and 200 of 2,000 values.
SELECT n, count(*) FILTER (WHERE c = n) AS exact, count(*) AS sets,
       bool_and(form = 'sparse') AS all_sparse, round(avg(bytes)) AS mean_bytes
FROM (SELECT n, # h AS c, hll_info(h) ->> 'form' AS form, octet_length(h::bytea) AS bytes
      FROM (VALUES (1000), (2000)) s(n), generate_series(0, 199) k,
           LATERAL (SELECT hll_agg(v) AS h
                    FROM generate_series(k * 1000000000::bigint, k * 1000000000::bigint + n - 1) v) a) q
GROUP BY n ORDER BY n;
-- A sparse value of earlier builds (format version 2, form 1: 26-bit tokens, here of 1..150)
-- is read and written back as it is; a union with it keeps 26 bits of every hash (the same
-- values add nothing), and follows the rule of those builds (sparse while no longer than the
-- 6-bit dense form).
\set legacy_sparse '\\x02010e1aaae421a6931bcccf1ef79508a7a812c5fe0faeab20c4a61ec1e11bd2d911f1f62fc4dc04cdd80edba011eab12193e82090cf2797b22482bd33a5ef048ce0089cd617fca54d81f20c94bf1acfa509defd0cb4e405fed92983ce1381c115d2da07d4e736c9c613a7ed0601f6f7028eeb17eec212f9cd19beae0982f86fa5fd02ef9911c0ba6bf78a2fa5c21c8631fa8807a8a203ab8504fba40fb0f21695a83be3f505c6df11b59c07d1f920dfdf09a2d507bfca32b4e336a2db06d7f13a84cb1e8d8826cac711ea9f019c9284019df3059eef1083c217b1da12adf248f08c11b29c09989b07cea62daad80ac5b3258cdd08808e1598e50bf2db27cea031e7c013eacc03da20b8db11dbd205e4950599c916aec03abadd01abc64bb1e819e1ca0caacc0babc11cb3f00ba9f729c0f70bdde459a58d0593b23897961bc9fc04dca00ea1b96cc1ee1ce3e809ffc263bee2028d972bd2d74aa1871f8dbc22eb9c14b8a5308cff2bd79f0ba69d288da814bee510cfa60ff49204ccd116d1c902be8225b4c24cc38a0acca31cd7bc1194e111a473ece002d09b06abfb07e7fa05abdc0385bc0fcfd516848539f4c41eb2b836bbe52adfc424ecca03ebf466e5ea0aa3e003'
SELECT # :'legacy_sparse'::bytea::hll AS count, :'legacy_sparse'::bytea::hll::bytea = :'legacy_sparse'::bytea AS same_bytes,
       hll_info(:'legacy_sparse'::bytea::hll) AS info;
SELECT :'legacy_sparse'::bytea::hll || hll_agg(i) = :'legacy_sparse'::bytea::hll AS same_values_add_nothing,
       hll_info(:'legacy_sparse'::bytea::hll || hll_agg(i + 100)) ->> 'format_version' AS union_version,
       # (:'legacy_sparse'::bytea::hll || hll_agg(i + 100)) AS union_count
FROM generate_series(1, 150) i;
SELECT hll_info(u) ->> 'form' AS form, hll_info(u) ->> 'format_version' AS version, # u AS count,
       hll_info(u || hll_agg_3000) ->> 'form' AS with_a_dense_side
FROM (SELECT :'legacy_sparse'::bytea::hll || hll_agg(i) FILTER (WHERE i <= 1500)
               || hll_agg(i) FILTER (WHERE i > 1500) AS u,
             hll_agg(i) AS hll_agg_3000
      FROM generate_series(1, 3000) i) s;

-- Unions: ||, hll_union, hll_union_agg (NULLs skipped), different precisions fold down.
SELECT # (hll_agg(i) FILTER (WHERE i <= 60) || hll_agg(i) FILTER (WHERE i > 40)) AS overlap_union
FROM generate_series(1, 100) i;
SELECT hll_union(NULL, hll_agg(1)) = hll_agg(1) AS null_is_empty, hll_union(NULL::hll, NULL) IS NULL AS both_null;
SELECT hll_count(hll_union_agg(h)) AS unioned, hll_info(hll_union_agg(h)) ->> 'precision' AS p
FROM (SELECT hll_agg(i) AS h FROM generate_series(1, 5000) i GROUP BY i % 10
      UNION ALL SELECT NULL) s;
SELECT hll_info(hll_agg(i, 16) || hll_agg(i, 11)) ->> 'precision' AS folded_to
FROM generate_series(1, 50000) i;
-- Folding loses nothing that a sketch built at the lower precision would have.
SELECT hll_agg(i, 16)::hll(11) = pg_temp.registers(hll_agg(i, 11)) AS fold_equals_direct FROM generate_series(1, 50000) i;

-- hll_add: a NULL sketch is empty, a NULL value changes nothing.
SELECT # hll_add(hll_add(NULL, 1), 2) AS two, hll_add(hll_agg(1), NULL::int) = hll_agg(1) AS unchanged;

-- Typmod: hll(12) folds a p = 14 sketch down; a coarser sketch is refused.
CREATE TABLE daily (day date, visitors hll(12));
\d daily
INSERT INTO daily SELECT date '2026-01-01', hll_agg(i) FROM generate_series(1, 3000) i;
SELECT hll_info(visitors) ->> 'precision' AS stored_at, # visitors FROM daily;
SELECT error_of($$ INSERT INTO daily VALUES (now(), hll_add(hll_empty(10), 1)) $$);
SELECT error_of($$ SELECT hll_add(hll_empty(), 1)::hll(16) $$);
-- An empty sketch holds nothing a precision could lose: it fits any column.
SELECT hll_info(hll_empty(10)::hll(16)) ->> 'precision' AS empty_raised;
SELECT 'hll1:AQAOGg=='::hll(12);

-- Estimates with confidence intervals.
SELECT estimate::bigint = # h AS estimate_is_count, lower <= 100000 AND 100000 <= upper AS covers_truth,
       upper - lower < 0.05 * 100000 AS tight
FROM (SELECT hll_agg(i) h FROM generate_series(1, 100000) i) s, hll_estimate(h, 0.99);
SELECT round(e.estimate::numeric, 3) AS estimate, round(e.lower::numeric, 3) AS lower, round(e.upper::numeric, 3) AS upper
FROM (SELECT hll_agg(1) AS h) s, hll_estimate(h) e;

-- Aggregates over zero rows, or a FILTER that matches nothing, give an empty sketch.
SELECT hll_agg(i), # hll_agg(i), approx_count_distinct(i) FROM generate_series(1, 0) i;
SELECT # hll_agg(i) FILTER (WHERE i < 0) AS none, # hll_union_agg(NULL::hll) AS none_union FROM generate_series(1, 10) i;

-- GROUP BY: many small groups stay small.
SELECT count(*) AS groups, sum(c) AS total
FROM (SELECT approx_count_distinct(i) c FROM generate_series(1, 200000) i GROUP BY i / 10) s;

-- Parallel plans give the serial registers, and a count within its error bound.
CREATE TABLE visits AS SELECT i AS id, i % 70000 AS visitor FROM generate_series(1, 300000) i;
ANALYZE visits;
CREATE TABLE visit_sketches AS SELECT id % 500 AS part, hll_agg(visitor) AS h FROM visits GROUP BY 1;
ANALYZE visit_sketches;
SELECT hll_agg(visitor) AS serial_sketch FROM visits \gset
SELECT hll_union_agg(h) AS serial_union FROM visit_sketches \gset
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
EXPLAIN (COSTS OFF) SELECT hll_agg(visitor) FROM visits;
-- The registers are the serial ones whatever the split between workers; the count is the
-- martingale one or the registers' (which one depends on how many rows each worker took: a
-- small partial state is replayed into a dense one, two dense ones keep no count), within four
-- standard errors (0.81 %) of the 70,000 visitors either way.
SELECT pg_temp.registers(hll_agg(visitor)) = pg_temp.registers(:'serial_sketch'::hll) AS parallel_registers_equal_serial,
       abs(approx_count_distinct(visitor) - 70000) < 4 * 0.0081 * 70000 AS count_within_bound
FROM visits;
EXPLAIN (COSTS OFF) SELECT hll_union_agg(h) FROM visit_sketches;
SELECT pg_temp.registers(hll_union_agg(h)) = pg_temp.registers(:'serial_union'::hll) AS parallel_union_registers_equal_serial,
       pg_temp.registers(hll_union_agg(h)) = pg_temp.registers(:'serial_sketch'::hll) AS union_equals_direct,
       abs((# hll_union_agg(h)) - 70000) < 4 * 0.0081 * 70000 AS union_count_within_bound
FROM visit_sketches;
RESET ALL;

-- Equality and hashing.
-- (and a byte-order btree class, for DISTINCT and ORDER BY)
SELECT count(DISTINCT h) FROM (SELECT hll_agg(i % 3) h FROM generate_series(1, 30) i GROUP BY i % 2) s;
SELECT h, count(*) FROM (VALUES (hll_empty()), (hll_empty()), (hll_empty(10))) v(h) GROUP BY h ORDER BY 2;

-- The aggregate's fast path (dense sketch, values hashed in place) and its general path (first
-- rows, sparse sketches, TOASTed or compressed values, hll_add) give identical sketches.
CREATE TABLE long_texts (v text);
ALTER TABLE long_texts ALTER COLUMN v SET STORAGE main;   -- compressed inline
INSERT INTO long_texts SELECT repeat(md5(i::text), 100) || i FROM generate_series(1, 20000) i;
CREATE TABLE toasted_texts (v text);
ALTER TABLE toasted_texts ALTER COLUMN v SET STORAGE external;  -- out of line, uncompressed
INSERT INTO toasted_texts SELECT v FROM long_texts;
SELECT pg_column_compression(v) AS stored_compressed FROM long_texts LIMIT 1;
SELECT (SELECT hll_agg(v) FROM long_texts) = (SELECT hll_agg(v) FROM toasted_texts) AS compressed_equals_toasted,
       (SELECT hll_agg(v) FROM long_texts)
       = (SELECT hll_agg(repeat(md5(i::text), 100) || i) FROM generate_series(1, 20000) i) AS stored_equals_in_memory,
       (SELECT # hll_agg(v) FROM long_texts) BETWEEN 19000 AND 21000 AS count_plausible;
SELECT (SELECT pg_temp.registers(hll_agg(i)) FROM generate_series(1, 50000) i)
       = (SELECT pg_temp.registers(hll_union_agg(hll_add(NULL, i))) FROM generate_series(1, 50000) i) AS ints_fast_equals_general,
       (SELECT pg_temp.registers(hll_agg(v::varchar)) FROM long_texts)
       = (SELECT pg_temp.registers(hll_union_agg(hll_add(NULL, v))) FROM long_texts) AS texts_fast_equals_general,
       (SELECT pg_temp.registers(hll_agg(md5(i::text)::uuid)) FROM generate_series(1, 50000) i)
       = (SELECT pg_temp.registers(hll_union_agg(hll_add(NULL, md5(i::text)::uuid))) FROM generate_series(1, 50000) i) AS uuids_fast_equals_general;
-- Short strings (up to 16 bytes hash inline in the transition function, longer ones out of
-- line): every length from 0 to 40, stored in a table (short varlena headers) and computed.
-- (text through its own transition function, bytea through the general one).
CREATE TABLE short_texts AS
  SELECT left(md5(i::text) || md5((i + 1)::text), i % 41) AS v FROM generate_series(1, 30000) i;
ALTER TABLE short_texts ADD COLUMN b bytea;
UPDATE short_texts SET b = convert_to(v, 'UTF8');
SELECT pg_temp.registers(hll_agg(v)) = pg_temp.registers(hll_union_agg(hll_add(NULL, v))) AS short_texts_fast_equals_general,
       pg_temp.registers(hll_agg(b)) = pg_temp.registers(hll_union_agg(hll_add(NULL, b))) AS short_bytea_fast_equals_general,
       hll_agg(b) = hll_agg(convert_to(v, 'UTF8')) AS stored_bytea_equals_computed,
       hll_agg(v) = hll_agg(v || '') AS stored_equals_computed,
       abs(hll_count(hll_agg(v)) - count(DISTINCT v)) < 0.03 * count(DISTINCT v) AS count_plausible
FROM short_texts;
DROP TABLE long_texts, toasted_texts, short_texts;

-- Integer columns have their own aggregates (a transition function per width); each gives the
-- sketch that hll_add builds, at every precision, with negative values and the extremes.
CREATE TABLE ints AS
  SELECT i::smallint AS i2, (i * 65535)::integer AS i4, i::bigint * 4294967311 AS i8
  FROM generate_series(-32768, 32767) i;
INSERT INTO ints VALUES (-32768, -2147483648, -9223372036854775808), (32767, 2147483647, 9223372036854775807);
SELECT pg_temp.registers(hll_agg(i2)) = pg_temp.registers(hll_union_agg(hll_add(NULL, i2))) AS int2_agg,
       pg_temp.registers(hll_agg(i4)) = pg_temp.registers(hll_union_agg(hll_add(NULL, i4))) AS int4_agg,
       pg_temp.registers(hll_agg(i8)) = pg_temp.registers(hll_union_agg(hll_add(NULL, i8))) AS int8_agg,
       pg_temp.registers(hll_agg(i2, 10)) = pg_temp.registers(hll_union_agg(hll_add(hll_empty(10), i2))) AS int2_p10,
       pg_temp.registers(hll_agg(i4, 16)) = pg_temp.registers(hll_union_agg(hll_add(hll_empty(16), i4))) AS int4_p16,
       pg_temp.registers(hll_agg(i8, 4)) = pg_temp.registers(hll_union_agg(hll_add(hll_empty(4), i8))) AS int8_p4,
       hll_agg(i2) = hll_agg(i2::integer) AND hll_agg(i2) = hll_agg(i2::bigint) AS widths_agree,
       approx_count_distinct(i2) = # hll_agg(i2::bigint) AND approx_count_distinct(i4) = # hll_agg(i4)
         AND approx_count_distinct(i8) = # hll_agg(i8) AS counts_agree
FROM ints;
DROP TABLE ints;
-- Text has its own aggregates too; varchar, name and untyped literals resolve to them, and
-- char(n) and "char" have overloads of the general function. All give hll_add's sketches.
CREATE TABLE strs AS
  SELECT md5(i::text) AS t, left(md5(i::text), 10)::varchar(10) AS vc, ('x' || i)::name AS nm,
         left(md5(i::text), 3)::char(5) AS ch, chr(65 + i % 26)::"char" AS c1
  FROM generate_series(1, 20000) i;
SELECT pg_temp.registers(hll_agg(t)) = pg_temp.registers(hll_union_agg(hll_add(NULL, t))) AS text_agg,
       pg_temp.registers(hll_agg(t, 10)) = pg_temp.registers(hll_union_agg(hll_add(hll_empty(10), t))) AS text_p10,
       pg_temp.registers(hll_agg(vc)) = pg_temp.registers(hll_union_agg(hll_add(NULL, vc))) AND hll_agg(vc) = hll_agg(vc::text) AS varchar_agg,
       pg_temp.registers(hll_agg(nm)) = pg_temp.registers(hll_union_agg(hll_add(NULL, nm))) AS name_agg,
       pg_temp.registers(hll_agg(ch)) = pg_temp.registers(hll_union_agg(hll_add(NULL, ch))) AND hll_agg(ch) = hll_agg(ch::text) AS bpchar_agg,
       pg_temp.registers(hll_agg(c1)) = pg_temp.registers(hll_union_agg(hll_add(NULL, c1))) AND # hll_agg(c1) = 26 AS char_agg,
       approx_count_distinct(t) = # hll_agg(t) AND approx_count_distinct(ch) = # hll_agg(ch) AS counts_agree
FROM strs;
DROP TABLE strs;
-- Untyped literals are text.
SELECT hll_agg('abc') = hll_agg('abc'::text) AS literal_is_text, # hll_agg(NULL) AS null_literal;

-- A zero-row aggregate is neutral in later unions, whatever precision it was asked for, and
-- fits a column of any precision.
SELECT hll_info(hll_union(z, hll_agg_p16)) ->> 'precision' AS union_precision,
       hll_union(z, hll_agg_p16) = hll_agg_p16 AS zero_rows_neutral
FROM (SELECT hll_agg(x, 16) AS z FROM generate_series(1, 0) x) e,
     (SELECT hll_agg(x, 16) AS hll_agg_p16 FROM generate_series(1, 1000) x) f;
SELECT hll_info(hll_union_agg(h)) ->> 'precision' AS union_agg_precision
FROM (SELECT hll_agg(x, 16) AS h FROM generate_series(1, 1000) x
      UNION ALL SELECT hll_union_agg(h) FROM (SELECT hll_empty(10) AS h WHERE false) n
      UNION ALL SELECT hll_empty(10)) u;
CREATE TEMP TABLE p16 (h hll(16));
INSERT INTO p16 SELECT hll_agg(x, 16) FROM generate_series(1, 0) x;
SELECT hll_info(h) ->> 'precision' AS stored_precision, # h AS count FROM p16;
