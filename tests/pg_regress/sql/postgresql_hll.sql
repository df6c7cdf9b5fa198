-- Issue 17: postgresql-hll's values import into distcount.hll with the same count as its own #,
-- for every storage type; imported sketches unite with each other (as its || does) and refuse
-- native ones; its typmod spellings are understood; the recommended search_path works beside
-- it. Needs the extension hll (Debian package postgresql-15-hll): where it is not available
-- the file says so and stops (expected output postgresql_hll_1.out).
SELECT count(*) = 0 AS no_hll FROM pg_available_extensions WHERE name = 'hll' \gset
\if :no_hll
\echo SKIP: postgresql-hll (extension hll) is not installed on this server
\quit
\endif
SET client_min_messages = warning;
CREATE EXTENSION hll SCHEMA public;
RESET client_min_messages;

-- Values of every storage type (EMPTY 1, EXPLICIT 2, SPARSE 3, FULL 4) at several log2m and
-- register widths.
CREATE TEMP TABLE theirs AS
SELECT n, log2m, regwidth, h FROM
    (VALUES (0), (1), (5), (100), (300), (1000), (20000), (1000000)) v(n),
    (VALUES (4, 5), (10, 4), (11, 5), (14, 5), (11, 6), (17, 1)) p(log2m, regwidth),
    LATERAL (SELECT coalesce(public.hll_add_agg(public.hll_hash_bigint(g), log2m, regwidth),
                             public.hll_empty(log2m, regwidth)) AS h
             FROM generate_series(1, v.n) g) s;
CREATE TEMP TABLE imported AS
SELECT n, log2m, regwidth, h, distcount.hll_from_postgresql_hll(h::text::bytea) AS mine FROM theirs;

-- The count: the same float8 as #, and hll_count its rounding; regwidth 6 is the exception
-- where postgresql-hll's large-range correction overflows (NaN, its issues #15 and #160).
SELECT public.hll_type(h) AS type, count(*) AS sketches,
       count(*) FILTER (WHERE (#h) = (distcount.hll_estimate(mine)).estimate) AS same_estimate,
       count(*) FILTER (WHERE round(#h) = distcount.hll_count(mine)) AS same_count,
       count(*) FILTER (WHERE 'NaN'::float8 = #h) AS theirs_nan,
       count(*) FILTER (WHERE n > 0 AND distcount.hll_to_postgresql_hll(mine) = h::text::bytea) AS same_bytes_back
FROM imported GROUP BY 1 ORDER BY 1;
SELECT n, log2m, regwidth, #h AS theirs, distcount.hll_count(mine) AS ours
FROM imported WHERE regwidth = 6 AND n >= 20000 ORDER BY n;
SELECT DISTINCT distcount.hll_info(mine)->>'form' AS form, public.hll_type(h) AS type
FROM imported ORDER BY 2, 1;

-- Unions of imported sketches count what postgresql-hll's || and hll_union_agg count, and
-- give back its bytes.
CREATE TEMP TABLE days AS
SELECT d, public.hll_add_agg(public.hll_hash_bigint(g % (d * 700)), 12) AS h
FROM generate_series(1, 6) d, generate_series(1, 5000) g GROUP BY d;
SELECT (# public.hll_union_agg(h)) = (distcount.hll_estimate(distcount.hll_union_agg(distcount.hll_from_postgresql_hll(h::text::bytea)))).estimate AS union_agg_same,
       distcount.hll_to_postgresql_hll(distcount.hll_union_agg(distcount.hll_from_postgresql_hll(h::text::bytea))) = public.hll_union_agg(h)::text::bytea AS same_bytes
FROM days;
SELECT a.d, b.d, (#(a.h || b.h)) = (distcount.hll_estimate(distcount.hll_from_postgresql_hll(a.h::text::bytea) OPERATOR(distcount.||) distcount.hll_from_postgresql_hll(b.h::text::bytea))).estimate AS same
FROM days a JOIN days b ON a.d < b.d AND a.d <= 2 ORDER BY 1, 2;

-- An imported sketch keeps its hash family: no union with a native one, no new values.
SELECT public.error_of($$SELECT distcount.hll_union(distcount.hll_from_postgresql_hll(public.hll_add(public.hll_empty(), public.hll_hash_integer(1))::text::bytea), distcount.hll_agg(1))$$);
SELECT public.error_of($$SELECT distcount.hll_union_agg(x) FROM (VALUES ((SELECT distcount.hll_agg(7))), (distcount.hll_from_postgresql_hll(public.hll_add(public.hll_empty(), public.hll_hash_integer(1))::text::bytea))) v(x)$$);
SELECT public.error_of($$SELECT distcount.hll_add(distcount.hll_from_postgresql_hll(public.hll_add(public.hll_empty(), public.hll_hash_integer(1))::text::bytea), 2)$$);
SELECT public.error_of($$SELECT distcount.hll_union(distcount.hll_from_postgresql_hll(public.hll_add(public.hll_empty(11), public.hll_hash_integer(1))::text::bytea), distcount.hll_from_postgresql_hll(public.hll_add(public.hll_empty(12), public.hll_hash_integer(1))::text::bytea))$$);
SELECT public.error_of($$SELECT distcount.hll_to_postgresql_hll(distcount.hll_agg(1))$$);
-- An empty one is neutral (it holds no hash of either family), as with native sketches.
SELECT distcount.hll_count(distcount.hll_union(distcount.hll_from_postgresql_hll(public.hll_empty()::text::bytea), distcount.hll_agg(g))) AS with_empty
FROM generate_series(1, 10) g;

-- Every field is checked: forged or unsupported bytes give a clear error (22P03), never a
-- crash; the two values without an error are valid (one explicit hash; two sparse registers).
SELECT v AS bytes, public.error_of(format('SELECT distcount.hll_from_postgresql_hll(%L::bytea)', v)) AS error FROM (VALUES
    ('\x'), ('\x118b'), ('\x218b7f'), ('\x108b7f'), ('\x158b7f'), ('\x118b7f00'), ('\x11837f'), ('\x11927f'),
    ('\x118bff'), ('\x118b7e'), ('\x128b7f0000000000000001'), ('\x128b7f00000000000000020000000000000001'),
    ('\x138b7f0163445b'), ('\x138b7f44'), ('\x148b7f00')
) f(v);

-- postgresql-hll's typmod spellings: hll(log2m, regwidth, expthresh, sparseon) is hll(log2m).
CREATE TEMP TABLE typmods (a distcount.hll(14, 5), b distcount.hll(11, 5, -1, 1), c distcount.hll(12, 6, 0));
SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
WHERE attrelid = 'typmods'::regclass AND attnum > 0 ORDER BY attnum;
SELECT public.error_of($$CREATE TEMP TABLE bad (a distcount.hll(14, 9))$$);
SELECT public.error_of($$CREATE TEMP TABLE bad (a distcount.hll(18, 5))$$);
SELECT public.error_of($$CREATE TEMP TABLE bad (a distcount.hll(14, 5, 3))$$);
SELECT public.error_of($$CREATE TEMP TABLE bad (a distcount.hll(14, 5, -1, 2))$$);
SELECT public.error_of($$CREATE TEMP TABLE bad (a distcount.hll(14, 5, -1, 1, 0))$$);
-- An imported sketch fits a column of its own log2m, not another.
INSERT INTO typmods (b) SELECT distcount.hll_from_postgresql_hll(public.hll_add_agg(public.hll_hash_bigint(g))::text::bytea) FROM generate_series(1, 3000) g;
SELECT distcount.hll_count(b) FROM typmods;
SELECT public.error_of($$INSERT INTO typmods (a) SELECT distcount.hll_from_postgresql_hll(public.hll_add_agg(public.hll_hash_bigint(g))::text::bytea) FROM generate_series(1, 3000) g$$);

-- The recommended search path beside postgresql-hll: distcount first, so that hll,
-- hll_empty(), hll_union_agg, hll_add, # and || are pg_distcount's.
SET search_path = distcount, public;
CREATE TEMP TABLE visits (day int, h hll);
INSERT INTO visits SELECT d, hll_agg(g) FROM generate_series(1, 3) d, generate_series(1, 1000 * d) g GROUP BY d;
SELECT pg_typeof(hll_empty()) = 'distcount.hll'::regtype AS empty_is_ours, # hll_union_agg(h) AS total,
       pg_typeof(hll_union_agg(h)) = 'distcount.hll'::regtype AS union_is_ours,
       # (hll_empty() || hll_add(hll_empty(), 1)) AS one,
       (SELECT atttypid FROM pg_attribute WHERE attrelid = 'visits'::regclass AND attname = 'h') = 'distcount.hll'::regtype AS column_is_ours
FROM visits;
-- postgresql-hll stays reachable by its schema.
SELECT # public.hll_add(public.hll_empty(), public.hll_hash_integer(1)) AS theirs;
RESET search_path;

DROP TABLE theirs, imported, days;
DROP EXTENSION hll;
