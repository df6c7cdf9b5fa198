-- Issue 17: values that SQL calls equal count once, in hll and in cms, whatever the session's
-- client_encoding; the 64-bit hashes of fixed values of every built-in type with a canonical
-- encoding are frozen (golden vectors: any change of a hash fails here).
CREATE EXTENSION IF NOT EXISTS citext;
CREATE TYPE mood AS ENUM ('calm', 'élan');
CREATE DOMAIN price AS numeric;

-- Each row: a type, values of which some are equal under the type's equality; the approximate
-- counts (hll_agg, approx_count_distinct, both paths of the aggregates) must equal
-- count(DISTINCT), and cms must count the equal keys under one key.
CREATE FUNCTION pg_temp.same_counts(v anyarray, probe anyelement)
RETURNS TABLE (exact bigint, approx bigint, agg bigint, added bigint, cms_probe bigint) LANGUAGE sql AS $$
    SELECT count(DISTINCT x), distcount.approx_count_distinct(x), distcount.hll_count(distcount.hll_agg(x)),
           (SELECT distcount.hll_count(h) FROM (SELECT distcount.hll_union_agg(distcount.hll_add(NULL, y)) h
                                              FROM unnest(v) y) s),
           distcount.cms_estimate(distcount.cms_agg(x), probe)
    FROM unnest(v) x
$$;

SELECT 'numeric' AS type, * FROM pg_temp.same_counts(ARRAY[1, 1.0, 1.00, 2.5, 2.50, 'NaN', 'NaN', 'Infinity', '-Infinity', 0, -0.0]::numeric[], 1.000::numeric)
UNION ALL SELECT 'float8', * FROM pg_temp.same_counts(ARRAY[0, '-0', 'NaN', '-NaN', 1.5, 1.50]::float8[], '-0'::float8)
UNION ALL SELECT 'float4', * FROM pg_temp.same_counts(ARRAY[0, '-0', 'NaN', 1.5]::float4[], 0::float4)
UNION ALL SELECT 'jsonb', * FROM pg_temp.same_counts(ARRAY['{"a": 1.0}', '{"a": 1}', '{"a": [1, 2.50]}', '{"a": [1.0, 2.5]}', '1', '[1]', '{"b": 1, "a": 2}', '{"a": 2, "b": 1.00}']::jsonb[], '{"a": 1.00}'::jsonb)
UNION ALL SELECT 'citext', * FROM pg_temp.same_counts(ARRAY['a', 'A', 'b', 'Ab', 'aB']::citext[], 'B'::citext)
UNION ALL SELECT 'interval', * FROM pg_temp.same_counts(ARRAY['1 day', '24 hours', '1 mon', '30 days', '1 hour']::interval[], '1440 minutes'::interval)
UNION ALL SELECT 'price (domain)', * FROM pg_temp.same_counts(ARRAY[1.50, 1.5, 3]::price[], 1.500::price)
UNION ALL SELECT 'text', * FROM pg_temp.same_counts(ARRAY['a', 'A', U&'\00E9', 'a'], 'a'::text)
UNION ALL SELECT 'mood (enum)', * FROM pg_temp.same_counts(ARRAY['calm', U&'\00E9lan', 'calm']::mood[], 'calm'::mood);

-- Arrays compare element by element with the elements' equality.
SELECT count(DISTINCT x) AS exact, distcount.approx_count_distinct(x) AS approx,
       distcount.cms_estimate(distcount.cms_agg(x), ARRAY[1, 2.0]::numeric[]) AS cms_probe
FROM (VALUES (ARRAY[1.0, 2]::numeric[]), (ARRAY[1, 2.00]), (ARRAY[2, 1])) v(x);

-- citext columns resolve to the text overloads of the aggregates (citext casts to text
-- implicitly): they must still count by citext's equality, on every path of those overloads.
CREATE TEMP TABLE words AS SELECT (CASE WHEN g % 2 = 0 THEN 'Word' ELSE 'wORD' END || (g % 500))::citext AS w
FROM generate_series(1, 20000) g;
-- At p = 10 the sketch is dense: its count follows the order rows arrive in (the martingale
-- count), and count(DISTINCT) makes PostgreSQL 16 and later sort them; the registers' estimate
-- (a union of dense sketches) does not depend on the order.
SELECT count(DISTINCT w) AS exact, distcount.approx_count_distinct(w) AS approx,
       distcount.hll_count(distcount.hll_agg(w)) AS agg,
       distcount.hll_count(distcount.hll_union(distcount.hll_agg(w, 10), distcount.hll_agg(w, 10))) AS agg_p10,
       distcount.cms_estimate(distcount.cms_agg(w), 'WORD7'::citext) AS cms_word7
FROM words;
-- numeric and integer columns: an integral numeric is the same item as the integer.
SELECT distcount.hll_add(NULL, 42::numeric(10,2)) = distcount.hll_add(NULL, 42::bigint) AS numeric_is_integer,
       distcount.hll_add(NULL, 42.5::numeric) = distcount.hll_add(NULL, 42.50::numeric(10,3)) AS scale_ignored,
       distcount.hll_count(distcount.hll_union(distcount.hll_agg(g::numeric), distcount.hll_agg(g::int))) AS union_count
FROM generate_series(1, 100) g;

-- client_encoding: the sketch of non-ASCII values is the same in a LATIN1 and a UTF8 session
-- (U& escapes name the same characters in both).
CREATE TEMP TABLE enc AS
SELECT U&'caf\00E9 \00FC' AS t, U&'{"k\00E9": "v\00E9", "n": 1.0}'::jsonb AS jb,
       U&'{"k\00E9": "v\00E9"}'::json AS js, U&'\00C9t\00E9'::citext AS ci, U&'n\00E4me'::name AS nm,
       U&'\00E9lan'::mood AS md;
CREATE TEMP TABLE utf8_hashes AS
SELECT distcount.hll_add(NULL, t) AS t, distcount.hll_add(NULL, jb) AS jb, distcount.hll_add(NULL, js) AS js,
       distcount.hll_add(NULL, ci) AS ci, distcount.hll_add(NULL, nm) AS nm, distcount.hll_add(NULL, md) AS md,
       distcount.cms_add(NULL, jb) AS cms_jb
FROM enc;
SET client_encoding = 'LATIN1';
SELECT u.t = distcount.hll_add(NULL, e.t) AS text_same, u.jb = distcount.hll_add(NULL, e.jb) AS jsonb_same,
       u.js = distcount.hll_add(NULL, e.js) AS json_same, u.ci = distcount.hll_add(NULL, e.ci) AS citext_same,
       u.nm = distcount.hll_add(NULL, e.nm) AS name_same, u.md = distcount.hll_add(NULL, e.md) AS enum_same,
       distcount.cms_estimate(u.cms_jb, e.jb) AS cms_jsonb
FROM utf8_hashes u, enc e;
RESET client_encoding;

-- Golden vectors: the 64-bit hash (the 8 little-endian bytes an explicit sketch stores) of
-- fixed values. Checked against XXH3-64 of the documented canonical bytes computed outside
-- PostgreSQL (Python's xxhash); numeric, float, interval, jsonb and json are new in 0.2.0, the
-- others are unchanged since 0.1.0.
CREATE FUNCTION pg_temp.h(s distcount.hll) RETURNS text LANGUAGE sql AS
$$ SELECT encode(substr(distcount.hll_send(s), 5), 'hex') $$;
SELECT * FROM (VALUES
    ('int2 42', pg_temp.h(distcount.hll_add(NULL, 42::int2))),
    ('int4 42', pg_temp.h(distcount.hll_add(NULL, 42::int4))),
    ('int8 -1', pg_temp.h(distcount.hll_add(NULL, -1::int8))),
    ('text abc', pg_temp.h(distcount.hll_add(NULL, 'abc'::text))),
    ('varchar abc', pg_temp.h(distcount.hll_add(NULL, 'abc'::varchar))),
    ('char(5) abc', pg_temp.h(distcount.hll_add(NULL, 'abc'::char(5)))),
    ('name abc', pg_temp.h(distcount.hll_add(NULL, 'abc'::name))),
    ('bytea \x00ff', pg_temp.h(distcount.hll_add(NULL, '\x00ff'::bytea))),
    ('uuid', pg_temp.h(distcount.hll_add(NULL, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid))),
    ('json', pg_temp.h(distcount.hll_add(NULL, '{"a": 1.0}'::json))),
    ('numeric 1.50', pg_temp.h(distcount.hll_add(NULL, 1.50::numeric))),
    ('numeric 42.000', pg_temp.h(distcount.hll_add(NULL, 42.000::numeric))),
    ('numeric -0.001', pg_temp.h(distcount.hll_add(NULL, -0.001::numeric))),
    ('numeric 1e20', pg_temp.h(distcount.hll_add(NULL, 1e20::numeric))),
    ('numeric NaN', pg_temp.h(distcount.hll_add(NULL, 'NaN'::numeric))),
    ('numeric -Infinity', pg_temp.h(distcount.hll_add(NULL, '-Infinity'::numeric))),
    ('float8 1.5', pg_temp.h(distcount.hll_add(NULL, 1.5::float8))),
    ('float8 -0', pg_temp.h(distcount.hll_add(NULL, '-0'::float8))),
    ('float8 NaN', pg_temp.h(distcount.hll_add(NULL, 'NaN'::float8))),
    ('float4 1.5', pg_temp.h(distcount.hll_add(NULL, 1.5::float4))),
    ('interval 1 day', pg_temp.h(distcount.hll_add(NULL, '1 day'::interval))),
    ('interval -1 mon 2 us', pg_temp.h(distcount.hll_add(NULL, '-1 mon 2 microseconds'::interval))),
    ('jsonb', pg_temp.h(distcount.hll_add(NULL, '{"b": [true, null, "x"], "a": 1.50}'::jsonb))),
    ('jsonb scalar', pg_temp.h(distcount.hll_add(NULL, '2'::jsonb))),
    ('bool true', pg_temp.h(distcount.hll_add(NULL, true))),
    ('date 2000-01-02', pg_temp.h(distcount.hll_add(NULL, '2000-01-02'::date))),
    ('timestamp', pg_temp.h(distcount.hll_add(NULL, '2000-01-01 00:00:01'::timestamp))),
    ('inet', pg_temp.h(distcount.hll_add(NULL, '10.0.0.1'::inet))),
    ('int4[]', pg_temp.h(distcount.hll_add(NULL, ARRAY[1, 2]::int4[])))
) g(value, hash);
