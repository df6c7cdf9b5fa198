-- Bad input to hll gives a clear ERROR with its SQLSTATE, and the server stays up.

-- Precision out of range (22023).
SELECT error_of($$ SELECT hll_empty(3) $$);
SELECT error_of($$ SELECT hll_empty(19) $$);
SELECT error_of($$ SELECT hll_agg(i, 30) FROM generate_series(1, 3) i $$);
SELECT error_of($$ SELECT hll_empty()::hll(20) $$);
SELECT error_of($$ CREATE TABLE bad (h hll(2)) $$);
SELECT error_of($$ CREATE TABLE bad (h hll(12, 5, -1, 1, 0)) $$);
SELECT error_of($$ CREATE TABLE bad (h hll(x)) $$);

-- Malformed text (22P02).
SELECT error_of($$ SELECT ''::hll $$);
SELECT error_of($$ SELECT 'hll1:'::hll $$);
SELECT error_of($$ SELECT 'hll1:AQAOGg'::hll $$);
SELECT error_of($$ SELECT 'hll2:AQAOGg=='::hll $$);
SELECT error_of($$ SELECT 'hll1:AQAOGg== '::hll $$);
SELECT error_of($$ SELECT 'hll1:!!!!'::hll $$);
SELECT error_of($$ SELECT '\xdeadbeef'::hll $$);

-- Truncated, garbage or forged bytes through the bytea cast (22P03).
SELECT error_of($$ SELECT ''::bytea::hll $$);
SELECT error_of($$ SELECT '\x01'::bytea::hll $$);
SELECT error_of($$ SELECT '\x03000e1a'::bytea::hll $$);
SELECT error_of($$ SELECT '\x02050e1a'::bytea::hll $$);
SELECT error_of($$ SELECT '\x0200131a'::bytea::hll $$);
SELECT error_of($$ SELECT '\x02000e1a00'::bytea::hll $$);
SELECT error_of($$ SELECT '\x02010e1a'::bytea::hll $$);
SELECT error_of($$ SELECT ('\x02020e1a' || repeat('00', 12288))::bytea::hll $$);
SELECT error_of($$ SELECT ('\x02020e1a' || repeat('ff', 12288))::bytea::hll $$);
-- The explicit form (version 2): whole 8-byte hashes, strictly increasing, at most 128 (fewer
-- below precision 11), and not in version 1.
SELECT error_of($$ SELECT '\x01030e1a0700000000000000'::bytea::hll $$);
SELECT error_of($$ SELECT '\x02030e1a07000000000000'::bytea::hll $$);
SELECT error_of($$ SELECT '\x02030e1a09000000000000000700000000000000'::bytea::hll $$);
SELECT error_of($$ SELECT '\x02030e1a07000000000000000700000000000000'::bytea::hll $$);
SELECT error_of($$ SELECT '\x0203041a07000000000000000900000000000000'::bytea::hll $$);
SELECT error_of($$ SELECT ('\x02030e1a' || string_agg(lpad(to_hex(i), 16, '0'), '' ORDER BY i))::bytea::hll
                    FROM generate_series(1, 129) i $$);
-- Version 1 values (before the explicit form) are still read.
SELECT '\x01010e1a0027'::bytea::hll AS version_1, hll_info('\x01010e1a0027'::bytea::hll) ->> 'form' AS form;
SELECT error_of($$ SELECT (hll_agg(i)::bytea || '\x00'::bytea)::hll FROM generate_series(1, 100000) i $$);
SELECT error_of($$ SELECT substr(hll_agg(i)::bytea, 1, 20)::hll FROM generate_series(1, 300) i $$);
-- The sparse form of 32-bit tokens (version 4, form 9), here two tokens at p = 4 (index 0
-- with rank 33, index 1): the token count, then Rice codes of parameter 29 (see
-- src/hll/sketch.rs). Refused: a padding bit, a byte more, three tokens at p = 4 (at most
-- 2^4/8), rank 0, version 2, sparse precision 26.
SELECT '\x0409042002800000021800000000'::bytea::hll AS two_tokens,
       # '\x0409042002800000021800000000'::bytea::hll AS count;
SELECT error_of($$ SELECT '\x0409042002800000021800000001'::bytea::hll $$);
SELECT error_of($$ SELECT '\x040904200280000002180000000000'::bytea::hll $$);
SELECT error_of($$ SELECT '\x0409042003800000021800000000'::bytea::hll $$);
SELECT error_of($$ SELECT '\x0409042002800000000800000000'::bytea::hll $$);
SELECT error_of($$ SELECT '\x0209042002800000021800000000'::bytea::hll $$);
SELECT error_of($$ SELECT '\x0409041a02800000021800000000'::bytea::hll $$);
SELECT error_of($$ SELECT substr(hll_agg(i)::bytea, 1, 23)::hll FROM generate_series(1, 100) i $$);

-- Confidence outside [0, 1) (22023), never a NaN bound.
SELECT error_of($$ SELECT hll_estimate(hll_empty(), 1.0) $$);
SELECT error_of($$ SELECT hll_estimate(hll_empty(), -0.5) $$);
SELECT error_of($$ SELECT hll_estimate(hll_empty(), 'NaN') $$);

-- Still up.
SELECT # hll_agg(i) AS still_up FROM generate_series(1, 10) i;
