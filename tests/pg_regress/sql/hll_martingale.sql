-- The martingale (HIP) count of dense sketches built by insertions (forms 5 and 7),
-- the registers' estimate after unions, values of earlier versions, and forged form-5 bytes.
SET max_parallel_workers_per_gather = 0;   -- one state takes every row: the martingale count
CREATE TABLE hip_values AS SELECT i AS v FROM generate_series(1, 100000) i;

-- Built by insertions: dense with a count, 8 bytes more than the registers (Huffman codes,
-- format version 4), and a smaller standard error (sqrt(ln 2/m) = 0.0065 at p = 14,
-- against 1.04/sqrt(m) = 0.0081).
SELECT hll_info(hll_agg(v)) FROM hip_values;
SELECT abs(hll_count(hll_agg(v)) - 100000) < 100000 * 3 * 0.0065 AS within_three_sigma FROM hip_values;

-- Every transition path keeps the count alike: the bigint fast path, numeric (hashed as the
-- same integers through anyelement), text through its own path and through anyelement
-- (varchar). hll_add one value at a time gives the same registers (x || x: a union, without
-- the count); its count started when its tokens outgrew the dense form, the aggregate's when
-- its batch of buffered tokens was sorted in, a few values later: counts close, not equal.
SELECT (SELECT hll_agg(v) FROM hip_values) = (SELECT hll_agg(v::numeric) FROM hip_values) AS bigint_numeric,
       (SELECT hll_agg(v::text) FROM hip_values) = (SELECT hll_agg(v::text::varchar) FROM hip_values) AS text_varchar;
CREATE FUNCTION pg_temp.add_one_by_one(n int) RETURNS hll LANGUAGE plpgsql AS $$
DECLARE h hll := hll_empty();
BEGIN
    FOR i IN 1..n LOOP h := hll_add(h, i::bigint); END LOOP;
    RETURN h;
END $$;
SELECT a || a = b || b AS same_registers, abs(hll_count(a) - hll_count(b)) < 20 AS counts_close,
       hll_info(a) ->> 'format_version' AS add_version
FROM (SELECT pg_temp.add_one_by_one(20000) AS a,
             (SELECT hll_agg(v) FROM hip_values WHERE v <= 20000) AS b) s;
-- The count survives the text and binary forms.
SELECT h::text::hll = h AS text_round_trip, h::bytea::hll = h AS bytea_round_trip,
       # h::text::hll = # h AS same_count
FROM (SELECT hll_agg(v) AS h FROM hip_values) s;

-- A union estimates from its registers (its inputs might share values): dense without a
-- count, form 8. A union with an empty sketch is the other sketch, count included.
SELECT hll_info(hll_union(a, b)) AS union_info,
       abs(hll_count(hll_union(a, b)) - 100000) < 100000 * 3 * 0.0081 AS within_three_sigma,
       hll_union(a, hll_empty()) = a AS empty_is_neutral,
       hll_info(hll_union(a, hll_empty())) ->> 'format_version' AS with_empty_version
FROM (SELECT hll_agg(v) FILTER (WHERE v <= 60000) AS a, hll_agg(v) FILTER (WHERE v > 40000) AS b
      FROM hip_values) s;
SELECT hll_info(hll_union_agg(h)) ->> 'format_version' AS union_agg_version,
       hll_info(hll_union_agg(h)) ->> 'bytes' AS union_agg_bytes
FROM (SELECT hll_agg(v) AS h FROM hip_values GROUP BY v % 4) s;
-- Folding to a lower precision also leaves the registers alone.
SELECT hll_info(hll(hll_agg(v), 12, false)) ->> 'format_version' AS folded_version
FROM hip_values;

-- Values of earlier builds: a dense p = 4 sketch of 1..100 in version 2 and version 1 (the
-- registers alone, 6 bits each) reads back as before; the same values built now carry a
-- count, and their union with the old value is that old value (the same registers, no count)
-- written in version 3 (form 6, 4 bits each).
SELECT # 'hll1:AgIEGsNQEIMyDIRACARRCA=='::hll AS v2_count,
       # 'hll1:AQIEGsNQEIMyDIRACARRCA=='::hll AS v1_count,
       hll_info('hll1:AgIEGsNQEIMyDIRACARRCA=='::hll) ->> 'format_version' AS v2_version;
SELECT h::text AS built_now, hll_info(h) ->> 'format_version' AS version,
       hll_union(h, 'hll1:AgIEGsNQEIMyDIRACARRCA=='::hll)::text AS union_with_v2,
       hll_union('hll1:AQIEGsNQEIMyDIRACARRCA=='::hll, h)::text AS union_with_v1
FROM (SELECT hll_agg(i, 4) AS h FROM generate_series(1, 100) i) s;

-- Forged forms 5 and 6 are refused with the reason (22P03 for bytea, 22P02 for text).
-- The valid value above: 03 05 04 1a, the count 88.789 as an f64, then the base 02 and 8
-- bytes of nibbles (16 registers, none 15 above the base: no escapes).
SELECT error_of($$ SELECT '\x0205041afbe9fd277e325640021123811102022203'::bytea::hll $$) AS form_5_in_version_2;
SELECT error_of($$ SELECT '\x0302041ac3501083320c844008045108'::bytea::hll $$) AS six_bit_dense_in_version_3;
SELECT error_of($$ SELECT '\x0305041a000000000000f87f021123811102022203'::bytea::hll $$) AS nan_count;
SELECT error_of($$ SELECT '\x0305041a000000000000f03f021123811102022203'::bytea::hll $$) AS count_below_registers;
SELECT error_of($$ SELECT '\x0305041afbe9fd277e3256400211238111020222'::bytea::hll $$) AS truncated;
SELECT error_of($$ SELECT '\x0305041afbe9fd277e3256403e1123811102022203'::bytea::hll $$) AS register_above_max;
SELECT error_of($$ SELECT '\x0305041afbe9fd277e32564002f123811102022203'::bytea::hll $$) AS escape_byte_missing;
SELECT error_of($$ SELECT '\x0306041a011111111111111111'::bytea::hll $$) AS base_not_smallest;
SELECT error_of($$ SELECT 'hll1:AwUEGgAAAAAAAPh/AhEjgRECAiID'::hll $$) AS nan_count_text;
SELECT '\x0305041afbe9fd277e325640021123811102022203'::bytea::hll::text AS valid_bytes;
DROP TABLE hip_values;

-- Replicated state (crdt_replicate_setup): a union keeps a count that depends on the order of
-- unions, so a union with a sketch already in it can change the bytes; hll_crdt_merge has no
-- count, and its bytes are a function of the values alone.
CREATE TABLE crdt_parts AS SELECT
    (SELECT hll_agg(g) FROM generate_series(1, 3000) g) AS a,
    (SELECT hll_agg(g) FROM generate_series(5000, 5100) g) AS f;
SELECT hll_union(hll_union(a, f), a) = hll_union(a, f) AS union_idempotent,
       hll_crdt_merge(hll_crdt_merge(a, f), a) = hll_crdt_merge(a, f) AS merge_idempotent,
       hll_crdt_merge(hll_crdt_merge(f, a), f) = hll_crdt_merge(a, hll_crdt_merge(a, f)) AS merge_orders_agree,
       hll_crdt_merge(a, NULL) = hll_crdt_merge(a, a) AS one_side_as_merged,
       hll_crdt_merge(NULL, NULL) IS NULL AS null_null
  FROM crdt_parts;
-- The trigger stores the named hll columns without the count.
CREATE TABLE crdt_rows (id int PRIMARY KEY, v hll, w hll);
CREATE TRIGGER canon BEFORE INSERT OR UPDATE ON crdt_rows
    FOR EACH ROW EXECUTE FUNCTION hll_crdt_canonical('v');
INSERT INTO crdt_rows SELECT 1, a, a FROM crdt_parts;
SELECT v = hll_crdt_merge(a, NULL) AS v_canonical, v = a AS v_as_given, w = a AS w_untouched
  FROM crdt_rows, crdt_parts;
UPDATE crdt_rows SET v = hll_add(hll_empty(), 1) || a FROM crdt_parts;
SELECT v = hll_crdt_merge(hll_add(hll_empty(), 1), a) AS updated_canonical FROM crdt_rows, crdt_parts;
SELECT error_of($$ SELECT hll_crdt_canonical() $$) AS called_directly;
CREATE TRIGGER canon_bad BEFORE INSERT ON crdt_rows
    FOR EACH ROW EXECUTE FUNCTION hll_crdt_canonical('nope');
SELECT error_of($$ INSERT INTO crdt_rows VALUES (2, NULL, NULL) $$) AS unknown_column;
DROP TABLE crdt_rows, crdt_parts;
