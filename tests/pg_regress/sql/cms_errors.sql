-- Bad input to cms gives a clear ERROR with its SQLSTATE, and the server stays up.

-- Parameters (22023).
SELECT error_of($$ SELECT cms_empty(0, 0.01) $$);
SELECT error_of($$ SELECT cms_empty(1, 0.01) $$);
SELECT error_of($$ SELECT cms_empty(0.01, 1.5) $$);
SELECT error_of($$ SELECT cms_empty('NaN', 0.01) $$);
SELECT error_of($$ SELECT cms_empty(0.0000001, 0.0000001) $$);
SELECT error_of($$ SELECT cms_empty(0.01, 0.01, -1) $$);
SELECT error_of($$ SELECT cms_empty(0.01, 0.01, 10, 'fancy') $$);
SELECT error_of($$ SELECT cms_agg(i, 2, 0.5) FROM generate_series(1, 3) i $$);
SELECT error_of($$ SELECT * FROM cms_topk(cms_empty(), -1) $$);
-- More keys than the heavy-hitter list holds: an error, not silently fewer rows. A list that
-- holds every key it saw answers any k in full.
SELECT error_of($$ SELECT * FROM cms_topk((SELECT cms_agg(i, 0.01, 0.01, 4) FROM generate_series(1, 100) i), 5) $$);
SELECT count(*) AS rows_for_4 FROM cms_topk((SELECT cms_agg(i, 0.01, 0.01, 4) FROM generate_series(1, 100) i), 4);
SELECT count(*) AS rows_of_3_keys FROM cms_topk((SELECT cms_agg(i % 3, 0.01, 0.01, 4) FROM generate_series(1, 100) i), 100);
SELECT error_of($$ SELECT * FROM cms_topk((SELECT cms_agg(i, 0.01, 0.01, 0) FROM generate_series(1, 10) i), 1) $$);

-- Mixing dimensions or modes of sketches that counted something names both; conservative
-- sketches do not subtract or go negative.
SELECT error_of($$ SELECT cms_add(cms_empty(0.01, 0.01), 1) + cms_add(cms_empty(0.001, 0.01), 1) $$);
SELECT error_of($$ SELECT cms_add(cms_empty(0.01, 0.01, 0, 'linear'), 1) + cms_add(cms_empty(0.01, 0.01, 0, 'conservative'), 1) $$);
SELECT error_of($$ SELECT cms_empty(0.01, 0.01, 0, 'conservative') - cms_empty(0.01, 0.01, 0, 'conservative') $$);
SELECT error_of($$ SELECT cms_add(cms_empty(0.01, 0.01, 0, 'conservative'), 'x'::text, -1) $$);
SELECT error_of($$ SELECT cms_union_agg(c) FROM (VALUES (cms_add(cms_empty(0.01, 0.01), 1)), (cms_add(cms_empty(0.1, 0.01), 1))) v(c) $$);
-- (Sketches that counted nothing are neutral whatever their shape.)
SELECT error_of($$ SELECT cms_empty(0.01, 0.01) + cms_empty(0.001, 0.01, 0, 'conservative') $$);

-- Overflow (22003), never a wrap.
SELECT error_of($$ SELECT cms_add(cms_add(NULL, 'x'::text, 9223372036854775807), 'x'::text, 1) $$);

-- Malformed text (22P02) and bytes (22P03).
SELECT error_of($$ SELECT ''::cms $$);
SELECT error_of($$ SELECT 'cms1:'::cms $$);
SELECT error_of($$ SELECT 'cms1:AAAA'::cms $$);
SELECT error_of($$ SELECT 'hll1:AQAOGg=='::cms $$);
SELECT error_of($$ SELECT ''::bytea::cms $$);
SELECT error_of($$ SELECT '\xdeadbeef'::bytea::cms $$);
SELECT error_of($$ SELECT substr(cms_empty()::bytea, 1, 40)::cms $$);
SELECT error_of($$ SELECT (cms_empty()::bytea || '\x00'::bytea)::cms $$);
SELECT error_of($$ SELECT overlay(cms_empty()::bytea placing '\x09'::bytea from 1)::cms $$);
SELECT error_of($$ SELECT overlay(cms_add(NULL, 'x'::text)::bytea placing '\x07'::bytea from 3)::cms $$);

-- Still up.
SELECT cms_total(cms_add(NULL, 1)) AS still_up;
