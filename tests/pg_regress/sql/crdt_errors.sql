-- Every kind of bad input to the counter types gives a clear ERROR with its SQLSTATE,
-- and the server stays up. error_of() (from setup) shows "SQLSTATE: message | detail".

-- Malformed text (22P02).
SELECT error_of($$ SELECT ''::gcounter $$);
SELECT error_of($$ SELECT '{"A": 5'::gcounter $$);
SELECT error_of($$ SELECT '{A: 5}'::gcounter $$);
SELECT error_of($$ SELECT '{"A": 5,}'::gcounter $$);
SELECT error_of($$ SELECT '{"A": 5} extra'::gcounter $$);
SELECT error_of($$ SELECT '{"A": 1.5}'::gcounter $$);
SELECT error_of($$ SELECT '{"A": "5"}'::gcounter $$);
SELECT error_of($$ SELECT '{"A": 05}'::gcounter $$);
SELECT error_of($$ SELECT '[1, 2]'::gcounter $$);
SELECT error_of($$ SELECT '{"A": [1, 2]}'::gcounter $$);
SELECT error_of($$ SELECT '{"A": 5}'::pncounter $$);
SELECT error_of($$ SELECT '{"A": [5]}'::pncounter $$);
SELECT error_of($$ SELECT '{"A": "\u0000"}'::gcounter $$);
SELECT error_of($$ SELECT '{"\u0000": 1}'::gcounter $$);

-- Negative counts (22P02 in text), overflowing counts (22003).
SELECT error_of($$ SELECT '{"A": -1}'::gcounter $$);
SELECT error_of($$ SELECT '{"A": [1, -1]}'::pncounter $$);
SELECT error_of($$ SELECT '{"A": 9223372036854775808}'::gcounter $$);
SELECT error_of($$ SELECT gcounter_value('{"A": 9223372036854775807, "B": 1}') $$);
SELECT error_of($$ SELECT pncounter_value('{"A": [0, 9223372036854775807], "B": [0, 2]}') $$);
SELECT error_of($$ SELECT gcounter_inc('{"A": 9223372036854775807}', 1, 'A') $$);
SELECT error_of($$ SELECT pncounter_inc('{"A": [0, 9223372036854775807]}', -1, 'A') $$);
SELECT error_of($$ SELECT pncounter_inc(NULL, -9223372036854775808, 'A') $$);

-- Negative gcounter increments (22023).
SELECT error_of($$ SELECT gcounter_inc(NULL, -1, 'A') $$);

-- Duplicate nodes (22P02).
SELECT error_of($$ SELECT '{"A": 1, "B": 2, "A": 3}'::gcounter $$);
SELECT error_of($$ SELECT '{"A": [1, 0], "A": [1, 0]}'::pncounter $$);

-- Node ids empty or longer than 63 bytes: in text (22P02), as an argument (22023),
-- NULL as an argument (22004).
SELECT error_of($$ SELECT '{"": 1}'::gcounter $$);
SELECT error_of(format($f$ SELECT '{"%s": 1}'::gcounter $f$, repeat('x', 64)));
SELECT error_of($$ SELECT gcounter_inc(NULL, 1, '') $$);
SELECT error_of(format($f$ SELECT gcounter_inc(NULL, 1, '%s') $f$, repeat('é', 32)));
SELECT error_of($$ SELECT pncounter_inc(NULL, 1, NULL) $$);
SELECT length(gcounter_inc(NULL, 1, repeat('x', 63))::text) AS longest_node_ok;
SET pg_distcount.node_id = 'this-node-id-is-far-too-long-to-be-accepted-by-any-counter-slot-at-all';
SELECT error_of($$ SELECT gcounter_inc(NULL) $$);
RESET pg_distcount.node_id;

-- Truncated, garbage or forged binary through the bytea cast (22P03).
SELECT error_of($$ SELECT ''::bytea::gcounter $$);
SELECT error_of($$ SELECT '\x0101'::bytea::gcounter $$);
SELECT error_of($$ SELECT '\xdeadbeef'::bytea::gcounter $$);
SELECT error_of($$ SELECT '\x0201000001410500000000000000'::bytea::gcounter $$);
SELECT error_of($$ SELECT '\x01010100014105000000000000'::bytea::gcounter $$);
SELECT error_of($$ SELECT '\x0101010001410500000000000000ff'::bytea::gcounter $$);
SELECT error_of($$ SELECT '\x0101010001410000000000000000'::bytea::gcounter $$);
SELECT error_of($$ SELECT '\x01010100014100000000000000ff'::bytea::gcounter $$);
SELECT error_of($$ SELECT '\x010102000142050000000000000001410300000000000000'::bytea::gcounter $$);
SELECT error_of($$ SELECT '\x0101010000'::bytea::gcounter $$);
SELECT error_of($$ SELECT '\x0101011001410500000000000000'::bytea::gcounter $$);
SELECT error_of($$ SELECT '{"A": 5}'::gcounter::bytea::pncounter $$);
SELECT error_of($$ SELECT '{"A": [5, 1]}'::pncounter::bytea::gcounter $$);
-- The same bytes, valid, are accepted.
SELECT '\x0101010001410500000000000000'::bytea::gcounter;

-- Too many slots (54000): in text, by increment, by merge, by aggregate.
SELECT error_of(format('SELECT %L::gcounter',
    (SELECT '{' || string_agg(format('"n%s": 1', i), ', ') || '}' FROM generate_series(1, 4097) i)));
SELECT gcounter_value(('{' || string_agg(format('"n%s": 1', i), ', ') || '}')::gcounter) AS at_the_limit
FROM generate_series(1, 4096) i;
SELECT error_of($$ SELECT gcounter_inc(('{' || string_agg(format('"n%s": 1', i), ', ') || '}')::gcounter, 1, 'one-more')
                   FROM generate_series(1, 4096) i $$);
SELECT error_of($$ SELECT gcounter_merge_agg(gcounter_inc(NULL, 1, 'n' || i)) FROM generate_series(1, 4097) i $$);
SELECT error_of($$ SELECT pncounter_merge_agg(pncounter_inc(NULL, -1, 'n' || i)) FROM generate_series(1, 4097) i $$);

-- Still up, and still answering.
SELECT gcounter_value('{"A": 5, "B": 3, "C": 7}') AS still_up;
