-- The dense layout of format version 4 (forms 7 and 8): each register by its Huffman code,
-- in four streams, written when it is shorter than the 4-bit layout of version 3 (forms 5 and
-- 6), which is still read; values of either layout count the same.
SET max_parallel_workers_per_gather = 0;   -- one state takes every row: the martingale count
CREATE TABLE huff_values AS SELECT i AS v FROM generate_series(1, 1000000) i;

-- Sizes at p = 14: built by insertions (form 7, with the 8-byte count) and the registers alone
-- (h || h, a union: form 8); the 4-bit layout of the same registers takes 8,197 bytes and an
-- escape byte for each register 15 or more above the smallest.
SELECT n, hll_info(h) ->> 'format_version' AS version, substr(hll_send(h), 2, 1) AS form,
       octet_length(h::bytea) AS bytes, octet_length((h || h)::bytea) AS union_bytes,
       substr(hll_send(h || h), 2, 1) AS union_form
FROM (SELECT n, (SELECT hll_agg(v) FROM huff_values WHERE v <= n) AS h
      FROM unnest(ARRAY[6000, 10000, 100000, 1000000]) n) s
ORDER BY n;

-- Other precisions: at p = 4 and 6 the 4-bit layout (9 and 33 bytes of registers) is shorter
-- than codes with their table and four streams, and stays (version 3).
SELECT p, hll_info(h) ->> 'format_version' AS version, octet_length(h::bytea) AS bytes
FROM generate_series(4, 18, 2) p,
     LATERAL (SELECT hll_agg(v, p) AS h FROM huff_values WHERE v <= 200000) s
ORDER BY p;

-- Round trips: text, bytea, and binary COPY (send and recv), estimates unchanged.
CREATE TABLE huff_sketches AS
SELECT k, hll_agg(v) AS h FROM huff_values, generate_series(1, 4) k
WHERE v <= 10000 * 10 ^ (k - 1) GROUP BY k
UNION ALL
SELECT 10 + k, hll_agg(v) || hll_agg(v + 1) FROM huff_values, generate_series(1, 2) k
WHERE v <= 50000 * k GROUP BY k;
SELECT k, h::text::hll = h AS text_round_trip, h::bytea::hll = h AS bytea_round_trip,
       hll_estimate(h::text::hll) = hll_estimate(h) AS same_estimate
FROM huff_sketches ORDER BY k;
CREATE TABLE huff_copied (k int, h hll);
\copy huff_sketches TO '/tmp/pg_distcount_hll_huffman.bin' WITH (FORMAT binary)
\copy huff_copied FROM '/tmp/pg_distcount_hll_huffman.bin' WITH (FORMAT binary)
SELECT count(*) AS copied, bool_and(c.h = s.h) AS same_bytes, bool_and(# c.h = # s.h) AS same_counts
FROM huff_sketches s JOIN huff_copied c USING (k);
SELECT hll_count(hll_union_agg(h)) = hll_count(hll_union_agg(h::text::hll)) AS union_agg_alike
FROM huff_sketches;

-- Values of earlier builds: the p = 8 sketch of 1..2000 in the 4-bit layout of version 3,
-- with its count (form 5) and without (form 6), read back as the same sketches, written in
-- version 4, with the same estimates. A sketch built now has the same registers; its count
-- starts from the linear count of 32-bit tokens (form 9), where those builds counted 26-bit
-- ones, so it ends a hair away (1921.341389 against the form-5 value's 1921.341447).
SELECT '\x0305081a827c31a45d059e400122633383422191452617413236622555326447070233133633122332313333342512513412442427252334a2111212133254233234412423332122368444221431542163334545565331153332434315405312312430323242116232252341373235474411226455224394113116127421342321116422445237533803234442'::bytea::hll AS form_5_read;
SELECT hll_agg(v, 8) || hll_agg(v, 8) = '\x0306081a0122633383422191452617413236622555326447070233133633122332313333342512513412442427252334a2111212133254233234412423332122368444221431542163334545565331153332434315405312312430323242116232252341373235474411226455224394113116127421342321116422445237533803234442'::bytea::hll AS same_registers_as_built,
       hll_estimate(hll_agg(v, 8)) AS built_estimate,
       hll_estimate('\x0306081a0122633383422191452617413236622555326447070233133633122332313333342512513412442427252334a2111212133254233234412423332122368444221431542163334545565331153332434315405312312430323242116232252341373235474411226455224394113116127421342321116422445237533803234442'::bytea::hll) AS form_6_estimate,
       # (hll_agg(v, 8) || hll_agg(v, 8)) AS union_count
FROM huff_values WHERE v <= 2000;

-- Forged bytes are refused with the reason (22P03 for bytea, 22P02 for text). The valid p = 6
-- value below: 04 08 06 1a, the bounds 1 and 7, the code lengths of 1..7 in 5 bits (2 0 1 0
-- 0 0 2), the byte lengths of streams 0 to 2 (3 each), and four streams of 3 bytes.
SELECT '\x0408061a0107100200004003030300557e00557e00557e00557e'::bytea::hll::text AS valid_bytes,
       # '\x0408061a0107100200004003030300557e00557e00557e00557e'::bytea::hll AS count;
SELECT error_of($$ SELECT '\x0308061a0107100200004003030300557e00557e00557e00557e'::bytea::hll $$) AS form_8_in_version_3;
SELECT error_of($$ SELECT '\x0408061a0107100200004003030300557e00557e00557e00557f'::bytea::hll $$) AS padding_bit_set;
SELECT error_of($$ SELECT '\x0408061a0107100200004003030300557e00557e00557e00557e00'::bytea::hll $$) AS trailing_byte;
SELECT error_of($$ SELECT '\x0408061a0107100200004003030300557e00557e00557e0055'::bytea::hll $$) AS truncated;
SELECT error_of($$ SELECT '\x0408061a0107180200004003030300557e00557e00557e00557e'::bytea::hll $$) AS incomplete_code;
SELECT error_of($$ SELECT '\x0408061a0108100200004003030300557e00557e00557e00557e'::bytea::hll $$) AS bound_held_by_no_register;
SELECT error_of($$ SELECT '\x0408061a01071002000040830003030300557e00557e00557e00557e'::bytea::hll $$) AS overlong_stream_length;
SELECT error_of($$ SELECT '\x0408061a0107100200004007030300557e00557e00557e00557e'::bytea::hll $$) AS stream_lengths_moved;
SELECT error_of($$ SELECT '\x0408061a01071004000020040404ffffea80ffffea80ffffea80ffffea80'::bytea::hll $$) AS not_the_huffman_code;
SELECT error_of($$ SELECT '\x0408041a01041084200101011b1b1b1b'::bytea::hll $$) AS four_bit_layout_shorter;
SELECT error_of($$ SELECT '\x0408061a3d3d'::bytea::hll $$) AS register_above_max;
SELECT error_of($$ SELECT '\x0407061a010710'::bytea::hll $$) AS count_missing;
SELECT error_of($$ SELECT 'hll1:BAgGGgEHEAIAAEADAwMAVX4AVX4AVX4AVX8='::hll $$) AS text_padding_bit_set;
SELECT 'hll1:BAgGGgEHEAIAAEADAwMAVX4AVX4AVX4AVX4='::hll = '\x0408061a0107100200004003030300557e00557e00557e00557e'::bytea::hll AS text_is_bytes;
DROP TABLE huff_values, huff_sketches, huff_copied;
